/** Generators for every secret the stack needs. Random from node:crypto; no I/O. */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, randomInt, type JsonWebKey } from 'node:crypto';
import type { AuthSecrets } from '../model.js';
import { formatSealingKeyring, generateRecoveryCodeKey, generateSealingKey } from './auth-keys.js';

const alphanumeric = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const letters = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** Uniformly random characters from an alphabet (randomInt avoids modulo bias). */
export function randomString(length: number, alphabet: string = alphanumeric): string {
  let out = '';
  for (let i = 0; i < length; i++) out += alphabet[randomInt(alphabet.length)];
  return out;
}

/** A generic secret (registration shared secret, macaroon key, form secret, TURN secret): 256 bits, URL-safe. */
export function generateRandomSecret(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}

/** Alphanumeric only, so it is safe unquoted in libpq strings, YAML and SQL literals. */
export function generatePostgresPassword(): string {
  return randomString(32);
}

/** Alphanumeric, about 190 bits: typed by a human at most once, then kept in a password manager. */
export function generateAdminPassword(): string {
  return randomString(32);
}

/** The 32-byte Ed25519 seed of a private key (the last 32 bytes of its PKCS#8 DER encoding). */
function ed25519Seed(der: Buffer): Buffer {
  return der.subarray(der.length - 32);
}

/** PKCS#8 DER prefix of an Ed25519 private key; the 32-byte seed follows it. */
const ed25519Pkcs8Prefix = Buffer.from('302e020100300506032b657004220420', 'hex');

/**
 * A Synapse signing key file: `ed25519 a_XXXX <unpadded base64 of the 32-byte seed>`, the format
 * Synapse's `generate_signing_key` writes (key id `a_` + 4 random letters).
 */
export function generateSigningKey(): string {
  const { privateKey } = generateKeyPairSync('ed25519');
  const seed = ed25519Seed(privateKey.export({ format: 'der', type: 'pkcs8' }));
  return `ed25519 a_${randomString(4, letters)} ${seed.toString('base64').replace(/=+$/, '')}\n`;
}

export interface SigningKeyInfo {
  /** `ed25519:a_XXXX`, as servers publish it in /_matrix/key/v2/server. */
  keyId: string;
  /** Unpadded base64 of the public key. */
  publicKey: string;
}

/** Key id and public key of a signing key file (first line), to compare with what Synapse publishes. */
export function signingKeyInfo(keyFile: string): SigningKeyInfo {
  const [algorithm, version, seedBase64] = keyFile.trim().split('\n')[0]!.trim().split(/\s+/);
  if (algorithm !== 'ed25519' || !version || !seedBase64) throw new Error('not a Synapse signing key (expected "ed25519 <version> <seed>")');
  const seed = Buffer.from(seedBase64, 'base64');
  if (seed.length !== 32) throw new Error('not a Synapse signing key (the seed is not 32 bytes)');
  const privateKey = createPrivateKey({ key: Buffer.concat([ed25519Pkcs8Prefix, seed]), format: 'der', type: 'pkcs8' });
  const spki = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
  return { keyId: `ed25519:${version}`, publicKey: spki.subarray(spki.length - 32).toString('base64').replace(/=+$/, '') };
}

/** RFC 7638 thumbprint of an RSA key (base64url sha256 of its required members in lexical order). */
export function rsaJwkThumbprint(jwk: JsonWebKey): string {
  const canonical = JSON.stringify({ e: jwk.e, kty: jwk.kty, n: jwk.n });
  return createHash('sha256').update(canonical).digest('base64url');
}

/**
 * The auth component's OpenID Connect signing keys: a JWKS `{"keys":[...]}` with one RSA 2048 private
 * key (kid = its thumbprint, alg RS256, use sig), the algorithm Synapse expects of ID tokens by default.
 */
export function generateSigningJwks(): string {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return JSON.stringify({ keys: [{ ...jwk, kid: rsaJwkThumbprint(jwk), alg: 'RS256', use: 'sig' }] });
}

/** A TOTP sealing keyring with one fresh key (stack/secrets/auth-keys.ts format), its id unique enough to rotate next to. */
function generateSealingKeyringSecret(): string {
  return formatSealingKeyring([generateSealingKey(`k${randomString(8, 'abcdefghijklmnopqrstuvwxyz0123456789')}`)]);
}

/** Cookie signing keys: two random keys, comma-separated (the first signs, both verify). */
function generateCookieKeys(): string {
  return [generateRandomSecret(), generateRandomSecret()].join(',');
}

/** How each key of the `<release>-auth` Secret is generated (every one of them is). */
export const authSecretGenerators: Record<keyof AuthSecrets, () => string> = {
  clientSecret: () => generateRandomSecret(),
  sealingKeyring: generateSealingKeyringSecret,
  recoveryCodeKey: generateRecoveryCodeKey,
  cookieKeys: generateCookieKeys,
  signingJwks: generateSigningJwks,
  adminToken: () => generateRandomSecret(),
  cliAppserviceToken: () => generateRandomSecret(),
  cliAppserviceHsToken: () => generateRandomSecret(),
};
