/**
 * Where the doctor looks, per target. The local stack: the endpoints its plan names (127.0.0.1), component
 * health as `mxstack status` measures it plus a STUN answer from coturn. A release on a cluster: the public
 * URLs (what clients and other servers use), components as kubectl sees them, Synapse's metrics from inside
 * its pod; public endpoints not reachable from where the doctor runs are checked through port-forwards to
 * the router and coturn Services instead, and reported as not reachable from here.
 */
import { readFileSync } from 'node:fs';
import { TargetUsageError, type Target } from '../../targets/target.js';
import { withAdmin, adminTokenRef, type AdminSessionOptions } from '../admin-session.js';
import type { ComponentName, Stack } from '../../stack/model.js';
import { components } from '../../components/registry.js';
import { poolMaxProcesses, processesOf, workerPoolNames, workerPools, workerProcesses, workersEnabled } from '../../values/worker-pools.js';
import { workerAddress } from '../../components/synapse/workers.js';
import { kubernetesWorkerPorts, runningPools, workerPoolComponent } from '../../components/synapse/worker-kubernetes.js';
import type { ComponentHealth, DoctorEnvironment, MetricsProbe, WorkerEndpoint } from './checks.js';
import { errorSentence, fail } from './report.js';
import { parseTurnUri, TurnClient } from './turn-client.js';

/** The admin's access token: the one given, else the one the admin session cached after checking it. */
async function adminAccessToken(target: Target, options: AdminSessionOptions): Promise<string> {
  await withAdmin(target, options, async () => undefined);
  if (options.accessTokenFile) return readFileSync(options.accessTokenFile, 'utf8').split('\n')[0]!.trim();
  const cached = (await target.readSecret(adminTokenRef(target)))?.trim();
  if (!cached) throw new Error('the admin session left no access token behind');
  return cached;
}

async function fetchMetrics(url: string): Promise<MetricsProbe> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(10_000) });
    const body = await response.text();
    return { url, status: response.status, body: body.slice(0, 4096) };
  } catch (error) {
    return { url, error: errorSentence(error) };
  }
}

/** A Binding request answered: coturn is alive, not merely holding its port open. */
async function stunAnswers(uri: string): Promise<string | undefined> {
  const { host, port, transport, secure } = parseTurnUri(uri);
  if (secure) return undefined;
  let client: TurnClient | undefined;
  try {
    client = await TurnClient.connect({ host, port, transport, timeoutMs: 3000 });
    await client.binding();
    return undefined;
  } catch (error) {
    return `no STUN answer on ${uri}: ${errorSentence(error)}`;
  } finally {
    client?.close();
  }
}

function plainTurnUri(uris: readonly string[]): string | undefined {
  return uris.find((uri) => {
    try {
      return !parseTurnUri(uri).secure;
    } catch {
      return false;
    }
  });
}

/** What the local target reports of a stack (`mxstack status`), as far as the doctor reads it. */
export interface LocalStatusReport {
  stateDir: string;
  running: boolean;
  endpoints?: { metrics: string[] };
  components: Record<string, { state: string; healthy: boolean; restarts: number; version?: string }>;
}

/** The local stack's doctor; `localStackStatus` measures the stack as `mxstack status` does (the CLI passes it). */
export function localDoctorEnvironment(
  target: Target,
  stateDir: string,
  localStackStatus: (stateDir: string) => Promise<LocalStatusReport>,
  session: AdminSessionOptions = {},
): DoctorEnvironment {
  const { stack } = target;
  const router = new URL(stack.publicBaseUrl).origin;
  return {
    target,
    clientBaseUrl: stack.publicBaseUrl,
    wellKnownBaseUrl: `${router}/`,
    // The router's public port serves /_matrix/key too, over plain HTTP (the federation listener's CA may be private).
    ...(stack.federationServer ? { federationBaseUrl: `${router}/` } : {}),
    publicUrls: [stack.publicBaseUrl, ...(stack.elementUrl ? [stack.elementUrl] : [])],
    async notRunning() {
      const status = await localStackStatus(stateDir);
      if (!status.endpoints) throw new TargetUsageError(`no local stack in ${status.stateDir}: start one with \`mxstack up --state-dir ${status.stateDir}\`.`);
      if (status.running) return undefined;
      return fail('stack', `the local stack in ${status.stateDir} is not running: nothing to check.`, `start it with \`mxstack up --state-dir ${status.stateDir}\`; if it does not start, read \`mxstack logs supervisor --state-dir ${status.stateDir}\`.`);
    },
    async componentHealth(): Promise<ComponentHealth[]> {
      const status = await localStackStatus(stateDir);
      const health: ComponentHealth[] = [];
      for (const [component, report] of Object.entries(status.components)) {
        const seen = `${report.state}, ${report.healthy ? 'healthy' : 'not healthy'}${report.restarts > 0 ? `, ${report.restarts} restarts` : ''}`;
        let problem = report.healthy ? undefined : `${component} is ${seen}`;
        if (!problem && component === 'coturn') {
          const uri = plainTurnUri(stack.turnUris);
          problem = uri ? await stunAnswers(uri) : undefined;
        }
        health.push({ component, healthy: problem === undefined, detail: problem ?? `${seen}${report.version ? `, version ${report.version}` : ''}.` });
      }
      return health;
    },
    async probeMetrics() {
      const status = await localStackStatus(stateDir);
      return Promise.all((status.endpoints?.metrics ?? []).map(fetchMetrics));
    },
    adminAccessToken: () => adminAccessToken(target, session),
    logsHint: (component) => `\`mxstack logs ${component} --state-dir ${stateDir}\``,
    ...(workersEnabled(stack.values)
      ? {
          withRedis: <T>(use: (host: string, port: number) => Promise<T>) => use(stack.placement.hosts.redis, stack.placement.ports.redis),
          withSyncWorkers: <T>(use: (workers: WorkerEndpoint[]) => Promise<T>) =>
            use(
              processesOf(workerProcesses(stack.values), 'sync').map((worker) => {
                const address = workerAddress(stack, worker);
                return { name: `synapse-${worker.name}`, baseUrl: `http://${address.host}:${address.http}/` };
              }),
            ),
        }
      : {}),
  };
}

/** A release's target: it also names the workload running each component and forwards a Service's or a pod's port. */
export interface KubernetesWorkloads extends Target {
  workload(component: ComponentName): string;
  withServicePort<T>(service: string, port: number, use: (localPort: number) => Promise<T>): Promise<T>;
  /** The names of the Ready pods carrying these labels (not terminating). */
  readyPods(labels: Record<string, string>): Promise<string[]>;
  withPodPort<T>(pod: string, port: number, use: (localPort: number) => Promise<T>): Promise<T>;
}

/** Runs `use` with a local port forwarded to each pod (opened one after the other, all closed after). */
export async function withPodPorts<T>(target: KubernetesWorkloads, pods: readonly string[], port: number, use: (forwarded: { pod: string; localPort: number }[]) => Promise<T>): Promise<T> {
  const open = async (index: number, forwarded: { pod: string; localPort: number }[]): Promise<T> => {
    if (index === pods.length) return use(forwarded);
    const pod = pods[index]!;
    return target.withPodPort(pod, port, (localPort) => open(index + 1, [...forwarded, { pod, localPort }]));
  };
  return open(0, []);
}

/**
 * Where to read a component's log on a cluster: PostgreSQL is a StatefulSet of mxstack's own or the pods
 * of a CloudNativePG Cluster (selected by its label: the Cluster has no workload to name); a worker pool is
 * a StatefulSet when its processes are named in the shared configuration, else a Deployment; the rest are
 * Deployments.
 */
export function kubernetesLogsHint(stack: Stack, namespace: string, component: string): string {
  if (component === 'postgresql' && stack.database.provider === 'cloudnative-pg') {
    return `\`kubectl logs -n ${namespace} -l cnpg.io/cluster=${stack.database.cluster!} --prefix\``;
  }
  const pool = workerPoolNames.find((name) => workerPoolComponent(name) === component);
  const statefulSet = component === 'postgresql' || (pool !== undefined && workerPools[pool].named);
  const many = pool !== undefined && poolMaxProcesses(stack.values.synapse.workers, pool) > 1;
  // kubectl logs of a workload shows one pod; a pool of several is read by its label, every pod prefixed.
  if (many) return `\`kubectl logs -n ${namespace} -l ${Object.entries(stack.selectorLabels(component)).map(([key, value]) => `${key}=${value}`).join(',')} --prefix\``;
  return `\`kubectl logs -n ${namespace} ${statefulSet ? 'statefulset' : 'deployment'}/${stack.objectName(component)}\``;
}

/** Fetches a URL from inside the Synapse pod with its own Python (metrics listeners are not public). */
const fetchInsidePython = [
  'import sys, urllib.request',
  'try:',
  '    r = urllib.request.urlopen(sys.argv[1], timeout=10)',
  '    print(r.status); sys.stdout.write(r.read(4096).decode("utf-8", "replace"))',
  'except urllib.error.HTTPError as e:',
  '    print(e.code)',
].join('\n');

export function kubernetesDoctorEnvironment(target: KubernetesWorkloads, namespace: string, session: AdminSessionOptions = {}): DoctorEnvironment {
  const { stack } = target;
  return {
    target,
    clientBaseUrl: stack.publicBaseUrl,
    wellKnownBaseUrl: `https://${stack.serverName}/`,
    ...(stack.federationServer ? { federationBaseUrl: `https://${stack.federationServer}/` } : {}),
    publicUrls: [stack.publicBaseUrl, `https://${stack.serverName}/`, ...(stack.elementUrl ? [stack.elementUrl] : [])],
    async componentHealth() {
      const health: ComponentHealth[] = [];
      for (const { name: component } of components.filter((c) => c.deployed(stack))) {
        const running = await target.isRunning(component);
        health.push({ component, healthy: running, detail: running ? `${target.workload(component)} has ready replicas.` : `${target.workload(component)} has no ready replica.` });
      }
      // Every worker pool: its Ready pods (the router falls back to the main process for a pool without one).
      for (const pool of runningPools(stack)) {
        const component = workerPoolComponent(pool);
        const ready = await target.readyPods(stack.selectorLabels(component));
        const workload = `${workerPools[pool].named ? 'statefulset' : 'deployment'}/${stack.objectName(component)}`;
        health.push({ component, healthy: ready.length > 0, detail: ready.length > 0 ? `${workload}: ${ready.length} Ready pod(s) (${ready.join(', ')}).` : `${workload} has no Ready pod.` });
      }
      return health;
    },
    async probeMetrics() {
      if (!stack.values.synapse.metrics.enabled) return [];
      const url = `http://127.0.0.1:${stack.placement.ports.synapseMetrics}/_synapse/metrics`;
      const result = await target.exec('synapse', ['python3', '-c', fetchInsidePython, url], { timeoutMs: 30_000 });
      if (result.exitCode !== 0) return [{ url: `synapse pod ${url}`, error: result.stderr.trim().split('\n').pop() ?? 'python3 failed' }];
      const [statusLine, ...body] = result.stdout.split('\n');
      return [{ url: `synapse pod ${url}`, status: Number(statusLine), body: body.join('\n') }];
    },
    adminAccessToken: () => adminAccessToken(target, session),
    logsHint: (component) => kubernetesLogsHint(stack, namespace, component),
    ...(workersEnabled(stack.values)
      ? {
          withRedis: <T>(use: (host: string, port: number) => Promise<T>) => target.withServicePort(stack.objectName('redis'), stack.placement.ports.redis, (port) => use('127.0.0.1', port)),
          withSyncWorkers: async <T>(use: (workers: WorkerEndpoint[]) => Promise<T>) => {
            const pods = await target.readyPods(stack.selectorLabels(workerPoolComponent('sync')));
            return withPodPorts(target, pods, kubernetesWorkerPorts.http, (forwarded) =>
              use(forwarded.map(({ pod, localPort }) => ({ name: `pod ${pod}`, baseUrl: `http://127.0.0.1:${localPort}/` }))),
            );
          },
        }
      : {}),
    throughCluster: {
      withRouter: (use) => target.withServicePort(stack.objectName('router'), stack.placement.ports.router, (port) => use(`http://127.0.0.1:${port}/`)),
      // kubectl port-forward carries TCP only: coturn's plain listener over TCP.
      ...(stack.values.coturn.enabled ? { withTurn: <T>(use: (host: string, port: number) => Promise<T>) => target.withServicePort(stack.objectName('coturn'), stack.placement.ports.turn, (port) => use('127.0.0.1', port)) } : {}),
    },
  };
}
