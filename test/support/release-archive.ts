/**
 * Release-shaped archives for tests: a gzip-compressed ustar stream whose entries the test chooses, so it
 * can also hold what a hostile archive would (`../` paths, absolute paths, symlinks, hard links).
 */
import { gzipSync } from 'node:zlib';

export interface TestArchiveEntry {
  name: string;
  /** '0' file (default), '5' directory, '2' symlink, '1' hard link. */
  type?: '0' | '5' | '2' | '1';
  content?: string | Buffer;
  linkTarget?: string;
}

const octal = (value: number, width: number) => `${value.toString(8).padStart(width - 1, '0')}\0`;

function header(entry: TestArchiveEntry, size: number): Buffer {
  const block = Buffer.alloc(512, 0);
  block.write(entry.name, 0, 'utf8');
  block.write(octal(entry.type === '5' ? 0o755 : 0o644, 8), 100, 'ascii');
  block.write(octal(0, 8), 108, 'ascii');
  block.write(octal(0, 8), 116, 'ascii');
  block.write(octal(size, 12), 124, 'ascii');
  block.write(octal(1_700_000_000, 12), 136, 'ascii');
  block.write(entry.type ?? '0', 156, 'ascii');
  if (entry.linkTarget) block.write(entry.linkTarget, 157, 'utf8');
  block.write('ustar\0', 257, 'ascii');
  block.write('00', 263, 'ascii');
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i]!;
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return block;
}

export function tarGz(entries: readonly TestArchiveEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const entry of entries) {
    const content = Buffer.from(entry.content ?? '');
    parts.push(header(entry, content.length), content, Buffer.alloc((512 - (content.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return gzipSync(Buffer.concat(parts));
}

/**
 * Shaped like element-vX.Y.Z.tar.gz: one top directory holding index.html, config.sample.json, version, a
 * content-hashed bundle directory with JavaScript and WebAssembly. `marker` makes its digest unique.
 */
export function elementReleaseArchive(version: string, marker: string, extra: TestArchiveEntry[] = []): Buffer {
  const top = `element-v${version}`;
  return tarGz([
    { name: `${top}/`, type: '5' },
    { name: `${top}/index.html`, content: `<!doctype html><title>Element ${version} ${marker}</title>\n` },
    { name: `${top}/config.sample.json`, content: '{"brand": "sample"}\n' },
    { name: `${top}/config.json`, content: '{"brand": "from the archive"}\n' },
    { name: `${top}/version`, content: `${version}\n` },
    { name: `${top}/bundles/`, type: '5' },
    { name: `${top}/bundles/0123abcd/`, type: '5' },
    { name: `${top}/bundles/0123abcd/app.js`, content: 'console.log("element");\n' },
    // The WebAssembly magic and version: what a browser checks first.
    { name: `${top}/bundles/0123abcd/olm.wasm`, content: Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]) },
    ...extra,
  ]);
}
