/** The per-component object builders, in one list so render and tests see the same set. */
import type { Stack } from '../../stack/model.js';
import type { KubeObject } from './objects.js';

export type ObjectBuilder = (stack: Stack) => KubeObject[];

export const componentObjectBuilders: ObjectBuilder[] = [];
