/**
 * One production-like release on a real Kubernetes cluster, end to end, through the real command line:
 * NetworkPolicies on, 2FA on (the built-in identity provider, TOTP required), coturn on, the backup
 * schedule on; Element Web off (no release of it is available offline, and no stand-in is served).
 *
 * install → every pod Ready and the admin Job complete → the matrix-js-sdk journey through the router's
 * Service (sign-in through the identity provider in Chromium, a room, messages through sync, media, TURN
 * credentials and an allocation) → users / rooms / secrets verify / secrets rotate / doctor through the
 * Kubernetes adapter → backup, and a Job from the backup CronJob → restore → upgrade with a changed value
 * (rollout, data kept) → diff exit codes → disabling coturn prunes exactly its objects → uninstall keeps
 * volumes and Secrets → install again serves the same users and signing key → a server-name change is
 * refused.
 *
 * The cluster: test/support/test-cluster.ts (MXSTACK_TEST_KUBECONFIG, else the shared test cluster); the
 * images: test/support/test-images.ts (built from the local runtime, named as the manifests name them).
 * The router is reached through its Service's ClusterIP by a loopback proxy on a port fixed before install,
 * so the public base URL (http://localhost:<port>/) is the one the browser and the API calls use.
 * Durations (install → Ready, upgrade, the suite) are printed at the end; nothing asserts on them.
 *
 * The cases run in order and share the release: a failed step fails the ones after it too.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import { collectLiveMessages, createPrivateRoom, matrixRequest, readAllMessageBodies, sendText, startSyncedClient, waitUntil, type MatrixSession } from '../support/matrix-client.js';
import { browserSkipReason, launchBrowser, type TestBrowser } from '../support/browser.js';
import { signInEnrolling as signInEnrollingThroughBrowser, type StackUrls } from '../support/sso-login.js';
import { freeLoopbackPort } from '../support/component-stacks.js';
import { TurnClient } from '../support/turn-client.js';
import { createTestNamespace, kubectl, testCluster, type TestCluster, type TestNamespace } from '../support/kubernetes-cluster.js';
import { E2eSuite, kubectlOk as kubectlOkOn, mxstackOkOn, mxstackOn, seconds } from '../support/kubernetes-e2e.js';
import { serviceClusterIp, startServiceProxy, type ServiceProxy } from '../support/service-proxy.js';

// Top-level await: the skip reason must be known when the cases are declared.
const availability = await testCluster();
const skip = availability.available ? browserSkipReason() : availability.reason;

const release = 'mxstack';
const serverName = 'example.test';
const suite = new E2eSuite('kubernetes e2e');
const { timings } = suite;

let cluster: TestCluster;
let testNamespace: TestNamespace | undefined;
let namespace: string | undefined;
let workDir: string;
let valuesFile: string;
let router: ServiceProxy | undefined;
let browser: TestBrowser | undefined;
let urls: StackUrls;

const passwords = { alice: 'alice-e2e-correct-horse-1', bob: 'bob-e2e-battery-staple-2' };
const sessions: Partial<Record<keyof typeof passwords, MatrixSession>> = {};
/** What later steps check against (the first install's facts). */
const facts: { roomId?: string; signingKeys?: Record<string, { key: string }>; secretNames?: string[]; claimNames?: string[] } = {};

const kubectlOk = (args: readonly string[], options: { timeoutMs?: number } = {}) => kubectlOkOn(cluster, args, options);
const mxstack = (args: string[], timeoutMs?: number) => mxstackOn(cluster, args, timeoutMs);
const mxstackOk = (args: string[], timeoutMs?: number) => mxstackOkOn(cluster, args, timeoutMs);

/** The operations' common options: the release on the cluster, with the suite's values. */
const onRelease = (extra: string[] = []) => ['--kubernetes', '-n', namespace!, '--release', release, '-f', valuesFile, ...extra];
const releaseArgs = (extra: string[] = []) => ['-n', namespace!, '--release', release, '-f', valuesFile, ...extra];

function writeValues(routerPort: number): string {
  const base = `http://localhost:${routerPort}/`;
  urls = { browserBase: base, apiBase: `http://127.0.0.1:${routerPort}/`, redirectUrl: `${base}signed-in` };
  const file = join(workDir, 'values.yaml');
  writeFileSync(
    file,
    stringify({
      synapse: {
        server: {
          name: serverName,
          publicBaseurl: base,
          // Many sign-ins from one address within minutes: Synapse's login rate limit is not under test.
          rateLimits: { loginPerSecond: 10, loginBurst: 100 },
          sso: { clientWhitelist: [urls.redirectUrl] },
          mfa: { totp: { enabled: true, issuer: 'mxstack e2e' }, required: true },
        },
      },
      element: { enabled: false },
      coturn: { enabled: true },
      networkPolicy: { enabled: true },
      backup: { schedule: '15 3 * * *', retention: 3 },
    }),
  );
  return file;
}

/** kind/name of every object a render produces (the release's objects, as `mxstack render` lists them). */
async function renderedObjects(extra: string[]): Promise<Set<string>> {
  const yaml = await mxstackOk(['render', '-f', valuesFile, '-n', namespace!, '--release', release, ...extra]);
  return new Set(
    parseAllDocuments(yaml)
      .map((doc) => doc.toJS() as { kind?: string; metadata?: { name?: string } } | null)
      .filter((object): object is { kind: string; metadata: { name: string } } => Boolean(object?.kind && object.metadata?.name))
      .map((object) => `${object.kind}/${object.metadata.name}`),
  );
}

/** kind/name of the live objects of the given kinds in the namespace (kubectl's resource names). */
async function liveObjects(kinds: string[]): Promise<Set<string>> {
  const list = JSON.parse(await kubectlOk(['get', kinds.join(','), '-n', namespace!, '-o', 'json'])) as { items: { kind: string; metadata: { name: string; ownerReferences?: unknown[] } }[] };
  // Objects a controller made (ReplicaSets, pods, Jobs of the CronJob) are not the release's own.
  return new Set(list.items.filter((item) => !item.metadata.ownerReferences).map((item) => `${item.kind}/${item.metadata.name}`));
}

const releaseKinds = [
  'configmaps',
  'secrets',
  'services',
  'deployments.apps',
  'statefulsets.apps',
  'jobs.batch',
  'cronjobs.batch',
  'persistentvolumeclaims',
  'networkpolicies.networking.k8s.io',
  'poddisruptionbudgets.policy',
  'serviceaccounts',
];

/** The release's rendered kinds as kubectl names them (Secrets are mxstack's own: not in the render). */
const withoutUnrendered = (objects: Set<string>) => new Set([...objects].filter((name) => !name.startsWith('Secret/') && name !== 'ServiceAccount/default' && name !== 'ConfigMap/kube-root-ca.crt'));

async function createUser(name: keyof typeof passwords): Promise<void> {
  const file = join(workDir, `${name}.password`);
  writeFileSync(file, `${passwords[name]}\n`, { mode: 0o600 });
  await mxstackOk(['users', 'create', name, '--password-file', file, ...onRelease()]);
}

/** A person's first sign-in: password, TOTP enrolment (required), recovery codes, back at the client with a token. */
async function signInEnrolling(name: keyof typeof passwords): Promise<MatrixSession> {
  const login = await signInEnrollingThroughBrowser(browser!, urls, name, passwords[name]);
  assert.equal(login.recoveryCodes.length, 10);
  assert.equal(login.user_id, `@${name}:${serverName}`);
  return { baseUrl: urls.apiBase, userId: login.user_id, accessToken: login.access_token, ...(login.device_id ? { deviceId: login.device_id } : {}) };
}

async function whoami(session: MatrixSession): Promise<string> {
  return (await matrixRequest<{ user_id: string }>(urls.apiBase, 'GET', '/_matrix/client/v3/account/whoami', { accessToken: session.accessToken })).user_id;
}

/**
 * Waits (bounded) until the router serves Synapse to this session again and records how long that took
 * after the command returned, then requires it to keep serving: the next 20 requests all answered. The
 * router does not health-check Synapse's Service (Kubernetes routes it to Ready pods only) and retries a
 * refused connection, so there is no lag after the new pod is Ready in which it answers 503
 * (test/kubernetes/router-upgrade.test.ts counts the answers through a whole upgrade).
 */
async function routerServesAgain(session: MatrixSession, after: string): Promise<void> {
  const started = Date.now();
  const serves = () => whoami(session).then((userId) => userId === session.userId, () => false);
  await waitUntil(`the router to serve Synapse after ${after}`, 180_000, async () => ((await serves()) ? true : undefined), 500);
  timings[`router serves again after ${after}`] = seconds(started);
  const answers: boolean[] = [];
  for (let i = 0; i < 20; i++) answers.push(await serves());
  assert.equal(answers.filter((ok) => !ok).length, 0, `after ${after}, once serving, the router failed ${answers.filter((ok) => !ok).length} of 20 requests`);
}

async function servedSigningKeys(): Promise<Record<string, { key: string }>> {
  const answer = await matrixRequest<{ server_name: string; verify_keys: Record<string, { key: string }> }>(urls.apiBase, 'GET', '/_matrix/key/v2/server');
  assert.equal(answer.server_name, serverName);
  return answer.verify_keys;
}

async function allocateTurnRelay(session: MatrixSession): Promise<string> {
  const credentials = await matrixRequest<{ username: string; password: string; uris: string[] }>(urls.apiBase, 'GET', '/_matrix/client/v3/voip/turnServer', { accessToken: session.accessToken });
  assert.ok(credentials.uris.some((uri) => uri.startsWith(`turn:${serverName}:3478`)), credentials.uris.join(' '));
  // The public name does not resolve here: coturn's Service is reached by its ClusterIP (UDP, from the node).
  const host = await serviceClusterIp(cluster, namespace!, `${release}-coturn`);
  const client = await TurnClient.connect({ host, port: 3478, transport: 'udp', timeoutMs: 5000 });
  try {
    const allocation = await client.allocate({ username: credentials.username, password: credentials.password });
    await client.release().catch(() => undefined);
    return `${allocation.relayedAddress.address}:${allocation.relayedAddress.port}`;
  } finally {
    client.close();
  }
}

/** The pod template generation Kubernetes observed for a workload (grows with every rollout). */
async function observedGeneration(workload: string): Promise<number> {
  return Number(await kubectlOk(['get', workload, '-n', namespace!, '-o', 'jsonpath={.status.observedGeneration}']));
}

before(async () => {
  if (skip) return;
  workDir = mkdtempSync(join(tmpdir(), 'mxstack-k8s-e2e-'));
  cluster = (availability as { cluster: TestCluster }).cluster;
  const images = suite.loadImages(cluster);
  for (const image of images.images) suite.log(`image ${image.name}: ${image.contract}`);
  testNamespace = await createTestNamespace(cluster, 'e2e');
  namespace = testNamespace.name;
  suite.log(`namespace ${namespace}`);
  const routerPort = await freeLoopbackPort();
  valuesFile = writeValues(routerPort);
  router = await startServiceProxy(cluster, namespace, `${release}-router`, 8080, routerPort);
  browser = await launchBrowser();
}, { timeout: 1_800_000 });

after(async () => {
  await browser?.close();
  await router?.close();
  if (testNamespace && !process.env.MXSTACK_TEST_KEEP_NAMESPACE) await testNamespace.delete();
  if (workDir) rmSync(workDir, { recursive: true, force: true });
  if (!skip) suite.printDurations();
}, { timeout: 300_000 });

test('install: every workload Ready, the admin Job complete, NetworkPolicies in place', { skip, timeout: 900_000 }, async () => {
  const started = Date.now();
  await mxstackOk(['install', ...releaseArgs(['--timeout', '10m'])]);
  timings['install → Ready'] = seconds(started);
  const job = JSON.parse(await kubectlOk(['get', `job/${release}-admin-bootstrap`, '-n', namespace!, '-o', 'json'])) as { status: { succeeded?: number } };
  assert.equal(job.status.succeeded, 1);
  const pods = JSON.parse(await kubectlOk(['get', 'pods', '-n', namespace!, '-o', 'json'])) as { items: { metadata: { name: string; ownerReferences?: { kind: string }[] }; status: { phase: string; conditions?: { type: string; status: string }[] } }[] };
  for (const pod of pods.items.filter((p) => p.metadata.ownerReferences?.[0]?.kind !== 'Job')) {
    assert.ok(pod.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'), `pod ${pod.metadata.name} is not Ready (${pod.status.phase})`);
  }
  const policies = await liveObjects(['networkpolicies.networking.k8s.io']);
  assert.ok(policies.has(`NetworkPolicy/${release}-default-deny`), [...policies].join(' '));
  const live = await liveObjects(releaseKinds);
  assert.deepEqual([...(await renderedObjects([]))].filter((name) => !live.has(name)), [], 'rendered objects missing on the cluster');
});

test('journey: sign-in through the identity provider, a room, messages through sync, media, TURN', { skip, timeout: 600_000 }, async () => {
  await createUser('alice');
  await createUser('bob');
  sessions.alice = await signInEnrolling('alice');
  sessions.bob = await signInEnrolling('bob');
  const roomId = await createPrivateRoom(sessions.alice, [sessions.bob], 'e2e room');
  facts.roomId = roomId;
  const bob = await startSyncedClient(sessions.bob);
  try {
    const live = collectLiveMessages(bob.client, roomId);
    await sendText(sessions.alice, roomId, 'before backup', 'e2e-1');
    await live.waitFor(1, 60_000);
    assert.deepEqual(live.bodies, ['before backup']);
    live.stop();
  } finally {
    bob.stop();
  }

  const content = `media through the router ${Date.now()}`;
  const upload = await fetch(new URL('/_matrix/media/v3/upload?filename=e2e.txt', urls.apiBase), {
    method: 'POST',
    headers: { authorization: `Bearer ${sessions.alice.accessToken}`, 'content-type': 'text/plain' },
    body: content,
    signal: AbortSignal.timeout(30_000),
  });
  assert.equal(upload.status, 200, await upload.clone().text());
  const mxc = ((await upload.json()) as { content_uri: string }).content_uri;
  const download = await fetch(new URL(`/_matrix/client/v1/media/download/${mxc.slice('mxc://'.length)}`, urls.apiBase), {
    headers: { authorization: `Bearer ${sessions.bob.accessToken}` },
    signal: AbortSignal.timeout(30_000),
  });
  assert.equal(download.status, 200);
  assert.equal(await download.text(), content);

  assert.match(await allocateTurnRelay(sessions.alice), /^\d+\.\d+\.\d+\.\d+:\d+$/);
  facts.signingKeys = await servedSigningKeys();
});

test('operations through the Kubernetes adapter: users, rooms, secrets verify and rotate, doctor', { skip, timeout: 600_000 }, async () => {
  const users = JSON.parse(await mxstackOk(['users', 'list', ...onRelease(['--output', 'json'])])) as { user_id: string }[];
  for (const name of ['admin', 'alice', 'bob']) assert.ok(users.some((user) => user.user_id === `@${name}:${serverName}`), JSON.stringify(users));
  const rooms = JSON.parse(await mxstackOk(['rooms', 'list', ...onRelease(['--output', 'json'])])) as { room_id: string }[];
  assert.ok(rooms.some((room) => room.room_id === facts.roomId), JSON.stringify(rooms));
  await mxstackOk(['secrets', 'verify', ...onRelease()]);

  await mxstackOk(['secrets', 'rotate', 'turn-shared-secret', '--yes', ...onRelease()]);
  await mxstackOk(['secrets', 'verify', ...onRelease()]);
  // Synapse hands out credentials from the new secret, and coturn accepts them.
  assert.match(await allocateTurnRelay(sessions.alice!), /:\d+$/);

  const doctor = await mxstack(['doctor', ...onRelease(['--output', 'json'])], 300_000);
  const report = JSON.parse(doctor.stdout) as { checks: { name: string; status: string; detail: string }[] };
  const failed = report.checks.filter((check) => check.status === 'fail');
  assert.deepEqual(failed, [], 'doctor failed on a healthy release');
  assert.equal(doctor.status, 0, doctor.stderr);
  const database = report.checks.find((check) => check.name === 'database encoding and locale');
  assert.equal(database?.status, 'pass', JSON.stringify(database));
});

test('backup, and a Job created from the backup CronJob', { skip, timeout: 600_000 }, async () => {
  const archive = join(workDir, 'backup.tar');
  await mxstackOk(['backup', '--output', archive, ...onRelease()]);
  assert.ok(existsSync(archive));
  await sendText(sessions.alice!, facts.roomId!, 'after backup', 'e2e-2');

  const job = 'e2e-backup-now';
  await kubectlOk(['create', 'job', job, `--from=cronjob/${release}-backup`, '-n', namespace!]);
  const waited = await kubectl(cluster, ['wait', `job/${job}`, '-n', namespace!, '--for=condition=complete', '--timeout=300s'], { timeoutMs: 320_000 });
  const logs = await kubectl(cluster, ['logs', `job/${job}`, '-n', namespace!]);
  assert.equal(waited.exitCode, 0, `${waited.stderr}\n${logs.stdout}${logs.stderr}`);
  assert.match(logs.stdout, new RegExp(`wrote ${serverName.replace('.', '\\.')}-\\d{8}T\\d{6}Z\\.dump \\(\\d+ bytes\\)`));
  await kubectlOk(['delete', 'job', job, '-n', namespace!]);
});

test('restore brings back the backup: a message sent after it is gone, the earlier one is there', { skip, timeout: 900_000 }, async () => {
  await mxstackOk(['restore', join(workDir, 'backup.tar'), '--yes', ...onRelease()]);
  await routerServesAgain(sessions.alice!, 'restore');
  const bodies = await readAllMessageBodies(sessions.alice!, facts.roomId!);
  assert.ok(bodies.includes('before backup'), bodies.join(' | '));
  assert.ok(!bodies.includes('after backup'), bodies.join(' | '));
});

test('upgrade with a changed value rolls Synapse out and keeps the data', { skip, timeout: 900_000 }, async () => {
  const before = await observedGeneration(`deployment/${release}-synapse`);
  const started = Date.now();
  await mxstackOk(['upgrade', ...releaseArgs(['--set', 'synapse.server.media.maxUploadSize=20M', '--timeout', '10m'])]);
  timings.upgrade = seconds(started);
  assert.ok((await observedGeneration(`deployment/${release}-synapse`)) > before, 'Synapse was not rolled out');
  const config = await kubectlOk(['get', `configmap/${release}-synapse`, '-n', namespace!, '-o', 'jsonpath={.data.homeserver\\.yaml}']);
  assert.match(config, /max_upload_size: 20M/);
  await routerServesAgain(sessions.alice!, 'upgrade');
  assert.ok((await readAllMessageBodies(sessions.alice!, facts.roomId!)).includes('before backup'));
});

test('diff: 0 without differences, 1 with differences, above 1 on an error', { skip, timeout: 300_000 }, async () => {
  const same = await mxstack(['diff', ...releaseArgs(['--set', 'synapse.server.media.maxUploadSize=20M'])]);
  assert.equal(same.status, 0, `${same.stdout}\n${same.stderr}`);
  const changed = await mxstack(['diff', ...releaseArgs(['--set', 'synapse.server.media.maxUploadSize=30M'])]);
  assert.equal(changed.status, 1, `${changed.stdout}\n${changed.stderr}`);
  assert.match(changed.stdout, /max_upload_size/);
  const broken = await mxstack(['diff', ...releaseArgs(['--set', 'synapse.server.media.maxUploadSize=20M', '--kubeconfig', join(workDir, 'missing-kubeconfig')])]);
  assert.ok((broken.status ?? 0) > 1, `exit ${broken.status}: ${broken.stderr}`);
});

test('disabling coturn prunes exactly its objects', { skip, timeout: 900_000 }, async () => {
  const sets = ['--set', 'synapse.server.media.maxUploadSize=20M'];
  // Without coturn and without other TURN URIs, Synapse's TURN goes off too (the values refuse it otherwise).
  const off = ['--set', 'coturn.enabled=false', '--set', 'synapse.server.turn.enabled=false'];
  const withCoturn = await renderedObjects(sets);
  const withoutCoturn = await renderedObjects([...sets, ...off]);
  const expectedGone = [...withCoturn].filter((name) => !withoutCoturn.has(name)).sort();
  assert.ok(expectedGone.includes(`Deployment/${release}-coturn`), expectedGone.join(' '));
  const before = withoutUnrendered(await liveObjects(releaseKinds));
  await mxstackOk(['upgrade', ...releaseArgs([...sets, ...off, '--timeout', '10m'])]);
  const after = withoutUnrendered(await liveObjects(releaseKinds));
  const gone = [...before].filter((name) => !after.has(name)).sort();
  assert.deepEqual(gone, expectedGone);
  assert.deepEqual([...after].filter((name) => !before.has(name)), []);
});

test('uninstall keeps the volumes and the Secrets', { skip, timeout: 600_000 }, async () => {
  // The ApplySet parent (mxstack's record of what the release applied) goes with the release.
  facts.secretNames = [...(await liveObjects(['secrets']))].filter((name) => name !== `Secret/${release}-applyset`).sort();
  facts.claimNames = [...(await liveObjects(['persistentvolumeclaims']))].sort();
  assert.ok(facts.claimNames.length >= 2, facts.claimNames.join(' '));
  await mxstackOk(['uninstall', '-n', namespace!, '--release', release]);
  const left = await liveObjects(releaseKinds);
  assert.deepEqual([...left].filter((name) => !name.startsWith('Secret/') && !name.startsWith('PersistentVolumeClaim/') && name !== 'ServiceAccount/default' && name !== 'ConfigMap/kube-root-ca.crt'), []);
  assert.deepEqual([...(await liveObjects(['secrets']))].sort(), facts.secretNames);
  assert.deepEqual([...(await liveObjects(['persistentvolumeclaims']))].sort(), facts.claimNames);
});

test('install again serves the same users and the same signing key', { skip, timeout: 900_000 }, async () => {
  const started = Date.now();
  await mxstackOk(['install', ...releaseArgs(['--timeout', '10m'])]);
  timings['reinstall → Ready'] = seconds(started);
  router!.refresh();
  await routerServesAgain(sessions.alice!, 'reinstall');
  assert.equal(await whoami(sessions.bob!), `@bob:${serverName}`);
  assert.deepEqual(await servedSigningKeys(), facts.signingKeys);
  assert.ok((await readAllMessageBodies(sessions.bob!, facts.roomId!)).includes('before backup'));
});

test('changing the server name of an installed release is refused, and nothing is applied', { skip, timeout: 300_000 }, async () => {
  const generation = await observedGeneration(`deployment/${release}-synapse`);
  const refused = await mxstack(['install', ...releaseArgs(['--set', 'synapse.server.name=other.example.test'])]);
  assert.notEqual(refused.status, 0);
  assert.match(refused.stderr, /server name/i);
  assert.match(refused.stderr, /example\.test/);
  assert.equal(await observedGeneration(`deployment/${release}-synapse`), generation);
  assert.equal(await whoami(sessions.alice!), `@alice:${serverName}`);
});
