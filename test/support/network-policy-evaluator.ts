/**
 * An evaluator of Kubernetes NetworkPolicy semantics (networking.k8s.io/v1), written from the API
 * reference and independent of the code that builds the policies: given plain policy objects, the pods'
 * labels and the namespaces' labels, may this connection be opened?
 *
 * Rules implemented:
 * - a pod is isolated for ingress (egress) when a policy of its namespace selects it and lists Ingress
 *   (Egress) in policyTypes; policyTypes defaults to Ingress, plus Egress when the policy has egress rules;
 * - an isolated pod accepts (opens) a connection only when some rule of such a policy matches the peer and
 *   the port; a connection needs both the source's egress and the destination's ingress;
 * - `from`/`to` absent or empty matches every peer; `ports` absent or empty matches every port;
 * - a peer with only podSelector means pods of the policy's namespace; namespaceSelector alone means every
 *   pod of the matching namespaces; both together, the matching pods in the matching namespaces;
 * - ipBlock matches addresses by CIDR minus `except`, never across address families. Whether it also matches
 *   pod addresses is left to implementations; this evaluator says it does, which makes "denied" verdicts
 *   the stronger claim;
 * - a port entry: protocol default TCP; no port = every port of the protocol; endPort makes a range; a
 *   named port resolves against the destination pod's container ports;
 * - every namespace carries the label kubernetes.io/metadata.name = its name.
 */
import { BlockList, isIPv4, isIPv6 } from 'node:net';

export type Protocol = 'TCP' | 'UDP' | 'SCTP';

export interface NamedPort {
  name: string;
  containerPort: number;
  protocol?: Protocol;
}

export interface PodEndpoint {
  kind: 'pod';
  /** For messages only. */
  name: string;
  namespace: string;
  labels: Record<string, string>;
  ip: string;
  namedPorts?: NamedPort[];
}

export interface ExternalEndpoint {
  kind: 'external';
  name: string;
  ip: string;
}

export type Endpoint = PodEndpoint | ExternalEndpoint;

export interface Connection {
  from: Endpoint;
  to: Endpoint;
  port: number;
  protocol: Protocol;
}

interface SelectorRequirement {
  key: string;
  operator: string;
  values?: string[];
}

export interface Selector {
  matchLabels?: Record<string, string>;
  matchExpressions?: SelectorRequirement[];
}

interface PolicyPeer {
  podSelector?: Selector;
  namespaceSelector?: Selector;
  ipBlock?: { cidr: string; except?: string[] };
}

interface PolicyPort {
  protocol?: Protocol;
  port?: number | string;
  endPort?: number;
}

/** The plain (JSON) form of a NetworkPolicy, as rendered. */
export interface PlainNetworkPolicy {
  kind: string;
  metadata?: { name?: string; namespace?: string };
  spec?: {
    podSelector?: Selector;
    policyTypes?: string[];
    ingress?: { from?: PolicyPeer[]; ports?: PolicyPort[] }[];
    egress?: { to?: PolicyPeer[]; ports?: PolicyPort[] }[];
  };
}

export interface ClusterModel {
  /** Namespace name → its labels (kubernetes.io/metadata.name is added). */
  namespaces: Record<string, Record<string, string>>;
  policies: PlainNetworkPolicy[];
}

export function selectorMatches(selector: Selector, labels: Record<string, string>): boolean {
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) if (labels[key] !== value) return false;
  for (const requirement of selector.matchExpressions ?? []) {
    const present = Object.hasOwn(labels, requirement.key);
    const value = labels[requirement.key];
    const values = requirement.values ?? [];
    switch (requirement.operator) {
      case 'In':
        if (!present || !values.includes(value as string)) return false;
        break;
      case 'NotIn':
        if (present && values.includes(value as string)) return false;
        break;
      case 'Exists':
        if (!present) return false;
        break;
      case 'DoesNotExist':
        if (present) return false;
        break;
      default:
        throw new Error(`unknown selector operator ${requirement.operator}`);
    }
  }
  return true;
}

function family(address: string): 'ipv4' | 'ipv6' {
  if (isIPv4(address)) return 'ipv4';
  if (isIPv6(address)) return 'ipv6';
  throw new Error(`${address} is not an IP address`);
}

export function cidrContains(cidr: string, address: string): boolean {
  const [network = '', prefixText = ''] = cidr.split('/');
  const prefix = Number(prefixText);
  if (prefixText === '' || !Number.isInteger(prefix)) throw new Error(`${cidr} is not a CIDR`);
  if (family(network) !== family(address)) return false;
  const list = new BlockList();
  list.addSubnet(network, prefix, family(network));
  return list.check(address, family(address));
}

function ipBlockMatches(block: { cidr: string; except?: string[] }, address: string): boolean {
  return cidrContains(block.cidr, address) && !(block.except ?? []).some((excluded) => cidrContains(excluded, address));
}

function namespaceLabels(cluster: ClusterModel, namespace: string): Record<string, string> {
  return { ...(cluster.namespaces[namespace] ?? {}), 'kubernetes.io/metadata.name': namespace };
}

function peerMatches(cluster: ClusterModel, policyNamespace: string, peer: PolicyPeer, endpoint: Endpoint): boolean {
  if (peer.ipBlock) return ipBlockMatches(peer.ipBlock, endpoint.ip);
  if (endpoint.kind !== 'pod') return false;
  if (!peer.podSelector && !peer.namespaceSelector) return false;
  const namespaceOk = peer.namespaceSelector
    ? selectorMatches(peer.namespaceSelector, namespaceLabels(cluster, endpoint.namespace))
    : endpoint.namespace === policyNamespace;
  return namespaceOk && (!peer.podSelector || selectorMatches(peer.podSelector, endpoint.labels));
}

function portMatches(entry: PolicyPort, connection: Connection): boolean {
  if ((entry.protocol ?? 'TCP') !== connection.protocol) return false;
  if (entry.port === undefined) return true;
  if (typeof entry.port === 'string') {
    const destination = connection.to;
    if (destination.kind !== 'pod') return false;
    const named = (destination.namedPorts ?? []).find((p) => p.name === entry.port && (p.protocol ?? 'TCP') === connection.protocol);
    return named?.containerPort === connection.port;
  }
  if (entry.endPort !== undefined) return connection.port >= entry.port && connection.port <= entry.endPort;
  return connection.port === entry.port;
}

function policyTypes(policy: PlainNetworkPolicy): string[] {
  if (policy.spec?.policyTypes && policy.spec.policyTypes.length > 0) return policy.spec.policyTypes;
  return ['Ingress', ...(policy.spec?.egress ? ['Egress'] : [])];
}

function policiesSelecting(cluster: ClusterModel, pod: PodEndpoint, direction: 'Ingress' | 'Egress'): PlainNetworkPolicy[] {
  return cluster.policies.filter(
    (p) => p.kind === 'NetworkPolicy' && p.metadata?.namespace === pod.namespace && selectorMatches(p.spec?.podSelector ?? {}, pod.labels) && policyTypes(p).includes(direction),
  );
}

export interface DirectionVerdict {
  allowed: boolean;
  /** `not isolated`, or the names of the policies whose rules allow it, or `no rule of <policies>`. */
  reason: string;
}

export function egressVerdict(cluster: ClusterModel, connection: Connection): DirectionVerdict {
  const source = connection.from;
  if (source.kind !== 'pod') return { allowed: true, reason: 'source is outside the cluster' };
  const policies = policiesSelecting(cluster, source, 'Egress');
  if (policies.length === 0) return { allowed: true, reason: 'not isolated for egress' };
  const allowing = policies.filter((p) =>
    (p.spec?.egress ?? []).some(
      (rule) =>
        (!rule.to || rule.to.length === 0 || rule.to.some((peer) => peerMatches(cluster, source.namespace, peer, connection.to))) &&
        (!rule.ports || rule.ports.length === 0 || rule.ports.some((entry) => portMatches(entry, connection))),
    ),
  );
  return allowing.length > 0
    ? { allowed: true, reason: allowing.map((p) => p.metadata?.name).join(', ') }
    : { allowed: false, reason: `no egress rule of ${policies.map((p) => p.metadata?.name).join(', ')}` };
}

export function ingressVerdict(cluster: ClusterModel, connection: Connection): DirectionVerdict {
  const destination = connection.to;
  if (destination.kind !== 'pod') return { allowed: true, reason: 'destination is outside the cluster' };
  const policies = policiesSelecting(cluster, destination, 'Ingress');
  if (policies.length === 0) return { allowed: true, reason: 'not isolated for ingress' };
  const allowing = policies.filter((p) =>
    (p.spec?.ingress ?? []).some(
      (rule) =>
        (!rule.from || rule.from.length === 0 || rule.from.some((peer) => peerMatches(cluster, destination.namespace, peer, connection.from))) &&
        (!rule.ports || rule.ports.length === 0 || rule.ports.some((entry) => portMatches(entry, connection))),
    ),
  );
  return allowing.length > 0
    ? { allowed: true, reason: allowing.map((p) => p.metadata?.name).join(', ') }
    : { allowed: false, reason: `no ingress rule of ${policies.map((p) => p.metadata?.name).join(', ')}` };
}

export interface Verdict {
  allowed: boolean;
  egress: DirectionVerdict;
  ingress: DirectionVerdict;
}

export function evaluateConnection(cluster: ClusterModel, connection: Connection): Verdict {
  const egress = egressVerdict(cluster, connection);
  const ingress = ingressVerdict(cluster, connection);
  return { allowed: egress.allowed && ingress.allowed, egress, ingress };
}

export function describeConnection(c: Connection): string {
  return `${c.from.name} → ${c.to.name} ${c.protocol}/${c.port}`;
}
