/** The router on the local target: the runtime's HAProxy as `haproxy`, in the foreground. */
import { loopback, type LocalProcess, type LocalProcessContext } from '../../kit/local-process.js';

export function routerLocalProcess({ stack, dirs, users }: LocalProcessContext): LocalProcess {
  const { ports } = stack.placement;
  return {
    package: 'haproxy',
    runsIn: 'runtime',
    user: users.haproxy,
    argv: ['haproxy', '-db', '-f', `${dirs.routerConfigDir}/haproxy.cfg`],
    stopSignal: 'SIGTERM',
    // The router answers /health on its metrics listener (monitor-uri), not on the public one.
    health: { kind: 'http', url: `http://${loopback}:${ports.routerMetrics}/health` },
    startTimeoutSeconds: 60,
    ports: { http: ports.router, metrics: ports.routerMetrics, ...(stack.values.router.federation.enabled ? { federation: ports.routerFederation } : {}) },
  };
}
