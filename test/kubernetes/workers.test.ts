/**
 * A release with Synapse workers (synapse.workers.preset small, the sync pool autoscaling) on a real
 * Kubernetes cluster, through the real command line: install → every pool's pods Ready, the
 * HorizontalPodAutoscaler accepted by the API server and taken up by its controller, the worker
 * NetworkPolicies in place (the test cluster does not enforce them: test/unit/kubernetes-invariants.test.ts
 * proves their flows) → two users sign in with a password through the router (client readers), a room, a
 * message sent through the router (event creator, event persister) arrives at matrix-js-sdk's sync, which the
 * router sends to the sync pool: the sync pod counted the syncs and the main process none.
 *
 * Element Web, coturn, 2FA and Redis's exporter stay off (release.test.ts covers the first three; no exporter
 * image is available offline); the CPU requests are lowered so that the sixteen Synapse processes fit a
 * two-core test node. The durations are printed at the end; nothing asserts on them.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { collectLiveMessages, createPrivateRoom, loginWithPassword, sendText, startSyncedClient, waitUntil, type MatrixSession } from '../support/matrix-client.js';
import { freeLoopbackPort } from '../support/component-stacks.js';
import { createTestNamespace, testCluster, type TestCluster, type TestNamespace } from '../support/kubernetes-cluster.js';
import { E2eSuite, kubectlOk as kubectlOkOn, mxstackOkOn, seconds } from '../support/kubernetes-e2e.js';
import { startServiceProxy, type ServiceProxy } from '../support/service-proxy.js';

// Top-level await: the skip reason must be known when the cases are declared.
const availability = await testCluster();
const skip = availability.available ? false : availability.reason;

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
let apiBase: string;

const passwords = { alice: 'alice-workers-correct-horse-1', bob: 'bob-workers-battery-staple-2' };

const kubectlOk = (args: readonly string[]) => kubectlOkOn(cluster, args);
const mxstackOk = (args: string[], timeoutMs = 1_200_000) => mxstackOkOn(cluster, args, timeoutMs);

const releaseArgs = (extra: string[] = []) => ['-n', namespace!, '--release', release, '-f', valuesFile, ...extra];

function writeValues(routerPort: number): string {
  apiBase = `http://127.0.0.1:${routerPort}/`;
  const file = join(workDir, 'values.yaml');
  writeFileSync(
    file,
    stringify({
      synapse: {
        server: { name: serverName, publicBaseurl: `http://localhost:${routerPort}/`, turn: { enabled: false } },
        // Every worker takes these unless its pool sets its own: sixteen processes on a two-core node.
        resources: { requests: { cpu: '20m', memory: '128Mi' } },
        workers: { preset: 'small', pools: { sync: { autoscaling: { enabled: true, minReplicas: 1, maxReplicas: 3 } } } },
      },
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
  items: { metadata: { name: string; labels?: Record<string, string>; ownerReferences?: { kind: string }[] }; status: { phase: string; conditions?: { type: string; status: string }[] } }[];
}

async function podsOf(component: string): Promise<string[]> {
  const pods = JSON.parse(await kubectlOk(['get', 'pods', '-n', namespace!, '-l', `app.kubernetes.io/name=${component}`, '-o', 'json'])) as PodList;
  return pods.items.map((pod) => pod.metadata.name);
}

/** A Synapse process's Prometheus counter of /sync responses, read through the API server's pod proxy. */
async function syncResponses(pod: string): Promise<number> {
  const metrics = await kubectlOk(['get', '--raw', `/api/v1/namespaces/${namespace}/pods/${pod}:9000/proxy/_synapse/metrics`]);
  return metrics
    .split('\n')
    .filter((line) => line.startsWith('synapse_http_server_response_count_total{') && line.includes('servlet="SyncRestServlet"'))
    .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
}

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
}, { timeout: 1_800_000 });

after(async () => {
  await router?.close();
  if (testNamespace && !process.env.MXSTACK_TEST_KEEP_NAMESPACE) await testNamespace.delete();
  if (workDir) rmSync(workDir, { recursive: true, force: true });
  if (!skip) suite.printDurations();
}, { timeout: 300_000 });

test('install with the small preset: every pool Ready, the HPA accepted and observed, the worker NetworkPolicies in place', { skip, timeout: 1_200_000 }, async () => {
  const started = Date.now();
  await mxstackOk(['install', ...releaseArgs(['--timeout', '15m'])]);
  timings['install → Ready'] = seconds(started);

  const pods = JSON.parse(await kubectlOk(['get', 'pods', '-n', namespace!, '-o', 'json'])) as PodList;
  const running = pods.items.filter((pod) => pod.metadata.ownerReferences?.[0]?.kind !== 'Job');
  for (const pod of running) {
    assert.ok(pod.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'), `pod ${pod.metadata.name} is not Ready (${pod.status.phase})`);
  }
  const components = new Set(running.map((pod) => pod.metadata.labels?.['app.kubernetes.io/name']));
  for (const pool of ['sync', 'initial-sync', 'client-reader', 'event-creator', 'event-persister', 'federation-inbound', 'federation-reader', 'federation-sender', 'pusher', 'media-repository', 'stream-writer', 'background', 'user-directory', 'appservice-notifier']) {
    assert.ok(components.has(`synapse-${pool}`), `a Ready pod of the ${pool} pool among ${[...components].join(' ')}`);
  }
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

test('a message sent through the router reaches matrix-js-sdk\'s sync, served by the sync pool', { skip, timeout: 600_000 }, async () => {
  const started = Date.now();
  const sessions: Record<string, MatrixSession> = {};
  for (const name of ['alice', 'bob'] as const) {
    const file = join(workDir, `${name}.password`);
    writeFileSync(file, `${passwords[name]}\n`, { mode: 0o600 });
    await mxstackOk(['users', 'create', name, '--password-file', file, '--kubernetes', ...releaseArgs()], 300_000);
    sessions[name] = await loginWithPassword(apiBase, `@${name}:${serverName}`, passwords[name]);
  }
  const [syncPod] = await podsOf('synapse-sync');
  const [mainPod] = await podsOf('synapse');
  assert.ok(syncPod && mainPod);
  const mainSyncsBefore = await syncResponses(mainPod);

  const roomId = await createPrivateRoom(sessions.alice!, [sessions.bob!], 'workers room');
  const bob = await startSyncedClient(sessions.bob!, 120_000);
  try {
    const live = collectLiveMessages(bob.client, roomId);
    await sendText(sessions.alice!, roomId, 'through the workers', 'workers-1');
    await live.waitFor(1, 120_000);
    assert.deepEqual(live.bodies, ['through the workers']);
    live.stop();
  } finally {
    bob.stop();
  }
  timings['users, room, message → sync'] = seconds(started);
  assert.ok((await syncResponses(syncPod)) > 0, 'the sync pod answered the syncs');
  assert.equal(await syncResponses(mainPod), mainSyncsBefore, 'the main process answered no sync');
});
