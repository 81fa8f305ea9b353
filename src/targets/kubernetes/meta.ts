/** Object metadata every object of the release carries: its name and the recommended labels. */
import type { IConfigMap } from 'kubernetes-models/v1/ConfigMap';
import type { Stack } from '../../stack/model.js';

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
