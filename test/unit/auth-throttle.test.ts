import { test } from 'node:test';
import assert from 'node:assert/strict';
import { accountKey, addressKey, checkAttempt, emptyThrottleState, recordFailure, Throttle, type ThrottlePolicy } from '../../src/auth-service/throttle.js';

const policy: ThrottlePolicy = { maxFailures: 10, lockoutMs: 60_000, failureWindowMs: 300_000 };

function clock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let time = start;
  return { now: () => time, advance: (ms) => { time += ms; } };
}

test('10 failures lock the account for the configured time; 9 do not', () => {
  const time = clock();
  const throttle = new Throttle(policy, time.now);
  const alice = [accountKey('alice'), addressKey('192.0.2.1')];
  for (let i = 0; i < 9; i++) throttle.failure(alice);
  assert.deepEqual(throttle.check(alice), { allowed: true });
  throttle.failure(alice);
  const locked = throttle.check(alice);
  assert.equal(locked.allowed, false);
  assert.equal(!locked.allowed && locked.retryAfterMs, 60_000);
  time.advance(59_999);
  assert.equal(throttle.check(alice).allowed, false);
  time.advance(1);
  assert.deepEqual(throttle.check(alice), { allowed: true });
});

test('other accounts from another address are unaffected by a locked account', () => {
  const time = clock();
  const throttle = new Throttle(policy, time.now);
  for (let i = 0; i < 10; i++) throttle.failure([accountKey('alice'), addressKey('192.0.2.1')]);
  assert.deepEqual(throttle.check([accountKey('bob'), addressKey('198.51.100.7')]), { allowed: true });
  assert.equal(throttle.check([accountKey('alice'), addressKey('198.51.100.7')]).allowed, false);
});

test('one address failing against many accounts is locked by its address counter', () => {
  const throttle = new Throttle(policy, clock().now);
  for (let i = 0; i < 10; i++) throttle.failure([accountKey(`user${i}`), addressKey('203.0.113.9')]);
  const decision = throttle.check([accountKey('newuser'), addressKey('203.0.113.9')]);
  assert.equal(decision.allowed, false);
  assert.equal(!decision.allowed && decision.key, 'address:203.0.113.9');
  assert.deepEqual(throttle.check([accountKey('newuser'), addressKey('203.0.113.10')]), { allowed: true });
});

test('success clears the account counter; old failures fall out of the window', () => {
  const time = clock();
  const throttle = new Throttle(policy, time.now);
  const keys = [accountKey('carol')];
  for (let i = 0; i < 9; i++) throttle.failure(keys);
  throttle.success(accountKey('carol'));
  throttle.failure(keys);
  assert.equal(throttle.state.get(accountKey('carol'))?.failures, 1);
  for (let i = 0; i < 8; i++) throttle.failure(keys);
  time.advance(300_000);
  throttle.failure(keys);
  assert.deepEqual(throttle.check(keys), { allowed: true });
  assert.equal(throttle.state.get(accountKey('carol'))?.failures, 1);
});

test('failures while locked do not extend the lockout; account names are case-insensitive', () => {
  let state = emptyThrottleState;
  const keys = [accountKey('Dave')];
  for (let i = 0; i < 10; i++) state = recordFailure(state, keys, 0, policy);
  state = recordFailure(state, [accountKey('dave')], 30_000, policy);
  const decision = checkAttempt(state, [accountKey('DAVE')], 30_000, policy);
  assert.equal(!decision.allowed && decision.retryAfterMs, 30_000);
});

test('state is not mutated (pure transitions)', () => {
  const before = emptyThrottleState;
  const after = recordFailure(before, [accountKey('eve')], 0, policy);
  assert.equal(before.size, 0);
  assert.equal(after.size, 1);
});
