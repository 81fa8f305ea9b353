/**
 * Local-target messaging benchmark. Prints numbers, asserts nothing.
 *
 *   npm run bench -- [--users 10] [--messages 300] [--concurrency 10] [--budget-seconds 120] [--up-runs 3] [--no-stock]
 *
 * 1. `mxstack up` on a fresh state directory, timed to healthy; the messaging scenario through the router;
 *    then `down`/`up` again (each `up` timed), so the up times cover one fresh and further warm starts.
 * 2. The same scenario against a STOCK Synapse (generated config, same runtime, same PostgreSQL).
 *
 * Scenario: N users in one room; M messages sent with C in flight, round-robin over the users; a separate
 * receiving client long-polls /sync and timestamps each arrival. Latency is send start -> arrival.
 * Rate limits of all benchmark users are lifted through the admin API on both servers.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import { postgresqlBinDir, runtimeDir, runtimeIsPresent } from '../src/targets/local/runtime.js';
import { readLocalStackStatus, runCliAsync } from '../test/support/local-stack.js';
import {
  SynapseAdmin,
  createPrivateRoom,
  readAdminCredentials,
  sendText,
  type MatrixSession,
} from '../test/support/matrix-client.js';
import { startStockSynapse } from './stock-synapse.js';

interface ScenarioOptions {
  users: number;
  messages: number;
  concurrency: number;
  budgetMs: number;
}

interface ScenarioResult {
  label: string;
  attempted: number;
  acknowledged: number;
  received: number;
  sendErrors: number;
  messagesPerSecond: number;
  latencyP50Ms: number;
  latencyP95Ms: number;
  sendP50Ms: number;
  /** 1-minute load average before and after: these machines are shared. */
  loadBefore: number;
  loadAfter: number;
}

const progress = (line: string) => process.stderr.write(`${line}\n`);

/** Nearest-rank percentile of an unsorted sample. */
export function percentile(values: number[], fraction: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1))]!;
}

/**
 * A receiving client: long-polls /sync filtered to one room's messages and records when each body arrives.
 * Runs until `stop()`; every request is bounded.
 */
function startReceiver(session: MatrixSession, roomId: string) {
  const arrivals = new Map<string, number>();
  const controller = new AbortController();
  const filter = JSON.stringify({
    presence: { types: [] },
    account_data: { types: [] },
    room: {
      rooms: [roomId],
      timeline: { limit: 1000, types: ['m.room.message'] },
      state: { lazy_load_members: true, types: [] },
      ephemeral: { types: [] },
      account_data: { types: [] },
    },
  });
  const sync = async (since: string | undefined, timeoutMs: number) => {
    const query = new URLSearchParams({ filter, timeout: String(timeoutMs) });
    if (since) query.set('since', since);
    const response = await fetch(new URL(`/_matrix/client/v3/sync?${query}`, session.baseUrl), {
      headers: { authorization: `Bearer ${session.accessToken}` },
      signal: AbortSignal.any([controller.signal, AbortSignal.timeout(timeoutMs + 30_000)]),
    });
    if (!response.ok) throw new Error(`/sync answered ${response.status}`);
    return (await response.json()) as {
      next_batch: string;
      rooms?: { join?: Record<string, { timeline?: { events?: Array<{ content?: { body?: string } }> } }> };
    };
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
      for (const event of answer.rooms?.join?.[roomId]?.timeline?.events ?? []) {
        const body = event.content?.body;
        if (typeof body === 'string' && !arrivals.has(body)) arrivals.set(body, now);
      }
      since = answer.next_batch;
    }
  })();
  return {
    arrivals,
    ready,
    async stop() {
      controller.abort();
      await loop.catch(() => undefined);
    },
  };
}

async function runScenario(label: string, admin: SynapseAdmin, clientBaseUrl: string, options: ScenarioOptions): Promise<ScenarioResult> {
  progress(`[${label}] creating ${options.users} users and a receiver`);
  const tag = randomBytes(3).toString('hex');
  const senders: MatrixSession[] = [];
  for (let index = 0; index < options.users; index++) {
    const { session } = await admin.createTestUser(`bench-${tag}-${index}`);
    senders.push({ ...session, baseUrl: clientBaseUrl });
  }
  const receiverSession = { ...(await admin.createTestUser(`bench-${tag}-receiver`)).session, baseUrl: clientBaseUrl };
  const roomId = await createPrivateRoom(senders[0]!, [...senders.slice(1), receiverSession], `bench ${tag}`);

  const receiver = startReceiver(receiverSession, roomId);
  await receiver.ready;
  progress(`[${label}] sending ${options.messages} messages, ${options.concurrency} in flight`);

  const loadBefore = loadavg()[0]!;
  const sentAt = new Map<string, number>();
  const sendDurations: number[] = [];
  const acknowledged: string[] = [];
  let sendErrors = 0;
  let next = 0;
  const startedAt = performance.now();
  const stopSendingAt = startedAt + options.budgetMs;

  const worker = async () => {
    while (next < options.messages && performance.now() < stopSendingAt) {
      const index = next++;
      const sender = senders[index % senders.length]!;
      const body = `bench ${tag} ${index}`;
      const start = performance.now();
      sentAt.set(body, start);
      try {
        await sendText(sender, roomId, body, `bench-${tag}-${index}`, 30_000);
        sendDurations.push(performance.now() - start);
        acknowledged.push(body);
      } catch {
        sendErrors++;
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));

  const drainDeadline = performance.now() + 30_000;
  while (performance.now() < drainDeadline && acknowledged.some((body) => !receiver.arrivals.has(body))) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await receiver.stop();

  const latencies: number[] = [];
  let lastArrival = startedAt;
  for (const body of acknowledged) {
    const arrival = receiver.arrivals.get(body);
    if (arrival === undefined) continue;
    latencies.push(arrival - sentAt.get(body)!);
    lastArrival = Math.max(lastArrival, arrival);
  }
  const elapsedSeconds = (lastArrival - startedAt) / 1000;
  return {
    label,
    attempted: sentAt.size,
    acknowledged: acknowledged.length,
    received: latencies.length,
    sendErrors,
    messagesPerSecond: elapsedSeconds > 0 ? latencies.length / elapsedSeconds : 0,
    latencyP50Ms: percentile(latencies, 0.5),
    latencyP95Ms: percentile(latencies, 0.95),
    sendP50Ms: percentile(sendDurations, 0.5),
    loadBefore,
    loadAfter: loadavg()[0]!,
  };
}

async function timedUp(stateDir: string): Promise<number> {
  const start = performance.now();
  const result = await runCliAsync(['up', '--state-dir', stateDir], { timeoutMs: 600_000 });
  const seconds = (performance.now() - start) / 1000;
  if (result.status !== 0) throw new Error(`mxstack up failed (exit ${result.status}):\n${result.stderr}`);
  return seconds;
}

async function down(stateDir: string): Promise<void> {
  const result = await runCliAsync(['down', '--state-dir', stateDir], { timeoutMs: 240_000 });
  if (result.status !== 0) throw new Error(`mxstack down failed (exit ${result.status}):\n${result.stderr}`);
}

async function benchmarkMxstack(options: ScenarioOptions, upRuns: number): Promise<{ scenario: ScenarioResult; upSeconds: number[] }> {
  const parent = mkdtempSync(join(tmpdir(), 'mxstack-bench-'));
  const stateDir = join(parent, 'state');
  const upSeconds: number[] = [];
  let running = false;
  try {
    progress('[mxstack] up (fresh state directory)');
    upSeconds.push(await timedUp(stateDir));
    running = true;
    const status = await readLocalStackStatus(stateDir);
    if (!status.healthy || !status.endpoints || !status.adminCredentialsFile) throw new Error('the stack is not healthy after up');
    const admin = await SynapseAdmin.login(status.endpoints.client, await readAdminCredentials(status.adminCredentialsFile), status.endpoints.synapse);
    const scenario = await runScenario('mxstack defaults', admin, status.endpoints.client, options);
    for (let run = 2; run <= upRuns; run++) {
      await down(stateDir);
      running = false;
      progress(`[mxstack] up run ${run} (existing state directory)`);
      upSeconds.push(await timedUp(stateDir));
      running = true;
    }
    return { scenario, upSeconds };
  } finally {
    if (running) await down(stateDir).catch((error: unknown) => progress(`down failed: ${String(error)}`));
    rmSync(parent, { recursive: true, force: true });
  }
}

async function benchmarkStock(options: ScenarioOptions): Promise<ScenarioResult> {
  const dir = runtimeDir();
  if (!runtimeIsPresent(dir)) throw new Error(`no runtime at ${dir}: run \`mxstack runtime setup\` first`);
  progress('[stock] starting PostgreSQL and a stock Synapse from the same runtime');
  const stock = await startStockSynapse(dir, postgresqlBinDir(dir));
  try {
    const password = randomBytes(18).toString('base64url');
    const adminId = await stock.registerAdmin('admin', password);
    const admin = await SynapseAdmin.login(stock.baseUrl, { user_id: adminId, password });
    return await runScenario('stock Synapse', admin, stock.baseUrl, options);
  } finally {
    await stock.stop();
  }
}

function formatTable(results: ScenarioResult[]): string {
  const header = ['scenario', 'sent', 'acked', 'received', 'errors', 'msg/s', 'p50 ms', 'p95 ms', 'send p50 ms', 'load'];
  const rows = results.map((result) => [
    result.label,
    String(result.attempted),
    String(result.acknowledged),
    String(result.received),
    String(result.sendErrors),
    result.messagesPerSecond.toFixed(1),
    result.latencyP50Ms.toFixed(0),
    result.latencyP95Ms.toFixed(0),
    result.sendP50Ms.toFixed(0),
    `${result.loadBefore.toFixed(1)} -> ${result.loadAfter.toFixed(1)}`,
  ]);
  const widths = header.map((cell, column) => Math.max(cell.length, ...rows.map((row) => row[column]!.length)));
  const line = (cells: string[]) => cells.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join('  ');
  return [line(header), line(widths.map((width) => '-'.repeat(width))), ...rows.map(line)].join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      users: { type: 'string', default: '10' },
      messages: { type: 'string', default: '300' },
      concurrency: { type: 'string', default: '10' },
      'budget-seconds': { type: 'string', default: '120' },
      'up-runs': { type: 'string', default: '3' },
      'no-stock': { type: 'boolean', default: false },
    },
  });
  const options: ScenarioOptions = {
    users: Number(values.users),
    messages: Number(values.messages),
    concurrency: Number(values.concurrency),
    budgetMs: Number(values['budget-seconds']) * 1000,
  };
  const upRuns = Number(values['up-runs']);
  for (const [name, value] of Object.entries({ ...options, upRuns })) {
    if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} must be a positive integer`);
  }

  const mxstack = await benchmarkMxstack(options, upRuns);
  const results = [mxstack.scenario];
  if (!values['no-stock']) results.push(await benchmarkStock(options));

  console.log(`\nOne room, ${options.users} sending users + 1 receiving client, ${options.messages} messages, ${options.concurrency} in flight`);
  console.log('(mxstack through its router; the stock Synapse directly, it has no router)\n');
  console.log(formatTable(results));
  console.log('\nmxstack up -> healthy:');
  mxstack.upSeconds.forEach((seconds, index) =>
    console.log(`  run ${index + 1} (${index === 0 ? 'fresh state directory' : 'existing state directory'}): ${seconds.toFixed(1)} s`),
  );
}

await main();
