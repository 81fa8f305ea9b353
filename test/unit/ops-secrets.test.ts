/**
 * secrets init / list / export / verify written against the Target interface, checked with an in-memory
 * Target (and a stand-in for Synapse's key endpoint), and the Kubernetes adapter's kubectl calls checked
 * with the recording fake kubectl: values on stdin only, never on a command line.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadValues } from '../../src/values/load.js';
import { compileKubernetesStack } from '../../src/targets/kubernetes/render.js';
import type { ComponentName, Stack } from '../../src/stack/model.js';
import { synapseSecretFiles } from '../../src/stack/model.js';
import { synapseJoinedConfigPath } from '../../src/components/synapse/start.js';
import type { CommandResult, ExecOptions, SecretKeyRef, StoredSecretKey, Target } from '../../src/targets/target.js';
import { secretInventory } from '../../src/ops/secrets/inventory.js';
import { exportSecrets, initSecrets, listSecrets, rotateSecret, rotationRestarts } from '../../src/ops/secrets/manage.js';
import { databasePasswordOf, turnSecretOf, verifySecrets, consistent } from '../../src/ops/secrets/verify.js';
import { generateSigningKey, signingKeyInfo } from '../../src/stack/secrets/generate.js';
import { parseSealingKeyring } from '../../src/stack/secrets/auth-keys.js';
import { KubernetesTarget, lastWriteOf } from '../../src/targets/kubernetes/target-adapter.js';
import { installFakeKubectl } from '../support/fake-kubectl.js';
import { execArgs, parseForwardedPort, portForwardArgs } from '../../src/targets/kubernetes/kubectl.js';

/** Everything this file writes (exported secrets among them) is under one directory, removed at the end. */
const workDir = mkdtempSync(join(tmpdir(), 'mxstack-ops-secrets-'));
after(() => rmSync(workDir, { recursive: true, force: true }));

const stackFrom = (sets: string[] = []): Stack => compileKubernetesStack(loadValues({ sets: ['synapse.server.name=example.org', ...sets] }), { release: 'mx', namespace: 'chat' });

/** A Target in memory: secrets in a map, component files in a map, Synapse at a given URL. */
class MemoryTarget implements Target {
  readonly kind = 'local' as const;
  readonly description = 'a test target';
  readonly files = { coturnConfig: '/coturn/turnserver.conf' };
  readonly secrets = new Map<string, { value: string; at: Date }>();
  readonly componentFiles = new Map<string, string>();
  applied: ComponentName[][] = [];
  synapseUrl = 'http://127.0.0.1:9/';
  constructor(readonly stack: Stack) {}
  withSynapse<T>(use: (baseUrl: string) => Promise<T>): Promise<T> {
    return use(this.synapseUrl);
  }
  withAuth<T>(): Promise<T> {
    return Promise.reject(new Error('this in-memory target has no auth component'));
  }
  async readSecret(ref: SecretKeyRef) {
    return this.secrets.get(`${ref.name}/${ref.key}`)?.value;
  }
  async writeSecret(ref: SecretKeyRef, value: string) {
    this.secrets.set(`${ref.name}/${ref.key}`, { value, at: new Date() });
  }
  async listSecrets(names: readonly string[]): Promise<StoredSecretKey[]> {
    return [...this.secrets].filter(([id]) => names.includes(id.split('/')[0]!)).map(([id, s]) => ({ name: id.split('/')[0]!, key: id.split('/')[1]!, updatedAt: s.at }));
  }
  async exec(component: ComponentName, argv: readonly string[], _options?: ExecOptions): Promise<CommandResult> {
    if (argv[0] === 'cat') {
      const content = this.componentFiles.get(`${component}:${argv[1]}`);
      return content === undefined ? { exitCode: 1, stdout: '', stderr: 'No such file' } : { exitCode: 0, stdout: content, stderr: '' };
    }
    // psql over TCP with the password on stdin: accepted when it equals the "database's" password.
    if (component === 'postgresql' && argv[0] === 'sh') {
      const ok = _options?.stdin?.trim() === this.componentFiles.get('postgresql:role-password');
      return ok ? { exitCode: 0, stdout: '1\n', stderr: '' } : { exitCode: 2, stdout: '', stderr: 'psql: error: password authentication failed for user "synapse"' };
    }
    return { exitCode: 127, stdout: '', stderr: 'not scripted' };
  }
  spawn(): never {
    throw new Error('not scripted');
  }
  postgresqlTool(tool: string): string[] {
    return [tool];
  }
  async isRunning() {
    return true;
  }
  async stop() {}
  async start() {}
  async applySecrets(components: readonly ComponentName[]) {
    this.applied.push([...components]);
  }
  /** What the components would hold after a start with the stored secrets. */
  deploy(): void {
    const get = (ref: SecretKeyRef) => this.secrets.get(`${ref.name}/${ref.key}`)!.value;
    const dir = this.stack.placement.paths.synapseSecretsDir;
    const { secrets } = this.stack;
    this.componentFiles.set(`synapse:${dir}/${synapseSecretFiles.turnSharedSecret}`, get(secrets.turnSharedSecret));
    this.componentFiles.set(`synapse:${synapseJoinedConfigPath(this.stack)}`, `database:\n  name: psycopg2\n  args:\n    password: ${get(secrets.postgresPassword)}\n`);
    this.componentFiles.set(`coturn:${this.files.coturnConfig}`, `listening-port=3478\nuse-auth-secret\nstatic-auth-secret=${get(secrets.turnSharedSecret)}\n`);
    this.componentFiles.set('postgresql:role-password', get(secrets.postgresPassword));
  }
}

let keyServer: Server;
let servedKey: { keyId: string; publicKey: string } = { keyId: '', publicKey: '' };
let keyServerUrl: string;

before(async () => {
  keyServer = createServer((request, response) => {
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(JSON.stringify({ server_name: 'example.org', verify_keys: { [servedKey.keyId]: { key: servedKey.publicKey } } }));
  });
  await new Promise<void>((resolve) => keyServer.listen(0, '127.0.0.1', resolve));
  keyServerUrl = `http://127.0.0.1:${(keyServer.address() as AddressInfo).port}/`;
});
after(() => new Promise<void>((resolve) => keyServer.close(() => resolve())));

test('inventory: generated by default; values-written and user-provided references are never generated', () => {
  const plain = secretInventory(stackFrom());
  assert.deepEqual(plain.map((e) => `${e.id}:${e.origin}`), [
    'postgres-password:generated', 'admin-username:values', 'admin-password:generated', 'registration-shared-secret:generated',
    'macaroon-secret-key:generated', 'form-secret:generated', 'turn-shared-secret:generated', 'signing-key:generated',
  ]);
  const brought = secretInventory(stackFrom(['synapse.server.turn.sharedSecretRef.name=my-turn', 'synapse.server.turn.sharedSecretRef.key=s', 'synapse.signingKey.existingSecret=my-key', 'synapse.server.adminUser.password=from-values']));
  const byId = new Map(brought.map((e) => [e.id, e]));
  assert.equal(byId.get('turn-shared-secret')?.origin, 'user');
  assert.equal(byId.get('turn-shared-secret')?.value, undefined);
  assert.deepEqual([byId.get('signing-key')?.ref.name, byId.get('signing-key')?.origin], ['my-key', 'user']);
  assert.equal(byId.get('admin-password')?.value?.(), 'from-values');
});

test('init creates what is missing, a second init changes nothing, --force replaces only what mxstack manages', async () => {
  const target = new MemoryTarget(stackFrom(['synapse.server.turn.sharedSecretRef.name=my-turn', 'synapse.server.turn.sharedSecretRef.key=s']));
  const first = await initSecrets(target, { force: false });
  assert.equal(first.created.length, 7);
  assert.deepEqual(first.problems, ['my-turn/s (TURN shared secret (Synapse and coturn)) is missing and is yours to create (the values name it).']);
  assert.ok(signingKeyInfo(target.secrets.get('mx-signing-key/signing.key')!.value).keyId.startsWith('ed25519:a_'));
  const snapshot = new Map([...target.secrets].map(([k, v]) => [k, v.value]));

  await target.writeSecret({ name: 'my-turn', key: 's' }, 'users-own-turn-secret');
  const second = await initSecrets(target, { force: false });
  assert.deepEqual([second.created, second.replaced, second.problems], [[], [], []]);
  assert.equal(second.kept.length, 8);
  for (const [k, v] of snapshot) assert.equal(target.secrets.get(k)!.value, v, `${k} changed`);

  const forced = await initSecrets(target, { force: true });
  assert.equal(forced.replaced.length, 7);
  assert.equal(target.secrets.get('my-turn/s')!.value, 'users-own-turn-secret');
  assert.notEqual(target.secrets.get('mx-postgresql/postgres-password')!.value, snapshot.get('mx-postgresql/postgres-password'));
  assert.equal(target.secrets.get('mx-admin-credentials/username')!.value, 'admin');
});

test('list reports names, keys, origins and ages, never a value', async () => {
  const target = new MemoryTarget(stackFrom());
  await initSecrets(target, { force: false });
  const old = target.secrets.get('mx-synapse-keys/form-secret')!;
  old.at = new Date(Date.now() - 3 * 86_400_000 - 1000);
  target.secrets.delete('mx-synapse-keys/macaroon-secret-key');
  const listed = await listSecrets(target);
  const form = listed.find((s) => s.key === 'form-secret')!;
  assert.deepEqual([form.name, form.present, form.age_days, form.origin], ['mx-synapse-keys', true, 3, 'generated']);
  assert.deepEqual(listed.find((s) => s.key === 'macaroon-secret-key')!.present, false);
  const text = JSON.stringify(listed);
  for (const [, { value }] of target.secrets) if (value !== 'admin') assert.ok(!text.includes(value.trim()));
});

test('export writes one 0600 file per key in a 0700 directory', async () => {
  const target = new MemoryTarget(stackFrom());
  await initSecrets(target, { force: false });
  const dir = join(mkdtempSync(join(workDir, 'export-')), '.secrets');
  const files = await exportSecrets(target, dir);
  assert.equal(files.length, 8);
  assert.equal(statSync(dir).mode & 0o777, 0o700);
  for (const file of files) assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.equal(readFileSync(join(dir, 'mx-turn-credentials', 'shared-secret'), 'utf8'), target.secrets.get('mx-turn-credentials/shared-secret')!.value);
  assert.deepEqual(readdirSync(dir).sort(), ['README.txt', 'mx-admin-credentials', 'mx-postgresql', 'mx-signing-key', 'mx-synapse-keys', 'mx-turn-credentials']);
});

test('verify: consistent, then each inconsistency found by its own check', async () => {
  const target = new MemoryTarget(stackFrom());
  target.synapseUrl = keyServerUrl;
  await initSecrets(target, { force: false });
  target.deploy();
  servedKey = signingKeyInfo(target.secrets.get('mx-signing-key/signing.key')!.value);
  assert.equal(consistent(await verifySecrets(target)), true);

  const failing = async () => (await verifySecrets(target)).filter((c) => !c.ok).map((c) => c.name);
  const coturnFile = `coturn:${target.files.coturnConfig}`;
  const coturn = target.componentFiles.get(coturnFile)!;
  target.componentFiles.set(coturnFile, coturn.replace(/static-auth-secret=.*/, 'static-auth-secret=other'));
  assert.deepEqual(await failing(), ['TURN secret']);
  target.componentFiles.set(coturnFile, coturn);

  target.componentFiles.set('postgresql:role-password', 'changed');
  assert.deepEqual(await failing(), ['database password']);
  target.deploy();

  servedKey = signingKeyInfo(generateSigningKey());
  assert.deepEqual(await failing(), ['signing key']);
  servedKey = signingKeyInfo(target.secrets.get('mx-signing-key/signing.key')!.value);

  target.secrets.delete('mx-synapse-keys/form-secret');
  assert.deepEqual(await failing(), ['stored secrets']);
});

test('verify: each OIDC provider must have its own secret, and Synapse must have it', async () => {
  const stack = stackFrom([
    'synapse.server.sso.enabled=true', 'synapse.server.sso.oidc.enabled=true',
    'synapse.server.sso.oidc.providers[0].idp_id=one', 'synapse.server.sso.oidc.providers[0].issuer=https://one.example/', 'synapse.server.sso.oidc.providers[0].client_id=a', 'synapse.server.sso.oidc.providers[0].idp_name=One',
    'synapse.server.sso.oidc.providers[1].idp_id=two', 'synapse.server.sso.oidc.providers[1].issuer=https://two.example/', 'synapse.server.sso.oidc.providers[1].client_id=b', 'synapse.server.sso.oidc.providers[1].idp_name=Two',
  ]);
  const target = new MemoryTarget(stack);
  target.synapseUrl = keyServerUrl;
  const init = await initSecrets(target, { force: false });
  assert.equal(init.problems.length, 2, 'OIDC client secrets cannot be generated');
  await target.writeSecret({ name: 'mx-oidc-one', key: 'client-secret' }, 'same');
  await target.writeSecret({ name: 'mx-oidc-two', key: 'client-secret' }, 'same');
  target.deploy();
  servedKey = signingKeyInfo(target.secrets.get('mx-signing-key/signing.key')!.value);
  const dir = stack.placement.paths.synapseSecretsDir;
  target.componentFiles.set(`synapse:${dir}/${synapseSecretFiles.oidcClientSecret('one')}`, 'same');
  const checks = await verifySecrets(target);
  const failed = checks.filter((c) => !c.ok);
  assert.deepEqual(failed.map((c) => c.name), ['OIDC two', 'OIDC secrets distinct']);
  assert.match(failed[1]!.detail, /providers one and two share one client secret/);
});

test('rotate refuses the signing key and secrets the user owns; rotates a generated one and restarts its readers', async () => {
  const target = new MemoryTarget(stackFrom(['synapse.server.adminUser.registrationSecret=from-values']));
  await initSecrets(target, { force: false });
  await assert.rejects(rotateSecret(target, 'signing-key', {}), /the signing key is the server's identity/);
  await assert.rejects(rotateSecret(target, 'registration-shared-secret', {}), /comes from the values file: change it there/);
  await assert.rejects(rotateSecret(target, 'nope', {}), /cannot rotate nope: choose one of/);
  const before = target.secrets.get('mx-turn-credentials/shared-secret')!.value;
  const result = await rotateSecret(target, 'turn-shared-secret', {});
  assert.notEqual(target.secrets.get('mx-turn-credentials/shared-secret')!.value, before);
  assert.deepEqual(result.restarted, ['synapse', 'coturn']);
  assert.deepEqual(target.applied.at(-1), ['synapse', 'coturn']);
});

test('file parsers: coturn static-auth-secret (last wins), Synapse database password', () => {
  assert.equal(turnSecretOf('a=1\nstatic-auth-secret=first\nuse-auth-secret\nstatic-auth-secret=second\n'), 'second');
  assert.equal(turnSecretOf('listening-port=3478\n'), undefined);
  assert.equal(databasePasswordOf('database:\n  args:\n    password: "p:w#x"\n'), 'p:w#x');
  assert.equal(databasePasswordOf('email: {}\n'), undefined);
});

// ---- the Kubernetes adapter through the recording fake kubectl -------------------------------------------

const secretJson = (name: string, data: Record<string, string>) =>
  JSON.stringify({ kind: 'Secret', metadata: { name, creationTimestamp: '2026-01-01T00:00:00Z', managedFields: [{ time: '2026-02-01T00:00:00Z' }] }, data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')])) });

test('Kubernetes target: secrets read and written through kubectl with values on stdin only', async () => {
  const fake = installFakeKubectl([
    { match: ['get', 'secret/mx-turn-credentials'], stdout: secretJson('mx-turn-credentials', { 'shared-secret': 'existing-turn-value' }) },
    { match: ['get', 'secret/mx-synapse-keys'], stdout: '' },
    { match: ['patch', 'secret/mx-turn-credentials'], stdout: 'secret/mx-turn-credentials' },
    { match: ['create'], stdout: '@names' },
    { match: ['exec', 'statefulset.apps/mx-postgresql'], stdout: '1\n', exit: 0 },
  ]);
  try {
    const target = new KubernetesTarget(stackFrom(), { namespace: 'chat', context: 'prod' });
    assert.equal(await target.readSecret({ name: 'mx-turn-credentials', key: 'shared-secret' }), 'existing-turn-value');
    assert.equal(await target.readSecret({ name: 'mx-synapse-keys', key: 'form-secret' }), undefined);
    await target.writeSecret({ name: 'mx-turn-credentials', key: 'shared-secret' }, 'new-turn-value');
    await target.writeSecret({ name: 'mx-synapse-keys', key: 'form-secret' }, 'new-form-value');
    const result = await target.exec('postgresql', ['sh', '-c', 'read x; psql'], { stdin: 'db-password\n' });
    assert.equal(result.stdout, '1\n');
    const calls = fake.calls();
    for (const call of calls) {
      for (const value of ['new-turn-value', 'new-form-value', 'db-password']) assert.ok(!call.argv.join(' ').includes(value), `a secret on kubectl's command line: ${call.argv.join(' ')}`);
      assert.ok(call.argv.includes('--context=prod') && call.argv.includes('--namespace=chat'));
    }
    const patch = calls.find((c) => c.argv.includes('patch'))!;
    assert.deepEqual(JSON.parse(patch.patchFile!), { data: { 'shared-secret': Buffer.from('new-turn-value').toString('base64') } });
    const create = calls.find((c) => c.argv.includes('create'))!;
    assert.match(create.stdin, /kind: Secret/);
    assert.match(create.stdin, new RegExp(`form-secret: ${Buffer.from('new-form-value').toString('base64')}`));
    assert.equal(calls.find((c) => c.argv.includes('exec'))!.stdin, 'db-password\n');
  } finally {
    fake.restore();
  }
});

test('kubectl builders for exec and port-forward; the forwarded port is read from kubectl\'s output', () => {
  const connection = { namespace: 'chat', context: 'prod' };
  assert.deepEqual(execArgs(connection, 'deployment.apps/mx-synapse', ['cat', '/secrets/x']), ['--context=prod', 'exec', '--namespace=chat', '-i', 'deployment.apps/mx-synapse', '--', 'cat', '/secrets/x']);
  assert.deepEqual(portForwardArgs(connection, 'service/mx-synapse', 8008), ['--context=prod', 'port-forward', '--namespace=chat', '--address=127.0.0.1', 'service/mx-synapse', ':8008']);
  assert.equal(parseForwardedPort('Forwarding from 127.0.0.1:43121 -> 8008'), 43121);
  assert.equal(parseForwardedPort('Handling connection for 43121'), undefined);
  assert.equal(lastWriteOf({ metadata: { name: 'a', creationTimestamp: '2026-01-01T00:00:00Z', managedFields: [{ time: '2026-03-01T00:00:00Z' }, { time: '2026-02-01T00:00:00Z' }] } }).toISOString(), '2026-03-01T00:00:00.000Z');
});

test('rotate with 2FA on: key sets keep their predecessors, the database password restarts the auth component too, the recovery-code key is refused', async () => {
  const target = new MemoryTarget(stackFrom(['synapse.server.mfa.totp.enabled=true']));
  await initSecrets(target, { force: false });
  const stored = (key: string) => target.secrets.get(`mx-auth/${key}`)!.value;

  const keyringBefore = stored('sealing-keyring');
  assert.deepEqual((await rotateSecret(target, 'auth-sealing-keyring', {})).restarted, ['auth']);
  const keyring = parseSealingKeyring(stored('sealing-keyring'));
  assert.equal(keyring.keyring.length, 2);
  assert.notEqual(keyring.current.id, parseSealingKeyring(keyringBefore).current.id);
  assert.deepEqual(keyring.keyring[1], parseSealingKeyring(keyringBefore).current, 'the old key still opens secrets sealed under it');

  const cookiesBefore = stored('cookie-keys').split(',');
  await rotateSecret(target, 'auth-cookie-keys', {});
  const cookies = stored('cookie-keys').split(',');
  assert.equal(cookies.length, 3);
  assert.ok(!cookiesBefore.includes(cookies[0]!), 'a new key signs');
  assert.deepEqual(cookies.slice(1), cookiesBefore, 'the previous keys still verify');

  const jwksBefore = JSON.parse(stored('signing-jwks')) as { keys: { kid: string }[] };
  await rotateSecret(target, 'auth-signing-jwks', {});
  const jwks = JSON.parse(stored('signing-jwks')) as { keys: { kid: string }[] };
  assert.equal(jwks.keys.length, 2);
  assert.notEqual(jwks.keys[0]!.kid, jwksBefore.keys[0]!.kid);
  assert.equal(jwks.keys[1]!.kid, jwksBefore.keys[0]!.kid);

  assert.deepEqual((await rotateSecret(target, 'auth-client-secret', {})).restarted, ['synapse', 'auth']);
  assert.deepEqual(rotationRestarts(target.stack)['postgres-password'], ['synapse', 'auth']);
  await assert.rejects(rotateSecret(target, 'auth-recovery-code-key', {}), /every recovery code users saved would stop working/);

  const without2fa = new MemoryTarget(stackFrom());
  await initSecrets(without2fa, { force: false });
  await assert.rejects(rotateSecret(without2fa, 'auth-cookie-keys', {}), /2FA is off on this stack, so it has no auth keys/);
  assert.deepEqual(rotationRestarts(without2fa.stack)['postgres-password'], ['synapse']);
});
