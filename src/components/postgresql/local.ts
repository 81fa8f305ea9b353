/** PostgreSQL on the local target: the runtime's server as `postgres`, on the stack's port, its conf from the state directory. */
import { loopback, type LocalProcess, type LocalProcessContext } from '../../kit/local-process.js';
import type { Stack } from '../../stack/model.js';

/** Whether the stack runs its own PostgreSQL (not with an external database). */
export const postgresqlRuns = (stack: Stack) => stack.values.postgresql.enabled && !stack.values.synapse.database.external;

/** The server package of the major in /usr/lib/postgresql/<major>/bin (postgresql-18): its version is the server's. */
function postgresqlServerPackage(binDir: string): string {
  const major = /\/postgresql\/(\d+)\//.exec(binDir)?.[1];
  return major ? `postgresql-${major}` : 'postgresql';
}

export function postgresqlLocalProcess({ stack, dirs, users, postgresqlBinDir }: LocalProcessContext): LocalProcess | undefined {
  if (!postgresqlRuns(stack)) return undefined;
  const { ports } = stack.placement;
  return {
    package: postgresqlServerPackage(postgresqlBinDir),
    runsIn: 'runtime',
    user: users.postgres,
    argv: [`${postgresqlBinDir}/postgres`, '-D', dirs.postgresqlDataDir, '-c', `config_file=${dirs.postgresqlConfFile}`],
    // SIGINT is PostgreSQL's "fast" shutdown: sessions end, data is flushed.
    stopSignal: 'SIGINT',
    health: { kind: 'pg_isready', binDir: postgresqlBinDir, host: loopback, port: ports.postgresql },
    startTimeoutSeconds: 120,
    ports: { postgresql: ports.postgresql },
  };
}
