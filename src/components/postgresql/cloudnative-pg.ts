/**
 * PostgreSQL as a CloudNativePG Cluster (postgresql.mode cloudnative-pg): the operator (the user's) runs the
 * instances; mxstack renders the Cluster (UTF8, collation and ctype C, as Synapse requires), an optional
 * ScheduledBackup to object storage, and wires Synapse and the auth component to the Cluster's -rw Service
 * and -app Secret (src/stack/database.ts). kubernetes-models has no CloudNativePG types: the objects are
 * plain, typed here by the fields mxstack writes, and the tests validate them against the pinned CRD schema.
 */
import type { Stack } from '../../stack/model.js';
import type { KubeObject } from '../../kit/objects.js';
import { objectMeta } from '../../kit/meta.js';
import { resourceRequirements } from '../../kit/pod-security.js';
import { settingPath } from '../../kit/workload.js';
import { ValuesError } from '../../values/errors.js';
import { workloadSettingsFor, type WorkloadKey } from '../../values/workload.js';
import { postgresqlSettings } from './config.js';

export const cloudnativePgApiVersion = 'postgresql.cnpg.io/v1';

type Tree = Record<string, unknown>;

/** The parameters CloudNativePG lets a Cluster set (it owns listen_addresses, port, logging and replication). */
const passedParameters = ['max_connections', 'shared_buffers', 'effective_cache_size', 'maintenance_work_mem', 'work_mem', 'log_min_duration_statement', 'wal_level', 'commit_delay', 'commit_siblings'];

/** Settings of the postgresql group that have no place in a Cluster: the operator builds the instance pods. */
const podOnlySettings: WorkloadKey[] = ['extraContainers', 'extraInitContainers', 'extraVolumes', 'extraVolumeMounts', 'hostAliases', 'runtimeClassName', 'podSecurityContext', 'containerSecurityContext', 'livenessProbe', 'readinessProbe', 'startupProbe', 'terminationGracePeriodSeconds'];

function refusePodOnlySettings(stack: Stack): void {
  const own = stack.values.postgresql as Record<string, unknown>;
  const set = podOnlySettings.filter((key) => own[key] !== undefined);
  if (set.length > 0) {
    throw new ValuesError(
      set.map((key) => `${settingPath(stack.values, 'postgresql', key)}: with postgresql.mode cloudnative-pg the operator builds the PostgreSQL pods (already hardened for Pod Security "restricted"); this setting cannot reach them. Remove it.`),
    );
  }
}

function clusterParameters(stack: Stack): Record<string, string> {
  const settings = postgresqlSettings(stack);
  const parameters: Record<string, string> = {};
  for (const name of passedParameters) {
    if (name === 'wal_level' && settings[name] === 'replica') continue;
    parameters[name] = String(settings[name]);
  }
  return parameters;
}

/** The Cluster's affinity block from the workload settings (CloudNativePG's own shape). */
function clusterAffinity(settings: ReturnType<typeof workloadSettingsFor>): Tree | undefined {
  const affinity = (settings.affinity ?? {}) as Tree;
  const block: Tree = {
    ...(settings.nodeSelector && Object.keys(settings.nodeSelector).length > 0 ? { nodeSelector: settings.nodeSelector } : {}),
    ...(settings.tolerations && settings.tolerations.length > 0 ? { tolerations: settings.tolerations } : {}),
    ...(affinity.nodeAffinity ? { nodeAffinity: affinity.nodeAffinity } : {}),
    ...(affinity.podAffinity ? { additionalPodAffinity: affinity.podAffinity } : {}),
    ...(affinity.podAntiAffinity ? { additionalPodAntiAffinity: affinity.podAntiAffinity } : {}),
  };
  return Object.keys(block).length > 0 ? block : undefined;
}

function barmanObjectStore(stack: Stack): Tree | undefined {
  const backup = stack.values.postgresql.cloudnativePg.backup;
  if (backup.schedule === undefined || !backup.destinationPath) return undefined;
  const keys = backup.s3Credentials;
  const s3Credentials = keys.inheritFromIAMRole
    ? { inheritFromIAMRole: true }
    : keys.accessKeyId && keys.secretAccessKey
      ? { accessKeyId: { name: keys.accessKeyId.name, key: keys.accessKeyId.key }, secretAccessKey: { name: keys.secretAccessKey.name, key: keys.secretAccessKey.key } }
      : undefined;
  return {
    destinationPath: backup.destinationPath,
    ...(backup.endpointURL ? { endpointURL: backup.endpointURL } : {}),
    ...(s3Credentials ? { s3Credentials } : {}),
    wal: { compression: 'gzip' },
    data: { compression: 'gzip' },
  };
}

export function cloudnativePgCluster(stack: Stack): KubeObject {
  refusePodOnlySettings(stack);
  const { postgresql } = stack.values;
  const cnpg = postgresql.cloudnativePg;
  const settings = workloadSettingsFor(stack.values, 'postgresql');
  const name = stack.database.cluster!;
  const meta = objectMeta(stack, 'postgresql', name, settings.annotations ?? {});
  const objectStore = barmanObjectStore(stack);
  const affinity = clusterAffinity(settings);
  const account = postgresql.serviceAccount;
  const podMetadata = { ...(settings.podLabels ? { labels: settings.podLabels } : {}), ...(settings.podAnnotations ? { annotations: settings.podAnnotations } : {}) };
  const spec: Tree = {
    instances: cnpg.instances,
    ...(cnpg.imageName ? { imageName: cnpg.imageName } : {}),
    imagePullPolicy: settings.image.pullPolicy ?? 'IfNotPresent',
    ...(settings.imagePullSecrets && settings.imagePullSecrets.length > 0 ? { imagePullSecrets: settings.imagePullSecrets.map((s) => ({ name: s.name })) } : {}),
    // mxstack never needs the superuser over the network: backup and restore run the tools inside the primary.
    enableSuperuserAccess: false,
    postgresql: { parameters: clusterParameters(stack) },
    bootstrap: {
      initdb: {
        database: stack.database.name,
        owner: stack.database.user,
        encoding: 'UTF8',
        localeCollate: 'C',
        localeCType: 'C',
        // The auth component creates its own database (<name>_auth) at its first start.
        ...(stack.auth ? { postInitApplicationSQL: [`ALTER ROLE "${stack.database.user}" CREATEDB`] } : {}),
      },
    },
    storage: { size: postgresql.persistence.size, ...(postgresql.persistence.storageClassName ? { storageClass: postgresql.persistence.storageClassName } : {}) },
    resources: resourceRequirements(postgresql.resources),
    ...(affinity ? { affinity } : {}),
    ...(settings.topologySpreadConstraints ? { topologySpreadConstraints: settings.topologySpreadConstraints.map((c) => (c.labelSelector ? c : { ...c, labelSelector: { matchLabels: { 'cnpg.io/cluster': name } } })) } : {}),
    ...(settings.priorityClassName ? { priorityClassName: settings.priorityClassName } : {}),
    ...(settings.schedulerName ? { schedulerName: settings.schedulerName } : {}),
    ...(Object.keys(podMetadata).length > 0 ? { inheritedMetadata: podMetadata } : {}),
    ...(settings.extraEnv && settings.extraEnv.length > 0 ? { env: settings.extraEnv } : {}),
    ...(Object.keys(account.annotations).length > 0 ? { serviceAccountTemplate: { metadata: { annotations: account.annotations } } } : {}),
    ...(objectStore ? { backup: { barmanObjectStore: objectStore, retentionPolicy: cnpg.backup.retentionPolicy } } : {}),
  };
  return { apiVersion: cloudnativePgApiVersion, kind: 'Cluster', metadata: { ...meta, labels: { ...settings.labels, ...meta.labels } }, spec } as KubeObject;
}

/** CloudNativePG schedules take six fields (seconds first): the values' five-field schedule runs at second 0. */
export function cloudnativePgSchedule(schedule: string): string {
  return `0 ${schedule.trim()}`;
}

export function cloudnativePgScheduledBackup(stack: Stack): KubeObject[] {
  const backup = stack.values.postgresql.cloudnativePg.backup;
  if (backup.schedule === undefined || !backup.destinationPath) return [];
  const cluster = stack.database.cluster!;
  return [
    {
      apiVersion: cloudnativePgApiVersion,
      kind: 'ScheduledBackup',
      metadata: objectMeta(stack, 'postgresql', `${cluster}-backup`),
      spec: { schedule: cloudnativePgSchedule(backup.schedule), cluster: { name: cluster }, method: 'barmanObjectStore', backupOwnerReference: 'self' },
    } as KubeObject,
  ];
}

export function cloudnativePgObjects(stack: Stack): KubeObject[] {
  return [cloudnativePgCluster(stack), ...cloudnativePgScheduledBackup(stack)];
}
