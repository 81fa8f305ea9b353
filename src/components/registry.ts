/**
 * The component registry: each component's contract, registered once. The targets (which objects to
 * render, which processes to supervise), doctor (which workloads to check) and the CLI (which names a
 * command accepts) take their lists from here.
 */
import type { KubeObject } from '../kit/objects.js';
import type { LocalProcess, LocalProcessContext, NamedLocalProcess } from '../kit/local-process.js';
import { workersEnabled } from '../values/worker-pools.js';
import { componentNames, type ComponentName, type Stack } from '../stack/model.js';
import { authObjects } from './auth/kubernetes.js';
import { authLocalProcess } from './auth/local.js';
import { coturnObjects } from './coturn/kubernetes.js';
import { coturnLocalProcess } from './coturn/local.js';
import { elementObjects } from './element/kubernetes.js';
import { elementLocalProcess } from './element/local.js';
import { postgresqlObjects } from './postgresql/kubernetes.js';
import { postgresqlLocalProcess, postgresqlRuns } from './postgresql/local.js';
import { redisObjects } from './redis/kubernetes.js';
import { redisLocalProcess } from './redis/local.js';
import { routerObjects } from './router/kubernetes.js';
import { routerLocalProcess } from './router/local.js';
import { synapseObjects } from './synapse/kubernetes.js';
import { synapseLocalProcesses } from './synapse/local.js';

export interface ComponentContract {
  name: ComponentName;
  /** Whether the stack deploys it (on Kubernetes: whether its workload exists). */
  deployed(stack: Stack): boolean;
  /** Its Kubernetes objects; none when it is not deployed. */
  kubernetesObjects(stack: Stack): KubeObject[];
  /** Its processes for the local supervisor (none when the local target does not run it; Synapse: with its workers). */
  localProcesses(context: LocalProcessContext): NamedLocalProcess[];
}

const always = () => true;

/** A component that runs as one process, under its own name. */
const single =
  (name: ComponentName, process: (context: LocalProcessContext) => LocalProcess | undefined) =>
  (context: LocalProcessContext): NamedLocalProcess[] => {
    const spec = process(context);
    return spec ? [{ name, ...spec }] : [];
  };

/** Every component's contract; a Record, so that a name without a contract does not compile. */
const contracts: Record<ComponentName, Omit<ComponentContract, 'name'>> = {
  postgresql: { deployed: postgresqlRuns, kubernetesObjects: postgresqlObjects, localProcesses: single('postgresql', postgresqlLocalProcess) },
  auth: { deployed: (stack) => stack.auth !== undefined, kubernetesObjects: authObjects, localProcesses: single('auth', authLocalProcess) },
  redis: { deployed: (stack) => workersEnabled(stack.values), kubernetesObjects: redisObjects, localProcesses: single('redis', redisLocalProcess) },
  synapse: { deployed: always, kubernetesObjects: synapseObjects, localProcesses: synapseLocalProcesses },
  coturn: { deployed: (stack) => stack.values.coturn.enabled, kubernetesObjects: coturnObjects, localProcesses: single('coturn', coturnLocalProcess) },
  element: { deployed: (stack) => stack.values.element.enabled, kubernetesObjects: elementObjects, localProcesses: single('element', elementLocalProcess) },
  router: { deployed: always, kubernetesObjects: routerObjects, localProcesses: single('router', routerLocalProcess) },
};

/** The components in start order. */
export const components: readonly ComponentContract[] = componentNames.map((name) => ({ name, ...contracts[name] }));
