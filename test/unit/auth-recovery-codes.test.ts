import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { findUnusedRecoveryCode, generateRecoveryCodes, hashRecoveryCode, type StoredRecoveryCode } from '../../src/auth-service/recovery-codes.js';

const key = randomBytes(32);

test('generates N distinct readable codes without look-alike characters', () => {
  const codes = generateRecoveryCodes(10);
  assert.equal(codes.length, 10);
  assert.equal(new Set(codes).size, 10);
  for (const code of codes) assert.match(code, /^[2-9A-HJKMNP-TV-Z]{4}-[2-9A-HJKMNP-TV-Z]{4}-[2-9A-HJKMNP-TV-Z]{4}$/);
  assert.throws(() => generateRecoveryCodes(0), /1 to 100/);
});

test('only keyed hashes are stored: the hash depends on the key and does not contain the code', () => {
  const [code] = generateRecoveryCodes(1) as [string];
  const hash = hashRecoveryCode(code, key);
  assert.match(hash, /^[0-9a-f]{64}$/);
  assert.notEqual(hash, hashRecoveryCode(code, randomBytes(32)));
  assert.ok(!hash.includes(code.replace(/-/g, '')));
  assert.throws(() => hashRecoveryCode(code, randomBytes(16)), /32 bytes/);
});

test('a code is found once: after being marked used it is no longer accepted', () => {
  const codes = generateRecoveryCodes(3);
  let stored: StoredRecoveryCode[] = codes.map((code) => ({ hash: hashRecoveryCode(code, key), usedAt: null }));
  const found = findUnusedRecoveryCode(codes[1]!, stored, key);
  assert.equal(found?.hash, stored[1]!.hash);
  stored = stored.map((entry) => (entry === found ? { ...entry, usedAt: new Date() } : entry));
  assert.equal(findUnusedRecoveryCode(codes[1]!, stored, key), undefined);
  assert.equal(findUnusedRecoveryCode(codes[0]!, stored, key)?.hash, stored[0]!.hash);
});

test('input is accepted without dashes and in lower case; wrong codes and wrong keys are refused', () => {
  const [code] = generateRecoveryCodes(1) as [string];
  const stored = [{ hash: hashRecoveryCode(code, key), usedAt: null }];
  assert.ok(findUnusedRecoveryCode(code.replace(/-/g, ' ').toLowerCase(), stored, key));
  assert.equal(findUnusedRecoveryCode(generateRecoveryCodes(1)[0]!, stored, key), undefined);
  assert.equal(findUnusedRecoveryCode(code, stored, randomBytes(32)), undefined);
  assert.equal(findUnusedRecoveryCode('not a code', stored, key), undefined);
});
