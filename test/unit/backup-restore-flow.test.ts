/**
 * The restore's order of operations over a scripted Target: refusals change nothing; a Synapse that does
 * not come back healthy on the restored data has every swap undone and is started on the previous data.
 * With built-in 2FA: the auth database is loaded beside, swapped in the same transaction, and undone with
 * the rest when the auth component does not come back; archives and stacks that differ in 2FA.
 * (The real thing, with real programs, is test/integration/backup-restore.test.ts and ops-auth.test.ts.)
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { mkdtempSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadValues } from '../../src/values/load.js';
import { compileKubernetesStack } from '../../src/targets/kubernetes/render.js';
import type { ComponentName, Stack } from '../../src/stack/model.js';
import type { CommandResult, ExecOptions, SecretKeyRef, StoredSecretKey, StreamingCommand, Target } from '../../src/targets/target.js';
import { TarWriter } from '../../src/ops/archive/tar.js';
import { backupFormat, backupFormatVersion, ArchiveMismatchError, type BackupManifest } from '../../src/ops/archive/manifest.js';
import { restoreBackup } from '../../src/ops/archive/restore.js';

const work = mkdtempSync(join(tmpdir(), 'mxstack-restore-flow-'));
let server: Server;
let synapseUrl = '';
before(async () => {
  server = createServer((_request, response) => response.end(JSON.stringify({ server_version: '1.160.0' })));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  synapseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
});
after(() => {
  server.close();
  rmSync(work, { recursive: true, force: true });
});

const stackFor = (name: string, options: { auth?: boolean } = {}): Stack =>
  compileKubernetesStack(loadValues({ sets: [`synapse.server.name=${name}`, ...(options.auth ? ['synapse.server.mfa.totp.enabled=true'] : [])] }), { release: 'mx', namespace: 'chat' });

/** Records every command; SQL comes over psql's stdin. */
class ScriptedTarget implements Target {
  readonly kind = 'local' as const;
  readonly description = 'a scripted target';
  readonly files = { coturnConfig: '/coturn.conf' };
  readonly log: string[] = [];
  readonly secrets = new Map<string, string>();
  readonly streamed = new Map<string, number>();
  /** Databases `SELECT 1 FROM pg_database` finds. */
  readonly existingDatabases = new Set<string>();
  startFailures = 0;
  /** Components whose start fails (once each). */
  readonly failingStarts = new Set<string>();
  constructor(readonly stack: Stack) {}
  withSynapse<T>(use: (baseUrl: string) => Promise<T>) {
    return use(synapseUrl);
  }
  withAuth<T>(): Promise<T> {
    return Promise.reject(new Error('this scripted target has no auth component'));
  }
  async readSecret(ref: SecretKeyRef) {
    return this.secrets.get(`${ref.name}/${ref.key}`);
  }
  async writeSecret(ref: SecretKeyRef, value: string) {
    this.log.push(`write secret ${ref.name}/${ref.key}`);
    this.secrets.set(`${ref.name}/${ref.key}`, value);
  }
  async listSecrets(): Promise<StoredSecretKey[]> {
    return [];
  }
  async exec(component: ComponentName, argv: readonly string[], options: ExecOptions = {}): Promise<CommandResult> {
    if (argv[0]!.endsWith('psql')) {
      const sql = options.stdin ?? '';
      this.log.push(`sql ${sql.trim().replace(/\s+/g, ' ')}`);
      if (sql.includes('SHOW server_version')) return { exitCode: 0, stdout: '18.6\n', stderr: '' };
      const lookup = /FROM pg_database WHERE datname = '([^']+)'/.exec(sql);
      if (lookup) return { exitCode: 0, stdout: this.existingDatabases.has(lookup[1]!) ? '1\n' : '', stderr: '' };
      return { exitCode: 0, stdout: '', stderr: '' };
    }
    this.log.push(`${component}: ${argv.slice(0, 2).join(' ')}${argv[0] === 'sh' ? ` ${argv.slice(-2).join(' ')}` : ''}`);
    return { exitCode: 0, stdout: '', stderr: '' };
  }
  spawn(component: ComponentName, argv: readonly string[]): StreamingCommand {
    const program = argv[0]!.split('/').pop()!;
    const into = program === 'pg_restore' ? ` ${argv[argv.length - 1]}` : '';
    this.log.push(`${component}: spawn ${program}${into}`);
    const stdin = new PassThrough();
    const stdout = new PassThrough();
    stdin.on('data', (chunk: Buffer) => this.streamed.set(`${program}${into}`, (this.streamed.get(`${program}${into}`) ?? 0) + chunk.length));
    const finished = new Promise<{ exitCode: number; stderr: string }>((resolve) => stdin.on('end', () => resolve({ exitCode: 0, stderr: '' })));
    stdout.end();
    return { stdin, stdout, finished, kill: () => undefined };
  }
  postgresqlTool(tool: string): string[] {
    return [`/bin/${tool}`];
  }
  async isRunning() {
    return true;
  }
  async stop(component: ComponentName) {
    this.log.push(`stop ${component}`);
  }
  async start(component: ComponentName) {
    this.log.push(`start ${component}`);
    if (this.failingStarts.delete(component)) throw new Error(`${component} did not become healthy`);
    if (this.startFailures > 0) {
      this.startFailures--;
      throw new Error(`${component} did not become healthy`);
    }
  }
  async applySecrets() {}
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

async function archiveFor(serverName: string, file: string, options: { auth?: boolean } = {}): Promise<void> {
  const parts: [string, BackupManifest['parts'][number]['kind'], Buffer][] = [
    ['database.dump.000000', 'database', Buffer.alloc(3000, 1)],
    ...(options.auth
      ? ([
          ['auth-database.dump.000000', 'auth-database', Buffer.alloc(700, 2)],
          ['auth-database.dump.000001', 'auth-database', Buffer.alloc(300, 3)],
        ] as [string, BackupManifest['parts'][number]['kind'], Buffer][])
      : []),
    ['media.tar.000000', 'media', Buffer.alloc(10240, 0)],
    ['signing.key', 'signing-key', Buffer.from('ed25519 a_new NEWKEY\n')],
  ];
  const manifest: BackupManifest = {
    format: backupFormat,
    formatVersion: backupFormatVersion,
    serverName,
    createdAt: new Date().toISOString(),
    versions: { synapse: '1.160.0', postgresql: '18.6' },
    database: 'synapse',
    ...(options.auth ? { authDatabase: 'synapse_auth' } : {}),
    parts: parts.map(([name, kind, data]) => ({ name, kind, size: data.length, sha256: sha256(data) })),
  };
  const handle = await open(file, 'w');
  const writer = new TarWriter(handle, 0);
  for (const [name, , data] of parts) await writer.addEntry(name, data);
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  await writer.addEntry('manifest.json', manifestBytes);
  await writer.addEntry('manifest.json.sha256', Buffer.from(sha256(manifestBytes)));
  await writer.finish();
  await handle.close();
}

test('an archive of another server name is refused before anything is changed', async () => {
  const file = join(work, 'other.tar');
  await archiveFor('other.org', file);
  const target = new ScriptedTarget(stackFor('example.org'));
  await assert.rejects(restoreBackup(target, { file }), ArchiveMismatchError);
  const changes = target.log.filter((line) => !/^sql SHOW server_version/.test(line));
  assert.deepEqual(changes, []);
});

test('a successful restore: load beside, stop, swap in one transaction, key, media, start, then clean up', async () => {
  const file = join(work, 'good.tar');
  await archiveFor('example.org', file);
  const target = new ScriptedTarget(stackFor('example.org'));
  const keyRef = target.stack.secrets.signingKey;
  target.secrets.set(`${keyRef.name}/${keyRef.key}`, 'ed25519 a_old OLDKEY\n');
  await restoreBackup(target, { file });
  assert.equal(target.streamed.get('pg_restore synapse_mxstack_restore'), 3000);
  assert.equal(target.streamed.get('tar'), 10240);
  assert.equal(target.secrets.get(`${keyRef.name}/${keyRef.key}`), 'ed25519 a_new NEWKEY\n');
  const order = target.log.map((line) => line.slice(0, 60));
  const index = (prefix: string) => order.findIndex((line) => line.startsWith(prefix));
  assert.ok(index('postgresql: spawn pg_restore') < index('stop synapse'), 'loaded while Synapse runs');
  assert.ok(index('stop synapse') < index('sql BEGIN;'), 'swapped after the stop');
  const swap = target.log.find((line) => line.startsWith('sql BEGIN;'))!;
  assert.match(swap, /ALTER DATABASE "synapse" RENAME TO "synapse_mxstack_previous"; ALTER DATABASE "synapse_mxstack_restore" RENAME TO "synapse"; COMMIT;/);
  assert.ok(index('sql BEGIN;') < index('start synapse'));
  assert.ok(index('start synapse') < index('sql DROP DATABASE IF EXISTS "synapse_mxstack_previous"'), 'the previous database goes only after success');
});

test('Synapse not healthy on the restored data: every swap undone and Synapse started on the previous data', async () => {
  const file = join(work, 'good.tar');
  await archiveFor('example.org', file);
  const target = new ScriptedTarget(stackFor('example.org'));
  const keyRef = target.stack.secrets.signingKey;
  target.secrets.set(`${keyRef.name}/${keyRef.key}`, 'ed25519 a_old OLDKEY\n');
  target.startFailures = 1;
  await assert.rejects(restoreBackup(target, { file }), /did not become healthy/);
  assert.equal(target.secrets.get(`${keyRef.name}/${keyRef.key}`), 'ed25519 a_old OLDKEY\n', 'the previous signing key is back');
  const swaps = target.log.filter((line) => line.startsWith('sql BEGIN;'));
  assert.equal(swaps.length, 2);
  assert.match(swaps[1]!, /ALTER DATABASE "synapse" RENAME TO "synapse_mxstack_restore"; ALTER DATABASE "synapse_mxstack_previous" RENAME TO "synapse";/);
  const media = target.log.filter((line) => line.startsWith('synapse: sh -c'));
  assert.deepEqual(
    media.map((line) => line.split(' ').slice(-2).join(' ')),
    ['.mxstack-before-restore .mxstack-restore-staging', '.mxstack-restore-staging .mxstack-before-restore'],
    'media swapped, then swapped back',
  );
  assert.deepEqual(target.log.filter((line) => /^(start|stop) /.test(line)), ['stop synapse', 'start synapse', 'stop synapse', 'start synapse']);
  assert.ok(!target.log.some((line) => line.includes('DROP DATABASE IF EXISTS "synapse_mxstack_previous"')), 'the previous database is kept');
});

test('with 2FA: the auth database is loaded beside, swapped in the same transaction as Synapse\'s, auth started before Synapse', async () => {
  const file = join(work, 'auth.tar');
  await archiveFor('example.org', file, { auth: true });
  const target = new ScriptedTarget(stackFor('example.org', { auth: true }));
  target.existingDatabases.add('synapse_auth');
  await restoreBackup(target, { file });
  assert.equal(target.streamed.get('pg_restore synapse_mxstack_restore'), 3000);
  assert.equal(target.streamed.get('pg_restore synapse_auth_mxstack_restore'), 1000, 'both chunks of the auth dump, in one pg_restore');
  assert.equal(target.streamed.get('tar'), 10240);
  const swaps = target.log.filter((line) => line.startsWith('sql BEGIN;'));
  assert.equal(swaps.length, 1, 'one transaction');
  assert.match(
    swaps[0]!,
    /ALTER DATABASE "synapse" RENAME TO "synapse_mxstack_previous"; ALTER DATABASE "synapse_mxstack_restore" RENAME TO "synapse"; ALTER DATABASE "synapse_auth" RENAME TO "synapse_auth_mxstack_previous"; ALTER DATABASE "synapse_auth_mxstack_restore" RENAME TO "synapse_auth"; COMMIT;/,
  );
  assert.deepEqual(target.log.filter((line) => /^(start|stop) /.test(line)), ['stop synapse', 'stop auth', 'start auth', 'start synapse']);
  assert.ok(target.log.some((line) => line.includes('DROP DATABASE IF EXISTS "synapse_auth_mxstack_previous"')), 'the previous auth database goes after success');
});

test('with 2FA: the auth component not healthy on the restored data undoes both database swaps in one transaction', async () => {
  const file = join(work, 'auth.tar');
  await archiveFor('example.org', file, { auth: true });
  const target = new ScriptedTarget(stackFor('example.org', { auth: true }));
  target.existingDatabases.add('synapse_auth');
  target.failingStarts.add('auth');
  await assert.rejects(restoreBackup(target, { file }), /auth did not become healthy/);
  const swaps = target.log.filter((line) => line.startsWith('sql BEGIN;'));
  assert.equal(swaps.length, 2);
  assert.match(
    swaps[1]!,
    /ALTER DATABASE "synapse" RENAME TO "synapse_mxstack_restore"; ALTER DATABASE "synapse_mxstack_previous" RENAME TO "synapse"; ALTER DATABASE "synapse_auth" RENAME TO "synapse_auth_mxstack_restore"; ALTER DATABASE "synapse_auth_mxstack_previous" RENAME TO "synapse_auth";/,
  );
  assert.deepEqual(target.log.filter((line) => /^(start|stop) /.test(line)), ['stop synapse', 'stop auth', 'start auth', 'stop synapse', 'stop auth', 'start auth', 'start synapse']);
  assert.ok(!target.log.some((line) => line.includes('DROP DATABASE IF EXISTS "synapse_auth_mxstack_previous"')), 'the previous auth database is kept');
});

test('with 2FA on a stack whose auth database does not exist yet: the archive\'s is renamed in, and renamed out on undo', async () => {
  const file = join(work, 'auth.tar');
  await archiveFor('example.org', file, { auth: true });
  const target = new ScriptedTarget(stackFor('example.org', { auth: true }));
  target.startFailures = 1;
  target.failingStarts.add('auth');
  await assert.rejects(restoreBackup(target, { file }));
  const swaps = target.log.filter((line) => line.startsWith('sql BEGIN;'));
  assert.match(swaps[0]!, /RENAME TO "synapse"; ALTER DATABASE "synapse_auth_mxstack_restore" RENAME TO "synapse_auth"; COMMIT;/);
  assert.doesNotMatch(swaps[0]!, /"synapse_auth" RENAME TO "synapse_auth_mxstack_previous"/);
  assert.match(swaps[1]!, /ALTER DATABASE "synapse_auth" RENAME TO "synapse_auth_mxstack_restore"; COMMIT;/);
});

test('an archive made with 2FA is refused by a stack with 2FA off, before anything is changed', async () => {
  const file = join(work, 'auth.tar');
  await archiveFor('example.org', file, { auth: true });
  const target = new ScriptedTarget(stackFor('example.org'));
  await assert.rejects(restoreBackup(target, { file }), (error: unknown) => {
    assert.ok(error instanceof ArchiveMismatchError);
    assert.match(error.message, /made with built-in 2FA on .* but this stack has it off: enable synapse\.server\.mfa\.totp\.enabled/);
    return true;
  });
  assert.deepEqual(target.log.filter((line) => !/^sql SHOW server_version/.test(line)), []);
});

test('an archive made with 2FA off restored into a stack with 2FA: the auth database is kept, only Synapse\'s is swapped', async () => {
  const file = join(work, 'good.tar');
  await archiveFor('example.org', file);
  const target = new ScriptedTarget(stackFor('example.org', { auth: true }));
  target.existingDatabases.add('synapse_auth');
  const progress: string[] = [];
  await restoreBackup(target, { file, progress: (line) => progress.push(line) });
  assert.ok(progress.some((line) => /made with 2FA off: the auth database synapse_auth is kept as it is/.test(line)));
  assert.ok(!target.log.some((line) => line.includes('synapse_auth')), 'the auth database is not touched');
  assert.deepEqual(target.log.filter((line) => /^(start|stop) /.test(line)), ['stop synapse', 'start synapse']);
});
