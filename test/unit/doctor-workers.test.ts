/**
 * The doctor's worker lines against stand-ins on loopback: `redis` (AUTH and PING with the stack's
 * password, a RESP server that checks it) and `replication` (an event sent through a stand-in router must
 * reach every sync worker's own sync), reached the way each target reaches them: the Kubernetes environment
 * through port-forwards to the Redis Service and to each Ready sync pod (a fake KubernetesWorkloads maps them
 * to the stand-ins). Also where the Kubernetes doctor tells to read logs (a CloudNativePG Cluster has no
 * StatefulSet) and which pods count as Ready. The real programs: test/kubernetes/workers.test.ts and
 * test/integration/workers*.test.ts.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { checkRedis, checkReplication } from '../../src/ops/doctor/workers.js';
import type { DoctorEnvironment } from '../../src/ops/doctor/checks.js';
import { kubernetesDoctorEnvironment, kubernetesLogsHint, localDoctorEnvironment, withPodPorts, type KubernetesWorkloads } from '../../src/ops/doctor/environments.js';
import { compileLocalStack, resolveLocalPorts } from '../../src/targets/local/placement.js';
import { stateLayout } from '../../src/targets/local/state.js';
import { loadValues } from '../../src/values/load.js';
import { readyPodNames } from '../../src/targets/kubernetes/target-adapter.js';
import type { ComponentName, Stack } from '../../src/stack/model.js';
import { FakeHttp, FakeTarget, stackWith } from './ops-auth-fakes.js';

const redisPassword = 'redis-correct-password';
const adminToken = 'admin-token';

/** A RESP server answering AUTH (against redisPassword) and PING, like Redis with requirepass. */
class FakeRedis {
  private server?: Server;
  port = 0;
  readonly connections: number[] = [];

  async start(): Promise<this> {
    this.server = createServer((socket: Socket) => {
      this.connections.push(Date.now());
      let buffered = '';
      let authenticated = false;
      socket.on('data', (chunk: Buffer) => {
        buffered += chunk.toString('utf8');
        for (;;) {
          const parsed = parseCommand(buffered);
          if (!parsed) return;
          buffered = buffered.slice(parsed.consumed);
          const [command, ...args] = parsed.args;
          if (command?.toUpperCase() === 'AUTH') {
            authenticated = args[0] === redisPassword;
            socket.write(authenticated ? '+OK\r\n' : '-WRONGPASS invalid username-password pair or user is disabled.\r\n');
          } else if (command?.toUpperCase() === 'PING') {
            socket.write(authenticated ? '+PONG\r\n' : '-NOAUTH Authentication required.\r\n');
          } else socket.write('-ERR unknown command\r\n');
        }
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  stop(): Promise<void> {
    return new Promise((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

/** One RESP array of bulk strings at the start of `text`, or undefined while incomplete. */
function parseCommand(text: string): { args: string[]; consumed: number } | undefined {
  const lines = text.split('\r\n');
  if (lines.length < 2 || !lines[0]!.startsWith('*')) return undefined;
  const count = Number(lines[0]!.slice(1));
  if (lines.length < 1 + count * 2 + 1) return undefined;
  const args: string[] = [];
  for (let i = 0; i < count; i++) args.push(lines[2 + i * 2]!);
  return { args, consumed: lines.slice(0, 1 + count * 2).join('\r\n').length + 2 };
}

/** The router's side: createRoom, send, and the admin API's room deletion (what withSynapse reaches). */
const sentEvents: string[] = [];
const deletedRooms: string[] = [];
let router: FakeHttp;
/** Sync workers by name: `sees` says whether replication reaches it. */
const syncWorkers = new Map<string, { http: FakeHttp; sees: boolean }>();
let redis: FakeRedis;
const roomId = '!doctor:example.org';

function syncWorker(name: string): FakeHttp {
  return new FakeHttp((request, url) => {
    if (url.pathname !== '/_matrix/client/v3/sync' || request.headers.authorization !== `Bearer ${adminToken}`) return undefined;
    const since = url.searchParams.get('since');
    const event = sentEvents.at(-1);
    if (since === null || event === undefined || !syncWorkers.get(name)!.sees) return { status: 200, body: { next_batch: `s${sentEvents.length}`, rooms: {} } };
    return { status: 200, body: { next_batch: `s${sentEvents.length + 1}`, rooms: { join: { [roomId]: { timeline: { events: [{ event_id: event }] } } } } } };
  });
}

before(async () => {
  redis = await new FakeRedis().start();
  router = await new FakeHttp((request, url) => {
    if (request.headers.authorization !== `Bearer ${adminToken}`) return { status: 401, body: { errcode: 'M_MISSING_TOKEN' } };
    if (request.method === 'POST' && url.pathname === '/_matrix/client/v3/createRoom') return { status: 200, body: { room_id: roomId } };
    if (request.method === 'PUT' && url.pathname.startsWith(`/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/`)) {
      sentEvents.push(`$event${sentEvents.length + 1}`);
      return { status: 200, body: { event_id: sentEvents.at(-1) } };
    }
    if (request.method === 'DELETE' && url.pathname === `/_synapse/admin/v2/rooms/${encodeURIComponent(roomId)}`) {
      deletedRooms.push(roomId);
      return { status: 200, body: { delete_id: 'd1' } };
    }
    return undefined;
  }).start();
  for (const name of ['mx-synapse-sync-6d9f-a', 'mx-synapse-sync-6d9f-b']) {
    const http = await syncWorker(name).start();
    syncWorkers.set(name, { http, sees: true });
  }
});

after(async () => {
  await redis.stop();
  await router.stop();
  for (const { http } of syncWorkers.values()) await http.stop();
});

/** A release's target whose Services and pods are the stand-ins: every forward opened is recorded, and closed. */
class FakeKubernetes extends FakeTarget implements KubernetesWorkloads {
  readonly forwards: string[] = [];
  open = 0;
  readyPodsAsked: Record<string, string>[] = [];
  constructor(stack: Stack) {
    super(stack, router.url, 'http://127.0.0.1:9/');
  }
  workload(component: ComponentName): string {
    return `deployment.apps/${this.stack.objectName(component)}`;
  }
  async withServicePort<T>(service: string, port: number, use: (localPort: number) => Promise<T>): Promise<T> {
    this.forwards.push(`service/${service}:${port}`);
    if (service === this.stack.objectName('redis')) return this.forwarded(() => use(redis.port));
    if (service === this.stack.objectName('router')) return this.forwarded(() => use(Number(new URL(router.url).port)));
    throw new Error(`no stand-in for service/${service}`);
  }
  async readyPods(labels: Record<string, string>): Promise<string[]> {
    this.readyPodsAsked.push(labels);
    return [...syncWorkers.keys()];
  }
  async withPodPort<T>(pod: string, port: number, use: (localPort: number) => Promise<T>): Promise<T> {
    this.forwards.push(`pod/${pod}:${port}`);
    return this.forwarded(() => use(Number(new URL(syncWorkers.get(pod)!.http.url).port)));
  }
  private async forwarded<T>(use: () => Promise<T>): Promise<T> {
    this.open++;
    try {
      return await use();
    } finally {
      this.open--;
    }
  }
}

const workersStack = () => stackWith({ auth: false, sets: ['synapse.workers.preset=small'] });

function kubernetesEnvironment(stack = workersStack(), password: string | undefined = redisPassword): { env: DoctorEnvironment; target: FakeKubernetes } {
  const target = new FakeKubernetes(stack);
  if (password !== undefined && stack.secrets.workers) target.setSecret(stack.secrets.workers.redisPassword, password);
  const env = { ...kubernetesDoctorEnvironment(target, 'chat'), adminAccessToken: async () => adminToken };
  return { env, target };
}

test('Kubernetes: redis passes through a port-forward to the Redis Service, with the stored password', async () => {
  const { env, target } = kubernetesEnvironment();
  const [line, ...more] = await checkRedis(env);
  assert.equal(more.length, 0);
  assert.equal(line!.status, 'pass', line!.detail);
  assert.match(line!.detail, /mx-redis:6379 accepts the stack's password and answers PING/);
  assert.deepEqual(target.forwards, ['service/mx-redis:6379']);
  assert.equal(target.open, 0, 'the port-forward is closed after the check');
});

test('Kubernetes: a Redis refusing the stored password fails, with its answer and where to read its log', async () => {
  const { env } = kubernetesEnvironment(undefined, 'a-stale-password');
  const [line] = await checkRedis(env);
  assert.equal(line!.status, 'fail');
  assert.match(line!.detail, /answered -WRONGPASS .* \/ -NOAUTH/);
  assert.match(line!.fix!, /kubectl logs -n chat deployment\/mx-redis/);
  assert.ok(!line!.detail.includes('a-stale-password') && !line!.fix!.includes('a-stale-password'), 'the password is in no message');
});

test('Kubernetes: a missing Redis password fails naming the Secret', async () => {
  const { env } = kubernetesEnvironment(undefined, '');
  const [line] = await checkRedis(env);
  assert.equal(line!.status, 'fail');
  assert.match(line!.detail, /the Redis password mx-redis\/password is missing/);
});

test('without workers there is no redis and no replication line (nothing is forwarded)', async () => {
  const { env, target } = kubernetesEnvironment(stackWith({ auth: false }));
  assert.equal(env.withRedis, undefined);
  assert.deepEqual(await checkRedis(env), []);
  assert.deepEqual(await checkReplication(env), []);
  assert.deepEqual(target.forwards, []);
});

test('Kubernetes: replication passes when every Ready sync pod sees the event sent through the router in the cluster', async () => {
  for (const worker of syncWorkers.values()) worker.sees = true;
  deletedRooms.length = 0;
  const { env, target } = kubernetesEnvironment();
  const [line, ...more] = await checkReplication(env, 5000);
  assert.equal(more.length, 0);
  assert.equal(line!.status, 'pass', line!.detail);
  assert.match(line!.detail, /reached 2 sync worker\(s\) \(pod mx-synapse-sync-6d9f-a, pod mx-synapse-sync-6d9f-b\)/);
  // The pods of the sync pool, by its selector labels; each pod's own HTTP port; the router's Service.
  assert.deepEqual(target.readyPodsAsked, [workersStack().selectorLabels('synapse-sync')]);
  assert.deepEqual(target.forwards, ['pod/mx-synapse-sync-6d9f-a:8008', 'pod/mx-synapse-sync-6d9f-b:8008', 'service/mx-router:8080']);
  assert.equal(target.open, 0, 'every port-forward is closed after the check');
  const sent = router.requests.filter((r) => r.method === 'PUT');
  assert.ok(sent.length > 0, 'the event went through the router');
  assert.deepEqual(deletedRooms, [roomId], 'the check room is deleted');
});

test('Kubernetes: a sync pod that never sees the event fails the replication line, naming the pod', async () => {
  syncWorkers.get('mx-synapse-sync-6d9f-a')!.sees = true;
  syncWorkers.get('mx-synapse-sync-6d9f-b')!.sees = false;
  deletedRooms.length = 0;
  try {
    const { env } = kubernetesEnvironment();
    const [line] = await checkReplication(env, 500);
    assert.equal(line!.status, 'fail');
    assert.match(line!.detail, /not seen by the sync worker pod mx-synapse-sync-6d9f-b within 0.5 s/);
    assert.match(line!.fix!, /Redis and the workers/);
    assert.deepEqual(deletedRooms, [roomId], 'the check room is deleted after a failure too');
  } finally {
    syncWorkers.get('mx-synapse-sync-6d9f-b')!.sees = true;
  }
});

test('Kubernetes: a sync pool without a Ready pod fails (the router then serves syncs from the main process)', async () => {
  const { env, target } = kubernetesEnvironment();
  target.readyPods = async () => [];
  const [line] = await checkReplication(env, 500);
  assert.equal(line!.status, 'fail');
  assert.match(line!.detail, /the sync pool has no live process to ask/);
  assert.match(line!.fix!, /kubectl logs -n chat deployment\/mx-synapse-sync/);
});

test('withPodPorts opens one forward per pod and hands all of them over at once, then closes them', async () => {
  const { target } = kubernetesEnvironment();
  const seen = await withPodPorts(target, ['mx-synapse-sync-6d9f-a', 'mx-synapse-sync-6d9f-b'], 8008, async (forwarded) => {
    assert.equal(target.open, 2);
    return forwarded.map((f) => f.pod);
  });
  assert.deepEqual(seen, ['mx-synapse-sync-6d9f-a', 'mx-synapse-sync-6d9f-b']);
  assert.equal(target.open, 0);
  assert.deepEqual(await withPodPorts(target, [], 8008, async (forwarded) => forwarded.length), 0);
});

test('log hints name what exists: the StatefulSet of mxstack\'s PostgreSQL, the pods of a CloudNativePG Cluster, worker pools by kind', () => {
  const plain = stackWith({ auth: false, sets: ['synapse.workers.preset=small', 'synapse.workers.pools.sync.autoscaling.enabled=true', 'synapse.workers.pools.sync.autoscaling.maxReplicas=3'] });
  assert.equal(kubernetesLogsHint(plain, 'chat', 'postgresql'), '`kubectl logs -n chat statefulset/mx-postgresql`');
  assert.equal(kubernetesLogsHint(plain, 'chat', 'synapse'), '`kubectl logs -n chat deployment/mx-synapse`');
  assert.equal(kubernetesLogsHint(plain, 'chat', 'redis'), '`kubectl logs -n chat deployment/mx-redis`');
  assert.equal(kubernetesLogsHint(plain, 'chat', 'synapse-stream-writer'), '`kubectl logs -n chat statefulset/mx-synapse-stream-writer`');
  assert.equal(kubernetesLogsHint(plain, 'chat', 'synapse-client-reader'), '`kubectl logs -n chat deployment/mx-synapse-client-reader`');
  const selector = Object.entries(plain.selectorLabels('synapse-sync')).map(([k, v]) => `${k}=${v}`).join(',');
  assert.equal(kubernetesLogsHint(plain, 'chat', 'synapse-sync'), `\`kubectl logs -n chat -l ${selector} --prefix\``);

  const cnpg = stackWith({ auth: false, sets: ['postgresql.mode=cloudnative-pg'] });
  assert.equal(cnpg.database.provider, 'cloudnative-pg');
  const hint = kubernetesLogsHint(cnpg, 'chat', 'postgresql');
  assert.equal(hint, `\`kubectl logs -n chat -l cnpg.io/cluster=${cnpg.database.cluster!} --prefix\``);
  assert.doesNotMatch(hint, /statefulset/);
});

test('readyPodNames: Ready pods only, not those being deleted, sorted', () => {
  const pod = (name: string, ready: boolean, deleting = false) => ({
    metadata: { name, ...(deleting ? { deletionTimestamp: '2026-12-04T00:00:00Z' } : {}) },
    status: { conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] },
  });
  const output = JSON.stringify({ kind: 'List', items: [pod('b', true), pod('a', true), pod('c', false), pod('d', true, true), { metadata: { name: 'e' } }] });
  assert.deepEqual(readyPodNames(output), ['a', 'b']);
  assert.deepEqual(readyPodNames(''), []);
});

test('Kubernetes: a line per worker pool with its Ready pods; a pool without one fails', async () => {
  const { env, target } = kubernetesEnvironment();
  target.readyPods = async (labels) => (labels['app.kubernetes.io/name'] === 'synapse-pusher' ? [] : [`${labels['app.kubernetes.io/name']}-0`]);
  const health = await env.componentHealth();
  const pools = health.filter((line) => line.component.startsWith('synapse-'));
  assert.equal(pools.length, 14, pools.map((line) => line.component).join(' '));
  const sync = pools.find((line) => line.component === 'synapse-sync')!;
  assert.deepEqual([sync.healthy, sync.detail], [true, 'deployment/mx-synapse-sync: 1 Ready pod(s) (synapse-sync-0).']);
  const pusher = pools.find((line) => line.component === 'synapse-pusher')!;
  assert.deepEqual([pusher.healthy, pusher.detail], [false, 'statefulset/mx-synapse-pusher has no Ready pod.']);
});

test('local: Redis and each sync worker are reached on their loopback ports, named after their process', async () => {
  let next = 41000;
  const ports = resolveLocalPorts({}, undefined, { single: () => next++, range: (length) => [42000, 42000 + length - 1] });
  const values = loadValues({ sets: ['synapse.server.name=example.org', 'synapse.workers.preset=large'] });
  const stack = compileLocalStack(values, stateLayout('/tmp/mxstack-doctor-workers-state'), ports);
  const env = localDoctorEnvironment(new FakeTarget(stack, router.url, 'http://127.0.0.1:9/'), '/tmp/mxstack-doctor-workers-state', async () => ({ stateDir: '', running: true, components: {} }));
  assert.deepEqual(await env.withRedis!(async (host, port) => [host, port]), [stack.placement.hosts.redis, stack.placement.ports.redis]);
  const workers = await env.withSyncWorkers!(async (found) => found);
  assert.deepEqual(workers.map((worker) => worker.name), ['synapse-sync-1', 'synapse-sync-2']);
  for (const worker of workers) assert.match(worker.baseUrl, /^http:\/\/127\.0\.0\.1:\d+\/$/);
  assert.notEqual(workers[0]!.baseUrl, workers[1]!.baseUrl);
});
