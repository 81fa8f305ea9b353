// Synapse's `users` table (read only): the one-time import of an existing user's bcrypt password hash at
// first sign-in, deactivated users refused, and `admin` refreshed at every sign-in.
import type pg from 'pg';
import * as repo from './repository.js';
import { isSynapseBcryptHash } from './password.js';
import type { Database } from './repository.js';
import { log } from './log.js';

export interface SynapseUser {
  readonly admin: boolean;
  readonly deactivated: boolean;
  readonly passwordHash: string | null;
}

export async function findSynapseUser(synapse: pg.Pool, serverName: string, username: string): Promise<SynapseUser | undefined> {
  try {
    const result = await synapse.query<{ admin: number | boolean | null; deactivated: number | boolean | null; password_hash: string | null }>(
      'SELECT admin, deactivated, password_hash FROM users WHERE name = $1',
      [`@${username}:${serverName}`],
    );
    const row = result.rows[0];
    return row ? { admin: Boolean(row.admin), deactivated: Boolean(row.deactivated), passwordHash: row.password_hash } : undefined;
  } catch (error) {
    // Synapse may not have created its tables yet: no import then, the service's own accounts still work.
    log('synapse-users-unavailable', { reason: (error as Error).message });
    return undefined;
  }
}

export type ImportOutcome = 'ok' | 'deactivated';

/**
 * Before a password check: refreshes the admin flag of a known account from Synapse, creates an unknown
 * account whose Synapse user has a bcrypt hash (imported, re-hashed at the first correct password), and
 * tells whether Synapse has deactivated the user.
 */
export async function syncFromSynapse(db: Database, synapse: pg.Pool, serverName: string, username: string): Promise<ImportOutcome> {
  const user = await findSynapseUser(synapse, serverName, username);
  if (user?.deactivated) return 'deactivated';
  const account = await repo.findAccount(db, username);
  if (account && user && account.isAdmin !== user.admin) await repo.setAdmin(db, account.id, user.admin);
  if (!account && user?.passwordHash && isSynapseBcryptHash(user.passwordHash)) {
    await repo.inTransaction(db, async (client) => {
      // Two replicas may import the same user at once: the unique username makes one of them a no-op.
      const created = await client.query<{ id: string }>('INSERT INTO auth_accounts (username, is_admin) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING id', [username, user.admin]);
      const id = created.rows[0]?.id;
      if (id !== undefined) await repo.setPasswordHash(client, String(id), user.passwordHash!, 'synapse-bcrypt');
    });
    log('account-imported-from-synapse', { username });
  }
  return 'ok';
}
