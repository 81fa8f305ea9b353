/**
 * `mxstack restore FILE`: never leaves the stack worse than before.
 *
 *  1. The whole archive is verified (structure, every checksum, the manifest), then compared with the
 *     stack (server name, Synapse and PostgreSQL versions). Any problem: one sentence, nothing changed.
 *  2. While Synapse keeps serving the current data, the dump is loaded into a new database
 *     <db>_mxstack_restore and the media into <media store>/.mxstack-restore-staging (the archive is read a
 *     second time and every checksum checked again, so a file changed between the passes is refused).
 *  3. Synapse is stopped. In ONE transaction the current database is renamed <db>_mxstack_previous and the
 *     restored one takes its name: that commit is the point of no return. The signing key and the media
 *     store are swapped right after (the old media moved to .mxstack-before-restore).
 *  4. Synapse starts and must become healthy. If anything in 3–4 fails, every swap done is undone and
 *     Synapse started again on the previous data. Only after success are the previous copies removed.
 *
 * With built-in 2FA (the auth component) the archive also holds the auth database's dump: it is loaded
 * into <db>_auth_mxstack_restore beside the other, the auth component is stopped with Synapse, both
 * databases are swapped in the SAME transaction, and the auth component must become healthy too, or both
 * swaps are undone. An archive made with 2FA off leaves the stack's auth database as it is (accounts not
 * there import their Synapse password at the first sign-in); an archive with the auth database is refused
 * by a stack with 2FA off (see incompatibility in manifest.ts).
 *
 * A restore killed before step 3 leaves the stack serving the previous data (on the local target a
 * Synapse held stopped is started again by the next `up`). Killed during step 3 (a few renames,
 * milliseconds), the database may already be the restored one: see docs/backup.md.
 *
 * Test hook: MXSTACK_RESTORE_TEST_PAUSE_AT=database-load|media-staged|synapse-stopped makes the restore
 * print "restore: paused at <point>" and wait there forever (tests kill it at that point).
 */
import { once } from 'node:events';
import type { StreamingCommand, Target } from '../../targets/target.js';
import { readArchive, type ArchiveContents, type PartSink } from './archive-reader.js';
import { ArchiveMismatchError, authDatabasePlan, incompatibility, type PartKind } from './manifest.js';
import { authDatabaseName, databaseExists, lastLines, liveStack, quoteIdentifier, quoteLiteral, runSql } from './live.js';
import { restoreWorkPrefix } from './create.js';
import type { Progress } from './progress.js';

export const pauseEnvironmentVariable = 'MXSTACK_RESTORE_TEST_PAUSE_AT';
export type PausePoint = 'database-load' | 'media-staged' | 'synapse-stopped';

const mediaStaging = `${restoreWorkPrefix}restore-staging`;
const mediaPrevious = `${restoreWorkPrefix}before-restore`;

export interface RestoreOptions {
  file: string;
  progress?: Progress;
  pauseAt?: string;
}

export interface RestoreResult {
  manifest: ArchiveContents['manifest'];
  bytes: number;
}

/** Names a restore uses beside the stack's database. */
export function restoreDatabaseNames(database: string) {
  return { staging: `${database}_mxstack_restore`, previous: `${database}_mxstack_previous` };
}

/** One database a restore replaces: its name, where the archive's copy is loaded, where the current one goes. */
interface DatabaseSwap {
  name: string;
  staging: string;
  previous: string;
  /** Whether the database exists now (a stack whose auth component never started has no auth database). */
  exists: boolean;
}

const swapOf = (name: string, exists = true): DatabaseSwap => ({ name, ...restoreDatabaseNames(name), exists });

async function pauseIfAsked(point: PausePoint, options: RestoreOptions): Promise<void> {
  if (options.pauseAt !== point) return;
  options.progress?.(`restore: paused at ${point} (test hook ${pauseEnvironmentVariable})`);
  await new Promise(() => setInterval(() => undefined, 60_000));
}

/** Writes to a command's stdin with backpressure; fails if the command exits first. */
async function feed(command: StreamingCommand, chunk: Buffer, what: string): Promise<void> {
  if (command.stdin.write(chunk)) return;
  const exited = command.finished.then(({ exitCode, stderr }) => {
    throw new Error(`${what} stopped early (exit ${exitCode}): ${lastLines(stderr)}`);
  });
  await Promise.race([once(command.stdin, 'drain'), exited]);
}

async function finish(command: StreamingCommand, what: string): Promise<void> {
  command.stdin.end();
  const { exitCode, stderr } = await command.finished;
  if (exitCode !== 0) throw new Error(`${what} failed (exit ${exitCode}): ${lastLines(stderr)}`);
}

async function mustExec(target: Target, component: 'synapse' | 'postgresql', argv: string[], what: string): Promise<void> {
  const result = await target.exec(component, argv, { timeoutMs: 600_000 });
  if (result.exitCode !== 0) throw new Error(`${what} failed: ${lastLines(result.stderr)}`);
}

/**
 * Moves every entry of the media store into `outOf` (a directory inside it), then every entry of `into`
 * up into the media store. Run as Synapse's user, inside the media store only (which it owns).
 */
function moveMediaArgv(mediaStore: string, outOf: string, into: string): string[] {
  const script = [
    'set -e',
    'cd "$1"',
    'mkdir -p "$2"',
    'for e in *; do if [ -e "$e" ] || [ -L "$e" ]; then mv "$e" "$2/"; fi; done',
    'if [ -d "$3" ]; then for e in "$3"/*; do if [ -e "$e" ] || [ -L "$e" ]; then mv "$e" .; fi; done; rmdir "$3"; fi',
  ].join('\n');
  return ['sh', '-c', script, 'sh', mediaStore, outOf, into];
}

const createDatabaseSql = (name: string, owner: string) =>
  `CREATE DATABASE ${quoteIdentifier(name)} OWNER ${quoteIdentifier(owner)} TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C';`;

/**
 * Step 2: load the dumps and stage the media while Synapse serves the current data. The archive's streamed
 * parts come in order (database, auth database, media): each kind gets its own command, the previous one
 * finished (and checked) when the next kind starts.
 */
async function stageArchive(target: Target, options: RestoreOptions, contents: ArchiveContents, databases: DatabaseSwap[]): Promise<void> {
  const { stack } = target;
  const progress = options.progress;
  const mediaStore = stack.placement.paths.mediaStore;
  const [synapseDb, authDb] = databases;
  await mustExec(target, 'synapse', ['rm', '-rf', '--', `${mediaStore}/${mediaStaging}`], 'removing old media staging');
  await mustExec(target, 'synapse', ['mkdir', '--', `${mediaStore}/${mediaStaging}`], 'creating the media staging directory');
  for (const db of databases) await runSql(target, createDatabaseSql(db.staging, stack.database.user), `creating database ${db.staging}`);

  const databaseChunks = contents.manifest.parts.filter((p) => p.kind === 'database').map((p) => p.name);
  const pauseChunk = databaseChunks[Math.floor(databaseChunks.length / 2)];
  let paused = false;
  const pgRestore = (into: string) =>
    target.spawn('postgresql', [...target.postgresqlTool('pg_restore'), '--exit-on-error', '--no-owner', `--role=${stack.database.user}`, '--no-password', '-d', into]);
  const starters: Record<'database' | 'auth-database' | 'media', () => { command: StreamingCommand; what: string }> = {
    database: () => {
      progress?.(`restore: loading the database into ${synapseDb!.staging}`);
      return { command: pgRestore(synapseDb!.staging), what: 'pg_restore' };
    },
    'auth-database': () => {
      if (!authDb) throw new Error('the archive holds an auth database but this stack has none to restore it into.');
      progress?.(`restore: loading the auth database into ${authDb.staging}`);
      return { command: pgRestore(authDb.staging), what: 'pg_restore of the auth database' };
    },
    media: () => {
      progress?.('restore: staging the media store');
      return { command: target.spawn('synapse', ['tar', '--extract', '--file=-', `--directory=${mediaStore}/${mediaStaging}`, '--no-same-owner']), what: 'extracting the media' };
    },
  };
  let current: { kind: PartKind; command: StreamingCommand; what: string } | undefined;
  const started: StreamingCommand[] = [];
  const sinkFor = (kind: 'database' | 'auth-database' | 'media'): PartSink => ({
    async write(chunk, part) {
      if (current?.kind !== kind) {
        if (current) await finish(current.command, current.what);
        current = { kind, ...starters[kind]() };
        started.push(current.command);
      }
      await feed(current.command, chunk, current.what);
      if (part === pauseChunk && !paused) {
        paused = true;
        await pauseIfAsked('database-load', options);
      }
    },
  });
  try {
    const sinks = { database: sinkFor('database'), 'auth-database': sinkFor('auth-database'), media: sinkFor('media') };
    const again = await readArchive(options.file, { sinks, ...(progress ? { progress } : {}), label: 'restoring' });
    if (again.manifest.createdAt !== contents.manifest.createdAt) throw new Error(`${options.file} changed during the restore.`);
    if (current) await finish(current.command, current.what);
  } catch (error) {
    for (const command of started) command.kill();
    throw error;
  }
}

/** Renames in ONE transaction: every database in `pairs` goes from its first name to its second. */
function renameDatabases(target: Target, renames: [from: string, to: string][], what: string): Promise<string> {
  const names = renames.flat();
  return runSql(
    target,
    [
      'BEGIN;',
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname IN (${names.map(quoteLiteral).join(', ')}) AND pid <> pg_backend_pid();`,
      ...renames.map(([from, to]) => `ALTER DATABASE ${quoteIdentifier(from)} RENAME TO ${quoteIdentifier(to)};`),
      'COMMIT;',
    ].join('\n'),
    what,
  );
}

/** The renames that put the archive's databases in place (current → previous, staging → current). */
function swapInRenames(databases: readonly DatabaseSwap[]): [string, string][] {
  return databases.flatMap((db): [string, string][] => [...(db.exists ? [[db.name, db.previous] as [string, string]] : []), [db.staging, db.name]]);
}

/** The renames that undo swapInRenames (current → staging, previous → current). */
function swapBackRenames(databases: readonly DatabaseSwap[]): [string, string][] {
  return databases.flatMap((db): [string, string][] => [[db.name, db.staging], ...(db.exists ? [[db.previous, db.name] as [string, string]] : [])]);
}

interface Swap {
  what: string;
  undo: () => Promise<void>;
}

/** Step 3–4: the swaps, each with its undo; the database rename is the commit point. */
async function swapAndStart(target: Target, contents: ArchiveContents, databases: DatabaseSwap[], withAuth: boolean, progress?: Progress): Promise<void> {
  const { stack } = target;
  const done: Swap[] = [];
  const mediaStore = stack.placement.paths.mediaStore;
  const swapMedia = async () => {
    await mustExec(target, 'synapse', moveMediaArgv(mediaStore, mediaPrevious, mediaStaging), 'swapping the media store');
    done.push({ what: 'media', undo: () => mustExec(target, 'synapse', moveMediaArgv(mediaStore, mediaStaging, mediaPrevious), 'putting the previous media back') });
  };
  try {
    await renameDatabases(target, swapInRenames(databases), 'swapping the databases');
    done.push({ what: 'database', undo: async () => void (await renameDatabases(target, swapBackRenames(databases), 'putting the previous databases back')) });
    const previous = databases.filter((db) => db.exists).map((db) => db.previous);
    progress?.(`restore: ${databases.length === 1 ? 'database' : 'databases'} swapped (the previous ${previous.length === 1 ? 'one is' : 'ones are'} ${previous.join(' and ') || 'none'} until the restore succeeds)`);

    const previousKey = await target.readSecret(stack.secrets.signingKey);
    await target.writeSecret(stack.secrets.signingKey, contents.signingKey);
    done.push({
      what: 'signing key',
      undo: async () => {
        if (previousKey !== undefined) await target.writeSecret(stack.secrets.signingKey, previousKey);
        await target.applySecrets([]);
      },
    });
    await target.applySecrets([]);

    // On Kubernetes the media volume is reachable only through a running Synapse pod.
    if (target.kind === 'local') await swapMedia();
    if (withAuth) {
      progress?.('restore: starting the auth component');
      await target.start('auth');
    }
    progress?.('restore: starting Synapse');
    await target.start('synapse');
    if (target.kind !== 'local') await swapMedia();
  } catch (error) {
    progress?.(`restore: failed (${error instanceof Error ? error.message : String(error)}); putting the previous data back`);
    await target.stop('synapse').catch(() => undefined);
    if (withAuth) await target.stop('auth').catch(() => undefined);
    for (const swap of done.reverse()) {
      if (swap.what === 'media' && target.kind !== 'local') continue;
      await swap.undo();
    }
    if (withAuth) await target.start('auth');
    await target.start('synapse');
    throw error;
  }
}

export async function restoreBackup(target: Target, options: RestoreOptions): Promise<RestoreResult> {
  const progress = options.progress;
  const { stack } = target;
  progress?.(`restore: verifying ${options.file}`);
  const contents = await readArchive(options.file, progress ? { progress } : {});
  const refusal = incompatibility(contents.manifest, await liveStack(target));
  if (refusal) throw new ArchiveMismatchError(refusal);
  const authPlan = authDatabasePlan(contents.manifest, stack.auth !== undefined);
  const authDatabase = authDatabaseName(target);
  const databases = [swapOf(stack.database.name)];
  if (authPlan === 'replace' && authDatabase !== undefined) databases.push(swapOf(authDatabase, await databaseExists(target, authDatabase)));
  for (const db of databases) {
    if (await databaseExists(target, db.previous)) {
      throw new ArchiveMismatchError(
        `database ${db.previous} exists, left by an interrupted restore: check which data you want (docs/backup.md) and drop the other before restoring again.`,
      );
    }
  }
  progress?.(`restore: archive intact (${contents.manifest.serverName}, made ${contents.manifest.createdAt}); nothing changed so far`);
  if (authPlan === 'keep') {
    progress?.(`restore: the archive was made with 2FA off: the auth database ${authDatabase ?? ''} is kept as it is (users not in it sign in once with their Synapse password from the archive)`);
  }

  const dropStaging = (what: string) =>
    Promise.all(databases.map((db) => runSql(target, `DROP DATABASE IF EXISTS ${quoteIdentifier(db.staging)} WITH (FORCE);`, `removing database ${db.staging}${what}`)));
  await dropStaging(' of an earlier attempt');
  try {
    await stageArchive(target, options, contents, databases);
  } catch (error) {
    await dropStaging('').catch(() => undefined);
    throw error;
  }
  await pauseIfAsked('media-staged', options);

  const withAuth = authPlan === 'replace';
  progress?.(withAuth ? 'restore: stopping Synapse and the auth component' : 'restore: stopping Synapse');
  await target.stop('synapse');
  if (withAuth) {
    try {
      await target.stop('auth');
    } catch (error) {
      await target.start('synapse');
      throw error;
    }
  }
  await pauseIfAsked('synapse-stopped', options);
  await swapAndStart(target, contents, databases, withAuth, progress);

  progress?.(`restore: ${withAuth ? 'Synapse and the auth component are' : 'Synapse is'} healthy on the restored data; removing the previous copies`);
  for (const db of databases) {
    if (db.exists) await runSql(target, `DROP DATABASE IF EXISTS ${quoteIdentifier(db.previous)} WITH (FORCE);`, `removing database ${db.previous}`);
  }
  await mustExec(target, 'synapse', ['rm', '-rf', '--', `${stack.placement.paths.mediaStore}/${mediaPrevious}`], 'removing the previous media');
  return { manifest: contents.manifest, bytes: contents.bytes };
}
