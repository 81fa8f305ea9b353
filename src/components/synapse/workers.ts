/**
 * Synapse with workers: each worker's own file, and the keys of the shared homeserver.yaml that tie the
 * processes together (replication listener, Redis, instance_map, stream_writers, ...), all from the pools.
 */
import { posix } from 'node:path';
import { kubernetesClusterDomain, synapseSecretFiles, type Stack, type WorkerAddress } from '../../stack/model.js';
import {
  kebabCase,
  processesOf,
  singleWriterStreams,
  workerPools,
  workerProcesses,
  type WorkerPoolName,
  type WorkerProcess,
} from '../../values/worker-pools.js';

type Config = Record<string, unknown>;

/** Synapse's name of the main process in instance_map. */
export const mainInstanceName = 'main';

/** The object name of a pool's workload and Service: `<release>-synapse-<pool>`. */
export const workerPoolObjectName = (stack: Stack, pool: WorkerPoolName): string => stack.objectName(`synapse-${kebabCase(pool)}`);

/** Where a worker listens and how the others reach it. */
export function workerAddress(stack: Stack, worker: WorkerProcess): WorkerAddress {
  const placement = stack.placement.synapseWorkers;
  if (placement.kind === 'local') {
    const http = placement.firstPort + 3 * worker.index;
    return { host: placement.host, http, replication: http + 1, metrics: http + 2 };
  }
  const service = workerPoolObjectName(stack, worker.pool);
  const domain = `${service}.${stack.namespace}.svc.${kubernetesClusterDomain}`;
  // Named pools are StatefulSets: each pod has its own name under the headless Service; the others share it.
  const host = workerPools[worker.pool].named ? `${service}-${worker.ordinal - 1}.${domain}` : domain;
  return { host, http: placement.http, replication: placement.replication, metrics: placement.metrics };
}

const secretPath = (stack: Stack, file: string) => posix.join(stack.placement.paths.synapseSecretsDir, file);

/** The main process's replication listener: never routed, reached by the workers only. */
export function mainReplicationListener(stack: Stack): Config {
  return {
    port: stack.placement.ports.synapseReplication,
    type: 'http',
    tls: false,
    bind_addresses: [stack.placement.bindAddress],
    resources: [{ names: ['replication'], compress: false }],
  };
}

const names = (workers: WorkerProcess[]) => workers.map((w) => w.name);

/** A single writer as a name (as Synapse's schema types it), several as a list (which its loader takes too). */
const writerList = (writers: string[]): string | string[] => (writers.length === 1 ? writers[0]! : writers);

function streamWriters(workers: WorkerProcess[]): Config {
  const persisters = names(processesOf(workers, 'eventPersister'));
  const writer = processesOf(workers, 'streamWriter')[0];
  return {
    ...(persisters.length > 0 ? { events: writerList(persisters) } : {}),
    ...(writer ? Object.fromEntries(singleWriterStreams.map((stream) => [stream, writer.name])) : {}),
  };
}

function instanceMap(stack: Stack, workers: WorkerProcess[]): Config {
  const entries: [string, Config][] = [[mainInstanceName, { host: stack.placement.hosts.synapse, port: stack.placement.ports.synapseReplication }]];
  for (const worker of workers.filter((w) => workerPools[w.pool].replication)) {
    const address = workerAddress(stack, worker);
    entries.push([worker.name, { host: address.host, port: address.replication }]);
  }
  return Object.fromEntries(entries);
}

/** A key naming the first process of a single-instance pool, when the pool runs. */
function singleInstanceKey(workers: WorkerProcess[], pool: WorkerPoolName, key: string): Config {
  const first = processesOf(workers, pool)[0];
  return first ? { [key]: first.name } : {};
}

function listKey(workers: WorkerProcess[], pool: WorkerPoolName, key: string): Config {
  const list = names(processesOf(workers, pool));
  return list.length > 0 ? { [key]: list } : {};
}

/** The keys added to homeserver.yaml when workers run (none otherwise). */
export function sharedWorkerConfig(stack: Stack): Config {
  const workers = workerProcesses(stack.values);
  if (workers.length === 0) return {};
  const media = processesOf(workers, 'mediaRepository');
  return {
    worker_replication_secret_path: secretPath(stack, synapseSecretFiles.replicationSecret),
    redis: {
      enabled: true,
      host: stack.placement.hosts.redis,
      port: stack.placement.ports.redis,
      password_path: secretPath(stack, synapseSecretFiles.redisPassword),
    },
    instance_map: instanceMap(stack, workers),
    ...(Object.keys(streamWriters(workers)).length > 0 ? { stream_writers: streamWriters(workers) } : {}),
    ...listKey(workers, 'federationSender', 'federation_sender_instances'),
    ...listKey(workers, 'pusher', 'pusher_instances'),
    ...singleInstanceKey(workers, 'background', 'run_background_tasks_on'),
    ...singleInstanceKey(workers, 'userDirectory', 'update_user_directory_from_worker'),
    ...singleInstanceKey(workers, 'appserviceNotifier', 'notify_appservices_from_worker'),
    ...(media.length > 0 ? { enable_media_repo: false, media_instance_running_background_jobs: media[0]!.name } : {}),
  };
}

function workerListeners(stack: Stack, worker: WorkerProcess): Config[] {
  const kind = workerPools[worker.pool];
  const address = workerAddress(stack, worker);
  const bind = [stack.placement.bindAddress];
  // Every process gets an HTTP listener, if only for /health, which Synapse serves on each of them.
  const listeners: Config[] = [
    {
      port: address.http,
      type: 'http',
      tls: false,
      x_forwarded: true,
      bind_addresses: bind,
      resources: [{ names: kind.resources, compress: false }],
    },
  ];
  if (kind.replication) {
    listeners.push({ port: address.replication, type: 'http', tls: false, bind_addresses: bind, resources: [{ names: ['replication'], compress: false }] });
  }
  if (stack.values.synapse.metrics.enabled) listeners.push({ port: address.metrics, type: 'metrics', bind_addresses: bind });
  return listeners;
}

/** One worker's own file, read after homeserver.yaml (`--config-path` both). */
export function renderWorkerConfig(stack: Stack, worker: WorkerProcess): Config {
  return {
    worker_app: workerPools[worker.pool].app ?? 'synapse.app.generic_worker',
    worker_name: worker.name,
    worker_listeners: workerListeners(stack, worker),
    worker_log_config: posix.join(stack.placement.paths.synapseConfigDir, 'log.yaml'),
  };
}

/** The file name of a worker's config in the Synapse config directory. */
export const workerConfigFile = (worker: WorkerProcess): string => `worker-${worker.name}.yaml`;
