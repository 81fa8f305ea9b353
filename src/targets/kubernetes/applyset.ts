/**
 * The release's inventory in the cluster, following the ApplySet conventions (KEP-3659): a parent Secret
 * `<release>-applyset` labelled `applyset.kubernetes.io/id`, listing the group-kinds of its members; each
 * member labelled `applyset.kubernetes.io/part-of: <id>`. Pruning only ever considers objects carrying
 * that label, so objects of other tools or releases are never touched. Pure.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Stack } from '../../stack/model.js';
import type { KubeObject } from '../../kit/objects.js';
import { toPlainSorted } from '../../kit/sorted-json.js';

export const applysetIdLabel = 'applyset.kubernetes.io/id';
export const applysetPartOfLabel = 'applyset.kubernetes.io/part-of';
export const applysetToolingAnnotation = 'applyset.kubernetes.io/tooling';
export const applysetGroupKindsAnnotation = 'applyset.kubernetes.io/contains-group-kinds';
/** sha256 of the validated values last applied (shown by `mxstack status`). */
export const valuesHashAnnotation = 'mxstack.dev/values-sha256';

/** A plain Kubernetes object as read from or sent to the API server. */
export interface PlainObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

/** Identity of an object: group, kind, namespace (undefined when cluster-scoped), name. */
export interface ObjectRef {
  group: string;
  kind: string;
  namespace?: string;
  name: string;
}

export function mxstackVersion(): string {
  const manifest = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return manifest.version;
}

export const toolingValue = (version: string) => `mxstack/${version}`;

export function applysetParentName(release: string): string {
  return `${release}-applyset`;
}

/** The KEP's id: `applyset-` + base64url(sha256(<name>.<namespace>.<kind>.<group>)) + `-v1`. */
export function applysetId(parent: { name: string; namespace: string; kind: string; group: string }): string {
  const digest = createHash('sha256').update([parent.name, parent.namespace, parent.kind, parent.group].join('.')).digest('base64url');
  return `applyset-${digest}-v1`;
}

export function releaseApplysetId(release: string, namespace: string): string {
  return applysetId({ name: applysetParentName(release), namespace, kind: 'Secret', group: '' });
}

export function groupOf(apiVersion: string | undefined): string {
  if (!apiVersion) return '';
  return apiVersion.includes('/') ? apiVersion.slice(0, apiVersion.indexOf('/')) : '';
}

/** `Deployment.apps`, or just `Service` for the core group (the KEP's format). */
export function groupKind(ref: { group: string; kind: string }): string {
  return ref.group ? `${ref.kind}.${ref.group}` : ref.kind;
}

export function refOf(object: PlainObject | KubeObject): ObjectRef {
  const namespace = object.metadata?.namespace;
  return {
    group: groupOf(object.apiVersion),
    kind: object.kind,
    ...(namespace ? { namespace } : {}),
    name: object.metadata?.name ?? '',
  };
}

export function refKey(ref: ObjectRef): string {
  return `${groupKind(ref)}/${ref.namespace ?? ''}/${ref.name}`;
}

/** What kubectl understands on a command line: `deployment.apps/name`, `service/name`. */
export function kubectlResource(ref: ObjectRef): string {
  return `${groupKind({ group: ref.group, kind: ref.kind.toLowerCase() })}/${ref.name}`;
}

/** How objects are named to users: `Deployment/mxstack-synapse`. */
export function describeRef(ref: ObjectRef): string {
  return `${ref.kind}/${ref.name}`;
}

/** Sorted, comma-separated group-kinds, as the contains-group-kinds annotation holds them. */
export function formatGroupKinds(groupKinds: Iterable<string>): string {
  return [...new Set(groupKinds)].filter((gk) => gk !== '').sort().join(',');
}

export function parseGroupKinds(annotation: string | undefined): string[] {
  return (annotation ?? '')
    .split(',')
    .map((gk) => gk.trim())
    .filter((gk) => gk !== '');
}

/** `Deployment.apps` → `deployment.apps` (kubectl resource names are case-insensitive kinds). */
export function groupKindToResource(groupKindText: string): string {
  const dot = groupKindText.indexOf('.');
  return dot < 0 ? groupKindText.toLowerCase() : `${groupKindText.slice(0, dot).toLowerCase()}${groupKindText.slice(dot)}`;
}

/** Rendered objects as plain JSON, each labelled as a member of the release's ApplySet. */
export function asMembers(objects: readonly KubeObject[], id: string): PlainObject[] {
  return objects.map((object) => {
    const plain = toPlainSorted(object) as PlainObject;
    return { ...plain, metadata: { ...plain.metadata, labels: { ...plain.metadata.labels, [applysetPartOfLabel]: id } } };
  });
}

export interface ParentState {
  id: string;
  tooling: string;
  groupKinds: string[];
  valuesHash?: string;
}

/** The parent Secret: no data, only the inventory's labels and annotations. */
export function buildParent(stack: Stack, state: Omit<ParentState, 'id'>): PlainObject {
  const id = releaseApplysetId(stack.release, stack.namespace);
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'Opaque',
    metadata: {
      name: applysetParentName(stack.release),
      namespace: stack.namespace,
      labels: {
        [applysetIdLabel]: id,
        'app.kubernetes.io/instance': stack.release,
        'app.kubernetes.io/managed-by': 'mxstack',
        'app.kubernetes.io/part-of': 'mxstack',
      },
      annotations: {
        [applysetToolingAnnotation]: state.tooling,
        [applysetGroupKindsAnnotation]: formatGroupKinds(state.groupKinds),
        ...(state.valuesHash ? { [valuesHashAnnotation]: state.valuesHash } : {}),
      },
    },
  };
}

/** Reads a live parent (undefined when the release has never been applied). */
export function readParent(object: PlainObject | undefined): ParentState | undefined {
  if (!object) return undefined;
  const labels = object.metadata.labels ?? {};
  const annotations = object.metadata.annotations ?? {};
  const id = labels[applysetIdLabel];
  if (!id) return undefined;
  return {
    id,
    tooling: annotations[applysetToolingAnnotation] ?? '',
    groupKinds: parseGroupKinds(annotations[applysetGroupKindsAnnotation]),
    ...(annotations[valuesHashAnnotation] ? { valuesHash: annotations[valuesHashAnnotation] } : {}),
  };
}

/** One sentence when the parent object is not ours to manage. */
export function parentProblem(live: PlainObject | undefined, expectedId: string): string | undefined {
  if (!live) return undefined;
  const name = `${live.kind}/${live.metadata.name}`;
  const state = readParent(live);
  if (!state) return `${name} exists but is not an ApplySet parent (no ${applysetIdLabel} label): mxstack will not take it over; choose another --release or remove it.`;
  if (state.id !== expectedId) return `${name} carries ApplySet id ${state.id}, not ${expectedId}: it was not created for this release and namespace.`;
  if (!state.tooling.startsWith('mxstack/')) return `${name} is managed by ${state.tooling || 'an unknown tool'}, not mxstack: mxstack will not change another tool's inventory.`;
  return undefined;
}

export function groupKindsOf(objects: readonly (PlainObject | KubeObject)[]): string[] {
  return [...new Set(objects.map((o) => groupKind(refOf(o))))].sort();
}

/**
 * The prune set: live members of this ApplySet that the current render no longer contains. An object
 * without our part-of label is never in it, whatever the listing returned.
 */
export function computePrune(liveMembers: readonly PlainObject[], rendered: readonly (PlainObject | KubeObject)[], id: string): PlainObject[] {
  // Compared without the namespace: a release lives in one namespace, and erring towards keeping is safe.
  const keyOf = (o: PlainObject | KubeObject) => refKey({ ...refOf(o), namespace: undefined });
  const current = new Set(rendered.map(keyOf));
  return liveMembers
    .filter((o) => o.metadata.labels?.[applysetPartOfLabel] === id)
    .filter((o) => !current.has(keyOf(o)))
    .sort((a, b) => refKey(refOf(a)).localeCompare(refKey(refOf(b))));
}

/** Kinds that hold data or are shared: never deleted by a prune or a plain uninstall. */
const keptKinds = new Set(['PersistentVolumeClaim', 'Secret']);
/** A Namespace may hold more than this release: mxstack never deletes one. */
const neverDeletedKinds = new Set(['Namespace']);

export interface DeletionPlan {
  delete: PlainObject[];
  /** Kept on purpose, with the reason shown to the user. */
  keep: { object: PlainObject; reason: string }[];
}

/** Splits objects to remove into what is deleted and what is kept (data, namespaces). */
export function planDeletion(objects: readonly PlainObject[], options: { purge: boolean }): DeletionPlan {
  const plan: DeletionPlan = { delete: [], keep: [] };
  for (const object of objects) {
    if (neverDeletedKinds.has(object.kind)) plan.keep.push({ object, reason: 'mxstack never deletes a namespace' });
    else if (keptKinds.has(object.kind) && !options.purge) plan.keep.push({ object, reason: 'it holds data' });
    else plan.delete.push(object);
  }
  return plan;
}

/** Deletion order: what uses things first (routes, workloads), what is used last (claims, Secrets). */
export function deletionOrder(objects: readonly PlainObject[]): PlainObject[] {
  const rank = (kind: string) => {
    const order = ['Ingress', 'HTTPRoute', 'HorizontalPodAutoscaler', 'PodDisruptionBudget', 'Job', 'CronJob', 'Deployment', 'StatefulSet'];
    const index = order.indexOf(kind);
    if (index >= 0) return index;
    if (kind === 'PersistentVolumeClaim') return order.length + 2;
    if (kind === 'Secret') return order.length + 3;
    return order.length + 1;
  };
  return [...objects].sort((a, b) => rank(a.kind) - rank(b.kind) || refKey(refOf(a)).localeCompare(refKey(refOf(b))));
}

/** Values keys that may hold a secret written in the values file. */
const secretValueKeys = new Set(['password', 'registrationSecret', 'smtpPass', 'client_secret']);

function withoutSecretValues(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutSecretValues);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(Object.entries(value).filter(([key]) => !secretValueKeys.has(key)).map(([key, v]) => [key, withoutSecretValues(v)]));
}

/**
 * sha256 of the validated values, in a key order independent of how the files were written. Secrets
 * written in the values are left out: a hash of a short password next to known values could be
 * brute-forced, and `status` prints the hash.
 */
export function valuesHash(values: unknown): string {
  return `sha256:${createHash('sha256').update(JSON.stringify(toPlainSorted(withoutSecretValues(values)))).digest('hex')}`;
}
