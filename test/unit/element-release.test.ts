/**
 * Element Web's release on the local target: the download from a real HTTP server on 127.0.0.1 (standing in
 * for the official release URL: tests never reach the Internet), verified before anything is cached or
 * unpacked; element.archive's errors naming the file; the offline and unpinned sentences; an archive
 * checked entry by entry (no path out, no link); the nginx.conf Element is served with.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { loadValues } from '../../src/values/load.js';
import {
  cachedElementArchive,
  ElementReleaseError,
  elementReleaseUrlVariable,
  elementWebRootOf,
  elementWebSource,
  installElementRelease,
  officialElementReleaseUrl,
  sha256Hex,
  type ElementWebSource,
} from '../../src/targets/local/element-release.js';
import { readReleaseArchive, ReleaseArchiveError, type ReleaseEntry } from '../../src/targets/local/release-archive.js';
import { stateLayout } from '../../src/targets/local/state.js';
import { renderElementNginxConfig } from '../../src/components/element/nginx.js';
import { elementReleaseArchive, tarGz } from '../support/release-archive.js';

const version = '1.12.2';
const noProgress = () => undefined;

describe('the release download', () => {
  let server: Server;
  let baseUrl: string;
  let work: string;
  let requests = 0;
  /** A loopback port nothing listens on (bound once, then closed): the machine is "offline". */
  let offlineUrl: string;
  const archive = elementReleaseArchive(version, 'download test');
  const digest = sha256Hex(archive);

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'mxstack-element-release-'));
    server = createServer((request, response) => {
      requests++;
      if (request.url === `/v${version}/element-v${version}.tar.gz`) response.writeHead(200, { 'content-type': 'application/gzip' }).end(archive);
      else response.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address() as { port: number };
    baseUrl = `http://127.0.0.1:${address.port}/v${version}/element-v${version}.tar.gz`;
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    offlineUrl = `http://127.0.0.1:${(closed.address() as { port: number }).port}/element.tar.gz`;
    await new Promise((resolve) => closed.close(resolve));
  });
  after(() => {
    server.close();
    rmSync(work, { recursive: true, force: true });
  });

  const values = (sets: string[]) => loadValues({ sets });
  const context = (cacheDir: string, url: string) => ({ cacheDir, progress: noProgress, env: { [elementReleaseUrlVariable]: url }, pinnedSha256: undefined, version });

  test('the official URL is the GitHub release asset of the pinned version', () => {
    assert.equal(officialElementReleaseUrl('1.12.2'), 'https://github.com/element-hq/element-web/releases/download/v1.12.2/element-v1.12.2.tar.gz');
  });

  test('download → verify → cache → unpack: the verified archive is cached under its digest and reused offline', async () => {
    const cacheDir = join(work, 'cache-ok');
    const source = await elementWebSource(values([`element.archiveSha256=${digest}`]), context(cacheDir, baseUrl));
    assert.equal(source.kind, 'release');
    const cached = cachedElementArchive(cacheDir, version, digest);
    assert.deepEqual(readFileSync(cached), archive, 'the cache holds exactly the verified archive');
    assert.deepEqual(readdirSync(join(cacheDir, 'element-web')), [`element-v${version}-${digest}.tar.gz`], 'no temporary file is left');

    const layout = stateLayout(join(work, 'state-ok'));
    mkdirSync(layout.root, { recursive: true });
    const dir = installElementRelease(source as Extract<ElementWebSource, { kind: 'release' }>, layout, noProgress);
    assert.equal(dir, elementWebRootOf(source, layout));
    assert.match(readFileSync(join(dir, 'index.html'), 'utf8'), /download test/);
    assert.deepEqual(readFileSync(join(dir, 'bundles', '0123abcd', 'olm.wasm')), Buffer.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]));
    assert.equal(lstatSync(join(dir, 'index.html')).mode & 0o777, 0o644);

    // Offline now (a closed port): the cached copy is used, verified again.
    const before = requests;
    const again = await elementWebSource(values([`element.archiveSha256=${digest}`]), context(cacheDir, offlineUrl));
    assert.equal(again.kind, 'release');
    assert.equal(requests, before, 'nothing downloaded again');
  });

  test('a wrong checksum is refused: nothing is cached, nothing unpacked', async () => {
    const cacheDir = join(work, 'cache-wrong');
    const wrong = 'f'.repeat(64);
    await assert.rejects(
      elementWebSource(values([`element.archiveSha256=${wrong}`]), context(cacheDir, baseUrl)),
      (error: unknown) => error instanceof ElementReleaseError && error.message.includes(digest) && error.message.includes(wrong) && /neither cached nor unpacked/.test(error.message),
    );
    assert.equal(existsSync(join(cacheDir, 'element-web')) ? readdirSync(join(cacheDir, 'element-web')).length : 0, 0, 'the cache holds nothing');
  });

  test('offline: one sentence saying what to set instead, and no error', async () => {
    const source = await elementWebSource(values([`element.archiveSha256=${digest}`]), context(join(work, 'cache-offline'), offlineUrl));
    assert.equal(source.kind, 'unavailable');
    const { notice } = source as { notice: string };
    assert.match(notice, /^Element Web is not served: element-v1\.12\.2\.tar\.gz could not be downloaded from http:\/\/127\.0\.0\.1:\d+\/element\.tar\.gz \(ECONNREFUSED\)/);
    assert.match(notice, /set element\.archive to its path \(with element\.archiveSha256\), or set element\.webRoot/);
    assert.equal(notice.split('. ').length, 1, 'one sentence');
    const notFound = await elementWebSource(values([`element.archiveSha256=${digest}`]), context(join(work, 'cache-404'), `${baseUrl}.missing`));
    assert.match((notFound as { notice: string }).notice, /\(HTTP 404\)/);
  });

  test('no digest pinned and none given: nothing is downloaded (fail closed), one sentence says what to set', async () => {
    const before = requests;
    const source = await elementWebSource(values([]), context(join(work, 'cache-unpinned'), baseUrl));
    assert.equal(source.kind, 'unavailable');
    assert.match((source as { notice: string }).notice, /pins no SHA-256 for element-v1\.12\.2\.tar\.gz and downloads nothing it cannot verify; set element\.archiveSha256/);
    assert.equal(requests, before, 'no request was made');
  });

  test('element.webRoot is served as is; Element switched off serves nothing', async () => {
    assert.deepEqual(await elementWebSource(values(['element.webRoot=/srv/element']), context(work, baseUrl)), { kind: 'build', webRoot: '/srv/element' });
    assert.deepEqual(await elementWebSource(values(['element.enabled=false']), context(work, baseUrl)), { kind: 'none' });
  });
});

describe('element.archive', () => {
  let work: string;
  const archive = elementReleaseArchive(version, 'archive test');
  const digest = sha256Hex(archive);
  before(() => {
    work = mkdtempSync(join(tmpdir(), 'mxstack-element-archive-'));
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  const source = (sets: string[]) => elementWebSource(loadValues({ sets }), { cacheDir: join(work, 'cache'), progress: noProgress, pinnedSha256: undefined, version });

  test('a downloaded release with its digest is verified and used; nothing is cached for it', async () => {
    const file = join(work, `element-v${version}.tar.gz`);
    writeFileSync(file, archive);
    const result = await source([`element.archive=${file}`, `element.archiveSha256=${digest}`]);
    assert.equal(result.kind, 'release');
    assert.equal(existsSync(join(work, 'cache')), false);
  });

  test('each bad archive is one error naming element.archive and the file', async () => {
    const notGzip = join(work, 'notes.txt');
    writeFileSync(notGzip, 'not an archive\n');
    const noIndex = join(work, 'no-index.tar.gz');
    const noIndexArchive = tarGz([{ name: 'element-v1.12.2/readme.txt', content: 'hi' }]);
    writeFileSync(noIndex, noIndexArchive);
    const cases: [string[], RegExp][] = [
      [[`element.archive=${notGzip}`, `element.archiveSha256=${sha256Hex(Buffer.from('not an archive\n'))}`], /is not a usable Element Web release archive: it is not gzip-compressed/],
      [[`element.archive=${noIndex}`, `element.archiveSha256=${sha256Hex(noIndexArchive)}`], /it is not an Element Web release \(no index\.html at its top\)/],
      [[`element.archive=${notGzip}`, `element.archiveSha256=${digest}`], /has SHA-256 [0-9a-f]{64}, not [0-9a-f]{64}/],
      [[`element.archive=${join(work, 'missing.tar.gz')}`, `element.archiveSha256=${digest}`], /cannot be read \(ENOENT\)/],
      [[`element.archive=${work}`, `element.archiveSha256=${digest}`], /is a directory, not a release archive/],
      [[`element.archive=${notGzip}`], /cannot be verified: this mxstack pins no SHA-256 for it, so set element\.archiveSha256/],
    ];
    for (const [sets, expected] of cases) {
      const path = sets[0]!.slice('element.archive='.length);
      await assert.rejects(source(sets), (error: unknown) => {
        assert.ok(error instanceof ElementReleaseError, String(error));
        assert.ok(error.message.startsWith(`element.archive: ${path} `), error.message);
        assert.match(error.message, expected);
        return true;
      });
    }
  });
});

describe('archive entries', () => {
  const top = 'element-v1.12.2';
  const index = { name: `${top}/index.html`, content: 'x' };

  test('the top directory is removed; files and directories are kept', async () => {
    const entries = await readReleaseArchive(elementReleaseArchive(version, 'entries'));
    assert.deepEqual(entries.map((entry) => `${entry.kind}:${entry.path}`).sort(), [
      'directory:bundles',
      'directory:bundles/0123abcd',
      'file:bundles/0123abcd/app.js',
      'file:bundles/0123abcd/olm.wasm',
      'file:config.json',
      'file:config.sample.json',
      'file:index.html',
      'file:version',
    ]);
  });

  test('paths out of the release, links of any kind and paths written twice are refused before anything is written', async () => {
    const hostile: [Parameters<typeof tarGz>[0][number], RegExp][] = [
      [{ name: `${top}/../../etc/cron.d/evil`, content: 'x' }, /is not a plain relative path/],
      [{ name: '/etc/passwd', content: 'x' }, /is not a plain relative path/],
      [{ name: `${top}/a/./b`, content: 'x' }, /is not a plain relative path/],
      [{ name: `${top}/shadow`, type: '2', linkTarget: '/etc/shadow' }, /is a link or a special file/],
      [{ name: `${top}/hard`, type: '1', linkTarget: '/etc/shadow' }, /is a link or a special file/],
      [{ name: `${top}/index.html`, content: 'again' }, /entry "index\.html" appears more than once/],
      [{ name: `${top}/index.html/inner`, content: 'x' }, /entry "index\.html\/inner" is inside "index\.html", which is a file/],
    ];
    for (const [entry, expected] of hostile) {
      await assert.rejects(readReleaseArchive(tarGz([index, entry])), (error: unknown) => error instanceof ReleaseArchiveError && expected.test(error.message), entry.name);
    }
  });

  test('a damaged or truncated tar stream is refused', async () => {
    const whole = tarGz([index]);
    const tar = gunzipSync(whole);
    await assert.rejects(readReleaseArchive(gzipSync(tar.subarray(0, 600))), /truncated/);
    await assert.rejects(readReleaseArchive(gzipSync(tar.subarray(0, 1024))), /truncated \(no end-of-archive blocks\)/);
    const damaged = Buffer.from(tar);
    damaged[10] = 0x41;
    await assert.rejects(readReleaseArchive(gzipSync(damaged)), /damaged/);
  });
});

describe('unpacked releases in the state directory', () => {
  let work: string;
  before(() => {
    work = mkdtempSync(join(tmpdir(), 'mxstack-element-unpack-'));
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  const file = (path: string, content = 'x'): ReleaseEntry => ({ path, kind: 'file', content: Buffer.from(content) });
  const release = (sha256: string, entries: ReleaseEntry[]) => ({ kind: 'release' as const, sha256, entries });
  const elementDirOf = (layout: ReturnType<typeof stateLayout>) => join(layout.root, 'element');

  test('an unpack that fails midway leaves nothing; a crashed run\'s half-unpacked directory goes at the next unpack', () => {
    const layout = stateLayout(join(work, 'failing'));
    const abandoned = `${layout.elementReleaseDir('a'.repeat(64))}.unpacking-999999`;
    mkdirSync(join(abandoned, 'bundles'), { recursive: true });
    writeFileSync(join(abandoned, 'index.html'), 'half');
    // Entries that passed no check (readReleaseArchive refuses a path inside a file): the second write fails.
    const failing = release('b'.repeat(64), [file('index.html'), file('index.html/inner')]);
    assert.throws(() => installElementRelease(failing, layout, noProgress), /ENOTDIR|EEXIST/);
    assert.deepEqual(readdirSync(elementDirOf(layout)), [], 'neither this unpack nor the crashed one is left');

    mkdirSync(abandoned);
    writeFileSync(join(abandoned, 'index.html'), 'half');
    const directory = installElementRelease(release('c'.repeat(64), [file('index.html', 'whole')]), layout, noProgress);
    assert.deepEqual(readdirSync(elementDirOf(layout)), ['release-cccccccccccc']);
    assert.equal(readFileSync(join(directory, 'index.html'), 'utf8'), 'whole');
  });

  test('another release replaces the one unpacked before', () => {
    const layout = stateLayout(join(work, 'replaced'));
    installElementRelease(release('d'.repeat(64), [file('index.html', 'old')]), layout, noProgress);
    installElementRelease(release('e'.repeat(64), [file('index.html', 'new')]), layout, noProgress);
    assert.deepEqual(readdirSync(elementDirOf(layout)), ['release-eeeeeeeeeeee']);
  });
});

describe("Element's nginx.conf", () => {
  const conf = renderElementNginxConfig({ rootDir: '/state/element/root', port: 41003, writableDir: '/state/element/run' });

  test('loopback only, the build as root, links not followed, writes only in its own directory', () => {
    assert.match(conf, /^ {8}listen 127\.0\.0\.1:41003;$/m);
    assert.match(conf, /^ {8}root \/state\/element\/root;$/m);
    assert.match(conf, /^ {8}disable_symlinks on;$/m);
    assert.match(conf, /^pid \/state\/element\/run\/nginx\.pid;$/m);
    for (const kind of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) assert.match(conf, new RegExp(`^ {4}${kind}_temp_path /state/element/run/${kind};$`, 'm'));
  });

  test('every location repeats the security headers (nginx drops inherited add_header lines in a location with its own)', () => {
    const locations = conf.split(/^ {8}location /m).slice(1);
    assert.equal(locations.length, 6);
    for (const location of locations) {
      assert.match(location, /add_header X-Frame-Options SAMEORIGIN always;/);
      assert.match(location, /add_header X-Content-Type-Options nosniff always;/);
      assert.match(location, /add_header X-XSS-Protection "1; mode=block" always;/);
      assert.match(location, /add_header Content-Security-Policy "frame-ancestors 'self'" always;/);
    }
    assert.match(conf, /location ~ "\^\/config\.\*\\\\\.json\$" \{/);
  });
});
