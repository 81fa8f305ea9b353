// Recovery codes: shown once at enrolment, stored only as keyed hashes, each usable once.
// A fast keyed hash (HMAC-SHA-256) is enough here, unlike for passwords: each code is 60 random bits, not
// a human choice, so there is no dictionary to try, and without the HMAC key (kept in a Secret, not in the
// database) a stolen table cannot be searched at all. A slow hash would only cost sign-in time.
import { createHmac, randomInt } from 'node:crypto';
import { constantTimeEqual } from './totp.js';

/** Crockford-like alphabet without look-alikes (no 0/O, 1/I/L, U): easy to read aloud and type. */
const alphabet = '23456789ABCDEFGHJKMNPQRSTVWXYZ';
/** 12 symbols of a 30-letter alphabet ≈ 58.9 bits per code. */
const symbolsPerCode = 12;
export const defaultRecoveryCodeCount = 10;

/** N new codes in the displayed form XXXX-XXXX-XXXX. */
export function generateRecoveryCodes(count: number = defaultRecoveryCodeCount): string[] {
  if (!Number.isInteger(count) || count < 1 || count > 100) throw new Error('auth: recovery code count must be 1 to 100');
  const codes = new Set<string>();
  while (codes.size < count) codes.add(formatCode(Array.from({ length: symbolsPerCode }, () => alphabet[randomInt(alphabet.length)]).join('')));
  return [...codes];
}

/** Upper case, no separators or spaces, so "abcd efgh-jkmn" and "ABCD-EFGH-JKMN" are the same code. */
export function normalizeRecoveryCode(input: string): string {
  return input.toUpperCase().replace(/[\s-]+/g, '');
}

export function hashRecoveryCode(code: string, hmacKey: Buffer): string {
  if (hmacKey.length < 32) throw new Error('auth: the recovery code key must be at least 32 bytes');
  return createHmac('sha256', hmacKey).update(normalizeRecoveryCode(code), 'utf8').digest('hex');
}

export interface StoredRecoveryCode {
  readonly hash: string;
  readonly usedAt: Date | null;
}

/**
 * Which unused stored code `input` is, if any (the caller then marks it used, atomically, in storage).
 * Every stored hash is compared in constant time.
 */
export function findUnusedRecoveryCode(input: string, stored: readonly StoredRecoveryCode[], hmacKey: Buffer): StoredRecoveryCode | undefined {
  const normalized = normalizeRecoveryCode(input);
  if (!new RegExp(`^[${alphabet}]{${symbolsPerCode}}$`).test(normalized)) return undefined;
  const submittedHash = hashRecoveryCode(normalized, hmacKey);
  let found: StoredRecoveryCode | undefined;
  for (const candidate of stored) {
    if (constantTimeEqual(candidate.hash, submittedHash) && candidate.usedAt === null) found = candidate;
  }
  return found;
}

function formatCode(symbols: string): string {
  return symbols.match(/.{4}/g)!.join('-');
}
