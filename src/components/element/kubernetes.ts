/**
 * Element Web on Kubernetes: config.json in a ConfigMap, the upstream nginx image on an unprivileged
 * port with a read-only root filesystem, its Service, and optionally an HPA and a disruption budget.
 */
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Service } from 'kubernetes-models/v1/Service';
import type { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IServicePort } from 'kubernetes-models/v1/ServicePort';
import type { Stack, ComponentName } from '../../stack/model.js';
import type { KubeObject } from '../../kit/objects.js';
import { objectMeta } from '../../kit/meta.js';
import { podDisruptionBudgets } from '../../kit/availability.js';
import { emptyDirVolume, httpGetProbe, resourceRequirements, serviceType, standardProbes } from '../../kit/pod-security.js';
import { configuredDeployment, serviceAccountObjects, workloadImage } from '../../kit/workload.js';
import { elementConfigFiles } from './config.js';

/** The component's name in the registry (stack/model.ts's componentNames): labels, object names. */
export const elementComponent = 'element' satisfies ComponentName;

/** The element-web image runs nginx as user `nginx` (101) of nginx:alpine. */
export const elementUid = 101;

/**
 * Where the image's nginx writes at start: envsubst renders its server block into conf.d (listening on
 * ELEMENT_WEB_PORT), the entrypoint copies config*.json to /tmp/element-web-config, nginx keeps its pid
 * in /tmp and its buffers in /var/cache/nginx. Each is an emptyDir under a read-only root.
 */
const writableDirs = [
  { name: 'nginx-conf', mountPath: '/etc/nginx/conf.d' },
  { name: 'nginx-cache', mountPath: '/var/cache/nginx' },
  { name: 'tmp', mountPath: '/tmp' },
];

/** Replicas the Deployment keeps at the least (the HPA's floor when autoscaling). */
function minimumReplicas(stack: Stack): number {
  const { autoscaling, element } = stack.values;
  return autoscaling.enabled ? autoscaling.minReplicas : element.replicaCount;
}

function elementContainer(stack: Stack): IContainer {
  const { element } = stack.values;
  const port = stack.placement.ports.element;
  return {
    name: 'element',
    ...workloadImage(stack.values, 'element'),
    env: [{ name: 'ELEMENT_WEB_PORT', value: String(port) }],
    ports: [{ name: 'http', containerPort: port, protocol: 'TCP' as const }],
    resources: resourceRequirements(element.resources),
    ...standardProbes((timing) => httpGetProbe('/config.json', 'http', timing), 60),
    volumeMounts: [
      { name: 'config', mountPath: '/app/config.json', subPath: 'config.json', readOnly: true },
      ...writableDirs,
    ],
  };
}

function elementDeployment(stack: Stack, configFiles: Record<string, string>): Deployment {
  return configuredDeployment(stack, {
    group: 'element',
    component: elementComponent,
    uid: elementUid,
    // The entrypoint copies config.json once at start: a changed config needs new pods.
    configFiles,
    replicas: minimumReplicas(stack),
    // With an HPA the replica count is its to set: applying one here would fight it.
    autoscaled: stack.values.autoscaling.enabled,
    containers: [elementContainer(stack)],
    volumes: writableDirs.map(({ name }) => emptyDirVolume(name)),
  });
}

function elementService(stack: Stack): Service {
  const { service } = stack.values.element;
  const ports: IServicePort[] = [{ name: 'http', port: service.port, targetPort: 'http', protocol: 'TCP' as const }];
  const stackPort = stack.placement.ports.element;
  // The router's backend addresses Element's Service on the container's port.
  if (stackPort !== service.port) ports.push({ name: 'internal', port: stackPort, targetPort: 'http', protocol: 'TCP' as const });
  return new Service({
    metadata: objectMeta(stack, elementComponent),
    spec: { type: serviceType(service.type), selector: stack.selectorLabels(elementComponent), ports },
  });
}

function elementAutoscaler(stack: Stack): HorizontalPodAutoscaler[] {
  const { autoscaling } = stack.values;
  if (!autoscaling.enabled) return [];
  return [
    new HorizontalPodAutoscaler({
      metadata: objectMeta(stack, elementComponent),
      spec: {
        scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: stack.objectName(elementComponent) },
        minReplicas: autoscaling.minReplicas,
        maxReplicas: autoscaling.maxReplicas,
        metrics: [
          { type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: autoscaling.targetCPUUtilizationPercentage } } },
        ],
      },
    }),
  ];
}

export function elementObjects(stack: Stack): KubeObject[] {
  if (!stack.values.element.enabled) return [];
  const configData = elementConfigFiles(stack);
  return [
    new ConfigMap({ metadata: objectMeta(stack, elementComponent), data: configData }),
    ...serviceAccountObjects(stack, 'element', elementComponent),
    elementDeployment(stack, configData),
    elementService(stack),
    ...elementAutoscaler(stack),
    ...podDisruptionBudgets(stack, elementComponent, minimumReplicas(stack)),
  ];
}
