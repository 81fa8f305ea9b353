/**
 * The auth component on the local target, without starting it: the plan (a host process as its own uid,
 * after PostgreSQL and before Synapse, no secret in its argv), the files it reads (owners, modes, no secret in
 * config.json), the checks `up` makes before anything starts, and the setpriv call the supervisor makes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { compileStack } from '../../src/stack/compile.js';
import { synapseSecretFiles } from '../../src/stack/model.js';
import { loadValues } from '../../src/values/load.js';
import { authSecretFiles } from '../../src/components/auth/service-config.js';
import {
  authAccessProblem,
  authEntry,
  authIdOwners,
  entriesWithId,
  localAuthUser,
  permits,
  unreachablePath,
  type LocalAuthSecretValues,
} from '../../src/targets/local/auth.js';
import { writeStackFiles } from '../../src/targets/local/files.js';
import { hostEnvironment, hostProcessArguments } from '../../src/targets/local/health.js';
import { localPlacement, resolveLocalPorts, type LocalPorts } from '../../src/targets/local/placement.js';
import { buildSupervisorPlan } from '../../src/targets/local/plan.js';
import type { LocalSecretValues } from '../../src/targets/local/secrets.js';
import { stateLayout } from '../../src/targets/local/state.js';
import { LocalTarget } from '../../src/targets/local/target-adapter.js';
import { TargetUsageError } from '../../src/ops/target.js';

const users = {
  nobody: { uid: 65534, gid: 65534, home: '/nonexistent' },
  postgres: { uid: 103, gid: 103, home: '/var/lib/postgresql' },
  synapse: { uid: 100, gid: 65534, home: '/var/lib/matrix-synapse' },
  turnserver: { uid: 995, gid: 995, home: '/' },
  haproxy: { uid: 102, gid: 102, home: '/var/lib/haproxy' },
  redis: { uid: 103, gid: 103, home: '/var/lib/redis' },
};

function fixedPorts(): LocalPorts {
  let next = 20000;
  return resolveLocalPorts({}, undefined, { single: () => next++, range: (length) => [40000, 40000 + length - 1] });
}

const mfaOn = ['synapse.server.name=chat.example', 'synapse.server.mfa.totp.enabled=true'];

function stackFor(stateDir: string, sets: string[]) {
  const layout = stateLayout(stateDir);
  return { layout, stack: compileStack(loadValues({ sets }), localPlacement(layout, fixedPorts())) };
}

function planFor(sets: string[]) {
  const { layout, stack } = stackFor('/srv/stacks/a', sets);
  const plan = buildSupervisorPlan({
    stack,
    layout,
    rootfs: '/cache/runtime',
    postgresqlBinDir: '/usr/lib/postgresql/18/bin',
    users,
    versions: {},
    postgresPasswordFile: '/srv/stacks/a/secrets/mxstack-postgresql/postgres-password',
    hostProgram: { node: '/usr/bin/node', entry: '/opt/mxstack/bin/mxstack-auth.js' },
  });
  return { stack, plan };
}

/** Distinct, recognisable values: a leak of any of them into a public file or an argv is found by search. */
const secrets: LocalSecretValues = {
  postgresPassword: 'PGPASSWORDvalue0123456789abcdefXY',
  adminUsername: 'admin',
  adminPassword: 'ADMINPASSWORDvalue0123456789abcd',
  registrationSharedSecret: 'REGISTRATIONsecret0123456789abcdef',
  macaroonSecretKey: 'MACAROONsecret0123456789abcdefghij',
  formSecret: 'FORMsecret0123456789abcdefghijklmn',
  turnSharedSecret: 'TURNsecret0123456789abcdefghijklmn',
  signingKey: 'ed25519 a_abcd SIGNINGseed0123456789abcdefghijklmnopq\n',
  oidcClientSecrets: {},
  auth: {
    clientSecret: 'CLIENTsecret0123456789abcdefghijk',
    sealingKeyring: 'k1:SEALINGkey0123456789abcdefghijklmnopqrstu=',
    recoveryCodeKey: 'RECOVERYkey0123456789abcdefghijklmnopqrst=',
    cookieKeys: 'COOKIEkey0123456789abcdefghijklmnopqrstuv',
    signingJwks: '{"keys":[{"kty":"RSA","d":"JWKSprivate0123456789"}]}',
    adminToken: 'ADMINtoken0123456789abcdefghijklmnop',
    cliAppserviceToken: 'ASTOKEN0123456789abcdefghijklmnopqr',
    cliAppserviceHsToken: 'HSTOKEN0123456789abcdefghijklmnopqr',
  },
};
const authSecretValues = Object.values(secrets.auth as LocalAuthSecretValues);
const everySecret = [
  secrets.postgresPassword, secrets.adminPassword, secrets.registrationSharedSecret, secrets.macaroonSecretKey,
  secrets.formSecret, secrets.turnSharedSecret, 'SIGNINGseed', ...authSecretValues, 'JWKSprivate',
];

test('with 2FA on, auth runs on the host after PostgreSQL and before Synapse, as its own unprivileged user, health on /health', () => {
  const { stack, plan } = planFor(mfaOn);
  assert.deepEqual(plan.components.map((c) => c.name), ['postgresql', 'auth', 'synapse', 'coturn', 'router']);
  const auth = plan.components.find((c) => c.name === 'auth')!;
  assert.equal(auth.runsIn, 'host');
  assert.ok(plan.components.filter((c) => c.name !== 'auth').every((c) => c.runsIn === 'runtime'));
  assert.deepEqual(auth.argv, [
    '/usr/bin/node',
    '/opt/mxstack/bin/mxstack-auth.js',
    '--config',
    '/srv/stacks/a/auth/config/config.json',
    '--secrets-dir',
    '/srv/stacks/a/auth/secrets',
  ]);
  assert.deepEqual(auth.user, localAuthUser);
  assert.deepEqual(auth.environment, { TMPDIR: '/srv/stacks/a/auth/tmp' }, 'its own TMPDIR: tsx keeps compiled code there');
  assert.notEqual(auth.user.uid, 0);
  assert.notEqual(auth.user.gid, 0);
  for (const other of Object.values(users)) {
    assert.notEqual(auth.user.uid, other.uid);
    assert.notEqual(auth.user.gid, other.gid);
  }
  assert.deepEqual(auth.health, { kind: 'http', url: `http://127.0.0.1:${stack.placement.ports.auth}/health` });
  assert.deepEqual(auth.ports, { http: stack.placement.ports.auth, admin: stack.placement.ports.authAdmin });
  assert.equal(auth.stopSignal, 'SIGTERM');
  assert.equal(plan.versions['mxstack-auth'], '0.1.0');
});

test('the default argv starts this installation\'s bin/mxstack-auth.js with this process\'s Node', () => {
  const { layout, stack } = stackFor('/srv/stacks/b', mfaOn);
  const plan = buildSupervisorPlan({ stack, layout, rootfs: '/r', postgresqlBinDir: '/usr/lib/postgresql/18/bin', users, versions: {}, postgresPasswordFile: '/p' });
  const auth = plan.components.find((c) => c.name === 'auth')!;
  assert.equal(auth.argv[0], process.execPath);
  assert.equal(auth.argv[1], authEntry);
  assert.ok(authEntry.endsWith('/bin/mxstack-auth.js'));
});

test('with 2FA on, the supervisor creates the auth database <db>_auth; endpoints name the sign-in base and the admin API', () => {
  const { stack, plan } = planFor(mfaOn);
  assert.equal(plan.postgresql?.database, 'synapse');
  assert.equal(plan.postgresql?.authDatabase, 'synapse_auth');
  const { ports } = stack.placement;
  assert.equal(plan.endpoints.auth, `http://127.0.0.1:${ports.router}/auth/`);
  assert.equal(plan.endpoints.authAdmin, `http://127.0.0.1:${ports.authAdmin}/`);
  assert.equal(`${plan.endpoints.auth!.replace(/\/$/, '')}`, stack.auth!.issuer, 'the sign-in base is the issuer');
});

test('without 2FA: no auth component, no auth database, no auth endpoints', () => {
  const { plan } = planFor(['synapse.server.name=chat.example']);
  assert.deepEqual(plan.components.map((c) => c.name), ['postgresql', 'synapse', 'coturn', 'router']);
  assert.equal(plan.postgresql?.authDatabase, undefined);
  assert.equal(plan.endpoints.auth, undefined);
  assert.equal(plan.endpoints.authAdmin, undefined);
  assert.equal(plan.versions['mxstack-auth'], undefined);
});

test('the plan (written to plan.json) names secret files, never a secret', () => {
  const { plan } = planFor(mfaOn);
  const text = JSON.stringify(plan);
  for (const secret of everySecret) assert.ok(!text.includes(secret));
  const auth = plan.components.find((c) => c.name === 'auth')!;
  assert.ok(auth.argv.every((arg) => !/password|secret=|token=/i.test(arg)));
});

test('setpriv switches to the auth user (own group only, no new privileges) and sets the parent-death signal after it', () => {
  const args = hostProcessArguments(localAuthUser, 'SIGTERM', ['/usr/bin/node', '/x/bin/mxstack-auth.js']);
  assert.deepEqual(args, ['--reuid=70000', '--regid=70000', '--clear-groups', '--no-new-privs', '--pdeathsig', 'SIGTERM', '--', '/usr/bin/node', '/x/bin/mxstack-auth.js']);
  const env = hostEnvironment(localAuthUser, { TMPDIR: '/s/auth/tmp' });
  assert.deepEqual(Object.keys(env).sort(), ['HOME', 'LANG', 'LC_ALL', 'NODE_ENV', 'PATH', 'TMPDIR']);
  assert.equal(env.HOME, '/nonexistent');
  assert.equal(env.TMPDIR, '/s/auth/tmp');
});

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

test('files: config.json public and without secrets; auth secrets 0600 owned by the auth user in a 0700 directory; Synapse gets its client secret and the CLI appservice', { skip: isRoot ? false : 'needs root (chown)' }, () => {
  const parent = mkdtempSync(join(tmpdir(), 'mxstack-local-auth-'));
  try {
    const { layout, stack } = stackFor(join(parent, 'state'), mfaOn);
    writeStackFiles(stack, secrets, layout, users);

    const configFile = join(layout.authConfigDir, 'config.json');
    const configText = readFileSync(configFile, 'utf8');
    assert.equal(statSync(configFile).mode & 0o777, 0o644);
    assert.equal(statSync(configFile).uid, 0);
    for (const secret of everySecret) assert.ok(!configText.includes(secret), 'config.json holds no secret');
    const config = JSON.parse(configText) as { issuer: string; database: { database: string; port: number }; listen: { port: number } };
    assert.equal(config.issuer, stack.auth!.issuer);
    assert.equal(config.database.database, 'synapse_auth');
    assert.equal(config.database.port, stack.placement.ports.postgresql);
    assert.equal(config.listen.port, stack.placement.ports.auth);

    for (const dir of [layout.authSecretsDir, layout.authTmpDir]) {
      const stats = statSync(dir);
      assert.equal(stats.mode & 0o777, 0o700, dir);
      assert.deepEqual([stats.uid, stats.gid], [localAuthUser.uid, localAuthUser.gid], dir);
    }
    assert.deepEqual(readdirSync(layout.authSecretsDir).sort(), Object.values(authSecretFiles).sort());
    for (const name of readdirSync(layout.authSecretsDir)) {
      const stats = statSync(join(layout.authSecretsDir, name));
      assert.equal(stats.mode & 0o777, 0o600, name);
      assert.deepEqual([stats.uid, stats.gid], [localAuthUser.uid, localAuthUser.gid], name);
    }
    const read = (name: string) => readFileSync(join(layout.authSecretsDir, name), 'utf8');
    assert.equal(read(authSecretFiles.databasePassword), secrets.postgresPassword, 'the auth service logs in as the stack\'s role');
    assert.equal(read(authSecretFiles.clientSecret), secrets.auth!.clientSecret);
    assert.equal(read(authSecretFiles.signingJwks), secrets.auth!.signingJwks);
    assert.equal(read(authSecretFiles.adminToken), secrets.auth!.adminToken);

    const synapseSecret = (name: string) => {
      const path = join(layout.synapseSecretsDir, name);
      const stats = statSync(path);
      assert.equal(stats.mode & 0o777, 0o600, name);
      assert.deepEqual([stats.uid, stats.gid], [users.synapse.uid, users.synapse.gid], name);
      return readFileSync(path, 'utf8');
    };
    assert.equal(synapseSecret(synapseSecretFiles.oidcClientSecret('mxstack')), secrets.auth!.clientSecret);
    const registration = parseYaml(synapseSecret(synapseSecretFiles.cliAppserviceRegistration)) as { id: string; as_token: string; hs_token: string; namespaces: { users: { regex: string }[] } };
    assert.equal(registration.id, 'mxstack-cli');
    assert.equal(registration.as_token, secrets.auth!.cliAppserviceToken);
    assert.equal(registration.hs_token, secrets.auth!.cliAppserviceHsToken);
    assert.match('@admin:chat.example', new RegExp(registration.namespaces.users[0]!.regex));

    // Nothing of the auth component's is readable by the runtime's users: Synapse reads only its own copies.
    assert.ok(!readdirSync(layout.synapseConfigDir).some((name) => readFileSync(join(layout.synapseConfigDir, name), 'utf8').includes(secrets.auth!.clientSecret)));
  } finally {
    rmSync(parent, { recursive: true, force: true });
  }
});

test('without 2FA no auth files are written and Synapse gets no appservice registration', { skip: isRoot ? false : 'needs root (chown)' }, () => {
  const parent = mkdtempSync(join(tmpdir(), 'mxstack-local-auth-'));
  try {
    const { layout, stack } = stackFor(join(parent, 'state'), ['synapse.server.name=chat.example']);
    writeStackFiles(stack, { ...secrets, auth: undefined }, layout, users);
    assert.throws(() => statSync(layout.authSecretsDir), /ENOENT/);
    assert.ok(!readdirSync(layout.synapseSecretsDir).includes(synapseSecretFiles.cliAppserviceRegistration));
  } finally {
    rmSync(parent, { recursive: true, force: true });
  }
});

test('permission bits as the auth user sees them: owner, then its own group, then others; root passes', () => {
  const user = localAuthUser;
  assert.equal(permits({ mode: 0o700, uid: user.uid, gid: 0 }, user, 1), true);
  assert.equal(permits({ mode: 0o700, uid: 0, gid: 0 }, user, 1), false);
  assert.equal(permits({ mode: 0o750, uid: 0, gid: user.gid }, user, 1), true);
  assert.equal(permits({ mode: 0o705, uid: 0, gid: user.gid }, user, 1), false, 'group bits apply to its group, not others');
  assert.equal(permits({ mode: 0o711, uid: 0, gid: 0 }, user, 1), true);
  assert.equal(permits({ mode: 0o711, uid: 0, gid: 0 }, user, 4), false);
  assert.equal(permits({ mode: 0o700, uid: 5, gid: 5 }, { uid: 0, gid: 0, home: '/root' }, 4), true);
});

test('the first directory the auth user cannot get through, or the file it cannot read', () => {
  const modes: Record<string, number> = { '/': 0o755, '/root': 0o700, '/root/mx': 0o755, '/root/mx/a.js': 0o644, '/opt': 0o755, '/opt/mx': 0o755, '/opt/mx/a.js': 0o600 };
  const stat = (path: string) => {
    if (!(path in modes)) throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
    return { mode: modes[path]!, uid: 0, gid: 0 };
  };
  assert.equal(unreachablePath('/root/mx/a.js', localAuthUser, 'read', stat), '/root');
  assert.equal(unreachablePath('/opt/mx/a.js', localAuthUser, 'read', stat), '/opt/mx/a.js');
  assert.equal(unreachablePath('/opt/mx', localAuthUser, 'execute', stat), undefined);
  assert.equal(unreachablePath('/opt/new/dir', localAuthUser, 'execute', stat), undefined, 'missing paths are created traversable');
});

test('up refuses (one sentence) a state directory or an installation the auth user cannot reach', () => {
  const open = { node: '/usr/bin/node', entry: authEntry };
  const parent = mkdtempSync(join(tmpdir(), 'mxstack-local-auth-'));
  try {
    chmodSync(parent, 0o700);
    const closed = authAccessProblem(stateLayout(join(parent, 'state')), open);
    assert.equal(
      closed,
      `the state directory ${join(parent, 'state')} is inside ${parent}, which uid 70000 (the user the 2FA service, the auth component, runs as on this machine) cannot enter; choose a --state-dir elsewhere (the default is /var/lib/mxstack/default).`,
    );
    chmodSync(parent, 0o711);
    assert.equal(authAccessProblem(stateLayout(join(parent, 'state')), open), undefined, 'this installation and /usr/bin/node are open to it');

    const install = join(parent, 'install');
    mkdirSync(join(install, 'bin'), { recursive: true, mode: 0o755 });
    chmodSync(install, 0o700);
    const problem = authAccessProblem(stateLayout(join(parent, 'state')), { node: '/usr/bin/node', entry: join(install, 'bin', 'mxstack-auth.js') });
    assert.match(problem ?? '', new RegExp(`^mxstack is installed in ${install}, but .* cannot read ${install}; install mxstack where every user can read it`));
    assert.equal(problem!.split('; ').length, 2, 'one sentence');
  } finally {
    rmSync(parent, { recursive: true, force: true });
  }
});

test('the auth uid/gid must be nobody\'s, on this machine or in the runtime', () => {
  assert.deepEqual(entriesWithId('root:x:0:0::/root:/bin/sh\nsomeone:x:70000:100::/home/s:/bin/sh\n', 70000), ['someone']);
  assert.deepEqual(entriesWithId('grp:x:70000:\nother:x:700:\n', 70000), ['grp']);
  const files: Record<string, string> = {
    '/etc/passwd': 'root:x:0:0::/root:/bin/sh\n',
    '/etc/group': 'root:x:0:\n',
    '/rt/etc/passwd': 'postgres:x:103:103::/var/lib/postgresql:/bin/sh\n',
    '/rt/etc/group': 'mx:x:70000:\n',
  };
  assert.deepEqual(authIdOwners('/rt', localAuthUser, (path) => files[path] ?? ''), ['group mx (gid 70000) on the runtime']);
  files['/rt/etc/group'] = '';
  assert.deepEqual(authIdOwners('/rt', localAuthUser, (path) => files[path] ?? ''), []);
  // This machine and the runtime mxstack built: the id is free on both.
  assert.deepEqual(authIdOwners('/nonexistent-runtime'), []);
});

test('operations run no command "inside" the auth component: it is not in the runtime', async () => {
  const parent = mkdtempSync(join(tmpdir(), 'mxstack-local-auth-'));
  try {
    const { layout, stack } = stackFor(join(parent, 'state'), mfaOn);
    const plan = buildSupervisorPlan({ stack, layout, rootfs: '/r', postgresqlBinDir: '/usr/lib/postgresql/18/bin', users, versions: {}, postgresPasswordFile: '/p' });
    mkdirSync(layout.root, { recursive: true });
    writeFileSync(join(layout.root, 'plan.json'), JSON.stringify(plan));
    writeFileSync(layout.stateFile, JSON.stringify({ serverName: 'chat.example', createdAt: new Date().toISOString() }));
    // The lock names a live process (this one), as when the supervisor runs.
    writeFileSync(layout.lockFile, `${process.pid}\n`);
    const target = new LocalTarget({ stateDir: layout.root, rawValues: { synapse: { server: { mfa: { totp: { enabled: true } } } } } });
    await assert.rejects(target.exec('auth', ['true']), (error: Error) => error instanceof TargetUsageError && /auth runs on this machine, not inside the runtime/.test(error.message));
    assert.throws(() => target.spawn('auth', ['true']), TargetUsageError);
    assert.equal(await target.withAuth(async (url) => url), `http://127.0.0.1:${stack.placement.ports.authAdmin}/`);
  } finally {
    rmSync(parent, { recursive: true, force: true });
  }
});
