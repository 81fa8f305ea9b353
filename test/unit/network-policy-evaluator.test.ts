/**
 * The NetworkPolicy evaluator used by the invariant tests, checked against the semantics of the
 * Kubernetes API reference and its documented examples, on hand-written policies.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  cidrContains,
  evaluateConnection,
  selectorMatches,
  type ClusterModel,
  type Connection,
  type Endpoint,
  type PlainNetworkPolicy,
  type PodEndpoint,
} from '../support/network-policy-evaluator.js';

const pod = (name: string, namespace: string, labels: Record<string, string>, ip: string, namedPorts: PodEndpoint['namedPorts'] = []): PodEndpoint => ({
  kind: 'pod',
  name,
  namespace,
  labels,
  ip,
  namedPorts,
});

const web = pod('web', 'prod', { app: 'web', role: 'frontend' }, '10.0.0.10', [{ name: 'http', containerPort: 8080 }]);
const db = pod('db', 'prod', { app: 'db' }, '10.0.0.11');
const otherWeb = pod('web-in-dev', 'dev', { app: 'web', role: 'frontend' }, '10.0.1.10');
const monitor = pod('prometheus', 'monitoring', { app: 'prometheus' }, '10.0.2.10');
const internet: Endpoint = { kind: 'external', name: 'internet', ip: '93.184.216.34' };

const policy = (name: string, namespace: string, spec: PlainNetworkPolicy['spec']): PlainNetworkPolicy => ({
  kind: 'NetworkPolicy',
  metadata: { name, namespace },
  spec,
});

const cluster = (policies: PlainNetworkPolicy[]): ClusterModel => ({
  namespaces: { prod: { env: 'prod' }, dev: { env: 'dev' }, monitoring: { team: 'ops' } },
  policies,
});

const tcp = (from: Endpoint, to: Endpoint, port: number): Connection => ({ from, to, port, protocol: 'TCP' });

test('without policies every connection is allowed', () => {
  assert.equal(evaluateConnection(cluster([]), tcp(web, db, 5432)).allowed, true);
});

test('a default-deny ingress policy isolates ingress only', () => {
  const c = cluster([policy('deny', 'prod', { podSelector: {}, policyTypes: ['Ingress'] })]);
  assert.equal(evaluateConnection(c, tcp(web, db, 5432)).allowed, false);
  assert.equal(evaluateConnection(c, tcp(web, internet, 443)).allowed, true);
  assert.equal(evaluateConnection(c, tcp(otherWeb, monitor, 9090)).allowed, true, 'other namespaces are not isolated');
});

test('without policyTypes a policy isolates ingress, and egress only when it has egress rules', () => {
  const ingressOnly = cluster([policy('p', 'prod', { podSelector: { matchLabels: { app: 'db' } }, ingress: [] })]);
  assert.equal(evaluateConnection(ingressOnly, tcp(web, db, 5432)).allowed, false);
  assert.equal(evaluateConnection(ingressOnly, tcp(db, internet, 443)).allowed, true);
  const withEgress = cluster([policy('p', 'prod', { podSelector: { matchLabels: { app: 'db' } }, egress: [{ ports: [{ port: 53, protocol: 'UDP' }] }] })]);
  assert.equal(evaluateConnection(withEgress, tcp(db, internet, 443)).allowed, false);
  assert.equal(evaluateConnection(withEgress, { from: db, to: internet, port: 53, protocol: 'UDP' }).allowed, true);
});

test('a connection needs the egress of its source and the ingress of its destination', () => {
  const c = cluster([
    policy('deny', 'prod', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] }),
    policy('db-from-web', 'prod', { podSelector: { matchLabels: { app: 'db' } }, policyTypes: ['Ingress'], ingress: [{ from: [{ podSelector: { matchLabels: { app: 'web' } } }], ports: [{ port: 5432 }] }] }),
  ]);
  const verdict = evaluateConnection(c, tcp(web, db, 5432));
  assert.equal(verdict.ingress.allowed, true);
  assert.equal(verdict.egress.allowed, false);
  assert.equal(verdict.allowed, false);
  const both = cluster([
    ...c.policies,
    policy('web-to-db', 'prod', { podSelector: { matchLabels: { app: 'web' } }, policyTypes: ['Egress'], egress: [{ to: [{ podSelector: { matchLabels: { app: 'db' } } }], ports: [{ port: 5432 }] }] }),
  ]);
  assert.equal(evaluateConnection(both, tcp(web, db, 5432)).allowed, true);
  assert.equal(evaluateConnection(both, tcp(web, db, 5433)).allowed, false, 'other port');
  assert.equal(evaluateConnection(both, { from: web, to: db, port: 5432, protocol: 'UDP' }).allowed, false, 'protocol defaults to TCP');
});

test('a podSelector-only peer means pods of the policy namespace', () => {
  const c = cluster([policy('db-from-web', 'prod', { podSelector: { matchLabels: { app: 'db' } }, ingress: [{ from: [{ podSelector: { matchLabels: { app: 'web' } } }] }] })]);
  assert.equal(evaluateConnection(c, tcp(web, db, 5432)).allowed, true);
  assert.equal(evaluateConnection(c, tcp(otherWeb, db, 5432)).allowed, false);
});

test('namespaceSelector and podSelector in one peer are AND, in two peers OR (API reference example)', () => {
  const and = cluster([
    policy('p', 'prod', { podSelector: { matchLabels: { app: 'db' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'ops' } }, podSelector: { matchLabels: { app: 'web' } } }] }] }),
  ]);
  assert.equal(evaluateConnection(and, tcp(monitor, db, 5432)).allowed, false, 'right namespace, wrong pod');
  assert.equal(evaluateConnection(and, tcp(web, db, 5432)).allowed, false, 'right pod, wrong namespace');
  const or = cluster([
    policy('p', 'prod', { podSelector: { matchLabels: { app: 'db' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'ops' } } }, { podSelector: { matchLabels: { app: 'web' } } }] }] }),
  ]);
  assert.equal(evaluateConnection(or, tcp(monitor, db, 5432)).allowed, true);
  assert.equal(evaluateConnection(or, tcp(web, db, 5432)).allowed, true);
  assert.equal(evaluateConnection(or, tcp(otherWeb, db, 5432)).allowed, false);
});

test('an empty namespaceSelector matches pods of every namespace but no outside address', () => {
  const c = cluster([policy('p', 'prod', { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ from: [{ namespaceSelector: {} }] }] })]);
  assert.equal(evaluateConnection(c, tcp(otherWeb, web, 8080)).allowed, true);
  assert.equal(evaluateConnection(c, tcp(internet, web, 8080)).allowed, false);
});

test('namespaces are selectable by kubernetes.io/metadata.name', () => {
  const c = cluster([policy('p', 'prod', { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }] }] })]);
  assert.equal(evaluateConnection(c, tcp(monitor, web, 8080)).allowed, true);
  assert.equal(evaluateConnection(c, tcp(otherWeb, web, 8080)).allowed, false);
});

test('ipBlock matches by CIDR minus except, never across address families', () => {
  const c = cluster([
    policy('p', 'prod', {
      podSelector: { matchLabels: { app: 'web' } },
      policyTypes: ['Egress'],
      egress: [{ to: [{ ipBlock: { cidr: '0.0.0.0/0', except: ['10.0.0.0/8', '169.254.0.0/16'] } }] }],
    }),
  ]);
  assert.equal(evaluateConnection(c, tcp(web, internet, 443)).allowed, true);
  assert.equal(evaluateConnection(c, tcp(web, { kind: 'external', name: 'metadata', ip: '169.254.169.254' }, 80)).allowed, false);
  assert.equal(evaluateConnection(c, tcp(web, db, 5432)).allowed, false, 'pod address inside an except range');
  assert.equal(evaluateConnection(c, tcp(web, { kind: 'external', name: 'v6', ip: '2606:4700:4700::1111' }, 443)).allowed, false);
  assert.equal(cidrContains('::/0', '2606:4700:4700::1111'), true);
  assert.equal(cidrContains('fc00::/7', 'fd12::1'), true);
  assert.equal(cidrContains('fc00::/7', 'fe80::1'), false);
  assert.equal(cidrContains('192.168.0.0/16', '192.169.0.1'), false);
});

test('port ranges, port-less entries and named ports', () => {
  const c = cluster([
    policy('p', 'prod', {
      podSelector: { matchLabels: { app: 'web' } },
      ingress: [{ ports: [{ protocol: 'UDP', port: 49152, endPort: 49252 }, { protocol: 'SCTP' }, { port: 'http' }] }],
    }),
  ]);
  const udp = (port: number): Connection => ({ from: internet, to: web, port, protocol: 'UDP' });
  assert.equal(evaluateConnection(c, udp(49152)).allowed, true);
  assert.equal(evaluateConnection(c, udp(49252)).allowed, true);
  assert.equal(evaluateConnection(c, udp(49253)).allowed, false);
  assert.equal(evaluateConnection(c, { from: internet, to: web, port: 1, protocol: 'SCTP' }).allowed, true);
  assert.equal(evaluateConnection(c, tcp(internet, web, 8080)).allowed, true, 'named port http is 8080 on web');
  assert.equal(evaluateConnection(c, tcp(internet, web, 80)).allowed, false);
});

test('label selectors: matchLabels and every matchExpressions operator', () => {
  const labels = { app: 'web', tier: 'front' };
  assert.equal(selectorMatches({}, labels), true);
  assert.equal(selectorMatches({ matchLabels: { app: 'web' } }, labels), true);
  assert.equal(selectorMatches({ matchLabels: { app: 'db' } }, labels), false);
  assert.equal(selectorMatches({ matchExpressions: [{ key: 'app', operator: 'In', values: ['db', 'web'] }] }, labels), true);
  assert.equal(selectorMatches({ matchExpressions: [{ key: 'app', operator: 'NotIn', values: ['web'] }] }, labels), false);
  assert.equal(selectorMatches({ matchExpressions: [{ key: 'zone', operator: 'NotIn', values: ['a'] }] }, labels), true);
  assert.equal(selectorMatches({ matchExpressions: [{ key: 'tier', operator: 'Exists' }] }, labels), true);
  assert.equal(selectorMatches({ matchExpressions: [{ key: 'tier', operator: 'DoesNotExist' }] }, labels), false);
  assert.equal(selectorMatches({ matchLabels: { app: 'web' }, matchExpressions: [{ key: 'zone', operator: 'Exists' }] }, labels), false);
});

test('policies of another namespace do not apply', () => {
  const c = cluster([policy('deny-dev', 'dev', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] })]);
  assert.equal(evaluateConnection(c, tcp(web, db, 5432)).allowed, true);
  assert.equal(evaluateConnection(c, tcp(web, otherWeb, 8080)).allowed, false);
});
