/** Every object builder of a release, in one list so render and tests see the same set. */
import type { Stack } from '../../stack/model.js';
import type { KubeObject } from '../../kit/objects.js';
import { components } from '../../components/registry.js';
import { adminBootstrapObjects } from '../../components/synapse/admin-bootstrap.js';
import { backupObjects } from '../../components/backup/kubernetes.js';
import { buildNetworkPolicies } from './network-policies.js';
import { buildIngress } from './ingress.js';
import { buildHttpRoutes } from './gateway.js';
import { buildServiceMonitors } from './service-monitors.js';
import { valuesSecretObjects } from './secrets.js';

export type ObjectBuilder = (stack: Stack) => KubeObject[];

/** The registry's components, plus the release's own objects (networking, monitoring, Jobs, values Secrets). */
export const componentObjectBuilders: ObjectBuilder[] = [
  ...components.map((component) => component.kubernetesObjects),
  adminBootstrapObjects,
  backupObjects,
  buildNetworkPolicies,
  buildIngress,
  buildHttpRoutes,
  buildServiceMonitors,
  valuesSecretObjects,
];
