import { test } from 'node:test';
import assert from 'node:assert/strict';
import { expiryFor, payloadFromRow } from '../../src/auth-service/adapter.js';

const now = Date.parse('2026-01-01T12:00:00Z');

test('adapter: a payload is returned until it expires, never after; no expiry means kept', () => {
  const payload = { jti: 'x', kind: 'AuthorizationCode' };
  assert.deepEqual(payloadFromRow({ payload, expires_at: new Date(now + 1000), consumed_at: null }, now), payload);
  assert.equal(payloadFromRow({ payload, expires_at: new Date(now), consumed_at: null }, now), undefined, 'expired at exactly its time');
  assert.equal(payloadFromRow({ payload, expires_at: new Date(now - 1), consumed_at: null }, now), undefined);
  assert.deepEqual(payloadFromRow({ payload, expires_at: null, consumed_at: null }, now), payload);
  assert.equal(payloadFromRow(undefined, now), undefined);
});

test('adapter: a consumed payload carries `consumed` (epoch seconds), so oidc-provider refuses a second use', () => {
  const payload = { jti: 'x' };
  assert.deepEqual(payloadFromRow({ payload, expires_at: new Date(now + 60_000), consumed_at: new Date(now - 5_500) }, now), { jti: 'x', consumed: Math.floor((now - 5_500) / 1000) });
});

test('adapter: expiry is now + expiresIn seconds; none when not given', () => {
  assert.equal(expiryFor(now, 60)?.getTime(), now + 60_000);
  assert.equal(expiryFor(now, undefined), null);
  assert.equal(expiryFor(now, Number.NaN), null);
});
