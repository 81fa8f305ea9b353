/**
 * The operations with built-in 2FA: the admin session through the mxstack-cli application service, and
 * `users create | set-password | info | reset-2fa | unlock` through the auth service's admin API. Synapse and
 * the auth service are stand-ins on loopback (test/unit/ops-auth-fakes.ts): a unit test cannot run
 * PostgreSQL, Synapse and the real service; test/integration/ops-auth.test.ts runs the real ones.
 */
import { after, before, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AdminApiError } from '../../src/ops/admin-api.js';
import { adminTokenRef, withAdmin } from '../../src/ops/admin-session.js';
import { AuthAdminClient, AuthAdminError, withAuthAdmin } from '../../src/ops/auth-admin.js';
import { createUser, factorPhrases, resetSecondFactors, setPassword, unlockUser, userInfo } from '../../src/ops/users.js';
import { TargetUsageError } from '../../src/targets/target.js';
import { confirmByTyping, secondFactorLines } from '../../src/cli/ops.js';
import { FakeAuthService, FakeSynapse, FakeTarget, serverName, stackWith } from './ops-auth-fakes.js';

const asToken = 'as-token-not-a-real-secret';
const authToken = 'auth-admin-token-not-a-real-secret';
let synapse: FakeSynapse;
let auth: FakeAuthService;
let target: FakeTarget;

before(async () => {
  synapse = await new FakeSynapse(asToken).start();
  auth = await new FakeAuthService(authToken).start();
});
after(async () => {
  await synapse.stop();
  await auth.stop();
});

beforeEach(() => {
  target = new FakeTarget(stackWith({ auth: true }), synapse.url, auth.url);
  target.setSecret(target.stack.secrets.auth!.cliAppserviceToken, `${asToken}\n`);
  target.setSecret(target.stack.secrets.auth!.adminToken, authToken);
  synapse.requests.length = 0;
  auth.requests.length = 0;
  auth.healthy = true;
});

/** Both sessions, as the CLI opens them. */
const both = <T>(use: (admin: Parameters<Parameters<typeof withAdmin>[2]>[0], client: AuthAdminClient) => Promise<T>) =>
  withAdmin(target, {}, (admin) => withAuthAdmin(target, (client) => use(admin, client)));

test('with 2FA the admin logs in through the application service (as_token in the header only), and the token is cached', async () => {
  const loginsBefore = synapse.logins;
  const owner = await withAdmin(target, {}, async (admin) => admin.adminUserId);
  assert.equal(owner, `@admin:${serverName}`);
  const login = synapse.requests.find((r) => r.path === '/_matrix/client/v3/login')!;
  assert.equal(login.authorization, `Bearer ${asToken}`);
  const body = JSON.parse(login.body) as Record<string, unknown>;
  assert.deepEqual(body.identifier, { type: 'm.id.user', user: 'admin' });
  assert.equal(body.type, 'm.login.application_service');
  assert.equal(body.device_id, 'MXSTACKCLI');
  assert.doesNotMatch(login.body, new RegExp(asToken), 'the as_token is not in the body');
  assert.ok(!synapse.requests.some((r) => r.body.includes('m.login.password')), 'no password login attempted');
  assert.match((await target.readSecret(adminTokenRef(target)))!, /^syt_admin_/);
  await withAdmin(target, {}, async () => undefined);
  assert.equal(synapse.logins, loginsBefore + 1, 'the second command reuses the cached token');
});

test('a wrong as_token is one sentence that names neither token', async () => {
  target.setSecret(target.stack.secrets.auth!.cliAppserviceToken, 'wrong-token');
  await assert.rejects(withAdmin(target, {}, async () => undefined), (error: unknown) => {
    assert.ok(error instanceof AdminApiError);
    assert.match(error.message, /Synapse refused the stored token of the mxstack-cli application service \(M_UNKNOWN_TOKEN\)/);
    assert.doesNotMatch(error.message, /wrong-token/);
    return true;
  });
});

test('create: the Synapse user gets no password, the auth service gets it (and the admin flag)', async () => {
  await both((admin, client) => createUser(admin, { user: 'carol', password: 'carol password 1', admin: true, displayName: 'Carol' }, client));
  const created = synapse.users.get(`@carol:${serverName}`)!;
  assert.equal('password' in created.created, false, 'no password sent to Synapse');
  assert.equal(created.created.displayname, 'Carol');
  assert.equal(created.admin, true);
  assert.equal(auth.accounts.get('carol')?.password, 'carol password 1');
  assert.equal(auth.accounts.get('carol')?.isAdmin, true);
  const generated = await both((admin, client) => createUser(admin, { user: 'dave' }, client));
  assert.ok(generated.generatedPassword && generated.generatedPassword.length >= 20);
  assert.equal(auth.accounts.get('dave')?.password, generated.generatedPassword);
});

test('reset-2fa and unlock of a user who never signed in at the auth service: nothing to remove, nothing asked', async () => {
  synapse.users.set(`@hank:${serverName}`, { admin: false, deactivated: false, created: {}, devices: [] });
  auth.synapseOnly.add('hank');
  const reset = await both((admin, client) => resetSecondFactors(admin, client, 'hank'));
  assert.deepEqual(reset.removed, []);
  assert.equal(reset.after.mustEnrol, false);
  assert.equal((await both((admin, client) => unlockUser(admin, client, 'hank'))).wasLockedUntil, undefined);
  assert.ok(!auth.requests.some((r) => r.method === 'POST'), 'no reset or unlock call for an account that does not exist');
  const info = await both((admin, client) => userInfo(admin, 'hank', client));
  assert.equal(info.second_factors?.password, 'none');
});

test('create with a password the auth service would refuse (under 8 characters) is refused before anything is created', async () => {
  await assert.rejects(both((admin, client) => createUser(admin, { user: 'ivan', password: 'short' }, client)), /too short: .* at least 8 characters; nothing was created/);
  assert.equal(synapse.users.has(`@ivan:${serverName}`), false);
});

test('create with the auth service unhealthy is refused before Synapse is asked', async () => {
  auth.healthy = false;
  await assert.rejects(
    both((admin, client) => createUser(admin, { user: 'erin', password: 'x'.repeat(12) }, client)),
    /the auth service is not healthy \(HTTP 503\): nothing was created/,
  );
  assert.equal(synapse.users.has(`@erin:${serverName}`), false);
});

test('set-password goes to the auth service (Synapse refuses password changes) and logs the devices out', async () => {
  synapse.users.set(`@frank:${serverName}`, { admin: false, deactivated: false, created: {}, devices: ['A', 'B', 'C'] });
  const result = await both((admin, client) => setPassword(admin, 'frank', 'frank new password', client));
  assert.deepEqual([result.at, result.loggedOutDevices], ['auth service', 3]);
  assert.equal(auth.accounts.get('frank')?.password, 'frank new password');
  assert.equal(auth.accounts.get('frank')?.isAdmin, false);
  assert.deepEqual(synapse.users.get(`@frank:${serverName}`)!.devices, []);
  assert.ok(!synapse.requests.some((r) => r.path.includes('reset_password')));
  await assert.rejects(both((admin, client) => setPassword(admin, 'nobody', 'pw', client)), /user @nobody:example.org not found/);
  assert.equal(auth.accounts.has('nobody'), false, 'no orphan account at the auth service');
});

test('info: the second factors (names and dates, never secrets); reset-2fa removes them and says what; unlock', async () => {
  synapse.users.set(`@gina:${serverName}`, { admin: true, deactivated: false, created: {}, devices: [] });
  auth.accounts.set('gina', {
    password: 'secret-password',
    isAdmin: true,
    mustEnrol: false,
    totpEnrolledAt: '2026-11-01T10:00:00.000Z',
    webauthn: [
      { name: 'YubiKey 5', createdAt: '2026-11-02T10:00:00.000Z', lastUsedAt: '2026-11-20T08:00:00.000Z' },
      { name: 'Laptop', createdAt: '2026-11-03T10:00:00.000Z' },
    ],
    recoveryCodesLeft: 7,
    lockedUntil: '2026-11-27T23:00:00.000Z',
  });
  const info = await both((admin, client) => userInfo(admin, 'gina', client));
  assert.deepEqual(info.second_factors, {
    password: 'argon2id',
    authenticator_app: { enrolled: true, enrolled_at: '2026-11-01T10:00:00.000Z' },
    security_keys: [
      { name: 'YubiKey 5', created: '2026-11-02T10:00:00.000Z', last_used: '2026-11-20T08:00:00.000Z' },
      { name: 'Laptop', created: '2026-11-03T10:00:00.000Z', last_used: null },
    ],
    recovery_codes_left: 7,
    must_enrol: false,
    locked_until: '2026-11-27T23:00:00.000Z',
  });
  assert.doesNotMatch(JSON.stringify(info), /secret-password/);
  const lines = secondFactorLines(info.second_factors!).join('\n');
  assert.match(lines, /authenticator app: yes \(enrolled 2026-11-01T10:00:00.000Z\)/);
  assert.match(lines, /security keys: {5}2\n {4}YubiKey 5: added 2026-11-02T10:00:00.000Z, last used 2026-11-20T08:00:00.000Z\n {4}Laptop: added .*, last used never/);
  assert.match(lines, /recovery codes: {4}7 left/);
  assert.match(lines, /locked until: {6}2026-11-27T23:00:00.000Z/);

  const reset = await both((admin, client) => resetSecondFactors(admin, client, '@gina:example.org'));
  assert.deepEqual(reset.removed, [
    'authenticator app (enrolled 2026-11-01)',
    'security key "YubiKey 5" (added 2026-11-02, last used 2026-11-20)',
    'security key "Laptop" (added 2026-11-03, never used)',
    '7 unused recovery codes',
  ]);
  assert.equal(reset.after.mustEnrol, true, 'an admin must enrol again (the stand-in\'s policy requires it of admins)');
  assert.deepEqual(factorPhrases(reset.after), []);

  const unlocked = await both((admin, client) => unlockUser(admin, client, 'gina'));
  assert.equal(unlocked.wasLockedUntil, '2026-11-27T23:00:00.000Z');
  assert.equal(auth.accounts.get('gina')?.lockedUntil, undefined);
  assert.equal((await both((admin, client) => unlockUser(admin, client, 'gina'))).wasLockedUntil, undefined);
});

test('the auth admin API\'s failures are one sentence each, without the token', async () => {
  const wrong = new AuthAdminClient(auth.url, 'not-the-token');
  await assert.rejects(wrong.account('gina'), (error: unknown) => {
    assert.ok(error instanceof AuthAdminError);
    assert.match(error.message, /the auth service refused the admin token/);
    assert.doesNotMatch(error.message, /not-the-token/);
    return true;
  });
  const client = new AuthAdminClient(auth.url, authToken);
  await assert.rejects(client.account('nobody'), /user nobody not found at the auth service\./);
  await assert.rejects(client.setPassword('x', 'short'), /answered PUT \/admin\/v1\/accounts\/x\/password with HTTP 400: password must be a string of at least 8 characters \(user x\)\./);
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  const closed = new AuthAdminClient(`http://127.0.0.1:${port}/`, authToken);
  await assert.rejects(closed.health(), (error: unknown) => {
    assert.equal((error as Error).message, `cannot reach the auth service's admin API at http://127.0.0.1:${port}/ (ECONNREFUSED): is the auth component running?`);
    return true;
  });
});

test('without 2FA: the auth client is refused with the sentence that 2FA is off; create keeps its Synapse password', async () => {
  const plain = new FakeTarget(stackWith({ auth: false }), synapse.url, auth.url);
  await assert.rejects(withAuthAdmin(plain, async () => undefined), (error: unknown) => {
    assert.ok(error instanceof TargetUsageError);
    assert.match(error.message, /^two-factor authentication is off on the fake stack/);
    return true;
  });
  // The admin session of a 2FA-off stack logs in with the password (which this stand-in Synapse refuses).
  plain.setSecret(plain.stack.secrets.adminPassword, 'admin password');
  await assert.rejects(withAdmin(plain, {}, async () => undefined), /admin login as admin failed: HTTP 400 M_UNKNOWN/);
});

test('reset-2fa confirmation: no terminal and no --yes is refused with a sentence; --yes passes', async () => {
  assert.ok(!process.stdin.isTTY, 'the test runs without a terminal');
  await assert.rejects(confirmByTyping('remove every second factor of @gina:example.org', '@gina:example.org', undefined), (error: unknown) => {
    assert.equal((error as Error).constructor.name, 'UsageError');
    assert.equal(
      (error as Error).message,
      'refusing to remove every second factor of @gina:example.org without confirmation: there is no terminal to type @gina:example.org at; pass --yes to confirm from a script.',
    );
    return true;
  });
  await confirmByTyping('x', '@gina:example.org', true);
});

/** Runs confirmByTyping in a child on a pseudo-terminal (util-linux `script`), typing `answer` once the prompt shows. */
function typeAtPrompt(answer: string): Promise<string> {
  const code = `import('./src/cli/ops.ts').then(({ confirmByTyping }) => confirmByTyping('reset it', '@gina:example.org', undefined)).then(() => console.log('CONFIRMED'), (e) => console.log('REFUSED ' + e.message))`;
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qec', `${process.execPath} --import tsx -e "${code}"`, '/dev/null'], { cwd: new URL('../../', import.meta.url), stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    let typed = false;
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (!typed && output.includes('to confirm:')) {
        typed = true;
        child.stdin.write(`${answer}\r`);
      }
    });
    child.on('error', reject);
    child.on('close', () => {
      clearTimeout(timer);
      child.stdin.destroy();
      resolve(output);
    });
  });
}

const hasScript = spawnSync('script', ['--version'], { encoding: 'utf8' }).status === 0;

test('reset-2fa confirmation on a terminal: the prompt asks for the user id; only the exact id confirms', { skip: hasScript ? false : 'util-linux script is not installed' }, async () => {
  const confirmed = await typeAtPrompt('@gina:example.org');
  assert.match(confirmed, /This will reset it\. Type the user id \(@gina:example\.org\) to confirm:/);
  assert.match(confirmed, /CONFIRMED/);
  const refused = await typeAtPrompt('y');
  assert.match(refused, /REFUSED not confirmed \(typed "y", expected @gina:example\.org\): nothing was changed\./);
});
