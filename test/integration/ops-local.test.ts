/**
 * `mxstack secrets | users | rooms | registration-tokens` against ONE real local stack, driven through the
 * real command line, checked with real clients (password logins, whoami, sends, reads).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync, copyFileSync, chownSync, chmodSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCliAsync, startLocalStack, type LocalStackHandle } from '../support/local-stack.js';
import { stackFramePattern, type CliResult } from '../support/cli.js';
import { loginWithPassword, matrixRequest, MatrixHttpError, sendText, type MatrixSession } from '../support/matrix-client.js';
import { createUsersInBulk } from '../support/bulk-users.js';
import { LocalTarget } from '../../src/targets/local/target-adapter.js';
import { withAdmin } from '../../src/ops/admin-session.js';
import type { RoomExport } from '../../src/ops/rooms.js';

let stack: LocalStackHandle;
let work: string;
let clientUrl: string;
/** Bob's last password, set by the password tests. */
let bobPassword = '';

const cli = (args: string[], timeoutMs = 300_000): Promise<CliResult> => runCliAsync([...args, '--state-dir', stack.stateDir], { timeoutMs });

/** Runs and insists on exit 0. */
async function ok(args: string[], timeoutMs?: number): Promise<CliResult> {
  const result = await cli(args, timeoutMs);
  assert.equal(result.status, 0, `mxstack ${args.join(' ')} exited ${result.status}\n${result.stderr}\n${result.stdout}`);
  return result;
}

/** Runs and insists on an exit code and a one-sentence error (no stack trace). */
async function fails(args: string[], code: number, pattern: RegExp): Promise<CliResult> {
  const result = await cli(args);
  assert.equal(result.status, code, `mxstack ${args.join(' ')}: expected exit ${code}, got ${result.status}\n${result.stderr}`);
  assert.match(result.stderr, pattern);
  assert.doesNotMatch(result.stderr, stackFramePattern);
  return result;
}

const json = <T>(result: CliResult): T => JSON.parse(result.stdout) as T;

function secretFiles(): Map<string, string> {
  const root = join(stack.stateDir, 'secrets');
  const files = new Map<string, string>();
  for (const name of readdirSync(root)) {
    for (const key of readdirSync(join(root, name))) files.set(`${name}/${key}`, createHash('sha256').update(readFileSync(join(root, name, key))).digest('hex'));
  }
  return files;
}

const storedSecret = (name: string, key: string) => readFileSync(join(stack.stateDir, 'secrets', name, key), 'utf8');

function writePasswordFile(name: string, password: string): string {
  const file = join(work, name);
  writeFileSync(file, `${password}\n`, { mode: 0o600 });
  return file;
}

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'mxstack-ops-'));
  stack = await startLocalStack();
  clientUrl = stack.status.endpoints!.client;
});

after(async () => {
  try {
    await stack?.dispose();
  } finally {
    if (work) rmSync(work, { recursive: true, force: true });
  }
});

describe('secrets', () => {
  test('init run twice changes nothing, and list shows names, keys and ages but no value', async () => {
    const before = secretFiles();
    const first = await ok(['secrets', 'init']);
    const second = await ok(['secrets', 'init']);
    for (const run of [first, second]) assert.match(run.stdout, /^0 created, 0 replaced, 8 kept/);
    assert.deepEqual(secretFiles(), before);

    const listed = json<{ name: string; key: string; present: boolean; age_days: number | null; origin: string }[]>(await ok(['secrets', 'list', '--output', 'json']));
    assert.ok(listed.some((s) => s.name === 'mxstack-turn-credentials' && s.key === 'shared-secret' && s.present && s.age_days === 0 && s.origin === 'generated'));
    assert.ok(listed.some((s) => s.name === 'mxstack-signing-key' && s.key === 'signing.key'));
    const table = await ok(['secrets', 'list']);
    // The admin's localpart is a name, not a secret: it may be printed.
    for (const [ref] of [...before].filter(([r]) => r !== 'mxstack-admin-credentials/username')) {
      const [name, key] = ref.split('/') as [string, string];
      const value = storedSecret(name, key).trim();
      assert.ok(!table.stdout.includes(value) && !JSON.stringify(listed).includes(value), `secrets list printed the value of ${ref}`);
    }
  });

  test('init creates only what is missing', async () => {
    const file = join(stack.stateDir, 'secrets', 'mxstack-synapse-keys', 'form-secret');
    const saved = readFileSync(file);
    const others = secretFiles();
    rmSync(file);
    const result = await ok(['secrets', 'init']);
    assert.match(result.stdout, /^1 created, 0 replaced, 7 kept/);
    assert.match(result.stderr, /created mxstack-synapse-keys\/form-secret/);
    const now = secretFiles();
    for (const [ref, digest] of others) if (ref !== 'mxstack-synapse-keys/form-secret') assert.equal(now.get(ref), digest, `${ref} changed`);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    writeFileSync(file, saved, { mode: 0o600 });
  });

  test('verify passes, fails when coturn\'s secret is changed behind its back, passes again once restored', async () => {
    const verified = json<{ consistent: boolean; checks: { name: string; ok: boolean }[] }>(await ok(['secrets', 'verify', '--output', 'json']));
    assert.equal(verified.consistent, true);
    assert.deepEqual(verified.checks.map((c) => c.name), ['stored secrets', 'TURN secret', 'database password', 'signing key']);

    const conf = join(stack.stateDir, 'coturn', 'turnserver-with-secret.conf');
    const backup = join(work, 'coturn.conf');
    copyFileSync(conf, backup);
    const { uid, gid } = statSync(conf);
    const original = readFileSync(conf, 'utf8');
    assert.match(original, /^static-auth-secret=/m);
    writeFileSync(conf, original.replace(/^static-auth-secret=.*$/m, 'static-auth-secret=changed-behind-its-back'));
    try {
      const failed = await fails(['secrets', 'verify'], 1, /^error: the secrets are not consistent \(TURN secret\)\.$/m);
      assert.match(failed.stdout, /^FAIL {2}TURN secret: coturn's static-auth-secret differs from Synapse's/m);
      assert.doesNotMatch(failed.stdout + failed.stderr, /changed-behind-its-back/);
    } finally {
      copyFileSync(backup, conf);
      chownSync(conf, uid, gid);
      chmodSync(conf, 0o600);
    }
    await ok(['secrets', 'verify']);
  });

  test('verify fails when the database role no longer accepts the stored password', async () => {
    const target = new LocalTarget({ stateDir: stack.stateDir });
    const { database } = target.stack;
    const psql = (sql: string) =>
      target.exec('postgresql', ['psql', '-X', '-q', '-h', '/var/run/postgresql', '-p', String(database.port), '-d', 'postgres'], { user: 'postgres', stdin: `\\set ON_ERROR_STOP on\n${sql}\n` });
    const stored = storedSecret('mxstack-postgresql', 'postgres-password').trim();
    assert.equal((await psql(`ALTER ROLE ${database.user} WITH PASSWORD 'some-other-password';`)).exitCode, 0);
    try {
      const failed = await fails(['secrets', 'verify'], 1, /not consistent \(database password\)/);
      assert.match(failed.stdout, /FAIL {2}database password: the stored password does not open database synapse/);
    } finally {
      assert.equal((await psql(`ALTER ROLE ${database.user} WITH PASSWORD '${stored}';`)).exitCode, 0);
    }
    await ok(['secrets', 'verify']);
  });

  test('export writes 0600 files equal to the stored secrets, with a warning', async () => {
    const dir = join(work, '.secrets');
    const result = await ok(['secrets', 'export', '--dir', dir]);
    assert.match(result.stderr, /warning: These files hold the stack's secrets in clear text/);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    const exported = readFileSync(join(dir, 'mxstack-turn-credentials', 'shared-secret'), 'utf8');
    assert.equal(exported, storedSecret('mxstack-turn-credentials', 'shared-secret'));
    for (const name of readdirSync(dir).filter((n) => n !== 'README.txt')) {
      for (const key of readdirSync(join(dir, name))) assert.equal(statSync(join(dir, name, key)).mode & 0o777, 0o600, `${name}/${key}`);
    }
  });

  test('rotate the TURN secret: a new value, Synapse and coturn restarted with it, verify passes', async () => {
    const before = storedSecret('mxstack-turn-credentials', 'shared-secret');
    await fails(['secrets', 'rotate', 'turn-shared-secret'], 2, /refused without --yes/);
    const result = await ok(['secrets', 'rotate', 'turn-shared-secret', '--yes']);
    assert.match(result.stdout, /rotated mxstack-turn-credentials\/shared-secret; restarted synapse, coturn\./);
    assert.notEqual(storedSecret('mxstack-turn-credentials', 'shared-secret'), before);
    await ok(['secrets', 'verify']);
    await fails(['secrets', 'rotate', 'signing-key', '--yes'], 2, /signing key is the server's identity/);
  });
});

describe('secrets rotation of passwords', () => {
  test('rotate the database password: the role takes it, Synapse restarts with it, verify passes', async () => {
    const before = storedSecret('mxstack-postgresql', 'postgres-password');
    await ok(['secrets', 'rotate', 'postgres-password', '--yes']);
    assert.notEqual(storedSecret('mxstack-postgresql', 'postgres-password'), before);
    await ok(['secrets', 'verify']);
    await ok(['users', 'list']);
  });

  test('rotate the admin password: the admin logs in with the new one, admin-credentials.json follows', async () => {
    const before = stack.adminCredentials().password;
    await ok(['secrets', 'rotate', 'admin-password', '--yes']);
    const stored = storedSecret('mxstack-admin-credentials', 'password');
    assert.notEqual(stored, before);
    assert.equal(stack.adminCredentials().password, stored);
    await loginWithPassword(clientUrl, '@admin:localhost', stored);
    await assert.rejects(loginWithPassword(clientUrl, '@admin:localhost', before), (e: unknown) => e instanceof MatrixHttpError && e.status === 403);
  });
});

describe('users', () => {
  test('create with a generated password (shown once) that logs in; create twice is refused', async () => {
    const created = await ok(['users', 'create', 'alice', '--display-name', 'Alice', '--email', 'alice@example.org']);
    const password = /password \(shown once, store it now\): (\S+)/.exec(created.stdout)?.[1];
    assert.ok(password, created.stdout);
    const session = await loginWithPassword(clientUrl, '@alice:localhost', password);
    assert.equal(session.userId, '@alice:localhost');
    await fails(['users', 'create', 'alice'], 1, /^error: user @alice:localhost already exists\.$/m);
    const info = json<{ user_id: string; display_name: string; emails: string[]; admin: boolean }>(await ok(['users', 'info', 'alice', '--output', 'json']));
    assert.deepEqual([info.user_id, info.display_name, info.emails, info.admin], ['@alice:localhost', 'Alice', ['alice@example.org'], false]);
  });

  test('create from a password file; set-password from a file and generated', async () => {
    const first = writePasswordFile('bob-1', 'first password of bob');
    const created = await ok(['users', 'create', '@bob:localhost', '--password-file', first]);
    assert.doesNotMatch(created.stdout, /password/);
    await loginWithPassword(clientUrl, '@bob:localhost', 'first password of bob');
    await ok(['users', 'set-password', 'bob', '--password-file', writePasswordFile('bob-2', 'second password of bob')]);
    await loginWithPassword(clientUrl, '@bob:localhost', 'second password of bob');
    await assert.rejects(loginWithPassword(clientUrl, '@bob:localhost', 'first password of bob'), (e: unknown) => e instanceof MatrixHttpError && e.status === 403);
    const generated = await ok(['users', 'set-password', 'bob']);
    const password = /password \(shown once, store it now\): (\S+)/.exec(generated.stdout)?.[1];
    assert.ok(password);
    await loginWithPassword(clientUrl, '@bob:localhost', password);
    bobPassword = password;
  });

  test('one-sentence errors: not found, invalid id, other server, missing argument (exit 2)', async () => {
    await fails(['users', 'info', 'nobody'], 1, /^error: user @nobody:localhost not found\.$/m);
    await fails(['users', 'info', 'Not Valid'], 1, /^error: invalid user id "Not Valid": a localpart may only contain/m);
    await fails(['users', 'info', '@x:elsewhere.example'], 1, /^error: invalid user id @x:elsewhere\.example: this server \(localhost\) only manages its own users/m);
    await fails(['users', 'set-password', 'nobody', '--password-file', writePasswordFile('x', 'whatever password')], 1, /user @nobody:localhost not found/);
    await fails(['users', 'create'], 2, /missing required argument/);
    await fails(['users', 'create', 'dave', '--password-file', join(work, 'no-such-file')], 2, /cannot read the password file/);
  });

  test('admin grant and revoke, seen in list --admins', async () => {
    await ok(['users', 'admin', 'grant', 'alice']);
    const admins = json<{ user_id: string; admin: boolean }[]>(await ok(['users', 'list', '--admins', '--output', 'json']));
    assert.deepEqual(admins.map((u) => u.user_id).sort(), ['@admin:localhost', '@alice:localhost']);
    await ok(['users', 'admin', 'revoke', 'alice', '--yes']);
    const remaining = json<{ user_id: string }[]>(await ok(['users', 'list', '--admins', '--output', 'json']));
    assert.deepEqual(remaining.map((u) => u.user_id), ['@admin:localhost']);
  });

  test('login-token acts as the user; a non-admin token is refused in one sentence', async () => {
    const token = (await ok(['users', 'login-token', 'bob', '--valid-for', '1h'])).stdout.trim();
    const whoami = await matrixRequest<{ user_id: string }>(clientUrl, 'GET', '/_matrix/client/v3/account/whoami', { accessToken: token });
    assert.equal(whoami.user_id, '@bob:localhost');
    const file = join(work, 'bob.token');
    writeFileSync(file, `${token}\n`, { mode: 0o600 });
    await fails(['users', 'list', '--access-token-file', file], 1, /^error: the access token belongs to @bob:localhost, who is not a server admin\.$/m);
  });

  test('deactivate asks for --yes, then deactivates; erase; list shows deactivated users only on request', async () => {
    await fails(['users', 'deactivate', 'bob'], 2, /refused without --yes/);
    await ok(['users', 'deactivate', 'bob', '--yes']);
    await assert.rejects(loginWithPassword(clientUrl, '@bob:localhost', bobPassword), (e: unknown) => e instanceof MatrixHttpError && e.status === 403);
    await ok(['users', 'erase', 'alice', '--yes']);
    const alice = json<{ deactivated: boolean; erased: boolean }>(await ok(['users', 'info', 'alice', '--output', 'json']));
    assert.deepEqual([alice.deactivated, alice.erased], [true, true]);
    const active = json<{ user_id: string }[]>(await ok(['users', 'list', '--output', 'json'])).map((u) => u.user_id);
    assert.ok(!active.includes('@bob:localhost') && !active.includes('@alice:localhost'));
    const all = json<{ user_id: string; deactivated: boolean }[]>(await ok(['users', 'list', '--deactivated', '--output', 'json']));
    assert.equal(all.find((u) => u.user_id === '@bob:localhost')?.deactivated, true);
  });

  test('reset-2fa and unlock say that 2FA is off (exit 2)', async () => {
    await fails(['users', 'reset-2fa', 'bob', '--yes'], 2, /two-factor authentication is off on the local stack/);
    await fails(['users', 'unlock', 'bob'], 2, /there is no second factor to manage/);
  });

  test('list pages through more than 10 000 users (created in bulk through the Admin API), with filters', { timeout: 1_800_000 }, async () => {
    const target = new LocalTarget({ stateDir: stack.stateDir });
    const bulk = await withAdmin(target, {}, (admin) => createUsersInBulk(admin, 'bulk', 10_000, 8));
    process.stderr.write(`created ${bulk.created} users in ${(bulk.milliseconds / 1000).toFixed(1)} s\n`);
    const started = Date.now();
    const listed = json<{ user_id: string; admin: boolean; deactivated: boolean }[]>(await ok(['users', 'list', '--output', 'json'], 600_000));
    process.stderr.write(`users list --output json: ${listed.length} users in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
    const ids = new Set(listed.map((u) => u.user_id));
    assert.equal(ids.size, listed.length, 'a user listed twice');
    for (let n = 0; n < 10_000; n++) assert.ok(ids.has(`@bulk${String(n).padStart(5, '0')}:localhost`), `@bulk${n} missing`);
    assert.ok(listed.every((u) => typeof u.admin === 'boolean' && typeof u.deactivated === 'boolean'));
    const named = json<{ user_id: string }[]>(await ok(['users', 'list', '--name', 'bulk0999', '--output', 'json']));
    assert.deepEqual(named.map((u) => u.user_id).sort(), Array.from({ length: 10 }, (_, i) => `@bulk0999${i}:localhost`));
    const table = await ok(['users', 'list', '--name', 'bulk09999']);
    assert.match(table.stdout, /^USER\s+ADMIN\s+DEACTIVATED\s+GUEST\s+DISPLAY NAME\n@bulk09999:localhost\s+no\s+no\s+no\s+Bulk bulk09999\n$/);
  });
});

describe('rooms', () => {
  let roomId: string;
  let carol: MatrixSession;

  test('create, list, info', async () => {
    await ok(['users', 'create', 'carol', '--password-file', writePasswordFile('carol', 'password of carol')]);
    const created = json<{ room_id: string; alias: string }>(await ok(['rooms', 'create', 'Town square', '--topic', 'Everything local', '--alias', 'town', '--invite', 'carol', '--output', 'json']));
    roomId = created.room_id;
    assert.equal(created.alias, '#town:localhost');
    const listed = json<{ room_id: string; name: string }[]>(await ok(['rooms', 'list', '--output', 'json']));
    assert.equal(listed.find((r) => r.room_id === roomId)?.name, 'Town square');
    carol = { baseUrl: clientUrl, userId: '@carol:localhost', accessToken: (await ok(['users', 'login-token', 'carol'])).stdout.trim() };
    await matrixRequest(clientUrl, 'POST', `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, { accessToken: carol.accessToken, body: {} });
    const info = json<{ topic: string; members: string[]; canonical_alias: string }>(await ok(['rooms', 'info', roomId, '--output', 'json']));
    assert.equal(info.topic, 'Everything local');
    assert.deepEqual(info.members.sort(), ['@admin:localhost', '@carol:localhost']);
    await fails(['rooms', 'info', '!missing:localhost'], 1, /^error: room !missing:localhost not found\.$/m);
    await fails(['rooms', 'info', 'town'], 1, /^error: invalid room id "town"/m);
  });

  test('export then import reproduces name, topic and messages with their sender and time', async () => {
    const bodies = ['first message', 'second message', 'third, with ünïcødé'];
    for (const [i, body] of bodies.entries()) await sendText(carol, roomId, body, `ops-test-${i}`);
    const file = join(work, 'room.json');
    await ok(['rooms', 'export', roomId, '--output-file', file]);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const exported = JSON.parse(readFileSync(file, 'utf8')) as RoomExport;
    assert.deepEqual([exported.room.name, exported.room.topic], ['Town square', 'Everything local']);
    const original = exported.messages.filter((m) => m.type === 'm.room.message');
    assert.deepEqual(original.map((m) => m.content.body), bodies);

    const imported = await ok(['rooms', 'import', file]);
    const newRoom = /as (!\S+):/.exec(imported.stdout)?.[1];
    assert.ok(newRoom && newRoom !== roomId, imported.stdout);
    const again = join(work, 'room-again.json');
    await ok(['rooms', 'export', newRoom, '--output-file', again]);
    const copy = JSON.parse(readFileSync(again, 'utf8')) as RoomExport;
    assert.deepEqual([copy.room.name, copy.room.topic], ['Town square', 'Everything local']);
    const expected = original.map((m) => `[${new Date(m.origin_server_ts).toISOString()}] @carol:localhost: ${m.content.body as string}`);
    assert.deepEqual(copy.messages.filter((m) => m.type === 'm.room.message').map((m) => m.content.body), expected);
    await fails(['rooms', 'import', join(work, 'carol')], 1, /is not JSON: expected a file written by `mxstack rooms export`/);
  });

  test('delete --purge --block waits for the delete and reports it; the room is gone', async () => {
    await fails(['rooms', 'delete', roomId], 2, /refused without --yes/);
    const result = await ok(['rooms', 'delete', roomId, '--purge', '--block', '--yes']);
    assert.match(result.stdout, new RegExp(`^deleted ${roomId.replace(/[!.]/g, '\\$&')}: complete; 2 members removed, history purged, room blocked\\.$`, 'm'));
    const listed = json<{ room_id: string }[]>(await ok(['rooms', 'list', '--output', 'json']));
    assert.ok(!listed.some((r) => r.room_id === roomId));
    await assert.rejects(
      matrixRequest(clientUrl, 'POST', `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, { accessToken: carol.accessToken, body: {} }),
      (e: unknown) => e instanceof MatrixHttpError && e.status === 403,
    );
  });
});

describe('registration tokens', () => {
  test('create, list, delete', async () => {
    const created = json<{ token: string; uses_allowed: number; valid: boolean; expires: string }>(
      await ok(['registration-tokens', 'create', '--uses', '3', '--valid-for', '7d', '--output', 'json']),
    );
    assert.equal(created.uses_allowed, 3);
    assert.ok(Date.parse(created.expires) > Date.now() + 6 * 86_400_000);
    assert.equal((await ok(['registration-tokens', 'create', '--token', 'spring.party'])).stdout.trim(), 'spring.party');
    const listed = json<{ token: string; valid: boolean }[]>(await ok(['registration-tokens', 'list', '--output', 'json']));
    assert.deepEqual(listed.map((t) => t.token).sort(), [created.token, 'spring.party'].sort());
    await ok(['registration-tokens', 'delete', 'spring.party', '--yes']);
    await fails(['registration-tokens', 'delete', 'spring.party', '--yes'], 1, /^error: registration token spring\.party not found\.$/m);
    await fails(['registration-tokens', 'create', '--token', 'has space'], 1, /invalid registration token/);
    const left = json<{ token: string }[]>(await ok(['registration-tokens', 'list', '--output', 'json']));
    assert.deepEqual(left.map((t) => t.token), [created.token]);
  });
});
