/** Object metadata every object of the release carries: its name and the recommended labels. */
import type { IConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Service } from 'kubernetes-models/v1/Service';
import type { Stack } from '../stack/model.js';

export type IObjectMeta = NonNullable<IConfigMap['metadata']>;

export function objectMeta(stack: Stack, component: string, name: string = stack.objectName(component), annotations: Record<string, string> = {}): IObjectMeta {
  return {
    name,
    labels: stack.labels(component),
    ...(Object.keys(annotations).length > 0 ? { annotations } : {}),
  };
}

/** Labels of a pod template: the recommended labels (selector labels included). */
export function podMeta(stack: Stack, component: string, annotations: Record<string, string>): IObjectMeta {
  return {
    labels: stack.labels(component),
    ...(Object.keys(annotations).length > 0 ? { annotations } : {}),
  };
}

/** A ClusterIP Service of a component's pods: one TCP port per entry, each targeting the container port of the same name. */
export function clusterIpService(stack: Stack, component: string, ports: Record<string, number>, name: string = stack.objectName(component)): Service {
  return new Service({
    metadata: objectMeta(stack, component, name),
    spec: {
      type: 'ClusterIP',
      selector: stack.selectorLabels(component),
      ports: Object.entries(ports).map(([portName, port]) => ({ name: portName, port, targetPort: portName, protocol: 'TCP' as const })),
    },
  });
}
