/**
 * Waiting until the release is healthy: Deployments and StatefulSets rolled out, Jobs complete,
 * cert-manager Certificates Ready. The readiness of each object is a pure function of its live JSON
 * (the same rules as `kubectl rollout status`); the loop around it only polls, reports and times out.
 */
import { describeRef, refKey, refOf, type ObjectRef, type PlainObject } from './applyset.js';

export type ReadinessState = 'ready' | 'progressing' | 'failed';

export interface Readiness {
  state: ReadinessState;
  /** What is happening, in a few words (`1 of 2 replicas available`). */
  detail: string;
}

type Condition = { type?: string; status?: string; reason?: string; message?: string };

const conditionsOf = (object: PlainObject): Condition[] => ((object.status as { conditions?: Condition[] } | undefined)?.conditions ?? []);
const conditionOf = (object: PlainObject, type: string) => conditionsOf(object).find((c) => c.type === type);
const numberAt = (value: unknown): number => (typeof value === 'number' ? value : 0);

function generationObserved(object: PlainObject): boolean {
  const generation = (object.metadata as { generation?: number }).generation;
  const observed = (object.status as { observedGeneration?: number } | undefined)?.observedGeneration;
  return generation === undefined || (observed !== undefined && observed >= generation);
}

export function deploymentReadiness(object: PlainObject): Readiness {
  const spec = (object.spec ?? {}) as { replicas?: number };
  const status = (object.status ?? {}) as Record<string, unknown>;
  const progressing = conditionOf(object, 'Progressing');
  if (progressing?.reason === 'ProgressDeadlineExceeded') {
    return { state: 'failed', detail: `rollout stalled: ${progressing.message ?? 'progress deadline exceeded'}` };
  }
  if (!generationObserved(object)) return { state: 'progressing', detail: 'waiting for the controller to see the new spec' };
  const wanted = spec.replicas ?? 1;
  const updated = numberAt(status.updatedReplicas);
  const total = numberAt(status.replicas);
  const available = numberAt(status.availableReplicas);
  if (updated < wanted) return { state: 'progressing', detail: `${updated} of ${wanted} replicas updated` };
  if (total > updated) return { state: 'progressing', detail: `${total - updated} old replicas terminating` };
  if (available < updated) return { state: 'progressing', detail: `${available} of ${updated} replicas available` };
  return { state: 'ready', detail: `${available} of ${wanted} replicas available` };
}

export function statefulSetReadiness(object: PlainObject): Readiness {
  const spec = (object.spec ?? {}) as { replicas?: number; updateStrategy?: { type?: string; rollingUpdate?: { partition?: number } } };
  const status = (object.status ?? {}) as Record<string, unknown>;
  if (!generationObserved(object)) return { state: 'progressing', detail: 'waiting for the controller to see the new spec' };
  const wanted = spec.replicas ?? 1;
  const ready = numberAt(status.readyReplicas);
  if (ready < wanted) return { state: 'progressing', detail: `${ready} of ${wanted} pods ready` };
  if ((spec.updateStrategy?.type ?? 'RollingUpdate') !== 'RollingUpdate') return { state: 'ready', detail: `${ready} of ${wanted} pods ready` };
  const partition = spec.updateStrategy?.rollingUpdate?.partition ?? 0;
  if (partition > 0) {
    const updated = numberAt(status.updatedReplicas);
    if (updated < wanted - partition) return { state: 'progressing', detail: `${updated} of ${wanted - partition} pods updated` };
    return { state: 'ready', detail: `partitioned rollout done (${updated} updated)` };
  }
  if (status.updateRevision !== status.currentRevision) {
    return { state: 'progressing', detail: `${numberAt(status.updatedReplicas)} of ${wanted} pods updated` };
  }
  return { state: 'ready', detail: `${ready} of ${wanted} pods ready` };
}

export function jobReadiness(object: PlainObject): Readiness {
  const failed = conditionOf(object, 'Failed');
  if (failed?.status === 'True') return { state: 'failed', detail: `failed: ${failed.message ?? failed.reason ?? 'see kubectl logs'}` };
  const complete = conditionOf(object, 'Complete');
  if (complete?.status === 'True') return { state: 'ready', detail: 'complete' };
  const status = (object.status ?? {}) as Record<string, unknown>;
  const active = numberAt(status.active);
  const failures = numberAt(status.failed);
  return { state: 'progressing', detail: `${active} running${failures > 0 ? `, ${failures} failed attempts` : ''}` };
}

export function certificateReadiness(object: PlainObject): Readiness {
  const ready = conditionOf(object, 'Ready');
  if (ready?.status === 'True') return { state: 'ready', detail: 'certificate issued' };
  const issuing = conditionOf(object, 'Issuing');
  // cert-manager marks a failed issuance this way and only retries after a long back-off.
  if (issuing?.status === 'False' && issuing.reason === 'Failed') {
    return { state: 'failed', detail: `issuance failed: ${issuing.message ?? 'see kubectl describe certificate'}` };
  }
  return { state: 'progressing', detail: ready?.message ? `not ready: ${ready.message}` : 'waiting for cert-manager' };
}

/** A claim is ready once bound to a volume; Pending (no volume yet, or a provisioner failing) is not. */
export function claimReadiness(object: PlainObject): Readiness {
  const phase = (object.status as { phase?: string } | undefined)?.phase;
  if (phase === 'Bound') return { state: 'ready', detail: 'bound' };
  if (phase === 'Lost') return { state: 'failed', detail: 'lost: its volume is gone' };
  const storageClass = (object.spec as { storageClassName?: string } | undefined)?.storageClassName;
  return { state: 'progressing', detail: `${(phase ?? 'pending').toLowerCase()}: no volume yet${storageClass ? ` (storage class ${storageClass})` : ''}` };
}

export function readinessOf(object: PlainObject): Readiness {
  switch (object.kind) {
    case 'PersistentVolumeClaim':
      return claimReadiness(object);
    case 'Deployment':
      return deploymentReadiness(object);
    case 'StatefulSet':
      return statefulSetReadiness(object);
    case 'Job':
      return jobReadiness(object);
    case 'Certificate':
      return certificateReadiness(object);
    default:
      return { state: 'ready', detail: 'exists' };
  }
}

const ingressShimAnnotations = ['cert-manager.io/cluster-issuer', 'cert-manager.io/issuer'];

/**
 * The objects to wait for: rendered Deployments, StatefulSets, Jobs and Certificates, plus the
 * Certificates cert-manager creates from annotated Ingresses (named after each TLS Secret).
 */
export function awaitedRefs(objects: readonly PlainObject[]): ObjectRef[] {
  const refs = new Map<string, ObjectRef>();
  const add = (ref: ObjectRef) => refs.set(refKey(ref), ref);
  for (const object of objects) {
    const ref = refOf(object);
    if (['Deployment', 'StatefulSet', 'Job'].includes(object.kind) && ['apps', 'batch'].includes(ref.group)) add(ref);
    if (object.kind === 'Certificate' && ref.group === 'cert-manager.io') add(ref);
    const annotations = object.metadata.annotations ?? {};
    if (object.kind === 'Ingress' && ingressShimAnnotations.some((a) => annotations[a])) {
      const tls = ((object.spec as { tls?: { secretName?: string }[] } | undefined)?.tls ?? []);
      for (const entry of tls) {
        if (entry.secretName) add({ group: 'cert-manager.io', kind: 'Certificate', namespace: ref.namespace, name: entry.secretName });
      }
    }
  }
  return [...refs.values()];
}

export interface WaitStatus {
  ref: ObjectRef;
  readiness: Readiness;
}

/** Readiness of every awaited object; one not created yet is progressing. */
export function evaluate(refs: readonly ObjectRef[], live: readonly PlainObject[]): WaitStatus[] {
  // Matched by group, kind and name: every awaited object is in the release's namespace.
  const keyOf = (ref: ObjectRef) => refKey({ group: ref.group, kind: ref.kind, name: ref.name });
  const byKey = new Map(live.map((o) => [keyOf(refOf(o)), o]));
  return refs.map((ref) => {
    const object = byKey.get(keyOf(ref));
    return { ref, readiness: object ? readinessOf(object) : { state: 'progressing', detail: 'not created yet' } };
  });
}

export type WaitVerdict =
  | { outcome: 'ready' }
  | { outcome: 'failed'; failures: WaitStatus[] }
  | { outcome: 'timeout'; pending: WaitStatus[] }
  | { outcome: 'continue' };

/** Whether to stop: any failure stops at once; all ready succeeds; otherwise wait until the deadline. */
export function waitVerdict(statuses: readonly WaitStatus[], elapsedMs: number, timeoutMs: number): WaitVerdict {
  const failures = statuses.filter((s) => s.readiness.state === 'failed');
  if (failures.length > 0) return { outcome: 'failed', failures };
  const pending = statuses.filter((s) => s.readiness.state !== 'ready');
  if (pending.length === 0) return { outcome: 'ready' };
  if (elapsedMs >= timeoutMs) return { outcome: 'timeout', pending };
  return { outcome: 'continue' };
}

export function statusLine(status: WaitStatus): string {
  const word = { ready: 'ready', progressing: 'waiting', failed: 'FAILED' }[status.readiness.state];
  return `${word.padEnd(7)} ${describeRef(status.ref)}: ${status.readiness.detail}`;
}

/** Progress lines for what changed since the last poll (nothing when nothing changed). */
export function progressLines(previous: ReadonlyMap<string, string>, statuses: readonly WaitStatus[]): string[] {
  return statuses.map(statusLine).filter((line, index) => previous.get(refKey(statuses[index]!.ref)) !== line);
}

export interface WaitOptions {
  refs: readonly ObjectRef[];
  /** Reads the live objects (one `kubectl get` per poll). */
  read: (refs: readonly ObjectRef[]) => Promise<PlainObject[]>;
  timeoutMs: number;
  intervalMs?: number;
  report: (line: string) => void;
  /** With the heartbeat: what the cluster says about the objects still pending (pods, events). */
  explain?: (pending: WaitStatus[]) => Promise<string[]>;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

/** With nothing changing, a line this often shows the wait is alive. */
const heartbeatMs = 30_000;

export async function waitUntilReady(options: WaitOptions): Promise<WaitVerdict> {
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const interval = options.intervalMs ?? 2000;
  const started = now();
  const shown = new Map<string, string>();
  let lastReport = started;
  if (options.refs.length === 0) return { outcome: 'ready' };
  for (;;) {
    const statuses = evaluate(options.refs, await options.read(options.refs));
    const lines = progressLines(shown, statuses);
    for (const line of lines) options.report(line);
    for (const status of statuses) shown.set(refKey(status.ref), statusLine(status));
    const verdict = waitVerdict(statuses, now() - started, options.timeoutMs);
    if (verdict.outcome !== 'continue') return verdict;
    if (lines.length > 0) lastReport = now();
    else if (now() - lastReport >= heartbeatMs) {
      const pending = statuses.filter((s) => s.readiness.state !== 'ready');
      options.report(`still waiting after ${formatDuration(now() - started)}: ${pending.length} of ${statuses.length} not ready yet`);
      for (const cause of (await options.explain?.(pending)) ?? []) options.report(`  ${cause}`);
      lastReport = now();
    }
    await sleep(Math.min(interval, Math.max(0, options.timeoutMs - (now() - started))));
  }
}

/** `10m`, `90s`, `1h30m` or a bare number of seconds → milliseconds; undefined when not a duration. */
export function parseDuration(text: string): number | undefined {
  const trimmed = text.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  if (!/^(\d+h)?(\d+m)?(\d+s)?$/.test(trimmed) || trimmed === '') return undefined;
  const part = (unit: string) => Number(new RegExp(`(\\d+)${unit}`).exec(trimmed)?.[1] ?? 0);
  return (part('h') * 3600 + part('m') * 60 + part('s')) * 1000;
}

export function formatDuration(ms: number): string {
  const seconds = Math.round(ms / 1000);
  const minutes = Math.floor(seconds / 60);
  return minutes > 0 ? `${minutes}m${String(seconds % 60).padStart(2, '0')}s` : `${seconds}s`;
}
