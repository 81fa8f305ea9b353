/**
 * Element Web on a real local stack: `up` downloads a release-shaped archive (built here, served from
 * 127.0.0.1 in place of the official release URL: the test never reaches the Internet), verifies it against
 * element.archiveSha256, caches it, unpacks it, and the runtime's real nginx serves it with Element's
 * headers, media types and caching rules, directly and through the router. A wrong checksum and a bad
 * element.archive stop `up` with exit 2 before anything is started, cached or written.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { cachedElementArchive, elementReleaseUrlVariable, sha256Hex } from '../../src/targets/local/element-release.js';
import { mxstackCacheDir } from '../../src/targets/local/runtime.js';
import { componentVersions } from '../../src/versions.js';
import { runCliAsync, startLocalStack, type LocalStackHandle } from '../support/local-stack.js';
import { elementReleaseArchive } from '../support/release-archive.js';

const minutes = (n: number) => n * 60_000;
const version = componentVersions.elementWeb;

const get = (url: string | URL) => fetch(url, { signal: AbortSignal.timeout(30_000) });

function assertElementHeaders(response: Response, what: string): void {
  assert.equal(response.headers.get('x-frame-options'), 'SAMEORIGIN', what);
  assert.equal(response.headers.get('x-content-type-options'), 'nosniff', what);
  assert.equal(response.headers.get('x-xss-protection'), '1; mode=block', what);
  assert.equal(response.headers.get('content-security-policy'), "frame-ancestors 'self'", what);
}

describe('a local stack serving the Element Web release', { timeout: minutes(15) }, () => {
  let server: Server;
  let downloads = 0;
  let releaseUrl: string;
  let stack: LocalStackHandle;
  let cached: string;
  // Unique content, so this run's cached archive is its own (and removed at the end).
  const archive = elementReleaseArchive(version, `integration ${process.pid} ${Date.now()}`);
  const digest = sha256Hex(archive);
  const previousUrl = process.env[elementReleaseUrlVariable];

  before(async () => {
    server = createServer((request, response) => {
      downloads++;
      response.writeHead(200, { 'content-type': 'application/gzip' }).end(archive);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    releaseUrl = `http://127.0.0.1:${(server.address() as { port: number }).port}/v${version}/element-v${version}.tar.gz`;
    // Inherited by the mxstack processes the test starts.
    process.env[elementReleaseUrlVariable] = releaseUrl;
    cached = cachedElementArchive(mxstackCacheDir(), version, digest);
    stack = await startLocalStack({ sets: [`element.archiveSha256=${digest}`, 'element.config.brand=Chat'] });
  });
  after(async () => {
    await stack?.dispose();
    server?.close();
    if (previousUrl === undefined) delete process.env[elementReleaseUrlVariable];
    else process.env[elementReleaseUrlVariable] = previousUrl;
    rmSync(cached, { force: true });
  });

  test('up downloaded, verified and cached the archive, and prints the browser URL', () => {
    assert.equal(downloads, 1);
    assert.ok(existsSync(cached), `the verified archive is cached at ${cached}`);
    assert.match(stack.upResult.stdout, /^Element Web: {4}http:\/\/127\.0\.0\.1:\d+\/$/m);
    const element = stack.status.components.element;
    assert.ok(element?.healthy, 'element is run and healthy');
    assert.match(element.version ?? '', /\d/, 'nginx reports its version');
  });

  test("nginx sends Element's headers, the right media types and caching rules (directly and through the router)", async () => {
    const direct = `http://127.0.0.1:${stack.status.components.element!.ports.http}/`;
    for (const base of [direct, stack.status.endpoints!.client]) {
      const index = await get(base);
      assert.equal(index.status, 200);
      assert.match(index.headers.get('content-type') ?? '', /^text\/html/);
      assert.match(await index.text(), /Element 1\.12\.2 integration/);
      assertElementHeaders(index, `${base} index`);
      assert.equal(index.headers.get('cache-control'), 'no-cache', 'index.html is never cached');

      const config = await get(new URL('config.json', base));
      assertElementHeaders(config, `${base}config.json`);
      assert.equal(config.headers.get('cache-control'), 'no-cache', 'config.json is never cached');
      assert.match(config.headers.get('content-type') ?? '', /^application\/json/);
      const body = (await config.json()) as { brand: string };
      assert.equal(body.brand, 'Chat', "the stack's config.json, not the archive's");

      const wasm = await get(new URL('bundles/0123abcd/olm.wasm', base));
      assert.equal(wasm.headers.get('content-type'), 'application/wasm');
      assert.deepEqual(Buffer.from(await wasm.arrayBuffer()), Buffer.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]));
      assert.match(wasm.headers.get('cache-control') ?? '', /max-age=31536000/, 'hashed bundles are cacheable');
      assertElementHeaders(wasm, `${base} wasm`);

      const script = await get(new URL('bundles/0123abcd/app.js', base));
      assert.match(script.headers.get('content-type') ?? '', /^text\/javascript/);
      await script.arrayBuffer();

      const version = await get(new URL('version', base));
      assert.equal(version.headers.get('cache-control'), 'no-cache');
      await version.arrayBuffer();
    }
    const server = (await get(direct)).headers.get('server');
    assert.equal(server, 'nginx', 'served by nginx, without its version');
  });

  test("switched to element.webRoot, up removes the unpacked release and a crashed run's half-unpacked one", async () => {
    await stack.down();
    const elementDir = join(stack.stateDir, 'element');
    const releases = () => readdirSync(elementDir).filter((name) => name.startsWith('release-'));
    assert.deepEqual(releases(), [`release-${digest.slice(0, 12)}`], 'the release served until now');
    mkdirSync(join(elementDir, `release-${'f'.repeat(12)}.unpacking-999999`));
    // Beside the state directory: inside the stack's temporary parent, which the web server's user can enter.
    const build = join(dirname(stack.stateDir), 'own-build');
    mkdirSync(build, { mode: 0o755 });
    writeFileSync(join(build, 'index.html'), '<!doctype html><title>own build</title>\n');
    const rebuilt = await startLocalStack({ stateDir: stack.stateDir, sets: [`element.webRoot=${build}`] });
    try {
      assert.deepEqual(releases(), [], 'no release is left unpacked');
      const page = await get(rebuilt.status.endpoints!.client);
      assert.match(await page.text(), /own build/);
    } finally {
      await rebuilt.down();
    }
  });
});

describe('Element Web input that stops up (exit 2, nothing started, cached or written)', { timeout: minutes(5) }, () => {
  let parent: string;
  let server: Server;
  let releaseUrl: string;
  const archive = elementReleaseArchive(version, `refused ${process.pid} ${Date.now()}`);

  before(async () => {
    parent = mkdtempSync(join(tmpdir(), 'mxstack-element-refused-'));
    server = createServer((request, response) => response.writeHead(200).end(archive));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    releaseUrl = `http://127.0.0.1:${(server.address() as { port: number }).port}/element.tar.gz`;
  });
  after(() => {
    server?.close();
    rmSync(parent, { recursive: true, force: true });
  });

  test('a downloaded archive with another checksum is refused: nothing cached, no state directory', async () => {
    const stateDir = join(parent, 'wrong-checksum');
    const wrong = 'e'.repeat(64);
    const result = await runCliAsync(['up', '--state-dir', stateDir, '--set', `element.archiveSha256=${wrong}`], { env: { [elementReleaseUrlVariable]: releaseUrl } });
    assert.equal(result.status, 2, result.stderr);
    assert.match(result.stderr, new RegExp(`sent an archive with SHA-256 ${sha256Hex(archive)}, not the expected ${wrong}.*neither cached nor unpacked`));
    assert.equal(existsSync(stateDir), false, 'a refused up writes nothing');
    const cacheDir = join(mxstackCacheDir(), 'element-web');
    const leftovers = existsSync(cacheDir) ? readdirSync(cacheDir).filter((name) => name.includes(wrong) || name.includes(sha256Hex(archive))) : [];
    assert.deepEqual(leftovers, [], 'nothing of it is cached');
  });

  test('element.archive that is not a release: one sentence naming the path', async () => {
    const stateDir = join(parent, 'bad-archive');
    const file = join(parent, 'element-v1.12.2.tar.gz');
    writeFileSync(file, 'this is not an archive\n');
    const result = await runCliAsync(['up', '--state-dir', stateDir, '--set', `element.archive=${file}`, '--set', `element.archiveSha256=${sha256Hex(Buffer.from('this is not an archive\n'))}`]);
    assert.equal(result.status, 2, result.stderr);
    assert.match(result.stderr, new RegExp(`element\\.archive: ${file.replace(/[.]/g, '\\.')} is not a usable Element Web release archive: it is not gzip-compressed`));
    assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
    assert.equal(existsSync(stateDir), false, 'a refused up writes nothing');
  });
});

describe('offline: up starts the rest of the stack and says in one sentence what to do', { timeout: minutes(10) }, () => {
  let stack: LocalStackHandle;
  const previousUrl = process.env[elementReleaseUrlVariable];

  before(async () => {
    // A loopback port nothing listens on (bound once, then closed) stands in for an unreachable Internet.
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    process.env[elementReleaseUrlVariable] = `http://127.0.0.1:${(closed.address() as { port: number }).port}/element.tar.gz`;
    await new Promise((resolve) => closed.close(resolve));
    stack = await startLocalStack({ sets: [`element.archiveSha256=${'d'.repeat(64)}`] });
  });
  after(async () => {
    await stack?.dispose();
    if (previousUrl === undefined) delete process.env[elementReleaseUrlVariable];
    else process.env[elementReleaseUrlVariable] = previousUrl;
  });

  test('the offline sentence, a healthy stack without Element, and the router saying so', async () => {
    assert.match(stack.upResult.stdout, /^Element Web is not served: element-v1\.12\.2\.tar\.gz could not be downloaded from http:\/\/127\.0\.0\.1:\d+\/element\.tar\.gz \(ECONNREFUSED\); download it on a machine with Internet access and set element\.archive to its path \(with element\.archiveSha256\), or set element\.webRoot to an Element Web build\.$/m);
    assert.equal(stack.status.healthy, true);
    assert.equal(stack.status.components.element, undefined, 'no Element process');
    const page = await get(stack.status.endpoints!.client);
    assert.equal(page.status, 404);
    assert.match(await page.text(), /Element Web is not served by this local stack \(mxstack up said why\)/);
  });
});
