// The auth component's key material as it travels in a Secret (one string per Secret key):
// - the TOTP sealing keyring, "id:base64,id:base64,…", the FIRST key being the current one (new secrets are
//   sealed under it), the others kept only to open older rows until they are re-sealed;
// - the recovery-code HMAC key, base64 of at least 32 bytes.
// Errors name the problem and the key id, never key material.
import { randomBytes } from 'node:crypto';
import { checkSealingKey, type SealingKey } from './secret-box.js';

export interface SealingKeyring {
  readonly current: SealingKey;
  readonly keyring: readonly SealingKey[];
}

export function generateSealingKey(id: string): SealingKey {
  const key = { id, key: randomBytes(32) };
  checkSealingKey(key);
  return key;
}

export function formatSealingKeyring(keys: readonly SealingKey[]): string {
  return keys.map((key) => `${key.id}:${key.key.toString('base64')}`).join(',');
}

export function parseSealingKeyring(text: string): SealingKeyring {
  const keys = text
    .split(/[,\s]+/)
    .filter((entry) => entry !== '')
    .map((entry, index) => {
      const separator = entry.indexOf(':');
      if (separator <= 0) throw new Error(`auth: sealing keyring entry ${index + 1} is not "id:base64"`);
      const key = { id: entry.slice(0, separator), key: Buffer.from(entry.slice(separator + 1), 'base64') };
      checkSealingKey(key);
      return key;
    });
  const [current] = keys;
  if (!current) throw new Error('auth: the sealing keyring is empty');
  const ids = keys.map((key) => key.id);
  const repeated = ids.find((id, index) => ids.indexOf(id) !== index);
  if (repeated) throw new Error(`auth: sealing key id "${repeated}" appears twice in the keyring`);
  return { current, keyring: keys };
}

/** Rotation: `newKey` becomes current, the previous keys stay to open existing rows. */
export function rotateSealingKeyring(text: string, newKey: SealingKey): string {
  const { keyring } = parseSealingKeyring(text);
  if (keyring.some((key) => key.id === newKey.id)) throw new Error(`auth: sealing key id "${newKey.id}" is already in the keyring`);
  return formatSealingKeyring([newKey, ...keyring]);
}

export function generateRecoveryCodeKey(): string {
  return randomBytes(32).toString('base64');
}

export function parseRecoveryCodeKey(text: string): Buffer {
  const key = Buffer.from(text.trim(), 'base64');
  if (key.length < 32) throw new Error('auth: the recovery code key must be base64 of at least 32 bytes');
  return key;
}
