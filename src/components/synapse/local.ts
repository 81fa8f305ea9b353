/**
 * Synapse on the local target: the runtime's homeserver as `matrix-synapse`, reading the shared files, then
 * each worker (synapse.app.generic_worker) with its own file, started together after the main process.
 */
import { loopback, type LocalProcessContext, type LocalProcessDirs, type NamedLocalProcess } from '../../kit/local-process.js';
import type { Stack } from '../../stack/model.js';
import { workerProcesses, type WorkerProcess } from '../../values/worker-pools.js';
import { renderWorkerConfig, workerAddress, workerConfigFile } from './workers.js';

/** A Synapse process: the shared files (homeserver.yaml, the secret config), then its own ones. */
function synapseArgv(dirs: LocalProcessDirs, app: string, ownConfigFiles: string[] = []): string[] {
  const files = [`${dirs.synapseConfigDir}/homeserver.yaml`, `${dirs.synapseSecretsDir}/homeserver-secrets.yaml`, ...ownConfigFiles];
  return ['python3', '-m', app, ...files.flatMap((file) => ['--config-path', file])];
}

/** With workers, Synapse imports txredisapi from the state directory (the runtime's Debian packages lack it). */
function synapseEnvironment(stack: Stack, dirs: LocalProcessDirs): { environment?: Record<string, string> } {
  return workerProcesses(stack.values).length > 0 ? { environment: { PYTHONPATH: dirs.pythonDir } } : {};
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
    argv: synapseArgv(dirs, 'synapse.app.generic_worker', [`${dirs.synapseConfigDir}/${workerConfigFile(worker)}`]),
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
      argv: synapseArgv(dirs, 'synapse.app.homeserver'),
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
