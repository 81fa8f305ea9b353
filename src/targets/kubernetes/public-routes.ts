/**
 * The public host names and URL path prefixes of the release, shared by Ingress and Gateway API HTTPRoutes.
 * Every path goes to the router Service: the router routes by path (Synapse, Element, well-known), so the
 * ingress layer only decides which hosts and prefixes reach the release at all.
 */
import { authPathPrefix, type Stack } from '../../stack/model.js';

export interface PublicHost {
  host: string;
  /** Path prefixes (segment-wise, as Ingress `Prefix` and HTTPRoute `PathPrefix` match). */
  paths: string[];
  /** The Secret with this host's certificate, when the host is served over TLS. */
  tlsSecretName?: string;
}

/** `/_matrix` covers `/_matrix/key` but not `/_matrixfoo`: prefixes match whole path segments. */
export function pathCovers(prefix: string, path: string): boolean {
  const base = prefix.replace(/\/+$/, '');
  return base === '' || path === base || path.startsWith(`${base}/`);
}

/** Drops exact duplicates and paths another prefix already covers (every path has the same backend). */
export function withoutCoveredPaths(paths: string[]): string[] {
  const unique = [...new Set(paths)];
  return unique.filter((path) => !unique.some((other) => other !== path && pathCovers(other, path)));
}

export function hostSlug(host: string): string {
  return host.toLowerCase().replace(/[^a-z0-9-]+/g, '-');
}

export const federationPaths = ['/_matrix/federation', '/_matrix/key'] as const;
export const wellKnownPath = '/.well-known/matrix';

/**
 * Hosts in a stable order (Synapse, Element, server name). A host given twice (Element on the Synapse
 * host, or the server name equal to either) is one entry with the paths of both.
 */
export function publicHosts(stack: Stack): PublicHost[] {
  const { ingress, synapse, element } = stack.values;
  const byHost = new Map<string, { paths: string[]; tls: { enabled: boolean; secretName?: string } }>();
  const add = (host: string, paths: readonly string[], tls: { enabled: boolean; secretName?: string }) => {
    const key = host.toLowerCase();
    const existing = byHost.get(key);
    if (existing) existing.paths.push(...paths);
    else byHost.set(key, { paths: [...paths], tls });
  };
  // Without ingress.synapse.host, Synapse is served where its public URL points (the server name by default).
  const synapseHost = ingress.synapse.host ?? new URL(stack.publicBaseUrl).hostname;
  // With the default paths these are already under /_matrix; listed so custom paths keep federation working.
  const federation = synapse.server.federation.enabled && ingress.federation.enabled ? federationPaths : [];
  // The identity provider's pages live on Synapse's public host: its issuer is <public base URL>/auth.
  const auth = stack.auth ? [authPathPrefix] : [];
  add(synapseHost, [...ingress.synapse.paths, ...federation, ...auth], ingress.synapse.tls);
  if (element.enabled && ingress.element.host) add(ingress.element.host, ingress.element.paths, ingress.element.tls);
  if (ingress.wellKnown.enabled) add(stack.serverName, [wellKnownPath], ingress.synapse.tls);
  return [...byHost].map(([host, { paths, tls }]) => ({
    host,
    paths: withoutCoveredPaths(paths),
    ...(tls.enabled ? { tlsSecretName: tls.secretName ?? `${stack.release}-${hostSlug(host)}-tls` } : {}),
  }));
}
