// Storage of the auth component in PostgreSQL (node-postgres). Every function takes a pool or a client and
// runs plain parameterised SQL against schema.sql. Single-use rules (TOTP steps, recovery codes, WebAuthn
// counters) are enforced by conditional UPDATEs, so two concurrent requests cannot both succeed.
import { readFileSync } from 'node:fs';
import pg from 'pg';
import type { TotpAlgorithm } from '../components/auth/service-config.js';
import type { ThrottleEntry, ThrottleKey } from './throttle.js';

export type Database = pg.Pool | pg.PoolClient | pg.Client;

/** Arbitrary constant: serialises concurrent migrations (two replicas starting at once). */
const migrationLockId = 0x6d78_6175; // "mxau"

export function schemaSql(): string {
  return readFileSync(new URL('./schema.sql', import.meta.url), 'utf8');
}

/** Applies schema.sql (idempotent) under an advisory lock. */
export async function migrate(db: Database): Promise<void> {
  await inTransaction(db, async (client) => {
    await client.query('SELECT pg_advisory_xact_lock($1)', [migrationLockId]);
    await client.query(schemaSql());
  });
}

export async function inTransaction<T>(db: Database, work: (client: pg.PoolClient | pg.Client) => Promise<T>): Promise<T> {
  const client = db instanceof pg.Pool ? await db.connect() : db;
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK');
    throw error;
  } finally {
    if (db instanceof pg.Pool) (client as pg.PoolClient).release();
  }
}

export interface Account {
  readonly id: string;
  readonly username: string;
  readonly isAdmin: boolean;
  readonly mustEnrol: boolean;
}

interface AccountRow {
  id: string;
  username: string;
  is_admin: boolean;
  must_enrol: boolean;
}

function toAccount(row: AccountRow): Account {
  return { id: String(row.id), username: row.username, isAdmin: row.is_admin, mustEnrol: row.must_enrol };
}

export async function createAccount(db: Database, account: { username: string; isAdmin?: boolean; mustEnrol?: boolean }): Promise<Account> {
  const result = await db.query<AccountRow>(
    'INSERT INTO auth_accounts (username, is_admin, must_enrol) VALUES ($1, $2, $3) RETURNING id, username, is_admin, must_enrol',
    [account.username.toLowerCase(), account.isAdmin ?? false, account.mustEnrol ?? false],
  );
  return toAccount(result.rows[0]!);
}

export async function findAccount(db: Database, username: string): Promise<Account | undefined> {
  const result = await db.query<AccountRow>('SELECT id, username, is_admin, must_enrol FROM auth_accounts WHERE username = $1', [username.toLowerCase()]);
  return result.rows[0] ? toAccount(result.rows[0]) : undefined;
}

export async function setMustEnrol(db: Database, accountId: string, mustEnrol: boolean): Promise<void> {
  await db.query('UPDATE auth_accounts SET must_enrol = $2 WHERE id = $1', [accountId, mustEnrol]);
}

export type PasswordScheme = 'argon2id' | 'synapse-bcrypt';

export async function setPasswordHash(db: Database, accountId: string, hash: string, scheme: PasswordScheme): Promise<void> {
  await db.query(
    `INSERT INTO auth_passwords (account_id, hash, scheme) VALUES ($1, $2, $3)
     ON CONFLICT (account_id) DO UPDATE SET hash = EXCLUDED.hash, scheme = EXCLUDED.scheme, updated_at = now()`,
    [accountId, hash, scheme],
  );
}

export async function getPasswordHash(db: Database, accountId: string): Promise<{ hash: string; scheme: PasswordScheme } | undefined> {
  const result = await db.query<{ hash: string; scheme: PasswordScheme }>('SELECT hash, scheme FROM auth_passwords WHERE account_id = $1', [accountId]);
  return result.rows[0];
}

export interface StoredTotp {
  readonly sealedSecret: string;
  readonly algorithm: TotpAlgorithm;
  readonly digits: number;
  readonly period: number;
  readonly confirmed: boolean;
  readonly lastUsedStep: number | undefined;
}

/** Starts (or restarts) a TOTP enrolment: unconfirmed until `confirmTotp`. */
export async function saveTotp(db: Database, accountId: string, totp: { sealedSecret: string; algorithm: TotpAlgorithm; digits: number; period: number }): Promise<void> {
  await db.query(
    `INSERT INTO auth_totp (account_id, sealed_secret, algorithm, digits, period) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (account_id) DO UPDATE SET sealed_secret = EXCLUDED.sealed_secret, algorithm = EXCLUDED.algorithm,
       digits = EXCLUDED.digits, period = EXCLUDED.period, confirmed = false, last_used_step = NULL, created_at = now()`,
    [accountId, totp.sealedSecret, totp.algorithm, totp.digits, totp.period],
  );
}

export async function getTotp(db: Database, accountId: string): Promise<StoredTotp | undefined> {
  const result = await db.query<{ sealed_secret: string; algorithm: TotpAlgorithm; digits: number; period: number; confirmed: boolean; last_used_step: string | null }>(
    'SELECT sealed_secret, algorithm, digits, period, confirmed, last_used_step FROM auth_totp WHERE account_id = $1',
    [accountId],
  );
  const row = result.rows[0];
  if (!row) return undefined;
  return {
    sealedSecret: row.sealed_secret,
    algorithm: row.algorithm,
    digits: row.digits,
    period: row.period,
    confirmed: row.confirmed,
    lastUsedStep: row.last_used_step === null ? undefined : Number(row.last_used_step),
  };
}

/**
 * Records `step` as used, only if it is after the last used step: false means another request already
 * used this step or a later one (a replay), and the code must be refused.
 */
export async function useTotpStep(db: Database, accountId: string, step: number, confirm = false): Promise<boolean> {
  const result = await db.query(
    `UPDATE auth_totp SET last_used_step = $2, confirmed = confirmed OR $3
     WHERE account_id = $1 AND (last_used_step IS NULL OR last_used_step < $2)`,
    [accountId, step, confirm],
  );
  return result.rowCount === 1;
}

export async function removeTotp(db: Database, accountId: string): Promise<boolean> {
  return (await db.query('DELETE FROM auth_totp WHERE account_id = $1', [accountId])).rowCount === 1;
}

export interface WebAuthnCredential {
  readonly credentialId: Buffer;
  readonly publicKey: Buffer;
  readonly signCount: number;
  readonly transports: readonly string[];
  readonly name: string;
}

export async function addWebAuthnCredential(db: Database, accountId: string, credential: WebAuthnCredential): Promise<void> {
  await db.query(
    'INSERT INTO auth_webauthn_credentials (credential_id, account_id, public_key, sign_count, transports, name) VALUES ($1, $2, $3, $4, $5, $6)',
    [credential.credentialId, accountId, credential.publicKey, credential.signCount, [...credential.transports], credential.name],
  );
}

export async function listWebAuthnCredentials(db: Database, accountId: string): Promise<WebAuthnCredential[]> {
  const result = await db.query<{ credential_id: Buffer; public_key: Buffer; sign_count: string; transports: string[]; name: string }>(
    'SELECT credential_id, public_key, sign_count, transports, name FROM auth_webauthn_credentials WHERE account_id = $1 ORDER BY created_at, credential_id',
    [accountId],
  );
  return result.rows.map((row) => ({ credentialId: row.credential_id, publicKey: row.public_key, signCount: Number(row.sign_count), transports: row.transports, name: row.name }));
}

/**
 * Stores the authenticator's new signature counter after a successful assertion. Refused (false) when the
 * counter did not increase, the WebAuthn sign of a cloned authenticator; authenticators that always report
 * 0 (many passkeys) are accepted as long as both values are 0.
 */
export async function updateWebAuthnSignCount(db: Database, accountId: string, credentialId: Buffer, newSignCount: number): Promise<boolean> {
  const result = await db.query(
    `UPDATE auth_webauthn_credentials SET sign_count = $3, last_used_at = now()
     WHERE account_id = $1 AND credential_id = $2 AND (sign_count < $3 OR (sign_count = 0 AND $3 = 0))`,
    [accountId, credentialId, newSignCount],
  );
  return result.rowCount === 1;
}

export async function removeWebAuthnCredential(db: Database, accountId: string, credentialId: Buffer): Promise<boolean> {
  return (await db.query('DELETE FROM auth_webauthn_credentials WHERE account_id = $1 AND credential_id = $2', [accountId, credentialId])).rowCount === 1;
}

/** Replaces all of an account's recovery codes by new hashes (the old codes stop working at once). */
export async function replaceRecoveryCodes(db: Database, accountId: string, hashes: readonly string[]): Promise<void> {
  await inTransaction(db, async (client) => {
    await client.query('DELETE FROM auth_recovery_codes WHERE account_id = $1', [accountId]);
    await client.query('INSERT INTO auth_recovery_codes (account_id, code_hash) SELECT $1, unnest($2::text[])', [accountId, [...hashes]]);
  });
}

export async function listRecoveryCodes(db: Database, accountId: string): Promise<{ hash: string; usedAt: Date | null }[]> {
  const result = await db.query<{ code_hash: string; used_at: Date | null }>('SELECT code_hash, used_at FROM auth_recovery_codes WHERE account_id = $1 ORDER BY code_hash', [accountId]);
  return result.rows.map((row) => ({ hash: row.code_hash, usedAt: row.used_at }));
}

/** Marks a recovery code used; false if it was already used (or is not this account's): refuse it. */
export async function useRecoveryCode(db: Database, accountId: string, hash: string): Promise<boolean> {
  const result = await db.query('UPDATE auth_recovery_codes SET used_at = now() WHERE account_id = $1 AND code_hash = $2 AND used_at IS NULL', [accountId, hash]);
  return result.rowCount === 1;
}

export interface FactorSummary {
  readonly totp: boolean;
  readonly webauthnCredentials: number;
  readonly recoveryCodesLeft: number;
}

/** Which factors an account has (for `users info`): counts and flags, never secrets. */
export async function factorSummary(db: Database, accountId: string): Promise<FactorSummary> {
  const result = await db.query<{ totp: boolean; webauthn: number; recovery: number }>(
    `SELECT EXISTS (SELECT 1 FROM auth_totp WHERE account_id = $1 AND confirmed) AS totp,
            (SELECT count(*)::int FROM auth_webauthn_credentials WHERE account_id = $1) AS webauthn,
            (SELECT count(*)::int FROM auth_recovery_codes WHERE account_id = $1 AND used_at IS NULL) AS recovery`,
    [accountId],
  );
  const row = result.rows[0]!;
  return { totp: row.totp, webauthnCredentials: row.webauthn, recoveryCodesLeft: row.recovery };
}

/**
 * `users reset-2fa`: removes every second factor and sets whether the account must enrol afresh (`mustEnrol`:
 * the policy requires a factor for it), in one transaction.
 */
export async function resetSecondFactors(db: Database, accountId: string, audit: { address?: string; detail?: Record<string, unknown> } = {}, mustEnrol = true): Promise<void> {
  await inTransaction(db, async (client) => {
    await client.query('DELETE FROM auth_totp WHERE account_id = $1', [accountId]);
    await client.query('DELETE FROM auth_webauthn_credentials WHERE account_id = $1', [accountId]);
    await client.query('DELETE FROM auth_recovery_codes WHERE account_id = $1', [accountId]);
    await client.query('UPDATE auth_accounts SET must_enrol = $2 WHERE id = $1', [accountId, mustEnrol]);
    await appendAudit(client, { accountId, event: 'second-factors-reset', ...audit });
  });
}

export async function loadThrottleEntries(db: Database, keys: readonly ThrottleKey[]): Promise<Map<ThrottleKey, ThrottleEntry>> {
  const result = await db.query<{ throttle_key: ThrottleKey; failures: number; window_start: Date; locked_until: Date | null }>(
    'SELECT throttle_key, failures, window_start, locked_until FROM auth_lockouts WHERE throttle_key = ANY($1::text[])',
    [[...keys]],
  );
  return new Map(
    result.rows.map((row) => [
      row.throttle_key,
      row.locked_until === null
        ? { failures: row.failures, windowStartMs: row.window_start.getTime() }
        : { failures: row.failures, windowStartMs: row.window_start.getTime(), lockedUntilMs: row.locked_until.getTime() },
    ]),
  );
}

/** Writes the entries of the given keys from a throttle state; keys without an entry are deleted. */
export async function saveThrottleEntries(db: Database, state: ReadonlyMap<ThrottleKey, ThrottleEntry>, keys: readonly ThrottleKey[]): Promise<void> {
  for (const key of keys) {
    const entry = state.get(key);
    if (!entry) {
      await db.query('DELETE FROM auth_lockouts WHERE throttle_key = $1', [key]);
      continue;
    }
    await db.query(
      `INSERT INTO auth_lockouts (throttle_key, failures, window_start, locked_until) VALUES ($1, $2, $3, $4)
       ON CONFLICT (throttle_key) DO UPDATE SET failures = EXCLUDED.failures, window_start = EXCLUDED.window_start, locked_until = EXCLUDED.locked_until`,
      [key, entry.failures, new Date(entry.windowStartMs), entry.lockedUntilMs === undefined ? null : new Date(entry.lockedUntilMs)],
    );
  }
}

export type AuditEvent =
  | 'sign-in' | 'sign-in-failed' | 'locked-out' | 'password-changed' | 'password-imported'
  | 'totp-enrolled' | 'totp-removed' | 'webauthn-added' | 'webauthn-removed'
  | 'recovery-codes-generated' | 'recovery-code-used' | 'second-factors-reset';

export interface AuditEntry {
  readonly accountId?: string;
  readonly username?: string;
  readonly event: AuditEvent;
  readonly address?: string;
  /** Non-secret details only. */
  readonly detail?: Record<string, unknown>;
}

/** Detail keys that would betray a secret: refused outright, so a careless caller fails loudly in tests. */
const secretLookingKey = /pass|secret|code|token|key|hash|otp/i;

export async function appendAudit(db: Database, entry: AuditEntry): Promise<void> {
  const detail = entry.detail ?? {};
  const leaking = Object.keys(detail).filter((key) => secretLookingKey.test(key));
  if (leaking.length > 0) throw new Error(`auth: audit detail must not carry secrets (keys: ${leaking.join(', ')})`);
  await db.query('INSERT INTO auth_audit_log (account_id, username, event, address, detail) VALUES ($1, $2, $3, $4, $5)', [
    entry.accountId ?? null,
    entry.username ?? null,
    entry.event,
    entry.address ?? null,
    JSON.stringify(detail),
  ]);
}

export async function auditTrail(db: Database, accountId: string): Promise<{ event: AuditEvent; address: string | null; detail: Record<string, unknown> }[]> {
  const result = await db.query<{ event: AuditEvent; address: string | null; detail: Record<string, unknown> }>(
    'SELECT event, address, detail FROM auth_audit_log WHERE account_id = $1 ORDER BY id',
    [accountId],
  );
  return result.rows;
}

/** Server admin flag, refreshed from Synapse's `users.admin` at each sign-in. */
export async function setAdmin(db: Database, accountId: string, isAdmin: boolean): Promise<void> {
  await db.query('UPDATE auth_accounts SET is_admin = $2 WHERE id = $1', [accountId, isAdmin]);
}

export interface WebAuthnCredentialInfo {
  readonly credentialId: Buffer;
  readonly name: string;
  readonly createdAt: Date;
  readonly lastUsedAt: Date | undefined;
}

/** Names and dates of an account's security keys (for the account page and `users info`). */
export async function listWebAuthnCredentialInfo(db: Database, accountId: string): Promise<WebAuthnCredentialInfo[]> {
  const result = await db.query<{ credential_id: Buffer; name: string; created_at: Date; last_used_at: Date | null }>(
    'SELECT credential_id, name, created_at, last_used_at FROM auth_webauthn_credentials WHERE account_id = $1 ORDER BY created_at, credential_id',
    [accountId],
  );
  return result.rows.map((row) => ({ credentialId: row.credential_id, name: row.name, createdAt: row.created_at, lastUsedAt: row.last_used_at ?? undefined }));
}

/** When the confirmed TOTP authenticator was enrolled; undefined without one. */
export async function totpEnrolledAt(db: Database, accountId: string): Promise<Date | undefined> {
  const result = await db.query<{ created_at: Date }>('SELECT created_at FROM auth_totp WHERE account_id = $1 AND confirmed', [accountId]);
  return result.rows[0]?.created_at;
}
