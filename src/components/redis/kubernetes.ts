/**
 * Redis on Kubernetes (only with Synapse workers): redis.conf in a ConfigMap, the password from the
 * `<release>-redis` Secret turned into the included `requirepass` file by an init container (the password
 * never reaches a ConfigMap, an argument or the environment of Redis), the official image as its own user
 * under a read-only root, redis_exporter beside it for metrics, and a Service.
 */
import { posix } from 'node:path';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import type { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import type { IContainer } from 'kubernetes-models/v1/Container';
import { redisSecretFiles, type Stack, type ComponentName } from '../../stack/model.js';
import type { KubeObject } from '../../kit/objects.js';
import { clusterIpService, objectMeta } from '../../kit/meta.js';
import {
  emptyDirVolume,
  resourceRequirements,
  standardProbes,
} from '../../kit/pod-security.js';
import { configuredDeployment, workloadImage } from '../../kit/workload.js';
import { imageReference } from '../../values/workload.js';
import { workersEnabled } from '../../values/worker-pools.js';
import { renderRedisConf } from './config.js';

/** The component's name in the registry (stack/model.ts's componentNames): labels, object names. */
export const redisComponent = 'redis' satisfies ComponentName;

/** The official redis image's `redis` user and group. */
export const redisUid = 999;

const passwordSourceDir = '/secret-source';

function redisConfigData(stack: Stack): Record<string, string> {
  return { 'redis.conf': renderRedisConf(stack) };
}

/** Writes `requirepass <password>` into the secrets emptyDir (memory-backed) from the mounted Secret key. */
function passwordInitContainer(stack: Stack): IContainer {
  const { paths } = stack.placement;
  const target = posix.join(paths.redisSecretsDir, redisSecretFiles.passwordConf);
  return {
    name: 'password',
    ...workloadImage(stack.values, 'redis'),
    command: ['sh', '-c', `umask 077 && printf 'requirepass %s\\n' "$(cat ${passwordSourceDir}/password)" > ${target}`],
    resources: resourceRequirements(stack.values.redis.resources),
    volumeMounts: [
      { name: 'password-source', mountPath: passwordSourceDir, readOnly: true },
      { name: 'secrets', mountPath: paths.redisSecretsDir },
    ],
  };
}

function redisContainer(stack: Stack): IContainer {
  const { redis } = stack.values;
  const { paths, ports } = stack.placement;
  return {
    name: 'redis',
    ...workloadImage(stack.values, 'redis'),
    command: ['redis-server', posix.join(paths.redisConfigDir, 'redis.conf')],
    ports: [{ name: 'redis', containerPort: ports.redis, protocol: 'TCP' as const }],
    resources: resourceRequirements(redis.resources),
    // A TCP connection is all a probe can make without the password.
    ...standardProbes((timing) => ({ tcpSocket: { port: 'redis' }, ...timing }), 60),
    volumeMounts: [
      { name: 'config', mountPath: paths.redisConfigDir, readOnly: true },
      { name: 'secrets', mountPath: paths.redisSecretsDir, readOnly: true },
      { name: 'data', mountPath: paths.redisDataDir },
    ],
  };
}

function exporterContainer(stack: Stack): IContainer {
  const { redis } = stack.values;
  const password = stack.secrets.workers!.redisPassword;
  return {
    name: 'metrics',
    image: imageReference(redis.metrics.image),
    imagePullPolicy: redis.metrics.image.pullPolicy as IContainer['imagePullPolicy'],
    env: [
      { name: 'REDIS_ADDR', value: `redis://127.0.0.1:${stack.placement.ports.redis}` },
      // redis_exporter reads its password from the environment only; the value comes from the Secret.
      { name: 'REDIS_PASSWORD', valueFrom: { secretKeyRef: { name: password.name, key: password.key } } },
      { name: 'REDIS_EXPORTER_WEB_LISTEN_ADDRESS', value: `:${redis.metrics.port}` },
    ],
    ports: [{ name: 'metrics', containerPort: redis.metrics.port, protocol: 'TCP' as const }],
    resources: { requests: { cpu: '10m', memory: '32Mi' }, limits: { cpu: '200m', memory: '64Mi' } },
    ...standardProbes((timing) => ({ httpGet: { path: '/health', port: 'metrics' }, ...timing }), 60),
  };
}

function redisDeployment(stack: Stack): Deployment {
  const { redis } = stack.values;
  const password = stack.secrets.workers!.redisPassword;
  return configuredDeployment(stack, {
    group: 'redis',
    component: redisComponent,
    uid: redisUid,
    configFiles: redisConfigData(stack),
    replicas: 1,
    // Never two at once: Synapse processes would split between two buses.
    strategy: { type: 'Recreate' },
    initContainers: [passwordInitContainer(stack)],
    containers: [redisContainer(stack), ...(redis.metrics.enabled ? [exporterContainer(stack)] : [])],
    volumes: [
      { name: 'password-source', secret: { secretName: password.name, defaultMode: 0o400, items: [{ key: password.key, path: 'password' }] } },
      emptyDirVolume('secrets', { memory: true, sizeLimit: '1Mi' }),
      emptyDirVolume('data'),
    ],
  });
}

export function redisObjects(stack: Stack): KubeObject[] {
  if (!workersEnabled(stack.values) || !stack.secrets.workers) return [];
  const { redis } = stack.values;
  return [
    new ConfigMap({ metadata: objectMeta(stack, redisComponent), data: redisConfigData(stack) }),
    redisDeployment(stack),
    clusterIpService(stack, redisComponent, { redis: stack.placement.ports.redis, ...(redis.metrics.enabled ? { metrics: redis.metrics.port } : {}) }),
  ];
}
