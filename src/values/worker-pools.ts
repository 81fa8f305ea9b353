/**
 * Synapse's worker pools as mxstack offers them (after Synapse's docs/workers.md): what each pool does,
 * whether its processes must be named in the shared configuration, and the presets. Pure data and the
 * expansion of the values into the list of worker processes.
 */
import type { Values } from './schema.js';

export const workerPoolNames = [
  'sync',
  'initialSync',
  'clientReader',
  'eventCreator',
  'eventPersister',
  'federationInbound',
  'federationReader',
  'federationSender',
  'pusher',
  'mediaRepository',
  'streamWriter',
  'background',
  'userDirectory',
  'appserviceNotifier',
] as const;

export type WorkerPoolName = (typeof workerPoolNames)[number];

/** The single-writer streams the streamWriter pool takes off the main process. */
export const singleWriterStreams = ['typing', 'to_device', 'account_data', 'receipts', 'presence', 'push_rules', 'device_lists'] as const;

export interface WorkerPoolKind {
  description: string;
  /**
   * Named pools appear by worker name in the shared configuration (instance_map, stream_writers,
   * federation_sender_instances, ...): their processes have stable names (a StatefulSet on Kubernetes),
   * and changing their number restarts every Synapse process. The others are interchangeable (a Deployment
   * that may autoscale).
   */
  named: boolean;
  /** Serves HTTP routed by the router (the others serve only replication, or nothing). */
  routed: boolean;
  /** Needs an HTTP replication listener (other processes call it: stream writers). */
  replication: boolean;
  /** The listener resources of its HTTP listener. */
  resources: string[];
  /** At most this many processes (a Synapse setting that takes one instance). */
  maxReplicas?: number;
  /**
   * Synapse's worker_app when not the generic worker: with enable_media_repo off on the shared config, only
   * synapse.app.media_repository loads the media repository (synapse/config/repository.py).
   */
  app?: 'synapse.app.media_repository';
  /**
   * The main process gives this work up while the pool runs (enable_media_repo: false), so it cannot stand
   * in: the router holds the pool's requests for a process of the pool instead of falling back.
   */
  withoutFallback?: true;
}

export const workerPools: Record<WorkerPoolName, WorkerPoolKind> = {
  sync: { description: 'Incremental /sync and /events, pinned per user (by access token).', named: false, routed: true, replication: false, resources: ['client'] },
  initialSync: { description: 'Initial /sync (no since), /initialSync: kept apart so they do not slow incremental syncs.', named: false, routed: true, replication: false, resources: ['client'] },
  clientReader: { description: 'Client API reads, login, registration, keys, room state and history (history pinned per room).', named: false, routed: true, replication: false, resources: ['client'] },
  eventCreator: { description: 'Event sends, joins, invites, profile updates, balanced by room.', named: false, routed: true, replication: false, resources: ['client'] },
  eventPersister: { description: 'Writes the events stream (sharded by room across the pool).', named: true, routed: false, replication: true, resources: [] },
  federationInbound: { description: 'Inbound federation transactions (/send), balanced by the sending server\'s address.', named: false, routed: true, replication: false, resources: ['federation'] },
  federationReader: { description: 'Federation reads and joins, key queries.', named: false, routed: true, replication: false, resources: ['federation'] },
  federationSender: { description: 'Sends federation traffic (federation_sender_instances).', named: true, routed: false, replication: false, resources: [] },
  pusher: { description: 'Sends push notifications (pusher_instances).', named: true, routed: false, replication: false, resources: [] },
  mediaRepository: {
    description: 'Media upload, download, thumbnails; the first one runs media background jobs.',
    named: true,
    routed: true,
    replication: false,
    resources: ['media'],
    app: 'synapse.app.media_repository',
    withoutFallback: true,
  },
  streamWriter: {
    description: `Writes the single-writer streams (${singleWriterStreams.join(', ')}) and serves their endpoints.`,
    named: true,
    routed: true,
    replication: true,
    resources: ['client'],
    maxReplicas: 1,
  },
  background: { description: 'Runs background tasks (run_background_tasks_on).', named: true, routed: false, replication: false, resources: [], maxReplicas: 1 },
  userDirectory: { description: 'Updates the user directory and serves its search.', named: true, routed: true, replication: false, resources: ['client'], maxReplicas: 1 },
  appserviceNotifier: { description: 'Sends events to application services (notify_appservices_from_worker).', named: true, routed: false, replication: false, resources: [], maxReplicas: 1 },
};

export const workerPresetNames = ['none', 'sync', 'small', 'large'] as const;
export type WorkerPresetName = (typeof workerPresetNames)[number];

const oneOfEach = Object.fromEntries(workerPoolNames.map((pool) => [pool, 1])) as Record<WorkerPoolName, number>;

/** Processes per pool of each preset (pools left out run none). */
export const workerPresets: Record<WorkerPresetName, Partial<Record<WorkerPoolName, number>>> = {
  none: {},
  // The split that pays on few cores (bench/README.md): sync is most of Synapse's CPU, and sends keep no extra hop.
  sync: { sync: 1 },
  small: oneOfEach,
  large: { ...oneOfEach, sync: 2, clientReader: 2, eventCreator: 2, eventPersister: 2, federationReader: 2, federationSender: 2 },
};

export interface WorkerProcess {
  pool: WorkerPoolName;
  /** 1-based within its pool. */
  ordinal: number;
  /** Synapse's worker_name: `<pool in kebab case>-<ordinal>`. */
  name: string;
  /** Position among every worker of the stack (stable for the same values): locally, its port block. */
  index: number;
}

export const kebabCase = (pool: string): string => pool.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`);

type WorkersValues = Values['synapse']['workers'];

/** How many processes a pool runs: its replicas, or its autoscaling floor, or the preset's number. */
export function poolReplicas(workers: WorkersValues, pool: WorkerPoolName): number {
  const settings = workers.pools[pool];
  if (settings?.autoscaling?.enabled) return settings.autoscaling.minReplicas;
  return settings?.replicas ?? workerPresets[workers.preset][pool] ?? 0;
}

/** Every worker process of the stack, pool by pool in the order of workerPoolNames. */
export function workerProcesses(values: Values): WorkerProcess[] {
  const processes: WorkerProcess[] = [];
  for (const pool of workerPoolNames) {
    const count = poolReplicas(values.synapse.workers, pool);
    for (let ordinal = 1; ordinal <= count; ordinal++) {
      processes.push({ pool, ordinal, name: `${kebabCase(pool)}-${ordinal}`, index: processes.length });
    }
  }
  return processes;
}

export const workersEnabled = (values: Values): boolean => workerProcesses(values).length > 0;

export const processesOf = (processes: WorkerProcess[], pool: WorkerPoolName): WorkerProcess[] => processes.filter((p) => p.pool === pool);

/** Processes a pool may run at most (its autoscaling ceiling, else its replicas). */
export function poolMaxProcesses(workers: WorkersValues, pool: WorkerPoolName): number {
  const autoscaling = workers.pools[pool]?.autoscaling;
  return autoscaling?.enabled ? autoscaling.maxReplicas : poolReplicas(workers, pool);
}

/** Connections PostgreSQL keeps for superusers (its superuser_reserved_connections default) and for mxstack's own tools. */
export const reservedDatabaseConnections = 10;

/**
 * Database connections the Synapse processes may hold at once: every process (the main one and each
 * worker, at its pool's ceiling) opens up to synapse.database.cpMax.
 */
export function synapseDatabaseConnections(values: Values): { processes: number; perProcess: number; total: number } {
  const processes = 1 + workerPoolNames.reduce((sum, pool) => sum + poolMaxProcesses(values.synapse.workers, pool), 0);
  const perProcess = values.synapse.database.cpMax;
  return { processes, perProcess, total: processes * perProcess };
}

/** PostgreSQL's max_connections: the configured one, else 100 or what the Synapse pools need. */
export function postgresqlMaxConnections(values: Values): number {
  return values.postgresql.config.maxConnections ?? Math.max(100, synapseDatabaseConnections(values).total + reservedDatabaseConnections);
}
