// The pure rules of the sign-in flow: who must give or enrol a second factor, how a typed username maps to
// an account, which factor may be removed.
import type { AuthPolicy } from '../components/auth/service-config.js';

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

/** Removing one factor is refused when it is the last one and the policy requires one for this account. */
export function mayRemoveFactor(policy: Pick<AuthPolicy, 'required' | 'requiredForAdmins'>, account: AccountFactors, removing: 'totp' | 'security-key'): boolean {
  const remaining = (account.hasTotp && removing !== 'totp' ? 1 : 0) + account.securityKeys - (removing === 'security-key' ? 1 : 0);
  return remaining > 0 || !(policy.required || (policy.requiredForAdmins && account.isAdmin));
}

/** Minutes to show in "try again in N minutes" (at least 1). */
export function minutesToWait(retryAfterMs: number): number {
  return Math.max(1, Math.ceil(retryAfterMs / 60_000));
}
