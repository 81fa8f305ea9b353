import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatSealingKeyring, generateRecoveryCodeKey, generateSealingKey, parseRecoveryCodeKey, parseSealingKeyring, rotateSealingKeyring } from '../../src/stack/secrets/auth-keys.js';
import { open, seal } from '../../src/stack/secrets/secret-box.js';

test('a keyring round-trips through its Secret form; the first key is current', () => {
  const k1 = generateSealingKey('k1');
  const k2 = generateSealingKey('k2');
  const parsed = parseSealingKeyring(formatSealingKeyring([k2, k1]));
  assert.equal(parsed.current.id, 'k2');
  assert.ok(parsed.current.key.equals(k2.key));
  assert.deepEqual(parsed.keyring.map((key) => key.id), ['k2', 'k1']);
});

test('rotation seals new values under the new key and still opens old ones', () => {
  const k1 = generateSealingKey('k1');
  const text = formatSealingKeyring([k1]);
  const old = seal('old secret', parseSealingKeyring(text).current, 'a');
  const rotated = parseSealingKeyring(rotateSealingKeyring(text, generateSealingKey('k2')));
  assert.equal(rotated.current.id, 'k2');
  assert.equal(open(old, rotated.keyring, 'a'), 'old secret');
  assert.match(seal('new', rotated.current, 'a'), /^v1\.k2\./);
  assert.throws(() => rotateSealingKeyring(rotateSealingKeyring(text, generateSealingKey('k2')), generateSealingKey('k1')), /already in the keyring/);
});

test('malformed keyrings are refused without echoing key material', () => {
  const short = Buffer.alloc(16, 7).toString('base64');
  assert.throws(() => parseSealingKeyring(''), /empty/);
  assert.throws(() => parseSealingKeyring('nocolon'), /not "id:base64"/);
  assert.throws(() => parseSealingKeyring(`k1:${short}`), (error: Error) => /32 bytes/.test(error.message) && !error.message.includes(short));
  const k = formatSealingKeyring([generateSealingKey('k1')]);
  assert.throws(() => parseSealingKeyring(`${k},${k}`), /appears twice/);
});

test('recovery code key: generated 32 bytes, short keys refused', () => {
  assert.equal(parseRecoveryCodeKey(generateRecoveryCodeKey()).length, 32);
  assert.throws(() => parseRecoveryCodeKey(Buffer.alloc(31).toString('base64')), /at least 32 bytes/);
});
