import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bearerMatches, clientAddress, pageSecurityHeaders, parseCookies, serialiseCookie, tokensMatch } from '../../src/auth-service/http.js';

test('client address: the peer unless it is a trusted proxy; then the right-most untrusted X-Forwarded-For entry', () => {
  assert.equal(clientAddress('203.0.113.7', '198.51.100.1', ['10.0.0.1']), '203.0.113.7', 'an untrusted peer cannot claim another address');
  assert.equal(clientAddress('10.0.0.1', '198.51.100.1', ['10.0.0.1']), '198.51.100.1');
  assert.equal(clientAddress('10.0.0.1', '1.2.3.4, 198.51.100.1', ['10.0.0.1']), '198.51.100.1', 'entries left of the proxy-added one are client-controlled');
  assert.equal(clientAddress('10.0.0.1', '198.51.100.1, 10.0.0.2', ['10.0.0.1', '10.0.0.2']), '198.51.100.1', 'chained trusted proxies are skipped');
  assert.equal(clientAddress('::ffff:10.0.0.1', '198.51.100.1', ['10.0.0.1']), '198.51.100.1', 'IPv4-mapped peers match');
  assert.equal(clientAddress('10.0.0.1', undefined, ['10.0.0.1']), '10.0.0.1');
  assert.equal(clientAddress('10.0.0.1', 'not-an-address', ['10.0.0.1']), '10.0.0.1', 'garbage is ignored');
  assert.equal(clientAddress('::ffff:127.0.0.1', undefined, []), '127.0.0.1');
});

test('CSRF and bearer tokens: equal only when exactly equal; wrong types and empty expectations refused', () => {
  assert.equal(tokensMatch('abc', 'abc'), true);
  assert.equal(tokensMatch('abc', 'abd'), false);
  assert.equal(tokensMatch('abc', 'abcd'), false);
  assert.equal(tokensMatch('abc', undefined), false);
  assert.equal(tokensMatch('abc', ['abc']), false);
  assert.equal(tokensMatch('', ''), false, 'a session without a token accepts nothing');
  assert.equal(bearerMatches('Bearer s3cret', 's3cret'), true);
  assert.equal(bearerMatches('bearer s3cret', 's3cret'), false);
  assert.equal(bearerMatches('Basic s3cret', 's3cret'), false);
  assert.equal(bearerMatches(undefined, 's3cret'), false);
});

test('cookies: parsed by name (first wins); set HttpOnly, SameSite=Lax, Secure when asked, with the path', () => {
  assert.deepEqual([...parseCookies('a=1; b=x=y; a=2;  c = 3')], [['a', '1'], ['b', 'x=y'], ['c', '3']]);
  assert.deepEqual([...parseCookies(undefined)], []);
  assert.equal(serialiseCookie('s', 'v', { path: '/auth', secure: true }), 's=v; Path=/auth; HttpOnly; SameSite=Lax; Secure');
  assert.equal(serialiseCookie('s', '', { path: '/auth', secure: false, maxAge: 0 }), 's=; Path=/auth; HttpOnly; SameSite=Lax; Max-Age=0');
});

test('page headers: no inline scripts, no framing, no referrer, never cached', () => {
  const headers = pageSecurityHeaders();
  assert.match(headers['content-security-policy']!, /script-src 'self'/);
  assert.doesNotMatch(headers['content-security-policy']!, /unsafe-inline/);
  assert.match(headers['content-security-policy']!, /frame-ancestors 'none'/);
  assert.equal(headers['referrer-policy'], 'no-referrer');
  assert.equal(headers['cache-control'], 'no-store');
});

test("page headers: forms may post to this origin and the client's redirect origins only", () => {
  const csp = pageSecurityHeaders(['https://matrix.example.org', 'https://matrix.example.org'])['content-security-policy']!;
  assert.match(csp, /form-action 'self' https:\/\/matrix\.example\.org;/);
  assert.match(pageSecurityHeaders()['content-security-policy']!, /form-action 'self';/);
});
