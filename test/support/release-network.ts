/**
 * A small cluster around one release for the NetworkPolicy evaluator: the release's pods, an ingress
 * controller, a Prometheus, the cluster DNS, an identity provider, and addresses outside the cluster.
 * Peers outside the release are placed where the values say (their selectors), or in namespaces of their
 * own when the values leave the selector empty.
 */
import { toPlainSorted } from '../../src/kit/sorted-json.js';
import type { KubeObject } from '../../src/kit/objects.js';
import type { Stack } from '../../src/stack/model.js';
import type { ClusterModel, Endpoint, NamedPort, PlainNetworkPolicy, PodEndpoint } from './network-policy-evaluator.js';

export const publicIpv4 = '93.184.216.34';
export const publicIpv6 = '2606:4700:4700::1111';
export const cloudMetadata = '169.254.169.254';
export const privateAddress = '10.200.0.5';

export const external = (name: string, ip: string): Endpoint => ({ kind: 'external', name, ip });

export function plainPolicies(objects: KubeObject[]): PlainNetworkPolicy[] {
  return objects.filter((o) => o.kind === 'NetworkPolicy').map((o) => toPlainSorted(o) as PlainNetworkPolicy);
}

/** A peer pod placed per a namespaceSelector/podSelector pair from values. */
function peerPod(
  name: string,
  pair: { namespaceSelector: Record<string, string>; podSelector: Record<string, string> },
  fallback: { namespace: string; labels: Record<string, string> },
  ip: string,
  namespaces: Record<string, Record<string, string>>,
): PodEndpoint {
  const configured = Object.keys(pair.namespaceSelector).length > 0 || Object.keys(pair.podSelector).length > 0;
  const namespaceLabels = configured ? { ...pair.namespaceSelector } : {};
  const namespace = namespaceLabels['kubernetes.io/metadata.name'] ?? `${name}-ns`;
  namespaces[namespace] = { ...(namespaces[namespace] ?? {}), ...namespaceLabels };
  if (!configured) namespaces[fallback.namespace] = namespaces[fallback.namespace] ?? {};
  return {
    kind: 'pod',
    name,
    namespace: configured ? namespace : fallback.namespace,
    labels: configured ? { ...pair.podSelector } : fallback.labels,
    ip,
  };
}

export interface ReleaseNetwork {
  cluster: ClusterModel;
  /** The release's pods by component name, with the labels given. */
  pods: Record<string, PodEndpoint>;
  ingressController: PodEndpoint;
  prometheus: PodEndpoint;
  dns: PodEndpoint;
  identityProvider: PodEndpoint;
  /** A pod of some other application in another namespace. */
  stranger: PodEndpoint;
  /** A pod of some other application in the release's own namespace. */
  neighbour: PodEndpoint;
}

export interface ReleasePod {
  labels: Record<string, string>;
  namedPorts?: NamedPort[];
}

/**
 * The model: `releasePods` maps a component name to its pod labels (from rendered pod templates, or
 * the stack's selector labels in tests of the builders alone).
 */
export function releaseNetwork(stack: Stack, objects: KubeObject[], releasePods: Record<string, ReleasePod>): ReleaseNetwork {
  const np = stack.values.networkPolicy;
  const namespaces: Record<string, Record<string, string>> = { [stack.namespace]: {} };
  const pods: Record<string, PodEndpoint> = {};
  Object.entries(releasePods).forEach(([component, pod], index) => {
    pods[component] = { kind: 'pod', name: component, namespace: stack.namespace, labels: pod.labels, ip: `10.244.0.${10 + index}`, namedPorts: pod.namedPorts ?? [] };
  });
  const ingressController = peerPod('ingress-controller', np.ingress.traefik, { namespace: 'ingress-system', labels: { app: 'ingress-controller' } }, '10.244.1.10', namespaces);
  const prometheus = peerPod('prometheus', np.prometheus, { namespace: 'monitoring', labels: { app: 'prometheus' } }, '10.244.2.10', namespaces);
  const identityProvider = peerPod('identity-provider', np.egress.sso, { namespace: 'auth', labels: { app: 'identity-provider' } }, '10.244.3.10', namespaces);
  namespaces[np.egress.dnsNamespace] = namespaces[np.egress.dnsNamespace] ?? {};
  const dns: PodEndpoint = { kind: 'pod', name: 'dns', namespace: np.egress.dnsNamespace, labels: { 'k8s-app': 'kube-dns' }, ip: '10.96.0.10' };
  namespaces['elsewhere'] = {};
  const stranger: PodEndpoint = { kind: 'pod', name: 'stranger', namespace: 'elsewhere', labels: { app: 'stranger' }, ip: '10.244.9.10' };
  const neighbour: PodEndpoint = { kind: 'pod', name: 'neighbour', namespace: stack.namespace, labels: { app: 'neighbour' }, ip: '10.244.9.11' };
  const policies = plainPolicies(objects).map((p) => ({ ...p, metadata: { ...p.metadata, namespace: p.metadata?.namespace ?? stack.namespace } }));
  return { cluster: { namespaces, policies }, pods, ingressController, prometheus, dns, identityProvider, stranger, neighbour };
}

/** The first usable-looking address inside a CIDR (network address + 25, or + 1 in small blocks). */
export function addressInside(cidr: string): string {
  const [network = '', prefixText = '32'] = cidr.split('/');
  if (network.includes(':')) return network.endsWith('::') ? `${network}25` : network;
  const prefix = Number(prefixText);
  const value = network.split('.').reduce((v, octet) => v * 256 + Number(octet), 0);
  const offset = prefix <= 27 ? 25 : prefix < 32 ? 1 : 0;
  const address = value + offset;
  return [24, 16, 8, 0].map((shift) => Math.floor(address / 2 ** shift) % 256).join('.');
}
