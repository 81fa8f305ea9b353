/**
 * The Admin API client against a scripted stand-in for Synapse on loopback: paging, and the one-sentence
 * errors (server unreachable, token not admin, user exists, user not found, invalid user id).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AdminApiError, mapWithConcurrency, SynapseAdminClient, toUserId } from '../../src/ops/admin-api.js';
import { listUsers } from '../../src/ops/users.js';
import { summarizeToken } from '../../src/ops/registration-tokens.js';

type Handler = (request: IncomingMessage, url: URL, body: string) => { status: number; body: unknown } | undefined;

let server: Server;
let baseUrl: string;
let handler: Handler = () => undefined;
const requests: { method: string; path: string; authorization?: string; body: string }[] = [];

before(async () => {
  server = createServer((request: IncomingMessage, response: ServerResponse) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString()));
    request.on('end', () => {
      const url = new URL(request.url ?? '/', 'http://x');
      requests.push({ method: request.method ?? '', path: url.pathname, body, ...(request.headers.authorization ? { authorization: request.headers.authorization } : {}) });
      const answer = handler(request, url, body) ?? { status: 404, body: { errcode: 'M_NOT_FOUND', error: 'not scripted' } };
      response.writeHead(answer.status, { 'content-type': 'application/json' });
      response.end(JSON.stringify(answer.body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
});

after(() => new Promise<void>((resolve) => server.close(() => resolve())));

const client = () => new SynapseAdminClient(baseUrl, 'token-abc', 'example.org');

/** whoami + admin flag, as every command starts. */
function adminHandler(isAdmin: boolean, more: Handler = () => undefined): Handler {
  return (request, url, body) => {
    if (url.pathname === '/_matrix/client/v3/account/whoami') return { status: 200, body: { user_id: '@root:example.org' } };
    if (url.pathname === '/_synapse/admin/v1/users/%40root%3Aexample.org/admin') {
      return isAdmin ? { status: 200, body: { admin: true } } : { status: 403, body: { errcode: 'M_FORBIDDEN', error: 'You are not a server admin' } };
    }
    return more(request, url, body);
  };
}

test('toUserId accepts localparts and local ids, refuses bad grammar and other servers in one sentence', () => {
  assert.equal(toUserId('alice', 'example.org'), '@alice:example.org');
  assert.equal(toUserId('@a.b_c=d-e/f+g:example.org', 'example.org'), '@a.b_c=d-e/f+g:example.org');
  assert.throws(() => toUserId('Alice', 'example.org'), /^AdminApiError: invalid user id "Alice": a localpart may only contain/);
  assert.throws(() => toUserId('a b', 'example.org'), AdminApiError);
  assert.throws(() => toUserId('@alice', 'example.org'), /invalid user id "@alice": expected @localpart:example.org/);
  assert.throws(() => toUserId('@alice:other.org', 'example.org'), /this server \(example.org\) only manages its own users/);
});

test('an unreachable server is one sentence naming the URL', async () => {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  const closed = new SynapseAdminClient(`http://127.0.0.1:${port}/`, 't', 'example.org');
  await assert.rejects(closed.checkAdmin(), (error: unknown) => {
    assert.ok(error instanceof AdminApiError);
    assert.equal(error.message, `cannot reach Synapse at http://127.0.0.1:${port}/ (ECONNREFUSED): is the stack running?`);
    return true;
  });
});

test('a token that is not an admin\'s is refused naming its owner; the token itself never appears', async () => {
  handler = adminHandler(false);
  await assert.rejects(client().checkAdmin(), (error: unknown) => {
    assert.ok(error instanceof AdminApiError);
    assert.equal(error.message, 'the access token belongs to @root:example.org, who is not a server admin.');
    assert.doesNotMatch(error.message, /token-abc/);
    return true;
  });
  assert.equal(requests.at(-1)?.authorization, 'Bearer token-abc');
});

test('an expired token is one sentence', async () => {
  handler = () => ({ status: 401, body: { errcode: 'M_UNKNOWN_TOKEN', error: 'Unknown token' } });
  await assert.rejects(client().checkAdmin(), /^AdminApiError: the access token was refused by Synapse \(expired or logged out\); log in again\.$/);
});

test('user exists, user not found, not a local user', async () => {
  handler = adminHandler(true, (request, url) => {
    if (url.pathname === '/_synapse/admin/v2/users/%40alice%3Aexample.org') return { status: 200, body: { name: '@alice:example.org', admin: false, deactivated: false } };
    if (url.pathname === '/_synapse/admin/v2/users/%40ghost%3Aexample.org') return { status: 404, body: { errcode: 'M_NOT_FOUND', error: 'User not found' } };
    if (url.pathname.startsWith('/_synapse/admin/v2/users/%40far')) return { status: 400, body: { errcode: 'M_INVALID_PARAM', error: 'Can only look up local users' } };
    return undefined;
  });
  const admin = client();
  await admin.checkAdmin();
  await assert.rejects(admin.createUser('@alice:example.org', { password: 'p' }), /^AdminApiError: user @alice:example.org already exists\.$/);
  assert.ok(!requests.some((r) => r.method === 'PUT'), 'an existing user must not be modified');
  await assert.rejects(admin.getUser('@ghost:example.org'), /^AdminApiError: user @ghost:example.org not found\.$/);
  await assert.rejects(admin.deactivate('@ghost:example.org', false), /user @ghost:example.org not found/);
  await assert.rejects(admin.findUser('@far:example.org'), /invalid user id @far:example.org: not a user of example.org/);
});

test('listUsers pages with next_token until there is none, passing the filters', async () => {
  const all = Array.from({ length: 2345 }, (_, i) => ({ name: `@u${i}:example.org`, admin: i === 0 ? 1 : 0, deactivated: 0, is_guest: 0, creation_ts: 1_700_000_000_000 }));
  const seenQueries: URLSearchParams[] = [];
  handler = adminHandler(true, (request, url) => {
    if (url.pathname !== '/_synapse/admin/v2/users') return undefined;
    seenQueries.push(url.searchParams);
    const from = Number(url.searchParams.get('from') ?? 0);
    const limit = Number(url.searchParams.get('limit'));
    const page = all.slice(from, from + limit);
    return { status: 200, body: { users: page, total: all.length, ...(from + limit < all.length ? { next_token: String(from + limit) } : {}) } };
  });
  const admin = client();
  await admin.checkAdmin();
  const users = await listUsers(admin, { deactivated: true, name: 'u' });
  assert.equal(users.length, 2345);
  assert.deepEqual(users[0], { user_id: '@u0:example.org', display_name: null, admin: true, deactivated: false, guest: false, locked: false, user_type: null, created: '2023-11-14T22:13:20.000Z' });
  assert.equal(seenQueries.length, 3);
  assert.deepEqual(seenQueries.map((q) => q.get('from')), [null, '1000', '2000']);
  assert.ok(seenQueries.every((q) => q.get('deactivated') === 'true' && q.get('guests') === 'false' && q.get('name') === 'u'));
});

test('mapWithConcurrency keeps order and never runs more than the limit at once', async () => {
  let running = 0;
  let peak = 0;
  const out = await mapWithConcurrency(Array.from({ length: 50 }, (_, i) => i), 4, async (n) => {
    running++;
    peak = Math.max(peak, running);
    await new Promise((resolve) => setTimeout(resolve, 1 + (n % 3)));
    running--;
    return n * 2;
  });
  assert.deepEqual(out, Array.from({ length: 50 }, (_, i) => i * 2));
  assert.equal(peak, 4);
});

test('registration tokens: validity from uses and expiry', () => {
  const now = 1_000_000;
  assert.equal(summarizeToken({ token: 'a', uses_allowed: 2, pending: 1, completed: 1, expiry_time: null }, now).valid, false);
  assert.equal(summarizeToken({ token: 'b', uses_allowed: 2, pending: 0, completed: 1, expiry_time: null }, now).valid, true);
  assert.equal(summarizeToken({ token: 'c', uses_allowed: null, pending: 0, completed: 9, expiry_time: now - 1 }, now).valid, false);
  assert.equal(summarizeToken({ token: 'd', uses_allowed: null, pending: 0, completed: 9, expiry_time: now + 1 }, now).expires, new Date(now + 1).toISOString());
});
