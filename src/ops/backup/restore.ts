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
 * A restore killed before step 3 leaves the stack serving the previous data (on the local target a
 * Synapse held stopped is started again by the next `up`). Killed during step 3 (a few renames,
 * milliseconds), the database may already be the restored one: see docs/backup.md.
 *
 * Test hook: MXSTACK_RESTORE_TEST_PAUSE_AT=database-load|media-staged|synapse-stopped makes the restore
 * print "restore: paused at <point>" and wait there forever (tests kill it at that point).
 */
import { once } from 'node:events';
import type { StreamingCommand, Target } from '../target.js';
import { readArchive, type ArchiveContents, type PartSink } from './archive-reader.js';
import { ArchiveMismatchError, incompatibility } from './manifest.js';
import { databaseExists, lastLines, liveStack, quoteIdentifier, runSql } from './live.js';
import { restoreWorkPrefix } from './backup.js';
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

/** Step 2: load the dump and stage the media while Synapse serves the current data. */
async function stageArchive(target: Target, options: RestoreOptions, contents: ArchiveContents, staging: string): Promise<void> {
  const { stack } = target;
  const progress = options.progress;
  const mediaStore = stack.placement.paths.mediaStore;
  await mustExec(target, 'synapse', ['rm', '-rf', '--', `${mediaStore}/${mediaStaging}`], 'removing old media staging');
  await mustExec(target, 'synapse', ['mkdir', '--', `${mediaStore}/${mediaStaging}`], 'creating the media staging directory');
  await runSql(
    target,
    `CREATE DATABASE ${quoteIdentifier(staging)} OWNER ${quoteIdentifier(stack.database.user)} TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C';`,
    `creating database ${staging}`,
  );

  const databaseChunks = contents.manifest.parts.filter((p) => p.kind === 'database').map((p) => p.name);
  const pauseChunk = databaseChunks[Math.floor(databaseChunks.length / 2)];
  let paused = false;
  progress?.(`restore: loading the database into ${staging}`);
  const pgRestore = target.spawn('postgresql', [
    ...target.postgresqlTool('pg_restore'),
    '--exit-on-error',
    '--no-owner',
    `--role=${stack.database.user}`,
    '--no-password',
    '-d',
    staging,
  ]);
  let tar: StreamingCommand | undefined;
  let databaseDone = false;
  const sinks: Record<'database' | 'media', PartSink> = {
    database: {
      async write(chunk, part) {
        await feed(pgRestore, chunk, 'pg_restore');
        if (part === pauseChunk && !paused) {
          paused = true;
          await pauseIfAsked('database-load', options);
        }
      },
    },
    media: {
      async write(chunk) {
        if (!databaseDone) {
          await finish(pgRestore, 'pg_restore');
          databaseDone = true;
          progress?.('restore: database loaded; staging the media store');
          tar = target.spawn('synapse', ['tar', '--extract', '--file=-', `--directory=${mediaStore}/${mediaStaging}`, '--no-same-owner']);
        }
        await feed(tar!, chunk, 'tar');
      },
    },
  };
  try {
    const again = await readArchive(options.file, { sinks, ...(progress ? { progress } : {}), label: 'restoring' });
    if (again.manifest.createdAt !== contents.manifest.createdAt) throw new Error(`${options.file} changed during the restore.`);
    if (!databaseDone) await finish(pgRestore, 'pg_restore');
    if (tar) await finish(tar, 'extracting the media');
  } catch (error) {
    pgRestore.kill();
    tar?.kill();
    throw error;
  }
}

interface Swap {
  what: string;
  undo: () => Promise<void>;
}

/** Step 3–4: the swaps, each with its undo; the database rename is the commit point. */
async function swapAndStart(target: Target, contents: ArchiveContents, names: { staging: string; previous: string }, progress?: Progress): Promise<void> {
  const { stack } = target;
  const done: Swap[] = [];
  const renameDatabases = (from: string, to: string, incoming: string) =>
    runSql(
      target,
      [
        'BEGIN;',
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname IN (${[from, incoming].map((n) => `'${n.replace(/'/g, "''")}'`).join(', ')}) AND pid <> pg_backend_pid();`,
        `ALTER DATABASE ${quoteIdentifier(from)} RENAME TO ${quoteIdentifier(to)};`,
        `ALTER DATABASE ${quoteIdentifier(incoming)} RENAME TO ${quoteIdentifier(from)};`,
        'COMMIT;',
      ].join('\n'),
      'swapping the databases',
    );
  const mediaStore = stack.placement.paths.mediaStore;
  const swapMedia = async () => {
    await mustExec(target, 'synapse', moveMediaArgv(mediaStore, mediaPrevious, mediaStaging), 'swapping the media store');
    done.push({ what: 'media', undo: () => mustExec(target, 'synapse', moveMediaArgv(mediaStore, mediaStaging, mediaPrevious), 'putting the previous media back') });
  };
  try {
    await renameDatabases(stack.database.name, names.previous, names.staging);
    done.push({ what: 'database', undo: async () => void (await renameDatabases(stack.database.name, names.staging, names.previous)) });
    progress?.(`restore: database swapped (the previous one is ${names.previous} until the restore succeeds)`);

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
    progress?.('restore: starting Synapse');
    await target.start('synapse');
    if (target.kind !== 'local') await swapMedia();
  } catch (error) {
    progress?.(`restore: failed (${error instanceof Error ? error.message : String(error)}); putting the previous data back`);
    await target.stop('synapse').catch(() => undefined);
    for (const swap of done.reverse()) {
      if (swap.what === 'media' && target.kind !== 'local') continue;
      await swap.undo();
    }
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
  const names = restoreDatabaseNames(stack.database.name);
  if (await databaseExists(target, names.previous)) {
    throw new ArchiveMismatchError(
      `database ${names.previous} exists, left by an interrupted restore: check which data you want (docs/backup.md) and drop the other before restoring again.`,
    );
  }
  progress?.(`restore: archive intact (${contents.manifest.serverName}, made ${contents.manifest.createdAt}); nothing changed so far`);

  await runSql(target, `DROP DATABASE IF EXISTS ${quoteIdentifier(names.staging)} WITH (FORCE);`, `removing database ${names.staging} of an earlier attempt`);
  try {
    await stageArchive(target, options, contents, names.staging);
  } catch (error) {
    await runSql(target, `DROP DATABASE IF EXISTS ${quoteIdentifier(names.staging)} WITH (FORCE);`, `removing database ${names.staging}`).catch(() => undefined);
    throw error;
  }
  await pauseIfAsked('media-staged', options);

  progress?.('restore: stopping Synapse');
  await target.stop('synapse');
  await pauseIfAsked('synapse-stopped', options);
  await swapAndStart(target, contents, names, progress);

  progress?.('restore: Synapse is healthy on the restored data; removing the previous copies');
  await runSql(target, `DROP DATABASE IF EXISTS ${quoteIdentifier(names.previous)} WITH (FORCE);`, `removing database ${names.previous}`);
  await mustExec(target, 'synapse', ['rm', '-rf', '--', `${stack.placement.paths.mediaStore}/${mediaPrevious}`], 'removing the previous media');
  return { manifest: contents.manifest, bytes: contents.bytes };
}
