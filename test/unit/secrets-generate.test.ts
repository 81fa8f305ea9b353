/** Secret generators and the shared-secret registration MAC. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, createPrivateKey, createPublicKey, sign, verify } from 'node:crypto';
import {
  generateAdminPassword,
  generatePostgresPassword,
  generateRandomSecret,
  generateSigningKey,
  randomString,
  signingKeyInfo,
} from '../../src/stack/secrets/generate.js';
import { registrationMac } from '../../src/components/synapse/shared-secret-registration.js';

test('random secrets carry 256 bits in a URL-safe alphabet and never repeat', () => {
  const secrets = Array.from({ length: 50 }, () => generateRandomSecret());
  for (const secret of secrets) assert.match(secret, /^[A-Za-z0-9_-]{43}$/);
  assert.equal(new Set(secrets).size, secrets.length);
});

test('passwords are alphanumeric (safe in libpq, YAML and SQL) and long', () => {
  for (const password of [generatePostgresPassword(), generateAdminPassword()]) assert.match(password, /^[A-Za-z0-9]{32}$/);
  assert.notEqual(generatePostgresPassword(), generatePostgresPassword());
  assert.equal(randomString(5, 'a'), 'aaaaa');
});

test('the signing key has Synapse\'s format and a seed that signs verifiably', () => {
  const keyFile = generateSigningKey();
  assert.match(keyFile, /^ed25519 a_[A-Za-z]{4} [A-Za-z0-9+/]{43}\n$/);
  const info = signingKeyInfo(keyFile);
  assert.match(info.keyId, /^ed25519:a_[A-Za-z]{4}$/);
  // Rebuild the private key from the seed, sign, and verify with the published public key.
  const seed = Buffer.from(keyFile.split(' ')[2]!.trim(), 'base64');
  const privateKey = createPrivateKey({ key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]), format: 'der', type: 'pkcs8' });
  const publicKey = createPublicKey({
    key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), Buffer.from(info.publicKey, 'base64')]),
    format: 'der',
    type: 'spki',
  });
  const message = Buffer.from('matrix');
  assert.ok(verify(null, message, publicKey, sign(null, message, privateKey)));
  assert.notEqual(signingKeyInfo(generateSigningKey()).publicKey, info.publicKey);
});

test('a malformed signing key is refused without echoing it', () => {
  assert.throws(() => signingKeyInfo('rsa a_abcd AAAA'), (error: Error) => !error.message.includes('AAAA'));
  assert.throws(() => signingKeyInfo('ed25519 a_abcd c2hvcnQ'), /32 bytes/);
});

test('the registration MAC is HMAC-SHA1 over nonce, user, password and admin flag, NUL-separated', () => {
  const expected = createHmac('sha1', 'shared').update('nonce\0alice\0pw\0admin').digest('hex');
  assert.equal(registrationMac('shared', 'nonce', { username: 'alice', password: 'pw', admin: true }), expected);
  const notAdmin = createHmac('sha1', 'shared').update('nonce\0alice\0pw\0notadmin').digest('hex');
  assert.equal(registrationMac('shared', 'nonce', { username: 'alice', password: 'pw', admin: false }), notAdmin);
});
