/**
 * ServiceMonitors for the Prometheus Operator: Synapse, the router and coturn. Each selects its
 * component's Service by the component's selector labels and scrapes the Service port named `metrics`.
 */
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor';
import type { Stack } from '../../stack/model.js';
import type { KubeObject } from './objects.js';
import { workersEnabled } from '../../values/worker-pools.js';

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

export function buildServiceMonitors(stack: Stack): KubeObject[] {
  const { serviceMonitor } = stack.values.metrics;
  if (!serviceMonitor.enabled) return [];
  return scrapedComponents(stack).map(
    (component) =>
      new ServiceMonitor({
        metadata: { name: stack.objectName(component), labels: { ...stack.labels(component), ...serviceMonitor.labels } },
        spec: {
          selector: { matchLabels: { ...stack.selectorLabels(component) } },
          endpoints: [{ port: metricsPortName, path: metricsPaths[component], interval: serviceMonitor.interval }],
        },
      }),
  );
}
