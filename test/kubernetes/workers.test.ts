/**
 * A release with Synapse workers (synapse.workers.preset small, the sync pool autoscaling) on a real
 * Kubernetes cluster, through the real command line, with the built-in identity provider (2FA: TOTP
 * required): install → every pool's pods Ready, the HorizontalPodAutoscaler accepted by the API server and
 * taken up by its controller, the worker NetworkPolicies in place (the test cluster does not enforce them:
 * test/unit/kubernetes-invariants.test.ts proves their flows) → two users sign in through the identity
 * provider in Chromium (TOTP enrolment; every SSO step goes to the main process, `m.login.token` to a client
 * reader), a room, a message sent through the router (event creator, event persister) arrives at
 * matrix-js-sdk's sync, which the router sends to the sync pool: the sync pod counted the syncs and the main
 * process none → `mxstack doctor` passes, with its redis and replication lines → backup, a message after
 * it, restore: the earlier message is there, the later one gone, every worker pod Ready again → the `large`
 * preset's objects (HPAs and PDBs included) accepted by the API server in a server-side dry run.
 *
 * Element Web, coturn and Redis's exporter stay off (release.test.ts covers the first two; no exporter image
 * is available offline); the CPU requests are lowered so that the sixteen Synapse processes fit a two-core
 * test node. The durations are printed at the end; nothing asserts on them.
 *
 * The cases run in order and share the release: a failed step fails the ones after it too.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import { collectLiveMessages, createPrivateRoom, readAllMessageBodies, sendText, startSyncedClient, waitUntil, type MatrixSession } from '../support/matrix-client.js';
import { browserSkipReason, launchBrowser, type TestBrowser } from '../support/browser.js';
import { signInEnrolling, type StackUrls } from '../support/sso-login.js';
import { freeLoopbackPort } from '../support/component-stacks.js';
import { createTestNamespace, testCluster, type TestCluster, type TestNamespace } from '../support/kubernetes-cluster.js';
import { E2eSuite, kubectlOk as kubectlOkOn, mxstackOkOn, mxstackOn, seconds } from '../support/kubernetes-e2e.js';
import { startServiceProxy, type ServiceProxy } from '../support/service-proxy.js';

// Top-level await: the skip reason must be known when the cases are declared.
const availability = await testCluster();
const skip = availability.available ? browserSkipReason() ?? false : availability.reason;

const release = 'mxstack';
const serverName = 'workers.test';
const suite = new E2eSuite('kubernetes workers e2e');
const { timings } = suite;

let cluster: TestCluster;
let testNamespace: TestNamespace | undefined;
let namespace: string | undefined;
let workDir: string;
let valuesFile: string;
let router: ServiceProxy | undefined;
let browser: TestBrowser | undefined;
let urls: StackUrls;
let apiBase: string;

const passwords = { alice: 'alice-workers-correct-horse-1', bob: 'bob-workers-battery-staple-2' };
const sessions: Partial<Record<keyof typeof passwords, MatrixSession>> = {};
/** What later steps check against. */
const facts: { roomId?: string } = {};

const kubectlOk = (args: readonly string[]) => kubectlOkOn(cluster, args);
const mxstackOk = (args: string[], timeoutMs = 1_200_000) => mxstackOkOn(cluster, args, timeoutMs);
const mxstack = (args: string[], timeoutMs = 600_000) => mxstackOn(cluster, args, timeoutMs);

const releaseArgs = (extra: string[] = []) => ['-n', namespace!, '--release', release, '-f', valuesFile, ...extra];
/** The operations' common options: the release on the cluster, with the suite's values. */
const onRelease = (extra: string[] = []) => ['--kubernetes', ...releaseArgs(extra)];

function writeValues(routerPort: number): string {
  const base = `http://localhost:${routerPort}/`;
  apiBase = `http://127.0.0.1:${routerPort}/`;
  urls = { browserBase: base, apiBase, redirectUrl: `${base}signed-in` };
  const file = join(workDir, 'values.yaml');
  writeFileSync(
    file,
    stringify({
      synapse: {
        server: {
          name: serverName,
          publicBaseurl: base,
          turn: { enabled: false },
          // Several sign-ins from one address within minutes: Synapse's login rate limit is not under test.
          rateLimits: { loginPerSecond: 10, loginBurst: 100 },
          sso: { clientWhitelist: [urls.redirectUrl] },
          mfa: { totp: { enabled: true, issuer: 'mxstack workers e2e' }, required: true },
        },
        // Every worker takes these unless its pool sets its own: sixteen processes on a two-core node.
        resources: { requests: { cpu: '20m', memory: '128Mi' } },
        workers: { preset: 'small', pools: { sync: { autoscaling: { enabled: true, minReplicas: 1, maxReplicas: 3 } } } },
      },
      auth: { resources: { requests: { cpu: '20m', memory: '64Mi' } } },
      // No redis_exporter image is available offline (test/support/test-images.ts builds none).
      redis: { metrics: { enabled: false } },
      element: { enabled: false },
      coturn: { enabled: false },
      networkPolicy: { enabled: true },
    }),
  );
  return file;
}

interface PodList {
  items: { metadata: { name: string; uid: string; labels?: Record<string, string>; ownerReferences?: { kind: string }[] }; status: { phase: string; conditions?: { type: string; status: string }[] } }[];
}

async function podsOf(component: string): Promise<string[]> {
  const pods = JSON.parse(await kubectlOk(['get', 'pods', '-n', namespace!, '-l', `app.kubernetes.io/name=${component}`, '-o', 'json'])) as PodList;
  return pods.items.map((pod) => pod.metadata.name);
}

/** A Synapse process's Prometheus count of responses by one servlet, read through the API server's pod proxy. */
async function servletResponses(pod: string, servlet: string): Promise<number> {
  const metrics = await kubectlOk(['get', '--raw', `/api/v1/namespaces/${namespace}/pods/${pod}:9000/proxy/_synapse/metrics`]);
  return metrics
    .split('\n')
    .filter((line) => line.startsWith('synapse_http_server_response_count_total{') && line.includes(`servlet="${servlet}"`))
    .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
}

const syncResponses = (pod: string) => servletResponses(pod, 'SyncRestServlet');

/** Every pod of the release but the Jobs', and whether it is Ready. */
async function releasePods(): Promise<{ name: string; uid: string; component: string; ready: boolean; phase: string }[]> {
  const pods = JSON.parse(await kubectlOk(['get', 'pods', '-n', namespace!, '-o', 'json'])) as PodList;
  return pods.items
    .filter((pod) => pod.metadata.ownerReferences?.[0]?.kind !== 'Job')
    .map((pod) => ({
      name: pod.metadata.name,
      uid: pod.metadata.uid,
      component: pod.metadata.labels?.['app.kubernetes.io/name'] ?? '',
      ready: pod.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false,
      phase: pod.status.phase,
    }));
}

const workerPoolComponents = ['sync', 'initial-sync', 'client-reader', 'event-creator', 'event-persister', 'federation-inbound', 'federation-reader', 'federation-sender', 'pusher', 'media-repository', 'stream-writer', 'background', 'user-directory', 'appservice-notifier'].map((pool) => `synapse-${pool}`);

before(async () => {
  if (skip) return;
  workDir = mkdtempSync(join(tmpdir(), 'mxstack-k8s-workers-'));
  cluster = (availability as { cluster: TestCluster }).cluster;
  suite.loadImages(cluster);
  testNamespace = await createTestNamespace(cluster, 'workers');
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

test('install with the small preset: every pool Ready, the HPA accepted and observed, the worker NetworkPolicies in place', { skip, timeout: 1_200_000 }, async () => {
  const started = Date.now();
  await mxstackOk(['install', ...releaseArgs(['--timeout', '15m'])]);
  timings['install → Ready'] = seconds(started);

  const running = await releasePods();
  for (const pod of running) assert.ok(pod.ready, `pod ${pod.name} is not Ready (${pod.phase})`);
  const components = new Set(running.map((pod) => pod.component));
  for (const component of workerPoolComponents) assert.ok(components.has(component), `a Ready pod of ${component} among ${[...components].join(' ')}`);
  assert.ok(components.has('auth'), 'the identity provider runs');
  assert.ok(components.has('redis'), 'Redis runs');

  // Accepted by the API server (it is there, as rendered) and taken up by the HPA controller (conditions).
  const hpa = `horizontalpodautoscaler.autoscaling/${release}-synapse-sync`;
  const spec = JSON.parse(await kubectlOk(['get', hpa, '-n', namespace!, '-o', 'json'])) as { spec: { minReplicas: number; maxReplicas: number; scaleTargetRef: { kind: string; name: string } } };
  assert.deepEqual([spec.spec.minReplicas, spec.spec.maxReplicas, spec.spec.scaleTargetRef.kind, spec.spec.scaleTargetRef.name], [1, 3, 'Deployment', `${release}-synapse-sync`]);
  const observed = await waitUntil('the HPA controller to report on the sync pool', 120_000, async () => {
    const status = JSON.parse(await kubectlOk(['get', hpa, '-n', namespace!, '-o', 'json'])) as { status?: { conditions?: { type: string; status: string }[] } };
    return status.status?.conditions?.find((c) => c.type === 'AbleToScale');
  }, 2000);
  assert.equal(observed.status, 'True');

  const policies = (await kubectlOk(['get', 'networkpolicies', '-n', namespace!, '-o', 'name'])).split('\n');
  for (const name of ['default-deny', 'router-to-synapse-routed-workers', 'synapse-workers-to-synapse', 'synapse-workers-to-synapse-writers', 'synapse-workers-to-redis', 'synapse-workers-to-postgresql']) {
    assert.ok(policies.includes(`networkpolicy.networking.k8s.io/${release}-${name}`), `${name} in ${policies.join(' ')}`);
  }
});

test('sign-in through the identity provider (SSO on the main process), a message through the router reaches matrix-js-sdk\'s sync, served by the sync pool', { skip, timeout: 600_000 }, async () => {
  const started = Date.now();
  const [syncPod] = (await podsOf('synapse-sync')).sort();
  const [mainPod] = await podsOf('synapse');
  const [clientReaderPod] = await podsOf('synapse-client-reader');
  assert.ok(syncPod && mainPod && clientReaderPod);
  const ssoRedirectsBefore = await servletResponses(mainPod, 'SsoRedirectServlet');
  for (const name of ['alice', 'bob'] as const) {
    const file = join(workDir, `${name}.password`);
    writeFileSync(file, `${passwords[name]}\n`, { mode: 0o600 });
    await mxstackOk(['users', 'create', name, '--password-file', file, ...onRelease()], 300_000);
    const login = await signInEnrolling(browser!, urls, name, passwords[name]);
    assert.equal(login.user_id, `@${name}:${serverName}`);
    assert.equal(login.recoveryCodes.length, 10);
    sessions[name] = { baseUrl: apiBase, userId: login.user_id, accessToken: login.access_token, ...(login.device_id ? { deviceId: login.device_id } : {}) };
  }
  timings['two SSO/2FA sign-ins'] = seconds(started);
  // Each sign-in's SSO redirect was answered by the main process; no worker has the servlet's route.
  assert.ok((await servletResponses(mainPod, 'SsoRedirectServlet')) >= ssoRedirectsBefore + 2, 'the main process answered the SSO redirects');
  assert.equal(await servletResponses(clientReaderPod, 'SsoRedirectServlet'), 0, 'no SSO step reached the client reader');
  // The m.login.token exchanges went to the client reader (login is a client-reader route).
  assert.ok((await servletResponses(clientReaderPod, 'LoginRestServlet')) > 0, 'the client reader answered the logins');

  const mainSyncsBefore = await syncResponses(mainPod);
  const syncStarted = Date.now();
  const roomId = await createPrivateRoom(sessions.alice!, [sessions.bob!], 'workers room');
  facts.roomId = roomId;
  const bob = await startSyncedClient(sessions.bob!, 120_000);
  try {
    const live = collectLiveMessages(bob.client, roomId);
    await sendText(sessions.alice!, roomId, 'before backup', 'workers-1');
    await live.waitFor(1, 120_000);
    assert.deepEqual(live.bodies, ['before backup']);
    live.stop();
  } finally {
    bob.stop();
  }
  timings['room, message → sync'] = seconds(syncStarted);
  assert.ok((await syncResponses(syncPod)) > 0, 'the sync pod answered the syncs');
  assert.equal(await syncResponses(mainPod), mainSyncsBefore, 'the main process answered no sync');
});

test('doctor passes, with Redis and replication checked through the cluster', { skip, timeout: 600_000 }, async () => {
  const started = Date.now();
  const doctor = await mxstack(['doctor', ...onRelease(['--output', 'json'])], 300_000);
  timings.doctor = seconds(started);
  const report = JSON.parse(doctor.stdout) as { checks: { name: string; status: string; detail: string }[] };
  assert.deepEqual(report.checks.filter((check) => check.status === 'fail'), [], 'doctor failed on a healthy release');
  assert.equal(doctor.status, 0, doctor.stderr);
  const byName = new Map(report.checks.map((check) => [check.name, check]));
  const redis = byName.get('redis');
  assert.equal(redis?.status, 'pass', JSON.stringify(redis));
  assert.match(redis!.detail, new RegExp(`${release}-redis:6379 accepts the stack's password and answers PING`));
  const replication = byName.get('replication');
  assert.equal(replication?.status, 'pass', JSON.stringify(replication));
  assert.match(replication!.detail, /reached 1 sync worker\(s\) \(pod mxstack-synapse-sync-/);
});

test('backup, then restore brings it back: the earlier message is there, a later one gone, every worker pod Ready again', { skip, timeout: 1_200_000 }, async () => {
  const archive = join(workDir, 'backup.tar');
  let started = Date.now();
  await mxstackOk(['backup', '--output', archive, ...onRelease()]);
  timings.backup = seconds(started);
  assert.ok(existsSync(archive));
  await sendText(sessions.alice!, facts.roomId!, 'after backup', 'workers-2');
  const workerPodsBefore = new Set((await releasePods()).filter((pod) => pod.component.startsWith('synapse-')).map((pod) => pod.uid));

  started = Date.now();
  await mxstackOk(['restore', archive, '--yes', ...onRelease()]);
  timings.restore = seconds(started);
  // Every pool is back with Ready pods, each a new one (a StatefulSet's pod keeps its name, not its uid): the restore restarted the workers too.
  const pods = await waitUntil('every pod of the release Ready again', 300_000, async () => {
    const now = await releasePods();
    return now.every((pod) => pod.ready) && workerPoolComponents.every((component) => now.some((pod) => pod.component === component)) ? now : undefined;
  }, 2000);
  const workerPods = pods.filter((pod) => pod.component.startsWith('synapse-'));
  assert.deepEqual(workerPods.filter((pod) => workerPodsBefore.has(pod.uid)).map((pod) => pod.name), [], 'worker pods that were not restarted');
  const bodies = await waitUntil('the restored room through the router', 180_000, () => readAllMessageBodies(sessions.alice!, facts.roomId!).catch(() => undefined), 1000);
  timings['restore → served'] = seconds(started);
  assert.ok(bodies.includes('before backup'), bodies.join(' | '));
  assert.ok(!bodies.includes('after backup'), bodies.join(' | '));
});

test('the large preset: every object, HPAs and PDBs included, accepted by the API server (server-side dry run)', { skip, timeout: 600_000 }, async () => {
  const large = ['-n', namespace!, '--release', 'large', '--set', 'synapse.server.name=large.test', '--set', 'synapse.workers.preset=large', '--set', 'synapse.workers.pools.sync.autoscaling.enabled=true', '--set', 'networkPolicy.enabled=true'];
  const rendered = parseAllDocuments(await mxstackOk(['render', ...large]))
    .map((doc) => doc.toJS() as { kind?: string } | null)
    .filter((object): object is { kind: string } => Boolean(object?.kind));
  const kinds = (kind: string) => rendered.filter((object) => object.kind === kind).length;
  assert.ok(kinds('HorizontalPodAutoscaler') >= 1, 'the large preset renders an HPA');
  assert.ok(kinds('PodDisruptionBudget') >= 6, `the large preset renders PDBs for its pools of two (${kinds('PodDisruptionBudget')})`);
  assert.ok(kinds('StatefulSet') >= 8 && kinds('Deployment') >= 5, 'worker StatefulSets and Deployments');
  const started = Date.now();
  const output = await mxstackOk(['install', ...large, '--dry-run'], 300_000);
  timings['large preset server-side dry run'] = seconds(started);
  const accepted = /(\d+) objects accepted by the API server/.exec(output);
  assert.ok(accepted, output);
  assert.equal(Number(accepted[1]), rendered.length, output);
  // Nothing was stored.
  assert.equal((await kubectlOk(['get', 'hpa,pdb,statefulsets,deployments', '-n', namespace!, '-l', 'app.kubernetes.io/instance=large', '-o', 'name'])).trim(), '');
});
