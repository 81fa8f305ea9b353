/**
 * The HAProxy router on Kubernetes: haproxy.cfg and the well-known JSON in a ConfigMap, the official
 * image as its own unprivileged user under a read-only root, a Service and a disruption budget.
 */
import { posix } from 'node:path';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Service } from 'kubernetes-models/v1/Service';
import type { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { Stack, ComponentName } from '../../stack/model.js';
import type { KubeObject } from '../../kit/objects.js';
import { clusterIpService, objectMeta } from '../../kit/meta.js';
import { podDisruptionBudgets } from '../../kit/availability.js';
import { emptyDirVolume, httpGetProbe, resourceRequirements, standardProbes } from '../../kit/pod-security.js';
import { configuredDeployment, serviceAccountObjects, workloadImage } from '../../kit/workload.js';
import { tlsSecretVolume } from '../../kit/secret-volumes.js';
import { routerConfigFiles } from './config.js';

/** The component's name in the registry (stack/model.ts's componentNames): labels, object names. */
export const routerComponent = 'router' satisfies ComponentName;

/** The official haproxy image's `haproxy` user and group. */
export const routerUid = 99;

const writableDirs = [
  { name: 'tmp', mountPath: '/tmp' },
  // The image's WORKDIR and HAProxy's conventional state directory.
  { name: 'state', mountPath: '/var/lib/haproxy' },
];

const federationTlsVolume = 'federation-tls';

/** The federation listener's kubernetes.io/tls Secret (a refusal guarantees the name when the listener is on). */
function routerContainer(stack: Stack): IContainer {
  const { router } = stack.values;
  const { ports, paths } = stack.placement;
  return {
    name: 'haproxy',
    ...workloadImage(stack.values, 'router'),
    // -W -db: master-worker in the foreground, as the image's entrypoint would run it.
    command: ['haproxy', '-W', '-db', '-f', posix.join(paths.routerConfigDir, 'haproxy.cfg')],
    ports: [
      { name: 'http', containerPort: ports.router, protocol: 'TCP' as const },
      { name: 'metrics', containerPort: ports.routerMetrics, protocol: 'TCP' as const },
      ...(router.federation.enabled ? [{ name: 'federation', containerPort: ports.routerFederation, protocol: 'TCP' as const }] : []),
    ],
    resources: resourceRequirements(router.resources),
    // `monitor-uri /health` on the metrics frontend.
    ...standardProbes((timing) => httpGetProbe('/health', 'metrics', timing), 60),
    // SIGTERM stops HAProxy at once: give the endpoints a moment to drop this pod first.
    lifecycle: { preStop: { exec: { command: ['sleep', '5'] } } },
    volumeMounts: [
      { name: 'config', mountPath: paths.routerConfigDir, readOnly: true },
      ...(router.federation.enabled ? [{ name: federationTlsVolume, mountPath: paths.routerFederationTlsDir, readOnly: true }] : []),
      ...writableDirs,
    ],
  };
}

function routerDeployment(stack: Stack, configFiles: Record<string, string>): Deployment {
  const { router } = stack.values;
  return configuredDeployment(stack, {
    group: 'router',
    component: routerComponent,
    uid: routerUid,
    configFiles,
    replicas: router.replicaCount,
    // The new pod serves before an old one stops: the router is the stack's one way in.
    strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
    containers: [routerContainer(stack)],
    volumes: [
      ...(router.federation.enabled ? [tlsSecretVolume(federationTlsVolume, router.federation.tls.secretName)] : []),
      ...writableDirs.map(({ name }) => emptyDirVolume(name)),
    ],
  });
}

function routerService(stack: Stack): Service {
  const { ports } = stack.placement;
  const federation: Record<string, number> = stack.values.router.federation.enabled ? { federation: ports.routerFederation } : {};
  return clusterIpService(stack, routerComponent, { http: ports.router, metrics: ports.routerMetrics, ...federation });
}

export function routerObjects(stack: Stack): KubeObject[] {
  const configData = routerConfigFiles(stack);
  return [
    new ConfigMap({ metadata: objectMeta(stack, routerComponent), data: configData }),
    ...serviceAccountObjects(stack, 'router', routerComponent),
    routerDeployment(stack, configData),
    routerService(stack),
    ...podDisruptionBudgets(stack, routerComponent, stack.values.router.replicaCount),
  ];
}
