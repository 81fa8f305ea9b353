/** The per-component object builders, in one list so render and tests see the same set. */
import type { Stack } from '../../stack/model.js';
import type { KubeObject } from './objects.js';
import { buildNetworkPolicies } from './network-policies.js';
import { buildIngress } from './ingress.js';
import { buildHttpRoutes } from './gateway.js';
import { buildServiceMonitors } from './service-monitors.js';

export type ObjectBuilder = (stack: Stack) => KubeObject[];

export const componentObjectBuilders: ObjectBuilder[] = [
  buildNetworkPolicies,
  buildIngress,
  buildHttpRoutes,
  buildServiceMonitors,
];
