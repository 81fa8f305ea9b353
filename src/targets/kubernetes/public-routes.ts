/**
 * The public host names and URL path prefixes of the release, shared by Ingress and Gateway API HTTPRoutes.
 * Every path goes to the router Service: the router routes by path (Synapse, Element, well-known), so the
 * ingress layer only decides which hosts and prefixes reach the release at all.
 */
import { authPathPrefix, type Stack } from '../../stack/model.js';
import { ingressEnabled } from '../../values/ingress.js';
import { splitServerName } from '../../values/derived.js';

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
  // The auth service's pages live on Synapse's public host: its issuer is <public base URL>/auth.
  const auth = stack.auth ? [authPathPrefix] : [];
  add(synapseHost, [...ingress.synapse.paths, ...federation, ...auth], ingress.synapse.tls);
  if (element.enabled && ingress.element.host) add(ingress.element.host, ingress.element.paths, ingress.element.tls);
  if (ingress.wellKnown.enabled) add(splitServerName(stack.serverName).host, [wellKnownPath], ingress.synapse.tls);
  return [...byHost].map(([host, { paths, tls }]) => ({
    host,
    paths: withoutCoveredPaths(paths),
    ...(tls.enabled ? { tlsSecretName: tls.secretName ?? `${stack.release}-${hostSlug(host)}-tls` } : {}),
  }));
}

const certManagerAnnotationPrefix = 'cert-manager.io/';

function hostLine(host: PublicHost): string {
  const scheme = host.tlsSecretName ? 'https' : 'http';
  const tls = host.tlsSecretName ? `  (certificate in Secret ${host.tlsSecretName})` : '';
  return `  ${scheme}://${host.host}  ${host.paths.join(' ')}${tls}`;
}

/**
 * What `render` and `install` tell on stderr: which public routes exist (Ingress, HTTPRoutes or none),
 * with what would surprise a user of the old chart (no IngressClass given, no cert-manager issuer).
 */
export function describePublicRoutes(stack: Stack): string[] {
  const { ingress, gatewayApi, element } = stack.values;
  const ingressRendered = ingressEnabled(stack.values);
  const router = stack.objectName('router');
  if (!ingressRendered && !gatewayApi.enabled) {
    return [`public routes: none rendered (no ingress.synapse.host or ingress.element.host, or ingress.enabled: false); the stack is reachable only inside the cluster through Service ${router}.`];
  }
  const hosts = publicHosts(stack);
  const lines: string[] = [];
  if (ingressRendered) {
    const className = ingress.className ?? 'the cluster\'s default IngressClass (set ingress.className, e.g. traefik as in the old chart)';
    lines.push(`public routes: Ingress ${router}, class ${className}:`, ...hosts.map(hostLine));
    const certManager = Object.keys(ingress.annotations).some((key) => key.startsWith(certManagerAnnotationPrefix));
    if (hosts.some((h) => h.tlsSecretName) && !certManager) {
      lines.push('  no cert-manager annotation in ingress.annotations: those certificate Secrets must exist, or set ingress.annotations.cert-manager\\.io/cluster-issuer.');
    }
  }
  if (gatewayApi.enabled) {
    lines.push(`public routes: HTTPRoutes attached to ${gatewayApi.parentRefs.map((ref) => ref.name).join(', ')}:`, ...hosts.map((h) => `  ${h.host}  ${h.paths.join(' ')}`));
  }
  if (element.enabled && !ingress.element.host) lines.push('  Element Web has no public host (set ingress.element.host).');
  return lines;
}
