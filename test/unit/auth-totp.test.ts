import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { Secret } from 'otpauth';
import { checkTotpCode, generateTotpSecret, totpCodeAt, totpEnrolmentUri, totpStepAt, type TotpPolicy } from '../../src/auth-service/totp.js';

const policy: TotpPolicy = { issuer: 'Example Chat', digits: 6, period: 30, algorithm: 'SHA1' };
const now = Date.UTC(2026, 10, 27, 12, 0, 10);
const secret = generateTotpSecret();

test('RFC 6238 appendix B vectors (SHA-1, 8 digits)', () => {
  const rfcSecret = new Secret({ buffer: new Uint8Array(Buffer.from('12345678901234567890', 'ascii')).buffer }).base32;
  const rfc: TotpPolicy = { issuer: 'x', digits: 8, period: 30, algorithm: 'SHA1' };
  assert.equal(totpCodeAt(rfc, rfcSecret, 59_000), '94287082');
  assert.equal(totpCodeAt(rfc, rfcSecret, 1111111109_000), '07081804');
  assert.equal(totpCodeAt(rfc, rfcSecret, 20000000000_000), '65353130');
});

test('codes follow digits and algorithm from the policy (checked against an independent HOTP)', () => {
  const sha256: TotpPolicy = { ...policy, digits: 8, algorithm: 'SHA256' };
  const s = generateTotpSecret('SHA256');
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(totpStepAt(sha256, now)));
  const mac = createHmac('sha256', Buffer.from(Secret.fromBase32(s).bytes)).update(counter).digest();
  const offset = mac[mac.length - 1]! & 0xf;
  const expected = ((mac.readUInt32BE(offset) & 0x7fffffff) % 1e8).toString().padStart(8, '0');
  assert.equal(totpCodeAt(sha256, s, now), expected);
});

test('secrets are random base32 of the size the algorithm wants', () => {
  assert.match(secret, /^[A-Z2-7]{32}$/);
  assert.notEqual(generateTotpSecret(), secret);
  assert.equal(Secret.fromBase32(generateTotpSecret('SHA512')).bytes.length, 64);
});

test('enrolment URI carries issuer, account, digits, period and algorithm', () => {
  const uri = new URL(totpEnrolmentUri({ ...policy, digits: 8, period: 60, algorithm: 'SHA256' }, '@alice:example.org', secret));
  assert.equal(uri.protocol, 'otpauth:');
  assert.equal(uri.host, 'totp');
  assert.equal(decodeURIComponent(uri.pathname), '/Example Chat:@alice:example.org');
  assert.equal(uri.searchParams.get('issuer'), 'Example Chat');
  assert.equal(uri.searchParams.get('secret'), secret);
  assert.equal(uri.searchParams.get('digits'), '8');
  assert.equal(uri.searchParams.get('period'), '60');
  assert.equal(uri.searchParams.get('algorithm'), 'SHA256');
});

test('current code and codes one step either side are accepted, returning their step', () => {
  const step = totpStepAt(policy, now);
  for (const delta of [-1, 0, 1]) {
    const code = totpCodeAt(policy, secret, now + delta * 30_000);
    assert.deepEqual(checkTotpCode(policy, secret, code, now, undefined), { ok: true, step: step + delta });
  }
});

test('a code from the previous-but-one step (or two ahead) is refused', () => {
  assert.deepEqual(checkTotpCode(policy, secret, totpCodeAt(policy, secret, now - 60_000), now, undefined), { ok: false, reason: 'wrong' });
  assert.deepEqual(checkTotpCode(policy, secret, totpCodeAt(policy, secret, now + 60_000), now, undefined), { ok: false, reason: 'wrong' });
});

test('a code already used is refused (replay), as is an older step after a newer one', () => {
  const code = totpCodeAt(policy, secret, now);
  const first = checkTotpCode(policy, secret, code, now, undefined);
  assert.ok(first.ok);
  assert.deepEqual(checkTotpCode(policy, secret, code, now + 5_000, first.step), { ok: false, reason: 'replayed' });
  const previous = totpCodeAt(policy, secret, now - 30_000);
  assert.deepEqual(checkTotpCode(policy, secret, previous, now, first.step), { ok: false, reason: 'replayed' });
  const next = totpCodeAt(policy, secret, now + 30_000);
  assert.deepEqual(checkTotpCode(policy, secret, next, now + 30_000, first.step), { ok: true, step: first.step + 1 });
});

test('wrong and malformed codes are refused; spaces are tolerated', () => {
  const code = totpCodeAt(policy, secret, now);
  const wrong = String((Number(code) + 1) % 1e6).padStart(6, '0');
  assert.deepEqual(checkTotpCode(policy, secret, wrong, now, undefined).ok, false);
  for (const malformed of ['', '12345', '1234567', 'abcdef', code + '0']) {
    assert.deepEqual(checkTotpCode(policy, secret, malformed, now, undefined), { ok: false, reason: 'malformed' }, malformed);
  }
  assert.equal(checkTotpCode(policy, secret, `${code.slice(0, 3)} ${code.slice(3)}`, now, undefined).ok, true);
});

test('a code for another secret is refused', () => {
  assert.equal(checkTotpCode(policy, secret, totpCodeAt(policy, generateTotpSecret(), now), now, undefined).ok, false);
});
