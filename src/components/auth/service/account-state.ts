// An account as it is at this moment, for decisions that must not rest on what a session remembers: the
// factors it has (the auth database), whether Synapse deactivated it or made it an admin (Synapse's users
// table), whether it is locked out. And the end of every sign-in of an account (reset-2fa, deactivation).
import type pg from 'pg';
import * as repo from '../repository.js';
import { accountKey } from '../throttle.js';
import type { AccountNow } from './policy.js';
import { findSynapseUser } from './synapse-users.js';

export interface AccountSources {
  readonly db: pg.Pool;
  readonly synapseDb: pg.Pool;
  readonly serverName: string;
  readonly clock: () => number;
}

/** The account's state now; undefined when the auth service has no account of that name. */
export async function accountNow(sources: AccountSources, username: string): Promise<AccountNow | undefined> {
  const account = await repo.findAccount(sources.db, username);
  if (!account) return undefined;
  const [summary, synapseUser, throttle] = await Promise.all([
    repo.factorSummary(sources.db, account.id),
    findSynapseUser(sources.synapseDb, sources.serverName, username),
    repo.loadThrottleEntries(sources.db, [accountKey(username)]),
  ]);
  const lockedUntil = throttle.get(accountKey(username))?.lockedUntilMs;
  return {
    isAdmin: synapseUser?.admin ?? account.isAdmin,
    mustEnrol: account.mustEnrol,
    hasTotp: summary.totp,
    securityKeys: summary.webauthnCredentials,
    deactivated: synapseUser?.deactivated ?? false,
    locked: lockedUntil !== undefined && lockedUntil > sources.clock(),
  };
}

/**
 * Ends every sign-in of the account: the identity provider's sessions, grants, codes, tokens and
 * interactions of that account, and the service's own web sessions (sign-in flows, the account page) that
 * name it. Returns how many stored records were removed.
 */
export async function endAccountSessions(db: repo.Database, username: string): Promise<number> {
  const result = await db.query(
    `DELETE FROM auth_oidc_payloads
      WHERE payload->>'accountId' = $1
         OR grant_id IN (SELECT id FROM auth_oidc_payloads WHERE model = 'Grant' AND payload->>'accountId' = $1)
         OR (model = 'WebSession' AND EXISTS (SELECT 1 FROM jsonb_each(payload->'flows') AS flow WHERE flow.value->>'username' = $1))`,
    [username],
  );
  return result.rowCount ?? 0;
}
