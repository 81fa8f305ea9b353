/**
 * The one hardened, configured pod and workload builder every component uses: mxstack's containers and
 * volumes go in, the workload settings of the values (src/values/workload.ts: global.workload merged with
 * the component's own) are applied in one place, and what would break Pod Security "restricted" or collide
 * with what mxstack sets is refused here with the values path and the reason.
 */
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import type { IDeploymentStrategy } from 'kubernetes-models/apps/v1/DeploymentStrategy';
import type { IJobSpec } from 'kubernetes-models/batch/v1/JobSpec';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IEnvVar } from 'kubernetes-models/v1/EnvVar';
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec';
import type { IPodTemplateSpec } from 'kubernetes-models/v1/PodTemplateSpec';
import type { IProbe } from 'kubernetes-models/v1/Probe';
import type { ISecurityContext } from 'kubernetes-models/v1/SecurityContext';
import type { IVolume } from 'kubernetes-models/v1/Volume';
import type { IVolumeMount } from 'kubernetes-models/v1/VolumeMount';
import type { Stack } from '../stack/model.js';
import type { Values } from '../values/schema.js';
import { ValuesError } from '../values/errors.js';
import { deepMergeMappings, imageReference, workloadSettingsFor, type ProbeTimingValues, type WorkloadGroup, type WorkloadKey, type WorkloadLayer } from '../values/workload.js';
import { objectMeta, type IObjectMeta } from './meta.js';
import { configChecksum, configChecksumAnnotation, restrictedContainerSecurityContext, restrictedPodSecurityContext, restrictedProfileViolations } from './pod-security.js';

type Tree = Record<string, unknown>;

export interface ConfiguredPodOptions {
  /** The values group whose settings apply (synapse, backup...). */
  group: WorkloadGroup;
  /** The component the pods belong to (labels, selectors). */
  component: string;
  /** The image's own unprivileged user and group. */
  uid: number;
  gid?: number;
  containers: IContainer[];
  initContainers?: IContainer[];
  volumes?: IVolume[];
  /** Pod annotations mxstack sets (config checksums). */
  annotations?: Record<string, string>;
  /** Replicas the workload runs: two or more get a default spread over nodes. */
  replicas?: number;
  restartPolicy?: IPodSpec['restartPolicy'];
  terminationGracePeriodSeconds?: number;
  /** coturn's documented opt-in: outside the restricted profile. */
  hostNetwork?: boolean;
}

/** Where a setting was written: the component's own key when it has one, else global.workload's. */
export function settingPath(values: Values, group: WorkloadGroup, key: WorkloadKey): string {
  const own = (values[group] as Record<string, unknown>)[key];
  return own !== undefined ? `${group}.${key}` : `global.workload.${key}`;
}

/** Labels mxstack sets on every pod: Services, NetworkPolicies and disruption budgets select pods by them. */
const ownedLabelPrefix = 'app.kubernetes.io/';

/** image and imagePullPolicy of a container from a workload group's effective image. */
export function workloadImage(values: Values, group: WorkloadGroup): Pick<IContainer, 'image' | 'imagePullPolicy'> {
  const { image } = workloadSettingsFor(values, group);
  return { image: imageReference(image), imagePullPolicy: (image.pullPolicy ?? 'IfNotPresent') as IContainer['imagePullPolicy'] };
}

/** Labels and annotations of the workload object (Deployment, StatefulSet, Job, CronJob). */
export function workloadMeta(stack: Stack, group: WorkloadGroup, component: string): IObjectMeta {
  const settings = workloadSettingsFor(stack.values, group);
  refuseOwnedLabels(stack.values, group, 'labels', settings.labels);
  const meta = objectMeta(stack, component, stack.objectName(component), settings.annotations ?? {});
  return { ...meta, labels: { ...settings.labels, ...meta.labels } };
}

function refuseOwnedLabels(values: Values, group: WorkloadGroup, key: 'labels' | 'podLabels', labels: Record<string, string> | undefined): void {
  const owned = Object.keys(labels ?? {}).filter((label) => label.startsWith(ownedLabelPrefix));
  if (owned.length > 0) {
    throw new ValuesError([`${settingPath(values, group, key)}: ${owned.join(', ')} is set by mxstack (Services, NetworkPolicies and budgets select pods by the app.kubernetes.io/ labels); use another label key.`]);
  }
}

/** The ServiceAccount name the pods run as. */
export function serviceAccountNameOf(stack: Stack, group: WorkloadGroup, component: string): string {
  const account = stack.values[group].serviceAccount;
  return account.name ?? (account.create ? stack.objectName(component) : 'default');
}

/** The component's ServiceAccount, when values ask to create one. */
export function serviceAccountObjects(stack: Stack, group: WorkloadGroup, component: string): ServiceAccount[] {
  const account = stack.values[group].serviceAccount;
  if (!account.create) return [];
  return [
    new ServiceAccount({
      metadata: objectMeta(stack, component, serviceAccountNameOf(stack, group, component), account.annotations),
      automountServiceAccountToken: account.automountServiceAccountToken,
    }),
  ];
}

function withProbeTiming(probe: IProbe | undefined, timing: ProbeTimingValues | undefined): IProbe | undefined {
  return probe && timing ? { ...probe, ...timing } : probe;
}

function hardenedContainer(container: IContainer, override: Tree | undefined): IContainer {
  const base = (container.securityContext ?? restrictedContainerSecurityContext()) as Tree;
  return { ...container, securityContext: (override ? deepMergeMappings(base, override) : base) as ISecurityContext };
}

/** mxstack's own container with the settings applied: security context, probe timing, extra env and mounts. */
function configuredContainer(container: IContainer, settings: WorkloadLayer): IContainer {
  const configured = hardenedContainer(container, settings.containerSecurityContext);
  const extraEnv = (settings.extraEnv ?? []) as unknown as IEnvVar[];
  const extraMounts = (settings.extraVolumeMounts ?? []) as unknown as IVolumeMount[];
  return {
    ...configured,
    ...(extraEnv.length > 0 ? { env: [...(configured.env ?? []), ...extraEnv] } : {}),
    ...(extraMounts.length > 0 ? { volumeMounts: [...(configured.volumeMounts ?? []), ...extraMounts] } : {}),
    ...(configured.livenessProbe ? { livenessProbe: withProbeTiming(configured.livenessProbe, settings.livenessProbe) } : {}),
    ...(configured.readinessProbe ? { readinessProbe: withProbeTiming(configured.readinessProbe, settings.readinessProbe) } : {}),
    ...(configured.startupProbe ? { startupProbe: withProbeTiming(configured.startupProbe, settings.startupProbe) } : {}),
  };
}

/** extraEnv names, extra volume names and mount paths that mxstack already uses in this pod: refused. */
function collisionProblems(values: Values, group: WorkloadGroup, own: { containers: IContainer[]; volumes: IVolume[] }, settings: WorkloadLayer): string[] {
  const problems: string[] = [];
  const ownEnv = new Set(own.containers.flatMap((c) => (c.env ?? []).map((e) => e.name)));
  for (const env of settings.extraEnv ?? []) {
    if (ownEnv.has(String(env.name))) problems.push(`${settingPath(values, group, 'extraEnv')}: ${String(env.name)} is set by mxstack in this pod (its value is part of how the component is wired); use another name.`);
  }
  const ownVolumes = new Set(own.volumes.map((v) => v.name));
  for (const volume of settings.extraVolumes ?? []) {
    if (ownVolumes.has(String(volume.name))) problems.push(`${settingPath(values, group, 'extraVolumes')}: the volume name ${String(volume.name)} is mxstack's in this pod; use another name.`);
  }
  const ownPaths = new Set(own.containers.flatMap((c) => (c.volumeMounts ?? []).map((m) => m.mountPath)));
  for (const mount of settings.extraVolumeMounts ?? []) {
    if (ownPaths.has(String(mount.mountPath))) problems.push(`${settingPath(values, group, 'extraVolumeMounts')}: ${String(mount.mountPath)} is already mounted by mxstack in this pod; mount elsewhere.`);
  }
  return problems;
}

/**
 * Restricted-profile violations of the configured spec, each as a refusal naming the setting that caused
 * it. mxstack's containers also keep their read-only root filesystem (settings may only tighten).
 */
function securityProblems(values: Values, group: WorkloadGroup, spec: IPodSpec, ownNames: Set<string>, hostNetworkOptIn: boolean): string[] {
  const extraNames = new Set([...(spec.initContainers ?? []), ...spec.containers].map((c) => c.name).filter((name) => !ownNames.has(name)));
  const pathFor = (violation: string): string => {
    const container = /^container (\S+?)[: ]/.exec(violation)?.[1];
    if (container && extraNames.has(container)) {
      const isInit = (spec.initContainers ?? []).some((c) => c.name === container);
      return `${settingPath(values, group, isInit ? 'extraInitContainers' : 'extraContainers')} (${container}).securityContext`;
    }
    if (container) return settingPath(values, group, 'containerSecurityContext');
    if (/^volume /.test(violation)) return settingPath(values, group, 'extraVolumes');
    return settingPath(values, group, 'podSecurityContext');
  };
  const violations = restrictedProfileViolations(spec).filter((v) => !(hostNetworkOptIn && v.startsWith('hostNetwork')));
  const problems = violations.map((v) => `${pathFor(v)}: ${v} would break Pod Security "restricted", which mxstack's pods keep; remove or tighten the setting.`);
  for (const container of [...(spec.initContainers ?? []), ...spec.containers]) {
    if (ownNames.has(container.name) && container.securityContext?.readOnlyRootFilesystem !== true) {
      problems.push(`${settingPath(values, group, 'containerSecurityContext')}: readOnlyRootFilesystem must stay true for mxstack's container ${container.name} (it writes only to its mounted volumes; add an extraVolume for more).`);
    }
  }
  return problems;
}

function topologySpread(settings: WorkloadLayer, selector: Record<string, string>, replicas: number): Tree[] | undefined {
  const constraints = settings.topologySpreadConstraints;
  if (constraints) return constraints.map((c) => (c.labelSelector ? c : { ...c, labelSelector: { matchLabels: { ...selector } } }));
  if (replicas < 2) return undefined;
  return [{ maxSkew: 1, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: { ...selector } } }];
}

/** Present keys only: an unset setting leaves the pod spec as Kubernetes defaults it. */
function present<T extends object>(entries: T): Partial<T> {
  return Object.fromEntries(Object.entries(entries).filter(([, value]) => value !== undefined && !(Array.isArray(value) && value.length === 0) && !(typeof value === 'object' && value !== null && !Array.isArray(value) && Object.keys(value).length === 0))) as Partial<T>;
}

/**
 * A pod template of the stack: hardened contexts with the settings merged over them, the settings'
 * scheduling, extension points and metadata, no service-account token unless asked, no service links.
 * Throws a ValuesError naming the values path when a setting would loosen the hardening or collide.
 */
export function configuredPodTemplate(stack: Stack, options: ConfiguredPodOptions): IPodTemplateSpec {
  const { values } = stack;
  const settings = workloadSettingsFor(values, options.group);
  refuseOwnedLabels(values, options.group, 'podLabels', settings.podLabels);
  const ownContainers = [...(options.initContainers ?? []), ...options.containers];
  const ownVolumes = options.volumes ?? [];
  const collisions = collisionProblems(values, options.group, { containers: ownContainers, volumes: ownVolumes }, settings);
  if (collisions.length > 0) throw new ValuesError(collisions);
  const extra = (list: Tree[] | undefined) => (list ?? []).map((c) => hardenedContainer(c as unknown as IContainer, c.securityContext as Tree | undefined));
  const initContainers = [...extra(settings.extraInitContainers), ...(options.initContainers ?? []).map((c) => configuredContainer(c, settings))];
  const account = values[options.group].serviceAccount;
  const selector = stack.selectorLabels(options.component);
  const spec: IPodSpec = {
    serviceAccountName: serviceAccountNameOf(stack, options.group, options.component),
    automountServiceAccountToken: account.automountServiceAccountToken,
    enableServiceLinks: false,
    securityContext: deepMergeMappings(restrictedPodSecurityContext(options.uid, options.gid) as Tree, settings.podSecurityContext ?? {}),
    ...(initContainers.length > 0 ? { initContainers } : {}),
    containers: [...options.containers.map((c) => configuredContainer(c, settings)), ...extra(settings.extraContainers)],
    ...present({
      volumes: [...ownVolumes, ...((settings.extraVolumes ?? []) as unknown as IVolume[])],
      imagePullSecrets: settings.imagePullSecrets,
      nodeSelector: settings.nodeSelector,
      tolerations: settings.tolerations as IPodSpec['tolerations'],
      affinity: settings.affinity as IPodSpec['affinity'],
      topologySpreadConstraints: topologySpread(settings, selector, options.replicas ?? 1) as IPodSpec['topologySpreadConstraints'],
      priorityClassName: settings.priorityClassName,
      schedulerName: settings.schedulerName,
      runtimeClassName: settings.runtimeClassName,
      hostAliases: settings.hostAliases as IPodSpec['hostAliases'],
      restartPolicy: options.restartPolicy,
      terminationGracePeriodSeconds: settings.terminationGracePeriodSeconds ?? options.terminationGracePeriodSeconds,
    }),
    ...(options.hostNetwork ? { hostNetwork: true, dnsPolicy: 'ClusterFirstWithHostNet' } : {}),
  };
  const problems = securityProblems(values, options.group, spec, new Set(ownContainers.map((c) => c.name)), options.hostNetwork === true);
  if (problems.length > 0) throw new ValuesError(problems);
  const annotations = { ...settings.podAnnotations, ...options.annotations };
  return {
    metadata: {
      labels: { ...settings.podLabels, ...stack.labels(options.component) },
      ...(Object.keys(annotations).length > 0 ? { annotations } : {}),
    },
    spec,
  };
}

/** The volume `config` holding the files of the component's ConfigMap (named like the component's objects). */
export function configMapVolume(stack: Stack, component: string): IVolume {
  return { name: 'config', configMap: { name: stack.objectName(component) } };
}

export interface ConfiguredDeploymentProps extends Omit<ConfiguredPodOptions, 'annotations' | 'replicas' | 'restartPolicy'> {
  /**
   * The files of the component's ConfigMap. The pods read them once at start, so their checksum is a pod
   * annotation (a changed file rolls the pods), and the ConfigMap is the pods' first volume, `config`.
   * @default - no ConfigMap: no checksum, no `config` volume
   */
  configFiles?: Record<string, string>;
  /**
   * Pods the Deployment runs. With `autoscaled` this is the autoscaler's floor: it still decides the
   * default spread over nodes, but the Deployment leaves its replica count to the autoscaler.
   */
  replicas: number;
  /**
   * An autoscaler owns the replica count: the Deployment names none, so an apply never resets it.
   * @default false
   */
  autoscaled?: boolean;
  /**
   * How pods are replaced on a change.
   * @default - Kubernetes' default (a rolling update)
   */
  strategy?: IDeploymentStrategy;
  /**
   * The Deployment's own labels and annotations.
   * @default workloadMeta(stack, group, component) - with the group's workload labels and annotations
   */
  metadata?: IObjectMeta;
}

/**
 * A component's Deployment: its metadata, the selector on the component's labels and the configured pod
 * template (configuredPodTemplate), with the config checksum and the `config` volume when it has files.
 */
export function configuredDeployment(stack: Stack, props: ConfiguredDeploymentProps): Deployment {
  const { configFiles, replicas, autoscaled, strategy, metadata, volumes, ...pod } = props;
  return new Deployment({
    metadata: metadata ?? workloadMeta(stack, props.group, props.component),
    spec: {
      ...(autoscaled ? {} : { replicas }),
      ...(strategy ? { strategy } : {}),
      selector: { matchLabels: stack.selectorLabels(props.component) },
      template: configuredPodTemplate(stack, {
        ...pod,
        ...(configFiles ? { annotations: { [configChecksumAnnotation]: configChecksum(configFiles) } } : {}),
        replicas,
        volumes: [...(configFiles ? [configMapVolume(stack, props.component)] : []), ...(volumes ?? [])],
      }),
    },
  });
}

export interface ConfiguredJobProps extends Omit<ConfiguredPodOptions, 'replicas' | 'restartPolicy' | 'hostNetwork'> {
  /** Retries of a failed pod before the Job fails. */
  backoffLimit: number;
  /** The whole run's limit: a hung run is stopped, never left holding its volumes. */
  activeDeadlineSeconds: number;
  /**
   * Seconds after the end at which Kubernetes deletes the finished Job.
   * @default - kept (a CronJob's history limits prune its Jobs)
   */
  ttlSecondsAfterFinished?: number;
}

/** A run-once Job's spec (a Job, or a CronJob's jobTemplate): the configured pod, never restarted in place. */
export function configuredJobSpec(stack: Stack, props: ConfiguredJobProps): IJobSpec {
  const { backoffLimit, activeDeadlineSeconds, ttlSecondsAfterFinished, ...pod } = props;
  return {
    backoffLimit,
    activeDeadlineSeconds,
    ...(ttlSecondsAfterFinished !== undefined ? { ttlSecondsAfterFinished } : {}),
    template: configuredPodTemplate(stack, { ...pod, restartPolicy: 'Never' }),
  };
}
