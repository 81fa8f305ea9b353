// The sign-in and enrolment steps of the identity provider, composed from the pure modules and the
// repository. The pages (next) call these; they hold the rules that must not depend on the pages:
// throttling of every guess (password, TOTP code, recovery code) per account and per address, the one-time
// bcrypt import, replay-safe single use, and an audit entry for every outcome (never a secret).
import { randomBytes } from 'node:crypto';
import type { Database } from './repository.js';
import * as repo from './repository.js';
import { checkPassword, hashPassword, type PasswordCheckOptions } from './password.js';
import { open, seal, type SealingKey } from '../stack/secrets/secret-box.js';
import { checkTotpCode, generateTotpSecret, totpEnrolmentUri, type TotpPolicy } from './totp.js';
import { findUnusedRecoveryCode, generateRecoveryCodes, hashRecoveryCode, defaultRecoveryCodeCount } from './recovery-codes.js';
import { accountKey, addressKey, checkAttempt, recordFailure, recordSuccess, type ThrottleEntry, type ThrottleKey, type ThrottlePolicy } from './throttle.js';

export interface AuthContext {
  readonly db: Database;
  readonly throttlePolicy: ThrottlePolicy;
  readonly passwordOptions: PasswordCheckOptions;
  readonly totpPolicy: TotpPolicy;
  /** New secrets are sealed under `current`; `keyring` (which includes it) opens old ones. */
  readonly sealing: { readonly current: SealingKey; readonly keyring: readonly SealingKey[] };
  readonly recoveryCodeKey: Buffer;
  readonly clock: () => number;
}

export type Refusal = { readonly ok: false; readonly reason: 'locked'; readonly retryAfterMs: number } | { readonly ok: false; readonly reason: 'refused' };

/** `factors` is the account's factor summary read for this step, so the caller need not read it again. */
export type PasswordOutcome = Refusal | { readonly ok: true; readonly account: repo.Account; readonly factors: repo.FactorSummary; readonly hasSecondFactor: boolean };

/**
 * A verified hash of a random password: unknown accounts are checked against it so that "no such user"
 * takes as long as "wrong password" (no account enumeration by timing).
 */
let decoyHash: Promise<string> | undefined;

/** First step: username + password. Locked keys are refused before any hashing. */
export async function signInWithPassword(ctx: AuthContext, username: string, password: string, address: string): Promise<PasswordOutcome> {
  const keys = [accountKey(username), addressKey(address)];
  const locked = await lockedOut(ctx, keys);
  if (locked) return locked;
  const account = await repo.findAccount(ctx.db, username);
  const stored = account ? await repo.getPasswordHash(ctx.db, account.id) : undefined;
  decoyHash ??= hashPassword(randomBytes(16).toString('hex'), ctx.passwordOptions.parameters);
  const check = await checkPassword(stored?.hash ?? (await decoyHash), password, ctx.passwordOptions);
  if (!account || !stored || !check.ok) {
    await recordGuessFailure(ctx, keys, { accountId: account?.id, username, address, reason: 'password' });
    return { ok: false, reason: 'refused' };
  }
  if (check.replacementHash) {
    await repo.setPasswordHash(ctx.db, account.id, check.replacementHash, 'argon2id');
    if (stored.scheme === 'synapse-bcrypt') await repo.appendAudit(ctx.db, { accountId: account.id, username: account.username, event: 'password-imported', address });
  }
  const factors = await repo.factorSummary(ctx.db, account.id);
  return { ok: true, account, factors, hasSecondFactor: factors.totp || factors.webauthnCredentials > 0 };
}

/** Second step with a TOTP code: the code must be right AND its step must win the single-use update. */
export async function verifyTotp(ctx: AuthContext, account: repo.Account, code: string, address: string): Promise<{ ok: true } | Refusal> {
  const keys = [accountKey(account.username), addressKey(address)];
  const locked = await lockedOut(ctx, keys);
  if (locked) return locked;
  const stored = await repo.getTotp(ctx.db, account.id);
  if (stored?.confirmed) {
    const secret = open(stored.sealedSecret, ctx.sealing.keyring, account.id);
    const check = checkTotpCode(enrolledPolicy(ctx, stored), secret, code, ctx.clock(), stored.lastUsedStep);
    if (check.ok && (await repo.useTotpStep(ctx.db, account.id, check.step))) return signedIn(ctx, account, keys, address, 'totp');
  }
  await recordGuessFailure(ctx, keys, { accountId: account.id, username: account.username, address, reason: 'totp' });
  return { ok: false, reason: 'refused' };
}

/** Second step with a recovery code, usable once. */
export async function verifyRecoveryCode(ctx: AuthContext, account: repo.Account, code: string, address: string): Promise<{ ok: true; readonly codesLeft: number } | Refusal> {
  const keys = [accountKey(account.username), addressKey(address)];
  const locked = await lockedOut(ctx, keys);
  if (locked) return locked;
  const found = findUnusedRecoveryCode(code, await repo.listRecoveryCodes(ctx.db, account.id), ctx.recoveryCodeKey);
  if (found && (await repo.useRecoveryCode(ctx.db, account.id, found.hash))) {
    await repo.appendAudit(ctx.db, { accountId: account.id, username: account.username, event: 'recovery-code-used', address });
    await signedIn(ctx, account, keys, address, 'recovery-code');
    return { ok: true, codesLeft: (await repo.factorSummary(ctx.db, account.id)).recoveryCodesLeft };
  }
  await recordGuessFailure(ctx, keys, { accountId: account.id, username: account.username, address, reason: 'recovery-code' });
  return { ok: false, reason: 'refused' };
}

/** Enrolment, part 1: a new secret, sealed and stored unconfirmed; the URI is shown as a QR code. */
export async function beginTotpEnrolment(ctx: AuthContext, account: repo.Account): Promise<{ secret: string; uri: string }> {
  const secret = generateTotpSecret(ctx.totpPolicy.algorithm);
  const { algorithm, digits, period } = ctx.totpPolicy;
  await repo.saveTotp(ctx.db, account.id, { sealedSecret: seal(secret, ctx.sealing.current, account.id), algorithm, digits, period });
  return { secret, uri: totpEnrolmentUri(ctx.totpPolicy, account.username, secret) };
}

/**
 * Enrolment, part 2: the first code confirms the authenticator. Returns the recovery codes to show once
 * (new ones when the account had none left), or a refusal.
 */
export async function confirmTotpEnrolment(ctx: AuthContext, account: repo.Account, code: string, address: string): Promise<{ ok: true; readonly recoveryCodes: readonly string[] } | Refusal> {
  const keys = [accountKey(account.username), addressKey(address)];
  const locked = await lockedOut(ctx, keys);
  if (locked) return locked;
  const stored = await repo.getTotp(ctx.db, account.id);
  if (stored && !stored.confirmed) {
    const secret = open(stored.sealedSecret, ctx.sealing.keyring, account.id);
    const check = checkTotpCode(enrolledPolicy(ctx, stored), secret, code, ctx.clock(), stored.lastUsedStep);
    if (check.ok && (await repo.useTotpStep(ctx.db, account.id, check.step, true))) {
      await repo.setMustEnrol(ctx.db, account.id, false);
      await repo.appendAudit(ctx.db, { accountId: account.id, username: account.username, event: 'totp-enrolled', address });
      const recoveryCodes = (await repo.factorSummary(ctx.db, account.id)).recoveryCodesLeft === 0 ? await regenerateRecoveryCodes(ctx, account, address) : [];
      return { ok: true, recoveryCodes };
    }
  }
  await recordGuessFailure(ctx, keys, { accountId: account.id, username: account.username, address, reason: 'totp-enrolment' });
  return { ok: false, reason: 'refused' };
}

/** New recovery codes (the old ones stop working); the caller shows them once. */
export async function regenerateRecoveryCodes(ctx: AuthContext, account: repo.Account, address: string, count = defaultRecoveryCodeCount): Promise<string[]> {
  const codes = generateRecoveryCodes(count);
  await repo.replaceRecoveryCodes(ctx.db, account.id, codes.map((code) => hashRecoveryCode(code, ctx.recoveryCodeKey)));
  await repo.appendAudit(ctx.db, { accountId: account.id, username: account.username, event: 'recovery-codes-generated', address, detail: { count } });
  return codes;
}

/** Refuses early when the account or the address is locked out (before a WebAuthn ceremony starts, say). */
export async function lockoutOf(ctx: AuthContext, username: string, address: string): Promise<Refusal | undefined> {
  return lockedOut(ctx, [accountKey(username), addressKey(address)]);
}

/**
 * Second step with a security key: the WebAuthn library verified (or refused) the assertion and the
 * signature counter update; this applies the same lockout, failure counting and audit as a TOTP code.
 */
export async function completeWebAuthnSignIn(ctx: AuthContext, account: repo.Account, verified: boolean, address: string): Promise<{ ok: true } | Refusal> {
  const keys = [accountKey(account.username), addressKey(address)];
  const locked = await lockedOut(ctx, keys);
  if (locked) return locked;
  if (verified) return signedIn(ctx, account, keys, address, 'webauthn');
  await recordGuessFailure(ctx, keys, { accountId: account.id, username: account.username, address, reason: 'webauthn' });
  return { ok: false, reason: 'refused' };
}

/** A security key was registered (verified by the WebAuthn library): stored, enrolment satisfied, audited. */
export async function addSecurityKey(ctx: AuthContext, account: repo.Account, credential: repo.WebAuthnCredential, address: string): Promise<{ readonly recoveryCodes: readonly string[] }> {
  await repo.addWebAuthnCredential(ctx.db, account.id, credential);
  await repo.setMustEnrol(ctx.db, account.id, false);
  await repo.appendAudit(ctx.db, { accountId: account.id, username: account.username, event: 'webauthn-added', address, detail: { name: credential.name } });
  const recoveryCodes = (await repo.factorSummary(ctx.db, account.id)).recoveryCodesLeft === 0 ? await regenerateRecoveryCodes(ctx, account, address) : [];
  return { recoveryCodes };
}

export async function removeSecurityKey(ctx: AuthContext, account: repo.Account, credentialId: Buffer, address: string): Promise<boolean> {
  const removed = await repo.removeWebAuthnCredential(ctx.db, account.id, credentialId);
  if (removed) await repo.appendAudit(ctx.db, { accountId: account.id, username: account.username, event: 'webauthn-removed', address });
  return removed;
}

export async function removeAuthenticatorApp(ctx: AuthContext, account: repo.Account, address: string): Promise<boolean> {
  const removed = await repo.removeTotp(ctx.db, account.id);
  if (removed) await repo.appendAudit(ctx.db, { accountId: account.id, username: account.username, event: 'totp-removed', address });
  return removed;
}

/** Changes the password of a signed-in user: the current password is a guess like any other (throttled). */
export async function changePassword(ctx: AuthContext, account: repo.Account, current: string, next: string, address: string): Promise<{ ok: true } | Refusal> {
  const keys = [accountKey(account.username), addressKey(address)];
  const locked = await lockedOut(ctx, keys);
  if (locked) return locked;
  const stored = await repo.getPasswordHash(ctx.db, account.id);
  const check = stored ? await checkPassword(stored.hash, current, ctx.passwordOptions) : { ok: false };
  if (!check.ok) {
    await recordGuessFailure(ctx, keys, { accountId: account.id, username: account.username, address, reason: 'password' });
    return { ok: false, reason: 'refused' };
  }
  await setPassword(ctx, account, next, address, 'user');
  return { ok: true };
}

/** Sets a new argon2id password hash (account page or administrator), audited with who did it. */
export async function setPassword(ctx: AuthContext, account: repo.Account, password: string, address: string | undefined, by: 'user' | 'admin'): Promise<void> {
  await repo.setPasswordHash(ctx.db, account.id, await hashPassword(password, ctx.passwordOptions.parameters), 'argon2id');
  await repo.appendAudit(ctx.db, { accountId: account.id, username: account.username, event: 'password-changed', ...(address ? { address } : {}), detail: { by } });
}

async function signedIn(ctx: AuthContext, account: repo.Account, keys: readonly ThrottleKey[], address: string, factor: string): Promise<{ ok: true }> {
  await withThrottleState(ctx, keys, (state) => recordSuccess(state, keys[0]!));
  await repo.appendAudit(ctx.db, { accountId: account.id, username: account.username, event: 'sign-in', address, detail: { factor } });
  return { ok: true };
}

/** An enrolled authenticator keeps the digits, period and algorithm it was enrolled with. */
function enrolledPolicy(ctx: AuthContext, stored: repo.StoredTotp): TotpPolicy {
  return { issuer: ctx.totpPolicy.issuer, algorithm: stored.algorithm, digits: stored.digits, period: stored.period };
}

async function lockedOut(ctx: AuthContext, keys: readonly ThrottleKey[]): Promise<Refusal | undefined> {
  const decision = checkAttempt(await repo.loadThrottleEntries(ctx.db, keys), keys, ctx.clock(), ctx.throttlePolicy);
  return decision.allowed ? undefined : { ok: false, reason: 'locked', retryAfterMs: decision.retryAfterMs };
}

async function recordGuessFailure(ctx: AuthContext, keys: readonly ThrottleKey[], audit: { accountId: string | undefined; username: string; address: string; reason: string }): Promise<void> {
  const now = ctx.clock();
  let newlyLocked: ThrottleKey[] = [];
  await withThrottleState(ctx, keys, (state) => {
    const next = recordFailure(state, keys, now, ctx.throttlePolicy);
    newlyLocked = keys.filter((key) => state.get(key)?.lockedUntilMs === undefined && next.get(key)?.lockedUntilMs !== undefined);
    return next;
  });
  const base = { accountId: audit.accountId, username: audit.username, address: audit.address };
  await repo.appendAudit(ctx.db, { ...base, event: 'sign-in-failed', detail: { factor: audit.reason } });
  if (newlyLocked.length > 0) await repo.appendAudit(ctx.db, { ...base, event: 'locked-out', detail: { locked: newlyLocked } });
}

/** Read-modify-write of the throttle rows of `keys`, serialised per key across requests and replicas. */
async function withThrottleState(ctx: AuthContext, keys: readonly ThrottleKey[], change: (state: ReadonlyMap<ThrottleKey, ThrottleEntry>) => ReadonlyMap<ThrottleKey, ThrottleEntry>): Promise<void> {
  await repo.inTransaction(ctx.db, async (client) => {
    for (const key of [...keys].sort()) await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [key]);
    const state = await repo.loadThrottleEntries(client, keys);
    await repo.saveThrottleEntries(client, change(state), keys);
  });
}
