/** The HAProxy router: serves well-known, routes to Synapse and Element. */
import type { Stack } from '../../stack/model.js';

export function renderRouterConfig(_stack: Stack): string {
  throw new Error('not implemented');
}

/** { 'haproxy.cfg', 'well-known-server.json', 'well-known-client.json' } */
export function routerConfigFiles(_stack: Stack): Record<string, string> {
  throw new Error('not implemented');
}
