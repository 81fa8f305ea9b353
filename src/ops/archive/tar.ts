/**
 * The archive container: POSIX ustar, regular files only, written and read as streams. A part's size must
 * be known before its header, so callers write bounded chunks (src/ops/archive/create.ts); memory stays at
 * one chunk whatever the data size. The reader checks every header's checksum and the end-of-archive
 * blocks, and reports a truncated archive as such.
 */
import type { FileHandle } from 'node:fs/promises';

export const blockSize = 512;
const maxNameLength = 100;

/** The archive is not a well-formed ustar archive (one sentence, for the user). */
export class ArchiveFormatError extends Error {}

const octal = (value: number, width: number) => `${value.toString(8).padStart(width - 1, '0')}\0`;

/** A ustar header of a regular file (mode 0600, owner 0, fixed mtime given by the caller). */
export function ustarHeader(name: string, size: number, mtimeSeconds: number): Buffer {
  if (Buffer.byteLength(name) > maxNameLength || !/^[A-Za-z0-9._-]+$/.test(name)) throw new Error(`invalid archive entry name ${name}`);
  const header = Buffer.alloc(blockSize, 0);
  header.write(name, 0, 'utf8');
  header.write(octal(0o600, 8), 100, 'ascii');
  header.write(octal(0, 8), 108, 'ascii');
  header.write(octal(0, 8), 116, 'ascii');
  header.write(octal(size, 12), 124, 'ascii');
  header.write(octal(mtimeSeconds, 12), 136, 'ascii');
  header.write('        ', 148, 'ascii');
  header.write('0', 156, 'ascii');
  header.write('ustar\0', 257, 'ascii');
  header.write('00', 263, 'ascii');
  header.write(`${headerChecksum(header).toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return header;
}

/** Sum of the header's bytes with the checksum field counted as spaces. */
function headerChecksum(header: Buffer): number {
  let sum = 0;
  for (let i = 0; i < blockSize; i++) sum += i >= 148 && i < 156 ? 0x20 : header[i]!;
  return sum;
}

const paddingOf = (size: number) => (blockSize - (size % blockSize)) % blockSize;

export interface EntryHeader {
  name: string;
  size: number;
}

/** Parses one header block; undefined for a zero block (end of archive). */
export function parseUstarHeader(block: Buffer, offset: number): EntryHeader | undefined {
  if (block.every((byte) => byte === 0)) return undefined;
  const field = (start: number, length: number) => block.subarray(start, start + length).toString('latin1').replace(/\0.*$/s, '');
  const recorded = Number.parseInt(field(148, 8).trim(), 8);
  if (recorded !== headerChecksum(block)) throw new ArchiveFormatError(`the archive header at byte ${offset} is damaged (checksum mismatch).`);
  if (field(257, 6) !== 'ustar' || field(156, 1) !== '0') throw new ArchiveFormatError(`the archive entry at byte ${offset} is not a regular ustar file.`);
  const sizeText = field(124, 12).trim();
  if (!/^[0-7]+$/.test(sizeText)) throw new ArchiveFormatError(`the archive header at byte ${offset} has no valid size.`);
  return { name: field(0, 100), size: Number.parseInt(sizeText, 8) };
}

/** Writes entries to a file handle, sequentially (each write awaited: natural backpressure). */
export class TarWriter {
  written = 0;
  constructor(
    private readonly file: FileHandle,
    private readonly mtimeSeconds: number,
  ) {}

  private async write(data: Buffer): Promise<void> {
    let offset = 0;
    while (offset < data.length) {
      const { bytesWritten } = await this.file.write(data, offset, data.length - offset);
      offset += bytesWritten;
    }
    this.written += data.length;
  }

  async addEntry(name: string, data: Buffer): Promise<void> {
    await this.write(ustarHeader(name, data.length, this.mtimeSeconds));
    await this.write(data);
    const padding = paddingOf(data.length);
    if (padding > 0) await this.write(Buffer.alloc(padding, 0));
  }

  /** The two zero blocks that end a ustar archive. */
  async finish(): Promise<void> {
    await this.write(Buffer.alloc(2 * blockSize, 0));
  }
}

/** Reads entries from a byte stream, one at a time; each entry's body must be consumed before the next. */
export class TarReader {
  private pending: Buffer = Buffer.alloc(0);
  private readonly source: AsyncIterator<Buffer>;
  private sourceDone = false;
  /** Bytes of the archive consumed so far. */
  offset = 0;
  private currentEntry: string | undefined;

  constructor(stream: AsyncIterable<Buffer>) {
    this.source = stream[Symbol.asyncIterator]();
  }

  private async pull(): Promise<boolean> {
    if (this.sourceDone) return false;
    const next = await this.source.next();
    if (next.done) {
      this.sourceDone = true;
      return false;
    }
    this.pending = this.pending.length === 0 ? next.value : Buffer.concat([this.pending, next.value]);
    return true;
  }

  private truncated(): ArchiveFormatError {
    return new ArchiveFormatError(
      this.currentEntry ? `the archive is truncated: it ends inside ${this.currentEntry} (after ${this.offset} bytes).` : `the archive is truncated: it ends after ${this.offset} bytes without its end marker.`,
    );
  }

  private async readExact(length: number): Promise<Buffer> {
    while (this.pending.length < length) if (!(await this.pull())) throw this.truncated();
    const out = this.pending.subarray(0, length);
    this.pending = this.pending.subarray(length);
    this.offset += length;
    return out;
  }

  /** The next entry's header, or undefined after the end-of-archive blocks (which must both be present). */
  async next(): Promise<EntryHeader | undefined> {
    this.currentEntry = undefined;
    const at = this.offset;
    const header = parseUstarHeader(await this.readExact(blockSize), at);
    if (!header) {
      const second = await this.readExact(blockSize);
      if (!second.every((byte) => byte === 0)) throw new ArchiveFormatError(`the archive has data after its end marker at byte ${at}.`);
      return undefined;
    }
    this.currentEntry = header.name;
    return header;
  }

  /** The entry's content in the stream's own chunks, then its padding is skipped. */
  async *body(size: number): AsyncGenerator<Buffer> {
    let remaining = size;
    while (remaining > 0) {
      if (this.pending.length === 0 && !(await this.pull())) throw this.truncated();
      const take = Math.min(remaining, this.pending.length);
      const chunk = this.pending.subarray(0, take);
      this.pending = this.pending.subarray(take);
      this.offset += take;
      remaining -= take;
      yield chunk;
    }
    await this.readExact(paddingOf(size));
  }

  /** After the end marker, only zero padding may follow (tar pads to records); anything else is refused. */
  async expectEnd(): Promise<void> {
    for (;;) {
      if (!this.pending.every((byte) => byte === 0)) throw new ArchiveFormatError(`the archive has data after its end marker at byte ${this.offset}.`);
      this.offset += this.pending.length;
      this.pending = Buffer.alloc(0);
      if (!(await this.pull())) return;
    }
  }
}
