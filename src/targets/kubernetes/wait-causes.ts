/**
 * Why a workload is not ready, in the cluster's own words: its pods' status (unschedulable, image pull
 * errors, crash loops, config errors) and the Warning events of the workload, its ReplicaSets, its pods
 * and their volume claims (ProvisioningFailed, FailedCreate by Pod Security, FailedScheduling...).
 * Pure: a function of the rendered workload and the live pods, claims and events.
 */
import type { PlainObject } from './applyset.js';

interface PodTemplate {
  metadata?: { labels?: Record<string, string> };
  spec?: { volumes?: { persistentVolumeClaim?: { claimName?: string } }[] };
}

interface ContainerStatus {
  name?: string;
  restartCount?: number;
  state?: { waiting?: { reason?: string; message?: string } };
  lastState?: { terminated?: { exitCode?: number; reason?: string } };
}

interface PodStatus {
  phase?: string;
  conditions?: { type?: string; status?: string; reason?: string; message?: string }[];
  containerStatuses?: ContainerStatus[];
  initContainerStatuses?: ContainerStatus[];
}

export interface EventObject {
  type?: string;
  reason?: string;
  message?: string;
  count?: number;
  involvedObject?: { kind?: string; name?: string };
  regarding?: { kind?: string; name?: string };
  note?: string;
  lastTimestamp?: string;
  eventTime?: string;
}

const eventTimeOf = (event: EventObject) => event.lastTimestamp ?? event.eventTime ?? '';

export interface LiveDiagnostics {
  pods: readonly PlainObject[];
  events: readonly EventObject[];
}

/** Waiting reasons that are only the normal way to start. */
const normalWaiting = new Set(['ContainerCreating', 'PodInitializing']);

const templateOf = (workload: PlainObject): PodTemplate => ((workload.spec as { template?: PodTemplate } | undefined)?.template ?? {});

/** The workload's pods: those carrying every label of its pod template. */
export function podsOfWorkload(workload: PlainObject, pods: readonly PlainObject[]): PlainObject[] {
  const labels = Object.entries(templateOf(workload).metadata?.labels ?? {});
  if (labels.length === 0) return [];
  return pods.filter((pod) => labels.every(([key, value]) => pod.metadata.labels?.[key] === value));
}

/** Claims a workload's pods use: template volumes, and a StatefulSet's `<template>-<name>-<ordinal>` claims. */
function claimNames(workload: PlainObject, pods: readonly PlainObject[]): Set<string> {
  const names = new Set<string>();
  const volumesOf = (spec: PodTemplate['spec']) => spec?.volumes ?? [];
  for (const volume of [...volumesOf(templateOf(workload).spec), ...pods.flatMap((pod) => volumesOf(pod.spec as PodTemplate['spec']))]) {
    if (volume.persistentVolumeClaim?.claimName) names.add(volume.persistentVolumeClaim.claimName);
  }
  const templates = (workload.spec as { volumeClaimTemplates?: { metadata?: { name?: string } }[] } | undefined)?.volumeClaimTemplates ?? [];
  const replicas = (workload.spec as { replicas?: number } | undefined)?.replicas ?? 1;
  for (const template of templates) {
    for (let ordinal = 0; ordinal < replicas; ordinal++) names.add(`${template.metadata?.name}-${workload.metadata.name}-${ordinal}`);
  }
  return names;
}

function containerCauses(podName: string, statuses: readonly ContainerStatus[]): string[] {
  const causes: string[] = [];
  for (const status of statuses) {
    const waiting = status.state?.waiting;
    const crashed = status.lastState?.terminated;
    if (waiting?.reason && !normalWaiting.has(waiting.reason)) {
      const restarts = (status.restartCount ?? 0) > 0 && crashed ? ` (exited ${crashed.exitCode ?? '?'}${crashed.reason ? ` ${crashed.reason}` : ''}, ${status.restartCount} restarts)` : '';
      causes.push(`pod ${podName}, container ${status.name}: ${waiting.reason}${waiting.message ? `: ${waiting.message}` : ''}${restarts}`);
    }
  }
  return causes;
}

function podCauses(pod: PlainObject): string[] {
  const status = (pod.status ?? {}) as PodStatus;
  const name = pod.metadata.name;
  const scheduled = status.conditions?.find((c) => c.type === 'PodScheduled');
  const causes: string[] = [];
  if (scheduled?.status === 'False') causes.push(`pod ${name} is ${status.phase ?? 'Pending'}, not scheduled: ${scheduled.reason ?? ''}${scheduled.message ? `: ${scheduled.message}` : ''}`);
  return [...causes, ...containerCauses(name, status.initContainerStatuses ?? []), ...containerCauses(name, status.containerStatuses ?? [])];
}

function eventLine(event: EventObject): string {
  const about = event.involvedObject ?? event.regarding ?? {};
  const count = (event.count ?? 1) > 1 ? ` (${event.count} times)` : '';
  return `${about.kind}/${about.name}: ${event.reason}: ${(event.message ?? event.note ?? '').trim()}${count}`;
}

/**
 * What the cluster says about a workload that is not ready: pod problems first, then the Warning events
 * about it, its ReplicaSets, its pods and its claims (newest last, each said once).
 */
export function causesOf(workload: PlainObject, live: LiveDiagnostics, limit = 6): string[] {
  const pods = podsOfWorkload(workload, live.pods);
  const name = workload.metadata.name;
  const podNames = new Set(pods.map((pod) => pod.metadata.name));
  const claims = claimNames(workload, pods);
  const concerns = (about: { kind?: string; name?: string }) =>
    about.name !== undefined &&
    ((about.kind === workload.kind && about.name === name) ||
      (about.kind === 'ReplicaSet' && about.name.startsWith(`${name}-`)) ||
      (about.kind === 'Pod' && (podNames.has(about.name) || about.name.startsWith(`${name}-`))) ||
      (about.kind === 'PersistentVolumeClaim' && claims.has(about.name)));
  const events = live.events
    .filter((event) => event.type === 'Warning' && concerns(event.involvedObject ?? event.regarding ?? {}))
    .sort((a, b) => eventTimeOf(a).localeCompare(eventTimeOf(b)))
    .map(eventLine);
  const unique = [...new Set([...pods.flatMap(podCauses), ...events])];
  return unique.length > limit ? [...unique.slice(0, limit - 1), `... and ${unique.length - limit + 1} more`] : unique;
}
