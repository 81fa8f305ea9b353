/**
 * Synapse's worker pools on Kubernetes. A pool named in the shared configuration (stream writers, senders,
 * pushers, media...) is a StatefulSet: pod `<pool>-N` reads the worker file of process N+1, the name
 * instance_map and the other keys use. A pool that needs no name (sync, client readers, event creators,
 * federation readers) is a Deployment, optionally with a HorizontalPodAutoscaler (autoscaling/v2); each pod
 * takes its pod name as worker_name. Each pool has a headless Service (pod DNS names for instance_map, all
 * addresses for the router's DNS template) and a disruption budget when it runs two or more.
 */
import { posix } from 'node:path';
import { Service } from 'kubernetes-models/v1/Service';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IPodTemplateSpec } from 'kubernetes-models/v1/PodTemplateSpec';
import type { IVolume } from 'kubernetes-models/v1/Volume';
import type { Stack } from '../../stack/model.js';
import { homeserverConfigPath, synapseContainerEnvironment, synapseStartArgv } from './start.js';
import type { KubeObject } from '../../kit/objects.js';
import { objectMeta } from '../../kit/meta.js';
import { podDisruptionBudgets } from '../../kit/availability.js';
import {
  configChecksum,
  configChecksumAnnotation,
  emptyDirVolume,
  httpGetProbe,
  resourceRequirements,
  standardProbes,
} from '../../kit/pod-security.js';
import { configuredPodTemplate, workloadImage, workloadMeta } from '../../kit/workload.js';
import { kebabCase, poolMaxProcesses, poolReplicas, processesOf, workerPoolNames, workerPools, workerProcesses, type WorkerPoolName } from '../../values/worker-pools.js';
import { workerConfigFile } from './workers.js';

/** Container ports of every Synapse worker pod (the Kubernetes placement uses them too). */
export const kubernetesWorkerPorts = { http: 8008, replication: 9093, metrics: 9000 } as const;

/** The component (label `app.kubernetes.io/name`) of a pool's pods: `synapse-<pool>`. */
export const workerPoolComponent = (pool: WorkerPoolName): string => `synapse-${kebabCase(pool)}`;

/** The pools that run on this release (a pool that autoscales runs at least its floor). */
export function runningPools(stack: Stack): WorkerPoolName[] {
  return workerPoolNames.filter((pool) => poolMaxProcesses(stack.values.synapse.workers, pool) > 0);
}

/** Where a nameless pod writes the file that names it (a memory-backed emptyDir). */
const nameDir = '/run/mxstack';

/**
 * The command of a pool's pods: Synapse's generic worker with the shared files and the worker's own. A
 * StatefulSet pod picks its file by ordinal; a Deployment pod uses the pool's first file and names itself
 * after its pod (a later --config-path replaces worker_name).
 */
function workerCommand(stack: Stack, pool: WorkerPoolName): string[] {
  const { paths } = stack.placement;
  const app = workerPools[pool].app ?? 'synapse.app.generic_worker';
  // The start step (the same as the main process's) joins the database and SMTP passwords in, then execs Synapse.
  const start = synapseStartArgv(stack, 'python', app, [homeserverConfigPath(stack)]).join(' ');
  const first = processesOf(workerProcesses(stack.values), pool)[0]!;
  if (workerPools[pool].named) {
    const file = posix.join(paths.synapseConfigDir, workerConfigFile(first).replace(/-1\.yaml$/, '-$((${HOSTNAME##*-} + 1)).yaml'));
    return ['sh', '-c', `exec ${start} --config-path "${file}"`];
  }
  const nameFile = posix.join(nameDir, 'worker-name.yaml');
  return [
    'sh',
    '-c',
    `printf 'worker_name: %s\\n' "$HOSTNAME" > ${nameFile} && exec ${start} --config-path ${posix.join(paths.synapseConfigDir, workerConfigFile(first))} --config-path ${nameFile}`,
  ];
}

function workerContainer(stack: Stack, pool: WorkerPoolName): IContainer {
  const { paths } = stack.placement;
  const settings = stack.values.synapse.workers.pools[pool];
  const ports = kubernetesWorkerPorts;
  return {
    name: 'synapse',
    ...workloadImage(stack.values, 'synapse'),
    command: workerCommand(stack, pool),
    ...synapseContainerEnvironment(stack),
    ports: [
      { name: 'http', containerPort: ports.http, protocol: 'TCP' as const },
      ...(workerPools[pool].replication ? [{ name: 'replication', containerPort: ports.replication, protocol: 'TCP' as const }] : []),
      ...(stack.values.synapse.metrics.enabled ? [{ name: 'metrics', containerPort: ports.metrics, protocol: 'TCP' as const }] : []),
    ],
    resources: resourceRequirements(settings?.resources ?? stack.values.synapse.resources),
    ...standardProbes((timing) => httpGetProbe('/health', 'http', timing), 300),
    volumeMounts: [
      { name: 'config', mountPath: paths.synapseConfigDir, readOnly: true },
      { name: 'secrets', mountPath: paths.synapseSecretsDir, readOnly: true },
      { name: 'signing-key', mountPath: posix.dirname(paths.signingKey), readOnly: true },
      // Only the media repository writes the media store.
      ...(pool === 'mediaRepository' ? [{ name: 'data', mountPath: paths.synapseDataDir }] : []),
      { name: 'name', mountPath: nameDir },
      { name: 'runtime', mountPath: paths.synapseRuntimeDir },
      { name: 'tmp', mountPath: '/tmp' },
    ],
  };
}

export interface WorkerPodParts {
  uid: number;
  serviceAccountName: string;
  /** The volumes the main process's pod has: config, secrets, signing-key, data. */
  volumes: IVolume[];
  configMapData: Record<string, string>;
}

function podTemplate(stack: Stack, pool: WorkerPoolName, parts: WorkerPodParts): IPodTemplateSpec {
  const component = workerPoolComponent(pool);
  const volumes = parts.volumes.filter((volume) => volume.name !== 'data' || pool === 'mediaRepository');
  // Worker pods take the synapse group's workload settings and run as the main process's ServiceAccount.
  const template = configuredPodTemplate(stack, {
    group: 'synapse',
    component,
    uid: parts.uid,
    annotations: { [configChecksumAnnotation]: configChecksum(parts.configMapData) },
    replicas: poolReplicas(stack.values.synapse.workers, pool),
    containers: [workerContainer(stack, pool)],
    volumes: [...volumes, emptyDirVolume('name', { memory: true, sizeLimit: '1Mi' }), emptyDirVolume('tmp')],
  });
  return { ...template, spec: { ...template.spec!, serviceAccountName: parts.serviceAccountName } };
}

function poolService(stack: Stack, pool: WorkerPoolName): Service {
  const component = workerPoolComponent(pool);
  const ports = kubernetesWorkerPorts;
  return new Service({
    metadata: objectMeta(stack, component),
    spec: {
      clusterIP: 'None',
      selector: stack.selectorLabels(component),
      ports: [
        { name: 'http', port: ports.http, targetPort: 'http', protocol: 'TCP' as const },
        ...(workerPools[pool].replication ? [{ name: 'replication', port: ports.replication, targetPort: 'replication', protocol: 'TCP' as const }] : []),
        ...(stack.values.synapse.metrics.enabled ? [{ name: 'metrics', port: ports.metrics, targetPort: 'metrics', protocol: 'TCP' as const }] : []),
      ],
    },
  });
}

function poolWorkload(stack: Stack, pool: WorkerPoolName, parts: WorkerPodParts): KubeObject[] {
  const component = workerPoolComponent(pool);
  const workers = stack.values.synapse.workers;
  const replicas = poolReplicas(workers, pool);
  const selector = { matchLabels: stack.selectorLabels(component) };
  const template = podTemplate(stack, pool, parts);
  if (workerPools[pool].named) {
    return [
      new StatefulSet({
        // The synapse group's workload labels and annotations, like the main process's Deployment.
        metadata: workloadMeta(stack, 'synapse', component),
        spec: { replicas, serviceName: stack.objectName(component), podManagementPolicy: 'Parallel', selector, template },
      }),
    ];
  }
  const autoscaling = workers.pools[pool]?.autoscaling;
  const deployment = new Deployment({
    metadata: workloadMeta(stack, 'synapse', component),
    // With an autoscaler the replica count is its to set: apply must not reset it.
    spec: { ...(autoscaling?.enabled ? {} : { replicas }), selector, template },
  });
  if (!autoscaling?.enabled) return [deployment];
  return [
    deployment,
    new HorizontalPodAutoscaler({
      metadata: objectMeta(stack, component),
      spec: {
        scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: stack.objectName(component) },
        minReplicas: autoscaling.minReplicas,
        maxReplicas: autoscaling.maxReplicas,
        metrics: [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: autoscaling.targetCPUUtilizationPercentage } } }],
      },
    }),
  ];
}

export function synapseWorkerObjects(stack: Stack, parts: WorkerPodParts): KubeObject[] {
  return runningPools(stack).flatMap((pool) => [
    poolService(stack, pool),
    ...poolWorkload(stack, pool, parts),
    ...podDisruptionBudgets(stack, workerPoolComponent(pool), poolReplicas(stack.values.synapse.workers, pool)),
  ]);
}
