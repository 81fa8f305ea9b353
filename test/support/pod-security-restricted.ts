/**
 * The Pod Security Standards "restricted" profile as a test oracle, written from the standard (Baseline
 * plus Restricted controls; upstream check ids of pod-security-admission/policy in brackets). It is kept
 * apart from the code that hardens the pods on purpose, so that a mistake in one is caught by the other.
 * Plain (JSON) pod specs in, one sentence per violation out.
 */

interface PlainSecurityContext {
  privileged?: boolean;
  allowPrivilegeEscalation?: boolean;
  runAsNonRoot?: boolean;
  runAsUser?: number;
  procMount?: string;
  capabilities?: { add?: string[]; drop?: string[] };
  seccompProfile?: { type?: string };
  appArmorProfile?: { type?: string };
  seLinuxOptions?: { type?: string; user?: string; role?: string };
  windowsOptions?: { hostProcess?: boolean };
  sysctls?: { name: string; value: string }[];
}

interface PlainContainer {
  name: string;
  securityContext?: PlainSecurityContext;
  ports?: { name?: string; containerPort: number; hostPort?: number; protocol?: 'TCP' | 'UDP' | 'SCTP' }[];
}

export interface PlainPodSpec {
  hostNetwork?: boolean;
  hostPID?: boolean;
  hostIPC?: boolean;
  securityContext?: PlainSecurityContext;
  volumes?: Record<string, unknown>[];
  containers: PlainContainer[];
  initContainers?: PlainContainer[];
  ephemeralContainers?: PlainContainer[];
}

const restrictedVolumeSources = new Set(['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret']);

/** Sysctls the Baseline profile allows (Kubernetes 1.32 list). */
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

const allowedSeLinuxTypes = new Set(['', 'container_t', 'container_init_t', 'container_kvm_t', 'container_engine_t']);
const allowedSeccomp = new Set(['RuntimeDefault', 'Localhost']);

/**
 * Every violation of the restricted profile, including fields pod and container levels share (a
 * container value overrides the pod's). `annotations` are the pod template's (AppArmor annotations).
 */
export function restrictedViolations(spec: PlainPodSpec, annotations: Record<string, string> = {}): string[] {
  const out: string[] = [];
  const pod = spec.securityContext ?? {};
  // Baseline
  if (spec.hostNetwork) out.push('hostNetwork: true [hostNamespaces]');
  if (spec.hostPID) out.push('hostPID: true [hostNamespaces]');
  if (spec.hostIPC) out.push('hostIPC: true [hostNamespaces]');
  for (const volume of spec.volumes ?? []) {
    for (const source of Object.keys(volume).filter((k) => k !== 'name')) {
      if (!restrictedVolumeSources.has(source)) out.push(`volume ${String(volume.name)}: ${source} is not an allowed volume type [restrictedVolumes]`);
    }
  }
  for (const sysctl of pod.sysctls ?? []) if (!safeSysctls.has(sysctl.name)) out.push(`sysctl ${sysctl.name} is not safe [sysctls]`);
  if (pod.windowsOptions?.hostProcess) out.push('pod windowsOptions.hostProcess [windowsHostProcess]');
  if (pod.seLinuxOptions && (!allowedSeLinuxTypes.has(pod.seLinuxOptions.type ?? '') || pod.seLinuxOptions.user || pod.seLinuxOptions.role)) out.push('pod seLinuxOptions [seLinuxOptions]');
  if (pod.appArmorProfile?.type === 'Unconfined') out.push('pod appArmorProfile Unconfined [appArmorProfile]');
  for (const [key, value] of Object.entries(annotations)) {
    if (key.startsWith('container.apparmor.security.beta.kubernetes.io/') && value === 'unconfined') out.push(`${key}: unconfined [appArmorProfile]`);
  }
  // Restricted, pod level
  if (pod.runAsUser === 0) out.push('pod runAsUser: 0 [runAsUser]');
  if (pod.runAsNonRoot === false) out.push('pod runAsNonRoot: false [runAsNonRoot]');
  if (pod.seccompProfile?.type !== undefined && !allowedSeccomp.has(pod.seccompProfile.type)) out.push(`pod seccompProfile ${pod.seccompProfile.type} [seccompProfile_restricted]`);

  const containers = [...(spec.initContainers ?? []), ...spec.containers, ...(spec.ephemeralContainers ?? [])];
  for (const container of containers) {
    const at = `container ${container.name}`;
    const sc = container.securityContext ?? {};
    if (sc.privileged) out.push(`${at}: privileged [privileged]`);
    if (sc.procMount !== undefined && sc.procMount !== 'Default') out.push(`${at}: procMount ${sc.procMount} [procMount]`);
    if (sc.windowsOptions?.hostProcess) out.push(`${at}: windowsOptions.hostProcess [windowsHostProcess]`);
    if (sc.seLinuxOptions && (!allowedSeLinuxTypes.has(sc.seLinuxOptions.type ?? '') || sc.seLinuxOptions.user || sc.seLinuxOptions.role)) out.push(`${at}: seLinuxOptions [seLinuxOptions]`);
    if (sc.appArmorProfile?.type === 'Unconfined') out.push(`${at}: appArmorProfile Unconfined [appArmorProfile]`);
    for (const port of container.ports ?? []) if (port.hostPort) out.push(`${at}: hostPort ${port.hostPort} [hostPorts]`);
    if (sc.allowPrivilegeEscalation !== false) out.push(`${at}: allowPrivilegeEscalation must be false [allowPrivilegeEscalation]`);
    const nonRoot = sc.runAsNonRoot ?? pod.runAsNonRoot;
    if (nonRoot !== true) out.push(`${at}: runAsNonRoot must be true [runAsNonRoot]`);
    if (sc.runAsUser === 0) out.push(`${at}: runAsUser 0 [runAsUser]`);
    const seccomp = sc.seccompProfile?.type ?? pod.seccompProfile?.type;
    if (seccomp === undefined || !allowedSeccomp.has(seccomp)) out.push(`${at}: seccompProfile ${seccomp ?? 'unset'} [seccompProfile_restricted]`);
    if (!(sc.capabilities?.drop ?? []).includes('ALL')) out.push(`${at}: capabilities.drop must include ALL [capabilities_restricted]`);
    for (const added of sc.capabilities?.add ?? []) if (added !== 'NET_BIND_SERVICE') out.push(`${at}: adds ${added} [capabilities_restricted]`);
  }
  return out;
}
