/**
 * The doctor's checks of a stack with Synapse workers: Redis answers its password, and replication works
 * end to end (an event sent through the router, created by one process and persisted by another, is seen
 * by every process of the sync pool, asked directly).
 */
import { connect } from 'node:net';
import { randomBytes } from 'node:crypto';
import type { DoctorEnvironment } from './checks.js';
import { errorSentence, fail, pass, type DoctorCheck } from './report.js';
import { kebabCase, poolMaxProcesses, workersEnabled } from '../../values/worker-pools.js';

const redisTimeoutMs = 10_000;
const replicationTimeoutMs = 30_000;

/** Sends AUTH and PING on one connection; resolves with Redis's two answers (RESP simple strings or errors). */
export function redisAuthPing(host: string, port: number, password: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    let received = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`Redis at ${host}:${port} did not answer within ${redisTimeoutMs / 1000} s`));
    }, redisTimeoutMs);
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.on('connect', () => {
      const command = (...args: string[]) => `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
      socket.write(command('AUTH', password) + command('PING'));
    });
    socket.on('data', (chunk) => {
      received += chunk.toString('utf8');
      const lines = received.split('\r\n').filter((line) => line.length > 0);
      if (lines.length >= 2) {
        clearTimeout(timer);
        socket.end();
        resolve(lines.slice(0, 2));
      }
    });
  });
}

export async function checkRedis(env: DoctorEnvironment): Promise<DoctorCheck[]> {
  const { stack } = env.target;
  if (!stack.secrets.workers || !env.withRedis) return [];
  const name = 'redis';
  try {
    const password = (await env.target.readSecret(stack.secrets.workers.redisPassword))?.trim();
    if (!password) return [fail(name, `the Redis password ${stack.secrets.workers.redisPassword.name}/${stack.secrets.workers.redisPassword.key} is missing.`, 'run `mxstack secrets init`.')];
    const where = `${stack.placement.hosts.redis}:${stack.placement.ports.redis}`;
    const answers = await env.withRedis((host, port) => redisAuthPing(host, port, password));
    return answers[0] === '+OK' && answers[1] === '+PONG'
      ? [pass(name, `Redis at ${where} accepts the stack's password and answers PING.`)]
      : [fail(name, `Redis at ${where} answered ${answers.join(' / ')} to AUTH and PING.`, `read its log (${env.logsHint('redis')}); the Synapse processes cannot replicate without it.`)];
  } catch (error) {
    return [fail(name, errorSentence(error), `read its log (${env.logsHint('redis')}).`)];
  }
}

interface MatrixAnswer {
  status: number;
  body: Record<string, unknown>;
}

async function matrix(baseUrl: string, token: string, method: string, path: string, body?: unknown, timeoutMs = 15_000): Promise<MatrixAnswer> {
  const response = await fetch(new URL(path.replace(/^\//, ''), baseUrl), {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await response.text();
  let parsed: Record<string, unknown> = {};
  try {
    parsed = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // Not JSON: the status says enough.
  }
  return { status: response.status, body: parsed };
}

async function must(answer: Promise<MatrixAnswer>, what: string): Promise<Record<string, unknown>> {
  const { status, body } = await answer;
  if (status !== 200) throw new Error(`${what} answered ${status} ${String(body.errcode ?? '')}`.trim());
  return body;
}

/** Whether a sync answer holds the event in the room's timeline. */
function syncHolds(body: Record<string, unknown>, roomId: string, eventId: string): boolean {
  const join = ((body.rooms as Record<string, unknown> | undefined)?.join ?? {}) as Record<string, { timeline?: { events?: { event_id?: string }[] } }>;
  return (join[roomId]?.timeline?.events ?? []).some((event) => event.event_id === eventId);
}

/**
 * A room of its own (created, then deleted with the admin API): an event sent through the router (inside
 * the deployment when the environment reaches it there, else where clients do) must show up in an
 * incremental sync of every process of the sync pool, asked directly, within `timeoutMs`.
 */
export async function checkReplication(env: DoctorEnvironment, timeoutMs = replicationTimeoutMs): Promise<DoctorCheck[]> {
  const { stack } = env.target;
  if (!workersEnabled(stack.values) || !env.withSyncWorkers) return [];
  const name = 'replication';
  const fix = `read the logs of Redis and the workers (${env.logsHint('redis')}); every Synapse process must reach Redis and the main process's replication listener.`;
  let roomId: string | undefined;
  try {
    const withRouter = env.throughCluster?.withRouter ?? (<T>(use: (baseUrl: string) => Promise<T>) => use(env.clientBaseUrl));
    return await env.withSyncWorkers(async (syncWorkers) => {
      if (syncWorkers.length === 0) {
        return poolMaxProcesses(stack.values.synapse.workers, 'sync') > 0
          ? [fail(name, 'the sync pool has no live process to ask.', `read the sync workers' logs (${env.logsHint(`synapse-${kebabCase('sync')}`)}).`)]
          : [pass(name, 'no sync worker: the main process serves syncs (nothing to replicate to).')];
      }
      const token = await env.adminAccessToken();
      return withRouter(async (base) => {
        const room = await must(matrix(base, token, 'POST', '_matrix/client/v3/createRoom', { preset: 'private_chat', name: 'mxstack doctor replication check' }), 'createRoom');
        roomId = String(room.room_id);
        const since = new Map<string, string>();
        for (const worker of syncWorkers) {
          const first = await must(matrix(worker.baseUrl, token, 'GET', '_matrix/client/v3/sync?timeout=0&filter={"room":{"timeline":{"limit":1}}}'), `sync on ${worker.name}`);
          since.set(worker.name, String(first.next_batch));
        }
        const txn = randomBytes(8).toString('hex');
        const sent = await must(
          matrix(base, token, 'PUT', `_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/${txn}`, { msgtype: 'm.notice', body: 'mxstack doctor' }),
          'sending an event',
        );
        const eventId = String(sent.event_id);
        const started = Date.now();
        for (const worker of syncWorkers) {
          let seen = false;
          let batch = since.get(worker.name)!;
          while (!seen && Date.now() - started < timeoutMs) {
            const answer = await must(matrix(worker.baseUrl, token, 'GET', `_matrix/client/v3/sync?timeout=5000&since=${encodeURIComponent(batch)}`, undefined, 20_000), `sync on ${worker.name}`);
            seen = syncHolds(answer, roomId, eventId);
            batch = String(answer.next_batch);
          }
          if (!seen) return [fail(name, `an event sent through the router was not seen by the sync worker ${worker.name} within ${timeoutMs / 1000} s.`, fix)];
        }
        const names = syncWorkers.map((worker) => worker.name).join(', ');
        return [pass(name, `an event sent through the router reached ${syncWorkers.length} sync worker(s) (${names}) in ${Date.now() - started} ms.`)];
      });
    });
  } catch (error) {
    return [fail(name, errorSentence(error), fix)];
  } finally {
    if (roomId) await deleteRoom(env, roomId).catch(() => undefined);
  }
}

async function deleteRoom(env: DoctorEnvironment, roomId: string): Promise<void> {
  const token = await env.adminAccessToken();
  await env.target.withSynapse((base) => matrix(base, token, 'DELETE', `_synapse/admin/v2/rooms/${encodeURIComponent(roomId)}`, { purge: true }));
}
