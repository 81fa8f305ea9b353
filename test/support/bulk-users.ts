/**
 * Many users, fast and through the real Admin API (`PUT /_synapse/admin/v2/users/<id>`, no password, so no
 * bcrypt per user), with bounded concurrency. Shared by the operations tests and bench/list-users.ts.
 */
import { mapWithConcurrency, type SynapseAdminClient } from '../../src/ops/admin-api.js';

export interface BulkResult {
  created: number;
  milliseconds: number;
}

/** Creates `@<prefix><n>:server` for n in [0, count) that do not exist yet; returns how long it took. */
export async function createUsersInBulk(admin: SynapseAdminClient, prefix: string, count: number, concurrency = 8, onProgress?: (done: number) => void): Promise<BulkResult> {
  const started = Date.now();
  const existing = new Set((await admin.listUsers({ name: prefix })).map((u) => u.name));
  const wanted = Array.from({ length: count }, (_, n) => `@${prefix}${String(n).padStart(5, '0')}:${admin.serverName}`).filter((id) => !existing.has(id));
  let done = 0;
  await mapWithConcurrency(wanted, concurrency, async (userId) => {
    await admin.putUser(userId, { displayname: `Bulk ${userId.slice(1, userId.indexOf(':'))}` });
    if (++done % 1000 === 0) onProgress?.(done);
  });
  return { created: wanted.length, milliseconds: Date.now() - started };
}
