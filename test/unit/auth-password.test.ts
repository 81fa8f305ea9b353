import { test } from 'node:test';
import assert from 'node:assert/strict';
import bcrypt from 'bcryptjs';
import { checkPassword, hashPassword, isArgon2idHash, isSynapseBcryptHash, type Argon2idParameters } from '../../src/auth-service/password.js';

// Small parameters keep the suite fast; the defaults are checked through the hash string below.
const fast: Argon2idParameters = { memoryCost: 1024, timeCost: 1, parallelism: 1 };

test('argon2id hash records its parameters and verifies only the right password', async () => {
  const stored = await hashPassword('correct horse', fast);
  assert.match(stored, /^\$argon2id\$v=19\$m=1024,p=1,t=1\$/);
  assert.deepEqual(await checkPassword(stored, 'correct horse', { parameters: fast }), { ok: true });
  assert.deepEqual(await checkPassword(stored, 'correct hors', { parameters: fast }), { ok: false });
});

test('default parameters are the OWASP argon2id baseline', async () => {
  assert.match(await hashPassword('x'), /^\$argon2id\$v=19\$m=19456,p=1,t=2\$/);
});

test('two hashes of the same password differ (random salt)', async () => {
  assert.notEqual(await hashPassword('same', fast), await hashPassword('same', fast));
});

test('a hash with outdated parameters verifies and asks to be replaced with the current ones', async () => {
  const old = await hashPassword('pw', fast);
  const stronger: Argon2idParameters = { memoryCost: 2048, timeCost: 2, parallelism: 1 };
  const result = await checkPassword(old, 'pw', { parameters: stronger });
  assert.equal(result.ok, true);
  assert.ok(result.ok && result.replacementHash);
  assert.match(result.replacementHash!, /m=2048,p=1,t=2/);
});

test('a Synapse bcrypt hash is accepted once and replaced by an argon2id hash', async () => {
  const synapseHash = bcrypt.hashSync('old password', 4).replace(/^\$2a\$/, '$2b$'); // Synapse writes $2b$
  assert.ok(isSynapseBcryptHash(synapseHash));
  const result = await checkPassword(synapseHash, 'old password', { parameters: fast });
  assert.equal(result.ok, true);
  const replacement = result.ok ? result.replacementHash : undefined;
  assert.ok(replacement && isArgon2idHash(replacement));
  assert.deepEqual(await checkPassword(replacement, 'old password', { parameters: fast }), { ok: true });
  assert.deepEqual(await checkPassword(synapseHash, 'wrong', { parameters: fast }), { ok: false });
});

test('a Synapse bcrypt hash made with a pepper needs that pepper', async () => {
  const peppered = bcrypt.hashSync('pw' + 'PEPPER', 4);
  assert.deepEqual(await checkPassword(peppered, 'pw', { parameters: fast }), { ok: false });
  assert.equal((await checkPassword(peppered, 'pw', { parameters: fast, synapsePepper: 'PEPPER' })).ok, true);
});

test('unknown or malformed stored hashes never verify', async () => {
  for (const stored of ['', 'pw', '$argon2id$garbage', '$1$abc$def', '$argon2i$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA']) {
    assert.deepEqual(await checkPassword(stored, 'pw', { parameters: fast }), { ok: false }, stored);
  }
});
