/**
 * URL previews and their SSRF protection, with a real Synapse fetching real pages.
 *
 * The test serves one page (title, description, og:image) from a network namespace it creates, on one
 * address of every blocked IPv4 range that can hold a unicast host (plus IPv6 unique-local and
 * documentation addresses), and on 127.0.0.1 and ::1. The host reaches every one of them (checked
 * directly), yet Synapse refuses each with 403 "blocked" — except the single address the values allow
 * (`synapse.server.urlPreviews.ipRangeWhitelist: [198.18.7.2/32]`), where the preview carries the title,
 * the description and the image. A second address of the same range, 198.18.7.3, stays refused: the
 * allow-list opens exactly what it names. Multicast ranges (224.0.0.0/4, ff00::/8) cannot serve a page;
 * Synapse must refuse them without trying. No address outside loopback and the test's namespace is used.
 *
 * Every page server records the requests it receives, so "refused" also means "never fetched". IPv4
 * literals are refused by the blocklist (403 "IP address blocked"); Synapse 1.160 refuses IPv6 literal
 * URLs earlier, while encoding the host name (500, an IDNA error), so for IPv6 the test asserts the
 * refusal and that no request arrived, not the status.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startLocalStack, type LocalStackHandle } from '../support/local-stack.js';
import { MatrixHttpError, SynapseAdmin, matrixRequest, type MatrixSession } from '../support/matrix-client.js';
import { parse } from 'yaml';
import { upstreamUrlPreviewIpRangeBlacklist } from '../../src/kit/address-ranges.js';
import { stateLayout } from '../../src/targets/local/state.js';

const namespace = `mxs-urlprev-${process.pid}`;
const hostVeth = `mxu${process.pid}h`;
const namespaceVeth = `mxu${process.pid}n`;
const hostSideAddress = '198.18.7.1';
const allowedAddress = '198.18.7.2';
/** One address inside each blocked range that can hold a host, all on the namespace's end of the veth. */
const blockedNamespaceAddresses: Record<string, string> = {
  '10.0.0.0/8': '10.255.77.2',
  '172.16.0.0/12': '172.31.77.2',
  '192.168.0.0/16': '192.168.254.77',
  '100.64.0.0/10': '100.127.77.2',
  '192.0.0.0/24': '192.0.0.77',
  '169.254.0.0/16': '169.254.254.77',
  '192.88.99.0/24': '192.88.99.77',
  '198.18.0.0/15': '198.18.7.3',
  '192.0.2.0/24': '192.0.2.77',
  '198.51.100.0/24': '198.51.100.77',
  '203.0.113.0/24': '203.0.113.77',
  'fc00::/7': 'fd00:77::2',
  '2001:db8::/32': '2001:db8:77::2',
};
const unservableRanges: Record<string, string> = { '224.0.0.0/4': '239.255.77.2', 'ff00::/8': 'ff0e::77' };
/** One port for every page server: chosen free on 127.0.0.1 (the namespace has its own ports). */
let pagePort = 0;

let stack: LocalStackHandle;
let session: MatrixSession;
let namespaceServer: ChildProcess | undefined;
let loopbackServers: Server[] = [];
let scratch: string;
/** Paths (with query) every page server received, loopback and namespace alike. */
const received: string[] = [];

const page = (origin: string) => `<!doctype html>
<html><head>
<title>Preview test page</title>
<meta name="description" content="A page served by the URL preview test.">
<meta property="og:title" content="Preview test page">
<meta property="og:description" content="A page served by the URL preview test.">
<meta property="og:image" content="${origin}/image.png">
</head><body><p>Hello.</p></body></html>`;

/** A valid 1x1 PNG. */
const png = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==', 'base64');

/** The page server's code, run with node inside the namespace (and in this process for loopback). */
const serverSource = `
const http = require('node:http');
const png = Buffer.from(${JSON.stringify(png.toString('base64'))}, 'base64');
const page = ${page.toString()};
const server = http.createServer((request, response) => {
  const origin = 'http://' + request.headers.host;
  if (request.url === '/image.png') { response.writeHead(200, { 'content-type': 'image/png' }); response.end(png); return; }
  process.stdout.write('request ' + request.url + '\\n');
  response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
  response.end(page(origin));
});
server.listen({ port: Number(process.argv[2]), host: '::', ipv6Only: false }, () => process.stdout.write('listening\\n'));
`;

function ip(...args: string[]): void {
  const result = spawnSync('ip', args, { encoding: 'utf8', timeout: 10_000 });
  if (result.status !== 0) throw new Error(`ip ${args.join(' ')} failed: ${result.stderr.trim()}`);
}

function removeNamespace(): void {
  namespaceServer?.kill('SIGKILL');
  // Deleting the namespace deletes its end of the veth, and with it the host's end and the host routes.
  spawnSync('ip', ['netns', 'delete', namespace], { stdio: 'ignore', timeout: 10_000 });
  spawnSync('ip', ['link', 'delete', hostVeth], { stdio: 'ignore', timeout: 10_000 });
}
process.on('exit', removeNamespace);

function createNamespace(): void {
  removeNamespace();
  ip('netns', 'add', namespace);
  ip('link', 'add', hostVeth, 'type', 'veth', 'peer', 'name', namespaceVeth);
  ip('link', 'set', namespaceVeth, 'netns', namespace);
  ip('addr', 'add', `${hostSideAddress}/24`, 'dev', hostVeth);
  ip('link', 'set', hostVeth, 'up');
  const inside = (...args: string[]) => ip('netns', 'exec', namespace, 'ip', ...args);
  inside('link', 'set', 'lo', 'up');
  inside('addr', 'add', `${allowedAddress}/24`, 'dev', namespaceVeth);
  for (const address of Object.values(blockedNamespaceAddresses)) {
    inside('addr', 'add', address.includes(':') ? `${address}/128` : `${address}/32`, 'dev', namespaceVeth, ...(address.includes(':') ? ['nodad'] : []));
  }
  inside('link', 'set', namespaceVeth, 'up');
  inside('route', 'add', 'default', 'via', hostSideAddress);
  // IPv6 needs a next hop too: the host end's link-local address is not known in advance, so give it one.
  ip('addr', 'add', 'fd00:77::1/128', 'dev', hostVeth, 'nodad');
  inside('-6', 'route', 'add', 'fd00:77::1/128', 'dev', namespaceVeth);
  inside('-6', 'route', 'add', 'default', 'via', 'fd00:77::1', 'dev', namespaceVeth);
  for (const address of Object.values(blockedNamespaceAddresses)) {
    if (address === '198.18.7.3') continue; // on-link through the host end's /24
    ip(...(address.includes(':') ? ['-6'] : []), 'route', 'add', address.includes(':') ? `${address}/128` : `${address}/32`, 'dev', hostVeth);
  }
}

async function startNamespaceServer(): Promise<void> {
  const file = join(scratch, 'page-server.cjs');
  writeFileSync(file, serverSource);
  namespaceServer = spawn('ip', ['netns', 'exec', namespace, process.execPath, file, String(pagePort)], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the page server in the namespace did not start within 15 s')), 15_000);
    let buffered = '';
    namespaceServer!.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines) {
        if (line === 'listening') {
          clearTimeout(timer);
          resolve();
        } else if (line.startsWith('request ')) received.push(line.slice('request '.length));
      }
    });
    namespaceServer!.once('exit', (code) => reject(new Error(`the page server exited with ${code}`)));
  });
}

/** Listens on host at pagePort, or on a free port when pagePort is not chosen yet (which it then becomes). */
async function startLoopbackServer(host: string): Promise<void> {
  const server = createServer((request, response) => {
    const origin = `http://${request.headers.host}`;
    if (request.url === '/image.png') {
      response.writeHead(200, { 'content-type': 'image/png' });
      response.end(png);
      return;
    }
    received.push(request.url ?? '');
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    response.end(page(origin));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(pagePort, host, () => resolve());
  });
  loopbackServers.push(server);
  const address = server.address();
  if (pagePort === 0 && address && typeof address !== 'string') pagePort = address.port;
}

const urlFor = (address: string, path = '/page.html') => `http://${address.includes(':') ? `[${address}]` : address}:${pagePort}${path}`;

before(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'mxstack-urlprev-'));
  await startLoopbackServer('127.0.0.1');
  await startLoopbackServer('::1');
  createNamespace();
  await startNamespaceServer();
  stack = await startLocalStack({ sets: [`synapse.server.urlPreviews.ipRangeWhitelist[0]=${allowedAddress}/32`] });
  const endpoints = stack.status.endpoints!;
  const admin = await SynapseAdmin.login(endpoints.client, stack.adminCredentials(), endpoints.synapse);
  ({ session } = await admin.createTestUser('preview-user'));
}, { timeout: 600_000 });

after(async () => {
  await stack?.dispose();
  for (const server of loopbackServers) server.close();
  loopbackServers = [];
  removeNamespace();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
}, { timeout: 300_000 });

interface Preview {
  'og:title'?: string;
  'og:description'?: string;
  'og:image'?: string;
  'matrix:image:size'?: number;
}

function preview(url: string): Promise<Preview> {
  return matrixRequest<Preview>(session.baseUrl, 'GET', `/_matrix/client/v1/media/preview_url?url=${encodeURIComponent(url)}`, {
    accessToken: session.accessToken,
    timeoutMs: 60_000,
  });
}

/** Refused, and never fetched: no page server saw the request (each URL carries a unique query). */
async function assertRefused(url: string): Promise<void> {
  await assert.rejects(preview(url), (error: unknown) => {
    assert.ok(error instanceof MatrixHttpError, `${url}: ${String(error)}`);
    const host = new URL(url).hostname;
    if (host.startsWith('[')) {
      assert.ok(error.status >= 400, `${url}: HTTP ${error.status}`);
    } else {
      assert.equal(error.status, 403, `${url}: HTTP ${error.status} ${JSON.stringify(error.body)}`);
      assert.match(JSON.stringify(error.body), /IP address blocked/, url);
    }
    return true;
  });
  const path = new URL(url).pathname + new URL(url).search;
  // The namespace server reports over a pipe: give a request that did arrive time to show up.
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.ok(!received.includes(path), `${url} was fetched although refused`);
}

test('the running Synapse has the full upstream blocklist and exactly the one allowed address', { timeout: 30_000 }, () => {
  const config = parse(readFileSync(join(stateLayout(stack.stateDir).synapseConfigDir, 'homeserver.yaml'), 'utf8')) as Record<string, unknown>;
  assert.equal(config.url_preview_enabled, true);
  assert.deepEqual(config.url_preview_ip_range_blacklist, [...upstreamUrlPreviewIpRangeBlacklist]);
  assert.deepEqual(config.url_preview_ip_range_whitelist, [`${allowedAddress}/32`]);
  for (const range of [...Object.keys(blockedNamespaceAddresses), ...Object.keys(unservableRanges), '127.0.0.0/8', '::1/128']) {
    assert.ok(upstreamUrlPreviewIpRangeBlacklist.includes(range), `${range} is in the blocklist`);
  }
});

test('the allowed address yields title, description and the image (stored as media)', { timeout: 120_000 }, async () => {
  const answer = await preview(urlFor(allowedAddress, '/page.html?allowed'));
  assert.ok(received.includes('/page.html?allowed'), 'the page server saw Synapse\'s request');
  assert.equal(answer['og:title'], 'Preview test page');
  assert.equal(answer['og:description'], 'A page served by the URL preview test.');
  assert.match(answer['og:image'] ?? '', /^mxc:\/\/[^/]+\/\S+$/, 'the image was fetched and stored');
  assert.equal(answer['matrix:image:size'], png.length);
  // The stored image is the served one.
  const [serverName, mediaId] = answer['og:image']!.slice('mxc://'.length).split('/');
  const response = await fetch(new URL(`_matrix/client/v1/media/download/${serverName}/${mediaId}`, session.baseUrl), {
    headers: { authorization: `Bearer ${session.accessToken}` },
    signal: AbortSignal.timeout(30_000),
  });
  assert.equal(response.status, 200);
  assert.deepEqual(Buffer.from(await response.arrayBuffer()), png);
});

test('every blocked address serves the page to the host, and Synapse refuses each without fetching it', { timeout: 600_000 }, async () => {
  const addresses = { ...blockedNamespaceAddresses, '127.0.0.0/8': '127.0.0.1', '::1/128': '::1' };
  for (const [range, address] of Object.entries(addresses)) {
    // Reachable: the refusal below is the blocklist, not an unreachable address.
    const direct = await fetch(urlFor(address, '/page.html?direct'), { signal: AbortSignal.timeout(10_000) });
    assert.equal(direct.status, 200, `${range}: the page is served at ${address}`);
    await direct.text();
    await assertRefused(urlFor(address, `/page.html?range=${encodeURIComponent(range)}`));
  }
});

test('the allow-list opens exactly its address: a second address of the same range stays refused', { timeout: 120_000 }, async () => {
  await assertRefused(urlFor(blockedNamespaceAddresses['198.18.0.0/15']!, '/page.html?second'));
  assert.ok(blockedNamespaceAddresses['198.18.0.0/15']!.startsWith('198.18.7.'));
});

test('multicast ranges are refused without a server to refuse them', { timeout: 120_000 }, async () => {
  for (const [range, address] of Object.entries(unservableRanges)) await assertRefused(urlFor(address, `/page.html?range=${encodeURIComponent(range)}`));
});

test('a host name resolving to a blocked address is refused at resolution and never fetched', { timeout: 120_000 }, async () => {
  await assert.rejects(preview(`http://localhost:${pagePort}/page.html?by-name`), (error: unknown) => {
    assert.ok(error instanceof MatrixHttpError, String(error));
    assert.equal(error.status, 502, `HTTP ${error.status}`);
    assert.match(JSON.stringify(error.body), /DNS resolution failure/);
    return true;
  });
  assert.ok(!received.includes('/page.html?by-name'));
});
