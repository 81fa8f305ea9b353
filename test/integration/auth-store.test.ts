// The auth repository against a real PostgreSQL (the runtime's), started just for this file by
// test/support/auth-postgres.ts: a fresh directory, a Unix socket only (no TCP port), removed afterwards.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import bcrypt from 'bcryptjs';
import * as repo from '../../src/auth-service/repository.js';
import * as signIn from '../../src/auth-service/sign-in.js';
import { hashPassword } from '../../src/auth-service/password.js';
import { totpCodeAt } from '../../src/auth-service/totp.js';
import { generateRecoveryCodes, hashRecoveryCode } from '../../src/auth-service/recovery-codes.js';
import { seal } from '../../src/stack/secrets/secret-box.js';
import { accountKey, addressKey, recordFailure, emptyThrottleState, type ThrottlePolicy } from '../../src/auth-service/throttle.js';
import { authPostgresSkipReason, startAuthPostgres, type AuthPostgres } from '../support/auth-postgres.js';

const skip = authPostgresSkipReason();

let server: AuthPostgres | undefined;

before(async () => {
  if (skip) return;
  server = await startAuthPostgres();
});

after(async () => {
  await server?.stop();
});

function db(): pg.Pool {
  return server!.pool;
}

test('migration is idempotent and can run concurrently', { skip }, async () => {
  await Promise.all([repo.migrate(db()), repo.migrate(db())]);
  await repo.migrate(db());
  const tables = await db().query<{ tablename: string }>("SELECT tablename FROM pg_tables WHERE tablename LIKE 'auth_%' ORDER BY 1");
  assert.deepEqual(tables.rows.map((row) => row.tablename), ['auth_accounts', 'auth_audit_log', 'auth_lockouts', 'auth_oidc_payloads', 'auth_passwords', 'auth_recovery_codes', 'auth_totp', 'auth_webauthn_credentials']);
});

test('accounts are unique regardless of case; passwords are stored with their scheme', { skip }, async () => {
  const alice = await repo.createAccount(db(), { username: 'Alice', isAdmin: true });
  assert.equal(alice.username, 'alice');
  await assert.rejects(repo.createAccount(db(), { username: 'ALICE' }), /duplicate key/);
  assert.deepEqual(await repo.findAccount(db(), 'aLiCe'), alice);
  await repo.setPasswordHash(db(), alice.id, '$2b$12$' + 'a'.repeat(53), 'synapse-bcrypt');
  await repo.setPasswordHash(db(), alice.id, '$argon2id$v=19$m=19456,p=1,t=2$x$y', 'argon2id');
  assert.deepEqual(await repo.getPasswordHash(db(), alice.id), { hash: '$argon2id$v=19$m=19456,p=1,t=2$x$y', scheme: 'argon2id' });
});

test('TOTP: sealed secret stored, a step is usable once and never an earlier one, even concurrently', { skip }, async () => {
  const bob = await repo.createAccount(db(), { username: 'bob' });
  const sealedSecret = seal('JBSWY3DPEHPK3PXP', { id: 'k1', key: randomBytes(32) }, bob.id);
  await repo.saveTotp(db(), bob.id, { sealedSecret, algorithm: 'SHA1', digits: 6, period: 30 });
  assert.equal((await repo.getTotp(db(), bob.id))?.confirmed, false);
  assert.equal(await repo.useTotpStep(db(), bob.id, 1000, true), true);
  const stored = await repo.getTotp(db(), bob.id);
  assert.equal(stored?.confirmed, true);
  assert.equal(stored?.lastUsedStep, 1000);
  assert.equal(stored?.sealedSecret, sealedSecret);
  assert.equal(await repo.useTotpStep(db(), bob.id, 1000), false);
  assert.equal(await repo.useTotpStep(db(), bob.id, 999), false);
  const race = await Promise.all([repo.useTotpStep(db(), bob.id, 1001), repo.useTotpStep(db(), bob.id, 1001), repo.useTotpStep(db(), bob.id, 1001)]);
  assert.deepEqual(race.filter(Boolean).length, 1);
  await assert.rejects(repo.saveTotp(db(), bob.id, { sealedSecret: 'JBSWY3DPEHPK3PXP', algorithm: 'SHA1', digits: 6, period: 30 }), /auth_totp_sealed_secret_check/);
});

test('WebAuthn credentials: stored with transports; the signature counter must increase', { skip }, async () => {
  const carol = await repo.createAccount(db(), { username: 'carol' });
  const credentialId = randomBytes(32);
  const publicKey = randomBytes(77);
  await repo.addWebAuthnCredential(db(), carol.id, { credentialId, publicKey, signCount: 5, transports: ['usb', 'nfc'], name: 'YubiKey' });
  assert.deepEqual(await repo.listWebAuthnCredentials(db(), carol.id), [{ credentialId, publicKey, signCount: 5, transports: ['usb', 'nfc'], name: 'YubiKey' }]);
  assert.equal(await repo.updateWebAuthnSignCount(db(), carol.id, credentialId, 6), true);
  assert.equal(await repo.updateWebAuthnSignCount(db(), carol.id, credentialId, 6), false);
  assert.equal(await repo.updateWebAuthnSignCount(db(), carol.id, credentialId, 3), false);
  const other = await repo.createAccount(db(), { username: 'mallory' });
  assert.equal(await repo.updateWebAuthnSignCount(db(), other.id, credentialId, 100), false, "another account's credential");
});

test('recovery codes: each used once; regenerating replaces all; reset-2fa removes every factor', { skip }, async () => {
  const dave = await repo.createAccount(db(), { username: 'dave' });
  const key = randomBytes(32);
  const codes = generateRecoveryCodes(10);
  await repo.replaceRecoveryCodes(db(), dave.id, codes.map((code) => hashRecoveryCode(code, key)));
  const hash = hashRecoveryCode(codes[0]!, key);
  assert.equal(await repo.useRecoveryCode(db(), dave.id, hash), true);
  assert.equal(await repo.useRecoveryCode(db(), dave.id, hash), false);
  assert.deepEqual(await repo.factorSummary(db(), dave.id), { totp: false, webauthnCredentials: 0, recoveryCodesLeft: 9 });

  const fresh = generateRecoveryCodes(10);
  await repo.replaceRecoveryCodes(db(), dave.id, fresh.map((code) => hashRecoveryCode(code, key)));
  assert.equal(await repo.useRecoveryCode(db(), dave.id, hashRecoveryCode(codes[1]!, key)), false, 'old codes no longer work');
  assert.equal((await repo.listRecoveryCodes(db(), dave.id)).length, 10);

  await repo.saveTotp(db(), dave.id, { sealedSecret: seal('S', { id: 'k1', key: randomBytes(32) }, dave.id), algorithm: 'SHA1', digits: 6, period: 30 });
  await repo.useTotpStep(db(), dave.id, 1, true);
  await repo.addWebAuthnCredential(db(), dave.id, { credentialId: randomBytes(16), publicKey: randomBytes(64), signCount: 0, transports: [], name: 'passkey' });
  assert.deepEqual(await repo.factorSummary(db(), dave.id), { totp: true, webauthnCredentials: 1, recoveryCodesLeft: 10 });
  await repo.resetSecondFactors(db(), dave.id, { detail: { by: 'admin' } });
  assert.deepEqual(await repo.factorSummary(db(), dave.id), { totp: false, webauthnCredentials: 0, recoveryCodesLeft: 0 });
  assert.equal((await repo.findAccount(db(), 'dave'))?.mustEnrol, true);
  assert.deepEqual((await repo.auditTrail(db(), dave.id)).map((entry) => entry.event), ['second-factors-reset']);
});

test('throttle state round-trips through auth_lockouts', { skip }, async () => {
  const policy: ThrottlePolicy = { maxFailures: 2, lockoutMs: 60_000, failureWindowMs: 60_000 };
  const keys = [accountKey('erin'), addressKey('192.0.2.5')];
  let state = recordFailure(emptyThrottleState, keys, 1_700_000_000_000, policy);
  state = recordFailure(state, keys, 1_700_000_001_000, policy);
  await repo.saveThrottleEntries(db(), state, keys);
  assert.deepEqual(await repo.loadThrottleEntries(db(), keys), state);
  await repo.saveThrottleEntries(db(), new Map(), [accountKey('erin')]);
  assert.deepEqual([...(await repo.loadThrottleEntries(db(), keys)).keys()], [addressKey('192.0.2.5')]);
});

test('the audit log refuses secret-looking details', { skip }, async () => {
  const frank = await repo.createAccount(db(), { username: 'frank' });
  await repo.appendAudit(db(), { accountId: frank.id, event: 'sign-in', address: '192.0.2.9', detail: { factor: 'totp' } });
  await assert.rejects(repo.appendAudit(db(), { accountId: frank.id, event: 'sign-in-failed', detail: { password: 'hunter2' } }), (error: Error) => /must not carry secrets/.test(error.message) && !error.message.includes('hunter2'));
  assert.deepEqual(await repo.auditTrail(db(), frank.id), [{ event: 'sign-in', address: '192.0.2.9', detail: { factor: 'totp' } }]);
});

// ---- The sign-in and enrolment steps (sign-in.ts) over the same database, with a controlled clock. ----

function flowContext(start: number): { ctx: signIn.AuthContext; advance: (ms: number) => void } {
  let now = start;
  const current = { id: 'k1', key: randomBytes(32) };
  const ctx: signIn.AuthContext = {
    db: db(),
    throttlePolicy: { maxFailures: 10, lockoutMs: 600_000, failureWindowMs: 600_000 },
    passwordOptions: { parameters: { memoryCost: 1024, timeCost: 1, parallelism: 1 } },
    totpPolicy: { issuer: 'Example Chat', digits: 6, period: 30, algorithm: 'SHA1' },
    sealing: { current, keyring: [current] },
    recoveryCodeKey: randomBytes(32),
    clock: () => now,
  };
  return { ctx, advance: (ms) => { now += ms; } };
}

test('flow: a Synapse bcrypt user signs in once with the old password, is re-hashed, enrols TOTP, then needs a fresh code', { skip }, async () => {
  const { ctx, advance } = flowContext(Date.UTC(2026, 10, 27, 12, 0, 5));
  const grace = await repo.createAccount(db(), { username: 'grace', mustEnrol: true });
  await repo.setPasswordHash(db(), grace.id, bcrypt.hashSync('synapse password', 4).replace(/^\$2a\$/, '$2b$'), 'synapse-bcrypt');

  const first = await signIn.signInWithPassword(ctx, 'Grace', 'synapse password', '192.0.2.20');
  assert.ok(first.ok && !first.hasSecondFactor && first.account.mustEnrol);
  assert.equal((await repo.getPasswordHash(db(), grace.id))?.scheme, 'argon2id');
  assert.equal((await signIn.signInWithPassword(ctx, 'grace', 'synapse password', '192.0.2.20')).ok, true, 'the new hash verifies the same password');

  const { secret, uri } = await signIn.beginTotpEnrolment(ctx, grace);
  assert.match(uri, /^otpauth:\/\/totp\/Example%20Chat:grace\?/);
  assert.ok(!(await repo.getTotp(db(), grace.id))!.sealedSecret.includes(secret), 'stored sealed');
  const policy = ctx.totpPolicy;
  const enrolled = await signIn.confirmTotpEnrolment(ctx, grace, totpCodeAt(policy, secret, ctx.clock()), '192.0.2.20');
  assert.ok(enrolled.ok);
  assert.equal(enrolled.recoveryCodes.length, 10);
  assert.equal((await repo.findAccount(db(), 'grace'))?.mustEnrol, false);

  const sameStep = await signIn.verifyTotp(ctx, grace, totpCodeAt(policy, secret, ctx.clock()), '192.0.2.20');
  assert.deepEqual(sameStep, { ok: false, reason: 'refused' }, 'the enrolment code cannot be replayed to sign in');
  advance(30_000);
  assert.deepEqual(await signIn.verifyTotp(ctx, grace, totpCodeAt(policy, secret, ctx.clock()), '192.0.2.20'), { ok: true });
  advance(30_000);
  assert.deepEqual(await signIn.verifyTotp(ctx, grace, totpCodeAt(policy, secret, ctx.clock() - 60_000), '192.0.2.20'), { ok: false, reason: 'refused' }, 'previous-but-one step');

  assert.deepEqual(await signIn.verifyRecoveryCode(ctx, grace, enrolled.recoveryCodes[3]!.toLowerCase(), '192.0.2.20'), { ok: true, codesLeft: 9 });
  assert.deepEqual(await signIn.verifyRecoveryCode(ctx, grace, enrolled.recoveryCodes[3]!, '192.0.2.20'), { ok: false, reason: 'refused' }, 'a recovery code works once');

  const events = (await repo.auditTrail(db(), grace.id)).map((entry) => entry.event);
  assert.deepEqual(events, ['password-imported', 'totp-enrolled', 'recovery-codes-generated', 'sign-in-failed', 'sign-in', 'sign-in-failed', 'recovery-code-used', 'sign-in', 'sign-in-failed']);
  const logged = JSON.stringify(await db().query('SELECT * FROM auth_audit_log'));
  for (const leaked of [secret, 'synapse password', ...enrolled.recoveryCodes]) assert.ok(!logged.includes(leaked), 'audit log holds no secret');
});

test('flow: 10 wrong passwords lock the account for the configured time; other accounts are unaffected; unknown users look the same', { skip }, async () => {
  const { ctx, advance } = flowContext(Date.UTC(2026, 10, 27, 13, 0, 0));
  const heidi = await repo.createAccount(db(), { username: 'heidi' });
  const ivan = await repo.createAccount(db(), { username: 'ivan' });
  for (const account of [heidi, ivan]) await repo.setPasswordHash(db(), account.id, await hashPassword('right', ctx.passwordOptions.parameters), 'argon2id');

  for (let i = 0; i < 10; i++) assert.deepEqual(await signIn.signInWithPassword(ctx, 'heidi', `wrong ${i}`, `198.51.100.${i}`), { ok: false, reason: 'refused' });
  const locked = await signIn.signInWithPassword(ctx, 'heidi', 'right', '198.51.100.50');
  assert.deepEqual(locked, { ok: false, reason: 'locked', retryAfterMs: 600_000 });
  assert.equal((await signIn.signInWithPassword(ctx, 'ivan', 'right', '198.51.100.51')).ok, true);
  assert.deepEqual(await signIn.signInWithPassword(ctx, 'nobody', 'x', '198.51.100.52'), { ok: false, reason: 'refused' });
  assert.ok((await repo.auditTrail(db(), heidi.id)).some((entry) => entry.event === 'locked-out'));

  advance(600_000);
  assert.equal((await signIn.signInWithPassword(ctx, 'heidi', 'right', '198.51.100.50')).ok, true, 'the lockout expires');
});

test('flow: wrong TOTP codes count towards the lockout too (6 digits must not be guessable)', { skip }, async () => {
  const { ctx } = flowContext(Date.UTC(2026, 10, 27, 14, 0, 0));
  const judy = await repo.createAccount(db(), { username: 'judy' });
  const { secret } = await signIn.beginTotpEnrolment(ctx, judy);
  assert.equal((await signIn.confirmTotpEnrolment(ctx, judy, totpCodeAt(ctx.totpPolicy, secret, ctx.clock() - 30_000), '203.0.113.1')).ok, true);
  for (let i = 0; i < 10; i++) await signIn.verifyTotp(ctx, judy, String(100000 + i), '203.0.113.1');
  const right = totpCodeAt(ctx.totpPolicy, secret, ctx.clock());
  assert.equal((await signIn.verifyTotp(ctx, judy, right, '203.0.113.2')).ok, false, 'locked even with the right code');
});
