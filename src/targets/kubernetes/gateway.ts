/** Gateway API: one HTTPRoute per public host, every path to the router Service. TLS lives on the Gateway. */
import { HTTPRoute } from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/HTTPRoute';
import type { Stack } from '../../stack/model.js';
import type { KubeObject } from '../../kit/objects.js';
import { hostSlug, publicHosts } from './public-routes.js';

/** The HTTPRoute schema allows at most 8 matches per rule. */
const maxMatchesPerRule = 8;

function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

export function buildHttpRoutes(stack: Stack): KubeObject[] {
  const { gatewayApi } = stack.values;
  if (!gatewayApi.enabled) return [];
  const parentRefs = gatewayApi.parentRefs.map((ref) => ({
    name: ref.name,
    ...(ref.namespace ? { namespace: ref.namespace } : {}),
    ...(ref.sectionName ? { sectionName: ref.sectionName } : {}),
  }));
  const backendRefs = [{ name: stack.objectName('router'), port: stack.placement.ports.router }];
  return publicHosts(stack).map(
    (h) =>
      new HTTPRoute({
        metadata: { name: `${stack.release}-${hostSlug(h.host)}`, labels: stack.labels('router') },
        spec: {
          parentRefs,
          hostnames: [h.host],
          rules: chunks(h.paths, maxMatchesPerRule).map((paths) => ({
            matches: paths.map((value) => ({ path: { type: 'PathPrefix' as const, value } })),
            backendRefs,
          })),
        },
      }),
  );
}
