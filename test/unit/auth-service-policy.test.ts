import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mayRemoveFactor, minutesToWait, normaliseUsername, secondFactorRequired, stepAfterPassword } from '../../src/auth-service/policy.js';
import { lockedMessage } from '../../src/auth-service/flows.js';

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
