/**
 * The local target with 2FA on (`synapse.server.mfa.totp.enabled: true`), with the real programs: the auth
 * service runs on this machine as its own user beside the runtime's PostgreSQL, Synapse and router, answers
 * OpenID Connect discovery through the router, Synapse offers only its SSO login, the secret files have the
 * right owners and modes, and `down` leaves no auth process behind. One stack start.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { authSecretFiles } from '../../src/components/auth/service-config.js';
import { synapseSecretFiles } from '../../src/stack/model.js';
import { localAuthUser } from '../../src/components/auth/local.js';
import { processIsAlive, runtimeDir, runtimeUser } from '../../src/targets/local/runtime.js';
import { stateLayout } from '../../src/targets/local/state.js';
import { LocalTarget } from '../../src/targets/local/target-adapter.js';
import { stackInput } from '../../src/stack/entry.js';
import { runCliAsync, startLocalStack, type LocalStackHandle } from '../support/local-stack.js';

const minutes = (n: number) => n * 60_000;
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

async function fetchJson(url: string, init: RequestInit = {}): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(url, { ...init, signal: AbortSignal.timeout(30_000) });
  const text = await response.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = { text };
  }
  return { status: response.status, body };
}

const postJson = (url: string, body: unknown) =>
  fetchJson(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

/** Every process whose real uid is `uid`, with its command line. */
function processesOf(uid: number): { pid: number; cmdline: string[] }[] {
  const found: { pid: number; cmdline: string[] }[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const uidLine = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${name}/status`, 'utf8'));
      if (Number(uidLine?.[1]) !== uid) continue;
      found.push({ pid: Number(name), cmdline: readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').filter(Boolean) });
    } catch {
      // The process just exited.
    }
  }
  return found;
}

/** The process group of a process (field 5 of /proc/<pid>/stat, after the parenthesised command). */
function processGroup(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
  } catch {
    return undefined;
  }
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('a local stack with 2FA on (the auth component)', { timeout: minutes(20), skip: isRoot ? false : 'the local target needs root' }, () => {
  let stack: LocalStackHandle;
  let layout: ReturnType<typeof stateLayout>;

  before(async () => {
    stack = await startLocalStack({ sets: ['synapse.server.mfa.totp.enabled=true'] });
    layout = stateLayout(stack.stateDir);
  });
  after(async () => {
    await stack?.dispose();
  });

  /** The values of every secret file of the stack: none may appear in a command line, environment or public file. */
  const storedSecrets = () => {
    const values: string[] = [];
    for (const name of readdirSync(layout.secretsDir)) {
      for (const key of readdirSync(join(layout.secretsDir, name))) {
        const value = readFileSync(join(layout.secretsDir, name, key), 'utf8').trim();
        // Short values (the admin's username) are not secret.
        if (value.length >= 16) values.push(value);
      }
    }
    return values;
  };

  test('status --output json reports auth healthy on its ports, with the sign-in and admin endpoints', () => {
    const { status } = stack;
    assert.equal(status.healthy, true, JSON.stringify(status.components));
    assert.deepEqual(Object.keys(status.components), ['postgresql', 'auth', 'synapse', 'coturn', 'router']);
    const auth = status.components.auth!;
    assert.equal(auth.state, 'running');
    assert.equal(auth.healthy, true);
    assert.ok(Number.isInteger(auth.pid));
    assert.equal(auth.version, '0.1.0');
    assert.equal(auth.logFile, layout.logFile('auth'));
    assert.deepEqual(Object.keys(auth.ports).sort(), ['admin', 'http']);
    assert.equal(status.endpoints!.auth, `${status.endpoints!.client}auth/`);
    assert.equal(status.endpoints!.authAdmin, `http://127.0.0.1:${auth.ports.admin}/`);
  });

  test('the supervisor started auth after PostgreSQL was ready and before Synapse', () => {
    const lines = readFileSync(layout.logFile('supervisor'), 'utf8').split('\n');
    const at = (pattern: RegExp) => lines.findIndex((line) => pattern.test(line));
    const postgresHealthy = at(/ postgresql: healthy$/);
    const authStarted = at(/ auth: started /);
    const authHealthy = at(/ auth: healthy$/);
    const synapseStarted = at(/ synapse: started /);
    assert.ok(postgresHealthy >= 0 && authStarted > postgresHealthy, 'auth starts once PostgreSQL is healthy');
    assert.ok(authHealthy > authStarted && synapseStarted > authHealthy, 'Synapse starts once auth is healthy');
  });

  test('the auth process runs on this machine as uid/gid 70000 only, with paths (never secrets) in its argv and environment', () => {
    const pid = stack.status.components.auth!.pid!;
    const procStatus = readFileSync(`/proc/${pid}/status`, 'utf8');
    assert.match(procStatus, new RegExp(`^Uid:\\s+${localAuthUser.uid}\\s+${localAuthUser.uid}\\s+${localAuthUser.uid}\\s+${localAuthUser.uid}$`, 'm'));
    assert.match(procStatus, new RegExp(`^Gid:\\s+${localAuthUser.gid}\\s+${localAuthUser.gid}\\s+${localAuthUser.gid}\\s+${localAuthUser.gid}$`, 'm'));
    assert.match(procStatus, /^Groups:\s*$/m);
    assert.match(procStatus, /^NoNewPrivs:\s+1$/m);
    assert.match(procStatus, /^CapEff:\s+0+$/m);
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    assert.deepEqual(argv.slice(2), ['--config', join(layout.authConfigDir, 'config.json'), '--secrets-dir', layout.authSecretsDir]);
    assert.ok(argv[1]!.endsWith('/bin/mxstack-auth.js'));
    // Not in the runtime: its root is this machine's.
    assert.equal(statSync(`/proc/${pid}/root/usr/bin/node`).ino, statSync('/usr/bin/node').ino);
    const environment = readFileSync(`/proc/${pid}/environ`, 'utf8');
    assert.ok(environment.split('\0').includes(`TMPDIR=${layout.authTmpDir}`));
    // The service runs the compiled dist/ (bin/launch.js); when it falls back to its sources, tsx compiles them
    // into the service's own TMPDIR, not into a /tmp directory someone could make first.
    const tsxCache = join(layout.authTmpDir, `tsx-${localAuthUser.uid}`);
    if (existsSync(tsxCache)) assert.equal(statSync(tsxCache).uid, localAuthUser.uid);
    const secrets = storedSecrets();
    assert.ok(secrets.length >= 10, `found ${secrets.length} stored secrets`);
    for (const secret of secrets) {
      assert.ok(!argv.join(' ').includes(secret), 'no secret in the command line');
      assert.ok(!environment.includes(secret), 'no secret in the environment');
    }
    const config = readFileSync(join(layout.authConfigDir, 'config.json'), 'utf8');
    for (const secret of secrets) assert.ok(!config.includes(secret), 'no secret in config.json');
  });

  test('OpenID Connect discovery answers through the router with the issuer; health on both listeners', async () => {
    const { endpoints } = stack.status;
    const discovery = await fetchJson(`${endpoints!.auth}.well-known/openid-configuration`);
    assert.equal(discovery.status, 200, JSON.stringify(discovery.body));
    const issuer = `${endpoints!.client}auth`;
    assert.equal(discovery.body.issuer, issuer);
    assert.equal(discovery.body.authorization_endpoint, `${issuer}/authorize`);
    assert.equal((await fetch(`http://127.0.0.1:${stack.status.components.auth!.ports.http}/health`)).status, 200);
    assert.equal((await fetch(`${endpoints!.authAdmin}health`)).status, 200);
  });

  test('Synapse offers only SSO through oidc-mxstack (and tokens), and refuses m.login.password', async () => {
    const client = stack.status.endpoints!.client;
    const flows = await fetchJson(`${client}_matrix/client/v3/login`);
    assert.equal(flows.status, 200);
    const list = flows.body.flows as { type: string; identity_providers?: { id: string }[] }[];
    const types = list.map((flow) => flow.type);
    assert.ok(types.includes('m.login.sso'), JSON.stringify(types));
    assert.ok(!types.includes('m.login.password'), JSON.stringify(types));
    for (const type of types) assert.ok(['m.login.sso', 'm.login.token', 'm.login.application_service'].includes(type), `unexpected login type ${type}`);
    const sso = list.find((flow) => flow.type === 'm.login.sso')!;
    assert.deepEqual(sso.identity_providers?.map((idp) => idp.id), ['oidc-mxstack']);

    const admin = stack.adminCredentials();
    const password = await postJson(`${client}_matrix/client/v3/login`, { type: 'm.login.password', identifier: { type: 'm.id.user', user: admin.user_id }, password: admin.password });
    assert.notEqual(password.status, 200, 'the right password alone does not log in');
    assert.equal(password.body.access_token, undefined);
  });

  test('the CLI\'s application service logs in as the admin with its as_token', async () => {
    const registration = parseYaml(readFileSync(join(layout.synapseSecretsDir, synapseSecretFiles.cliAppserviceRegistration), 'utf8')) as { as_token: string };
    const admin = stack.adminCredentials();
    const login = await fetchJson(`${stack.status.endpoints!.client}_matrix/client/v3/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${registration.as_token}` },
      body: JSON.stringify({ type: 'm.login.application_service', identifier: { type: 'm.id.user', user: admin.user_id } }),
    });
    assert.equal(login.status, 200, JSON.stringify(login.body));
    assert.equal(login.body.user_id, admin.user_id);
  });

  test('secret files: the auth service\'s owned by uid 70000 (0600 in 0700), Synapse\'s copies owned by matrix-synapse', () => {
    const dir = statSync(layout.authSecretsDir);
    assert.deepEqual([dir.uid, dir.gid, dir.mode & 0o777], [localAuthUser.uid, localAuthUser.gid, 0o700]);
    assert.deepEqual(readdirSync(layout.authSecretsDir).sort(), Object.values(authSecretFiles).sort());
    for (const name of Object.values(authSecretFiles)) {
      const file = statSync(join(layout.authSecretsDir, name));
      assert.deepEqual([file.uid, file.gid, file.mode & 0o777], [localAuthUser.uid, localAuthUser.gid, 0o600], name);
    }
    const config = statSync(join(layout.authConfigDir, 'config.json'));
    assert.deepEqual([config.uid, config.mode & 0o777], [0, 0o644]);
    const recordedValues = statSync(layout.valuesFile);
    assert.deepEqual([recordedValues.uid, recordedValues.mode & 0o777], [0, 0o600], 'the values up recorded may hold secrets');
    assert.notEqual(new LocalTarget({ stateDir: stack.stateDir }).stack.auth, undefined, 'operations without values see 2FA on');
    const synapse = runtimeUser(runtimeDir(), 'matrix-synapse');
    for (const name of [synapseSecretFiles.oidcClientSecret('mxstack'), synapseSecretFiles.cliAppserviceRegistration]) {
      const file = statSync(join(layout.synapseSecretsDir, name));
      assert.deepEqual([file.uid, file.mode & 0o777], [synapse.uid, 0o600], name);
    }
    assert.equal(
      readFileSync(join(layout.synapseSecretsDir, synapseSecretFiles.oidcClientSecret('mxstack')), 'utf8'),
      readFileSync(join(layout.authSecretsDir, authSecretFiles.clientSecret), 'utf8'),
      'Synapse and the auth service share the client secret',
    );
  });

  test('the auth database exists, owned by the stack\'s role (created by the supervisor, not by the service)', async () => {
    const target = new LocalTarget({ stateDir: stack.stateDir, input: stackInput({ raw: { synapse: { server: { mfa: { totp: { enabled: true } } } } } }) });
    const result = await target.exec('postgresql', [...target.postgresqlTool('psql'), '-X', '-tA', '-d', 'postgres', '-c', "SELECT datname || ' ' || pg_get_userbyid(datdba) FROM pg_database WHERE datname LIKE 'synapse%' ORDER BY 1"]);
    assert.equal(result.exitCode, 0, result.stderr);
    assert.deepEqual(result.stdout.trim().split('\n'), [`synapse ${target.stack.database.user}`, `synapse_auth ${target.stack.database.user}`]);
  });

  test('logs auth prints the service\'s log', async () => {
    const result = await runCliAsync(['logs', 'auth', '--state-dir', stack.stateDir], { timeoutMs: 60_000 });
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stdout, readFileSync(layout.logFile('auth'), 'utf8'));
  });

  test('a crashed auth process is restarted by the supervisor and counted in status', async () => {
    const before = (await stack.readStatus()).components.auth!;
    process.kill(before.pid!, 'SIGKILL');
    const restarted = await waitFor('auth to come back healthy', async () => {
      const now = (await stack.readStatus()).components.auth!;
      return now.pid !== before.pid && now.state === 'running' && now.healthy ? now : undefined;
    }, minutes(3));
    assert.equal(restarted.restarts, before.restarts + 1);
    assert.match(readFileSync(layout.logFile('supervisor'), 'utf8'), /auth: exited unexpectedly \(SIGKILL\)/);
  });

  test('applySecrets rewrites the auth files (owner, mode) and restarts the service', async () => {
    const target = new LocalTarget({ stateDir: stack.stateDir, input: stackInput({ raw: { synapse: { server: { mfa: { totp: { enabled: true } } } } } }) });
    const adminToken = join(layout.authSecretsDir, authSecretFiles.adminToken);
    const expected = readFileSync(adminToken, 'utf8');
    rmSync(adminToken);
    rmSync(join(layout.synapseSecretsDir, synapseSecretFiles.cliAppserviceRegistration));
    const before = (await stack.readStatus()).components.auth!.pid;
    await target.applySecrets(['auth']);
    const file = statSync(adminToken);
    assert.deepEqual([file.uid, file.mode & 0o777], [localAuthUser.uid, 0o600]);
    assert.equal(readFileSync(adminToken, 'utf8'), expected, 'the stored secret, not a new one');
    assert.ok(statSync(join(layout.synapseSecretsDir, synapseSecretFiles.cliAppserviceRegistration)).isFile());
    const after = (await stack.readStatus()).components.auth!;
    assert.notEqual(after.pid, before);
    assert.equal(after.healthy, true);
  });

  test('down stops the auth process: no process of uid 70000 is left in the supervisor\'s process group', async () => {
    const pid = (await stack.readStatus()).components.auth!.pid!;
    const group = processGroup(pid);
    const ours = () => processesOf(localAuthUser.uid).filter((p) => p.cmdline.includes(layout.authSecretsDir) || (group !== undefined && processGroup(p.pid) === group));
    assert.ok(ours().some((p) => p.pid === pid));
    await stack.down();
    assert.equal(processIsAlive(pid), false);
    assert.deepEqual(ours(), []);
    const stopped = await stack.readStatus();
    assert.equal(stopped.running, false);
    assert.equal(stopped.components.auth?.state, 'stopped');
  });
});
