/**
 * ServiceMonitors for the Prometheus Operator: Synapse, the router and coturn. Each selects its
 * component's Service by the component's selector labels and scrapes the Service port named `metrics`.
 */
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor';
import type { Stack } from '../../stack/model.js';
import type { KubeObject } from './objects.js';
import { workersEnabled } from '../../values/worker-pools.js';
import { runningPools, workerPoolComponent } from '../../components/synapse/worker-kubernetes.js';

/** The Service port name every scraped Service declares. */
export const metricsPortName = 'metrics';

export const metricsPaths = {
  synapse: '/_synapse/metrics',
  router: '/metrics',
  coturn: '/metrics',
  redis: '/metrics',
} as const;

type ScrapedComponent = keyof typeof metricsPaths;

function scrapedComponents(stack: Stack): ScrapedComponent[] {
  const v = stack.values;
  return [
    ...(v.synapse.metrics.enabled ? (['synapse'] as const) : []),
    'router' as const,
    ...(v.coturn.enabled && v.coturn.prometheusExporter.enabled ? (['coturn'] as const) : []),
    ...(workersEnabled(v) && v.redis.metrics.enabled ? (['redis'] as const) : []),
  ];
}

/** Each Synapse worker pool: its headless Service's `metrics` port, Synapse's path. */
function workerPoolMonitors(stack: Stack): { component: string; path: string }[] {
  if (!stack.values.synapse.metrics.enabled) return [];
  return runningPools(stack).map((pool) => ({ component: workerPoolComponent(pool), path: metricsPaths.synapse }));
}

export function buildServiceMonitors(stack: Stack): KubeObject[] {
  const { serviceMonitor } = stack.values.metrics;
  if (!serviceMonitor.enabled) return [];
  const monitored = [...scrapedComponents(stack).map((component) => ({ component, path: metricsPaths[component] })), ...workerPoolMonitors(stack)];
  return monitored.map(
    ({ component, path }) =>
      new ServiceMonitor({
        metadata: { name: stack.objectName(component), labels: { ...stack.labels(component), ...serviceMonitor.labels } },
        spec: {
          selector: { matchLabels: { ...stack.selectorLabels(component) } },
          endpoints: [{ port: metricsPortName, path, interval: serviceMonitor.interval }],
        },
      }),
  );
}
