/** Redis on the local target (with Synapse workers only): the runtime's redis-server as `redis`. */
import { loopback, type LocalProcess, type LocalProcessContext } from '../../kit/local-process.js';
import { workerProcesses } from '../../values/worker-pools.js';

export function redisLocalProcess({ stack, dirs, users }: LocalProcessContext): LocalProcess | undefined {
  if (workerProcesses(stack.values).length === 0) return undefined;
  const port = stack.placement.ports.redis;
  return {
    package: 'redis-server',
    runsIn: 'runtime',
    user: users.redis,
    argv: ['redis-server', `${dirs.redisConfigDir}/redis.conf`],
    stopSignal: 'SIGTERM',
    health: { kind: 'tcp', host: loopback, port },
    startTimeoutSeconds: 60,
    ports: { redis: port },
  };
}
