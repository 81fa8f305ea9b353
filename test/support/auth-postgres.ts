/**
 * A throwaway real PostgreSQL for the auth tests: initdb + postgres from the runtime root filesystem
 * (mxstack's own Debian runtime), run as its `postgres` user through `chroot --userspec`, in a fresh
 * directory under the runtime's /tmp, on a Unix socket only (no TCP port), trust authentication. `stop()`
 * stops it and removes the directory.
 *
 *   const skip = authPostgresSkipReason();
 *   const pg = await startAuthPostgres();   // pg.pool: database `postgres`; pg.socketDir for other clients
 *   await pg.createDatabase('synapse');
 *   after(() => pg.stop());
 */
import { spawn, spawnSync } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { postgresqlBinDir, runtimeDir, runtimeIsPresent, runtimeUser } from '../../src/targets/local/runtime.js';

export interface AuthPostgres {
  /** Directory of the server's Unix socket (pg's `host`); port 5432. */
  readonly socketDir: string;
  /** Superuser role (trust authentication: any password is accepted). */
  readonly user: string;
  /** Pool on the `postgres` database. */
  readonly pool: pg.Pool;
  poolFor(database: string): pg.Pool;
  createDatabase(name: string): Promise<void>;
  stop(): Promise<void>;
}

/** Why the tests cannot run here (not root, no runtime), or false. */
export function authPostgresSkipReason(): string | false {
  const rootfs = runtimeDir();
  if (process.getuid?.() !== 0) return 'needs root (chroot into the runtime)';
  if (!runtimeIsPresent(rootfs)) return `no runtime at ${rootfs} (run: mxstack runtime setup)`;
  return false;
}

export async function startAuthPostgres(): Promise<AuthPostgres> {
  const rootfs = runtimeDir();
  const user = runtimeUser(rootfs, 'postgres');
  const runAsPostgres = (argv: string[]): ReturnType<typeof spawnSync> =>
    spawnSync('chroot', [`--userspec=${user.uid}:${user.gid}`, `--groups=${user.gid}`, rootfs, ...argv], { encoding: 'utf8', timeout: 20_000 });
  const hostDir = mkdtempSync(join(rootfs, 'tmp', 'mxstack-auth-'));
  chownSync(hostDir, user.uid, user.gid);
  const inside = hostDir.slice(rootfs.length);
  const bin = postgresqlBinDir(rootfs);
  const pools: pg.Pool[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(pools.map((pool) => pool.end().catch(() => undefined)));
    runAsPostgres([`${bin}/pg_ctl`, '-D', `${inside}/data`, '-m', 'immediate', '-w', '-t', '10', 'stop']);
    rmSync(hostDir, { recursive: true, force: true });
  };
  try {
    const initdb = runAsPostgres([`${bin}/initdb`, '-D', `${inside}/data`, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C.UTF-8', '--no-sync']);
    if (initdb.status !== 0) throw new Error(`initdb failed: ${String(initdb.stderr)}`);
    const server = spawn(
      'chroot',
      [`--userspec=${user.uid}:${user.gid}`, `--groups=${user.gid}`, rootfs, `${bin}/postgres`, '-D', `${inside}/data`, '-k', inside, '-c', 'listen_addresses=', '-c', 'dynamic_shared_memory_type=mmap', '-c', 'fsync=off'],
      { stdio: 'ignore', detached: false },
    );
    server.unref();
    const poolFor = (database: string): pg.Pool => {
      const pool = new pg.Pool({ host: hostDir, user: 'postgres', database, max: 4 });
      pools.push(pool);
      return pool;
    };
    const pool = poolFor('postgres');
    const deadline = Date.now() + 15_000;
    for (;;) {
      try {
        await pool.query('SELECT 1');
        break;
      } catch (error) {
        if (Date.now() > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    return {
      socketDir: hostDir,
      user: 'postgres',
      pool,
      poolFor,
      async createDatabase(name: string) {
        await pool.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
