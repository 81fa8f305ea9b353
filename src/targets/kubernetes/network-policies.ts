/**
 * NetworkPolicies: deny everything for the release's pods, then allow exactly the flows the stack needs.
 *
 * Naming: `<release>-<pods>-from-<peer>` is an ingress policy on <pods>, `<release>-<pods>-to-<peer>` an
 * egress policy. A flow between two pods of the release needs both, because both ends are denied by default.
 *
 * NetworkPolicies see pod addresses and pod (container) ports, after Service translation: every port
 * below is the port the destination container listens on, never a Service port.
 */
import { nonPublicIpv4Ranges, nonPublicIpv6Ranges, publicIpv6Block } from '../../kit/address-ranges.js';
import { NetworkPolicy, type INetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import type { INetworkPolicyPeer } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicyPeer';
import type { INetworkPolicyPort } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicyPort';
import type { Stack } from '../../stack/model.js';
import { adminBootstrapComponent } from '../../components/synapse/admin-bootstrap.js';
import { backupComponent, backupScheduled } from '../../components/backup/kubernetes.js';
import { ownPeerAddresses } from '../../components/coturn/config.js';
import type { KubeObject } from '../../kit/objects.js';
import { workerPools, type WorkerPoolName } from '../../values/worker-pools.js';
import { runningPools, workerPoolComponent } from '../../components/synapse/worker-kubernetes.js';
import { synapseRoutes } from '../../components/synapse/routes.js';

type Peer = INetworkPolicyPeer;
type Port = INetworkPolicyPort;
type PolicySpec = NonNullable<INetworkPolicy['spec']>;
type LabelSelector = PolicySpec['podSelector'];

/** The release pods a policy selects or names as a peer: one component's, or a group's (`name` names the policy). */
interface Pods {
  name: string;
  components: string[];
}

/** "The public Internet" of the egress policies, one ipBlock per address family (the blocks: kit/address-ranges.ts). */
export const publicInternet: readonly Peer[] = [
  { ipBlock: { cidr: '0.0.0.0/0', except: [...nonPublicIpv4Ranges] } },
  { ipBlock: { cidr: publicIpv6Block, except: [...nonPublicIpv6Ranges] } },
];

/** Every pod of every namespace (not addresses outside the cluster). */
const anyNamespace: Peer = { namespaceSelector: {} };

const tcp = (port: number): Port => ({ protocol: 'TCP', port });
const udp = (port: number): Port => ({ protocol: 'UDP', port });

const hasLabels = (labels: Record<string, string>) => Object.keys(labels).length > 0;

/**
 * A namespaceSelector/podSelector pair from values, as a peer; undefined when both are empty ("not
 * configured"). A pod selector alone would only match pods of the release's own namespace, while the
 * controllers these pairs describe (ingress controller, Prometheus, identity provider) live in their own:
 * an empty namespace selector therefore means any namespace.
 */
export function configuredPeer(pair: { namespaceSelector: Record<string, string>; podSelector: Record<string, string> }): Peer | undefined {
  if (!hasLabels(pair.namespaceSelector) && !hasLabels(pair.podSelector)) return undefined;
  return {
    namespaceSelector: hasLabels(pair.namespaceSelector) ? { matchLabels: { ...pair.namespaceSelector } } : {},
    ...(hasLabels(pair.podSelector) ? { podSelector: { matchLabels: { ...pair.podSelector } } } : {}),
  };
}

/** A single address or a CIDR from values, as a CIDR (ipBlock accepts only CIDRs). */
export function asCidr(range: string): string {
  if (range.includes('/')) return range;
  return range.includes(':') ? `${range}/128` : `${range}/32`;
}

/** Which release pods exist with these values. */
function deployedComponents(stack: Stack) {
  const v = stack.values;
  return {
    element: v.element.enabled,
    postgresql: v.postgresql.enabled && stack.database.provider === 'statefulset',
    coturn: v.coturn.enabled,
    adminBootstrap: v.synapse.server.adminUser.enabled,
    backup: backupScheduled(stack),
    auth: stack.auth !== undefined,
  };
}

/** Pods of the worker pools that run, when some do. */
function poolPods(stack: Stack, name: string, pools: (pool: WorkerPoolName) => boolean): Pods | undefined {
  const components = runningPools(stack).filter(pools).map(workerPoolComponent);
  return components.length > 0 ? { name, components } : undefined;
}

/** The pools the router sends requests to: those its routing table names. */
const routedPools = new Set<string>(synapseRoutes.map((route) => route.pool));

/**
 * The Synapse workers' pods as policy groups: every pool; the pools the router reaches; the pools with a
 * replication listener (the writers instance_map names besides the main process); the single pools that
 * take a duty with its own outbound flow off the main process.
 */
function workerGroups(stack: Stack) {
  return {
    workers: poolPods(stack, 'synapse-workers', () => true),
    routed: poolPods(stack, 'synapse-routed-workers', (pool) => routedPools.has(pool)),
    writers: poolPods(stack, 'synapse-writers', (pool) => workerPools[pool].replication),
    // Email notifications are sent by pushers (pusher_instances), URL previews by the media repository.
    mailers: poolPods(stack, workerPoolComponent('pusher'), (pool) => pool === 'pusher'),
    previewers: poolPods(stack, workerPoolComponent('mediaRepository'), (pool) => pool === 'mediaRepository'),
  };
}

class PolicyFactory {
  constructor(private readonly stack: Stack) {}

  pods(component: string): LabelSelector {
    return { matchLabels: { ...this.stack.selectorLabels(component) } };
  }

  podsOfAny(components: string[]): LabelSelector {
    return {
      matchLabels: { 'app.kubernetes.io/instance': this.stack.release },
      matchExpressions: [{ key: 'app.kubernetes.io/name', operator: 'In', values: components }],
    };
  }

  selector(pods: Pods): LabelSelector {
    return pods.components.length === 1 ? this.pods(pods.components[0]!) : this.podsOfAny(pods.components);
  }

  /** A peer that is a release pod (same namespace, by construction of the podSelector-only peer). */
  podPeer(pods: string | Pods): Peer {
    return { podSelector: this.selector(asPods(pods)) };
  }

  policy(name: string, labelComponent: string, spec: PolicySpec): NetworkPolicy {
    return new NetworkPolicy({
      metadata: { name: `${this.stack.release}-${name}`, labels: this.stack.labels(labelComponent) },
      spec,
    });
  }

  ingress(destination: string | Pods, peerName: string, from: Peer[] | undefined, ports: Port[]): NetworkPolicy {
    const pods = asPods(destination);
    return this.policy(`${pods.name}-from-${peerName}`, pods.name, {
      podSelector: this.selector(pods),
      policyTypes: ['Ingress'],
      ingress: [{ ...(from ? { from } : {}), ports }],
    });
  }

  egress(source: string | Pods, peerName: string, to: readonly Peer[] | undefined, ports: Port[] | undefined): NetworkPolicy {
    const pods = asPods(source);
    return this.policy(`${pods.name}-to-${peerName}`, pods.name, {
      podSelector: this.selector(pods),
      policyTypes: ['Egress'],
      egress: [{ ...(to ? { to: [...to] } : {}), ...(ports ? { ports } : {}) }],
    });
  }

  /** Both halves of a flow between release pods. */
  releaseFlow(source: string | Pods, destination: string | Pods, ports: Port[]): NetworkPolicy[] {
    return [
      this.egress(source, asPods(destination).name, [this.podPeer(destination)], ports),
      this.ingress(destination, asPods(source).name, [this.podPeer(source)], ports),
    ];
  }
}

const asPods = (pods: string | Pods): Pods => (typeof pods === 'string' ? { name: pods, components: [pods] } : pods);

function defaultDeny(stack: Stack, f: PolicyFactory): NetworkPolicy {
  return f.policy('default-deny', 'network-policy', {
    podSelector: { matchLabels: { 'app.kubernetes.io/instance': stack.release } },
    policyTypes: ['Ingress', 'Egress'],
  });
}

/** The pods that look names up: Synapse and its workers (database, Redis, each other, federation, mail, IdPs), the router, the auth component and the bootstrap Job (Service names). */
function dnsEgress(stack: Stack, f: PolicyFactory): NetworkPolicy {
  const resolvers = [
    'synapse',
    'router',
    ...(deployedComponents(stack).auth ? ['auth'] : []),
    ...(deployedComponents(stack).adminBootstrap ? [adminBootstrapComponent] : []),
    ...(deployedComponents(stack).backup ? [backupComponent] : []),
    ...(workerGroups(stack).workers?.components ?? []),
  ];
  // kubernetes.io/metadata.name is set on every namespace by the API server (since 1.21).
  const dns: Peer = { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': stack.values.networkPolicy.egress.dnsNamespace } } };
  return f.policy('to-dns', 'network-policy', {
    podSelector: f.podsOfAny(resolvers),
    policyTypes: ['Egress'],
    egress: [{ to: [dns], ports: [udp(53), tcp(53)] }],
  });
}

function httpEntry(stack: Stack, f: PolicyFactory): NetworkPolicy[] {
  const { ports } = stack.placement;
  const controller = configuredPeer(stack.values.networkPolicy.ingress.traefik) ?? anyNamespace;
  const policies = [
    f.ingress('router', 'ingress-controller', [controller], [tcp(ports.router)]),
    ...f.releaseFlow('router', 'synapse', [tcp(ports.synapseHttp)]),
  ];
  // Other homeservers come from anywhere (a load balancer in front keeps or replaces their addresses).
  if (stack.values.router.federation.enabled) policies.push(f.ingress('router', 'other-servers', undefined, [tcp(ports.routerFederation)]));
  if (deployedComponents(stack).element) policies.push(...f.releaseFlow('router', 'element', [tcp(ports.element)]));
  if (deployedComponents(stack).adminBootstrap) policies.push(...f.releaseFlow(adminBootstrapComponent, 'synapse', [tcp(ports.synapseHttp)]));
  return policies;
}

/**
 * The auth component's sign-in port takes the router (browsers, under /auth) and Synapse (token, userinfo
 * and jwks at its internal URL); its admin port takes nobody (mxstack reaches it by port-forward, which
 * NetworkPolicies do not see). Its own egress: the database (in database()) and DNS, nothing else.
 */
function authFlows(stack: Stack, f: PolicyFactory): NetworkPolicy[] {
  if (!deployedComponents(stack).auth) return [];
  const port = [tcp(stack.placement.ports.auth)];
  return [...f.releaseFlow('router', 'auth', port), ...f.releaseFlow('synapse', 'auth', port)];
}

/** The instance manager's status port on CloudNativePG pods: the operator and the other instances call it. */
export const cloudnativePgStatusPort = 8000;

/**
 * A CloudNativePG Cluster's pods are the operator's (not under the release's default deny): one ingress
 * policy admits the release's database clients, the other instances (replication, status) and the
 * operator's namespace (status, and its connections as the superuser over the pod network).
 */
function cloudnativePgFlows(stack: Stack, f: PolicyFactory, clients: Pods[]): NetworkPolicy[] {
  const port = tcp(stack.placement.ports.postgresql);
  const instances: LabelSelector = { matchLabels: { 'cnpg.io/cluster': stack.database.cluster! } };
  const operator: Peer = { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': stack.values.postgresql.cloudnativePg.operatorNamespace } } };
  return [
    ...clients.map((client) => f.egress(client, 'postgresql', [{ podSelector: instances }], [port])),
    f.policy('postgresql-from-clients', 'postgresql', {
      podSelector: instances,
      policyTypes: ['Ingress'],
      ingress: [
        { from: [{ podSelector: f.podsOfAny(clients.flatMap((client) => client.components)) }], ports: [port] },
        { from: [{ podSelector: instances }], ports: [port, tcp(cloudnativePgStatusPort)] },
        { from: [operator], ports: [port, tcp(cloudnativePgStatusPort)] },
      ],
    }),
  ];
}

function database(stack: Stack, f: PolicyFactory): NetworkPolicy[] {
  const { workers } = workerGroups(stack);
  const clients = [
    ...['synapse', ...(deployedComponents(stack).auth ? ['auth'] : []), ...(deployedComponents(stack).backup ? [backupComponent] : [])].map(asPods),
    ...(workers ? [workers] : []),
  ];
  if (stack.database.provider === 'cloudnative-pg') return cloudnativePgFlows(stack, f, clients);
  if (deployedComponents(stack).postgresql) return clients.flatMap((client) => f.releaseFlow(client, 'postgresql', [tcp(stack.placement.ports.postgresql)]));
  // An external database usually sits on a private address, so the port is the only restriction.
  return clients.map((client) => f.egress(client, 'database', undefined, [tcp(stack.database.port)]));
}

function smtpEgress(stack: Stack, f: PolicyFactory, pods: string | Pods): NetworkPolicy {
  const { email } = stack.values.synapse.server;
  return f.egress(pods, 'smtp', [{ ipBlock: { cidr: stack.values.networkPolicy.egress.smtpCidr } }], [tcp(email.smtpPort)]);
}

/** Other servers on public addresses, plus the private ranges synapse.server.federation.ipRangeWhitelist lets Synapse reach, on networkPolicy.egress.federationPorts. */
function federationEgress(stack: Stack, f: PolicyFactory, pods: string | Pods): NetworkPolicy {
  const allowedPrivate: Peer[] = stack.values.synapse.server.federation.ipRangeWhitelist.map((range) => ({ ipBlock: { cidr: asCidr(range) } }));
  return f.egress(pods, 'federation', [...publicInternet, ...allowedPrivate], stack.values.networkPolicy.egress.federationPorts.map(tcp));
}

function urlPreviewEgress(stack: Stack, f: PolicyFactory, pods: string | Pods): NetworkPolicy {
  const allowedPrivate: Peer[] = stack.values.synapse.server.urlPreviews.ipRangeWhitelist.map((range) => ({ ipBlock: { cidr: asCidr(range) } }));
  return f.egress(pods, 'url-previews', [...publicInternet, ...allowedPrivate], [tcp(80), tcp(443)]);
}

function synapseOutbound(stack: Stack, f: PolicyFactory): NetworkPolicy[] {
  const server = stack.values.synapse.server;
  const egressValues = stack.values.networkPolicy.egress;
  const policies: NetworkPolicy[] = [];
  if (server.email.enabled) policies.push(smtpEgress(stack, f, 'synapse'));
  if (server.federation.enabled) policies.push(federationEgress(stack, f, 'synapse'));
  // With a media repository pool the main process has no media repository (enable_media_repo: false), hence no previews.
  if (server.urlPreviews.enabled && !workerGroups(stack).previewers) policies.push(urlPreviewEgress(stack, f, 'synapse'));
  if (server.sso.enabled) {
    const identityProvider = configuredPeer(egressValues.sso);
    // In the cluster the IdP pod's own port is what the policy sees (a Service's 443 usually maps to
    // 8080, 9091 or 8443), and the selector already narrows the flow to those pods: any port.
    policies.push(
      identityProvider
        ? f.egress('synapse', 'identity-providers', [identityProvider], undefined)
        : f.egress('synapse', 'identity-providers', publicInternet, [tcp(443)]),
    );
  }
  return policies;
}

function metricsScraping(stack: Stack, f: PolicyFactory): NetworkPolicy[] {
  const { ports } = stack.placement;
  const prometheus = [configuredPeer(stack.values.networkPolicy.prometheus) ?? anyNamespace];
  const policies = [f.ingress('router', 'prometheus', prometheus, [tcp(ports.routerMetrics)])];
  if (stack.values.synapse.metrics.enabled) policies.push(f.ingress('synapse', 'prometheus', prometheus, [tcp(ports.synapseMetrics)]));
  if (deployedComponents(stack).coturn && stack.values.coturn.prometheusExporter.enabled) {
    policies.push(f.ingress('coturn', 'prometheus', prometheus, [tcp(ports.turnMetrics)]));
  }
  return policies;
}

/**
 * TURN clients come from anywhere; relayed media goes to public peers only, as coturn's denied-peer-ip and
 * allowed-peer-ip lists say.
 * With coturn.hostNetwork the pod is on the node's network, where NetworkPolicies do not apply.
 */
function turn(stack: Stack, f: PolicyFactory): NetworkPolicy[] {
  if (!deployedComponents(stack).coturn) return [];
  const { ports } = stack.placement;
  const clientPorts: Port[] = [udp(ports.turn), tcp(ports.turn)];
  if (stack.values.coturn.tls.enabled) clientPorts.push(udp(ports.turns), tcp(ports.turns));
  clientPorts.push({ protocol: 'UDP', port: ports.relayMin, endPort: ports.relayMax });
  return [
    f.ingress('coturn', 'clients', undefined, clientPorts),
    // Its own addresses too (coturn's allowed-peer-ip), so two clients it relays reach each other even on a private network.
    f.egress('coturn', 'peers', [...publicInternet, ...ownPeerAddresses(stack).map((address) => ({ ipBlock: { cidr: asCidr(address) } }))], [{ protocol: 'UDP' }]),
  ];
}

/** With workers: Synapse reaches Redis, Prometheus scrapes Redis's exporter. */
function redisFlows(stack: Stack, f: PolicyFactory): NetworkPolicy[] {
  const { workers } = workerGroups(stack);
  if (!workers) return [];
  const { redis } = stack.values;
  const prometheus = [configuredPeer(stack.values.networkPolicy.prometheus) ?? anyNamespace];
  const port = [tcp(stack.placement.ports.redis)];
  return [
    ...f.releaseFlow('synapse', 'redis', port),
    ...f.releaseFlow(workers, 'redis', port),
    ...(redis.metrics.enabled ? [f.ingress('redis', 'prometheus', prometheus, [tcp(redis.metrics.port)])] : []),
  ];
}

/**
 * With workers (docs/workers.md): the router reaches the pools of its routing table on their HTTP port;
 * the workers reach the main process's replication listener, and every Synapse process the writers'
 * (instance_map names both); Prometheus scrapes every pool. Redis, the database and DNS are in their own
 * functions. Outbound: Synapse's federation client runs wherever a request needs a remote server (joins on
 * event creators, key and profile queries on readers, remote media, backfill, device list resyncs,
 * sending), so every worker has the main process's federation egress; mail goes out from the pushers, URL
 * previews from the media repository.
 */
function workerFlows(stack: Stack, f: PolicyFactory): NetworkPolicy[] {
  const { workers, routed, writers, mailers, previewers } = workerGroups(stack);
  if (!workers || stack.placement.synapseWorkers.kind !== 'kubernetes') return [];
  const { http, replication, metrics } = stack.placement.synapseWorkers;
  const server = stack.values.synapse.server;
  const prometheus = [configuredPeer(stack.values.networkPolicy.prometheus) ?? anyNamespace];
  return [
    ...(routed ? f.releaseFlow('router', routed, [tcp(http)]) : []),
    ...f.releaseFlow(workers, 'synapse', [tcp(stack.placement.ports.synapseReplication)]),
    ...(writers ? [...f.releaseFlow('synapse', writers, [tcp(replication)]), ...f.releaseFlow(workers, writers, [tcp(replication)])] : []),
    ...(stack.values.synapse.metrics.enabled ? [f.ingress(workers, 'prometheus', prometheus, [tcp(metrics)])] : []),
    ...(server.federation.enabled ? [federationEgress(stack, f, workers)] : []),
    ...(server.email.enabled && mailers ? [smtpEgress(stack, f, mailers)] : []),
    ...(server.urlPreviews.enabled && previewers ? [urlPreviewEgress(stack, f, previewers)] : []),
  ];
}

/** Every NetworkPolicy of the release, or none when networkPolicy.enabled is false. */
export function buildNetworkPolicies(stack: Stack): KubeObject[] {
  if (!stack.values.networkPolicy.enabled) return [];
  const f = new PolicyFactory(stack);
  return [
    defaultDeny(stack, f),
    dnsEgress(stack, f),
    ...httpEntry(stack, f),
    ...authFlows(stack, f),
    ...database(stack, f),
    ...synapseOutbound(stack, f),
    ...metricsScraping(stack, f),
    ...redisFlows(stack, f),
    ...workerFlows(stack, f),
    ...turn(stack, f),
  ];
}
