/**
 * The two workload shapes several components share: a Deployment reading its generated files from the
 * component's ConfigMap (rolled when they change), and the pod template of a run-to-completion Job.
 */
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import type { IDeploymentStrategy } from 'kubernetes-models/apps/v1/DeploymentStrategy';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IPodTemplateSpec } from 'kubernetes-models/v1/PodTemplateSpec';
import type { IVolume } from 'kubernetes-models/v1/Volume';
import type { Stack } from '../stack/model.js';
import { objectMeta, podMeta } from './meta.js';
import { configChecksum, configChecksumAnnotation, hardenedPodSpec, podAnnotations, type PodSettings } from './pod-security.js';

export interface ConfiguredDeploymentOptions {
  component: string;
  /** The image's own unprivileged user (and group, when another). */
  uid: number;
  settings: PodSettings;
  /** The files of the component's ConfigMap, mounted as the volume `config`; a change rolls the pods. */
  configData: Record<string, string>;
  /** Undefined when an autoscaler sets the replica count (applying one would fight it). */
  replicas: number | undefined;
  strategy?: IDeploymentStrategy;
  serviceAccountName?: string;
  containers: IContainer[];
  /** Volumes after `config`. */
  volumes: IVolume[];
}

/** A component's Deployment: its ConfigMap as the volume `config`, the checksum annotation, a hardened pod. */
export function configuredDeployment(stack: Stack, options: ConfiguredDeploymentOptions): Deployment {
  const { component, settings } = options;
  return new Deployment({
    metadata: objectMeta(stack, component),
    spec: {
      ...(options.replicas !== undefined ? { replicas: options.replicas } : {}),
      ...(options.strategy ? { strategy: options.strategy } : {}),
      selector: { matchLabels: stack.selectorLabels(component) },
      template: {
        // Programs read their files once at start: a changed file needs new pods.
        metadata: podMeta(stack, component, podAnnotations(settings, { [configChecksumAnnotation]: configChecksum(options.configData) })),
        spec: hardenedPodSpec(stack.values, {
          uid: options.uid,
          settings,
          ...(options.serviceAccountName ? { serviceAccountName: options.serviceAccountName } : {}),
          containers: options.containers,
          volumes: [{ name: 'config', configMap: { name: stack.objectName(component) } }, ...options.volumes],
        }),
      },
    },
  });
}

export interface JobPodOptions {
  component: string;
  uid: number;
  /** The security contexts of the component whose image the Job runs (its pod annotations are not the Job's). */
  contexts: Pick<PodSettings, 'podSecurityContext' | 'securityContext'>;
  container: IContainer;
  volumes: IVolume[];
  annotations?: Record<string, string>;
}

/** The pod template of a Job or CronJob: one hardened container, never restarted in place (the Job retries). */
export function jobPodTemplate(stack: Stack, options: JobPodOptions): IPodTemplateSpec {
  return {
    metadata: podMeta(stack, options.component, options.annotations ?? {}),
    spec: hardenedPodSpec(stack.values, {
      uid: options.uid,
      settings: { podAnnotations: {}, podSecurityContext: options.contexts.podSecurityContext, securityContext: options.contexts.securityContext },
      restartPolicy: 'Never',
      containers: [options.container],
      volumes: options.volumes,
    }),
  };
}
