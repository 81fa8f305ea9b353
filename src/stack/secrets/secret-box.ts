// Encryption at rest for second-factor secrets (TOTP seeds): AES-256-GCM under a key handed to the module
// (from a Kubernetes Secret / the local secrets file), never derived from anything stored next to the data.
// The sealed form names its key id so keys can be rotated: old rows stay readable while the keyring holds
// the old key, and are re-sealed under the current one.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

export interface SealingKey {
  /** Short identifier stored with every sealed value ([A-Za-z0-9_-]+). */
  readonly id: string;
  /** 32 bytes. */
  readonly key: Buffer;
}

const formatVersion = 'v1';
const ivBytes = 12;
const tagBytes = 16;

export function checkSealingKey(sealingKey: SealingKey): void {
  if (!/^[A-Za-z0-9_-]{1,32}$/.test(sealingKey.id)) throw new Error('auth: a sealing key id is 1 to 32 letters, digits, "-" or "_"');
  if (sealingKey.key.length !== 32) throw new Error(`auth: sealing key "${sealingKey.id}" must be 32 bytes (AES-256)`);
}

/**
 * Seals `plaintext`; `context` (e.g. the account id) is authenticated but not stored, so a sealed value
 * copied onto another account's row does not open there.
 */
export function seal(plaintext: string, sealingKey: SealingKey, context: string): string {
  checkSealingKey(sealingKey);
  const iv = randomBytes(ivBytes);
  const cipher = createCipheriv('aes-256-gcm', sealingKey.key, iv, { authTagLength: tagBytes });
  cipher.setAAD(additionalData(sealingKey.id, context));
  const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return [formatVersion, sealingKey.id, iv.toString('base64url'), ciphertext.toString('base64url'), cipher.getAuthTag().toString('base64url')].join('.');
}

export function sealedKeyId(sealed: string): string {
  return parseSealed(sealed).keyId;
}

/** Opens a sealed value with whichever key of the keyring it names. Errors never include key or plaintext. */
export function open(sealed: string, keyring: readonly SealingKey[], context: string): string {
  const parts = parseSealed(sealed);
  const sealingKey = keyring.find((candidate) => candidate.id === parts.keyId);
  if (!sealingKey) throw new Error(`auth: no sealing key "${parts.keyId}" in the keyring`);
  checkSealingKey(sealingKey);
  const decipher = createDecipheriv('aes-256-gcm', sealingKey.key, parts.iv, { authTagLength: tagBytes });
  decipher.setAAD(additionalData(parts.keyId, context));
  decipher.setAuthTag(parts.tag);
  try {
    return Buffer.concat([decipher.update(parts.ciphertext), decipher.final()]).toString('utf8');
  } catch {
    throw new Error(`auth: a sealed secret (key "${parts.keyId}") failed authentication: wrong key, wrong account or altered data`);
  }
}

function additionalData(keyId: string, context: string): Buffer {
  return Buffer.from(`${formatVersion}\0${keyId}\0${context}`, 'utf8');
}

function parseSealed(sealed: string): { keyId: string; iv: Buffer; ciphertext: Buffer; tag: Buffer } {
  const parts = sealed.split('.');
  if (parts.length !== 5 || parts[0] !== formatVersion) throw new Error('auth: not a sealed secret (expected v1.<key id>.<iv>.<ciphertext>.<tag>)');
  const [, keyId, iv, ciphertext, tag] = parts as [string, string, string, string, string];
  const ivBuffer = Buffer.from(iv, 'base64url');
  const tagBuffer = Buffer.from(tag, 'base64url');
  if (ivBuffer.length !== ivBytes || tagBuffer.length !== tagBytes) throw new Error('auth: a sealed secret has a malformed nonce or tag');
  return { keyId, iv: ivBuffer, ciphertext: Buffer.from(ciphertext, 'base64url'), tag: tagBuffer };
}
