/**
 * Reads a release archive (tar.gz) into memory and checks every entry before anything is written: only
 * regular files and directories, each path relative and inside the release (no `..`, no absolute path, no
 * link of any kind), each written once, so unpacking can never write outside its directory, write through
 * what it wrote before, nor leave a symlink pointing out. The tar format itself (headers, checksums, GNU
 * long names, pax records) is read by tar-stream.
 */
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { extract, type Header } from 'tar-stream';

const blockSize = 512;
/** A release far larger than Element's (about 100 MB unpacked) is refused rather than filling the memory. */
export const maxUnpackedBytes = 1024 ** 3;

/** The archive is not a release this reader accepts (one sentence, without the archive's path). */
export class ReleaseArchiveError extends Error {}

export interface ReleaseEntry {
  /** Path inside the release, its top directory (element-vX.Y.Z/) removed. */
  path: string;
  kind: 'file' | 'directory';
  content: Buffer;
}

/** A path inside the release, or the reason it is refused. */
function safeRelativePath(name: string): string {
  const trimmed = name.replace(/\/+$/, '');
  const normalised = posix.normalize(trimmed);
  if (trimmed === '' || name.includes('\0') || posix.isAbsolute(trimmed) || normalised !== trimmed || trimmed.split('/').includes('..') || trimmed.split('/').includes('.')) {
    throw new ReleaseArchiveError(`its entry ${JSON.stringify(name)} is not a plain relative path`);
  }
  return trimmed;
}

/** Only files and directories are unpacked (tar-stream's type is null for a type it does not know). */
function entryKind(header: Header): ReleaseEntry['kind'] {
  const type: Header['type'] | null = header.type;
  if (type === 'file' || type === 'contiguous-file') return 'file';
  if (type === 'directory') return 'directory';
  throw new ReleaseArchiveError(`its entry ${JSON.stringify(header.name)} is a link or a special file (only files and directories are unpacked)`);
}

/** tar-stream's errors, as the one reason the archive is refused. */
function tarFormatError(error: Error): ReleaseArchiveError {
  if (error.message === 'Unexpected end of data') return new ReleaseArchiveError('it is truncated');
  if (error.message.startsWith('Invalid tar header')) return new ReleaseArchiveError('it is not a tar archive (a header is damaged or in no tar format)');
  return new ReleaseArchiveError(`its tar contents are damaged (${error.message.replace(/\.$/, '')})`);
}

const paddedSize = (size: number) => Math.ceil(size / blockSize) * blockSize;

/**
 * Every entry of an uncompressed tar stream, each path and kind checked as soon as its header is read.
 * The stream must end with its end-of-archive blocks: tar-stream skips zero blocks, so an archive cut at a
 * block boundary is otherwise indistinguishable from a complete one.
 */
async function tarEntries(tar: Buffer): Promise<ReleaseEntry[]> {
  const entries: ReleaseEntry[] = [];
  let end = 0;
  const reader = extract();
  reader.end(tar);
  try {
    for await (const entry of reader) {
      const path = safeRelativePath(entry.header.name);
      const kind = entryKind(entry.header);
      const chunks: Buffer[] = [];
      for await (const chunk of entry) chunks.push(chunk as Buffer);
      entries.push({ path, kind, content: kind === 'file' ? Buffer.concat(chunks) : Buffer.alloc(0) });
      end = entry.offset + blockSize + paddedSize(entry.header.size);
    }
  } catch (error) {
    if (error instanceof ReleaseArchiveError) throw error;
    throw tarFormatError(error as Error);
  }
  if (tar.length - end < 2 * blockSize) throw new ReleaseArchiveError('it is truncated (no end-of-archive blocks)');
  return entries;
}

/** Removes the one top directory every entry shares (element-vX.Y.Z/), as `tar --strip-components=1`. */
function withoutTopDirectory(entries: ReleaseEntry[]): ReleaseEntry[] {
  const tops = new Set(entries.map((entry) => entry.path.split('/')[0]));
  const [top] = tops;
  if (tops.size !== 1 || !entries.some((entry) => entry.path.startsWith(`${top}/`))) return entries;
  return entries.filter((entry) => entry.path !== top).map((entry) => ({ ...entry, path: entry.path.slice(top!.length + 1) }));
}

/** Each path once, and none inside a file: the unpack then creates every file fresh, never writing twice. */
function checkLayout(entries: readonly ReleaseEntry[]): void {
  const kinds = new Map<string, ReleaseEntry['kind']>();
  for (const { path, kind } of entries) {
    const earlier = kinds.get(path);
    if (earlier === 'file' || (earlier === 'directory' && kind === 'file')) throw new ReleaseArchiveError(`its entry ${JSON.stringify(path)} appears more than once`);
    kinds.set(path, kind);
  }
  for (const { path } of entries) {
    for (let parent = posix.dirname(path); parent !== '.'; parent = posix.dirname(parent)) {
      if (kinds.get(parent) === 'file') throw new ReleaseArchiveError(`its entry ${JSON.stringify(path)} is inside ${JSON.stringify(parent)}, which is a file`);
    }
  }
}

/** The entries of a gzip-compressed release archive, each checked; index.html must be at its top. */
export async function readReleaseArchive(archive: Buffer): Promise<ReleaseEntry[]> {
  let tar: Buffer;
  try {
    tar = gunzipSync(archive, { maxOutputLength: maxUnpackedBytes });
  } catch (error) {
    const tooLarge = (error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE';
    throw new ReleaseArchiveError(tooLarge ? `it unpacks to more than ${maxUnpackedBytes} bytes` : 'it is not gzip-compressed (a release is element-vX.Y.Z.tar.gz)');
  }
  const release = withoutTopDirectory(await tarEntries(tar));
  checkLayout(release);
  if (!release.some((entry) => entry.kind === 'file' && entry.path === 'index.html')) {
    throw new ReleaseArchiveError('it is not an Element Web release (no index.html at its top)');
  }
  return release;
}

/** The sibling an unpack writes into before renaming it: `<directory>.unpacking-<pid>`. */
const unpackingDirectory = (directory: string, pid: number) => `${directory}.unpacking-${pid}`;

/** Whether a directory name is an unpack's sibling (one a crashed or killed run may have left behind). */
export const isUnpackingDirectory = (name: string) => /\.unpacking-\d+$/.test(name);

/**
 * Writes the checked entries into `directory` (which must not exist yet): into a sibling first, renamed when
 * complete, so an interrupted unpack never looks finished, and removed when the unpack fails. Files 0644,
 * directories 0755: the web server runs as another user and only reads.
 */
export function writeRelease(entries: readonly ReleaseEntry[], directory: string): void {
  const building = unpackingDirectory(directory, process.pid);
  rmSync(building, { recursive: true, force: true });
  mkdirSync(building, { mode: 0o755 });
  try {
    for (const entry of entries) {
      const target = join(building, entry.path);
      if (entry.kind === 'directory') {
        mkdirSync(target, { recursive: true, mode: 0o755 });
        continue;
      }
      mkdirSync(dirname(target), { recursive: true, mode: 0o755 });
      // 'wx': a file is created, never an existing one (or a link) written through.
      writeFileSync(target, entry.content, { mode: 0o644, flag: 'wx' });
    }
    renameSync(building, directory);
  } catch (error) {
    rmSync(building, { recursive: true, force: true });
    throw error;
  }
}
