/**
 * The supervisor's plan: which programs to run from the runtime, as whom, in what order, how to tell
 * each is healthy, and the endpoints the stack offers. Written by `up` to <state>/plan.json (no secrets:
 * the plan names secret files, never their content).
 */
import { authPathPrefix, type Stack } from '../../stack/model.js';
import { coturnHasPrometheusExporter } from '../../components/coturn/config.js';
import { postgresqlInitdbArgs } from '../../components/postgresql/config.js';
import { homeserverConfigPath, synapseStartArgv } from '../../components/synapse/start.js';
import { authArgv, authHealthUrl, defaultHostProgram, localAuthUser, type HostProgram } from './auth.js';
import type { RuntimeUsers } from './files.js';
import { loopback } from './placement.js';
import type { RuntimeUser } from './runtime.js';
import type { StateLayout } from './state.js';
import { componentVersions } from '../../versions.js';
import { workerProcesses, type WorkerProcess } from '../../values/worker-pools.js';
import { renderWorkerConfig, workerAddress, workerConfigFile } from '../../components/synapse/workers.js';

/** A Synapse worker runs as `synapse-<worker name>` (synapse-sync-1). */
export type LocalComponentName = 'postgresql' | 'auth' | 'redis' | 'synapse' | `synapse-${string}` | 'coturn' | 'element' | 'router';

/**
 * Where a component runs: `runtime`, a program of the runtime entered with chroot as one of its Debian users;
 * `host`, a program of this machine (the auth service: the runtime has no Node) as a user of its own.
 */
export type ComponentLocation = 'runtime' | 'host';

export type HealthCheck =
  | { kind: 'http'; url: string }
  | { kind: 'tcp'; host: string; port: number }
  | { kind: 'pg_isready'; binDir: string; host: string; port: number };

export interface ComponentPlan {
  name: LocalComponentName;
  /** Debian package whose version is reported. */
  package: string;
  /** Where it runs (a plan.json written before host components existed has none: runtime). */
  runsIn: ComponentLocation;
  user: RuntimeUser;
  /** Program and arguments, run inside the runtime with chroot (or on the host, for a host component). */
  argv: string[];
  /** Environment entries added to the fixed one (never a secret). */
  environment?: Record<string, string>;
  stopSignal: NodeJS.Signals;
  health: HealthCheck;
  /** How long a start may take before it counts as failed. */
  startTimeoutSeconds: number;
  /**
   * Consecutive components with the same group start together and are waited on together (the Synapse
   * workers, once the main process has prepared the database).
   */
  startGroup?: string;
  ports: Record<string, number>;
}

export interface PostgresqlInitPlan {
  binDir: string;
  dataDir: string;
  initdbArgs: string[];
  role: string;
  database: string;
  /** The auth component's database, owned by the role too (created by the supervisor: the role needs no CREATEDB). */
  authDatabase?: string;
  /** The file holding the role's password (read by the supervisor, sent over stdin). */
  passwordFile: string;
  port: number;
}

/** Where clients, monitoring and tools reach the stack. Other tools rely on these names. */
export interface LocalEndpoints {
  /** Synapse client API base URL through the router. */
  client: string;
  /** Base URL serving /.well-known/matrix/*. */
  wellKnown: string;
  /** Synapse itself (admin API), bypassing the router. */
  synapse: string;
  /** Prometheus scrape URLs. */
  metrics: string[];
  turn: string[];
  /** With 2FA on: the auth component's public base through the router (`<client>auth/`: sign-in pages, OpenID Connect). */
  auth?: string;
  /** With 2FA on: the auth component's administration API (never routed), for mxstack's CLI. */
  authAdmin?: string;
}

/** Element Web: the user's build with the generated config.json laid over it (a read-only overlay mount). */
export interface ElementMountPlan {
  webRoot: string;
  configDir: string;
  rootDir: string;
}

export interface SupervisorPlan {
  rootfs: string;
  stateDir: string;
  serverName: string;
  postgresql?: PostgresqlInitPlan;
  element?: ElementMountPlan;
  components: ComponentPlan[];
  endpoints: LocalEndpoints;
  versions: Record<string, string>;
}

export function localEndpoints(stack: Stack): LocalEndpoints {
  const { ports } = stack.placement;
  const routerUrl = `http://${loopback}:${ports.router}/`;
  const metrics = [
    ...(stack.values.synapse.metrics.enabled
      ? [ports.synapseMetrics, ...workerProcesses(stack.values).map((worker) => workerAddress(stack, worker).metrics)].map((port) => `http://${loopback}:${port}/_synapse/metrics`)
      : []),
    ...(stack.values.coturn.enabled && stack.values.coturn.prometheusExporter.enabled && coturnHasPrometheusExporter(stack)
      ? [`http://${loopback}:${ports.turnMetrics}/metrics`]
      : []),
    `http://${loopback}:${ports.routerMetrics}/metrics`,
  ];
  return {
    client: routerUrl,
    wellKnown: routerUrl,
    synapse: `http://${loopback}:${ports.synapseHttp}/`,
    metrics,
    turn: stack.turnUris,
    ...(stack.auth
      ? { auth: `${routerUrl}${authPathPrefix.replace(/^\//, '')}/`, authAdmin: `http://${loopback}:${ports.authAdmin}/` }
      : {}),
  };
}

/**
 * initdb arguments: the stack's (encoding, locale, SCRAM), plus peer authentication on the Unix socket, so
 * the supervisor can create the role as the postgres user without a superuser password. The socket lives
 * in the stack's private /run: nothing outside the stack's mount namespace reaches it.
 */
export function localInitdbArgs(stack: Stack): string[] {
  const args = postgresqlInitdbArgs(stack);
  const has = (prefix: string) => args.some((arg) => arg.startsWith(prefix));
  return [
    ...args,
    ...(has('--auth-host') || has('--auth=') ? [] : ['--auth-host=scram-sha-256']),
    ...(has('--auth-local') ? [] : ['--auth-local=peer']),
  ];
}

/** The server package of the major in /usr/lib/postgresql/<major>/bin (postgresql-18): its version is the server's. */
function postgresqlServerPackage(binDir: string): string {
  const major = /\/postgresql\/(\d+)\//.exec(binDir)?.[1];
  return major ? `postgresql-${major}` : 'postgresql';
}

export interface PlanInputs {
  stack: Stack;
  layout: StateLayout;
  rootfs: string;
  postgresqlBinDir: string;
  users: RuntimeUsers;
  versions: Record<string, string>;
  postgresPasswordFile: string;
  /** The Node and entry of the auth service (default: this process's Node and this installation's entry). */
  hostProgram?: HostProgram;
}

/**
 * The auth service: on the host as localAuthUser, reading its config.json and secret files from the state
 * directory; after PostgreSQL (its database) and before Synapse, whose logins it serves.
 */
function authComponent(stack: Stack, layout: StateLayout, program: HostProgram): ComponentPlan {
  const { ports } = stack.placement;
  return {
    name: 'auth',
    package: 'mxstack-auth',
    runsIn: 'host',
    user: localAuthUser,
    argv: authArgv(layout, program),
    environment: { TMPDIR: layout.authTmpDir },
    stopSignal: 'SIGTERM',
    health: { kind: 'http', url: authHealthUrl(stack) },
    startTimeoutSeconds: 120,
    ports: { http: ports.auth, admin: ports.authAdmin },
  };
}

/** A Synapse process: the shared files (homeserver.yaml, the secret config), then its own ones. */
/** Every Synapse process (main or worker) starts through the start step, which joins the passwords in. */
function synapseArgv(stack: Stack, app: string, ownConfigFiles: string[] = []): string[] {
  return synapseStartArgv(stack, 'python3', app, [homeserverConfigPath(stack), ...ownConfigFiles]);
}

/** With workers, Synapse imports txredisapi from the state directory (the runtime's Debian packages lack it). */
function synapseEnvironment(stack: Stack, layout: StateLayout): Pick<ComponentPlan, 'environment'> {
  return workerProcesses(stack.values).length > 0 ? { environment: { PYTHONPATH: layout.pythonDir } } : {};
}

function redisComponent(stack: Stack, layout: StateLayout, users: RuntimeUsers): ComponentPlan {
  const port = stack.placement.ports.redis;
  return {
    name: 'redis',
    package: 'redis-server',
    runsIn: 'runtime',
    user: users.redis,
    argv: ['redis-server', `${layout.redisConfigDir}/redis.conf`],
    stopSignal: 'SIGTERM',
    health: { kind: 'tcp', host: loopback, port },
    startTimeoutSeconds: 60,
    ports: { redis: port },
  };
}

/** One Synapse worker: the shared files and its own, started with the other workers after the main process. */
function workerComponent(stack: Stack, layout: StateLayout, users: RuntimeUsers, worker: WorkerProcess): ComponentPlan {
  const address = workerAddress(stack, worker);
  const listens = (renderWorkerConfig(stack, worker).worker_listeners as { port: number; type: string; resources?: { names: string[] }[] }[]);
  const portName = (listener: (typeof listens)[number]) => (listener.type === 'metrics' ? 'metrics' : listener.resources?.[0]?.names.includes('replication') ? 'replication' : 'http');
  return {
    name: `synapse-${worker.name}`,
    package: 'matrix-synapse',
    runsIn: 'runtime',
    user: users.synapse,
    argv: synapseArgv(stack, 'synapse.app.generic_worker', [`${layout.synapseConfigDir}/${workerConfigFile(worker)}`]),
    ...synapseEnvironment(stack, layout),
    stopSignal: 'SIGTERM',
    health: { kind: 'http', url: `http://${loopback}:${address.http}/health` },
    startTimeoutSeconds: 300,
    startGroup: 'synapse-workers',
    ports: Object.fromEntries(listens.map((listener) => [portName(listener), listener.port])),
  };
}

export function buildSupervisorPlan({ stack, layout, rootfs, postgresqlBinDir, users, versions, postgresPasswordFile, hostProgram }: PlanInputs): SupervisorPlan {
  const { ports } = stack.placement;
  const runPostgresql = stack.values.postgresql.enabled && !stack.values.synapse.database.external;
  const components: ComponentPlan[] = [];
  if (runPostgresql) {
    components.push({
      name: 'postgresql',
      package: postgresqlServerPackage(postgresqlBinDir),
      runsIn: 'runtime',
      user: users.postgres,
      argv: [`${postgresqlBinDir}/postgres`, '-D', layout.postgresqlDataDir, '-c', `config_file=${layout.postgresqlConfFile}`],
      // SIGINT is PostgreSQL's "fast" shutdown: sessions end, data is flushed.
      stopSignal: 'SIGINT',
      health: { kind: 'pg_isready', binDir: postgresqlBinDir, host: loopback, port: ports.postgresql },
      startTimeoutSeconds: 120,
      ports: { postgresql: ports.postgresql },
    });
  }
  if (stack.auth) components.push(authComponent(stack, layout, hostProgram ?? defaultHostProgram()));
  const workers = workerProcesses(stack.values);
  if (workers.length > 0) components.push(redisComponent(stack, layout, users));
  components.push({
    name: 'synapse',
    package: 'matrix-synapse',
    runsIn: 'runtime',
    user: users.synapse,
    argv: synapseArgv(stack, 'synapse.app.homeserver'),
    ...synapseEnvironment(stack, layout),
    stopSignal: 'SIGTERM',
    health: { kind: 'http', url: `http://${loopback}:${ports.synapseHttp}/health` },
    startTimeoutSeconds: 300,
    ports: {
      http: ports.synapseHttp,
      ...(stack.values.synapse.metrics.enabled ? { metrics: ports.synapseMetrics } : {}),
      ...(workers.length > 0 ? { replication: ports.synapseReplication } : {}),
    },
  });
  components.push(...workers.map((worker) => workerComponent(stack, layout, users, worker)));
  if (stack.values.coturn.enabled) {
    components.push({
      name: 'coturn',
      package: 'coturn',
      runsIn: 'runtime',
      user: users.turnserver,
      argv: ['turnserver', '-c', layout.coturnRuntimeConfFile],
      stopSignal: 'SIGTERM',
      health: { kind: 'tcp', host: loopback, port: ports.turn },
      startTimeoutSeconds: 60,
      ports: { turn: ports.turn, relayMin: ports.relayMin, relayMax: ports.relayMax, ...(stack.values.coturn.tls.enabled ? { turns: ports.turns } : {}) },
    });
  }
  const serveElement = stack.elementUrl !== undefined && stack.values.element.webRoot !== undefined;
  if (serveElement) {
    components.push({
      name: 'element',
      package: 'python3',
      runsIn: 'runtime',
      user: users.nobody,
      // Element Web is static files: Python's file server is enough behind the router.
      argv: ['python3', '-m', 'http.server', '--bind', loopback, '--directory', layout.elementRootDir, String(ports.element)],
      stopSignal: 'SIGTERM',
      health: { kind: 'http', url: `http://${loopback}:${ports.element}/config.json` },
      startTimeoutSeconds: 60,
      ports: { http: ports.element },
    });
  }
  components.push({
    name: 'router',
    package: 'haproxy',
    runsIn: 'runtime',
    user: users.haproxy,
    argv: ['haproxy', '-db', '-f', `${layout.routerConfigDir}/haproxy.cfg`],
    stopSignal: 'SIGTERM',
    // The router answers /health on its metrics listener (monitor-uri), not on the public one.
    health: { kind: 'http', url: `http://${loopback}:${ports.routerMetrics}/health` },
    startTimeoutSeconds: 60,
    ports: { http: ports.router, metrics: ports.routerMetrics },
  });
  return {
    rootfs,
    stateDir: layout.root,
    serverName: stack.serverName,
    ...(runPostgresql
      ? {
          postgresql: {
            binDir: postgresqlBinDir,
            dataDir: layout.postgresqlDataDir,
            initdbArgs: localInitdbArgs(stack),
            role: stack.database.user,
            database: stack.database.name,
            ...(stack.auth ? { authDatabase: stack.auth.database } : {}),
            passwordFile: postgresPasswordFile,
            port: ports.postgresql,
          },
        }
      : {}),
    ...(serveElement
      ? { element: { webRoot: stack.values.element.webRoot!, configDir: layout.elementConfigDir, rootDir: layout.elementRootDir } }
      : {}),
    components,
    endpoints: localEndpoints(stack),
    versions: stack.auth ? { ...versions, 'mxstack-auth': componentVersions.auth } : versions,
  };
}
