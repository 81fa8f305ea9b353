/** Where the Kubernetes target puts things: Service DNS names, container ports, mount paths. */
import { kubernetesWorkerPorts } from '../../components/synapse/worker-kubernetes.js';
import type { Values } from '../../values/schema.js';
import type { Placement } from '../../stack/model.js';
import { cloudnativePgClusterName, databaseProvider } from '../../stack/database.js';

export const kubernetesPaths = {
  synapseConfigDir: '/config',
  synapseSecretsDir: '/secrets',
  signingKey: '/keys/signing.key',
  mediaStore: '/data/media_store',
  synapseDataDir: '/data',
  synapseRuntimeDir: '/run/synapse',
  routerConfigDir: '/usr/local/etc/haproxy',
  routerFederationTlsDir: '/federation-tls',
  coturnTlsDir: '/tls',
  authConfigDir: '/config',
  authSecretsDir: '/secrets',
  redisConfigDir: '/config',
  redisSecretsDir: '/secrets',
  redisDataDir: '/data',
} as const;


export function kubernetesPlacement(values: Values, release: string): Placement {
  return {
    target: 'kubernetes',
    bindAddress: '0.0.0.0',
    hosts: {
      synapse: `${release}-synapse`,
      // A CloudNativePG Cluster is reached through its read-write Service (always the primary).
      postgresql: databaseProvider(values) === 'cloudnative-pg' ? `${cloudnativePgClusterName(values, release)}-rw` : `${release}-postgresql`,
      element: `${release}-element`,
      router: `${release}-router`,
      coturn: `${release}-coturn`,
      auth: `${release}-auth`,
      redis: `${release}-redis`,
    },
    ports: {
      synapseHttp: values.synapse.service.targetPort,
      synapseMetrics: values.synapse.metrics.port,
      synapseReplication: kubernetesWorkerPorts.replication,
      postgresql: 5432,
      redis: values.redis.port,
      element: 8080,
      router: values.router.port,
      routerMetrics: values.router.metricsPort,
      routerFederation: values.router.federation.port,
      turn: values.coturn.listeningPort,
      turns: values.coturn.tlsListeningPort,
      turnMetrics: values.coturn.prometheusExporter.port,
      relayMin: values.coturn.relayPortRange.min,
      relayMax: values.coturn.relayPortRange.max,
      auth: values.auth.port,
      authAdmin: values.auth.adminPort,
    },
    paths: { ...kubernetesPaths },
    synapseWorkers: { kind: 'kubernetes', ...kubernetesWorkerPorts },
  };
}
