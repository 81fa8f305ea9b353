// The pure rules of the sign-in flow: who must give or enrol a second factor, how a typed username maps to
// an account, which factor may be removed.
import type { AuthPolicy } from '../service-config.js';

/** Matrix localparts (the historical grammar Synapse still accepts for existing users, lower-cased). */
const localpartPattern = /^[a-z0-9._=\-/+]+$/;

/**
 * `alice`, `Alice`, `@alice:server` → `alice`. Undefined when the text is no username of this server
 * (another server's user id, characters a localpart cannot have).
 */
export function normaliseUsername(typed: string, serverName: string): string | undefined {
  let text = typed.trim();
  if (text.startsWith('@')) {
    const separator = text.indexOf(':');
    if (separator < 0) text = text.slice(1);
    else {
      if (text.slice(separator + 1).toLowerCase() !== serverName.toLowerCase()) return undefined;
      text = text.slice(1, separator);
    }
  }
  const localpart = text.toLowerCase();
  return localpart.length > 0 && localpart.length <= 255 && localpartPattern.test(localpart) ? localpart : undefined;
}

export interface AccountFactors {
  readonly isAdmin: boolean;
  readonly mustEnrol: boolean;
  readonly hasTotp: boolean;
  readonly securityKeys: number;
}

/** Whether the policy requires this account to have a second factor. */
export function secondFactorRequired(policy: Pick<AuthPolicy, 'required' | 'requiredForAdmins'>, account: Pick<AccountFactors, 'isAdmin' | 'mustEnrol'>): boolean {
  return policy.required || (policy.requiredForAdmins && account.isAdmin) || account.mustEnrol;
}

export type NextStep = 'second-factor' | 'enrol' | 'done';

/** After a correct password: give a factor when the account has one, enrol when the policy requires one, else done. */
export function stepAfterPassword(policy: Pick<AuthPolicy, 'required' | 'requiredForAdmins'>, account: AccountFactors): NextStep {
  if (account.hasTotp || account.securityKeys > 0) return 'second-factor';
  return secondFactorRequired(policy, account) ? 'enrol' : 'done';
}

/**
 * Whether the account must enrol a second factor before its sign-in completes: the policy requires one and it
 * has none. The one answer for the sign-in (after the password), a remembered sign-in and `users info`.
 */
export function mustEnrolNow(policy: Pick<AuthPolicy, 'required' | 'requiredForAdmins'>, account: AccountFactors): boolean {
  return stepAfterPassword(policy, account) === 'enrol';
}

/** What a finished sign-in proved, as OpenID Connect `amr` values (RFC 8176): the password, and the second factor when one was given. */
export type SecondFactorProof = 'totp' | 'security-key' | 'recovery-code';

export function authenticationMethods(secondFactor: SecondFactorProof | undefined): string[] {
  if (secondFactor === undefined) return ['pwd'];
  return ['pwd', secondFactor === 'security-key' ? 'hwk' : 'otp', 'mfa'];
}

/** A sign-in kept by the identity provider (its Session), as far as reuse is concerned. */
export interface RememberedSignIn {
  /** When the sign-in finished (seconds since the epoch), as oidc-provider records it. */
  readonly loginTs: number | undefined;
  /** What it proved (`authenticationMethods`). */
  readonly amr: readonly string[] | undefined;
}

/** The account as it is now, read at the authorization that wants to reuse a sign-in. */
export interface AccountNow extends AccountFactors {
  readonly deactivated: boolean;
  readonly locked: boolean;
}

/**
 * Whether an authorization request may reuse an earlier sign-in instead of asking for the password and the
 * second factor again. Never with `rememberSignInMinutes` 0 (the default); otherwise only inside the window,
 * and only while the account is as the sign-in left it: known, not deactivated, not locked, not due to enrol,
 * and, when it has a second factor now, the sign-in proved one. The policy is the one in force now.
 */
export function maySkipSignIn(policy: Pick<AuthPolicy, 'required' | 'requiredForAdmins' | 'rememberSignInMinutes'>, signIn: RememberedSignIn, account: AccountNow | undefined, nowSeconds: number): boolean {
  const window = policy.rememberSignInMinutes * 60;
  if (window <= 0 || signIn.loginTs === undefined || !account) return false;
  const age = nowSeconds - signIn.loginTs;
  if (age < 0 || age > window) return false;
  if (account.deactivated || account.locked) return false;
  const next = stepAfterPassword(policy, account);
  if (next === 'enrol') return false;
  return next === 'done' || (signIn.amr ?? []).includes('mfa');
}

/** Removing one factor is refused when it is the last one and the policy requires one for this account. */
export function mayRemoveFactor(policy: Pick<AuthPolicy, 'required' | 'requiredForAdmins'>, account: AccountFactors, removing: 'totp' | 'security-key'): boolean {
  const remaining = (account.hasTotp && removing !== 'totp' ? 1 : 0) + account.securityKeys - (removing === 'security-key' ? 1 : 0);
  return remaining > 0 || !(policy.required || (policy.requiredForAdmins && account.isAdmin));
}

/** Minutes to show in "try again in N minutes" (at least 1). */
export function minutesToWait(retryAfterMs: number): number {
  return Math.max(1, Math.ceil(retryAfterMs / 60_000));
}
