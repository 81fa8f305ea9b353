/** Values → stack → validated Kubernetes objects → deterministic YAML. Pure. */
import { stringify } from 'yaml';
import type { Values } from '../../values/schema.js';
import { compileStack, type CompileOptions } from '../../stack/compile.js';
import type { Stack } from '../../stack/model.js';
import { kubernetesPlacement } from './placement.js';
import { compareObjects, isNamespaced, type KubeObject } from '../../kit/objects.js';
import { componentObjectBuilders } from './components.js';
import { toPlainSorted } from '../../kit/sorted-json.js';

export function compileKubernetesStack(values: Values, options: CompileOptions = {}): Stack {
  const release = options.release ?? 'mxstack';
  return compileStack(values, kubernetesPlacement(values, release), options);
}

/** Every object of the release, validated against its upstream schema, in a stable order. */
export function renderKubernetesObjects(stack: Stack): KubeObject[] {
  const objects = componentObjectBuilders.flatMap((build) => build(stack));
  for (const object of objects) {
    if (isNamespaced(object)) object.metadata = { ...object.metadata, namespace: stack.namespace };
    try {
      object.validate?.();
    } catch (error) {
      throw new Error(`rendered ${object.kind}/${object.metadata?.name} does not pass its schema: ${(error as Error).message}`);
    }
  }
  return objects.sort(compareObjects);
}

export function objectToYaml(object: KubeObject): string {
  return stringify(toPlainSorted(object), { lineWidth: 0, sortMapEntries: true });
}

export function renderKubernetesYaml(objects: KubeObject[]): string {
  return objects.map((o) => `---\n${objectToYaml(o)}`).join('');
}

/** File name per object for --output-dir: `<kind>-<name>.yaml`, lower case. */
export function objectFileName(object: KubeObject): string {
  return `${object.kind.toLowerCase()}-${object.metadata?.name ?? 'unnamed'}.yaml`;
}
