/**
 * Reads a backup archive once from start to end: checks the tar structure, hashes every part, reads the
 * manifest and its checksum, and compares. Parts can be streamed to sinks on the way (restore's second
 * pass); `verifyArchive` is the read with no sinks. Nothing here touches a stack.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { ArchiveFormatError, blockSize, parseUstarHeader, TarReader } from './tar.js';
import {
  ArchiveIntegrityError,
  compareWithManifest,
  manifestChecksumName,
  manifestName,
  parseManifest,
  partKindOf,
  type BackupManifest,
  type ManifestPart,
  type PartKind,
} from './manifest.js';
import { progressMeter, type Progress } from './progress.js';

/** Parts small enough to hold in memory: the signing key, the secrets, the manifest. */
const maxSmallPartBytes = 4 * 1024 * 1024;

export interface PartSink {
  /** Called with each chunk of each part of this kind, in archive order; backpressure by awaiting. */
  write(chunk: Buffer, part: string): Promise<void>;
}

export interface ArchiveContents {
  manifest: BackupManifest;
  /** Parts as read (name, size, SHA-256 computed here). */
  parts: ManifestPart[];
  signingKey: string;
  /** The encrypted secrets part, when the archive has one. */
  secrets?: Buffer;
  bytes: number;
}

async function collect(chunks: AsyncIterable<Buffer>, size: number, name: string): Promise<Buffer> {
  if (size > maxSmallPartBytes) throw new ArchiveIntegrityError(`${name} is ${size} bytes, far more than such a part can be: not an mxstack backup.`);
  const out: Buffer[] = [];
  for await (const chunk of chunks) out.push(Buffer.from(chunk));
  return Buffer.concat(out);
}

/**
 * The file given is not an mxstack backup archive at all (a directory, an unreadable file, some other
 * file): a mistake in the command, not a damaged backup. One sentence naming the path.
 */
export class NotAnArchiveError extends Error {}

const readErrorReason: Record<string, string> = { ENOENT: 'no such file', EACCES: 'permission denied', EPERM: 'permission denied', ELOOP: 'too many symbolic links' };

function cannotRead(file: string, error: unknown): NotAnArchiveError {
  const code = (error as NodeJS.ErrnoException).code ?? 'error';
  if (code === 'EISDIR') return new NotAnArchiveError(`${file} is a directory, not an mxstack backup archive.`);
  return new NotAnArchiveError(`${file} cannot be read (${readErrorReason[code] ?? code}).`);
}

/**
 * Recognises an mxstack backup before anything else reads it: a readable regular file whose first block
 * is a ustar header of a known part. Returns its size; throws NotAnArchiveError otherwise. Damage further
 * in (truncation, checksums) is readArchive's to report.
 */
export async function checkBackupArchiveFile(file: string): Promise<number> {
  let size: number;
  let isDirectory: boolean;
  try {
    const info = await stat(file);
    [size, isDirectory] = [info.size, info.isDirectory()];
  } catch (error) {
    throw cannotRead(file, error);
  }
  if (isDirectory) throw new NotAnArchiveError(`${file} is a directory, not an mxstack backup archive.`);
  const first = Buffer.alloc(blockSize);
  let read: number;
  try {
    const handle = await open(file, 'r');
    try {
      ({ bytesRead: read } = await handle.read(first, 0, blockSize, 0));
    } finally {
      await handle.close();
    }
  } catch (error) {
    throw cannotRead(file, error);
  }
  if (read < blockSize || !startsWithKnownPart(first)) throw new NotAnArchiveError(`${file} is not an mxstack backup archive.`);
  return size;
}

function startsWithKnownPart(block: Buffer): boolean {
  try {
    const header = parseUstarHeader(block, 0);
    return header !== undefined && (partKindOf(header.name) !== undefined || header.name === manifestName);
  } catch (error) {
    if (error instanceof ArchiveFormatError) return false;
    throw error;
  }
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/**
 * Reads the whole archive. Throws ArchiveIntegrityError (or ArchiveFormatError for the tar structure)
 * with one sentence on the first problem; returns only for an intact archive.
 */
export async function readArchive(file: string, options: { sinks?: Partial<Record<PartKind, PartSink>>; progress?: Progress; label?: string } = {}): Promise<ArchiveContents> {
  const total = await checkBackupArchiveFile(file);
  const meter = progressMeter(options.label ?? 'verifying', total, options.progress);
  const reader = new TarReader(createReadStream(file, { highWaterMark: 1024 * 1024 }));
  const parts: ManifestPart[] = [];
  const small = new Map<string, Buffer>();
  let manifestText: string | undefined;
  let manifestDigest: string | undefined;
  try {
    for (;;) {
      const entry = await reader.next();
      if (!entry) break;
      if (manifestDigest !== undefined) throw new ArchiveIntegrityError(`${entry.name} follows the manifest checksum, which must be the last part.`);
      if (entry.name === manifestName) {
        const data = await collect(reader.body(entry.size), entry.size, entry.name);
        manifestText = data.toString('utf8');
        small.set(manifestName, data);
        continue;
      }
      if (entry.name === manifestChecksumName) {
        if (manifestText === undefined) throw new ArchiveIntegrityError('the manifest checksum comes before the manifest.');
        manifestDigest = (await collect(reader.body(entry.size), entry.size, entry.name)).toString('utf8').trim();
        continue;
      }
      if (manifestText !== undefined) throw new ArchiveIntegrityError(`${entry.name} follows the manifest, which must come after every part.`);
      const kind = partKindOf(entry.name);
      if (!kind) throw new ArchiveIntegrityError(`the archive holds an unknown part ${entry.name}: not an mxstack backup.`);
      const hash = createHash('sha256');
      if (kind === 'signing-key' || kind === 'secrets') {
        const data = await collect(reader.body(entry.size), entry.size, entry.name);
        hash.update(data);
        small.set(entry.name, data);
      } else {
        const sink = options.sinks?.[kind];
        for await (const chunk of reader.body(entry.size)) {
          hash.update(chunk);
          meter.add(chunk.length);
          if (sink) await sink.write(chunk, entry.name);
        }
      }
      parts.push({ name: entry.name, kind, size: entry.size, sha256: hash.digest('hex') });
    }
    await reader.expectEnd();
  } catch (error) {
    if (error instanceof ArchiveFormatError) throw new ArchiveIntegrityError(error.message);
    throw error;
  } finally {
    meter.done();
  }
  if (manifestText === undefined || manifestDigest === undefined) throw new ArchiveIntegrityError('the archive has no manifest: it is incomplete or not an mxstack backup.');
  if (sha256(small.get(manifestName)!) !== manifestDigest) throw new ArchiveIntegrityError('the archive manifest does not match its checksum (damaged).');
  const manifest = parseManifest(manifestText);
  const problems = compareWithManifest(manifest, parts);
  if (problems.length > 0) throw new ArchiveIntegrityError(problems.length === 1 ? problems[0]! : `${problems[0]!} (and ${problems.length - 1} more problems)`);
  const secrets = small.get('secrets.enc');
  return { manifest, parts, signingKey: small.get('signing.key')!.toString('utf8'), ...(secrets ? { secrets } : {}), bytes: reader.offset };
}

/** Structure and every checksum; throws one sentence on the first problem. */
export function verifyArchive(file: string, progress?: Progress): Promise<ArchiveContents> {
  return readArchive(file, progress ? { progress } : {});
}
