/**
 * Synapse on the local target: the runtime's homeserver as `matrix-synapse`, started through the start step
 * (./start.ts) with the shared files, then each worker (synapse.app.generic_worker) with its own file, started together after the main process.
 */
import { loopback, type LocalProcessContext, type LocalProcessDirs, type NamedLocalProcess } from '../../kit/local-process.js';
import type { Stack } from '../../stack/model.js';
import { workerProcesses, type WorkerProcess } from '../../values/worker-pools.js';
import { renderWorkerConfig, workerAddress, workerConfigFile } from './workers.js';
import { homeserverConfigPath, synapseProcessEnvironment, synapseStartArgv } from './start.js';

/** Every Synapse process (main or worker) starts through the start step, which joins the passwords in. */
function synapseArgv(stack: Stack, app: string, ownConfigFiles: string[] = []): string[] {
  return synapseStartArgv(stack, 'python3', app, [homeserverConfigPath(stack), ...ownConfigFiles]);
}

/** With workers, Synapse imports txredisapi from the state directory (the runtime's Debian packages lack it); synapse.jemalloc asks the start step for jemalloc. */
function synapseEnvironment(stack: Stack, dirs: LocalProcessDirs): { environment?: Record<string, string> } {
  const environment: Record<string, string> = { ...(workerProcesses(stack.values).length > 0 ? { PYTHONPATH: dirs.pythonDir } : {}), ...synapseProcessEnvironment(stack) };
  return Object.keys(environment).length > 0 ? { environment } : {};
}

/** One Synapse worker: the shared files and its own, started with the other workers after the main process. */
function workerProcess({ stack, dirs, users }: LocalProcessContext, worker: WorkerProcess): NamedLocalProcess {
  const address = workerAddress(stack, worker);
  const listens = renderWorkerConfig(stack, worker).worker_listeners as { port: number; type: string; resources?: { names: string[] }[] }[];
  const portName = (listener: (typeof listens)[number]) => (listener.type === 'metrics' ? 'metrics' : listener.resources?.[0]?.names.includes('replication') ? 'replication' : 'http');
  return {
    name: `synapse-${worker.name}`,
    package: 'matrix-synapse',
    runsIn: 'runtime',
    user: users.synapse,
    argv: synapseArgv(stack, 'synapse.app.generic_worker', [`${dirs.synapseConfigDir}/${workerConfigFile(worker)}`]),
    ...synapseEnvironment(stack, dirs),
    stopSignal: 'SIGTERM',
    health: { kind: 'http', url: `http://${loopback}:${address.http}/health` },
    startTimeoutSeconds: 300,
    startGroup: 'synapse-workers',
    ports: Object.fromEntries(listens.map((listener) => [portName(listener), listener.port])),
  };
}

/** The main process, then its workers. */
export function synapseLocalProcesses(context: LocalProcessContext): NamedLocalProcess[] {
  const { stack, dirs, users } = context;
  const { ports } = stack.placement;
  const workers = workerProcesses(stack.values);
  return [
    {
      name: 'synapse',
      package: 'matrix-synapse',
      runsIn: 'runtime',
      user: users.synapse,
      argv: synapseArgv(stack, 'synapse.app.homeserver'),
      ...synapseEnvironment(stack, dirs),
      stopSignal: 'SIGTERM',
      health: { kind: 'http', url: `http://${loopback}:${ports.synapseHttp}/health` },
      startTimeoutSeconds: 300,
      ports: {
        http: ports.synapseHttp,
        ...(stack.values.synapse.metrics.enabled ? { metrics: ports.synapseMetrics } : {}),
        ...(workers.length > 0 ? { replication: ports.synapseReplication } : {}),
      },
    },
    ...workers.map((worker) => workerProcess(context, worker)),
  ];
}
