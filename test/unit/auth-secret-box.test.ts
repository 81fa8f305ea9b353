import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { open, seal, sealedKeyId } from '../../src/stack/secrets/secret-box.js';

const current = { id: 'k2', key: randomBytes(32) };
const previous = { id: 'k1', key: randomBytes(32) };

test('sealed secret opens with its key and context, and does not contain the plaintext', () => {
  const sealed = seal('JBSWY3DPEHPK3PXP', current, 'account-1');
  assert.ok(!sealed.includes('JBSWY3DPEHPK3PXP'));
  assert.match(sealed, /^v1\.k2\./);
  assert.equal(sealedKeyId(sealed), 'k2');
  assert.equal(open(sealed, [previous, current], 'account-1'), 'JBSWY3DPEHPK3PXP');
});

test('same plaintext seals differently each time (random nonce)', () => {
  assert.notEqual(seal('s', current, 'a'), seal('s', current, 'a'));
});

test('an old key in the keyring still opens values sealed under it (rotation)', () => {
  assert.equal(open(seal('old', previous, 'a'), [current, previous], 'a'), 'old');
});

test('another account, a wrong key, a missing key or altered data are refused without revealing secrets', () => {
  const sealed = seal('TOPSECRET', current, 'account-1');
  assert.throws(() => open(sealed, [current], 'account-2'), (error: Error) => /failed authentication/.test(error.message) && !error.message.includes('TOPSECRET'));
  assert.throws(() => open(sealed, [{ id: 'k2', key: randomBytes(32) }], 'account-1'), /failed authentication/);
  assert.throws(() => open(sealed, [previous], 'account-1'), /no sealing key "k2"/);
  const parts = sealed.split('.');
  const ciphertext = Buffer.from(parts[3]!, 'base64url');
  ciphertext[0] = ciphertext[0]! ^ 1;
  parts[3] = ciphertext.toString('base64url');
  assert.throws(() => open(parts.join('.'), [current], 'account-1'), /failed authentication/);
  assert.throws(() => open('nonsense', [current], 'account-1'), /not a sealed secret/);
});

test('keys must be 32 bytes with a plain id', () => {
  assert.throws(() => seal('x', { id: 'k', key: randomBytes(16) }, 'a'), /32 bytes/);
  assert.throws(() => seal('x', { id: 'bad.id', key: randomBytes(32) }, 'a'), /key id/);
});
