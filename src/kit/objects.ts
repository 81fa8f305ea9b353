/** The shape every rendered Kubernetes object has, whatever model class built it. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata?: { name?: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  /** kubernetes-models classes validate against the upstream OpenAPI schema. */
  validate?: () => void;
}

/** Cluster-scoped kinds get no namespace. */
const clusterScoped = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'PersistentVolume', 'StorageClass']);

export function isNamespaced(object: KubeObject): boolean {
  return !clusterScoped.has(object.kind);
}

/** Deterministic order: by kind rank (what must exist first), then name. */
const kindOrder = [
  'Namespace',
  'ServiceAccount',
  'Secret',
  'ConfigMap',
  'PersistentVolumeClaim',
  'Service',
  'StatefulSet',
  'Deployment',
  'Job',
  'CronJob',
  'HorizontalPodAutoscaler',
  'PodDisruptionBudget',
  'NetworkPolicy',
  'Ingress',
  'HTTPRoute',
  'ServiceMonitor',
];

export function compareObjects(a: KubeObject, b: KubeObject): number {
  const rank = (o: KubeObject) => {
    const index = kindOrder.indexOf(o.kind);
    return index < 0 ? kindOrder.length : index;
  };
  return rank(a) - rank(b) || a.kind.localeCompare(b.kind) || (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? '');
}
