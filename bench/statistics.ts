/**
 * The messaging benchmark's arithmetic: pure functions over what the clients observed, so a unit test can
 * check them (test/unit/bench-statistics.test.ts). Nothing here measures or asserts time.
 */

/** Nearest-rank percentile of an unsorted sample; NaN for an empty one. */
export function percentile(values: readonly number[], fraction: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1))]!;
}

/** One message as the benchmark saw it: when its send started and when each expected receiver saw it. */
export interface MessageObservation {
  sentAt: number;
  /** Set once the server answered the send with 200. */
  acknowledged: boolean;
  /** Arrival time per receiver that was expected to see it (undefined: never seen). */
  arrivals: ReadonlyArray<number | undefined>;
}

export interface DeliverySummary {
  attempted: number;
  acknowledged: number;
  /** Acknowledged messages every expected receiver saw. */
  delivered: number;
  /** (message, receiver) pairs expected / seen, over acknowledged messages. */
  deliveriesExpected: number;
  deliveriesSeen: number;
  /** Delivered messages per second, from the first send to the last arrival of a delivered message. */
  messagesPerSecond: number;
  /** Send start → arrival, over every seen (message, receiver) pair of acknowledged messages. */
  latencyP50Ms: number;
  latencyP95Ms: number;
}

export function summariseDeliveries(messages: readonly MessageObservation[]): DeliverySummary {
  const latencies: number[] = [];
  let firstSend = Number.POSITIVE_INFINITY;
  let lastArrival = Number.NEGATIVE_INFINITY;
  let acknowledged = 0;
  let delivered = 0;
  let deliveriesExpected = 0;
  for (const message of messages) {
    firstSend = Math.min(firstSend, message.sentAt);
    if (!message.acknowledged) continue;
    acknowledged++;
    deliveriesExpected += message.arrivals.length;
    const seen = message.arrivals.filter((arrival): arrival is number => arrival !== undefined);
    for (const arrival of seen) latencies.push(arrival - message.sentAt);
    if (seen.length === message.arrivals.length) {
      delivered++;
      lastArrival = Math.max(lastArrival, ...seen);
    }
  }
  const elapsedSeconds = delivered > 0 ? (lastArrival - firstSend) / 1000 : 0;
  return {
    attempted: messages.length,
    acknowledged,
    delivered,
    deliveriesExpected,
    deliveriesSeen: latencies.length,
    messagesPerSecond: elapsedSeconds > 0 ? delivered / elapsedSeconds : 0,
    latencyP50Ms: percentile(latencies, 0.5),
    latencyP95Ms: percentile(latencies, 0.95),
  };
}

/**
 * Which users are in which room: room r holds `membersPerRoom` consecutive users starting at
 * r × users / rooms (wrapping), so every user is in about the same number of rooms and rooms overlap.
 */
export function roomMembership(users: number, rooms: number, membersPerRoom: number): number[][] {
  if (membersPerRoom > users) throw new Error(`a room cannot hold ${membersPerRoom} of ${users} users`);
  return Array.from({ length: rooms }, (_, room) => {
    const first = Math.floor((room * users) / rooms);
    return Array.from({ length: membersPerRoom }, (_, offset) => (first + offset) % users);
  });
}

/** Message i goes to room i mod rooms, sent by the members of that room in turn. */
export function messagePlan(index: number, membership: readonly (readonly number[])[]): { room: number; sender: number } {
  const room = index % membership.length;
  const members = membership[room]!;
  return { room, sender: members[Math.floor(index / membership.length) % members.length]! };
}

/** One configuration's result on one scenario, as the comparison needs it. */
export interface ConfigurationResult {
  configuration: string;
  messagesPerSecond: number;
  latencyP95Ms: number;
}

export interface GoalCheck {
  goal: string;
  ratio: number;
  target: string;
  met: boolean;
}

const byThroughput = (results: readonly ConfigurationResult[]) => [...results].sort((a, b) => b.messagesPerSecond - a.messagesPerSecond)[0];

/**
 * The goals as ratios from one run: the best worker preset (highest msg/s) against the monolith
 * (≥ 1.5× msg/s, ≤ 0.6× p95; `monolithGoals`, for the multi-room scenario) and the best mxstack
 * configuration against stock Synapse (≥ 1.3× msg/s, and a p95 at most 1/1.3 of stock's).
 */
export function goalChecks(
  results: readonly ConfigurationResult[],
  names: { monolith: string; stock: string; presets: readonly string[] },
  monolithGoals: boolean,
): GoalCheck[] {
  const checks: GoalCheck[] = [];
  const monolith = results.find((result) => result.configuration === names.monolith);
  const stock = results.find((result) => result.configuration === names.stock);
  const bestPreset = byThroughput(results.filter((result) => names.presets.includes(result.configuration)));
  if (monolithGoals && monolith && bestPreset) {
    const throughput = bestPreset.messagesPerSecond / monolith.messagesPerSecond;
    const latency = bestPreset.latencyP95Ms / monolith.latencyP95Ms;
    checks.push({ goal: `${bestPreset.configuration} / ${monolith.configuration} msg/s`, ratio: throughput, target: '>= 1.5', met: throughput >= 1.5 });
    checks.push({ goal: `${bestPreset.configuration} / ${monolith.configuration} p95`, ratio: latency, target: '<= 0.6', met: latency <= 0.6 });
  }
  const bestMxstack = byThroughput(results.filter((result) => result.configuration !== names.stock));
  if (stock && bestMxstack) {
    const throughput = bestMxstack.messagesPerSecond / stock.messagesPerSecond;
    const latency = stock.latencyP95Ms / bestMxstack.latencyP95Ms;
    checks.push({ goal: `${bestMxstack.configuration} / ${stock.configuration} msg/s`, ratio: throughput, target: '>= 1.3', met: throughput >= 1.3 });
    checks.push({ goal: `${stock.configuration} / ${bestMxstack.configuration} p95`, ratio: latency, target: '>= 1.3', met: latency >= 1.3 });
  }
  return checks;
}

/** One sample of a Prometheus text exposition: metric name, labels, value. */
export interface MetricSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const sampleLine = /^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const labelPair = /([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Parses the Prometheus text format (comments and unparsable lines skipped). */
export function parsePrometheusText(text: string): MetricSample[] {
  const samples: MetricSample[] = [];
  for (const line of text.split('\n')) {
    const match = sampleLine.exec(line);
    if (!match) continue;
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? '').matchAll(labelPair)) labels[key!] = value!.replace(/\\(.)/g, (_, character: string) => (character === 'n' ? '\n' : character));
    const value = Number(match[3]);
    if (!Number.isNaN(value)) samples.push({ name: match[1]!, labels, value });
  }
  return samples;
}

/** Sum of a metric's samples (named `name` or `alsoName`) grouped by one label (samples without the label under ''). */
export function sumByLabel(samples: readonly MetricSample[], name: string, label: string, alsoName?: string): Map<string, number> {
  const sums = new Map<string, number>();
  for (const sample of samples) {
    if (sample.name !== name && sample.name !== alsoName) continue;
    const key = sample.labels[label] ?? '';
    sums.set(key, (sums.get(key) ?? 0) + sample.value);
  }
  return sums;
}

/** after − before per key (counters; a key missing before counts from 0), largest first. */
export function counterGrowth(before: ReadonlyMap<string, number>, after: ReadonlyMap<string, number>): Array<[string, number]> {
  return [...after.entries()].map(([key, value]): [string, number] => [key, value - (before.get(key) ?? 0)]).sort((a, b) => b[1] - a[1]);
}

/** Milliseconds of CPU per delivered message: Synapse's processes (main and every worker) with PostgreSQL, and every process tree measured. */
export interface CpuPerMessage {
  /** synapse* and postgresql: the server's work per message, the number the configurations are compared on. */
  serverMs: number;
  /** Every measured process tree (the router and Redis too). */
  allMs: number;
}

export function cpuPerDeliveredMessage(cpuSeconds: Readonly<Record<string, number>>, delivered: number): CpuPerMessage | undefined {
  if (delivered <= 0) return undefined;
  const sum = (entries: Array<[string, number]>) => entries.reduce((total, [, seconds]) => total + seconds, 0);
  const entries = Object.entries(cpuSeconds);
  const server = entries.filter(([name]) => name === 'postgresql' || name === 'synapse' || name.startsWith('synapse-'));
  return { serverMs: (sum(server) / delivered) * 1000, allMs: (sum(entries) / delivered) * 1000 };
}
