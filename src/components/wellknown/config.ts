/** /.well-known/matrix/server and /.well-known/matrix/client. */
import type { Stack } from '../../stack/model.js';

/** The public base URL as clients expect it in well-known documents and Element: no trailing slash. */
export function baseUrlWithoutTrailingSlash(url: string): string {
  return url.replace(/\/+$/, '');
}

/** `{"m.server": "<host>:<port>"}`, or undefined when federation is off (nothing to announce). */
export function renderWellKnownServer(stack: Stack): Record<string, unknown> | undefined {
  if (stack.federationServer === undefined) return undefined;
  return { 'm.server': stack.federationServer };
}

export function renderWellKnownClient(stack: Stack): Record<string, unknown> {
  return { 'm.homeserver': { base_url: baseUrlWithoutTrailingSlash(stack.publicBaseUrl) } };
}
