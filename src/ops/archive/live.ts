/**
 * What backup and restore ask of the running stack: its versions, and SQL run with psql inside the
 * postgresql component (as the database superuser, over the local socket: no password anywhere).
 */
import type { Target } from '../../targets/target.js';
import type { LiveStack } from './manifest.js';

/** A PostgreSQL identifier, quoted. */
export const quoteIdentifier = (name: string) => `"${name.replace(/"/g, '""')}"`;
/** A PostgreSQL string literal. */
export const quoteLiteral = (text: string) => `'${text.replace(/'/g, "''")}'`;

/** Runs SQL (ON_ERROR_STOP) in the maintenance database; returns psql's unaligned output. */
export async function runSql(target: Target, sql: string, what: string): Promise<string> {
  const result = await target.exec('postgresql', [...target.postgresqlTool('psql'), '-X', '-q', '-tA', '-v', 'ON_ERROR_STOP=1', '-d', 'postgres'], {
    stdin: `${sql}\n`,
    timeoutMs: 300_000,
  });
  if (result.exitCode !== 0) throw new Error(`${what} failed: ${lastLines(result.stderr)}`);
  return result.stdout.trim();
}

export const lastLines = (text: string, count = 3) =>
  text
    .trim()
    .split('\n')
    .slice(-count)
    .join(' | ') || 'no message';

export async function databaseExists(target: Target, name: string): Promise<boolean> {
  return (await runSql(target, `SELECT 1 FROM pg_database WHERE datname = ${quoteLiteral(name)};`, `looking up database ${name}`)) === '1';
}

export async function synapseVersion(target: Target): Promise<string> {
  return target.withSynapse(async (baseUrl) => {
    // Synapse answers this admin endpoint without authentication.
    let response: Response;
    try {
      response = await fetch(new URL('_synapse/admin/v1/server_version', baseUrl), { signal: AbortSignal.timeout(30_000) });
    } catch {
      throw new Error(`Synapse does not answer at ${baseUrl}: it must run (an interrupted restore may have left it stopped; see docs/backup.md).`);
    }
    if (!response.ok) throw new Error(`Synapse did not report its version (HTTP ${response.status}).`);
    const body = (await response.json()) as { server_version?: string };
    if (typeof body.server_version !== 'string') throw new Error('Synapse did not report its version.');
    return body.server_version;
  });
}

/** What an archive is checked against: the stack's server name, the versions running now, whether it has 2FA. */
export async function liveStack(target: Target): Promise<LiveStack> {
  return {
    serverName: target.stack.serverName,
    synapseVersion: await synapseVersion(target),
    postgresqlVersion: await runSql(target, 'SHOW server_version;', 'asking PostgreSQL its version'),
    auth: target.stack.auth !== undefined,
  };
}

/** The auth component's database (StackAuth.database) on the stack's PostgreSQL; undefined without the auth component. */
export function authDatabaseName(target: Target): string | undefined {
  return target.stack.auth?.database;
}
