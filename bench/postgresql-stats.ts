/**
 * PostgreSQL's commit path as counters, read from a running local stack: committed transactions and WAL
 * flushes (fsyncs) and writes (pg_stat_database, pg_stat_io, PostgreSQL 18). Group commit (commit_delay)
 * shows as fewer WAL flushes per message, a number the machine's load does not blur the way it blurs msg/s.
 *
 * psql runs as the runtime's postgres user inside the PostgreSQL process's own mount namespace and root
 * (nsenter -m -r), over the Unix socket with peer authentication: no password is read or passed.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

export interface PostgresqlCounters {
  commits: number;
  walFsyncs: number;
  walWrites: number;
}

interface PlanExcerpt {
  postgresql?: { binDir: string; dataDir: string; port: number };
  components: Array<{ name: string; user: { uid: number; gid: number } }>;
}

const countersQuery =
  "SELECT (SELECT sum(xact_commit) FROM pg_stat_database), (SELECT sum(fsyncs) FROM pg_stat_io WHERE object = 'wal'), (SELECT sum(writes) FROM pg_stat_io WHERE object = 'wal')";

/** The counters now, or undefined when they cannot be read (the reason goes to stderr). */
export async function readPostgresqlCounters(stateDir: string, postgresPid: number): Promise<PostgresqlCounters | undefined> {
  try {
    const plan = JSON.parse(readFileSync(join(stateDir, 'plan.json'), 'utf8')) as PlanExcerpt;
    const user = plan.components.find((component) => component.name === 'postgresql')?.user;
    if (!plan.postgresql || !user) return undefined;
    // The 5th line of postmaster.pid is the socket directory the server uses.
    const socketDir = readFileSync(join(plan.postgresql.dataDir, 'postmaster.pid'), 'utf8').split('\n')[4]?.trim() || '/run/postgresql';
    const { stdout } = await promisify(execFile)(
      'nsenter',
      ['-t', String(postgresPid), '-m', '-r', '-S', String(user.uid), '-G', String(user.gid), '--', `${plan.postgresql.binDir}/psql`, '-X', '-tA', '-h', socketDir, '-p', String(plan.postgresql.port), '-d', 'postgres', '-c', countersQuery],
      { timeout: 30_000, env: { PATH: '/usr/bin:/bin', LANG: 'C.UTF-8' } },
    );
    const [commits, walFsyncs, walWrites] = stdout.trim().split('|').map(Number);
    if (![commits, walFsyncs, walWrites].every(Number.isFinite)) return undefined;
    return { commits: commits!, walFsyncs: walFsyncs!, walWrites: walWrites! };
  } catch (error) {
    process.stderr.write(`PostgreSQL counters not read: ${(error as Error).message.split('\n')[0]}\n`);
    return undefined;
  }
}

export function countersBetween(before: PostgresqlCounters, after: PostgresqlCounters): PostgresqlCounters {
  return { commits: after.commits - before.commits, walFsyncs: after.walFsyncs - before.walFsyncs, walWrites: after.walWrites - before.walWrites };
}
