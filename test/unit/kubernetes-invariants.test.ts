/**
 * Invariants over the whole Kubernetes render, for every values fixture in test/fixtures/values
 * (bad inputs live in bad/ and in bad-*.yaml files and are skipped). Each fixture is rendered twice:
 * as written, and with known secret strings written into the values and NetworkPolicies switched on,
 * so that secret placement and the network flows are checked in every scenario.
 *
 * No cluster runs here: object schemas are checked by validate() in the render itself, Pod Security
 * by the restricted-profile oracle of test/support, NetworkPolicies by the independent evaluator.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';
import { loadValues, resolveValues } from '../../src/values/load.js';
import type { Values } from '../../src/values/schema.js';
import type { Stack } from '../../src/stack/model.js';
import { compileKubernetesStack, renderKubernetesObjects } from '../../src/targets/kubernetes/render.js';
import { toPlainSorted } from '../../src/kit/sorted-json.js';
import { documentedSecrets } from '../../src/targets/kubernetes/secrets.js';
import { restrictedViolations, type PlainPodSpec } from '../support/pod-security-restricted.js';
import { cidrContains, evaluateConnection, type Endpoint, type NamedPort, type PodEndpoint, type Protocol } from '../support/network-policy-evaluator.js';
import { addressInside, cloudMetadata, external, privateAddress, publicIpv4, publicIpv6, releaseNetwork, type ReleaseNetwork } from '../support/release-network.js';

type Tree = Record<string, unknown>;

// ---------------------------------------------------------------- fixtures and renders

const fixturesDir = fileURLToPath(new URL('../fixtures/values/', import.meta.url));
const fixtureFiles = readdirSync(fixturesDir)
  .filter((name) => name.endsWith('.yaml') && !name.startsWith('bad-'))
  .sort()
  .map((name) => join(fixturesDir, name));

/** Secret strings written into the values: they may appear in Secret objects and nowhere else. */
const knownSecrets = {
  adminPassword: 'invariant-admin-password-Qd72kx',
  registrationSecret: 'invariant-registration-secret-Zk49wm',
  smtpPass: 'invariant-smtp-password-Mx83vb',
  clientSecret: (idp: string) => `invariant-client-secret-${idp}-Pw51tn`,
};

/** The fixture's values plus every secret the values may carry (where the values allow one), and NetworkPolicies on. */
function withKnownSecrets(values: Values): { values: Values; secrets: string[] } {
  const copy = structuredClone(values) as Values;
  const server = copy.synapse.server;
  const secrets = [knownSecrets.adminPassword, knownSecrets.registrationSecret];
  server.adminUser.password = knownSecrets.adminPassword;
  server.adminUser.registrationSecret = knownSecrets.registrationSecret;
  if (server.email.enabled && !server.email.smtpPassSecretRef) {
    server.email.smtpPass = knownSecrets.smtpPass;
    secrets.push(knownSecrets.smtpPass);
  }
  for (const provider of server.sso.oidc.providers) {
    if (provider.clientSecretRef) continue;
    provider.client_secret = knownSecrets.clientSecret(provider.idp_id);
    secrets.push(provider.client_secret);
  }
  copy.networkPolicy.enabled = true;
  return { values: resolveValues(copy as unknown as Tree), secrets };
}

interface PlainObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: Tree;
  data?: Record<string, string>;
  stringData?: Record<string, string>;
}

interface Render {
  label: string;
  stack: Stack;
  objects: PlainObject[];
  raw: ReturnType<typeof renderKubernetesObjects>;
  secrets: string[];
}

function render(label: string, values: Values, secrets: string[] = []): Render {
  const stack = compileKubernetesStack(values, { release: 'mx', namespace: 'matrix' });
  // renderKubernetesObjects validates every object against its schema and throws otherwise.
  const raw = renderKubernetesObjects(stack);
  return { label, stack, raw, objects: raw.map((o) => toPlainSorted(o) as PlainObject), secrets };
}

const renders: Render[] = fixtureFiles.flatMap((file) => {
  const name = basename(file, '.yaml');
  const values = loadValues({ files: [file] });
  const secretful = withKnownSecrets(values);
  return [render(name, values), render(`${name} (+secrets, +networkPolicy)`, secretful.values, secretful.secrets)];
});

// ---------------------------------------------------------------- pod templates

interface PlainContainer {
  name: string;
  ports?: { name?: string; containerPort: number; protocol?: Protocol }[];
  resources?: { requests?: Record<string, unknown>; limits?: Record<string, unknown> };
  readinessProbe?: unknown;
  livenessProbe?: unknown;
  env?: { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string; optional?: boolean }; configMapKeyRef?: { name: string; key: string } } }[];
  envFrom?: { secretRef?: { name: string }; configMapRef?: { name: string } }[];
  volumeMounts?: { name: string }[];
}

interface PlainTemplate {
  metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> };
  spec: PlainPodSpec & {
    containers: PlainContainer[];
    initContainers?: PlainContainer[];
    serviceAccountName?: string;
    volumes?: (Tree & { name: string })[];
  };
}

interface Workload {
  object: PlainObject;
  template: PlainTemplate;
  component: string;
  longRunning: boolean;
}

function workloads(objects: PlainObject[]): Workload[] {
  return objects.flatMap((object): Workload[] => {
    const spec = object.spec as Tree | undefined;
    let template: PlainTemplate | undefined;
    if (['Deployment', 'StatefulSet', 'DaemonSet', 'Job'].includes(object.kind)) template = spec?.template as PlainTemplate;
    if (object.kind === 'CronJob') template = ((spec?.jobTemplate as Tree | undefined)?.spec as Tree | undefined)?.template as PlainTemplate;
    if (!template) return [];
    const component = template.metadata?.labels?.['app.kubernetes.io/name'] ?? object.metadata.name;
    return [{ object, template, component, longRunning: !['Job', 'CronJob'].includes(object.kind) }];
  });
}

const id = (o: PlainObject) => `${o.kind}/${o.metadata.name}`;
const allContainers = (t: PlainTemplate) => [...(t.spec.initContainers ?? []), ...t.spec.containers];
const labelsMatch = (selector: Record<string, string>, labels: Record<string, string> = {}) =>
  Object.entries(selector).every(([key, value]) => labels[key] === value);

// ---------------------------------------------------------------- object-level invariants

test('there are fixtures to check, each rendering a Synapse workload', () => {
  assert.ok(fixtureFiles.length >= 3, `fixtures in ${fixturesDir}`);
  for (const r of renders) assert.ok(workloads(r.objects).some((w) => w.component === 'synapse'), r.label);
});

test('every object is namespaced in the release namespace and named uniquely per kind', () => {
  for (const r of renders) {
    const ids = r.objects.map(id);
    assert.equal(new Set(ids).size, ids.length, `${r.label}: duplicate objects`);
    for (const o of r.objects) if (o.kind !== 'Namespace') assert.equal(o.metadata.namespace, 'matrix', `${r.label}: ${id(o)}`);
  }
});

test('every pod passes Pod Security "restricted" (coturn.hostNetwork is the one documented exception)', () => {
  for (const r of renders) {
    for (const w of workloads(r.objects)) {
      let violations = restrictedViolations(w.template.spec, w.template.metadata?.annotations);
      if (w.component === 'coturn' && r.stack.values.coturn.hostNetwork) {
        // On the node network every container port is a host port: both follow from the opt-in.
        violations = violations.filter((v) => !v.includes('[hostNamespaces]') && !v.includes('[hostPorts]'));
      }
      assert.deepEqual(violations, [], `${r.label}: ${id(w.object)}`);
    }
  }
});

test('every container has CPU and memory requests and limits; long-running containers have readiness and liveness probes', () => {
  for (const r of renders) {
    for (const w of workloads(r.objects)) {
      for (const c of allContainers(w.template)) {
        const at = `${r.label}: ${id(w.object)} container ${c.name}`;
        for (const kind of ['requests', 'limits'] as const) {
          for (const resource of ['cpu', 'memory']) assert.ok(c.resources?.[kind]?.[resource] !== undefined, `${at}: ${kind}.${resource}`);
        }
      }
      // A Job's pod serves nothing and ends: it has no readiness to report (its deadline bounds it).
      if (!w.longRunning) continue;
      for (const c of w.template.spec.containers) {
        assert.ok(c.readinessProbe, `${r.label}: ${id(w.object)} container ${c.name}: readinessProbe`);
        assert.ok(c.livenessProbe, `${r.label}: ${id(w.object)} container ${c.name}: livenessProbe`);
      }
    }
  }
});

test('secret strings written in values appear in Secret objects only', () => {
  const secretful = renders.filter((r) => r.secrets.length > 0);
  assert.ok(secretful.length > 0);
  for (const r of secretful) {
    const secretObjects = r.objects.filter((o) => o.kind === 'Secret');
    for (const secret of r.secrets) {
      assert.ok(secretObjects.some((o) => stringify(o).includes(secret)), `${r.label}: a Secret carries ${secret}`);
      for (const o of r.objects.filter((x) => x.kind !== 'Secret')) {
        assert.ok(!stringify(o).includes(secret), `${r.label}: ${id(o)} contains a secret written in values`);
      }
    }
  }
});

test('every Service selects the pod template of a workload, and its named target ports exist there', () => {
  for (const r of renders) {
    const templates = workloads(r.objects);
    for (const service of r.objects.filter((o) => o.kind === 'Service')) {
      const spec = service.spec as { selector?: Record<string, string>; ports: { name?: string; targetPort?: number | string; protocol?: Protocol }[] };
      assert.ok(spec.selector && Object.keys(spec.selector).length > 0, `${r.label}: ${id(service)} has a selector`);
      const selected = templates.filter((w) => labelsMatch(spec.selector!, w.template.metadata?.labels));
      assert.ok(selected.length > 0, `${r.label}: ${id(service)} selects no pod template`);
      for (const port of spec.ports) {
        if (typeof port.targetPort !== 'string') continue;
        const found = selected.some((w) =>
          w.template.spec.containers.some((c) => (c.ports ?? []).some((p) => p.name === port.targetPort && (p.protocol ?? 'TCP') === (port.protocol ?? 'TCP'))),
        );
        assert.ok(found, `${r.label}: ${id(service)} port ${port.name}: no container port named ${port.targetPort}`);
      }
    }
  }
});

interface Reference {
  kind: 'ConfigMap' | 'Secret' | 'PersistentVolumeClaim';
  name: string;
  key?: string;
  from: string;
}

function references(w: Workload): Reference[] {
  const from = id(w.object);
  const refs: Reference[] = [];
  for (const volume of w.template.spec.volumes ?? []) {
    const v = volume as Tree & {
      configMap?: { name: string; items?: { key: string }[] };
      secret?: { secretName: string; items?: { key: string }[] };
      persistentVolumeClaim?: { claimName: string };
      projected?: { sources: { configMap?: { name: string; items?: { key: string }[] }; secret?: { name: string; items?: { key: string }[] } }[] };
    };
    const withKeys = (kind: Reference['kind'], name: string, items?: { key: string }[]) =>
      items && items.length > 0 ? items.map((item) => ({ kind, name, key: item.key, from })) : [{ kind, name, from }];
    if (v.configMap) refs.push(...withKeys('ConfigMap', v.configMap.name, v.configMap.items));
    if (v.secret) refs.push(...withKeys('Secret', v.secret.secretName, v.secret.items));
    if (v.persistentVolumeClaim) refs.push({ kind: 'PersistentVolumeClaim', name: v.persistentVolumeClaim.claimName, from });
    for (const source of v.projected?.sources ?? []) {
      if (source.configMap) refs.push(...withKeys('ConfigMap', source.configMap.name, source.configMap.items));
      if (source.secret) refs.push(...withKeys('Secret', source.secret.name, source.secret.items));
    }
  }
  for (const c of allContainers(w.template)) {
    for (const env of c.env ?? []) {
      const s = env.valueFrom?.secretKeyRef;
      const m = env.valueFrom?.configMapKeyRef;
      if (s) refs.push({ kind: 'Secret', name: s.name, key: s.key, from });
      if (m) refs.push({ kind: 'ConfigMap', name: m.name, key: m.key, from });
    }
    for (const source of c.envFrom ?? []) {
      if (source.secretRef) refs.push({ kind: 'Secret', name: source.secretRef.name, from });
      if (source.configMapRef) refs.push({ kind: 'ConfigMap', name: source.configMapRef.name, from });
    }
  }
  return refs;
}

test('every ConfigMap, Secret and claim a pod references is rendered or documented as created by the user or `mxstack secrets init`', () => {
  for (const r of renders) {
    const documented = documentedSecrets(r.stack);
    const rendered = (kind: string, name: string) => r.objects.find((o) => o.kind === kind && o.metadata.name === name);
    for (const w of workloads(r.objects)) {
      const claimTemplates = ((w.object.spec as Tree | undefined)?.volumeClaimTemplates as { metadata: { name: string } }[] | undefined) ?? [];
      const volumeNames = new Set([...(w.template.spec.volumes ?? []).map((v) => v.name), ...claimTemplates.map((t) => t.metadata.name)]);
      for (const c of allContainers(w.template)) {
        for (const mount of c.volumeMounts ?? []) assert.ok(volumeNames.has(mount.name), `${r.label}: ${id(w.object)} mounts unknown volume ${mount.name}`);
      }
      for (const ref of references(w)) {
        const at = `${r.label}: ${ref.from} references ${ref.kind} ${ref.name}${ref.key ? ` key ${ref.key}` : ''}`;
        const object = rendered(ref.kind, ref.name);
        if (ref.kind === 'ConfigMap') {
          assert.ok(object, `${at}: not rendered`);
          if (ref.key) assert.ok(Object.hasOwn(object.data ?? {}, ref.key), `${at}: the ConfigMap has no such key`);
        } else if (ref.kind === 'PersistentVolumeClaim') {
          assert.ok(object || ref.name === r.stack.values.synapse.persistence.existingClaim, `${at}: not rendered and not synapse.persistence.existingClaim`);
        } else if (object && ref.key && Object.hasOwn({ ...object.data, ...object.stringData }, ref.key)) {
          continue;
        } else {
          const entry = documented.find((d) => d.name === ref.name && (ref.key === undefined || d.key === ref.key));
          assert.ok(entry, `${at}: neither rendered nor in documentedSecrets`);
        }
      }
      const account = w.template.spec.serviceAccountName;
      if (account && account !== 'default') assert.ok(rendered('ServiceAccount', account) || !r.stack.values.synapse.serviceAccount.create, `${r.label}: ${id(w.object)} uses ServiceAccount ${account}`);
    }
  }
});

test('Ingress and HTTPRoute backends and ServiceMonitor endpoints name Services and ports that exist', () => {
  for (const r of renders) {
    const services = r.objects.filter((o) => o.kind === 'Service') as (PlainObject & { spec: { ports: { name?: string; port: number }[] } })[];
    const servicePort = (name: string, port: number) => services.some((s) => s.metadata.name === name && s.spec.ports.some((p) => p.port === port));
    for (const ingress of r.objects.filter((o) => o.kind === 'Ingress')) {
      const rules = (ingress.spec as { rules: { http: { paths: { backend: { service: { name: string; port: { number: number } } } }[] } }[] }).rules;
      for (const path of rules.flatMap((rule) => rule.http.paths)) {
        assert.ok(servicePort(path.backend.service.name, path.backend.service.port.number), `${r.label}: ${id(ingress)} → ${path.backend.service.name}:${path.backend.service.port.number}`);
      }
    }
    for (const route of r.objects.filter((o) => o.kind === 'HTTPRoute')) {
      const rules = (route.spec as { rules: { backendRefs: { name: string; port: number }[] }[] }).rules;
      for (const ref of rules.flatMap((rule) => rule.backendRefs)) assert.ok(servicePort(ref.name, ref.port), `${r.label}: ${id(route)} → ${ref.name}:${ref.port}`);
    }
    for (const monitor of r.objects.filter((o) => o.kind === 'ServiceMonitor')) {
      const spec = monitor.spec as { selector: { matchLabels: Record<string, string> }; endpoints: { port: string }[] };
      for (const endpoint of spec.endpoints) {
        const scraped = services.filter((s) => labelsMatch(spec.selector.matchLabels, s.metadata.labels) && s.spec.ports.some((p) => p.name === endpoint.port));
        assert.ok(scraped.length > 0, `${r.label}: ${id(monitor)} selects no Service with a port named ${endpoint.port}`);
      }
    }
  }
});

test('every NetworkPolicy selects at least one pod of the release', () => {
  for (const r of renders) {
    // A CloudNativePG Cluster's pods are the operator's: they carry cnpg.io/cluster=<name>.
    const clusterPods: Record<string, string>[] = r.objects.filter((o) => o.kind === 'Cluster').map((o) => ({ 'cnpg.io/cluster': o.metadata.name }));
    const podLabels = [...workloads(r.objects).map((w) => w.template.metadata?.labels ?? {}), ...clusterPods];
    for (const policy of r.objects.filter((o) => o.kind === 'NetworkPolicy')) {
      const selector = (policy.spec as { podSelector: { matchLabels?: Record<string, string>; matchExpressions?: { key: string; operator: string; values?: string[] }[] } }).podSelector;
      const selects = podLabels.some(
        (labels) =>
          labelsMatch(selector.matchLabels ?? {}, labels) &&
          (selector.matchExpressions ?? []).every((e) => e.operator === 'In' && e.values?.includes(labels[e.key] ?? '\0')),
      );
      assert.ok(selects, `${r.label}: ${id(policy)} selects no rendered pod`);
    }
  }
});

// ---------------------------------------------------------------- network flows

/**
 * Who is meant to open connections to each component's Services (the architecture, stated once here);
 * `synapse processes` stands for the main process and every worker (each opens its own database pool).
 * Replication ports are not here: their clients follow from the rendered configuration (configuredClients).
 */
const clientsOf: Record<string, string[]> = {
  router: ['ingress-controller'],
  synapse: ['router', 'admin-bootstrap'],
  element: ['router'],
  postgresql: ['synapse processes', 'backup', 'auth'],
  // The sign-in port: browsers through the router, Synapse for token, userinfo and jwks.
  auth: ['router', 'synapse'],
};

/** The pods that run Synapse: the main process and the worker pools (`synapse-<pool>`). */
const isSynapseProcess = (component: string) => component === 'synapse' || component.startsWith('synapse-');

interface ListenPort {
  port: number;
  protocol: Protocol;
  /** A Service port named `metrics`: meant for Prometheus. */
  metrics: boolean;
  /** A Service port named `admin` (the auth component's administration API): reached by port-forward only, never over the network. */
  admin: boolean;
  /** A Service port named `replication` (Synapse's HTTP replication): reached by the processes instance_map sends there. */
  replication: boolean;
}

/** The pod ports each component's Services lead to (named target ports resolved against the pod template). */
function listenPorts(r: Render, component: Workload): ListenPort[] {
  const ports = new Map<string, ListenPort>();
  for (const service of r.objects.filter((o) => o.kind === 'Service')) {
    const spec = service.spec as { selector?: Record<string, string>; ports: { name?: string; port: number; targetPort?: number | string; protocol?: Protocol }[] };
    if (!spec.selector || !labelsMatch(spec.selector, component.template.metadata?.labels)) continue;
    for (const p of spec.ports) {
      const protocol = p.protocol ?? 'TCP';
      let port = typeof p.targetPort === 'number' ? p.targetPort : p.port;
      if (typeof p.targetPort === 'string') {
        const named = component.template.spec.containers.flatMap((c) => c.ports ?? []).find((cp) => cp.name === p.targetPort);
        if (!named) continue;
        port = named.containerPort;
      }
      ports.set(`${protocol}/${port}`, { port, protocol, metrics: p.name === 'metrics', admin: p.name === 'admin', replication: p.name === 'replication' });
    }
  }
  return [...ports.values()];
}

function peerConfigured(pair: { namespaceSelector: Record<string, string>; podSelector: Record<string, string> }): boolean {
  return Object.keys(pair.namespaceSelector).length > 0 || Object.keys(pair.podSelector).length > 0;
}

/** The component and pod port behind an address of the rendered configuration: a Service name, or a pod's name under a headless Service. */
function endpointOf(r: Render, host: string, port: number): { component: string; port: number } {
  const services = r.objects.filter((o) => o.kind === 'Service');
  const [first = '', second = ''] = host.split('.');
  const service = services.find((s) => s.metadata.name === second) ?? services.find((s) => s.metadata.name === first);
  assert.ok(service, `${r.label}: no Service behind ${host}`);
  const spec = service.spec as { clusterIP?: string; selector: Record<string, string>; ports: { port: number; targetPort?: number | string }[] };
  const component = spec.selector['app.kubernetes.io/name']!;
  const servicePort = spec.ports.find((p) => p.port === port);
  assert.ok(servicePort, `${r.label}: ${service.metadata.name} has no port ${port}`);
  // Every Service here maps a port to a target port of the same number or a named one: resolve it on the pod.
  const target = servicePort.targetPort ?? port;
  if (typeof target === 'number') return { component, port: target };
  const workload = workloads(r.objects).find((w) => w.component === component)!;
  const named = workload.template.spec.containers.flatMap((c) => c.ports ?? []).find((p) => p.name === target);
  assert.ok(named, `${r.label}: ${component} has no port named ${target}`);
  return { component, port: named.containerPort };
}

/**
 * Clients that follow from the rendered configuration, by `<component>/<pod port>`: the router reaches the
 * servers of its haproxy.cfg; every Synapse process reaches what homeserver.yaml's instance_map and redis
 * name (HTTP replication and the replication bus).
 */
function configuredClients(r: Render, synapseProcesses: string[]): Map<string, Set<string>> {
  const clients = new Map<string, Set<string>>();
  const add = (endpoint: { component: string; port: number }, sources: string[]) => {
    const key = `${endpoint.component}/${endpoint.port}`;
    clients.set(key, new Set([...(clients.get(key) ?? []), ...sources]));
  };
  const configMapFile = (file: string) => r.objects.find((o) => o.kind === 'ConfigMap' && o.data?.[file] !== undefined)?.data?.[file];
  for (const line of (configMapFile('haproxy.cfg') ?? '').split('\n')) {
    const server = /^\s*server(?:-template)?\s+\S+\s+(?:\d+\s+)?([^\s:]+):(\d+)\s/.exec(line);
    if (server) add(endpointOf(r, server[1]!, Number(server[2])), ['router']);
  }
  const homeserver = parse(configMapFile('homeserver.yaml') ?? '{}') as { instance_map?: Record<string, { host: string; port: number }>; redis?: { enabled?: boolean; host: string; port: number } };
  for (const instance of Object.values(homeserver.instance_map ?? {})) add(endpointOf(r, instance.host, instance.port), synapseProcesses);
  if (homeserver.redis?.enabled) add(endpointOf(r, homeserver.redis.host, homeserver.redis.port), synapseProcesses);
  return clients;
}

interface FlowCase {
  from: Endpoint;
  to: Endpoint;
  port: number;
  protocol: Protocol;
  expected: boolean;
}

function flowCases(r: Render, net: ReleaseNetwork, components: Workload[]): FlowCase[] {
  const v = r.stack.values;
  const np = v.networkPolicy;
  const server = v.synapse.server;
  const { ports } = r.stack.placement;
  const cases: FlowCase[] = [];
  const add = (from: Endpoint, to: Endpoint, port: number, protocol: Protocol, expected: boolean) => cases.push({ from, to, port, protocol, expected });
  const releaseSources = Object.values(net.pods);
  const outsiders: { endpoint: Endpoint; role: string }[] = [
    { endpoint: net.ingressController, role: 'ingress-controller' },
    { endpoint: net.prometheus, role: 'prometheus' },
    { endpoint: net.stranger, role: 'stranger' },
    { endpoint: net.neighbour, role: 'neighbour' },
    { endpoint: external('internet client', publicIpv4), role: 'internet' },
  ];
  const synapseProcesses = components.map((w) => w.component).filter(isSynapseProcess);
  const configured = configuredClients(r, synapseProcesses);
  const staticClients = (component: string) => (clientsOf[component] ?? []).flatMap((client) => (client === 'synapse processes' ? synapseProcesses : [client]));
  const coturnClientPort = (port: number, protocol: Protocol) =>
    port === ports.turn ||
    (v.coturn.tls.enabled && port === ports.turns) ||
    (protocol === 'UDP' && port >= ports.relayMin && port <= ports.relayMax);

  // Every port every release pod listens on (plus one nobody should reach), from every possible source.
  for (const destination of components) {
    const to = net.pods[destination.component]!;
    const listening: ListenPort[] = [...listenPorts(r, destination), { port: 12345, protocol: 'TCP', metrics: false, admin: false, replication: false }];
    if (destination.component === 'coturn') {
      const relay = (port: number): ListenPort => ({ port, protocol: 'UDP', metrics: false, admin: false, replication: false });
      listening.push(relay(ports.relayMin), relay(ports.relayMax), relay(ports.relayMax + 1));
    }
    for (const { port, protocol, metrics, admin, replication } of listening) {
      const isClientPort = !metrics && !admin && port !== 12345;
      const clients = new Set([...(replication ? [] : staticClients(destination.component)), ...(configured.get(`${destination.component}/${port}`) ?? [])]);
      for (const from of releaseSources) {
        if (from === to) continue;
        const expected = isClientPort && clients.has(from.name) && protocol === 'TCP';
        add(from, to, port, protocol, expected);
      }
      for (const { endpoint, role } of outsiders) {
        let expected: boolean;
        if (destination.component === 'coturn' && !metrics) expected = coturnClientPort(port, protocol);
        else if (metrics) expected = role === 'prometheus' || (!peerConfigured(np.prometheus) && endpoint.kind === 'pod');
        // Other homeservers reach the federation listener from anywhere.
        else if (destination.component === 'router' && v.router.federation.enabled && port === ports.routerFederation) expected = protocol === 'TCP';
        else if (destination.component === 'router' && isClientPort) expected = role === 'ingress-controller' || (!peerConfigured(np.ingress.traefik) && endpoint.kind === 'pod');
        else expected = false;
        add(endpoint, to, port, protocol, expected);
      }
    }
  }

  // What release pods may reach outside the release.
  const smtp = external('smtp relay', addressInside(np.egress.smtpCidr));
  const resolvers = [...synapseProcesses, 'router', 'admin-bootstrap', 'backup', 'auth'];
  // Synapse's duties with an outbound flow: federation from every process (its federation client runs
  // wherever a request needs a remote server); URL previews in the media repository (the media pool when it
  // runs, else the main process); mail from the main process and the pushers; sign-in (SSO) on the main
  // process only, where the router sends it.
  const mediaPool = 'synapse-media-repository';
  const previewer = synapseProcesses.includes(mediaPool) ? mediaPool : 'synapse';
  const mailers = ['synapse', 'synapse-pusher'];
  const covers = (ranges: string[], ip: string) => ranges.some((range) => cidrContains(range.includes('/') ? range : `${range}/${range.includes(':') ? 128 : 32}`, ip));
  const previewsReach = (ip: string) => server.urlPreviews.enabled && covers(server.urlPreviews.ipRangeWhitelist, ip);
  // Every Synapse process federates; synapse.server.federation.ipRangeWhitelist opens private peers on the federation ports.
  const federationReach = (ip: string, port: number) => server.federation.enabled && [443, 8448].includes(port) && covers(server.federation.ipRangeWhitelist, ip);
  for (const from of releaseSources) {
    const isMain = from.name === 'synapse';
    const isProcess = synapseProcesses.includes(from.name);
    const previews = from.name === previewer && server.urlPreviews.enabled;
    add(from, net.dns, 53, 'UDP', resolvers.includes(from.name));
    add(from, net.dns, 53, 'TCP', resolvers.includes(from.name));
    for (const ip of [publicIpv4, publicIpv6]) {
      const internet = external('internet', ip);
      add(from, internet, 443, 'TCP', (isProcess && server.federation.enabled) || previews || (isMain && server.sso.enabled && !peerConfigured(np.egress.sso)));
      add(from, internet, 8448, 'TCP', isProcess && server.federation.enabled);
      add(from, internet, 80, 'TCP', previews);
      add(from, internet, 40000, 'UDP', from.name === 'coturn');
    }
    for (const port of [80, 443, 8448]) {
      add(from, external('cloud metadata', cloudMetadata), port, 'TCP', (previews && port !== 8448 && previewsReach(cloudMetadata)) || (isProcess && federationReach(cloudMetadata, port)));
      add(from, external('private peer', privateAddress), port, 'TCP', (previews && port !== 8448 && previewsReach(privateAddress)) || (isProcess && federationReach(privateAddress, port)));
    }
    add(from, external('private peer', privateAddress), 40000, 'UDP', false);
    // coturn may relay to its own announced addresses (external-ip "public[/private]").
    for (const own of v.coturn.enabled ? (v.coturn.externalIP?.split('/') ?? []) : []) add(from, external('coturn itself', own), 40000, 'UDP', from.name === 'coturn');
    const databasePort = typeof v.synapse.database.port === 'number' ? v.synapse.database.port : 5432;
    add(from, external('external database', privateAddress), databasePort, 'TCP', (isProcess && v.synapse.database.external) || (previews && previewsReach(privateAddress) && [80, 443].includes(databasePort)) || (isProcess && federationReach(privateAddress, databasePort)));
    if (server.email.enabled) add(from, smtp, server.email.smtpPort, 'TCP', mailers.includes(from.name));
    if (server.sso.enabled && peerConfigured(np.egress.sso)) add(from, net.identityProvider, 9091, 'TCP', isMain);
  }
  return cases;
}

test('NetworkPolicies allow exactly the flows the stack needs (independent evaluator, pods as rendered)', () => {
  const checked = renders.filter((r) => r.stack.values.networkPolicy.enabled);
  assert.ok(checked.length >= fixtureFiles.length);
  for (const r of checked) {
    const components = workloads(r.objects);
    const pods = Object.fromEntries(
      components.map((w) => [
        w.component,
        { labels: w.template.metadata?.labels ?? {}, namedPorts: w.template.spec.containers.flatMap((c) => (c.ports ?? []).map((p) => ({ name: p.name ?? '', containerPort: p.containerPort, protocol: p.protocol }) as NamedPort)) },
      ]),
    );
    const net = releaseNetwork(r.stack, r.raw, pods);
    const wrong = flowCases(r, net, components)
      .map((c) => ({ c, verdict: evaluateConnection(net.cluster, { from: c.from, to: c.to, port: c.port, protocol: c.protocol }) }))
      .filter(({ c, verdict }) => verdict.allowed !== c.expected)
      .map(({ c, verdict }) => `${c.from.name} → ${c.to.name} ${c.protocol}/${c.port}: expected ${c.expected ? 'allowed' : 'denied'} (egress: ${verdict.egress.reason}; ingress: ${verdict.ingress.reason})`);
    assert.deepEqual(wrong, [], r.label);
  }
});

test('the flows the stack needs are among the cases checked, and pods outside the release stay unaffected', () => {
  const r = renders.find((x) => x.stack.values.networkPolicy.enabled && x.stack.values.element.enabled && x.stack.database.provider === 'statefulset' && x.stack.values.postgresql.enabled);
  assert.ok(r, 'a fixture with Element and the release PostgreSQL');
  const components = workloads(r.objects);
  const net = releaseNetwork(r.stack, r.raw, Object.fromEntries(components.map((w) => [w.component, { labels: w.template.metadata?.labels ?? {} }])));
  const allowed = new Set(
    flowCases(r, net, components)
      .filter((c) => c.expected)
      .map((c) => `${c.from.name}>${c.to.name}`),
  );
  for (const flow of ['ingress-controller>router', 'router>synapse', 'router>element', 'synapse>postgresql', 'admin-bootstrap>synapse', 'synapse>dns', 'prometheus>synapse', 'internet client>coturn']) {
    assert.ok(allowed.has(flow), flow);
  }
  const otherNeighbour: PodEndpoint = { ...net.neighbour, name: 'neighbour-2', ip: '10.244.9.12' };
  assert.equal(evaluateConnection(net.cluster, { from: net.neighbour, to: otherNeighbour, port: 80, protocol: 'TCP' }).allowed, true);
});

test('with workers the flows of issue 16 are among the cases checked, and only the processes that need them get them', () => {
  const r = renders.find((x) => x.stack.values.networkPolicy.enabled && x.label.startsWith('workers-network-policies'));
  assert.ok(r, 'the workers-network-policies fixture');
  const components = workloads(r.objects);
  const net = releaseNetwork(r.stack, r.raw, Object.fromEntries(components.map((w) => [w.component, { labels: w.template.metadata?.labels ?? {} }])));
  const cases = flowCases(r, net, components);
  const verdicts = new Map(cases.map((c) => [`${c.from.name}>${c.to.name}/${c.port}`, c.expected]));
  const expectAllowed = (flow: string, allowed: boolean) => assert.equal(verdicts.get(flow), allowed, `${flow} is a case expected ${allowed ? 'allowed' : 'denied'}`);
  const { postgresql, redis, synapseReplication } = r.stack.placement.ports;
  for (const pool of ['sync', 'initial-sync', 'client-reader', 'event-creator', 'federation-inbound', 'federation-reader', 'media-repository', 'stream-writer', 'user-directory']) {
    expectAllowed(`router>synapse-${pool}/8008`, true);
  }
  for (const pool of ['event-persister', 'federation-sender', 'pusher', 'background', 'appservice-notifier']) expectAllowed(`router>synapse-${pool}/8008`, false);
  for (const pool of ['sync', 'event-creator', 'federation-sender', 'pusher', 'background']) {
    expectAllowed(`synapse-${pool}>synapse/${synapseReplication}`, true);
    expectAllowed(`synapse-${pool}>synapse-event-persister/9093`, true);
    expectAllowed(`synapse-${pool}>synapse-stream-writer/9093`, true);
    expectAllowed(`synapse-${pool}>redis/${redis}`, true);
    expectAllowed(`synapse-${pool}>postgresql/${postgresql}`, true);
    expectAllowed(`synapse-${pool}>dns/53`, true);
    expectAllowed(`prometheus>synapse-${pool}/9000`, true);
    expectAllowed(`synapse-${pool}>internet/8448`, true);
    expectAllowed(`synapse-${pool}>synapse/8008`, false);
  }
  expectAllowed(`router>synapse/${synapseReplication}`, false);
  expectAllowed('router>synapse-event-persister/9093', false);
  expectAllowed(`synapse>synapse-event-persister/9093`, true);
  expectAllowed('synapse-stream-writer>synapse-event-persister/9093', true);
  expectAllowed('synapse-sync>synapse-client-reader/8008', false);
  const smtpPort = r.stack.values.synapse.server.email.smtpPort;
  expectAllowed(`synapse-pusher>smtp relay/${smtpPort}`, true);
  expectAllowed(`synapse-sync>smtp relay/${smtpPort}`, false);
  expectAllowed('synapse-media-repository>internet/80', true);
  expectAllowed('synapse>internet/80', false);
  expectAllowed('synapse>identity-provider/9091', true);
  expectAllowed('synapse-client-reader>identity-provider/9091', false);
  expectAllowed('router>redis/6379', false);
  // synapse.server.federation.ipRangeWhitelist: every process reaches the whitelisted private peer on the federation ports, nothing else does.
  for (const pool of ['', '-federation-sender', '-event-creator', '-federation-reader']) {
    expectAllowed(`synapse${pool}>private peer/8448`, true);
    expectAllowed(`synapse${pool}>private peer/443`, true);
  }
  expectAllowed('synapse-federation-sender>private peer/80', false);
  expectAllowed('router>private peer/8448', false);
  expectAllowed('synapse-federation-sender>cloud metadata/8448', false);
});

test('with 2FA the auth flows are among the cases checked: sign-in port from router and Synapse, admin port from nobody', () => {
  const r = renders.find((x) => x.stack.values.networkPolicy.enabled && x.stack.auth !== undefined && x.stack.database.provider === 'statefulset' && x.stack.values.postgresql.enabled);
  assert.ok(r, 'a fixture with 2FA and the release PostgreSQL');
  const components = workloads(r.objects);
  const net = releaseNetwork(r.stack, r.raw, Object.fromEntries(components.map((w) => [w.component, { labels: w.template.metadata?.labels ?? {} }])));
  const cases = flowCases(r, net, components);
  const allowed = new Set(cases.filter((c) => c.expected).map((c) => `${c.from.name}>${c.to.name}/${c.port}`));
  const { auth, authAdmin, postgresql } = r.stack.placement.ports;
  for (const flow of [`router>auth/${auth}`, `synapse>auth/${auth}`, `auth>postgresql/${postgresql}`, 'auth>dns/53']) assert.ok(allowed.has(flow), flow);
  const toAdmin = cases.filter((c) => c.to.name === 'auth' && c.port === authAdmin);
  assert.ok(toAdmin.length >= 5, 'the admin port is among the cases');
  assert.deepEqual(toAdmin.filter((c) => c.expected), [], 'nobody reaches the admin port over the network');
  assert.ok(!cases.some((c) => c.from.name === 'auth' && c.expected && !['postgresql', 'dns'].includes(c.to.name)), 'auth reaches only PostgreSQL and DNS');
});

test('the restricted-profile oracle flags the breaches it exists to catch', () => {
  const hardened: PlainPodSpec = {
    securityContext: { runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: 'RuntimeDefault' } },
    containers: [{ name: 'app', securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } } }],
  };
  assert.deepEqual(restrictedViolations(hardened), []);
  const breach = (change: (spec: PlainPodSpec) => void) => {
    const spec = structuredClone(hardened);
    change(spec);
    return restrictedViolations(spec).join('; ');
  };
  assert.match(breach((s) => (s.hostNetwork = true)), /hostNamespaces/);
  assert.match(breach((s) => (s.volumes = [{ name: 'h', hostPath: { path: '/' } }])), /restrictedVolumes/);
  assert.match(breach((s) => (s.securityContext!.runAsNonRoot = undefined)), /runAsNonRoot/);
  assert.match(breach((s) => (s.securityContext!.seccompProfile = undefined)), /seccompProfile/);
  assert.match(breach((s) => (s.securityContext!.runAsUser = 0)), /runAsUser/);
  assert.match(breach((s) => (s.containers[0]!.securityContext!.allowPrivilegeEscalation = undefined)), /allowPrivilegeEscalation/);
  assert.match(breach((s) => (s.containers[0]!.securityContext!.capabilities = { drop: ['NET_RAW'] })), /capabilities_restricted/);
  assert.match(breach((s) => (s.containers[0]!.securityContext!.capabilities = { drop: ['ALL'], add: ['NET_ADMIN'] })), /capabilities_restricted/);
  assert.equal(breach((s) => (s.containers[0]!.securityContext!.capabilities = { drop: ['ALL'], add: ['NET_BIND_SERVICE'] })), '');
  assert.match(breach((s) => (s.containers[0]!.securityContext!.privileged = true)), /privileged/);
  assert.match(breach((s) => (s.containers[0]!.ports = [{ containerPort: 80, hostPort: 80 }])), /hostPorts/);
  assert.match(breach((s) => (s.initContainers = [{ name: 'init' }])), /container init/);
  assert.match(breach((s) => (s.containers[0]!.securityContext!.seccompProfile = { type: 'Unconfined' })), /seccompProfile/);
});

/** Rules the API server applies beyond the OpenAPI schema (ValidateNetworkPolicySpec, ValidateIngressSpec). */
test('NetworkPolicies and Ingresses pass the API server\'s own validation rules', () => {
  const prefixOf = (cidr: string) => Number(cidr.split('/')[1]);
  const addressOf = (cidr: string) => cidr.split('/')[0] ?? '';
  // The API server parses with Go's net package, which reads an IPv4-mapped IPv6 address (::ffff:a.b.c.d,
  // ::ffff:0:0) as IPv4: such a block is never inside an IPv6 cidr.
  const ipv4Mapped = (cidr: string) => /^::ffff:(0:0|[0-9a-f]{1,4}:[0-9a-f]{1,4}|\d+\.\d+\.\d+\.\d+)$/i.test(addressOf(cidr));
  const dns1123Subdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
  for (const r of renders) {
    for (const policy of r.objects.filter((o) => o.kind === 'NetworkPolicy')) {
      const spec = policy.spec as { ingress?: { from?: Tree[]; ports?: Tree[] }[]; egress?: { to?: Tree[]; ports?: Tree[] }[] };
      const rules = [...(spec.ingress ?? []).map((x) => ({ peers: x.from, ports: x.ports })), ...(spec.egress ?? []).map((x) => ({ peers: x.to, ports: x.ports }))];
      for (const rule of rules) {
        for (const peer of rule.peers ?? []) {
          const block = peer.ipBlock as { cidr: string; except?: string[] } | undefined;
          if (!block) continue;
          assert.ok(!Number.isNaN(prefixOf(block.cidr)) && cidrContains(block.cidr, addressOf(block.cidr)), `${r.label}: ${id(policy)} cidr ${block.cidr}`);
          for (const except of block.except ?? []) {
            const inside = cidrContains(block.cidr, addressOf(except)) && !(ipv4Mapped(except) && block.cidr.includes(':'));
            assert.ok(inside && prefixOf(except) > prefixOf(block.cidr), `${r.label}: ${id(policy)}: except ${except} is not strictly inside ${block.cidr}`);
          }
        }
        for (const port of (rule.ports ?? []) as { port?: number | string; endPort?: number; protocol?: string }[]) {
          assert.ok(['TCP', 'UDP', 'SCTP'].includes(port.protocol ?? 'TCP'));
          if (typeof port.port === 'number') assert.ok(port.port >= 1 && port.port <= 65535, `${r.label}: ${id(policy)} port ${port.port}`);
          if (port.endPort !== undefined) assert.ok(typeof port.port === 'number' && port.endPort >= port.port, `${r.label}: ${id(policy)} endPort ${port.endPort}`);
        }
      }
    }
    for (const ingress of r.objects.filter((o) => o.kind === 'Ingress')) {
      const spec = ingress.spec as { rules: { host: string; http: { paths: { path: string }[] } }[]; tls?: { hosts: string[] }[] };
      for (const rule of spec.rules) {
        assert.match(rule.host, dns1123Subdomain, `${r.label}: ${id(ingress)} host`);
        for (const { path } of rule.http.paths) assert.ok(path.startsWith('/') && !path.includes('//'), `${r.label}: ${id(ingress)} path ${path}`);
      }
      for (const host of (spec.tls ?? []).flatMap((t) => t.hosts)) assert.ok(spec.rules.some((rule) => rule.host === host), `${r.label}: TLS host ${host} has no rule`);
    }
  }
});
