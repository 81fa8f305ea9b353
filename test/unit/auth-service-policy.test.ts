import { test } from 'node:test';
import assert from 'node:assert/strict';
import { authenticationMethods, mayRemoveFactor, maySkipSignIn, minutesToWait, mustEnrolNow, normaliseUsername, secondFactorRequired, stepAfterPassword } from '../../src/components/auth/service/policy.js';
import { lockedMessage } from '../../src/components/auth/service/flows.js';

test('usernames: localpart, full user id of this server and mixed case name the same account', () => {
  assert.equal(normaliseUsername('alice', 'example.org'), 'alice');
  assert.equal(normaliseUsername('  Alice ', 'example.org'), 'alice');
  assert.equal(normaliseUsername('@ALICE:example.org', 'example.org'), 'alice');
  assert.equal(normaliseUsername('@alice:Example.ORG', 'example.org'), 'alice');
  assert.equal(normaliseUsername('@alice', 'example.org'), 'alice');
  assert.equal(normaliseUsername('@alice:other.org', 'example.org'), undefined, "another server's user");
  assert.equal(normaliseUsername('al ice', 'example.org'), undefined);
  assert.equal(normaliseUsername('', 'example.org'), undefined);
  assert.equal(normaliseUsername('bob.smith_1=2-3/4+5', 'example.org'), 'bob.smith_1=2-3/4+5');
  assert.equal(normaliseUsername('a'.repeat(256), 'example.org'), undefined);
});

const none = { required: false, requiredForAdmins: false };
const forAdmins = { required: false, requiredForAdmins: true };
const everyone = { required: true, requiredForAdmins: false };
const user = { isAdmin: false, mustEnrol: false, hasTotp: false, securityKeys: 0 };
const adminUser = { ...user, isAdmin: true };

test('after the password: a factor when there is one; enrolment when required, for admins, or when marked; else done', () => {
  assert.equal(stepAfterPassword(none, { ...user, hasTotp: true }), 'second-factor');
  assert.equal(stepAfterPassword(none, { ...user, securityKeys: 1 }), 'second-factor');
  assert.equal(stepAfterPassword(none, user), 'done');
  assert.equal(stepAfterPassword(everyone, user), 'enrol');
  assert.equal(stepAfterPassword(forAdmins, user), 'done');
  assert.equal(stepAfterPassword(forAdmins, adminUser), 'enrol');
  assert.equal(stepAfterPassword(none, { ...user, mustEnrol: true }), 'enrol');
  assert.equal(secondFactorRequired(forAdmins, adminUser), true);
  assert.equal(secondFactorRequired(forAdmins, user), false);
});

test('removing the last factor is refused only when the policy requires one for the account', () => {
  assert.equal(mayRemoveFactor(everyone, { ...user, hasTotp: true }, 'totp'), false);
  assert.equal(mayRemoveFactor(everyone, { ...user, hasTotp: true, securityKeys: 1 }, 'totp'), true);
  assert.equal(mayRemoveFactor(everyone, { ...user, securityKeys: 1 }, 'security-key'), false);
  assert.equal(mayRemoveFactor(everyone, { ...user, securityKeys: 2 }, 'security-key'), true);
  assert.equal(mayRemoveFactor(none, { ...user, hasTotp: true }, 'totp'), true);
  assert.equal(mayRemoveFactor(forAdmins, { ...adminUser, hasTotp: true }, 'totp'), false);
  assert.equal(mayRemoveFactor(forAdmins, { ...user, hasTotp: true }, 'totp'), true);
});

test('lockout message: whole minutes, at least one, no hint whether the account exists', () => {
  assert.equal(minutesToWait(1), 1);
  assert.equal(minutesToWait(60_000), 1);
  assert.equal(minutesToWait(60_001), 2);
  assert.equal(lockedMessage(600_000), 'Too many attempts; try again in 10 minutes.');
  assert.equal(lockedMessage(30_000), 'Too many attempts; try again in 1 minute.');
});

test('must enrol now: the policy in force requires a factor and the account has none (what users info and the sign-in both say)', () => {
  assert.equal(mustEnrolNow(everyone, user), true);
  assert.equal(mustEnrolNow(everyone, { ...user, hasTotp: true }), false);
  assert.equal(mustEnrolNow(none, user), false);
  assert.equal(mustEnrolNow(forAdmins, adminUser), true);
  assert.equal(mustEnrolNow(none, { ...user, mustEnrol: true }), true, 'after a reset-2fa that asked for enrolment');
});

test('amr of a finished sign-in: the password, and the second factor with mfa', () => {
  assert.deepEqual(authenticationMethods(undefined), ['pwd']);
  assert.deepEqual(authenticationMethods('totp'), ['pwd', 'otp', 'mfa']);
  assert.deepEqual(authenticationMethods('recovery-code'), ['pwd', 'otp', 'mfa']);
  assert.deepEqual(authenticationMethods('security-key'), ['pwd', 'hwk', 'mfa']);
});

test('reusing a sign-in: never by default; inside the window only while the account and the policy still allow it (controlled clock)', () => {
  const signedInAt = 1_800_000_000;
  const withCode = { loginTs: signedInAt, amr: authenticationMethods('totp') };
  const passwordOnly = { loginTs: signedInAt, amr: authenticationMethods(undefined) };
  const enrolled = { ...user, hasTotp: true, deactivated: false, locked: false };
  const tenMinutes = { ...none, rememberSignInMinutes: 10 };
  assert.equal(maySkipSignIn({ ...none, rememberSignInMinutes: 0 }, withCode, enrolled, signedInAt), false, 'the default: every authorization signs in');
  assert.equal(maySkipSignIn(tenMinutes, withCode, enrolled, signedInAt + 600), true, 'at the end of the window');
  assert.equal(maySkipSignIn(tenMinutes, withCode, enrolled, signedInAt + 601), false, 'one second after it');
  assert.equal(maySkipSignIn(tenMinutes, withCode, enrolled, signedInAt - 5), false, 'a sign-in from the future is no sign-in');
  assert.equal(maySkipSignIn(tenMinutes, { loginTs: undefined, amr: undefined }, enrolled, signedInAt), false);
  assert.equal(maySkipSignIn(tenMinutes, withCode, undefined, signedInAt), false, 'the account is gone');
  assert.equal(maySkipSignIn(tenMinutes, withCode, { ...enrolled, deactivated: true }, signedInAt + 1), false, 'deactivated');
  assert.equal(maySkipSignIn(tenMinutes, withCode, { ...enrolled, locked: true }, signedInAt + 1), false, 'locked out');
  assert.equal(maySkipSignIn(tenMinutes, passwordOnly, enrolled, signedInAt + 1), false, 'a factor was added since: the password alone no longer counts');
  const noFactor = { ...user, deactivated: false, locked: false };
  assert.equal(maySkipSignIn(tenMinutes, passwordOnly, noFactor, signedInAt + 1), true, 'no factor, none required');
  assert.equal(maySkipSignIn({ ...everyone, rememberSignInMinutes: 10 }, passwordOnly, noFactor, signedInAt + 1), false, 'required switched on: enrol first');
  assert.equal(maySkipSignIn(tenMinutes, passwordOnly, { ...noFactor, mustEnrol: true }, signedInAt + 1), false, 'reset-2fa asked for enrolment');
});
