/**
 * Redis as Synapse's replication bus: pub/sub between the Synapse processes and a small shared cache.
 * Nothing is persisted (a restart loses only in-flight notifications, which the processes resynchronise
 * from the database). The password lives in a separate file that redis.conf includes, mounted from a
 * Secret, so redis.conf itself holds no secret.
 */
import { posix } from 'node:path';
import { redisSecretFiles, type Stack } from '../../stack/model.js';

/** redis.conf lines, one directive each (Redis reads no YAML or JSON). */
export function renderRedisConf(stack: Stack): string {
  const { placement } = stack;
  const { redis } = stack.values;
  const directives: [string, string][] = [
    ['bind', placement.bindAddress],
    ['port', String(placement.ports.redis)],
    ['protected-mode', 'yes'],
    ['daemonize', 'no'],
    // Logs go to standard output (the supervisor's log file, the container log).
    ['logfile', '""'],
    ['save', '""'],
    ['appendonly', 'no'],
    ['dir', placement.paths.redisDataDir],
    ['maxmemory', redis.maxMemory],
    // Only the cache has keys with a lifetime; pub/sub holds none.
    ['maxmemory-policy', 'volatile-lru'],
    ['include', posix.join(placement.paths.redisSecretsDir, redisSecretFiles.passwordConf)],
  ];
  return `${directives.map(([key, value]) => `${key} ${value}`).join('\n')}\n`;
}

/** The secret include: `requirepass <password>` (a password with whitespace or quotes is refused by generation). */
export function renderRedisPasswordConf(password: string): string {
  if (!/^[A-Za-z0-9_.~+/=-]+$/.test(password)) throw new Error('the Redis password must be letters, digits or _.~+/=- (regenerate it)');
  return `requirepass ${password}\n`;
}
