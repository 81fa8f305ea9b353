/** Whether the release renders Ingress objects: a values-only rule shared by refusals, rendering and reports. */
import type { Values } from './schema.js';

/**
 * `ingress.enabled` when written; otherwise on as soon as a public host is given (the old chart's quick
 * start sets only `ingress.synapse.host` and `ingress.element.host`), unless Gateway API routes are chosen.
 */
export function ingressEnabled(values: Values): boolean {
  const { ingress, gatewayApi } = values;
  if (ingress.enabled !== undefined) return ingress.enabled;
  return !gatewayApi.enabled && Boolean(ingress.synapse.host ?? ingress.element.host);
}
