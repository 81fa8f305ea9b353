/**
 * The supervisor's plan: which programs to run from the runtime, as whom, in what order, how to tell
 * each is healthy, and the endpoints the stack offers. Written by `up` to <state>/plan.json (no secrets:
 * the plan names secret files, never their content).
 */
import { authPathPrefix, type ComponentName, type Stack } from '../../stack/model.js';
import { coturnHasPrometheusExporter } from '../../components/coturn/config.js';
import { postgresqlInitdbArgs } from '../../components/postgresql/config.js';
import { postgresqlRuns } from '../../components/postgresql/local.js';
import { elementServedLocally } from '../../components/element/local.js';
import { components } from '../../components/registry.js';
import { loopback, type HostProgram, type NamedLocalProcess, type RuntimeUsers } from '../../kit/local-process.js';
import { defaultHostProgram } from './auth.js';
import type { StateLayout } from './state.js';
import { componentVersions } from '../../versions.js';
import { workerProcesses } from '../../values/worker-pools.js';
import { workerAddress } from '../../components/synapse/workers.js';

/** A Synapse worker runs as `synapse-<worker name>` (synapse-sync-1). */
export type LocalComponentName = ComponentName | `synapse-${string}`;

/** One process of the plan: a component's LocalProcess under its name. */
export interface ComponentPlan extends NamedLocalProcess {
  name: LocalComponentName;
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

/** Element Web: the build served with the generated config.json laid over it (a read-only overlay mount). */
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

export function buildSupervisorPlan({ stack, layout, rootfs, postgresqlBinDir, users, versions, postgresPasswordFile, hostProgram }: PlanInputs): SupervisorPlan {
  const { ports } = stack.placement;
  const context = { stack, dirs: layout, users, postgresqlBinDir, hostProgram: hostProgram ?? defaultHostProgram() };
  // The names are the components' own, or synapse-<worker>: LocalComponentName by construction.
  const planned = components.flatMap(({ localProcesses }) => localProcesses(context)) as ComponentPlan[];
  const runPostgresql = postgresqlRuns(stack);
  const serveElement = elementServedLocally(stack);
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
      ? { element: { webRoot: stack.placement.paths.elementWebRoot!, configDir: layout.elementConfigDir, rootDir: layout.elementRootDir } }
      : {}),
    components: planned,
    endpoints: localEndpoints(stack),
    versions: stack.auth ? { ...versions, 'mxstack-auth': componentVersions.auth } : versions,
  };
}
