/** Synapse on the local target: the runtime's homeserver as `matrix-synapse`, reading its two config files. */
import { loopback, type LocalProcess, type LocalProcessContext } from '../../kit/local-process.js';

export function synapseLocalProcess({ stack, dirs, users }: LocalProcessContext): LocalProcess {
  const { ports } = stack.placement;
  return {
    package: 'matrix-synapse',
    runsIn: 'runtime',
    user: users.synapse,
    argv: [
      'python3',
      '-m',
      'synapse.app.homeserver',
      '--config-path',
      `${dirs.synapseConfigDir}/homeserver.yaml`,
      '--config-path',
      `${dirs.synapseSecretsDir}/homeserver-secrets.yaml`,
    ],
    stopSignal: 'SIGTERM',
    health: { kind: 'http', url: `http://${loopback}:${ports.synapseHttp}/health` },
    startTimeoutSeconds: 300,
    ports: { http: ports.synapseHttp, ...(stack.values.synapse.metrics.enabled ? { metrics: ports.synapseMetrics } : {}) },
  };
}
