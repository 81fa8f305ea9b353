/**
 * Local-target messaging benchmark. Prints numbers, asserts nothing. See bench/README.md.
 *
 *   npm run bench -- [--configs monolith,sync,small,large,stock] [--scenarios one-room,multi-room] [--quick]
 *                    [--set key=value ...] [sizes: see --help]
 *
 * Runs each configuration in turn (one stack at a time: mxstack with synapse.workers.preset none, sync,
 * small, large, then a stock Synapse), the chosen scenarios on each, and prints msg/s and p95 send → receive
 * latency per configuration, the ratios the scale-out goals are stated in, and where the CPU time went.
 */
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { postgresqlBinDir, runtimeDir, runtimeIsPresent } from '../src/targets/local/runtime.js';
import { startLocalStack } from '../test/support/local-stack.js';
import { SynapseAdmin, readAdminCredentials } from '../test/support/matrix-client.js';
import { runMultiRoom, runOneRoom, type MultiRoomOptions, type OneRoomOptions, type ScenarioResult, type TimedPartProbe } from './messaging-scenarios.js';
import { cpuSecondsBetween, treeCpuSeconds } from './process-usage.js';
import { countersBetween, readPostgresqlCounters, type PostgresqlCounters } from './postgresql-stats.js';
import { startStockSynapse } from './stock-synapse.js';
import { counterGrowth, cpuPerDeliveredMessage, goalChecks, parsePrometheusText, sumByLabel, type MetricSample } from './statistics.js';

const presetConfigurations = { monolith: 'none', sync: 'sync', small: 'small', large: 'large', variant: 'none' } as const;
const configurationNames = ['monolith', 'sync', 'small', 'large', 'stock'] as const;
/** The configurations that run workers: the ones the scale-out goals compare with the monolith. */
const workerPresetConfigurations = configurationNames.filter((name) => name !== 'stock' && presetConfigurations[name] !== 'none');
/** `variant`: the monolith with the --variant-set values on top, to compare a setting within one run (never a default). */
const selectableNames = [...configurationNames, 'variant'] as const;
type ConfigurationName = (typeof selectableNames)[number];
const scenarioNames = ['one-room', 'multi-room'] as const;
type ScenarioName = (typeof scenarioNames)[number];

interface Sizes {
  oneRoom: OneRoomOptions;
  multiRoom: MultiRoomOptions;
}

/** Where the time went during one scenario on one configuration. */
interface TimeSpent {
  /** CPU seconds per supervised component (workers grouped by pool). */
  cpuSeconds: Record<string, number>;
  /** Seconds inside database transactions, by Synapse's transaction name, summed over every Synapse process. */
  databaseTransactions: Array<[string, number]>;
  /** Seconds requests waited for a free database connection, over every Synapse process. */
  databaseConnectionWaitSeconds?: number;
  /** PostgreSQL's commits and WAL flushes during the timed part (mxstack configurations only). */
  postgresql?: PostgresqlCounters;
  /** Synapse's main-thread CPU seconds (user + system) answering requests, by servlet, over every Synapse process. */
  servletCpu: Array<[string, number]>;
  /** Synapse's main-thread CPU seconds in background processes (notifier, event persistence, ...), by name. */
  backgroundCpu: Array<[string, number]>;
  /** Seconds in Python's garbage collector by generation, over every Synapse process (Synapse runs it itself: gc_thresholds, gc_min_interval). */
  garbageCollection: Array<[string, number]>;
}

interface Measurement {
  configuration: ConfigurationName;
  scenario: ScenarioName;
  result: ScenarioResult;
  spent: TimeSpent;
}

const progress = (line: string) => process.stderr.write(`${line}\n`);

/** What a target looks like to the scenarios and the time accounting. */
interface RunningConfiguration {
  clientBaseUrl: string;
  admin: SynapseAdmin;
  /** Root process id per component name. */
  processRoots(): Promise<Record<string, number>>;
  synapseMetricsUrls: string[];
  postgresqlCounters(): Promise<PostgresqlCounters | undefined>;
  upSeconds: number;
  stop(): Promise<void>;
}

/** `synapse-event-persister-2` → `synapse-event-persister`: workers of a pool add up. */
const componentGroup = (component: string) => component.replace(/^(synapse-.+)-[0-9]+$/, '$1');

async function scrape(urls: string[]): Promise<MetricSample[]> {
  const texts = await Promise.all(
    urls.map((url) =>
      fetch(url, { signal: AbortSignal.timeout(30_000) })
        .then((response) => (response.ok ? response.text() : ''))
        .catch(() => ''),
    ),
  );
  return texts.flatMap(parsePrometheusText);
}

function timeSpent(cpuBefore: Record<string, number>, cpuAfter: Record<string, number>, before: MetricSample[], after: MetricSample[]): TimeSpent {
  const cpuSeconds: Record<string, number> = {};
  for (const [component, seconds] of Object.entries(cpuSecondsBetween(cpuBefore, cpuAfter))) {
    const group = componentGroup(component);
    cpuSeconds[group] = (cpuSeconds[group] ?? 0) + seconds;
  }
  // prometheus_client exports a Counter named x as x_total: accept both spellings.
  const growth = (name: string, label: string) =>
    counterGrowth(sumByLabel(before, name, label, `${name}_total`), sumByLabel(after, name, label, `${name}_total`));
  const cpuGrowth = (prefix: string, label: string) => {
    const user = new Map(growth(`${prefix}_ru_utime_seconds`, label));
    return growth(`${prefix}_ru_stime_seconds`, label)
      .map(([key, seconds]): [string, number] => [key, seconds + (user.get(key) ?? 0)])
      .sort((a, b) => b[1] - a[1])
      .slice(0, 5);
  };
  const wait = growth('synapse_storage_schedule_time_sum', '__none__')[0];
  return {
    cpuSeconds,
    databaseTransactions: growth('synapse_storage_transaction_time_sum', 'desc').slice(0, 6),
    ...(wait ? { databaseConnectionWaitSeconds: wait[1] } : {}),
    servletCpu: cpuGrowth('synapse_http_server_response', 'servlet'),
    backgroundCpu: cpuGrowth('synapse_background_process', 'name'),
    garbageCollection: growth('python_gc_time_sum', 'gen'),
  };
}

async function startMxstack(configuration: Exclude<ConfigurationName, 'stock'>, extraSets: string[]): Promise<RunningConfiguration> {
  progress(`[${configuration}] mxstack up (synapse.workers.preset=${presetConfigurations[configuration]}${extraSets.length > 0 ? ` ${extraSets.join(' ')}` : ''})`);
  const started = performance.now();
  const stack = await startLocalStack({ sets: [`synapse.workers.preset=${presetConfigurations[configuration]}`, ...extraSets], timeoutMs: 900_000 });
  const upSeconds = (performance.now() - started) / 1000;
  try {
    const { endpoints, adminCredentialsFile } = stack.status;
    if (!stack.status.healthy || !endpoints || !adminCredentialsFile) throw new Error('the stack is not healthy after up');
    const admin = await SynapseAdmin.login(endpoints.client, await readAdminCredentials(adminCredentialsFile), endpoints.synapse);
    return {
      clientBaseUrl: endpoints.client,
      admin,
      async processRoots() {
        const status = await stack.readStatus();
        return Object.fromEntries(Object.entries(status.components).flatMap(([name, report]) => (report.pid !== undefined ? [[name, report.pid]] : [])));
      },
      synapseMetricsUrls: endpoints.metrics.filter((url) => url.endsWith('/_synapse/metrics')),
      async postgresqlCounters() {
        const pid = (await stack.readStatus()).components.postgresql?.pid;
        return pid === undefined ? undefined : readPostgresqlCounters(stack.stateDir, pid);
      },
      upSeconds,
      stop: () => stack.dispose(),
    };
  } catch (error) {
    await stack.dispose();
    throw error;
  }
}

async function startStock(): Promise<RunningConfiguration> {
  const dir = runtimeDir();
  if (!runtimeIsPresent(dir)) throw new Error(`no runtime at ${dir}: run \`mxstack runtime setup\` first`);
  progress('[stock] starting PostgreSQL and a stock Synapse from the same runtime');
  const started = performance.now();
  const stock = await startStockSynapse(dir, postgresqlBinDir(dir));
  const upSeconds = (performance.now() - started) / 1000;
  try {
    const password = randomBytes(18).toString('base64url');
    const adminId = await stock.registerAdmin('admin', password);
    const admin = await SynapseAdmin.login(stock.baseUrl, { user_id: adminId, password });
    return { clientBaseUrl: stock.baseUrl, admin, processRoots: async () => stock.processRoots(), synapseMetricsUrls: [], postgresqlCounters: async () => undefined, upSeconds, stop: () => stock.stop() };
  } catch (error) {
    await stock.stop();
    throw error;
  }
}

async function measureConfiguration(configuration: ConfigurationName, scenarios: ScenarioName[], sizes: Sizes, extraSets: string[], variantSets: string[]): Promise<{ measurements: Measurement[]; upSeconds: number }> {
  const running = configuration === 'stock' ? await startStock() : await startMxstack(configuration, configuration === 'variant' ? [...extraSets, ...variantSets] : extraSets);
  const measurements: Measurement[] = [];
  try {
    for (const scenario of scenarios) {
      let cpuBefore: Record<string, number> = {};
      let metricsBefore: MetricSample[] = [];
      let postgresqlBefore: PostgresqlCounters | undefined;
      let spent: TimeSpent | undefined;
      const probe: TimedPartProbe = {
        async start() {
          metricsBefore = await scrape(running.synapseMetricsUrls);
          postgresqlBefore = await running.postgresqlCounters();
          cpuBefore = treeCpuSeconds(await running.processRoots());
        },
        async end() {
          const cpuAfter = treeCpuSeconds(await running.processRoots());
          const postgresqlAfter = await running.postgresqlCounters();
          spent = {
            ...timeSpent(cpuBefore, cpuAfter, metricsBefore, await scrape(running.synapseMetricsUrls)),
            ...(postgresqlBefore && postgresqlAfter ? { postgresql: countersBetween(postgresqlBefore, postgresqlAfter) } : {}),
          };
        },
      };
      const result =
        scenario === 'one-room'
          ? await runOneRoom(configuration, running.admin, running.clientBaseUrl, sizes.oneRoom, probe)
          : await runMultiRoom(configuration, running.admin, running.clientBaseUrl, sizes.multiRoom, probe);
      measurements.push({ configuration, scenario, result, spent: spent! });
      progress(`[${configuration}] ${scenario}: ${result.messagesPerSecond.toFixed(1)} msg/s, p95 ${result.latencyP95Ms.toFixed(0)} ms`);
    }
  } finally {
    await running.stop().catch((error: unknown) => progress(`[${configuration}] stopping failed: ${String(error)}`));
  }
  return { measurements, upSeconds: running.upSeconds };
}

const loads = (values: number[]) => values.map((value) => value.toFixed(1)).join(' ');

function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((cell, column) => Math.max(cell.length, ...rows.map((row) => row[column]!.length)));
  const line = (cells: string[]) => cells.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join('  ');
  return [line(header), line(widths.map((width) => '-'.repeat(width))), ...rows.map(line)].join('\n');
}

function scenarioReport(scenario: ScenarioName, measurements: Measurement[], sizes: Sizes): string {
  const title =
    scenario === 'one-room'
      ? `One room: ${sizes.oneRoom.users} senders + 1 receiving client, ${sizes.oneRoom.messages} messages, ${sizes.oneRoom.concurrency} in flight`
      : `Multi-room: ${sizes.multiRoom.users} users all syncing, ${sizes.multiRoom.rooms} rooms of ${sizes.multiRoom.membersPerRoom}, ${sizes.multiRoom.messages} messages, ${sizes.multiRoom.concurrency} in flight`;
  const rows = measurements.map(({ configuration, result }) => [
    configuration,
    String(result.attempted),
    String(result.acknowledged),
    String(result.delivered),
    `${result.deliveriesSeen}/${result.deliveriesExpected}`,
    String(result.sendErrors),
    result.messagesPerSecond.toFixed(1),
    result.latencyP50Ms.toFixed(0),
    result.latencyP95Ms.toFixed(0),
    result.sendP50Ms.toFixed(0),
    result.clientCpuSeconds.toFixed(1),
    `${loads(result.loadBefore)} -> ${loads(result.loadAfter)}`,
  ]);
  const table = formatTable(['configuration', 'sent', 'acked', 'delivered', 'deliveries', 'errors', 'msg/s', 'p50 ms', 'p95 ms', 'send p50', 'client cpu s', 'load 1/5/15 min'], rows);
  const checks = goalChecks(
    measurements.map(({ configuration, result }) => ({ configuration, messagesPerSecond: result.messagesPerSecond, latencyP95Ms: result.latencyP95Ms })),
    { monolith: 'monolith', stock: 'stock', presets: workerPresetConfigurations },
    scenario === 'multi-room',
  );
  const goals = checks.map((check) => `  ${check.goal.padEnd(28)} ${check.ratio.toFixed(2).padStart(6)}  (goal ${check.target}: ${check.met ? 'met' : 'not met'})`);
  return [title, '', table, '', ...(goals.length > 0 ? ['Ratios:', ...goals] : ['Ratios: need the monolith and a preset, or stock, in the same run'])].join('\n');
}

function timeSpentReport(measurements: Measurement[]): string {
  const lines: string[] = ['Where the time went (CPU seconds per process tree during the timed part; Synapse metrics summed over its processes):'];
  for (const { configuration, scenario, result, spent } of measurements) {
    const cpu = Object.entries(spent.cpuSeconds)
      .filter(([, seconds]) => seconds >= 0.05)
      .sort((a, b) => b[1] - a[1])
      .map(([name, seconds]) => `${name} ${seconds.toFixed(1)}`)
      .join(', ');
    lines.push(`  ${configuration} / ${scenario} (wall ${result.wallSeconds.toFixed(1)} s, benchmark client ${result.clientCpuSeconds.toFixed(1)} s): ${cpu}`);
    const perMessage = cpuPerDeliveredMessage(spent.cpuSeconds, result.delivered);
    if (perMessage) lines.push(`    CPU per delivered message: Synapse + PostgreSQL ${perMessage.serverMs.toFixed(1)} ms, every process tree ${perMessage.allMs.toFixed(1)} ms`);
    if (spent.databaseTransactions.length > 0) {
      lines.push(`    time in database transactions (s): ${spent.databaseTransactions.map(([name, seconds]) => `${name} ${seconds.toFixed(1)}`).join(', ')}`);
    }
    if (spent.postgresql) {
      const { commits, walFsyncs, walWrites } = spent.postgresql;
      const perMessage = (count: number) => (result.acknowledged > 0 ? (count / result.acknowledged).toFixed(1) : '-');
      lines.push(`    PostgreSQL: ${commits} commits, ${walFsyncs} WAL flushes, ${walWrites} WAL writes (per acknowledged message: ${perMessage(commits)}, ${perMessage(walFsyncs)}, ${perMessage(walWrites)})`);
    }
    if (spent.databaseConnectionWaitSeconds !== undefined) lines.push(`    waiting for a database connection: ${spent.databaseConnectionWaitSeconds.toFixed(1)} s`);
    const named = (entries: Array<[string, number]>) => entries.map(([name, seconds]) => `${name} ${seconds.toFixed(1)}`).join(', ');
    if (spent.servletCpu.length > 0) lines.push(`    Synapse CPU by servlet (s): ${named(spent.servletCpu)}`);
    if (spent.backgroundCpu.length > 0) lines.push(`    Synapse CPU in background processes (s): ${named(spent.backgroundCpu)}`);
    if (spent.garbageCollection.length > 0) {
      lines.push(`    Python garbage collection by generation (s): ${spent.garbageCollection.map(([generation, seconds]) => `gen ${generation} ${seconds.toFixed(2)}`).join(', ')}`);
    }
  }
  return lines.join('\n');
}

function listOption<T extends string>(name: string, text: string, allowed: readonly T[]): T[] {
  const chosen = text.split(',').map((item) => item.trim()).filter((item) => item !== '');
  const unknown = chosen.filter((item) => !allowed.includes(item as T));
  if (unknown.length > 0 || chosen.length === 0) throw new Error(`--${name}: ${unknown.join(', ') || 'empty'}; allowed: ${allowed.join(', ')}`);
  return chosen as T[];
}

const usage = `npm run bench -- [options]
  --configs LIST        of ${selectableNames.join(',')} (default: ${configurationNames.join(',')}, in that order)
  --scenarios LIST      of ${scenarioNames.join(',')} (default: both)
  --quick               small sizes for a quick check (one room: 5 users, 60 messages;
                        multi-room: 20 users, 10 rooms of 5, 200 messages); size options still win
  --set KEY=VALUE       extra values for the mxstack configurations (repeatable), e.g. to compare a setting
  --variant-set KEY=VALUE  values (repeatable) of the configuration \`variant\`: the monolith with these on
                        top, to compare a setting within one run (--configs monolith,variant,stock)
  one room:   --users 10 --messages 300 --concurrency 10
  multi-room: --mr-users 100 --rooms 50 --members 10 --mr-messages 1000 --mr-concurrency 20
  --budget-seconds 120  no new sends after this long, per scenario`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      configs: { type: 'string', default: configurationNames.join(',') },
      scenarios: { type: 'string', default: scenarioNames.join(',') },
      quick: { type: 'boolean', default: false },
      set: { type: 'string', multiple: true, default: [] },
      'variant-set': { type: 'string', multiple: true, default: [] },
      users: { type: 'string' },
      messages: { type: 'string' },
      concurrency: { type: 'string' },
      'mr-users': { type: 'string' },
      rooms: { type: 'string' },
      members: { type: 'string' },
      'mr-messages': { type: 'string' },
      'mr-concurrency': { type: 'string' },
      'budget-seconds': { type: 'string', default: '120' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(usage);
    return;
  }
  const size = (name: keyof typeof values, full: number, quick: number): number => {
    const given = values[name];
    const value = typeof given === 'string' ? Number(given) : values.quick ? quick : full;
    if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} must be a positive integer`);
    return value;
  };
  const budgetMs = size('budget-seconds', 120, 120) * 1000;
  const sizes: Sizes = {
    oneRoom: { users: size('users', 10, 5), messages: size('messages', 300, 60), concurrency: size('concurrency', 10, 10), budgetMs },
    multiRoom: {
      users: size('mr-users', 100, 20),
      rooms: size('rooms', 50, 10),
      membersPerRoom: size('members', 10, 5),
      messages: size('mr-messages', 1000, 200),
      concurrency: size('mr-concurrency', 20, 10),
      budgetMs,
    },
  };
  if (sizes.multiRoom.membersPerRoom < 2 || sizes.multiRoom.membersPerRoom > sizes.multiRoom.users) {
    throw new Error('--members must be at least 2 and at most --mr-users');
  }
  const configurations = listOption('configs', values.configs, selectableNames);
  if (configurations.includes('variant') !== values['variant-set'].length > 0) throw new Error('--configs variant and --variant-set go together: the variant is the monolith with the --variant-set values');
  const scenarios = listOption('scenarios', values.scenarios, scenarioNames);

  const startedAt = new Date();
  const loadAtStart = loadavg();
  const measurements: Measurement[] = [];
  const upSeconds: Array<[ConfigurationName, number]> = [];
  for (const configuration of configurations) {
    const measured = await measureConfiguration(configuration, scenarios, sizes, values.set, values['variant-set']);
    measurements.push(...measured.measurements);
    upSeconds.push([configuration, measured.upSeconds]);
  }

  console.log(`\nmessaging benchmark, ${startedAt.toISOString()} -> ${new Date().toISOString()}, load ${loads(loadAtStart)} -> ${loads(loadavg())}`);
  if (values.set.length > 0) console.log(`extra values on the mxstack configurations: ${values.set.join(' ')}`);
  if (values['variant-set'].length > 0) console.log(`variant = monolith with ${values['variant-set'].join(' ')}`);
  console.log('mxstack through its router; stock Synapse directly (it has no router). Configurations ran one after the other.\n');
  for (const scenario of scenarios) {
    console.log(scenarioReport(scenario, measurements.filter((measurement) => measurement.scenario === scenario), sizes));
    console.log('');
  }
  console.log(timeSpentReport(measurements));
  console.log(`\nup -> healthy: ${upSeconds.map(([configuration, seconds]) => `${configuration} ${seconds.toFixed(1)} s`).join(', ')}`);
}

await main();
