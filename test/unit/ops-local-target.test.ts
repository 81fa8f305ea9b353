/** The local Target's secret store, without a running stack: files 0600 in 0700 directories, listing, refusals. */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalTarget } from '../../src/targets/local/target-adapter.js';
import { initSecrets } from '../../src/ops/secrets/manage.js';

/** Everything this file writes (state directories with generated secrets) is under one directory, removed at the end. */
const workDir = mkdtempSync(join(tmpdir(), 'mxstack-local-target-'));
after(() => rmSync(workDir, { recursive: true, force: true }));

const freshTarget = () => new LocalTarget({ stateDir: join(mkdtempSync(join(workDir, 'stack-')), 'state'), rawValues: { synapse: { server: { name: 'chat.example' } } } });

test('secrets init on a state directory that never ran writes every secret as a 0600 file in 0700 directories', async () => {
  const target = freshTarget();
  const result = await initSecrets(target, { force: false });
  assert.equal(result.created.length, 8);
  const file = join(target.stack.placement.paths.synapseConfigDir, '..', '..', 'secrets', 'mxstack-turn-credentials', 'shared-secret');
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.equal(statSync(join(file, '..')).mode & 0o777, 0o700);
  assert.equal(statSync(join(file, '..', '..')).mode & 0o777, 0o700);
  const listed = await target.listSecrets(['mxstack-admin-credentials', 'mxstack-missing']);
  assert.deepEqual(listed.map((s) => s.key), ['password', 'registration-secret', 'username']);
  assert.ok(listed.every((s) => Date.now() - s.updatedAt.getTime() < 60_000));
  assert.equal((await target.readSecret({ name: 'mxstack-admin-credentials', key: 'username' })), 'admin');
  assert.equal(await target.readSecret({ name: 'mxstack-nothing', key: 'x' }), undefined);
});

test('secret references that would leave the secrets directory are refused; running-only operations say the stack is not running', async () => {
  const target = freshTarget();
  await assert.rejects(target.readSecret({ name: '../etc', key: 'passwd' }), /invalid secret reference/);
  await assert.rejects(target.writeSecret({ name: 'ok', key: '../x' }, 'v'), /invalid secret reference/);
  await assert.rejects(target.withSynapse(async () => undefined), /^Error: cannot reach Synapse: the local stack in .* is not running; start it with `mxstack up --state-dir /);
});

test('a command against a stack that is not running fails with one sentence and exit 1', async () => {
  const { runCliAsync } = await import('../support/local-stack.js');
  const stateDir = join(mkdtempSync(join(workDir, 'stack-')), 'state');
  const result = await runCliAsync(['users', 'list', '--state-dir', stateDir], { timeoutMs: 120_000 });
  assert.equal(result.status, 1);
  assert.equal(result.stderr, `error: cannot reach Synapse: the local stack in ${stateDir} is not running; start it with \`mxstack up --state-dir ${stateDir}\`.\n`);
});

test('operations without values see the stack as the last `up` recorded it (values.json), values given win', async () => {
  const { writeJsonFileAtomic, stateLayout } = await import('../../src/targets/local/state.js');
  const stateDir = join(mkdtempSync(join(workDir, 'stack-')), 'state');
  const layout = stateLayout(stateDir);
  assert.equal(new LocalTarget({ stateDir }).stack.auth, undefined, 'nothing recorded: the defaults (2FA off)');
  writeJsonFileAtomic(layout.valuesFile, { synapse: { server: { name: 'chat.example', mfa: { webauthn: { enabled: true } } } } }, 0o600);
  const recorded = new LocalTarget({ stateDir }).stack;
  assert.equal(recorded.serverName, 'chat.example');
  assert.equal(recorded.values.synapse.server.mfa.webauthn.enabled, true);
  assert.equal(recorded.values.synapse.server.mfa.totp.enabled, false, 'not guessed: the recorded values say which factor is on');
  const given = new LocalTarget({ stateDir, rawValues: { synapse: { server: { name: 'chat.example' } } } }).stack;
  assert.equal(given.auth, undefined);
});
