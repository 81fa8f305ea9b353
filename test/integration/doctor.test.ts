/**
 * `mxstack doctor` against a real local stack: every line passes on a healthy stack, and each breakage
 * the test introduces turns exactly its own lines to fail, each with a fix. Breakages are made the way
 * they happen in real life, on the running programs: coturn restarted with another static-auth-secret,
 * coturn stopped (held stopped through the local target), coturn frozen (SIGSTOP: its ports stay open
 * but nothing answers), the router restarted with a wrong
 * client well-known file, and the database's locale changed in pg_database (what PostgreSQL reports for
 * a database created without --locale=C). Every breakage is undone before the next test.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startLocalStack, runCliAsync, type LocalStackHandle } from '../support/local-stack.js';
import { LocalTarget } from '../../src/targets/local/target-adapter.js';
import { stateLayout, readJsonFile, type SupervisorStatus } from '../../src/targets/local/state.js';
import type { DoctorCheck, DoctorReport } from '../../src/ops/doctor/report.js';

let stack: LocalStackHandle;

before(async () => {
  stack = await startLocalStack();
}, { timeout: 600_000 });

after(async () => {
  await stack?.dispose();
}, { timeout: 300_000 });

async function doctor(): Promise<{ status: number | null; checks: DoctorCheck[]; stderr: string }> {
  const result = await runCliAsync(['doctor', '--state-dir', stack.stateDir, '--output', 'json'], { timeoutMs: 120_000 });
  const report = JSON.parse(result.stdout) as DoctorReport;
  return { status: result.status, checks: report.checks, stderr: result.stderr };
}

const failing = (checks: DoctorCheck[]) => checks.filter((check) => check.status !== 'pass').map((check) => check.name).sort();
const turnLines = (checks: DoctorCheck[]) => checks.filter((check) => check.name.startsWith('TURN turn')).map((check) => check.name).sort();

function supervisorStatus(): SupervisorStatus {
  const status = readJsonFile<SupervisorStatus>(stateLayout(stack.stateDir).statusFile);
  assert.ok(status, 'the supervisor writes status.json');
  return status;
}

/** Ends a component's process; the supervisor starts it again (reading its files anew). Waits until healthy. */
async function restartComponent(component: string): Promise<void> {
  const before = supervisorStatus().components[component]?.pid;
  assert.ok(before, `${component} has a pid`);
  process.kill(before, 'SIGTERM');
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    const now = supervisorStatus().components[component];
    if (now?.pid !== undefined && now.pid !== before && now.state === 'running' && now.healthy) return;
  }
  assert.fail(`${component} did not come back within 120 s`);
}

/** Rewrites every generated file from the stored secrets and values, and restarts the component. */
async function restoreComponent(component: 'coturn' | 'router'): Promise<void> {
  await new LocalTarget({ stateDir: stack.stateDir }).applySecrets([component]);
}

async function psqlAsPostgres(sql: string): Promise<void> {
  const target = new LocalTarget({ stateDir: stack.stateDir });
  const result = await target.exec('postgresql', ['psql', '-X', '-tA', '-v', 'ON_ERROR_STOP=1', '-h', '/var/run/postgresql', '-p', String(target.stack.database.port), '-d', 'postgres', '-c', sql], { user: 'postgres' });
  assert.equal(result.exitCode, 0, result.stderr);
}

test('a healthy stack: every line passes, exit code 0', { timeout: 180_000 }, async () => {
  const { status, checks } = await doctor();
  assert.deepEqual(failing(checks), [], JSON.stringify(checks, null, 2));
  assert.equal(status, 0);
  const names = checks.map((check) => check.name);
  for (const expected of [
    'component postgresql',
    'component synapse',
    'component coturn',
    'component router',
    'well-known server',
    'well-known client',
    'client versions',
    'federation signing key',
    'database encoding and locale',
    'registration',
  ]) {
    assert.ok(names.includes(expected), `missing line ${expected}: ${names.join(', ')}`);
  }
  // One TURN line per URI Synapse hands out, each a real Allocate.
  assert.deepEqual(turnLines(checks), stack.status.endpoints!.turn.map((uri) => `TURN ${uri}`).sort());
  assert.ok(checks.some((check) => check.name.startsWith('certificate ') && /plain HTTP/.test(check.detail)));
  assert.equal(checks.filter((check) => check.name.startsWith('metrics ')).length, stack.status.endpoints!.metrics.length);
  for (const check of checks) assert.equal(check.fix, '', `${check.name} passes without a fix`);
});

test('the text output lists the same checks', { timeout: 120_000 }, async () => {
  const result = await runCliAsync(['doctor', '--state-dir', stack.stateDir], { timeoutMs: 120_000 });
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stdout, /^PASS {2}component synapse/m);
  assert.match(result.stdout, /\d+ passed, 0 warnings, 0 failed/);
});

test('coturn given another secret: exactly the TURN lines fail (401), with the fix naming the shared secret', { timeout: 400_000 }, async () => {
  const confFile = stateLayout(stack.stateDir).coturnRuntimeConfFile;
  const original = readFileSync(confFile, 'utf8');
  assert.match(original, /^static-auth-secret=/m);
  try {
    writeFileSync(confFile, original.replace(/^static-auth-secret=.*$/m, 'static-auth-secret=not-the-secret-synapse-has'));
    await restartComponent('coturn');
    const { status, checks, stderr } = await doctor();
    assert.deepEqual(failing(checks), turnLines(checks), JSON.stringify(checks, null, 2));
    assert.ok(turnLines(checks).length >= 1);
    for (const check of checks.filter((c) => c.status !== 'pass')) {
      assert.equal(check.status, 'fail');
      assert.match(check.detail, /401/);
      assert.match(check.fix, /same secret .*turn/i);
    }
    assert.equal(status, 1);
    assert.match(stderr, /failing check/);
  } finally {
    await restoreComponent('coturn');
  }
  assert.deepEqual(failing((await doctor()).checks), [], 'restored');
});

test('coturn stopped: its component line and the TURN lines fail', { timeout: 300_000 }, async () => {
  const target = new LocalTarget({ stateDir: stack.stateDir });
  await target.stop('coturn');
  try {
    const { status, checks } = await doctor();
    assert.deepEqual(failing(checks), ['component coturn', ...turnLines(checks)].sort(), JSON.stringify(checks, null, 2));
    const component = checks.find((check) => check.name === 'component coturn')!;
    assert.match(component.detail, /stopped/);
    assert.match(component.fix, /mxstack logs coturn/);
    for (const check of checks.filter((c) => c.name.startsWith('TURN '))) {
      assert.match(check.detail, /no TURN answer/);
      assert.match(check.fix, /start coturn/);
    }
    assert.equal(status, 1);
  } finally {
    await target.start('coturn');
  }
  assert.deepEqual(failing((await doctor()).checks), [], 'coturn runs again');
});

test('coturn frozen (ports open, nothing answers): its component line and the TURN lines fail', { timeout: 300_000 }, async () => {
  const pid = supervisorStatus().components.coturn?.pid;
  assert.ok(pid);
  process.kill(pid, 'SIGSTOP');
  try {
    const { status, checks } = await doctor();
    assert.deepEqual(failing(checks), ['component coturn', ...turnLines(checks)].sort(), JSON.stringify(checks, null, 2));
    const component = checks.find((check) => check.name === 'component coturn')!;
    assert.match(component.detail, /no STUN answer/);
    assert.match(component.fix, /mxstack logs coturn/);
    for (const check of checks.filter((c) => c.name.startsWith('TURN '))) assert.match(check.fix, /start coturn/);
    assert.equal(status, 1);
  } finally {
    process.kill(pid, 'SIGCONT');
  }
  assert.deepEqual(failing((await doctor()).checks), [], 'coturn answers again');
});

test('a broken client well-known: exactly its line fails, with the expected document in the fix', { timeout: 300_000 }, async () => {
  const file = join(stateLayout(stack.stateDir).routerConfigDir, 'well-known-client.json');
  assert.ok(readFileSync(file, 'utf8').includes('m.homeserver'));
  try {
    writeFileSync(file, JSON.stringify({ 'm.homeserver': { base_url: 'https://wrong.example.invalid' } }));
    await restartComponent('router');
    const { status, checks } = await doctor();
    assert.deepEqual(failing(checks), ['well-known client'], JSON.stringify(checks, null, 2));
    const line = checks.find((check) => check.name === 'well-known client')!;
    assert.equal(line.status, 'fail');
    assert.match(line.detail, /wrong\.example\.invalid/);
    assert.ok(line.fix.includes(stack.status.endpoints!.client.replace(/\/$/, '')), line.fix);
    assert.equal(status, 1);
  } finally {
    await restoreComponent('router');
  }
  assert.deepEqual(failing((await doctor()).checks), [], 'restored');
});

test('a database with a wrong locale: exactly its line fails, with the createdb fix', { timeout: 300_000 }, async () => {
  const database = new LocalTarget({ stateDir: stack.stateDir }).stack.database.name;
  await psqlAsPostgres(`UPDATE pg_database SET datcollate = 'C.UTF-8', datctype = 'C.UTF-8' WHERE datname = '${database}'`);
  try {
    const { status, checks } = await doctor();
    assert.deepEqual(failing(checks), ['database encoding and locale'], JSON.stringify(checks, null, 2));
    const line = checks.find((check) => check.name === 'database encoding and locale')!;
    assert.match(line.detail, /C\.UTF-8/);
    assert.match(line.fix, /createdb --encoding=UTF8 --locale=C --template=template0/);
    assert.equal(status, 1);
  } finally {
    await psqlAsPostgres(`UPDATE pg_database SET datcollate = 'C', datctype = 'C' WHERE datname = '${database}'`);
  }
  assert.deepEqual(failing((await doctor()).checks), [], 'restored');
});

test('open registration without verification is flagged as a warning (exit code stays 0)', { timeout: 600_000 }, async () => {
  // One stack at a time: the healthy stack goes first.
  await stack.dispose();
  stack = await startLocalStack({ sets: ['synapse.server.registration.enabled=true', 'synapse.server.registration.withoutVerification=true'] });
  const { status, checks } = await doctor();
  assert.deepEqual(failing(checks), ['registration'], JSON.stringify(checks, null, 2));
  const line = checks.find((check) => check.name === 'registration')!;
  assert.equal(line.status, 'warn');
  assert.match(line.detail, /without verification/);
  assert.match(line.fix, /requireToken|registration-tokens/);
  assert.equal(status, 0);
});

test('a stopped stack: one line saying so, with the command that starts it; no state directory: usage error', { timeout: 300_000 }, async () => {
  await stack.down();
  const { status, checks } = await doctor();
  assert.deepEqual(checks.map((check) => [check.name, check.status]), [['stack', 'fail']]);
  assert.match(checks[0]!.fix, /mxstack up --state-dir/);
  assert.equal(status, 1);
  const missing = await runCliAsync(['doctor', '--state-dir', join(stack.stateDir, 'no-such-stack')], { timeoutMs: 60_000 });
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /no local stack in/);
});
