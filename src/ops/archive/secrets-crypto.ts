/**
 * The archive's optional secrets part: scrypt (RFC 7914) derives a 256-bit key from the passphrase,
 * AES-256-GCM encrypts and authenticates. Every parameter is recorded in the part itself, so a later
 * mxstack with other defaults still opens it. node:crypto only.
 */
import { createCipheriv, createDecipheriv, randomBytes, scryptSync } from 'node:crypto';

/** OWASP's recommended scrypt minimum (N = 2^17, r = 8, p = 1): 128 MiB and well under a second per derivation. */
export const defaultScrypt = { N: 2 ** 17, r: 8, p: 1 } as const;
const keyLength = 32;
const associatedData = Buffer.from('mxstack-backup secrets v1');

export interface SecretsEnvelope {
  format: 'mxstack-secrets';
  version: 1;
  kdf: { name: 'scrypt'; N: number; r: number; p: number; keyLength: number; salt: string };
  cipher: { name: 'aes-256-gcm'; iv: string; tag: string };
  ciphertext: string;
}

export interface StoredSecret {
  name: string;
  key: string;
  value: string;
}

/** The passphrase does not open the secrets, or the part is not a secrets envelope. */
export class SecretsDecryptError extends Error {}

function deriveKey(passphrase: string, kdf: SecretsEnvelope['kdf']): Buffer {
  const salt = Buffer.from(kdf.salt, 'base64');
  return scryptSync(passphrase, salt, kdf.keyLength, { N: kdf.N, r: kdf.r, p: kdf.p, maxmem: 256 * kdf.N * kdf.r + 16 * 1024 * 1024 });
}

export function encryptSecrets(secrets: readonly StoredSecret[], passphrase: string, scrypt: { N: number; r: number; p: number } = defaultScrypt): Buffer {
  const kdf = { name: 'scrypt' as const, ...scrypt, keyLength, salt: randomBytes(16).toString('base64') };
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', deriveKey(passphrase, kdf), iv);
  cipher.setAAD(associatedData);
  const ciphertext = Buffer.concat([cipher.update(JSON.stringify({ secrets }), 'utf8'), cipher.final()]);
  const envelope: SecretsEnvelope = {
    format: 'mxstack-secrets',
    version: 1,
    kdf,
    cipher: { name: 'aes-256-gcm', iv: iv.toString('base64'), tag: cipher.getAuthTag().toString('base64') },
    ciphertext: ciphertext.toString('base64'),
  };
  return Buffer.from(`${JSON.stringify(envelope, null, 2)}\n`);
}

export function decryptSecrets(part: Buffer, passphrase: string): StoredSecret[] {
  let envelope: SecretsEnvelope;
  try {
    envelope = JSON.parse(part.toString('utf8')) as SecretsEnvelope;
  } catch {
    throw new SecretsDecryptError('the secrets part of the archive is not readable.');
  }
  if (envelope.format !== 'mxstack-secrets' || envelope.kdf?.name !== 'scrypt' || envelope.cipher?.name !== 'aes-256-gcm') {
    throw new SecretsDecryptError('the secrets part of the archive uses an unknown format.');
  }
  try {
    const decipher = createDecipheriv('aes-256-gcm', deriveKey(passphrase, envelope.kdf), Buffer.from(envelope.cipher.iv, 'base64'));
    decipher.setAAD(associatedData);
    decipher.setAuthTag(Buffer.from(envelope.cipher.tag, 'base64'));
    const plain = Buffer.concat([decipher.update(Buffer.from(envelope.ciphertext, 'base64')), decipher.final()]);
    return (JSON.parse(plain.toString('utf8')) as { secrets: StoredSecret[] }).secrets;
  } catch {
    throw new SecretsDecryptError('the passphrase does not open the secrets in the archive (wrong passphrase or damaged part).');
  }
}
