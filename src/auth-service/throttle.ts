// Brute-force throttling: failure counters per account and per client address, with a temporary lockout
// once a counter reaches the limit. A pure state machine (state in, state out) with time passed in, so the
// policy is testable without waiting and the state can live in memory or in PostgreSQL (auth_lockouts).
// Accounts and addresses are independent keys: locking one never affects another.

export interface ThrottlePolicy {
  /** Failures that trigger a lockout (the 10th wrong password locks by default). */
  readonly maxFailures: number;
  /** How long a lockout lasts, ms. */
  readonly lockoutMs: number;
  /** Failures older than this are forgotten, ms (so a few typos a week never add up to a lockout). */
  readonly failureWindowMs: number;
}

export const defaultThrottlePolicy: ThrottlePolicy = { maxFailures: 10, lockoutMs: 15 * 60_000, failureWindowMs: 15 * 60_000 };

export type ThrottleKey = `account:${string}` | `address:${string}`;

export function accountKey(username: string): ThrottleKey {
  return `account:${username.toLowerCase()}`;
}

export function addressKey(address: string): ThrottleKey {
  return `address:${address}`;
}

export interface ThrottleEntry {
  readonly failures: number;
  /** When the first failure of the current window happened, ms. */
  readonly windowStartMs: number;
  /** Locked until this time, ms; undefined when not locked. */
  readonly lockedUntilMs?: number;
}

export type ThrottleState = ReadonlyMap<ThrottleKey, ThrottleEntry>;

export const emptyThrottleState: ThrottleState = new Map();

/** The entry as it stands at `nowMs`: an expired lockout or window counts as no entry. */
export function currentEntry(state: ThrottleState, key: ThrottleKey, nowMs: number, policy: ThrottlePolicy): ThrottleEntry | undefined {
  const entry = state.get(key);
  if (!entry) return undefined;
  if (entry.lockedUntilMs !== undefined) return nowMs < entry.lockedUntilMs ? entry : undefined;
  return nowMs - entry.windowStartMs < policy.failureWindowMs ? entry : undefined;
}

export type ThrottleDecision = { readonly allowed: true } | { readonly allowed: false; readonly retryAfterMs: number; readonly key: ThrottleKey };

/** Whether an attempt involving all `keys` (typically the account and the address) may be made now. */
export function checkAttempt(state: ThrottleState, keys: readonly ThrottleKey[], nowMs: number, policy: ThrottlePolicy): ThrottleDecision {
  let longest: { retryAfterMs: number; key: ThrottleKey } | undefined;
  for (const key of keys) {
    const entry = currentEntry(state, key, nowMs, policy);
    if (entry?.lockedUntilMs === undefined) continue;
    const retryAfterMs = entry.lockedUntilMs - nowMs;
    if (!longest || retryAfterMs > longest.retryAfterMs) longest = { retryAfterMs, key };
  }
  return longest ? { allowed: false, ...longest } : { allowed: true };
}

/** Counts a failed attempt against every key; a key reaching `maxFailures` becomes locked for `lockoutMs`. */
export function recordFailure(state: ThrottleState, keys: readonly ThrottleKey[], nowMs: number, policy: ThrottlePolicy): ThrottleState {
  const next = new Map(state);
  for (const key of keys) {
    const entry = currentEntry(state, key, nowMs, policy);
    if (entry?.lockedUntilMs !== undefined) continue; // already locked: failures while locked do not extend it
    const failures = (entry?.failures ?? 0) + 1;
    const windowStartMs = entry?.windowStartMs ?? nowMs;
    next.set(key, failures >= policy.maxFailures ? { failures, windowStartMs, lockedUntilMs: nowMs + policy.lockoutMs } : { failures, windowStartMs });
  }
  return next;
}

/** A successful sign-in clears the account's counter (the address keeps its count: one address, many accounts). */
export function recordSuccess(state: ThrottleState, account: ThrottleKey): ThrottleState {
  if (!state.has(account)) return state;
  const next = new Map(state);
  next.delete(account);
  return next;
}

/** Drops entries that no longer matter at `nowMs` (keeps memory bounded). */
export function pruneThrottleState(state: ThrottleState, nowMs: number, policy: ThrottlePolicy): ThrottleState {
  const next = new Map<ThrottleKey, ThrottleEntry>();
  for (const [key] of state) {
    const entry = currentEntry(state, key, nowMs, policy);
    if (entry) next.set(key, entry);
  }
  return next;
}

/** An in-memory throttle around the pure functions, with an injectable clock. */
export class Throttle {
  #state: ThrottleState = emptyThrottleState;
  constructor(
    readonly policy: ThrottlePolicy = defaultThrottlePolicy,
    private readonly clock: () => number = Date.now,
  ) {}

  check(keys: readonly ThrottleKey[]): ThrottleDecision {
    return checkAttempt(this.#state, keys, this.clock(), this.policy);
  }

  failure(keys: readonly ThrottleKey[]): void {
    this.#state = pruneThrottleState(recordFailure(this.#state, keys, this.clock(), this.policy), this.clock(), this.policy);
  }

  success(account: ThrottleKey): void {
    this.#state = recordSuccess(this.#state, account);
  }

  get state(): ThrottleState {
    return this.#state;
  }
}
