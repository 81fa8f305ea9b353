/**
 * Reads a release archive (tar.gz) into memory and checks every entry before anything is written: only
 * regular files and directories, each path relative and inside the release (no `..`, no absolute path, no
 * link of any kind), so unpacking can never write outside its directory nor leave a symlink pointing out.
 */
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';
import { gunzipSync } from 'node:zlib';

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

const field = (block: Buffer, start: number, length: number) => block.subarray(start, start + length).toString('utf8').replace(/\0.*$/s, '');

function headerChecksumMatches(block: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < blockSize; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i]!;
  return Number.parseInt(field(block, 148, 8).trim(), 8) === sum;
}

/** The `path` record of a pax extended header ("<length> path=<value>\n" records). */
function paxPath(data: Buffer): string | undefined {
  const text = data.toString('utf8');
  let position = 0;
  while (position < text.length) {
    const space = text.indexOf(' ', position);
    const length = Number.parseInt(text.slice(position, space), 10);
    if (space < 0 || !Number.isInteger(length) || length <= 0) return undefined;
    const record = text.slice(space + 1, position + length - 1);
    if (record.startsWith('path=')) return record.slice('path='.length);
    position += length;
  }
  return undefined;
}

interface RawEntry {
  name: string;
  type: string;
  content: Buffer;
}

/** Every entry of an uncompressed tar stream, with GNU long names and pax paths applied. */
function tarEntries(tar: Buffer): RawEntry[] {
  const entries: RawEntry[] = [];
  let longName: string | undefined;
  for (let offset = 0; offset + blockSize <= tar.length; ) {
    const header = tar.subarray(offset, offset + blockSize);
    if (header.every((byte) => byte === 0)) return entries;
    if (!headerChecksumMatches(header)) throw new ReleaseArchiveError(`it is not a tar archive (the header at byte ${offset} of its contents is damaged)`);
    const sizeText = field(header, 124, 12).trim();
    if (!/^[0-7]+$/.test(sizeText)) throw new ReleaseArchiveError(`the entry at byte ${offset} of its contents has no valid size`);
    const size = Number.parseInt(sizeText, 8);
    const start = offset + blockSize;
    if (start + size > tar.length) throw new ReleaseArchiveError('it is truncated');
    const content = tar.subarray(start, start + size);
    offset = start + Math.ceil(size / blockSize) * blockSize;
    const type = field(header, 156, 1) || '0';
    if (type === 'L') longName = content.toString('utf8').replace(/\0.*$/s, '');
    else if (type === 'x') longName = paxPath(content) ?? longName;
    else if (type !== 'g') {
      const prefix = field(header, 257, 6) === 'ustar' ? field(header, 345, 155) : '';
      entries.push({ name: longName ?? (prefix ? `${prefix}/${field(header, 0, 100)}` : field(header, 0, 100)), type, content });
      longName = undefined;
    }
  }
  throw new ReleaseArchiveError('it is truncated (no end-of-archive blocks)');
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

/** Removes the one top directory every entry shares (element-vX.Y.Z/), as `tar --strip-components=1`. */
function withoutTopDirectory(entries: ReleaseEntry[]): ReleaseEntry[] {
  const tops = new Set(entries.map((entry) => entry.path.split('/')[0]));
  const [top] = tops;
  if (tops.size !== 1 || !entries.some((entry) => entry.path.startsWith(`${top}/`))) return entries;
  return entries.filter((entry) => entry.path !== top).map((entry) => ({ ...entry, path: entry.path.slice(top!.length + 1) }));
}

/** The entries of a gzip-compressed release archive, each checked; index.html must be at its top. */
export function readReleaseArchive(archive: Buffer): ReleaseEntry[] {
  let tar: Buffer;
  try {
    tar = gunzipSync(archive, { maxOutputLength: maxUnpackedBytes });
  } catch (error) {
    const tooLarge = (error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE';
    throw new ReleaseArchiveError(tooLarge ? `it unpacks to more than ${maxUnpackedBytes} bytes` : 'it is not gzip-compressed (a release is element-vX.Y.Z.tar.gz)');
  }
  const entries = tarEntries(tar).map(({ name, type, content }): ReleaseEntry => {
    const path = safeRelativePath(name);
    if (type === '0' || type === '7') return { path, kind: 'file', content };
    if (type === '5') return { path, kind: 'directory', content: Buffer.alloc(0) };
    throw new ReleaseArchiveError(`its entry ${JSON.stringify(name)} is a link or a special file (only files and directories are unpacked)`);
  });
  const release = withoutTopDirectory(entries);
  if (!release.some((entry) => entry.kind === 'file' && entry.path === 'index.html')) {
    throw new ReleaseArchiveError('it is not an Element Web release (no index.html at its top)');
  }
  return release;
}

/**
 * Writes the checked entries into `directory` (which must not exist yet): into a sibling first, renamed when
 * complete, so an interrupted unpack never looks finished. Files 0644, directories 0755: the web server
 * runs as another user and only reads.
 */
export function writeRelease(entries: readonly ReleaseEntry[], directory: string): void {
  const building = `${directory}.unpacking-${process.pid}`;
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
