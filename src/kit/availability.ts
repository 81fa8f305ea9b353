/** Disruption budgets for the components that run more than one replica. */
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import type { Stack } from '../stack/model.js';
import { objectMeta } from './meta.js';

/** minAvailable 1 when at least two replicas run; none otherwise (a budget would block every drain). */
export function podDisruptionBudgets(stack: Stack, component: string, minimumReplicas: number): PodDisruptionBudget[] {
  if (minimumReplicas < 2) return [];
  return [
    new PodDisruptionBudget({
      metadata: objectMeta(stack, component),
      spec: { minAvailable: 1, selector: { matchLabels: stack.selectorLabels(component) } },
    }),
  ];
}
