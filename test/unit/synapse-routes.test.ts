/**
 * The routing table against Synapse's own list of worker endpoints: docs/workers.md of element-hq/synapse,
 * pinned in test/fixtures/synapse/workers-v1.157.1.md (commit a58ad44eb0, the newest docs available here;
 * the runtime's Debian package 1.160 ships no docs/). Every endpoint the docs list must reach the pool the
 * docs name for it, and fall back to the main process when that pool is off.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { routeRequest, synapseRoutes } from '../../src/components/synapse/routes.js';
import { workerPoolNames, type WorkerPoolName } from '../../src/values/worker-pools.js';

const docs = readFileSync(fileURLToPath(new URL('../fixtures/synapse/workers-v1.157.1.md', import.meta.url)), 'utf8');

interface DocumentedEndpoint {
  regex: string;
  heading: string;
  comment: string;
}

/** The indented endpoint blocks of the docs, each line with its heading and the comment above it. */
function documentedEndpoints(): DocumentedEndpoint[] {
  const endpoints: DocumentedEndpoint[] = [];
  let heading = '';
  let comment = '';
  let fenced = false;
  for (const line of docs.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced;
    if (fenced) continue;
    if (/^#+ /.test(line)) {
      heading = line.replace(/^#+ /, '');
      comment = '';
    } else if (/^ {4}# /.test(line)) comment = line.trim().slice(2);
    else if (/^ {4}\^?\/_(matrix|synapse)\//.test(line)) endpoints.push({ regex: line.trim(), heading, comment });
  }
  return endpoints;
}

/** A concrete path the documented regex matches: first alternatives, `x` for wildcards, optional parts left out. */
export function examplePath(regex: string): string {
  let path = regex.replace(/^\^/, '').replace(/\$$/, '');
  path = path.replace(/\([^()]*\)\?/g, '');
  path = path.replace(/\(\/\|\$\)/g, '');
  path = path.replace(/\(([^()|]*)(\|[^()]*)?\)/g, (_, first: string) => first.replace(/\.\*/g, 'x'));
  path = path.replace(/\[\^\/\][+*]/g, '!room:example.org').replace(/\.\*/g, 'x');
  if (path.endsWith('/')) path += 'x';
  assert.match(path, new RegExp(regex), `the example ${path} matches ${regex}`);
  return path;
}

const streamHeadings = ['typing', 'to_device', 'account_data', 'receipts', 'presence', 'push_rules', 'device_lists'].map((s) => `The \`${s}\` stream`);

/** The pools the docs send an endpoint to (main: the docs ask for one process, SSO). */
function expectedPools(endpoint: DocumentedEndpoint): (WorkerPoolName | 'main')[] {
  const { heading, comment } = endpoint;
  if (streamHeadings.includes(heading)) return ['streamWriter'];
  if (heading === 'The `quarantined_media_changes` stream' || heading === '`synapse.app.media_repository`') return ['mediaRepository'];
  if (heading === 'Updating the User Directory' || heading === '`synapse.app.user_dir`') return ['userDirectory'];
  const byComment: Record<string, (WorkerPoolName | 'main')[]> = {
    'Sync requests': ['sync', 'initialSync'],
    'Federation requests': ['federationReader'],
    'Inbound federation transaction request': ['federationInbound'],
    // devices and delete_devices are listed here and again under the device_lists stream.
    'Client API requests': ['clientReader', 'streamWriter'],
    'Admin API requests': ['clientReader'],
    'Encryption requests': ['clientReader', 'streamWriter'],
    'Registration/login requests': ['clientReader'],
    'Event sending requests': ['eventCreator'],
    'User directory search requests': ['userDirectory'],
    'Unstable MSC4140 support': ['clientReader'],
    'Push rules requests': ['streamWriter'],
    'Account data requests': ['streamWriter'],
    'Presence requests': ['streamWriter'],
    'for all SSO providers': ['main'],
    'OpenID Connect requests.': ['main'],
    'SAML requests.': ['main'],
    'CAS requests.': ['main'],
  };
  if (comment in byComment) return byComment[comment]!;
  // The pagination block under generic_worker has no comment: rooms/.*/messages.
  if (endpoint.regex.includes('/messages$')) return ['clientReader'];
  throw new Error(`no expectation for ${endpoint.regex} under "${heading}" / "${comment}"`);
}

const everyPoolUp = () => true;
const query = new URLSearchParams('since=s1');

test('the pinned docs list the endpoints of every kind (the parser found them)', () => {
  const endpoints = documentedEndpoints();
  assert.ok(endpoints.length >= 110, `found ${endpoints.length}`);
  for (const comment of ['Sync requests', 'Event sending requests', 'Inbound federation transaction request', 'for all SSO providers']) {
    assert.ok(endpoints.some((e) => e.comment === comment), comment);
  }
});

test('every endpoint of Synapse\'s docs/workers.md reaches the pool the docs name for it', () => {
  const wrong: string[] = [];
  for (const endpoint of documentedEndpoints()) {
    const path = examplePath(endpoint.regex);
    const pool = routeRequest(path, 'GET', query, everyPoolUp);
    if (!expectedPools(endpoint).includes(pool)) wrong.push(`${path} (${endpoint.regex}) → ${pool}, expected ${expectedPools(endpoint).join(' or ')}`);
  }
  assert.deepEqual(wrong, []);
});

test('with no worker running every path goes to the main process', () => {
  for (const endpoint of documentedEndpoints()) {
    assert.equal(routeRequest(examplePath(endpoint.regex), 'GET', query, () => false), 'main');
  }
});

test('a pool that is down falls back along the table: initial sync → sync → main; stream writer → main', () => {
  const initial = '/_matrix/client/v3/sync';
  const none = new URLSearchParams();
  assert.equal(routeRequest(initial, 'GET', none, everyPoolUp), 'initialSync');
  assert.equal(routeRequest(initial, 'GET', query, everyPoolUp), 'sync', 'an incremental sync never goes to the initial sync pool');
  assert.equal(routeRequest(initial, 'GET', none, (pool) => pool !== 'initialSync'), 'sync');
  assert.equal(routeRequest(initial, 'GET', none, () => false), 'main');
  const typing = '/_matrix/client/v3/rooms/!r:example.org/typing/@u:example.org';
  assert.equal(routeRequest(typing, 'PUT', none, (pool) => pool !== 'streamWriter'), 'main', 'typing has one writer: without it, the main process');
  const pushRulesRead = '/_matrix/client/v3/pushrules/';
  assert.equal(routeRequest(pushRulesRead, 'GET', none, (pool) => pool !== 'streamWriter'), 'clientReader', 'reads of push rules may go to any worker');
  assert.equal(routeRequest(pushRulesRead, 'PUT', none, (pool) => pool !== 'streamWriter'), 'main', 'writes may not');
});

test('SSO steps all go to one process, even with every pool up', () => {
  for (const path of ['/_matrix/client/v3/login/sso/redirect/oidc-github', '/_synapse/client/oidc/callback', '/_synapse/client/pick_idp']) {
    assert.equal(routeRequest(path, 'GET', query, everyPoolUp), 'main', path);
  }
});

test('every rule names a known pool and a regular expression both JavaScript and HAProxy read alike (no lookaround, no backslash)', () => {
  for (const route of synapseRoutes) {
    assert.ok(route.pool === 'main' || (workerPoolNames as readonly string[]).includes(route.pool), route.pool);
    assert.doesNotMatch(route.path, /\\|\(\?|\s|'/, route.path);
  }
});
