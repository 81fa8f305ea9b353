/**
 * The component registry: each component's contract, registered once. The targets (which objects to
 * render, which processes to supervise), doctor (which workloads to check) and the CLI (which names a
 * command accepts) take their lists from here.
 */
import type { KubeObject } from '../kit/objects.js';
import type { LocalProcess, LocalProcessContext } from '../kit/local-process.js';
import { componentNames, type ComponentName, type Stack } from '../stack/model.js';
import { authObjects } from './auth/kubernetes.js';
import { authLocalProcess } from './auth/local.js';
import { coturnObjects } from './coturn/kubernetes.js';
import { coturnLocalProcess } from './coturn/local.js';
import { elementObjects } from './element/kubernetes.js';
import { elementLocalProcess } from './element/local.js';
import { postgresqlObjects } from './postgresql/kubernetes.js';
import { postgresqlLocalProcess, postgresqlRuns } from './postgresql/local.js';
import { routerObjects } from './router/kubernetes.js';
import { routerLocalProcess } from './router/local.js';
import { synapseObjects } from './synapse/kubernetes.js';
import { synapseLocalProcess } from './synapse/local.js';

export interface ComponentContract {
  name: ComponentName;
  /** Whether the stack deploys it (on Kubernetes: whether its workload exists). */
  deployed(stack: Stack): boolean;
  /** Its Kubernetes objects; none when it is not deployed. */
  kubernetesObjects(stack: Stack): KubeObject[];
  /** Its process for the local supervisor; undefined when the local target does not run it. */
  localProcess(context: LocalProcessContext): LocalProcess | undefined;
}

const always = () => true;

/** Every component's contract; a Record, so that a name without a contract does not compile. */
const contracts: Record<ComponentName, Omit<ComponentContract, 'name'>> = {
  postgresql: { deployed: postgresqlRuns, kubernetesObjects: postgresqlObjects, localProcess: postgresqlLocalProcess },
  auth: { deployed: (stack) => stack.auth !== undefined, kubernetesObjects: authObjects, localProcess: authLocalProcess },
  synapse: { deployed: always, kubernetesObjects: synapseObjects, localProcess: synapseLocalProcess },
  coturn: { deployed: (stack) => stack.values.coturn.enabled, kubernetesObjects: coturnObjects, localProcess: coturnLocalProcess },
  element: { deployed: (stack) => stack.values.element.enabled, kubernetesObjects: elementObjects, localProcess: elementLocalProcess },
  router: { deployed: always, kubernetesObjects: routerObjects, localProcess: routerLocalProcess },
};

/** The components in start order. */
export const components: readonly ComponentContract[] = componentNames.map((name) => ({ name, ...contracts[name] }));
