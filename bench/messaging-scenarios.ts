/**
 * The messaging scenarios of `npm run bench`, run against any client API base URL (mxstack's router, or a
 * stock Synapse directly). Every loop is bounded: by a message count, a send budget and a drain deadline.
 */
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { mapWithConcurrency } from '../src/ops/admin-api.js';
import { SynapseAdmin, createPrivateRoom, sendText, type MatrixSession } from '../test/support/matrix-client.js';
import { messagePlan, roomMembership, summariseDeliveries, type DeliverySummary, type MessageObservation } from './statistics.js';

export interface OneRoomOptions {
  users: number;
  messages: number;
  concurrency: number;
  budgetMs: number;
}

export interface MultiRoomOptions {
  users: number;
  rooms: number;
  membersPerRoom: number;
  messages: number;
  concurrency: number;
  budgetMs: number;
}

export interface ScenarioResult extends DeliverySummary {
  sendErrors: number;
  sendP50Ms: number;
  /** `uptime`'s three load averages before and after the timed part: these machines are shared. */
  loadBefore: number[];
  loadAfter: number[];
  /** CPU seconds the benchmark's own process (senders and syncing clients) used in the timed part. */
  clientCpuSeconds: number;
  wallSeconds: number;
}

/** Called right before the first send and right after the drain: what to read around the timed part only. */
export interface TimedPartProbe {
  start(): Promise<void>;
  end(): Promise<void>;
}

const progress = (line: string) => process.stderr.write(`${line}\n`);
const drainMs = 30_000;

/**
 * A syncing client: long-polls /sync for m.room.message events in every room it is in and records when
 * each body first arrives. Runs until `stop()`; every request is bounded.
 */
function startSyncingClient(session: MatrixSession) {
  const arrivals = new Map<string, number>();
  const controller = new AbortController();
  const filter = JSON.stringify({
    presence: { types: [] },
    account_data: { types: [] },
    room: {
      timeline: { limit: 1000, types: ['m.room.message'] },
      state: { lazy_load_members: true, types: [] },
      ephemeral: { types: [] },
      account_data: { types: [] },
    },
  });
  type SyncAnswer = { next_batch: string; rooms?: { join?: Record<string, { timeline?: { events?: Array<{ content?: { body?: string } }> } }> } };
  const sync = async (since: string | undefined, timeoutMs: number): Promise<SyncAnswer> => {
    const query = new URLSearchParams({ filter, timeout: String(timeoutMs) });
    if (since) query.set('since', since);
    const response = await fetch(new URL(`/_matrix/client/v3/sync?${query}`, session.baseUrl), {
      headers: { authorization: `Bearer ${session.accessToken}` },
      signal: AbortSignal.any([controller.signal, AbortSignal.timeout(timeoutMs + 60_000)]),
    });
    if (!response.ok) throw new Error(`/sync answered ${response.status}`);
    return (await response.json()) as SyncAnswer;
  };
  const ready = sync(undefined, 0).then((first) => first.next_batch);
  const loop = (async () => {
    let since = await ready;
    while (!controller.signal.aborted) {
      const answer = await sync(since, 10_000).catch((error: unknown) => {
        if (controller.signal.aborted) return undefined;
        throw error;
      });
      if (!answer) return;
      const now = performance.now();
      for (const room of Object.values(answer.rooms?.join ?? {})) {
        for (const event of room.timeline?.events ?? []) {
          const body = event.content?.body;
          if (typeof body === 'string' && !arrivals.has(body)) arrivals.set(body, now);
        }
      }
      since = answer.next_batch;
    }
  })();
  return {
    arrivals,
    ready,
    async stop() {
      controller.abort();
      await loop.catch((error: unknown) => progress(`a syncing client failed: ${String(error)}`));
    },
  };
}

type SyncingClient = ReturnType<typeof startSyncingClient>;

interface PlannedMessage {
  sender: MatrixSession;
  roomId: string;
  body: string;
  /** Who must see it. */
  receivers: SyncingClient[];
}

/** Sends the planned messages with `concurrency` in flight, waits for them to arrive, and summarises. */
async function sendAndObserve(planned: PlannedMessage[], clients: SyncingClient[], concurrency: number, budgetMs: number, tag: string, probe: TimedPartProbe): Promise<ScenarioResult> {
  await probe.start();
  const loadBefore = loadavg();
  const cpuBefore = process.cpuUsage();
  const sentAt: number[] = [];
  const acknowledged: boolean[] = [];
  const sendDurations: number[] = [];
  let sendErrors = 0;
  let next = 0;
  const startedAt = performance.now();
  const stopSendingAt = startedAt + budgetMs;
  const lane = async () => {
    while (next < planned.length && performance.now() < stopSendingAt) {
      const index = next++;
      const message = planned[index]!;
      sentAt[index] = performance.now();
      try {
        await sendText(message.sender, message.roomId, message.body, `bench-${tag}-${index}`, 60_000);
        sendDurations.push(performance.now() - sentAt[index]!);
        acknowledged[index] = true;
      } catch {
        sendErrors++;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));

  const sent = planned.slice(0, sentAt.length);
  const missing = () => sent.some((message, index) => acknowledged[index] && message.receivers.some((client) => !client.arrivals.has(message.body)));
  const drainDeadline = performance.now() + drainMs;
  while (performance.now() < drainDeadline && missing()) await new Promise((resolve) => setTimeout(resolve, 100));
  const wallSeconds = (performance.now() - startedAt) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  const loadAfter = loadavg();
  await probe.end();
  await Promise.all(clients.map((client) => client.stop()));

  const observations: MessageObservation[] = sent.map((message, index) => ({
    sentAt: sentAt[index]!,
    acknowledged: acknowledged[index] === true,
    arrivals: message.receivers.map((client) => client.arrivals.get(message.body)),
  }));
  const sendP50Ms = [...sendDurations].sort((a, b) => a - b)[Math.floor(sendDurations.length / 2)] ?? Number.NaN;
  return {
    ...summariseDeliveries(observations),
    sendErrors,
    sendP50Ms,
    loadBefore,
    loadAfter,
    clientCpuSeconds: (cpu.user + cpu.system) / 1e6,
    wallSeconds,
  };
}

async function createUsers(admin: SynapseAdmin, clientBaseUrl: string, prefix: string, count: number): Promise<MatrixSession[]> {
  return mapWithConcurrency(Array.from({ length: count }, (_, index) => index), 4, async (index) => ({
    ...(await admin.createTestUser(`${prefix}-${index}`)).session,
    baseUrl: clientBaseUrl,
  }));
}

/**
 * One room: N senders and one extra receiving user (the original `npm run bench` scenario). Messages go
 * round-robin over the senders; latency is send start → arrival at the receiving client.
 */
export async function runOneRoom(label: string, admin: SynapseAdmin, clientBaseUrl: string, options: OneRoomOptions, probe: TimedPartProbe): Promise<ScenarioResult> {
  const tag = randomBytes(3).toString('hex');
  progress(`[${label}] one room: creating ${options.users} users and a receiver`);
  const senders = await createUsers(admin, clientBaseUrl, `bench-${tag}`, options.users);
  const [receiverSession] = await createUsers(admin, clientBaseUrl, `bench-${tag}-receiver`, 1);
  const roomId = await createPrivateRoom(senders[0]!, [...senders.slice(1), receiverSession!], `bench ${tag}`);
  const receiver = startSyncingClient(receiverSession!);
  await receiver.ready;
  const planned = Array.from({ length: options.messages }, (_, index) => ({
    sender: senders[index % senders.length]!,
    roomId,
    body: `bench ${tag} ${index}`,
    receivers: [receiver],
  }));
  progress(`[${label}] one room: sending ${options.messages} messages, ${options.concurrency} in flight`);
  return sendAndObserve(planned, [receiver], options.concurrency, options.budgetMs, tag, probe);
}

/**
 * Many rooms: U users, R rooms of K members each (overlapping, see roomMembership), every user syncing.
 * Message i goes to room i mod R from its members in turn; each must reach the room's other K − 1 members.
 * Latency is send start → arrival at one receiver, over every (message, receiver) pair.
 */
export async function runMultiRoom(label: string, admin: SynapseAdmin, clientBaseUrl: string, options: MultiRoomOptions, probe: TimedPartProbe): Promise<ScenarioResult> {
  const tag = randomBytes(3).toString('hex');
  const membership = roomMembership(options.users, options.rooms, options.membersPerRoom);
  progress(`[${label}] multi-room: creating ${options.users} users`);
  const users = await createUsers(admin, clientBaseUrl, `bench-${tag}`, options.users);
  progress(`[${label}] multi-room: creating ${options.rooms} rooms of ${options.membersPerRoom}`);
  const roomIds = await mapWithConcurrency(membership, 4, (members, room) =>
    createPrivateRoom(users[members[0]!]!, members.slice(1).map((member) => users[member]!), `bench ${tag} ${room}`),
  );
  const clients = users.map(startSyncingClient);
  await Promise.all(clients.map((client) => client.ready));
  const planned = Array.from({ length: options.messages }, (_, index) => {
    const { room, sender } = messagePlan(index, membership);
    return {
      sender: users[sender]!,
      roomId: roomIds[room]!,
      body: `bench ${tag} ${index}`,
      receivers: membership[room]!.filter((member) => member !== sender).map((member) => clients[member]!),
    };
  });
  progress(`[${label}] multi-room: sending ${options.messages} messages, ${options.concurrency} in flight, ${options.users} clients syncing`);
  return sendAndObserve(planned, clients, options.concurrency, options.budgetMs, tag, probe);
}
