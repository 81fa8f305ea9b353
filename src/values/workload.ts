/**
 * Workload settings: ONE sub-schema shared by every workload of the stack (Synapse, PostgreSQL, Element,
 * coturn, the router, the auth component, the admin and backup Jobs, and any future worker pool), with a
 * release-wide default under `global.workload` and a per-component override in the component's own group.
 * `mergeWorkloadSettings` is the one rule that combines the two; the component kit applies the result to
 * the pod and workload objects.
 */
import { Type, type TSchema } from '@sinclair/typebox';
import { bool, freeform, group, item, optStr, str, strEnum, stringMap } from './schema-builders.js';
import type { Values } from './schema.js';

type Tree = Record<string, unknown>;
const isTree = (value: unknown): value is Tree => value !== null && typeof value === 'object' && !Array.isArray(value);

/** A Kubernetes object in values (a toleration, a Volume, a Container...): validated at render time against the Kubernetes schema. */
const kubernetesList = (description: string) => Type.Optional(Type.Array(freeform('One entry, in the Kubernetes shape.') as TSchema, { description }));
const kubernetesObject = (description: string) => Type.Optional(Type.Unsafe<Tree>({ type: 'object', description }));
const optMap = (description: string) => Type.Optional(Type.Record(Type.String(), Type.String(), { description }));
const optPositive = (description: string, minimum = 0) => Type.Optional(Type.Integer({ description, minimum }));

const probeTiming = (which: string) =>
  Type.Optional(
    item(`Timing of the ${which} probe, over mxstack's (what it checks stays mxstack's).`, {
      initialDelaySeconds: optPositive('Seconds before the first check.'),
      periodSeconds: optPositive('Seconds between checks.', 1),
      timeoutSeconds: optPositive('Seconds a check may take.', 1),
      failureThreshold: optPositive('Failed checks in a row before acting.', 1),
    }),
  );

const pullPolicies = ['Always', 'IfNotPresent', 'Never'] as const;

/** The keys both layers (global.workload and each component) have. */
function sharedWorkloadProperties() {
  return {
    imagePullSecrets: Type.Optional(
      Type.Array(item('A Secret of type kubernetes.io/dockerconfigjson.', { name: str('Secret name.') }), {
        description: 'Secrets the kubelet pulls images with (global and component lists add up).',
      }),
    ),
    nodeSelector: optMap('Node labels the pods must run on (global and component maps merge, the component\'s key wins).'),
    tolerations: kubernetesList('Tolerations of the pods (a component\'s list replaces the global one).'),
    affinity: kubernetesObject('Affinity of the pods (a component\'s replaces the global one).'),
    topologySpreadConstraints: kubernetesList(
      'How the pods spread over nodes and zones (a component\'s list replaces the global one). An entry without labelSelector selects the component\'s own pods. Default for a component with several replicas: spread over nodes (kubernetes.io/hostname), maxSkew 1, ScheduleAnyway.',
    ),
    priorityClassName: optStr('PriorityClass of the pods.'),
    schedulerName: optStr('Scheduler of the pods.'),
    runtimeClassName: optStr('RuntimeClass of the pods (gVisor, Kata...).'),
    podLabels: optMap('Extra labels on the pods (the app.kubernetes.io/ labels mxstack sets are refused: Services select pods by them).'),
    podAnnotations: optMap('Extra annotations on the pods.'),
    labels: optMap('Extra labels on the workload object (Deployment, StatefulSet, Job, CronJob).'),
    annotations: optMap('Extra annotations on the workload object (Deployment, StatefulSet, Job, CronJob).'),
    podSecurityContext: kubernetesObject(
      'Pod security context merged over the hardened default. It can only tighten it: a value that breaks Pod Security "restricted" (runAsNonRoot false, runAsUser 0, seccomp Unconfined, unsafe sysctls) is refused with the reason.',
    ),
    containerSecurityContext: kubernetesObject(
      'Security context of mxstack\'s containers, merged over the hardened default. It can only tighten it: privileged, allowPrivilegeEscalation, added capabilities, runAsUser 0, a writable root filesystem and the like are refused with the reason.',
    ),
    hostAliases: kubernetesList('Extra /etc/hosts entries of the pods ({ip, hostnames}; global and component lists add up).'),
    terminationGracePeriodSeconds: optPositive('Seconds a pod gets to stop before it is killed (default: the component\'s own).'),
    extraEnv: kubernetesList(
      'Extra environment variables of mxstack\'s containers ({name, value} or {name, valueFrom}); a name mxstack sets itself is refused. Global and component lists add up, the component\'s entry wins for the same name.',
    ),
    extraVolumes: kubernetesList('Extra volumes of the pods (only the kinds Pod Security "restricted" allows; global and component lists add up by name).'),
    extraVolumeMounts: kubernetesList('Extra mounts of the extraVolumes in mxstack\'s containers (global and component lists add up by mountPath).'),
    extraInitContainers: kubernetesList('Containers run before mxstack\'s, in order; each gets the hardened security context under its own (global and component lists add up by name).'),
    extraContainers: kubernetesList('Sidecar containers beside mxstack\'s; each gets the hardened security context under its own (global and component lists add up by name).'),
    livenessProbe: probeTiming('liveness'),
    readinessProbe: probeTiming('readiness'),
    startupProbe: probeTiming('startup'),
  };
}

/** `global.workload`: the release-wide defaults of every workload. */
export function globalWorkloadSchema() {
  return group('Defaults for every workload (Deployments, StatefulSets, Jobs, CronJobs); each component group has the same keys to override them (docs/kubernetes.md "Fitting the cluster").', {
    image: group('Image defaults of every component.', {
      registry: optStr('Registry (or mirror prefix) put in front of every repository: `<registry>/<repository>`. The default repositories carry their own host, so a mirror sees e.g. `<registry>/ghcr.io/element-hq/synapse`.'),
      pullPolicy: strEnum('When the kubelet pulls images.', pullPolicies, 'IfNotPresent'),
    }),
    ...sharedWorkloadProperties(),
  });
}

/** A component's image: its repository and tag, the registry and pull policy default to global.workload.image. */
export function componentImageSchema(defaults: { repository: string; tag: string } | undefined) {
  const description = defaults ? 'Container image.' : 'Container image (default: the image of the component whose program it runs).';
  return group(description, {
    registry: optStr('Registry put in front of the repository (default global.workload.image.registry).'),
    repository: defaults ? str('Image repository.', defaults.repository) : optStr('Image repository.'),
    tag: defaults ? str('Image tag (pinned to the version mxstack tests).', defaults.tag) : optStr('Image tag.'),
    digest: optStr('Image digest (sha256:...); when set it wins over the tag.', { pattern: '^[A-Za-z0-9_+.-]+:[A-Fa-f0-9]{32,}$' }),
    pullPolicy: Type.Optional(Type.Unsafe<string>({ type: 'string', enum: [...pullPolicies], description: 'When the kubelet pulls the image (default global.workload.image.pullPolicy).' })),
  });
}

/** A component's service account. */
export function serviceAccountSchema(createByDefault: boolean, defaultName: string) {
  return group('Service account of the pods.', {
    create: bool('Create a dedicated ServiceAccount.', createByDefault),
    name: optStr(`Name of the ServiceAccount (default ${defaultName} when created, else the namespace's "default").`),
    annotations: stringMap('Annotations on the ServiceAccount (e.g. a cloud workload identity).'),
    automountServiceAccountToken: bool('Mount an API token into the pods (mxstack\'s programs never call the Kubernetes API: keep false unless a sidecar needs it).', false),
  });
}

/** Marks a component's copy of a shared key, so docs/values.md documents the sub-schema once (under global.workload). */
export const workloadSettingMarker = 'x-mxstack-workload-setting';

/** The per-component keys: the shared ones (no defaults: unset inherits global.workload). */
export function componentWorkloadProperties(): ReturnType<typeof sharedWorkloadProperties> {
  const shared = sharedWorkloadProperties();
  return Object.fromEntries(Object.entries(shared).map(([key, schema]) => [key, { ...schema, [workloadSettingMarker]: true }])) as unknown as ReturnType<typeof sharedWorkloadProperties>;
}

export interface ProbeTimingValues {
  initialDelaySeconds?: number;
  periodSeconds?: number;
  timeoutSeconds?: number;
  failureThreshold?: number;
}

export interface ImageValues {
  registry?: string;
  repository?: string;
  tag?: string;
  digest?: string;
  pullPolicy?: string;
}

/** One layer of workload settings as written in values (every key optional). */
export interface WorkloadLayer {
  image?: ImageValues;
  imagePullSecrets?: { name: string }[];
  nodeSelector?: Record<string, string>;
  tolerations?: Tree[];
  affinity?: Tree;
  topologySpreadConstraints?: Tree[];
  priorityClassName?: string;
  schedulerName?: string;
  runtimeClassName?: string;
  podLabels?: Record<string, string>;
  podAnnotations?: Record<string, string>;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  podSecurityContext?: Tree;
  containerSecurityContext?: Tree;
  hostAliases?: Tree[];
  terminationGracePeriodSeconds?: number;
  extraEnv?: Tree[];
  extraVolumes?: Tree[];
  extraVolumeMounts?: Tree[];
  extraInitContainers?: Tree[];
  extraContainers?: Tree[];
  livenessProbe?: ProbeTimingValues;
  readinessProbe?: ProbeTimingValues;
  startupProbe?: ProbeTimingValues;
}

export type WorkloadKey = keyof WorkloadLayer;

/**
 * How each key of the two layers combines, in one table:
 * - `merge`: mappings merge key by key, the component's key wins (deeply for security contexts and probes);
 * - `join`: lists add up, the component's entry replacing a global one with the same identity;
 * - `replace`: the component's value, when it has one, replaces the global one whole (scheduling decisions).
 */
const mergeRules: Record<WorkloadKey, { rule: 'merge' } | { rule: 'join'; identity: string } | { rule: 'replace' }> = {
  image: { rule: 'merge' },
  imagePullSecrets: { rule: 'join', identity: 'name' },
  nodeSelector: { rule: 'merge' },
  tolerations: { rule: 'replace' },
  affinity: { rule: 'replace' },
  topologySpreadConstraints: { rule: 'replace' },
  priorityClassName: { rule: 'replace' },
  schedulerName: { rule: 'replace' },
  runtimeClassName: { rule: 'replace' },
  podLabels: { rule: 'merge' },
  podAnnotations: { rule: 'merge' },
  labels: { rule: 'merge' },
  annotations: { rule: 'merge' },
  podSecurityContext: { rule: 'merge' },
  containerSecurityContext: { rule: 'merge' },
  hostAliases: { rule: 'join', identity: 'ip' },
  terminationGracePeriodSeconds: { rule: 'replace' },
  extraEnv: { rule: 'join', identity: 'name' },
  extraVolumes: { rule: 'join', identity: 'name' },
  extraVolumeMounts: { rule: 'join', identity: 'mountPath' },
  extraInitContainers: { rule: 'join', identity: 'name' },
  extraContainers: { rule: 'join', identity: 'name' },
  livenessProbe: { rule: 'merge' },
  readinessProbe: { rule: 'merge' },
  startupProbe: { rule: 'merge' },
};

export const workloadKeys = Object.keys(mergeRules) as WorkloadKey[];

/** Deep merge of plain mappings: `over` wins; lists and scalars are replaced whole. */
export function deepMergeMappings(under: Tree, over: Tree): Tree {
  const merged: Tree = { ...under };
  for (const [key, value] of Object.entries(over)) {
    if (value === undefined) continue;
    merged[key] = isTree(value) && isTree(merged[key]) ? deepMergeMappings(merged[key] as Tree, value) : structuredClone(value);
  }
  return merged;
}

/** Lists joined: every entry of `under` not replaced by an entry of `over` with the same identity, then `over`'s. */
function joinByIdentity(under: Tree[], over: Tree[], identity: string): Tree[] {
  const replaced = new Set(over.map((entry) => entry[identity]));
  return [...under.filter((entry) => !replaced.has(entry[identity])), ...over].map((entry) => structuredClone(entry));
}

/** The effective settings of one workload: `component` over `global`, key by key as mergeRules says. Pure. */
export function mergeWorkloadSettings(global: WorkloadLayer, component: WorkloadLayer): WorkloadLayer {
  const merged: Record<string, unknown> = {};
  for (const key of workloadKeys) {
    const under = global[key] as unknown;
    const over = component[key] as unknown;
    const rule = mergeRules[key];
    let value: unknown;
    if (over === undefined) value = structuredClone(under);
    else if (under === undefined) value = structuredClone(over);
    else if (rule.rule === 'merge') value = deepMergeMappings(under as Tree, over as Tree);
    else if (rule.rule === 'join') value = joinByIdentity(under as Tree[], over as Tree[], rule.identity);
    else value = structuredClone(over);
    if (value !== undefined) merged[key] = value;
  }
  return merged as WorkloadLayer;
}

/** The workload settings of a component group (or global.workload) as a layer: only the sub-schema's keys. */
export function workloadLayerOf(group: object): WorkloadLayer {
  const source = group as Record<string, unknown>;
  const layer: Record<string, unknown> = {};
  for (const key of workloadKeys) if (source[key] !== undefined) layer[key] = source[key];
  return layer as WorkloadLayer;
}

/** The image reference: `[registry/]repository@digest`, else `[registry/]repository:tag`. */
export function imageReference(image: ImageValues): string {
  const repository = image.registry ? `${image.registry.replace(/\/+$/, '')}/${image.repository}` : image.repository!;
  return image.digest ? `${repository}@${image.digest}` : `${repository}:${image.tag}`;
}

/** The value groups that are workloads, and for the Jobs, the component whose image (program) they run. */
export const workloadGroups = {
  synapse: undefined,
  postgresql: undefined,
  element: undefined,
  coturn: undefined,
  router: undefined,
  auth: undefined,
  redis: undefined,
  adminBootstrap: 'synapse',
  backup: 'postgresql',
} as const;

export type WorkloadGroup = keyof typeof workloadGroups;

/** Effective settings of a workload group: global.workload, then the group; a Job's image defaults to its program's component. */
export function workloadSettingsFor(values: Values, name: WorkloadGroup): WorkloadLayer & { image: ImageValues } {
  const global = workloadLayerOf(values.global.workload);
  const own = workloadLayerOf(values[name]);
  const imageOwner = workloadGroups[name];
  const ownerImage = imageOwner ? (values[imageOwner].image as ImageValues) : {};
  const settings = mergeWorkloadSettings(global, { ...own, image: deepMergeMappings(ownerImage as Tree, (own.image ?? {}) as Tree) as ImageValues });
  return { ...settings, image: settings.image ?? {} };
}
