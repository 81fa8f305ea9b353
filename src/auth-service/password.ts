// Password hashing for the auth component: argon2id (memory-hard), with its parameters recorded in the
// PHC hash string itself ($argon2id$v=19$m=…,t=…,p=…$salt$hash), so old hashes stay verifiable when the
// policy changes and can be upgraded on the next successful sign-in.
import argon2 from 'argon2';
import bcrypt from 'bcryptjs';

export interface Argon2idParameters {
  /** KiB of memory per hash. */
  readonly memoryCost: number;
  /** Passes over memory. */
  readonly timeCost: number;
  readonly parallelism: number;
}

/** OWASP's argon2id baseline (19 MiB, 2 passes, 1 lane): safe on a small server under parallel sign-ins. */
export const defaultArgon2idParameters: Argon2idParameters = { memoryCost: 19456, timeCost: 2, parallelism: 1 };

export async function hashPassword(password: string, parameters: Argon2idParameters = defaultArgon2idParameters): Promise<string> {
  return argon2.hash(password, { type: argon2.argon2id, ...parameters });
}

export function isArgon2idHash(stored: string): boolean {
  return stored.startsWith('$argon2id$');
}

/** Synapse stores bcrypt hashes ($2a$/$2b$/$2y$). */
export function isSynapseBcryptHash(stored: string): boolean {
  return /^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$/.test(stored);
}

export type PasswordCheck =
  | { readonly ok: false }
  /** `replacementHash` is set when the stored hash must be replaced (imported bcrypt, or outdated parameters). */
  | { readonly ok: true; readonly replacementHash?: string };

export interface PasswordCheckOptions {
  readonly parameters?: Argon2idParameters;
  /**
   * Synapse's `password_config.pepper`, only if that deployment configured one: Synapse then hashes
   * password + pepper (UTF-8 concatenation) with bcrypt. Empty or absent: no pepper (Synapse's default).
   */
  readonly synapsePepper?: string;
}

/**
 * Checks a password against a stored hash. An argon2id hash is verified directly. A Synapse bcrypt hash is
 * accepted ONCE: on success, a new argon2id hash is returned for the caller to store in its place (the
 * one-time import that lets existing users sign in with their current password when 2FA is switched on).
 * Unknown hash formats never verify.
 */
export async function checkPassword(stored: string, password: string, options: PasswordCheckOptions = {}): Promise<PasswordCheck> {
  const parameters = options.parameters ?? defaultArgon2idParameters;
  if (isArgon2idHash(stored)) {
    const ok = await verifyArgon2id(stored, password);
    if (!ok) return { ok: false };
    return argon2.needsRehash(stored, { ...parameters }) ? { ok: true, replacementHash: await hashPassword(password, parameters) } : { ok: true };
  }
  if (isSynapseBcryptHash(stored)) {
    const ok = await bcrypt.compare(password + (options.synapsePepper ?? ''), stored);
    return ok ? { ok: true, replacementHash: await hashPassword(password, parameters) } : { ok: false };
  }
  return { ok: false };
}

async function verifyArgon2id(stored: string, password: string): Promise<boolean> {
  try {
    return await argon2.verify(stored, password);
  } catch {
    return false; // a malformed stored hash is a failed check, not a crash of the sign-in page
  }
}
