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
import type { ComponentName } from '../../stack/model.js';
import { components } from '../../components/registry.js';
import { processesOf, workerProcesses, workersEnabled } from '../../values/worker-pools.js';
import { workerAddress } from '../../components/synapse/workers.js';
import type { ComponentHealth, DoctorEnvironment, MetricsProbe } from './checks.js';
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
          redisAddress: { host: stack.placement.hosts.redis, port: stack.placement.ports.redis },
          syncWorkerUrls: () =>
            processesOf(workerProcesses(stack.values), 'sync').map((worker) => {
              const address = workerAddress(stack, worker);
              return `http://${address.host}:${address.http}/`;
            }),
        }
      : {}),
  };
}

/** A release's target: it also names the workload running each component and forwards a Service's port. */
export interface KubernetesWorkloads extends Target {
  workload(component: ComponentName): string;
  withServicePort<T>(service: string, port: number, use: (localPort: number) => Promise<T>): Promise<T>;
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
    logsHint: (component) => `\`kubectl logs -n ${namespace} ${component === 'postgresql' ? 'statefulset' : 'deployment'}/${stack.objectName(component)}\``,
    throughCluster: {
      withRouter: (use) => target.withServicePort(stack.objectName('router'), stack.placement.ports.router, (port) => use(`http://127.0.0.1:${port}/`)),
      // kubectl port-forward carries TCP only: coturn's plain listener over TCP.
      ...(stack.values.coturn.enabled ? { withTurn: <T>(use: (host: string, port: number) => Promise<T>) => target.withServicePort(stack.objectName('coturn'), stack.placement.ports.turn, (port) => use('127.0.0.1', port)) } : {}),
    },
  };
}
