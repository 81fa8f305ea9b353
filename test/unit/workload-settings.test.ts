/**
 * The workload settings (src/values/workload.ts): the merge rule of global.workload and a component, and
 * every knob rendered on every workload of the stack through the real render step (kubernetes-models
 * validation included), with the refusals: a security context that breaks Pod Security "restricted", an
 * extraEnv name mxstack sets, labels mxstack owns, and the homeserver.yaml keys additionalConfig may not set.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadValues } from '../../src/values/load.js';
import { ValuesError } from '../../src/values/errors.js';
import { mergeWorkloadSettings, imageReference, type WorkloadLayer } from '../../src/values/workload.js';
import { compileKubernetesStack, renderKubernetesObjects } from '../../src/targets/kubernetes/render.js';
import { toPlainSorted } from '../../src/kit/sorted-json.js';
import { restrictedProfileViolations } from '../../src/kit/pod-security.js';

type Tree = Record<string, unknown>;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Plain = any;

const render = (base: Tree): Plain[] => renderKubernetesObjects(compileKubernetesStack(loadValues({ base }), { release: 'mx', namespace: 'matrix' })).map((o) => toPlainSorted(o));

function refusal(base: Tree): string {
  try {
    render(base);
  } catch (error) {
    assert.ok(error instanceof ValuesError, `a ValuesError, got ${(error as Error).message}`);
    return error.problems.join('\n');
  }
  assert.fail('the values were accepted');
}

/** Every workload group, the object it renders, and values that make it render. */
const workloads: { group: string; kind: string; name: string }[] = [
  { group: 'synapse', kind: 'Deployment', name: 'mx-synapse' },
  { group: 'element', kind: 'Deployment', name: 'mx-element' },
  { group: 'router', kind: 'Deployment', name: 'mx-router' },
  { group: 'coturn', kind: 'Deployment', name: 'mx-coturn' },
  { group: 'auth', kind: 'Deployment', name: 'mx-auth' },
  { group: 'postgresql', kind: 'StatefulSet', name: 'mx-postgresql' },
  { group: 'adminBootstrap', kind: 'Job', name: 'mx-admin-bootstrap' },
  { group: 'backup', kind: 'CronJob', name: 'mx-backup' },
];

const everyWorkload: Tree = { synapse: { server: { name: 'example.com', mfa: { totp: { enabled: true } } } }, backup: { schedule: '0 3 * * *' } };

const digest = `sha256:${'ab'.repeat(32)}`;

/** One of every knob, as a component (or global.workload) would write it. */
const knobs: Tree = {
  imagePullSecrets: [{ name: 'pull-secret' }],
  nodeSelector: { pool: 'matrix' },
  tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'matrix', effect: 'NoSchedule' }],
  affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'zone', operator: 'In', values: ['a', 'b'] }] }] } } },
  topologySpreadConstraints: [{ maxSkew: 1, topologyKey: 'topology.kubernetes.io/zone', whenUnsatisfiable: 'DoNotSchedule' }],
  priorityClassName: 'matrix-high',
  schedulerName: 'matrix-scheduler',
  runtimeClassName: 'gvisor',
  podLabels: { team: 'chat' },
  podAnnotations: { 'example.com/pod': 'yes' },
  labels: { 'example.com/owner': 'platform' },
  annotations: { 'example.com/workload': 'yes' },
  podSecurityContext: { supplementalGroups: [4000] },
  containerSecurityContext: { seLinuxOptions: { level: 's0:c123,c456' } },
  hostAliases: [{ ip: '198.18.0.10', hostnames: ['ldap.internal'] }],
  terminationGracePeriodSeconds: 77,
  extraEnv: [{ name: 'HTTPS_PROXY', value: 'http://proxy.internal:3128' }],
  extraVolumes: [{ name: 'extra-ca', configMap: { name: 'corporate-ca' } }],
  extraVolumeMounts: [{ name: 'extra-ca', mountPath: '/extra-ca', readOnly: true }],
  extraInitContainers: [{ name: 'wait-init', image: 'busybox:1.36', command: ['true'] }],
  extraContainers: [{ name: 'log-shipper', image: 'busybox:1.36', command: ['sleep', 'infinity'] }],
  livenessProbe: { periodSeconds: 33 },
  readinessProbe: { timeoutSeconds: 9 },
  startupProbe: { failureThreshold: 99 },
};

const componentOnly: Tree = {
  image: { registry: 'registry.example.com/mirror', digest },
  serviceAccount: { create: true, name: 'matrix-workload', annotations: { 'iam.gke.io/gcp-service-account': 'matrix@example.iam' }, automountServiceAccountToken: true },
};

function podOf(object: Plain): { metadata: Plain; spec: Plain } {
  if (object.kind === 'CronJob') return object.spec.jobTemplate.spec.template;
  return object.spec.template;
}

function assertEveryKnob(objects: Plain[], group: string, kind: string, name: string, ownContainers: string[]): void {
  const object = objects.find((o) => o.kind === kind && o.metadata.name === name);
  assert.ok(object, `${group}: ${kind}/${name} is rendered`);
  const { metadata, spec } = podOf(object);
  const at = `${group} (${kind}/${name})`;
  assert.equal(object.metadata.labels['example.com/owner'], 'platform', `${at}: workload label`);
  assert.equal(object.metadata.annotations['example.com/workload'], 'yes', `${at}: workload annotation`);
  assert.equal(metadata.labels.team, 'chat', `${at}: pod label`);
  assert.equal(metadata.labels['app.kubernetes.io/instance'], 'mx', `${at}: mxstack's labels stay`);
  assert.equal(metadata.annotations['example.com/pod'], 'yes', `${at}: pod annotation`);
  assert.deepEqual(spec.imagePullSecrets, [{ name: 'pull-secret' }], at);
  assert.deepEqual(spec.nodeSelector, { pool: 'matrix' }, at);
  assert.deepEqual(spec.tolerations, knobs.tolerations, at);
  assert.deepEqual(spec.affinity, knobs.affinity, at);
  assert.equal(spec.topologySpreadConstraints[0].topologyKey, 'topology.kubernetes.io/zone', at);
  assert.equal(spec.topologySpreadConstraints[0].labelSelector.matchLabels['app.kubernetes.io/instance'], 'mx', `${at}: a constraint without selector selects the component's pods`);
  assert.equal(spec.priorityClassName, 'matrix-high', at);
  assert.equal(spec.schedulerName, 'matrix-scheduler', at);
  assert.equal(spec.runtimeClassName, 'gvisor', at);
  assert.deepEqual(spec.hostAliases, knobs.hostAliases, at);
  assert.equal(spec.terminationGracePeriodSeconds, 77, at);
  assert.deepEqual(spec.securityContext.supplementalGroups, [4000], at);
  assert.equal(spec.securityContext.runAsNonRoot, true, `${at}: the hardened pod context stays under the override`);
  assert.equal(spec.serviceAccountName, 'matrix-workload', at);
  assert.equal(spec.automountServiceAccountToken, true, `${at}: the token only when asked`);
  assert.ok(spec.volumes.some((v: Plain) => v.name === 'extra-ca' && v.configMap.name === 'corporate-ca'), `${at}: extra volume`);
  assert.equal(spec.initContainers[0].name, 'wait-init', `${at}: extra init containers run first`);
  assert.ok(spec.containers.some((c: Plain) => c.name === 'log-shipper'), `${at}: sidecar`);
  for (const extra of [spec.initContainers[0], spec.containers.find((c: Plain) => c.name === 'log-shipper')]) {
    assert.equal(extra.securityContext.allowPrivilegeEscalation, false, `${at}: ${extra.name} gets the hardened context`);
    assert.deepEqual(extra.securityContext.capabilities.drop, ['ALL'], at);
  }
  const own = [...(spec.initContainers ?? []), ...spec.containers].filter((c: Plain) => ownContainers.includes(c.name));
  assert.equal(own.length, ownContainers.length, `${at}: mxstack's containers ${ownContainers.join(', ')}`);
  for (const container of own) {
    assert.equal(container.image.startsWith('registry.example.com/mirror/'), true, `${at}: ${container.name} image ${container.image}`);
    assert.ok(container.image.endsWith(`@${digest}`), `${at}: the digest wins over the tag (${container.image})`);
    assert.ok(container.env.some((e: Plain) => e.name === 'HTTPS_PROXY'), `${at}: ${container.name} extra env`);
    assert.ok(container.volumeMounts.some((m: Plain) => m.mountPath === '/extra-ca'), `${at}: ${container.name} extra mount`);
    assert.equal(container.securityContext.seLinuxOptions.level, 's0:c123,c456', `${at}: ${container.name} context override`);
    assert.equal(container.securityContext.readOnlyRootFilesystem, true, `${at}: ${container.name} keeps its hardening`);
    if (container.livenessProbe) assert.equal(container.livenessProbe.periodSeconds, 33, `${at}: liveness timing`);
    if (container.readinessProbe) assert.equal(container.readinessProbe.timeoutSeconds, 9, `${at}: readiness timing`);
    if (container.startupProbe) assert.equal(container.startupProbe.failureThreshold, 99, `${at}: startup timing`);
  }
  assert.deepEqual(restrictedProfileViolations(spec), [], `${at}: still Pod Security "restricted"`);
  const account = objects.find((o) => o.kind === 'ServiceAccount' && o.metadata.name === 'matrix-workload' && o.metadata.labels['app.kubernetes.io/name'] === metadata.labels['app.kubernetes.io/name']);
  assert.ok(account, `${at}: its ServiceAccount`);
  assert.equal(account.metadata.annotations['iam.gke.io/gcp-service-account'], 'matrix@example.iam', at);
  assert.equal(account.automountServiceAccountToken, true, at);
}

const ownContainersOf: Record<string, string[]> = {
  synapse: ['synapse'],
  element: ['element'],
  router: ['haproxy'],
  coturn: ['assemble-config', 'coturn'],
  auth: ['auth'],
  postgresql: ['postgresql'],
  adminBootstrap: ['register-admin'],
  backup: ['pg-dump'],
};

for (const { group, kind, name } of workloads) {
  test(`every knob renders on ${group} (${kind}), set on the component`, () => {
    const base = structuredClone(everyWorkload);
    base[group] = { ...((base[group] as Tree | undefined) ?? {}), ...structuredClone(knobs), ...structuredClone(componentOnly) };
    assertEveryKnob(render(base), group, kind, name, ownContainersOf[group]!);
  });
}

test('every knob set once in global.workload reaches every workload', () => {
  const base: Tree = structuredClone(everyWorkload);
  base.global = { workload: { ...structuredClone(knobs), image: { registry: 'registry.example.com/mirror', pullPolicy: 'Always' } } };
  const objects = render(base);
  for (const { kind, name } of workloads) {
    const object = objects.find((o) => o.kind === kind && o.metadata.name === name);
    const { spec } = podOf(object);
    assert.deepEqual(spec.nodeSelector, { pool: 'matrix' }, name);
    assert.equal(spec.priorityClassName, 'matrix-high', name);
    assert.ok(spec.containers.some((c: Plain) => c.name === 'log-shipper'), name);
    for (const container of spec.containers.filter((c: Plain) => c.name !== 'log-shipper')) {
      assert.ok(container.image.startsWith('registry.example.com/mirror/'), `${name}: ${container.image}`);
      assert.equal(container.imagePullPolicy, 'Always', name);
    }
    // No ServiceAccount asked for: the namespace's default, without a token.
    assert.equal(spec.serviceAccountName, name === 'mx-synapse' ? 'mx-synapse' : 'default', name);
    assert.equal(spec.automountServiceAccountToken, false, name);
  }
});

test('component settings override global.workload by the documented rule', () => {
  const base: Tree = structuredClone(everyWorkload);
  base.global = { workload: { nodeSelector: { pool: 'matrix', disk: 'ssd' }, tolerations: [{ key: 'global', operator: 'Exists' }], extraEnv: [{ name: 'A', value: 'global' }, { name: 'B', value: 'global' }], priorityClassName: 'low' } };
  (base.synapse as Tree).nodeSelector = { pool: 'synapse' };
  (base.synapse as Tree).tolerations = [{ key: 'synapse', operator: 'Exists' }];
  (base.synapse as Tree).extraEnv = [{ name: 'B', value: 'synapse' }];
  const objects = render(base);
  const synapse = podOf(objects.find((o) => o.metadata.name === 'mx-synapse' && o.kind === 'Deployment')).spec;
  assert.deepEqual(synapse.nodeSelector, { pool: 'synapse', disk: 'ssd' }, 'maps merge key by key');
  assert.deepEqual(synapse.tolerations, [{ key: 'synapse', operator: 'Exists' }], 'scheduling lists are replaced');
  const env = synapse.containers[0].env.filter((e: Plain) => ['A', 'B'].includes(e.name));
  assert.deepEqual(env, [{ name: 'A', value: 'global' }, { name: 'B', value: 'synapse' }], 'extension lists add up, the component wins by name');
  assert.equal(synapse.priorityClassName, 'low', 'unset in the component: inherited');
  const router = podOf(objects.find((o) => o.metadata.name === 'mx-router' && o.kind === 'Deployment')).spec;
  assert.deepEqual(router.nodeSelector, { pool: 'matrix', disk: 'ssd' });
});

test('mergeWorkloadSettings: the one rule, as a pure function', () => {
  const global: WorkloadLayer = {
    image: { registry: 'global.example', pullPolicy: 'Always' },
    imagePullSecrets: [{ name: 'a' }, { name: 'b' }],
    nodeSelector: { x: '1', y: '1' },
    tolerations: [{ key: 'g' }],
    podSecurityContext: { seccompProfile: { type: 'RuntimeDefault' }, supplementalGroups: [1] },
    extraVolumeMounts: [{ name: 'v', mountPath: '/a' }],
    terminationGracePeriodSeconds: 10,
  };
  const component: WorkloadLayer = {
    image: { repository: 'r', tag: 't' },
    imagePullSecrets: [{ name: 'b' }, { name: 'c' }],
    nodeSelector: { y: '2' },
    tolerations: [],
    podSecurityContext: { seccompProfile: { type: 'Localhost', localhostProfile: 'p' } },
    extraVolumeMounts: [{ name: 'w', mountPath: '/a' }, { name: 'w', mountPath: '/b' }],
  };
  const before = structuredClone({ global, component });
  const merged = mergeWorkloadSettings(global, component);
  assert.deepEqual(merged, {
    image: { registry: 'global.example', pullPolicy: 'Always', repository: 'r', tag: 't' },
    imagePullSecrets: [{ name: 'a' }, { name: 'b' }, { name: 'c' }],
    nodeSelector: { x: '1', y: '2' },
    tolerations: [],
    podSecurityContext: { seccompProfile: { type: 'Localhost', localhostProfile: 'p' }, supplementalGroups: [1] },
    extraVolumeMounts: [{ name: 'w', mountPath: '/a' }, { name: 'w', mountPath: '/b' }],
    terminationGracePeriodSeconds: 10,
  });
  assert.deepEqual({ global, component }, before, 'the inputs are not changed');
  assert.deepEqual(mergeWorkloadSettings({}, {}), {});
  assert.deepEqual(mergeWorkloadSettings(global, {}), global);
});

test('image references: registry in front, digest over tag', () => {
  assert.equal(imageReference({ repository: 'ghcr.io/element-hq/synapse', tag: 'v1' }), 'ghcr.io/element-hq/synapse:v1');
  assert.equal(imageReference({ registry: 'mirror.example/', repository: 'postgres', tag: '18' }), 'mirror.example/postgres:18');
  assert.equal(imageReference({ repository: 'postgres', tag: '18', digest }), `postgres@${digest}`);
});

test('components with several replicas spread over nodes by default; one replica gets no constraint', () => {
  const objects = render({ synapse: { server: { name: 'example.com' } } });
  const router = podOf(objects.find((o) => o.kind === 'Deployment' && o.metadata.name === 'mx-router')).spec;
  assert.deepEqual(router.topologySpreadConstraints, [
    { labelSelector: { matchLabels: { 'app.kubernetes.io/instance': 'mx', 'app.kubernetes.io/name': 'router' } }, maxSkew: 1, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'ScheduleAnyway' },
  ]);
  const synapse = podOf(objects.find((o) => o.kind === 'Deployment' && o.metadata.name === 'mx-synapse')).spec;
  assert.equal(synapse.topologySpreadConstraints, undefined);
});

test('the old chart\'s keys keep working: top-level scheduling and a component\'s securityContext', () => {
  const objects = render({
    synapse: { server: { name: 'example.com' }, securityContext: { runAsUser: 991 }, extraConfig: { presence: { enabled: false } } },
    nodeSelector: { 'kubernetes.io/os': 'linux' },
    tolerations: [{ key: 'dedicated', operator: 'Exists' }],
  });
  const synapse = podOf(objects.find((o) => o.kind === 'Deployment' && o.metadata.name === 'mx-synapse')).spec;
  assert.deepEqual(synapse.nodeSelector, { 'kubernetes.io/os': 'linux' });
  assert.deepEqual(synapse.tolerations, [{ key: 'dedicated', operator: 'Exists' }]);
  assert.equal(synapse.containers[0].securityContext.runAsUser, 991);
  const homeserver = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'mx-synapse').data['homeserver.yaml'];
  assert.match(homeserver, /presence:\n\s+enabled: false/);
});

test('the old securityContext spelling counts in every workload group, Redis\'s too (the list of groups is values/workload.ts\'s)', () => {
  const objects = render({
    synapse: { server: { name: 'example.com' }, workers: { preset: 'small' } },
    redis: { securityContext: { runAsUser: 1999 } },
  });
  const redis = podOf(objects.find((o) => o.kind === 'Deployment' && o.metadata.name === 'mx-redis')).spec;
  assert.equal(redis.containers[0].securityContext.runAsUser, 1999);
});

// ---------------------------------------------------------------- refusals

const server = { name: 'example.com' };

test('a security context that breaks Pod Security "restricted" is refused with the reason, naming the values path', () => {
  const cases: [Tree, RegExp][] = [
    [{ synapse: { server, containerSecurityContext: { privileged: true } } }, /^synapse\.containerSecurityContext: container synapse is privileged .*restricted/m],
    [{ synapse: { server, containerSecurityContext: { allowPrivilegeEscalation: true } } }, /^synapse\.containerSecurityContext: .*allowPrivilegeEscalation/m],
    [{ synapse: { server }, router: { containerSecurityContext: { capabilities: { add: ['NET_ADMIN'] } } } }, /^router\.containerSecurityContext: .*adds capability NET_ADMIN/m],
    [{ synapse: { server }, element: { podSecurityContext: { runAsUser: 0 } } }, /^element\.podSecurityContext: pod runAsUser is 0/m],
    [{ synapse: { server }, global: { workload: { podSecurityContext: { seccompProfile: { type: 'Unconfined' } } } } }, /^global\.workload\.podSecurityContext: pod seccompProfile is Unconfined/m],
    [{ synapse: { server, containerSecurityContext: { readOnlyRootFilesystem: false } } }, /^synapse\.containerSecurityContext: readOnlyRootFilesystem must stay true/m],
    [{ synapse: { server, extraContainers: [{ name: 'rooty', image: 'busybox', securityContext: { runAsUser: 0 } }] } }, /^synapse\.extraContainers \(rooty\)\.securityContext: container rooty: runAsUser is 0/m],
    [{ synapse: { server, extraVolumes: [{ name: 'host', hostPath: { path: '/' } }] } }, /^synapse\.extraVolumes: volume host uses hostPath/m],
  ];
  for (const [values, expected] of cases) assert.match(refusal(values), expected, JSON.stringify(values));
});

test('extraEnv names mxstack sets, its volume names and mount paths, and its labels are refused', () => {
  assert.match(refusal({ synapse: { server }, postgresql: { extraEnv: [{ name: 'POSTGRES_PASSWORD_FILE', value: '/x' }] } }), /^postgresql\.extraEnv: POSTGRES_PASSWORD_FILE is set by mxstack/m);
  assert.match(refusal({ synapse: { server }, backup: { schedule: '0 3 * * *', extraEnv: [{ name: 'PGHOST', value: 'elsewhere' }] } }), /^backup\.extraEnv: PGHOST is set by mxstack/m);
  assert.match(refusal({ synapse: { server }, global: { workload: { extraEnv: [{ name: 'ELEMENT_WEB_PORT', value: '1' }] } } }), /^global\.workload\.extraEnv: ELEMENT_WEB_PORT/m);
  assert.match(refusal({ synapse: { server, extraVolumes: [{ name: 'secrets', emptyDir: {} }] } }), /^synapse\.extraVolumes: the volume name secrets is mxstack's/m);
  assert.match(refusal({ synapse: { server, extraVolumes: [{ name: 'x', emptyDir: {} }], extraVolumeMounts: [{ name: 'x', mountPath: '/config' }] } }), /^synapse\.extraVolumeMounts: \/config is already mounted/m);
  assert.match(refusal({ synapse: { server, podLabels: { 'app.kubernetes.io/name': 'other' } } }), /^synapse\.podLabels: app\.kubernetes\.io\/name is set by mxstack/m);
});

test('synapse.additionalConfig merges into homeserver.yaml and refuses each key mxstack owns with one sentence', () => {
  const objects = render({ synapse: { server, additionalConfig: { presence: { enabled: false }, max_event_delay_duration: '24h' } } });
  const homeserver = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'mx-synapse').data['homeserver.yaml'];
  assert.match(homeserver, /max_event_delay_duration: 24h/);
  const owned: [string, RegExp][] = [
    ['listeners', /listeners.*synapse\.service/],
    ['database', /database.*synapse\.database/],
    ['macaroon_secret_key', /secrets never go into homeserver\.yaml/],
    ['registration_shared_secret_path', /secrets never go into homeserver\.yaml/],
    ['signing_key_path', /signing key.*synapse\.signingKey\.existingSecret/],
    ['instance_map', /workers are wired by mxstack/],
    ['stream_writers', /workers are wired by mxstack/],
  ];
  for (const [key, reason] of owned) {
    const problems = refusal({ synapse: { server, additionalConfig: { [key]: {} } } });
    assert.equal(problems.split('\n').length, 1, key);
    assert.match(problems, new RegExp(`^synapse\\.additionalConfig\\.${key}: `), key);
    assert.match(problems, reason, key);
  }
  // The old spelling is refused the same way (it is the same key).
  assert.match(refusal({ synapse: { server, extraConfig: { listeners: [] } } }), /^synapse\.additionalConfig\.listeners: /m);
});

test('workload labels and annotations reach Redis and every worker pool (StatefulSet, Deployment), global and per component', () => {
  const workers: Tree = { server: { name: 'example.com' }, workers: { preset: 'large', pools: { sync: { autoscaling: { enabled: true } } } } };
  const expectations = [
    { label: 'example.com/owner', annotation: 'example.com/workload', where: 'global.workload' },
    { label: 'example.com/synapse-owner', annotation: 'example.com/synapse-workload', where: 'synapse' },
    { label: 'example.com/redis-owner', annotation: 'example.com/redis-workload', where: 'redis' },
  ];
  const objects = render({
    global: { commonLabels: { 'example.com/release': 'matrix' }, workload: { labels: { 'example.com/owner': 'platform' }, annotations: { 'example.com/workload': 'yes' }, podLabels: { team: 'chat' } } },
    synapse: { ...workers, labels: { 'example.com/synapse-owner': 'synapse' }, annotations: { 'example.com/synapse-workload': 'yes' } },
    redis: { labels: { 'example.com/redis-owner': 'redis' }, annotations: { 'example.com/redis-workload': 'yes' } },
  });
  const workloadsOf = (prefix: string) => objects.filter((o) => ['Deployment', 'StatefulSet'].includes(o.kind) && o.metadata.name.startsWith(prefix));
  const redis = workloadsOf('mx-redis');
  const pools = workloadsOf('mx-synapse-');
  assert.equal(redis.length, 1, 'Redis runs');
  assert.ok(pools.some((o) => o.kind === 'StatefulSet') && pools.some((o) => o.kind === 'Deployment'), `named and nameless pools: ${pools.map((o) => o.metadata.name).join(', ')}`);
  const check = (object: Plain, own: 'synapse' | 'redis') => {
    const at = `${object.kind}/${object.metadata.name}`;
    for (const { label, annotation, where } of expectations) {
      const expected = where === 'global.workload' || where === own;
      assert.equal(label in (object.metadata.labels ?? {}), expected, `${at}: label of ${where} ${expected ? 'present' : 'absent'}`);
      assert.equal(annotation in (object.metadata.annotations ?? {}), expected, `${at}: annotation of ${where} ${expected ? 'present' : 'absent'}`);
    }
    assert.equal(object.metadata.labels['app.kubernetes.io/instance'], 'mx', `${at}: mxstack's labels stay`);
    assert.equal(object.spec.template.metadata.labels.team, 'chat', `${at}: pod label`);
  };
  for (const object of redis) check(object, 'redis');
  for (const object of pools) check(object, 'synapse');
  // Services, autoscalers and budgets carry the release-wide commonLabels, like every other component's.
  for (const object of objects.filter((o) => o.metadata.name.startsWith('mx-synapse-') || o.metadata.name.startsWith('mx-redis'))) {
    assert.equal(object.metadata.labels['example.com/release'], 'matrix', `${object.kind}/${object.metadata.name}: commonLabels`);
  }
  assert.ok(objects.some((o) => o.kind === 'HorizontalPodAutoscaler'), 'an autoscaled pool');
  assert.ok(objects.some((o) => o.kind === 'PodDisruptionBudget' && o.metadata.name.startsWith('mx-synapse-')), 'a pool budget');
});
