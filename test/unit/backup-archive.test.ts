import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { createReadStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ArchiveFormatError, TarReader, TarWriter, parseUstarHeader, ustarHeader } from '../../src/ops/archive/tar.js';
import { NotAnArchiveError, readArchive } from '../../src/ops/archive/archive-reader.js';
import { ArchiveIntegrityError, backupFormat, backupFormatVersion, type BackupManifest, type ManifestPart, type PartKind } from '../../src/ops/archive/manifest.js';

const work = mkdtempSync(join(tmpdir(), 'mxstack-backup-unit-'));
test.after(() => rmSync(work, { recursive: true, force: true }));

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

async function writeTar(file: string, entries: [string, Buffer][], finish = true): Promise<void> {
  const handle = await open(file, 'w');
  const writer = new TarWriter(handle, 1_700_000_000);
  for (const [name, data] of entries) await writer.addEntry(name, data);
  if (finish) await writer.finish();
  await handle.close();
}

async function readTar(file: string): Promise<[string, Buffer][]> {
  const reader = new TarReader(createReadStream(file, { highWaterMark: 1000 }));
  const out: [string, Buffer][] = [];
  for (;;) {
    const entry = await reader.next();
    if (!entry) break;
    const chunks: Buffer[] = [];
    for await (const chunk of reader.body(entry.size)) chunks.push(Buffer.from(chunk));
    out.push([entry.name, Buffer.concat(chunks)]);
  }
  await reader.expectEnd();
  return out;
}

test('ustar round trip through our writer and reader, sizes around block boundaries', async () => {
  const entries: [string, Buffer][] = [0, 1, 511, 512, 513, 70_000].map((size, i) => [`part-${i}`, Buffer.alloc(size, i + 1)]);
  const file = join(work, 'round.tar');
  await writeTar(file, entries);
  assert.deepEqual(await readTar(file), entries);
});

test('GNU tar reads what the writer writes', async (t) => {
  const probe = spawnSync('tar', ['--version'], { encoding: 'utf8' });
  if (probe.status !== 0) return t.skip('no tar on this machine');
  const file = join(work, 'gnu.tar');
  await writeTar(file, [['hello.txt', Buffer.from('hello\n')], ['big.bin', Buffer.alloc(5000, 7)]]);
  const listed = spawnSync('tar', ['-tvf', file], { encoding: 'utf8' });
  assert.equal(listed.status, 0, listed.stderr);
  assert.match(listed.stdout, /hello\.txt/);
  assert.match(listed.stdout, /5000 .*big\.bin/);
  const content = spawnSync('tar', ['-xOf', file, 'hello.txt'], { encoding: 'utf8' });
  assert.equal(content.stdout, 'hello\n');
});

test('a damaged header is refused by its checksum', () => {
  const header = ustarHeader('database.dump.000000', 1234, 1_700_000_000);
  assert.deepEqual(parseUstarHeader(header, 0), { name: 'database.dump.000000', size: 1234 });
  const damaged = Buffer.from(header);
  damaged[130]! ^= 0x01;
  assert.throws(() => parseUstarHeader(damaged, 0), ArchiveFormatError);
});

test('entry names are restricted to the archive\'s own part names', () => {
  assert.throws(() => ustarHeader('../etc/passwd', 1, 0));
  assert.throws(() => ustarHeader('x'.repeat(101), 1, 0));
});

test('a truncated archive and data after the end marker are refused', async () => {
  const file = join(work, 'cut.tar');
  await writeTar(file, [['a', Buffer.alloc(3000, 1)], ['b', Buffer.alloc(10, 2)]]);
  const full = readFileSync(file);
  writeFileSync(file, full.subarray(0, 2000));
  await assert.rejects(readTar(file), /truncated: it ends inside a/);
  writeFileSync(file, full.subarray(0, full.length - 512));
  await assert.rejects(readTar(file), /truncated/);
  writeFileSync(file, Buffer.concat([full, Buffer.from('trailing')]));
  await assert.rejects(readTar(file), /data after its end marker/);
});

/** An archive as `mxstack backup` lays it out, from given parts. */
async function writeBackup(file: string, parts: [string, PartKind, Buffer][], edit: (m: BackupManifest) => void = () => undefined): Promise<void> {
  const listed: ManifestPart[] = parts.map(([name, kind, data]) => ({ name, kind, size: data.length, sha256: sha256(data) }));
  const manifest: BackupManifest = {
    format: backupFormat,
    formatVersion: backupFormatVersion,
    serverName: 'example.org',
    createdAt: '2026-01-01T00:00:00.000Z',
    versions: { synapse: '1.160.0', postgresql: '18.6' },
    database: 'synapse',
    parts: listed,
  };
  edit(manifest);
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  await writeTar(file, [
    ...parts.map(([name, , data]): [string, Buffer] => [name, data]),
    ['manifest.json', manifestBytes],
    ['manifest.json.sha256', Buffer.from(`${sha256(manifestBytes)}\n`)],
  ]);
}

const goodParts = (): [string, PartKind, Buffer][] => [
  ['database.dump.000000', 'database', Buffer.from('PGDMP first chunk')],
  ['database.dump.000001', 'database', Buffer.from('second chunk')],
  ['media.tar.000000', 'media', Buffer.alloc(10240, 0)],
  ['signing.key', 'signing-key', Buffer.from('ed25519 a_abcd AAAA\n')],
];

test('readArchive accepts an intact archive and streams each part to its sink in order', async () => {
  const file = join(work, 'good.tar');
  await writeBackup(file, goodParts());
  const database: Buffer[] = [];
  const contents = await readArchive(file, { sinks: { database: { write: async (chunk) => void database.push(Buffer.from(chunk)) } } });
  assert.equal(Buffer.concat(database).toString(), 'PGDMP first chunksecond chunk');
  assert.equal(contents.signingKey, 'ed25519 a_abcd AAAA\n');
  assert.equal(contents.manifest.serverName, 'example.org');
});

test('readArchive refuses a part whose bytes differ from the manifest', async () => {
  const file = join(work, 'flipped.tar');
  const parts = goodParts();
  await writeBackup(file, parts, (m) => (m.parts[1]!.sha256 = sha256(Buffer.from('something else'))));
  await assert.rejects(readArchive(file), (error: Error) => error instanceof ArchiveIntegrityError && /database\.dump\.000001 does not match its SHA-256/.test(error.message));
});

test('readArchive refuses a damaged manifest, missing parts, gaps in chunk numbers and unknown parts', async () => {
  const file = join(work, 'bad.tar');
  await writeBackup(file, goodParts());
  const data = readFileSync(file);
  const at = data.indexOf(Buffer.from('"serverName":"example.org"')) + 15;
  const copy = Buffer.from(data);
  copy[at]! ^= 0x20;
  writeFileSync(file, copy);
  await assert.rejects(readArchive(file), /manifest does not match its checksum/);

  await writeBackup(file, goodParts().filter(([name]) => name !== 'signing.key'));
  await assert.rejects(readArchive(file), /no signing key/);

  await writeBackup(file, goodParts().filter(([name]) => name !== 'database.dump.000000'));
  await assert.rejects(readArchive(file), /not numbered consecutively/);

  await writeBackup(file, [...goodParts(), ['notes.txt', 'media', Buffer.from('x')]]);
  await assert.rejects(readArchive(file), /unknown part notes\.txt/);

  await writeBackup(file, goodParts(), (m) => m.parts.pop());
  await assert.rejects(readArchive(file), /signing\.key is in the archive but not in its manifest/);

  // No archive at all is a mistake in the command, told as such (not as a damaged backup).
  writeFileSync(file, 'not an archive at all, just text that is long enough'.repeat(20));
  await assert.rejects(readArchive(file), (error: unknown) => error instanceof NotAnArchiveError && error.message === `${file} is not an mxstack backup archive.`);
});
