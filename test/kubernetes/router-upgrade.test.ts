/**
 * The router keeps serving through upgrades, on a real Kubernetes cluster: a client polls the Matrix API
 * through the router's Service without pause while `mxstack upgrade` rolls Synapse out (a changed
 * homeserver.yaml) and then the router itself (a changed pod annotation), and every answer that is not a
 * 2xx is counted, during each upgrade and after the command returned. The counts are printed; the
 * assertions are on the counts (no timing is asserted).
 *
 * A minimal release (no coturn, no Element Web, no 2FA): what is under test is the router and Synapse's
 * rollout. The cluster and images: as test/kubernetes/release.test.ts.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { freeLoopbackPort } from '../support/component-stacks.js';
import { createTestNamespace, testCluster, type TestCluster, type TestNamespace } from '../support/kubernetes-cluster.js';
import { E2eSuite, mxstackOkOn, seconds } from '../support/kubernetes-e2e.js';
import { startServiceProxy, type ServiceProxy } from '../support/service-proxy.js';

const availability = await testCluster();
const skip = availability.available ? false : availability.reason;

const release = 'mxstack';
const suite = new E2eSuite('kubernetes router upgrade e2e');
const { timings } = suite;

let cluster: TestCluster;
let testNamespace: TestNamespace | undefined;
let namespace: string;
let workDir: string;
let valuesFile: string;
let router: ServiceProxy | undefined;
let routerPort: number;

const releaseArgs = (extra: string[] = []) => ['-n', namespace, '--release', release, '-f', valuesFile, ...extra];

/** One request on a fresh connection (as a new client would make it): the status, or `error` when none came. */
function versionsStatus(): Promise<number | 'error'> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port: routerPort, path: '/_matrix/client/versions', agent: false, timeout: 30_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 'error'));
      res.on('error', () => resolve('error'));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve('error'));
    req.end();
  });
}

interface Answer {
  at: number;
  status: number | 'error';
}

/** Polls without pause until stopped; the answers in order. */
function startPolling(): { answers: Answer[]; stop: () => Promise<void> } {
  const answers: Answer[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const status = await versionsStatus();
      answers.push({ at: Date.now(), status });
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  })();
  return {
    answers,
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

const failed = (answers: Answer[]) => answers.filter((a) => a.status === 'error' || a.status < 200 || a.status > 299);
const describe = (answers: Answer[]) => {
  const counts = new Map<string, number>();
  for (const a of failed(answers)) counts.set(String(a.status), (counts.get(String(a.status)) ?? 0) + 1);
  return `${failed(answers).length} of ${answers.length} not 2xx (${[...counts].map(([status, n]) => `${status}×${n}`).join(', ') || 'none'})`;
};

/** Runs an upgrade while polling; the answers during the command and in the 15 s after it returned. */
async function pollThrough(what: string, sets: string[]): Promise<{ during: Answer[]; afterwards: Answer[] }> {
  const polling = startPolling();
  // A steady start: the router serves before the upgrade begins.
  await new Promise((resolve) => setTimeout(resolve, 3000));
  const started = Date.now();
  await mxstackOkOn(cluster, ['upgrade', ...releaseArgs([...sets, '--timeout', '10m'])]);
  const returned = Date.now();
  timings[`upgrade (${what})`] = seconds(started, returned);
  await new Promise((resolve) => setTimeout(resolve, 15_000));
  await polling.stop();
  const during = polling.answers.filter((a) => a.at <= returned);
  const afterwards = polling.answers.filter((a) => a.at > returned);
  suite.log(`${what}: during the upgrade ${describe(during)}; after it returned ${describe(afterwards)}`);
  return { during, afterwards };
}

before(async () => {
  if (skip) return;
  workDir = mkdtempSync(join(tmpdir(), 'mxstack-k8s-router-'));
  cluster = (availability as { cluster: TestCluster }).cluster;
  suite.loadImages(cluster);
  testNamespace = await createTestNamespace(cluster, 'router');
  namespace = testNamespace.name;
  suite.log(`namespace ${namespace}`);
  routerPort = await freeLoopbackPort();
  valuesFile = join(workDir, 'values.yaml');
  writeFileSync(
    valuesFile,
    stringify({
      synapse: { server: { name: 'example.test', publicBaseurl: `http://localhost:${routerPort}/`, turn: { enabled: false } } },
      element: { enabled: false },
      coturn: { enabled: false },
    }),
  );
  router = await startServiceProxy(cluster, namespace, `${release}-router`, 8080, routerPort);
  const started = Date.now();
  await mxstackOkOn(cluster, ['install', ...releaseArgs(['--timeout', '10m'])]);
  timings['install → Ready'] = seconds(started);
}, { timeout: 1_800_000 });

after(async () => {
  await router?.close();
  if (testNamespace && !process.env.MXSTACK_TEST_KEEP_NAMESPACE) await testNamespace.delete();
  if (workDir) rmSync(workDir, { recursive: true, force: true });
  if (!skip) suite.printDurations();
}, { timeout: 300_000 });

test('the router answers every request through an upgrade that restarts Synapse, and at once after it', { skip, timeout: 900_000 }, async () => {
  const { during, afterwards } = await pollThrough('Synapse rollout', ['--set', 'synapse.server.media.maxUploadSize=20M']);
  assert.ok(during.length > 0 && afterwards.length > 0);
  // Synapse's one main process is recreated (no second one may run): the router holds the requests meanwhile.
  assert.deepEqual(failed(during), [], `during Synapse's rollout: ${describe(during)}`);
  assert.deepEqual(failed(afterwards), [], `after the upgrade returned: ${describe(afterwards)}`);
});

test('a rollout of the router itself answers every request', { skip, timeout: 900_000 }, async () => {
  const { during, afterwards } = await pollThrough('router rollout', ['--set', 'synapse.server.media.maxUploadSize=20M', '--set', 'router.podAnnotations.e2e-rollout=1']);
  assert.deepEqual(failed(during), [], `during the router's rollout: ${describe(during)}`);
  assert.deepEqual(failed(afterwards), [], `after the upgrade returned: ${describe(afterwards)}`);
});
