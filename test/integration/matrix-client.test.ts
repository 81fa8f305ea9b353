/**
 * The local stack driven by real Matrix clients (matrix-js-sdk and plain HTTP) through the router:
 * messaging, media, well-known, metrics, persistence across down/up, and recovery from a killed Synapse.
 * The tests share one stack and run in order (later ones read what earlier ones wrote).
 *
 * MXSTACK_TEST_WORKERS_PRESET=small|large runs the same journey with that synapse.workers preset (the
 * default, none, is the single Synapse process); with workers, worker processes are killed too.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { runCliAsync, startLocalStack, testPresetRuns, testWorkersPreset, workersPresetSets, type LocalStackHandle } from '../support/local-stack.js';
import { LocalTarget } from '../../src/targets/local/target-adapter.js';
import { workerPoolComponent } from '../../src/components/synapse/worker-kubernetes.js';
import type { DoctorReport } from '../../src/ops/doctor/report.js';
import {
  MatrixHttpError,
  SynapseAdmin,
  collectLiveMessages,
  createPrivateRoom,
  loginWithPassword,
  matrixRequest,
  readAllMessageBodies,
  sendText,
  startSyncedClient,
  waitUntil,
  type MatrixSession,
} from '../support/matrix-client.js';

let stack: LocalStackHandle;
let admin: SynapseAdmin;
let alice: MatrixSession;
let bob: MatrixSession;
const passwords = new Map<string, string>();
let roomId: string;
const firstMessages = Array.from({ length: 100 }, (_, index) => `message ${index} ${randomBytes(4).toString('hex')}`);

const endpoints = () => stack.status.endpoints!;

const workersPreset = testWorkersPreset;

before(async () => {
  stack = await startLocalStack({ sets: workersPresetSets(), timeoutMs: 1_200_000 });
}, { timeout: 1_300_000 });

after(async () => {
  await stack?.dispose();
}, { timeout: 300_000 });

test('the admin logs in, creates two users who log in with their passwords', { timeout: 120_000 }, async () => {
  admin = await SynapseAdmin.login(endpoints().client, stack.adminCredentials(), endpoints().synapse);
  const whoami = await matrixRequest<{ user_id: string }>(endpoints().client, 'GET', '/_matrix/client/v3/account/whoami', {
    accessToken: admin.session.accessToken,
  });
  assert.equal(whoami.user_id, stack.adminCredentials().user_id);

  const sessions: MatrixSession[] = [];
  for (const localpart of ['alice', 'bob']) {
    const password = randomBytes(12).toString('base64url');
    const userId = await admin.createUser(localpart, password);
    await admin.liftRateLimits(userId);
    passwords.set(userId, password);
    sessions.push(await loginWithPassword(endpoints().client, userId, password));
  }
  [alice, bob] = sessions as [MatrixSession, MatrixSession];
  assert.equal(alice.userId, `@alice:${stack.status.serverName}`);
  await assert.rejects(loginWithPassword(endpoints().client, bob.userId, 'not the password'), (error: unknown) => {
    assert.ok(error instanceof MatrixHttpError && error.status === 403, String(error));
    return true;
  });
});

test('100 messages sent by one user all reach the other through /sync, in order', { timeout: 180_000 }, async () => {
  roomId = await createPrivateRoom(alice, [bob], 'integration');
  const receiver = await startSyncedClient(bob);
  const live = collectLiveMessages(receiver.client, roomId);
  try {
    for (const [index, body] of firstMessages.entries()) await sendText(alice, roomId, body, `first-${index}`);
    await live.waitFor(firstMessages.length, 60_000);
    assert.deepEqual(live.bodies, firstMessages);
    const room = receiver.client.getRoom(roomId);
    assert.equal(room?.getMyMembership(), 'join');
  } finally {
    live.stop();
    receiver.stop();
  }
});

test('1 MiB of random media uploads and downloads byte-identical; download needs a token', { timeout: 120_000 }, async () => {
  const media = randomBytes(1024 * 1024);
  const upload = await fetch(new URL('/_matrix/media/v3/upload?filename=random.bin', endpoints().client), {
    method: 'POST',
    headers: { authorization: `Bearer ${alice.accessToken}`, 'content-type': 'application/octet-stream' },
    body: media,
    signal: AbortSignal.timeout(60_000),
  });
  assert.equal(upload.status, 200, await upload.clone().text());
  const { content_uri: contentUri } = (await upload.json()) as { content_uri: string };
  const match = /^mxc:\/\/([^/]+)\/([^/]+)$/.exec(contentUri);
  assert.ok(match, contentUri);
  const downloadUrl = new URL(`/_matrix/client/v1/media/download/${match[1]}/${match[2]}`, endpoints().client);

  const download = await fetch(downloadUrl, { headers: { authorization: `Bearer ${bob.accessToken}` }, signal: AbortSignal.timeout(60_000) });
  assert.equal(download.status, 200);
  const downloaded = Buffer.from(await download.arrayBuffer());
  assert.equal(downloaded.length, media.length);
  assert.ok(downloaded.equals(media), 'downloaded bytes differ from the upload');

  const anonymous = await fetch(downloadUrl, { signal: AbortSignal.timeout(30_000) });
  assert.equal(anonymous.status, 401);
});

test('the router serves the client and server well-known JSON', { timeout: 30_000 }, async () => {
  const client = await fetch(new URL('/.well-known/matrix/client', endpoints().wellKnown), { signal: AbortSignal.timeout(10_000) });
  assert.equal(client.status, 200);
  assert.match(client.headers.get('content-type') ?? '', /^application\/json/);
  assert.equal(client.headers.get('access-control-allow-origin'), '*');
  const clientJson = (await client.json()) as { 'm.homeserver'?: { base_url?: string } };
  assert.equal(typeof clientJson['m.homeserver']?.base_url, 'string');

  const server = await fetch(new URL('/.well-known/matrix/server', endpoints().wellKnown), { signal: AbortSignal.timeout(10_000) });
  assert.equal(server.status, 200);
  const serverJson = (await server.json()) as { 'm.server'?: string };
  assert.match(serverJson['m.server'] ?? '', /^[^:]+(:\d+)?$/);
});

/** A metric each exporter always has, so an answer from the wrong program cannot pass. */
const knownMetrics = {
  synapse: 'synapse_build_info',
  router: 'haproxy_process_start_time_seconds',
  coturn: 'turn_total_allocations',
};

test('every metrics endpoint answers 200 with Prometheus text containing a known metric', { timeout: 60_000 }, async () => {
  const urls = endpoints().metrics;
  assert.ok(urls.some((url) => url.includes('/_synapse/metrics')), `no Synapse metrics URL in ${urls.join(', ')}`);
  for (const url of urls) {
    const response = await fetch(url, { signal: AbortSignal.timeout(15_000) });
    assert.equal(response.status, 200, url);
    const text = await response.text();
    assert.match(text, /^# (HELP|TYPE) /m, `${url} is not Prometheus text`);
    const expected = url.includes('/_synapse/metrics') ? [knownMetrics.synapse] : [knownMetrics.router, knownMetrics.coturn];
    assert.ok(expected.some((metric) => text.includes(metric)), `${url} has none of ${expected.join(', ')}`);
  }
});

test('down then up: users, rooms and messages are still there', { timeout: 1_300_000 }, async () => {
  await stack.down();
  const stopped = await stack.readStatus();
  assert.equal(stopped.running, false);
  await assert.rejects(fetch(new URL('/_matrix/client/versions', endpoints().client), { signal: AbortSignal.timeout(5_000) }));

  await stack.up();
  // Old access tokens still work: the sessions live in PostgreSQL, not in the process.
  assert.deepEqual(await readAllMessageBodies(alice, roomId), firstMessages);
  const joined = await matrixRequest<{ joined_rooms: string[] }>(endpoints().client, 'GET', '/_matrix/client/v3/joined_rooms', {
    accessToken: bob.accessToken,
  });
  assert.ok(joined.joined_rooms.includes(roomId));
  const again = await loginWithPassword(endpoints().client, bob.userId, passwords.get(bob.userId)!);
  assert.equal(again.userId, bob.userId);
});

test('kill -9 of Synapse while a client sends: it comes back and every acknowledged message is kept', { timeout: 300_000 }, async (t) => {
  const synapseBefore = (await stack.readStatus()).components.synapse;
  assert.ok(synapseBefore?.pid, 'status reports the Synapse pid');
  const acknowledged: string[] = [];
  const total = 60;
  const killAfter = 10;
  const sendDeadline = Date.now() + 180_000;
  let killed = false;
  let failedAttempts = 0;

  for (let index = 0; index < total; index++) {
    const body = `after-kill-test ${index}`;
    // Retry with the same transaction id: Synapse treats a repeated id as the same message.
    for (;;) {
      if (Date.now() > sendDeadline) throw new Error(`message ${index} not accepted within the deadline (${failedAttempts} failed attempts)`);
      try {
        await sendText(alice, roomId, body, `kill-${index}`, 10_000);
        acknowledged.push(body);
        break;
      } catch {
        failedAttempts++;
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
    if (!killed && acknowledged.length === killAfter) {
      process.kill(synapseBefore.pid, 'SIGKILL');
      killed = true;
    }
  }
  // Whether a send fails depends on timing: HAProxy retries a refused connection, and an idle machine
  // restarts Synapse within those retries (with workers, sends need not touch the main process at all).
  // The kill itself is proven below: a new pid and one more restart.
  t.diagnostic(`sends that failed and were retried: ${failedAttempts}`);

  const synapseAfter = await waitUntil('Synapse restarted by the supervisor', 120_000, async () => {
    const synapse = (await stack.readStatus()).components.synapse;
    return synapse?.pid && synapse.pid !== synapseBefore.pid && synapse.healthy ? synapse : undefined;
  });
  assert.ok(synapseAfter.restarts > synapseBefore.restarts, `restarts ${synapseBefore.restarts} -> ${synapseAfter.restarts}`);

  const history = await readAllMessageBodies(bob, roomId);
  const missing = acknowledged.filter((body) => !history.includes(body));
  assert.deepEqual(missing, [], 'acknowledged messages missing after the restart');
  assert.deepEqual(history.slice(0, firstMessages.length), firstMessages);
});

/**
 * Sends `total` messages with retries (same transaction id), killing each named component with SIGKILL once
 * `killAt` messages are acknowledged; returns the acknowledged bodies and how many attempts failed.
 */
async function sendWhileKilling(prefix: string, total: number, kills: { component: string; pid: number; killAt: number }[]): Promise<{ acknowledged: string[]; failedAttempts: number }> {
  const acknowledged: string[] = [];
  const sendDeadline = Date.now() + 240_000;
  let failedAttempts = 0;
  for (let index = 0; index < total; index++) {
    const body = `${prefix} ${index}`;
    for (;;) {
      if (Date.now() > sendDeadline) throw new Error(`message ${index} not accepted within the deadline (${failedAttempts} failed attempts)`);
      try {
        await sendText(alice, roomId, body, `${prefix}-${index}`, 10_000);
        acknowledged.push(body);
        break;
      } catch {
        failedAttempts++;
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
    for (const kill of kills.filter((k) => k.killAt === acknowledged.length)) process.kill(kill.pid, 'SIGKILL');
  }
  return { acknowledged, failedAttempts };
}

test('kill -9 of workers while a client sends: the router falls back, the supervisor restarts them, every acknowledged message is kept', {
  timeout: 600_000,
  skip: workersPreset === 'none' ? 'the single-process stack has no workers' : false,
}, async () => {
  const before = (await stack.readStatus()).components;
  // One process of each pool on the message's path that the preset runs (the sync preset: only the sync worker).
  const victims = (['eventCreator', 'sync', 'eventPersister'] as const).filter(testPresetRuns).map((pool) => `${workerPoolComponent(pool)}-1`);
  assert.ok(victims.length > 0, `the preset (${workersPreset}) runs a pool on the message path`);
  const kills = victims.map((component, i) => {
    const pid = before[component]?.pid;
    assert.ok(pid, `status reports the pid of ${component}`);
    return { component, pid, killAt: 10 + 15 * i };
  });
  const { acknowledged } = await sendWhileKilling('worker-kill-test', 60, kills);

  for (const { component, pid } of kills) {
    const after = await waitUntil(`${component} restarted by the supervisor`, 180_000, async () => {
      const status = (await stack.readStatus()).components[component];
      return status?.pid && status.pid !== pid && status.healthy ? status : undefined;
    });
    assert.ok(after.restarts > (before[component]?.restarts ?? 0), `${component}: restarts ${before[component]?.restarts} -> ${after.restarts}`);
  }
  const history = await readAllMessageBodies(bob, roomId);
  assert.deepEqual(acknowledged.filter((body) => !history.includes(body)), [], 'acknowledged messages missing after the kills');
});

async function doctorChecks(): Promise<DoctorReport['checks']> {
  const result = await runCliAsync(['doctor', '--state-dir', stack.stateDir, '--output', 'json'], { timeoutMs: 240_000 });
  return (JSON.parse(result.stdout) as DoctorReport).checks;
}

test('doctor with workers: every worker, Redis and replication pass; without Redis, Redis and replication fail', {
  timeout: 600_000,
  skip: workersPreset === 'none' ? 'the single-process stack has no workers' : false,
}, async () => {
  const healthy = await doctorChecks();
  const byName = new Map(healthy.map((check) => [check.name, check]));
  const components = Object.keys((await stack.readStatus()).components);
  for (const component of components) {
    assert.equal(byName.get(`component ${component}`)?.status, 'pass', `component ${component}: ${JSON.stringify(byName.get(`component ${component}`))}`);
  }
  assert.equal(byName.get('redis')?.status, 'pass', JSON.stringify(byName.get('redis')));
  assert.equal(byName.get('replication')?.status, 'pass', JSON.stringify(byName.get('replication')));
  // Every sync worker of the preset (small: 1, large: 2).
  const syncWorkers = components.filter((name) => /^synapse-sync-\d+$/.test(name)).length;
  assert.ok(syncWorkers > 0, components.join(', '));
  assert.match(byName.get('replication')!.detail ?? '', new RegExp(`reached ${syncWorkers} sync worker`));

  const target = new LocalTarget({ stateDir: stack.stateDir });
  await target.stop('redis');
  try {
    const broken = new Map((await doctorChecks()).map((check) => [check.name, check]));
    assert.equal(broken.get('redis')?.status, 'fail');
    assert.equal(broken.get('replication')?.status, 'fail', JSON.stringify(broken.get('replication')));
  } finally {
    await target.start('redis');
  }
  await waitUntil('Redis healthy again', 120_000, async () => (await stack.readStatus()).components.redis?.healthy || undefined);
});
