/**
 * The networking objects of the Kubernetes target: NetworkPolicies (judged by the independent evaluator,
 * on pods labelled with the stack's selector labels), Ingress, Gateway API HTTPRoutes, ServiceMonitors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadValues } from '../../src/values/load.js';
import { compileKubernetesStack } from '../../src/targets/kubernetes/render.js';
import { toPlainSorted } from '../../src/kit/sorted-json.js';
import type { Stack } from '../../src/stack/model.js';
import type { KubeObject } from '../../src/kit/objects.js';
import { asCidr, buildNetworkPolicies, configuredPeer, publicInternet } from '../../src/targets/kubernetes/network-policies.js';
import { deniedPeerCidrs, upstreamUrlPreviewIpRangeBlacklist } from '../../src/kit/address-ranges.js';
import { buildIngress } from '../../src/targets/kubernetes/ingress.js';
import { describePublicRoutes } from '../../src/targets/kubernetes/public-routes.js';
import { buildHttpRoutes } from '../../src/targets/kubernetes/gateway.js';
import { buildServiceMonitors } from '../../src/targets/kubernetes/service-monitors.js';
import { pathCovers, publicHosts, withoutCoveredPaths } from '../../src/targets/kubernetes/public-routes.js';
import { cidrContains, evaluateConnection, type Connection, type Endpoint, type Protocol } from '../support/network-policy-evaluator.js';
import { cloudMetadata, external, privateAddress, publicIpv4, publicIpv6, releaseNetwork, type ReleaseNetwork } from '../support/release-network.js';

type Tree = Record<string, unknown>;

function stackOf(values: Tree): Stack {
  return compileKubernetesStack(loadValues({ base: values }), { release: 'chat', namespace: 'matrix' });
}

const components = ['synapse', 'element', 'router', 'postgresql', 'coturn', 'admin-bootstrap'];

function networkOf(values: Tree): { stack: Stack; net: ReleaseNetwork; policies: KubeObject[] } {
  const stack = stackOf({ ...values, networkPolicy: { enabled: true, ...((values.networkPolicy as Tree | undefined) ?? {}) } });
  const policies = buildNetworkPolicies(stack);
  const pods = Object.fromEntries(components.map((c) => [c, { labels: stack.labels(c) }]));
  return { stack, net: releaseNetwork(stack, policies, pods), policies };
}

function allowed(net: ReleaseNetwork, from: Endpoint, to: Endpoint, port: number, protocol: Protocol = 'TCP'): boolean {
  const connection: Connection = { from, to, port, protocol };
  return evaluateConnection(net.cluster, connection).allowed;
}

const plain = (o: KubeObject) => toPlainSorted(o) as Tree & { metadata: { name: string }; spec: Tree };

const base = { synapse: { server: { name: 'example.com' } } };

test('no NetworkPolicy unless networkPolicy.enabled', () => {
  assert.deepEqual(buildNetworkPolicies(stackOf(base)), []);
});

test('every policy validates, is named for what it allows, and names are unique', () => {
  const { policies } = networkOf({ ...base, synapse: { server: { name: 'example.com', email: { enabled: true, smtpHost: 'mail' }, sso: { enabled: true } } }, coturn: { tls: { enabled: true, secretName: 't' } } });
  for (const p of policies) p.validate?.();
  const names = policies.map((p) => p.metadata?.name ?? '');
  assert.equal(new Set(names).size, names.length);
  for (const name of names) assert.match(name, /^chat-(default-deny|to-dns|[a-z-]+-(from|to)-[a-z-]+)$/);
  for (const expected of ['chat-default-deny', 'chat-router-from-ingress-controller', 'chat-synapse-from-router', 'chat-router-to-synapse', 'chat-postgresql-from-synapse', 'chat-synapse-to-smtp', 'chat-synapse-to-federation', 'chat-synapse-to-url-previews', 'chat-synapse-to-identity-providers', 'chat-coturn-from-clients', 'chat-coturn-to-peers']) {
    assert.ok(names.includes(expected), `${expected} in ${names.join(', ')}`);
  }
});

test('default deny: release pods accept and open nothing beyond the listed flows, other pods are untouched', () => {
  const { net } = networkOf(base);
  const { synapse, element, postgresql, router, coturn } = net.pods as Record<string, Endpoint>;
  assert.equal(allowed(net, element!, postgresql!, 5432), false);
  assert.equal(allowed(net, router!, postgresql!, 5432), false);
  assert.equal(allowed(net, coturn!, synapse!, 8008), false);
  assert.equal(allowed(net, synapse!, element!, 8080), false);
  assert.equal(allowed(net, net.stranger, synapse!, 8008), false);
  assert.equal(allowed(net, net.neighbour, postgresql!, 5432), false);
  assert.equal(allowed(net, net.neighbour, net.stranger, 80), true, 'pods outside the release keep their own rules');
});

test('HTTP enters through the router only, which reaches Synapse and Element on their container ports', () => {
  const { net, stack } = networkOf(base);
  const p = net.pods as Record<string, Endpoint>;
  assert.equal(allowed(net, net.ingressController, p.router!, stack.placement.ports.router), true);
  assert.equal(allowed(net, net.ingressController, p.synapse!, 8008), false);
  assert.equal(allowed(net, net.ingressController, p.element!, 8080), false);
  assert.equal(allowed(net, p.router!, p.synapse!, 8008), true);
  assert.equal(allowed(net, p.router!, p.element!, 8080), true);
  assert.equal(allowed(net, p.router!, p.synapse!, 9000), false, 'metrics are for Prometheus');
  assert.equal(allowed(net, p['admin-bootstrap']!, p.synapse!, 8008), true);
  assert.equal(allowed(net, p['admin-bootstrap']!, p.postgresql!, 5432), false);
  assert.equal(allowed(net, p.synapse!, p.postgresql!, 5432), true);
});

test('ingress controller: any namespace when unconfigured, only the selected pods otherwise', () => {
  const open = networkOf(base);
  assert.equal(allowed(open.net, open.net.stranger, open.net.pods.router!, 8080), true);
  const narrowed = networkOf({ ...base, networkPolicy: { ingress: { traefik: { namespaceSelector: { 'kubernetes.io/metadata.name': 'traefik' }, podSelector: { app: 'traefik' } } } } });
  assert.equal(allowed(narrowed.net, narrowed.net.ingressController, narrowed.net.pods.router!, 8080), true);
  assert.equal(allowed(narrowed.net, narrowed.net.stranger, narrowed.net.pods.router!, 8080), false);
  // A pod selector alone still means the controller's pods in whatever namespace they run.
  const podsOnly = networkOf({ ...base, networkPolicy: { ingress: { traefik: { podSelector: { app: 'traefik' } } } } });
  assert.equal(allowed(podsOnly.net, { ...podsOnly.net.stranger, labels: { app: 'traefik' } }, podsOnly.net.pods.router!, 8080), true);
  assert.equal(allowed(podsOnly.net, podsOnly.net.stranger, podsOnly.net.pods.router!, 8080), false);
});

test('DNS: Synapse, the router and the bootstrap Job resolve names in the DNS namespace only', () => {
  const { net } = networkOf({ ...base, networkPolicy: { egress: { dnsNamespace: 'dns-system' } } });
  for (const component of ['synapse', 'router', 'admin-bootstrap']) {
    assert.equal(allowed(net, net.pods[component]!, net.dns, 53, 'UDP'), true, component);
    assert.equal(allowed(net, net.pods[component]!, net.dns, 53, 'TCP'), true, component);
    assert.equal(allowed(net, net.pods[component]!, net.stranger, 53, 'UDP'), false, component);
  }
  for (const component of ['element', 'postgresql', 'coturn']) assert.equal(allowed(net, net.pods[component]!, net.dns, 53, 'UDP'), false, component);
  assert.equal(net.dns.namespace, 'dns-system');
});

test('federation: HTTPS and 8448 to public addresses only, and only when federation is on', () => {
  const { net } = networkOf(base);
  const synapse = net.pods.synapse!;
  for (const port of [443, 8448]) {
    assert.equal(allowed(net, synapse, external('v4', publicIpv4), port), true);
    assert.equal(allowed(net, synapse, external('v6', publicIpv6), port), true);
    assert.equal(allowed(net, synapse, external('private', privateAddress), port), false);
    assert.equal(allowed(net, synapse, external('metadata', cloudMetadata), port), false);
  }
  const closed = networkOf({ synapse: { server: { name: 'example.com', federation: { enabled: false }, urlPreviews: { enabled: false } } } });
  assert.equal(allowed(closed.net, closed.net.pods.synapse!, external('v4', publicIpv4), 8448), false);
  assert.equal(allowed(closed.net, closed.net.pods.synapse!, external('v4', publicIpv4), 443), false);
});

test('federation: networkPolicy.egress.federationPorts replaces the ports', () => {
  const { net } = networkOf({ ...base, networkPolicy: { egress: { federationPorts: [8449, 443] } } });
  const synapse = net.pods.synapse!;
  assert.equal(allowed(net, synapse, external('v4', publicIpv4), 8449), true);
  assert.equal(allowed(net, synapse, external('v6', publicIpv6), 443), true);
  assert.equal(allowed(net, synapse, external('v4', publicIpv4), 8448), false, '8448 is no longer listed');
  assert.equal(allowed(net, synapse, external('private', privateAddress), 8449), false, 'not to private addresses');
});

test('URL previews: HTTP(S) to public addresses, plus the whitelisted private ranges', () => {
  const { net } = networkOf({ synapse: { server: { name: 'example.com', federation: { enabled: false }, urlPreviews: { ipRangeWhitelist: ['10.200.0.0/16', '192.168.7.7'] } } } });
  const synapse = net.pods.synapse!;
  assert.equal(allowed(net, synapse, external('v4', publicIpv4), 80), true);
  assert.equal(allowed(net, synapse, external('v4', publicIpv4), 443), true);
  assert.equal(allowed(net, synapse, external('metadata', cloudMetadata), 80), false);
  assert.equal(allowed(net, synapse, external('whitelisted', privateAddress), 80), true);
  assert.equal(allowed(net, synapse, external('whitelisted host', '192.168.7.7'), 443), true);
  assert.equal(allowed(net, synapse, external('other private', '192.168.7.8'), 443), false);
  assert.equal(allowed(net, synapse, external('v4', publicIpv4), 8448), false, 'no federation');
  const off = networkOf({ synapse: { server: { name: 'example.com', federation: { enabled: false }, urlPreviews: { enabled: false } } } });
  assert.equal(allowed(off.net, off.net.pods.synapse!, external('v4', publicIpv4), 80), false);
});

test('SMTP only to the configured CIDR and port, only with email on', () => {
  const email = { enabled: true, smtpHost: 'mail.example.com', smtpPort: 2525 };
  const { net } = networkOf({ synapse: { server: { name: 'example.com', email, federation: { enabled: false } } }, networkPolicy: { egress: { smtpCidr: '10.200.0.0/24' } } });
  assert.equal(allowed(net, net.pods.synapse!, external('relay', privateAddress), 2525), true);
  assert.equal(allowed(net, net.pods.synapse!, external('elsewhere', '10.201.0.5'), 2525), false);
  assert.equal(allowed(net, net.pods.synapse!, external('relay', privateAddress), 25), false);
  assert.equal(allowed(net, net.pods.element!, external('relay', privateAddress), 2525), false);
  const noMail = networkOf({ ...base, networkPolicy: { egress: { smtpCidr: '10.200.0.0/24' } } });
  assert.equal(allowed(noMail.net, noMail.net.pods.synapse!, external('relay', privateAddress), 587), false);
});

test('SSO: the selected identity provider pods on any port, or public HTTPS when no selector is set', () => {
  const sso = { enabled: true };
  const inCluster = networkOf({
    synapse: { server: { name: 'example.com', sso, federation: { enabled: false }, urlPreviews: { enabled: false } } },
    networkPolicy: { egress: { sso: { namespaceSelector: { 'kubernetes.io/metadata.name': 'auth' }, podSelector: { app: 'authelia' } } } },
  });
  assert.equal(allowed(inCluster.net, inCluster.net.pods.synapse!, inCluster.net.identityProvider, 9091), true);
  assert.equal(allowed(inCluster.net, inCluster.net.pods.synapse!, inCluster.net.stranger, 9091), false);
  assert.equal(allowed(inCluster.net, inCluster.net.pods.synapse!, external('v4', publicIpv4), 443), false);
  const publicIdp = networkOf({ synapse: { server: { name: 'example.com', sso, federation: { enabled: false }, urlPreviews: { enabled: false } } } });
  assert.equal(allowed(publicIdp.net, publicIdp.net.pods.synapse!, external('v4', publicIpv4), 443), true);
  assert.equal(allowed(publicIdp.net, publicIdp.net.pods.synapse!, external('v4', publicIpv4), 80), false);
  assert.equal(allowed(publicIdp.net, publicIdp.net.pods.synapse!, external('metadata', cloudMetadata), 443), false);
});

test('external database: Synapse reaches its port anywhere, and no release PostgreSQL flow remains', () => {
  const { net, policies } = networkOf({ synapse: { server: { name: 'example.com' }, database: { external: true, host: 'db.internal', port: 6432 } }, postgresql: { enabled: false } });
  assert.equal(allowed(net, net.pods.synapse!, external('database', privateAddress), 6432), true);
  assert.equal(allowed(net, net.pods.synapse!, external('database', privateAddress), 5432), false);
  assert.ok(!policies.some((p) => p.metadata?.name?.includes('postgresql')));
});

test('Prometheus scrapes the metrics ports of Synapse, the router and coturn, nothing else', () => {
  const { net } = networkOf({ ...base, networkPolicy: { prometheus: { namespaceSelector: { 'kubernetes.io/metadata.name': 'monitoring' } } } });
  const p = net.pods;
  assert.equal(allowed(net, net.prometheus, p.synapse!, 9000), true);
  assert.equal(allowed(net, net.prometheus, p.router!, 8405), true);
  assert.equal(allowed(net, net.prometheus, p.coturn!, 9641), true);
  assert.equal(allowed(net, net.prometheus, p.synapse!, 8008), false);
  assert.equal(allowed(net, net.prometheus, p.postgresql!, 5432), false);
  assert.equal(allowed(net, net.stranger, p.synapse!, 9000), false);
  const noMetrics = networkOf({ ...base, synapse: { server: { name: 'example.com' }, metrics: { enabled: false } }, coturn: { prometheusExporter: { enabled: false } } });
  assert.equal(allowed(noMetrics.net, noMetrics.net.prometheus, noMetrics.net.pods.synapse!, 9000), false);
  assert.equal(allowed(noMetrics.net, noMetrics.net.prometheus, noMetrics.net.pods.coturn!, 9641), false);
});

test('coturn: TURN from anywhere, TURNS with TLS, the relay range, and relayed UDP to public peers only', () => {
  const plainTurn = networkOf(base);
  const client = external('client', publicIpv4);
  const coturn = plainTurn.net.pods.coturn!;
  assert.equal(allowed(plainTurn.net, client, coturn, 3478, 'UDP'), true);
  assert.equal(allowed(plainTurn.net, client, coturn, 3478, 'TCP'), true);
  assert.equal(allowed(plainTurn.net, client, coturn, 5349, 'TCP'), false);
  assert.equal(allowed(plainTurn.net, client, coturn, 49152, 'UDP'), true);
  assert.equal(allowed(plainTurn.net, client, coturn, 49252, 'UDP'), true);
  assert.equal(allowed(plainTurn.net, client, coturn, 49253, 'UDP'), false);
  assert.equal(allowed(plainTurn.net, client, coturn, 49200, 'TCP'), false);
  assert.equal(allowed(plainTurn.net, coturn, external('peer', publicIpv4), 40000, 'UDP'), true);
  assert.equal(allowed(plainTurn.net, coturn, external('peer', publicIpv6), 40000, 'UDP'), true);
  assert.equal(allowed(plainTurn.net, coturn, external('private peer', privateAddress), 40000, 'UDP'), false);
  assert.equal(allowed(plainTurn.net, coturn, plainTurn.net.pods.postgresql!, 5432, 'TCP'), false);
  const tls = networkOf({ ...base, coturn: { tls: { enabled: true, secretName: 'turn-tls' } } });
  assert.equal(allowed(tls.net, client, tls.net.pods.coturn!, 5349, 'TCP'), true);
  assert.equal(allowed(tls.net, client, tls.net.pods.coturn!, 5349, 'UDP'), true);
  const lan = networkOf({ ...base, coturn: { externalIP: '192.168.1.10' } });
  assert.equal(allowed(lan.net, lan.net.pods.coturn!, external('itself', '192.168.1.10'), 49200, 'UDP'), true, 'its own address (allowed-peer-ip)');
  assert.equal(allowed(lan.net, lan.net.pods.coturn!, external('lan host', '192.168.1.11'), 49200, 'UDP'), false);
  const off = networkOf({ synapse: { server: { name: 'example.com', turn: { enabled: false } } }, coturn: { enabled: false } });
  assert.ok(!off.policies.some((p) => p.metadata?.name?.includes('coturn')));
});

test('element off: no flow to Element is opened', () => {
  const { policies } = networkOf({ ...base, element: { enabled: false } });
  assert.ok(!policies.some((p) => p.metadata?.name?.includes('element')));
});

test('configuredPeer and asCidr', () => {
  assert.equal(configuredPeer({ namespaceSelector: {}, podSelector: {} }), undefined);
  assert.deepEqual(configuredPeer({ namespaceSelector: { a: 'b' }, podSelector: {} }), { namespaceSelector: { matchLabels: { a: 'b' } } });
  assert.deepEqual(configuredPeer({ namespaceSelector: {}, podSelector: { c: 'd' } }), { namespaceSelector: {}, podSelector: { matchLabels: { c: 'd' } } });
  assert.equal(asCidr('10.0.0.1'), '10.0.0.1/32');
  assert.equal(asCidr('fd00::1'), 'fd00::1/128');
  assert.equal(asCidr('10.0.0.0/8'), '10.0.0.0/8');
});

// --- Ingress and HTTPRoutes

const ingressValues = (extra: Tree = {}): Tree => ({
  synapse: { server: { name: 'example.com' } },
  ingress: { enabled: true, className: 'traefik', annotations: { 'cert-manager.io/cluster-issuer': 'letsencrypt' }, synapse: { host: 'matrix.example.com' }, element: { host: 'chat.example.com' }, ...extra },
});

interface PlainIngress {
  metadata: { name: string; annotations?: Record<string, string> };
  spec: {
    ingressClassName?: string;
    tls?: { hosts: string[]; secretName: string }[];
    rules: { host: string; http: { paths: { path: string; pathType: string; backend: { service: { name: string; port: { number: number } } } }[] } }[];
  };
}

function onlyIngress(values: Tree): PlainIngress {
  const objects = buildIngress(stackOf(values));
  assert.equal(objects.length, 1);
  objects[0]!.validate?.();
  return toPlainSorted(objects[0]) as PlainIngress;
}

const pathsOf = (ingress: PlainIngress, host: string) => ingress.spec.rules.find((r) => r.host === host)?.http.paths.map((p) => p.path);

test('Ingress of the old chart\'s quick start: the hosts alone render it, ingress.enabled: false turns it off, Gateway API alone does not add one', () => {
  const hostsOnly: Tree = { synapse: { server: { name: 'matrix.example.com' } }, ingress: { synapse: { host: 'matrix.example.com' }, element: { host: 'element.example.com' } } };
  const ingress = onlyIngress(hostsOnly);
  assert.deepEqual(ingress.spec.rules.map((r) => r.host), ['matrix.example.com', 'element.example.com']);
  assert.equal(ingress.spec.ingressClassName, undefined, 'no class given: the cluster default IngressClass');
  assert.deepEqual(buildIngress(stackOf({ ...hostsOnly, ingress: { ...(hostsOnly.ingress as Tree), enabled: false } })), []);
  const elementOnly = onlyIngress({ synapse: { server: { name: 'example.com' } }, ingress: { element: { host: 'chat.example.com' } } });
  assert.ok(elementOnly.spec.rules.some((r) => r.host === 'chat.example.com'), 'one host is enough, and is not refused for lack of the other');
  const gateway = { ...hostsOnly, gatewayApi: { enabled: true, parentRefs: [{ name: 'public' }] } };
  assert.deepEqual(buildIngress(stackOf(gateway)), [], 'HTTPRoutes chosen: no implicit Ingress beside them');
});

test('render and install report the public routes: Ingress hosts, the class, and a missing cert-manager issuer', () => {
  const lines = describePublicRoutes(stackOf({ synapse: { server: { name: 'matrix.example.com' } }, ingress: { synapse: { host: 'matrix.example.com' }, element: { host: 'element.example.com' } } }));
  assert.match(lines[0]!, /^public routes: Ingress chat-router, class the cluster's default IngressClass/);
  assert.ok(lines.some((l) => l.startsWith('  https://matrix.example.com  /_matrix')), lines.join('\n'));
  assert.ok(lines.some((l) => l.startsWith('  https://element.example.com  /')), lines.join('\n'));
  assert.ok(lines.some((l) => l.includes('no cert-manager annotation')), lines.join('\n'));
  assert.ok(!describePublicRoutes(stackOf(ingressValues())).some((l) => l.includes('no cert-manager annotation')));
  assert.match(describePublicRoutes(stackOf(base)).join('\n'), /^public routes: none rendered/);
});

test('Ingress: none unless enabled; class and annotations from values; every path to the router Service', () => {
  assert.deepEqual(buildIngress(stackOf(base)), []);
  const ingress = onlyIngress(ingressValues());
  assert.equal(ingress.spec.ingressClassName, 'traefik');
  assert.deepEqual(ingress.metadata.annotations, { 'cert-manager.io/cluster-issuer': 'letsencrypt' });
  const backends = ingress.spec.rules.flatMap((r) => r.http.paths.map((p) => p.backend.service));
  assert.ok(backends.length >= 4);
  for (const backend of backends) assert.deepEqual(backend, { name: 'chat-router', port: { number: 8080 } });
  for (const path of ingress.spec.rules.flatMap((r) => r.http.paths)) assert.equal(path.pathType, 'Prefix');
});

test('Ingress hosts: Synapse paths, Element at /, well-known on the server name, TLS per host', () => {
  const ingress = onlyIngress(ingressValues());
  assert.deepEqual(ingress.spec.rules.map((r) => r.host), ['matrix.example.com', 'chat.example.com', 'example.com']);
  // The federation prefixes are under /_matrix already: no duplicate rule.
  assert.deepEqual(pathsOf(ingress, 'matrix.example.com'), ['/_matrix', '/_synapse/client']);
  assert.deepEqual(pathsOf(ingress, 'chat.example.com'), ['/']);
  assert.deepEqual(pathsOf(ingress, 'example.com'), ['/.well-known/matrix']);
  assert.deepEqual(ingress.spec.tls, [
    { hosts: ['matrix.example.com'], secretName: 'chat-matrix-example-com-tls' },
    { hosts: ['chat.example.com'], secretName: 'chat-chat-example-com-tls' },
    { hosts: ['example.com'], secretName: 'chat-example-com-tls' },
  ]);
});

test('Ingress and HTTPRoutes: with 2FA on, the sign-in pages (/auth, the issuer\'s path) are routed on the Synapse host only', () => {
  const values = { ...ingressValues(), synapse: { server: { name: 'example.com', mfa: { totp: { enabled: true } } } } };
  const stack = stackOf(values);
  assert.equal(stack.auth?.issuer, 'https://matrix.example.com/auth');
  const ingress = onlyIngress(values);
  assert.deepEqual(pathsOf(ingress, 'matrix.example.com'), ['/_matrix', '/_synapse/client', '/auth']);
  assert.deepEqual(pathsOf(ingress, 'chat.example.com'), ['/']);
  const routes = JSON.stringify(buildHttpRoutes(stackOf({ ...values, gatewayApi: { enabled: true, parentRefs: [{ name: 'gw' }] } })).map((o) => toPlainSorted(o)));
  assert.match(routes, /"value":"\/auth"/);
});

test('Ingress: federation prefixes are added when custom Synapse paths do not cover them, and only with federation on', () => {
  const custom = onlyIngress(ingressValues({ synapse: { host: 'matrix.example.com', paths: ['/_matrix/client', '/_synapse/client'] } }));
  assert.deepEqual(pathsOf(custom, 'matrix.example.com'), ['/_matrix/client', '/_synapse/client', '/_matrix/federation', '/_matrix/key']);
  const noFederation = onlyIngress(ingressValues({ synapse: { host: 'matrix.example.com', paths: ['/_matrix/client'] }, federation: { enabled: false } }));
  assert.deepEqual(pathsOf(noFederation, 'matrix.example.com'), ['/_matrix/client']);
});

test('Ingress: the server name equal to the Synapse host gets well-known on that host; well-known off drops it', () => {
  const same = onlyIngress({ ...ingressValues(), synapse: { server: { name: 'matrix.example.com' } } });
  assert.deepEqual(same.spec.rules.map((r) => r.host), ['matrix.example.com', 'chat.example.com']);
  assert.deepEqual(pathsOf(same, 'matrix.example.com'), ['/_matrix', '/_synapse/client', '/.well-known/matrix']);
  const off = onlyIngress(ingressValues({ wellKnown: { enabled: false } }));
  assert.equal(pathsOf(off, 'example.com'), undefined);
});

test('Ingress: Element off drops its host; TLS off and custom secret names are honoured', () => {
  const noElement = onlyIngress({ ...ingressValues(), element: { enabled: false } });
  assert.equal(pathsOf(noElement, 'chat.example.com'), undefined);
  const tls = onlyIngress(ingressValues({ synapse: { host: 'matrix.example.com', tls: { secretName: 'wildcard-tls' } }, element: { host: 'chat.example.com', tls: { enabled: false } } }));
  assert.deepEqual(tls.spec.tls, [
    { hosts: ['matrix.example.com'], secretName: 'wildcard-tls' },
    { hosts: ['example.com'], secretName: 'wildcard-tls' },
  ]);
});

test('path coverage is segment-wise, like Ingress Prefix matching', () => {
  assert.equal(pathCovers('/_matrix', '/_matrix/key'), true);
  assert.equal(pathCovers('/_matrix/', '/_matrix/key'), true);
  assert.equal(pathCovers('/_matrix', '/_matrixfoo'), false);
  assert.equal(pathCovers('/', '/.well-known/matrix'), true);
  assert.deepEqual(withoutCoveredPaths(['/_matrix', '/_matrix/key', '/_synapse/client', '/_matrix']), ['/_matrix', '/_synapse/client']);
});

test('public hosts without ingress.synapse.host: Synapse where its public URL points', () => {
  const stack = stackOf({ synapse: { server: { name: 'example.com', publicBaseurl: 'https://hs.example.com' } } });
  assert.deepEqual(publicHosts(stack).map((h) => h.host), ['hs.example.com', 'example.com']);
});

interface PlainRoute {
  apiVersion: string;
  metadata: { name: string };
  spec: {
    parentRefs: Tree[];
    hostnames: string[];
    rules: { matches: { path: { type: string; value: string } }[]; backendRefs: { name: string; port: number }[] }[];
  };
}

test('HTTPRoutes (gateway.networking.k8s.io/v1): one per host, same paths as the Ingress, to the router', () => {
  assert.deepEqual(buildHttpRoutes(stackOf(base)), []);
  const values = { ...ingressValues(), ingress: { enabled: false, synapse: { host: 'matrix.example.com' }, element: { host: 'chat.example.com' } }, gatewayApi: { enabled: true, parentRefs: [{ name: 'public', namespace: 'gateways', sectionName: 'https' }, { name: 'internal' }] } };
  const routes = buildHttpRoutes(stackOf(values));
  for (const route of routes) route.validate?.();
  const plainRoutes = routes.map((r) => toPlainSorted(r) as PlainRoute);
  assert.deepEqual(plainRoutes.map((r) => r.apiVersion), ['gateway.networking.k8s.io/v1', 'gateway.networking.k8s.io/v1', 'gateway.networking.k8s.io/v1']);
  assert.deepEqual(plainRoutes.map((r) => r.spec.hostnames), [['matrix.example.com'], ['chat.example.com'], ['example.com']]);
  assert.deepEqual(plainRoutes.map((r) => r.metadata.name), ['chat-matrix-example-com', 'chat-chat-example-com', 'chat-example-com']);
  assert.deepEqual(plainRoutes[0]!.spec.parentRefs, [{ name: 'public', namespace: 'gateways', sectionName: 'https' }, { name: 'internal' }]);
  assert.deepEqual(plainRoutes[0]!.spec.rules.flatMap((r) => r.matches.map((m) => m.path)), [
    { type: 'PathPrefix', value: '/_matrix' },
    { type: 'PathPrefix', value: '/_synapse/client' },
  ]);
  for (const rule of plainRoutes.flatMap((r) => r.spec.rules)) assert.deepEqual(rule.backendRefs, [{ name: 'chat-router', port: 8080 }]);
});

test('HTTPRoutes split more than 8 paths into several rules (the schema allows 8 matches per rule)', () => {
  const paths = Array.from({ length: 11 }, (_, i) => `/p${i}`);
  const values = { synapse: { server: { name: 'example.com' } }, ingress: { synapse: { host: 'matrix.example.com', paths } }, gatewayApi: { enabled: true, parentRefs: [{ name: 'public' }] } };
  const [route] = buildHttpRoutes(stackOf(values));
  route!.validate?.();
  const rules = (toPlainSorted(route) as PlainRoute).spec.rules;
  assert.deepEqual(rules.map((r) => r.matches.length), [8, 5]);
  assert.deepEqual(rules.flatMap((r) => r.matches.map((m) => m.path.value)), [...paths, '/_matrix/federation', '/_matrix/key']);
});

// --- ServiceMonitors

interface PlainMonitor {
  metadata: { name: string; labels: Record<string, string> };
  spec: { selector: { matchLabels: Record<string, string> }; endpoints: { port: string; path: string; interval: string }[] };
}

test('ServiceMonitors: none unless enabled; Synapse, router and coturn with their paths, interval and labels', () => {
  assert.deepEqual(buildServiceMonitors(stackOf(base)), []);
  const monitors = buildServiceMonitors(stackOf({ ...base, metrics: { serviceMonitor: { enabled: true, interval: '15s', labels: { release: 'kube-prometheus' } } } }));
  for (const m of monitors) m.validate?.();
  const plainMonitors = monitors.map((m) => toPlainSorted(m) as PlainMonitor);
  assert.deepEqual(
    plainMonitors.map((m) => [m.metadata.name, m.spec.endpoints[0]?.path, m.spec.endpoints[0]?.port, m.spec.endpoints[0]?.interval]),
    [
      ['chat-synapse', '/_synapse/metrics', 'metrics', '15s'],
      ['chat-router', '/metrics', 'metrics', '15s'],
      ['chat-coturn', '/metrics', 'metrics', '15s'],
    ],
  );
  for (const m of plainMonitors) {
    assert.equal(m.metadata.labels.release, 'kube-prometheus');
    assert.equal(m.spec.selector.matchLabels['app.kubernetes.io/instance'], 'chat');
  }
  assert.deepEqual(plainMonitors.map((m) => m.spec.selector.matchLabels['app.kubernetes.io/name']), ['synapse', 'router', 'coturn']);
});

test('ServiceMonitors follow the metrics switches of Synapse and coturn', () => {
  const names = (values: Tree) => buildServiceMonitors(stackOf({ ...base, metrics: { serviceMonitor: { enabled: true } }, ...values })).map((m) => plain(m).metadata.name);
  assert.deepEqual(names({ synapse: { server: { name: 'example.com' }, metrics: { enabled: false } } }), ['chat-router', 'chat-coturn']);
  assert.deepEqual(names({ coturn: { prometheusExporter: { enabled: false } } }), ['chat-synapse', 'chat-router']);
  assert.deepEqual(names({ synapse: { server: { name: 'example.com', turn: { enabled: false } } }, coturn: { enabled: false } }), ['chat-synapse', 'chat-router']);
});

test('"the public Internet" of the policies excludes every range coturn denies and Synapse never previews', () => {
  // CIDR blocks are nested or disjoint: they overlap when one contains the other's first address.
  const overlaps = (a: string, b: string) => cidrContains(a, b.split('/')[0]!) || cidrContains(b, a.split('/')[0]!);
  const prefixOf = (cidr: string) => Number(cidr.split('/')[1]);
  const insideExcept = (range: string, excepts: readonly string[]) => excepts.some((e) => prefixOf(e) <= prefixOf(range) && cidrContains(e, range.split('/')[0]!));
  const reachable = (range: string) =>
    publicInternet.some(({ ipBlock }) => ipBlock && overlaps(ipBlock.cidr, range) && !insideExcept(range, ipBlock.except ?? []));
  for (const range of [...deniedPeerCidrs, ...upstreamUrlPreviewIpRangeBlacklist]) assert.equal(reachable(range), false, range);
  for (const range of ['8.8.8.0/24', '2606:4700::/32', '2a00:1450::/32']) assert.equal(reachable(range), true, range);
});
