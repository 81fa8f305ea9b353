/**
 * What every pod of the stack shares: Pod Security "restricted" contexts, resources, probes, the
 * config-checksum annotation, and the restricted-profile
 * check itself, so tests and `doctor` judge pods by the same rules they are built with.
 */
import { createHash } from 'node:crypto';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IPodSecurityContext } from 'kubernetes-models/v1/PodSecurityContext';
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec';
import type { IProbe } from 'kubernetes-models/v1/Probe';
import type { IResourceRequirements } from 'kubernetes-models/v1/ResourceRequirements';
import type { ISecurityContext } from 'kubernetes-models/v1/SecurityContext';
import type { IVolume } from 'kubernetes-models/v1/Volume';
import type { Values } from '../values/schema.js';

export type ResourceValues = Values['synapse']['resources'];

/** Pod-level context of the restricted profile, running as the image's own unprivileged user. */
export function restrictedPodSecurityContext(uid: number, gid: number = uid): IPodSecurityContext {
  return {
    runAsNonRoot: true,
    runAsUser: uid,
    runAsGroup: gid,
    // Volumes (PVCs included) become group-writable for the image's group.
    fsGroup: gid,
    fsGroupChangePolicy: 'OnRootMismatch',
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

/** Container-level context of the restricted profile, plus a read-only root filesystem. */
export function restrictedContainerSecurityContext(addCapabilities: string[] = []): ISecurityContext {
  return {
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    runAsNonRoot: true,
    privileged: false,
    capabilities: { drop: ['ALL'], ...(addCapabilities.length > 0 ? { add: addCapabilities } : {}) },
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

/** A Service type from values (the schema allows only ClusterIP, NodePort and LoadBalancer). */
export function serviceType(type: string): 'ClusterIP' | 'NodePort' | 'LoadBalancer' {
  return type as 'ClusterIP' | 'NodePort' | 'LoadBalancer';
}

export function resourceRequirements(resources: ResourceValues): IResourceRequirements {
  return {
    requests: { cpu: resources.requests.cpu, memory: resources.requests.memory },
    limits: { cpu: resources.limits.cpu, memory: resources.limits.memory },
  };
}

export interface ProbeTiming {
  initialDelaySeconds?: number;
  periodSeconds?: number;
  timeoutSeconds?: number;
  failureThreshold?: number;
}

export function httpGetProbe(path: string, port: number | string, timing: ProbeTiming = {}): IProbe {
  return { httpGet: { path, port }, periodSeconds: 10, timeoutSeconds: 5, failureThreshold: 3, ...timing };
}

export function execProbe(command: string[], timing: ProbeTiming = {}): IProbe {
  return { exec: { command }, periodSeconds: 10, timeoutSeconds: 5, failureThreshold: 3, ...timing };
}

/** Readiness, liveness and a startup probe that gives slow first starts (migrations, initdb) time. */
export function standardProbes(probe: (timing: ProbeTiming) => IProbe, startupSeconds: number): Pick<IContainer, 'readinessProbe' | 'livenessProbe' | 'startupProbe'> {
  return {
    startupProbe: probe({ periodSeconds: 5, failureThreshold: Math.ceil(startupSeconds / 5) }),
    readinessProbe: probe({ periodSeconds: 10, failureThreshold: 3 }),
    livenessProbe: probe({ periodSeconds: 20, failureThreshold: 6 }),
  };
}

/** sha256 over a ConfigMap's data (keys sorted), so that a change of any file rolls the pods. */
export function configChecksum(data: Record<string, string>): string {
  const hash = createHash('sha256');
  for (const key of Object.keys(data).sort()) hash.update(`${key}\0${data[key]}\0`);
  return hash.digest('hex');
}

export const configChecksumAnnotation = 'checksum/config';

export function emptyDirVolume(name: string, options: { memory?: boolean; sizeLimit?: string } = {}): IVolume {
  return {
    name,
    emptyDir: {
      ...(options.memory ? { medium: 'Memory' } : {}),
      ...(options.sizeLimit ? { sizeLimit: options.sizeLimit } : {}),
    },
  };
}

// The restricted profile (pod-security-admission/policy check ids in brackets).
const allowedVolumeSources = new Set(['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret']);
const safeSysctls = new Set([
  'kernel.shm_rmid_forced',
  'net.ipv4.ip_local_port_range',
  'net.ipv4.ip_unprivileged_port_start',
  'net.ipv4.tcp_syncookies',
  'net.ipv4.ping_group_range',
  'net.ipv4.ip_local_reserved_ports',
  'net.ipv4.tcp_keepalive_time',
  'net.ipv4.tcp_fin_timeout',
  'net.ipv4.tcp_keepalive_intvl',
  'net.ipv4.tcp_keepalive_probes',
]);

/**
 * Every way a pod spec breaks Pod Security "restricted", one sentence each; empty when it passes.
 * Mirrors the upstream checks, including how container settings override pod-level ones.
 */
export function restrictedProfileViolations(spec: IPodSpec): string[] {
  const problems: string[] = [];
  const pod = spec.securityContext ?? {};
  if (spec.hostNetwork) problems.push('hostNetwork is true [host-namespaces]');
  if (spec.hostPID) problems.push('hostPID is true [host-namespaces]');
  if (spec.hostIPC) problems.push('hostIPC is true [host-namespaces]');
  for (const volume of spec.volumes ?? []) {
    const sources = Object.keys(volume).filter((key) => key !== 'name');
    for (const source of sources) if (!allowedVolumeSources.has(source)) problems.push(`volume ${volume.name} uses ${source} [restrictedVolumes]`);
  }
  for (const sysctl of pod.sysctls ?? []) if (!safeSysctls.has(sysctl.name)) problems.push(`unsafe sysctl ${sysctl.name} [sysctls]`);
  if (pod.runAsUser === 0) problems.push('pod runAsUser is 0 [runAsUser]');
  if (pod.seccompProfile && !['RuntimeDefault', 'Localhost'].includes(pod.seccompProfile.type))
    problems.push(`pod seccompProfile is ${pod.seccompProfile.type} [seccompProfile_restricted]`);
  const containers = [...(spec.initContainers ?? []), ...spec.containers];
  for (const container of containers) {
    const at = `container ${container.name}`;
    const sc = container.securityContext ?? {};
    if (sc.privileged) problems.push(`${at} is privileged [privileged]`);
    if (sc.allowPrivilegeEscalation !== false) problems.push(`${at}: allowPrivilegeEscalation is not false [allowPrivilegeEscalation]`);
    if (sc.procMount && sc.procMount !== 'Default') problems.push(`${at}: procMount is ${sc.procMount} [procMount]`);
    if (!(sc.runAsNonRoot ?? pod.runAsNonRoot)) problems.push(`${at}: runAsNonRoot is not true [runAsNonRoot]`);
    if (sc.runAsUser === 0) problems.push(`${at}: runAsUser is 0 [runAsUser]`);
    const seccomp = sc.seccompProfile?.type ?? pod.seccompProfile?.type;
    if (seccomp !== 'RuntimeDefault' && seccomp !== 'Localhost') problems.push(`${at}: seccompProfile is ${seccomp ?? 'unset'} [seccompProfile_restricted]`);
    if (!(sc.capabilities?.drop ?? []).includes('ALL')) problems.push(`${at}: capabilities.drop lacks ALL [capabilities_restricted]`);
    for (const added of sc.capabilities?.add ?? []) if (added !== 'NET_BIND_SERVICE') problems.push(`${at}: adds capability ${added} [capabilities_restricted]`);
    for (const port of container.ports ?? []) if (port.hostPort) problems.push(`${at}: hostPort ${port.hostPort} [hostPorts]`);
  }
  return problems;
}
