/**
 * `mxstack backup`: one archive (src/ops/archive/manifest.ts) streamed from the running stack to a file.
 * The dump is pg_dump's custom format, taken in one snapshot while Synapse runs; the media store follows
 * (after the dump, so every file the dump references is there; files uploaded meanwhile are harmless
 * extras). The archive is written to a temporary name beside the output and renamed only when complete.
 */
import { createHash } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Target } from '../../targets/target.js';
import { inventorySecretNames, secretInventory } from '../secrets/inventory.js';
import { TarWriter } from './tar.js';
import { backupFormat, backupFormatVersion, chunkName, manifestChecksumName, manifestName, type BackupManifest, type ChunkedBase, type ManifestPart, type PartKind } from './manifest.js';
import { encryptSecrets, type StoredSecret } from './secrets-crypto.js';
import { authDatabaseName, databaseExists, lastLines, liveStack } from './live.js';
import { megabytes, progressMeter, type Progress, type ProgressMeter } from './progress.js';

/** Chunk size of the dump and media parts: the most memory a backup holds at once. */
export const defaultChunkBytes = 8 * 1024 * 1024;

/** Files in the media store that belong to a restore in progress, never to a backup. */
export const restoreWorkPrefix = '.mxstack-';

export interface BackupOptions {
  output: string;
  /** Include every stack secret, encrypted with this passphrase. */
  passphrase?: string;
  progress?: Progress;
  chunkBytes?: number;
}

export interface BackupResult {
  file: string;
  bytes: number;
  manifest: BackupManifest;
}

/** Writes a stream as consecutive chunk entries; returns the parts written. */
async function writeChunked(
  stream: AsyncIterable<Buffer>,
  base: ChunkedBase,
  kind: PartKind,
  writer: TarWriter,
  chunkBytes: number,
  meter: ProgressMeter,
): Promise<ManifestPart[]> {
  const parts: ManifestPart[] = [];
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  const flush = async () => {
    const data = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes);
    const name = chunkName(base, parts.length);
    await writer.addEntry(name, data);
    parts.push({ name, kind, size: data.length, sha256: createHash('sha256').update(data).digest('hex') });
    pending = [];
    pendingBytes = 0;
  };
  for await (const chunk of stream) {
    pending.push(chunk);
    pendingBytes += chunk.length;
    meter.add(chunk.length);
    if (pendingBytes >= chunkBytes) await flush();
  }
  if (pendingBytes > 0 || parts.length === 0) await flush();
  return parts;
}

/** Runs a program in a component and archives its stdout; fails on an exit code not in `accept`. */
async function archiveCommandOutput(
  target: Target,
  component: 'postgresql' | 'synapse',
  argv: string[],
  base: ChunkedBase,
  kind: PartKind,
  writer: TarWriter,
  chunkBytes: number,
  meter: ProgressMeter,
  accept: number[],
): Promise<ManifestPart[]> {
  const command = target.spawn(component, argv);
  command.stdin.end();
  try {
    const parts = await writeChunked(command.stdout, base, kind, writer, chunkBytes, meter);
    const { exitCode, stderr } = await command.finished;
    if (!accept.includes(exitCode)) throw new Error(`${argv[0]!.split('/').pop()} in ${component} failed (exit ${exitCode}): ${lastLines(stderr)}`);
    return parts;
  } catch (error) {
    command.kill();
    throw error;
  }
}

async function collectSecrets(target: Target): Promise<StoredSecret[]> {
  const names = inventorySecretNames(secretInventory(target.stack));
  const secrets: StoredSecret[] = [];
  for (const { name, key } of await target.listSecrets(names)) {
    const value = await target.readSecret({ name, key });
    if (value !== undefined) secrets.push({ name, key, value });
  }
  return secrets;
}

export async function createBackup(target: Target, options: BackupOptions): Promise<BackupResult> {
  const progress = options.progress;
  const chunkBytes = options.chunkBytes ?? defaultChunkBytes;
  const live = await liveStack(target);
  const createdAt = new Date();
  const temporary = join(dirname(options.output), `.${basename(options.output)}.partial-${process.pid}`);
  const file = await open(temporary, 'wx', 0o600);
  let complete = false;
  try {
    const writer = new TarWriter(file, Math.floor(createdAt.getTime() / 1000));
    const parts: ManifestPart[] = [];

    const dumpDatabase = async (database: string, base: ChunkedBase, kind: PartKind, label: string) => {
      const meter = progressMeter(label, undefined, progress);
      const dump = [...target.postgresqlTool('pg_dump'), '--format=custom', '--no-password', '-d', database];
      parts.push(...(await archiveCommandOutput(target, 'postgresql', dump, base, kind, writer, chunkBytes, meter, [0])));
      meter.done();
    };

    progress?.(`backup: dumping database ${target.stack.database.name} (PostgreSQL ${live.postgresqlVersion})`);
    await dumpDatabase(target.stack.database.name, 'database.dump', 'database', 'database dump');

    const authDatabase = authDatabaseName(target);
    if (authDatabase !== undefined) {
      if (!(await databaseExists(target, authDatabase))) {
        throw new Error(`the auth database ${authDatabase} does not exist: the auth component creates it when it starts; start the stack (\`mxstack status\` shows whether auth runs) and back up again.`);
      }
      progress?.(`backup: dumping the auth database ${authDatabase} (accounts and second factors)`);
      await dumpDatabase(authDatabase, 'auth-database.dump', 'auth-database', 'auth database dump');
    }

    progress?.('backup: archiving the media store');
    const mediaMeter = progressMeter('media store', undefined, progress);
    const media = ['tar', '--create', '--file=-', `--directory=${target.stack.placement.paths.mediaStore}`, `--exclude=./${restoreWorkPrefix}*`, '.'];
    // GNU tar exits 1 when a file changed while it was read (an upload during the backup): the archive is still whole.
    parts.push(...(await archiveCommandOutput(target, 'synapse', media, 'media.tar', 'media', writer, chunkBytes, mediaMeter, [0, 1])));
    mediaMeter.done();

    const signingKey = await target.readSecret(target.stack.secrets.signingKey);
    if (signingKey === undefined) throw new Error(`the signing key (Secret ${target.stack.secrets.signingKey.name}) is missing: nothing to back up the server's identity from.`);
    const small: [string, PartKind, Buffer][] = [['signing.key', 'signing-key', Buffer.from(signingKey, 'utf8')]];
    if (options.passphrase !== undefined) {
      const secrets = await collectSecrets(target);
      progress?.(`backup: encrypting ${secrets.length} secrets`);
      small.push(['secrets.enc', 'secrets', encryptSecrets(secrets, options.passphrase)]);
    }
    for (const [name, kind, data] of small) {
      await writer.addEntry(name, data);
      parts.push({ name, kind, size: data.length, sha256: createHash('sha256').update(data).digest('hex') });
    }

    const manifest: BackupManifest = {
      format: backupFormat,
      formatVersion: backupFormatVersion,
      serverName: live.serverName,
      createdAt: createdAt.toISOString(),
      versions: { synapse: live.synapseVersion, postgresql: live.postgresqlVersion },
      database: target.stack.database.name,
      ...(authDatabase !== undefined ? { authDatabase } : {}),
      parts,
    };
    const manifestBytes = Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`);
    await writer.addEntry(manifestName, manifestBytes);
    await writer.addEntry(manifestChecksumName, Buffer.from(`${createHash('sha256').update(manifestBytes).digest('hex')}\n`));
    await writer.finish();
    await file.sync();
    await file.close();
    await rename(temporary, options.output);
    complete = true;
    progress?.(`backup: wrote ${options.output} (${megabytes(writer.written)})`);
    return { file: options.output, bytes: writer.written, manifest };
  } finally {
    if (!complete) {
      await file.close().catch(() => undefined);
      await rm(temporary, { force: true });
    }
  }
}
