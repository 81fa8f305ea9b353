/** The per-component object builders, in one list so render and tests see the same set. */
import type { Stack } from '../../stack/model.js';
import type { KubeObject } from './objects.js';
import { buildNetworkPolicies } from './network-policies.js';
import { buildIngress } from './ingress.js';
import { buildHttpRoutes } from './gateway.js';
import { buildServiceMonitors } from './service-monitors.js';
import { synapseObjects } from '../../components/synapse/kubernetes.js';
import { adminBootstrapObjects } from '../../components/synapse/admin-bootstrap.js';
import { elementObjects } from '../../components/element/kubernetes.js';
import { postgresqlObjects } from '../../components/postgresql/kubernetes.js';
import { coturnObjects } from '../../components/coturn/kubernetes.js';
import { routerObjects } from '../../components/router/kubernetes.js';
import { valuesSecretObjects } from './secrets.js';
import { backupObjects } from '../../components/backup/kubernetes.js';
import { authObjects } from '../../components/auth/kubernetes.js';
import { redisObjects } from '../../components/redis/kubernetes.js';

export type ObjectBuilder = (stack: Stack) => KubeObject[];

export const componentObjectBuilders: ObjectBuilder[] = [
  buildNetworkPolicies,
  buildIngress,
  buildHttpRoutes,
  buildServiceMonitors,
  synapseObjects,
  adminBootstrapObjects,
  elementObjects,
  postgresqlObjects,
  coturnObjects,
  routerObjects,
  authObjects,
  redisObjects,
  valuesSecretObjects,
  backupObjects,
];
