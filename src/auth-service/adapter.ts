// oidc-provider's storage adapter on PostgreSQL (table auth_oidc_payloads), so that every replica sees the
// same sessions, interactions, grants, codes and tokens. Expiry is honoured on every read (an expired row
// is as good as absent) and expired rows are pruned from time to time.
import { errors, type Adapter, type AdapterPayload } from 'oidc-provider';
import type { Database } from './repository.js';

interface PayloadRow {
  payload: AdapterPayload;
  expires_at: Date | null;
  consumed_at: Date | null;
}

/** The stored payload as oidc-provider expects it at `nowMs`: undefined when expired, `consumed` when consumed. */
export function payloadFromRow(row: PayloadRow | undefined, nowMs: number): AdapterPayload | undefined {
  if (!row) return undefined;
  if (row.expires_at !== null && row.expires_at.getTime() <= nowMs) return undefined;
  return row.consumed_at === null ? row.payload : { ...row.payload, consumed: Math.floor(row.consumed_at.getTime() / 1000) };
}

/** When a payload stored now for `expiresInSeconds` expires; null = never (oidc-provider passes none for some models). */
export function expiryFor(nowMs: number, expiresInSeconds: number | undefined): Date | null {
  return expiresInSeconds === undefined || !Number.isFinite(expiresInSeconds) ? null : new Date(nowMs + expiresInSeconds * 1000);
}

const columns = 'payload, expires_at, consumed_at';

export class PostgresAdapter implements Adapter {
  constructor(private readonly db: Database, private readonly model: string, private readonly clock: () => number = Date.now) {}

  async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
    await this.db.query(
      `INSERT INTO auth_oidc_payloads (model, id, payload, grant_id, user_code, uid, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
       ON CONFLICT (model, id) DO UPDATE SET payload = EXCLUDED.payload, grant_id = EXCLUDED.grant_id, user_code = EXCLUDED.user_code,
         uid = EXCLUDED.uid, expires_at = EXCLUDED.expires_at`,
      [this.model, id, JSON.stringify(payload), payload.grantId ?? null, payload.userCode ?? null, payload.uid ?? null, expiryFor(this.clock(), expiresIn)],
    );
  }

  async find(id: string): Promise<AdapterPayload | undefined> {
    return this.first(await this.db.query<PayloadRow>(`SELECT ${columns} FROM auth_oidc_payloads WHERE model = $1 AND id = $2`, [this.model, id]));
  }

  async findByUid(uid: string): Promise<AdapterPayload | undefined> {
    return this.first(await this.db.query<PayloadRow>(`SELECT ${columns} FROM auth_oidc_payloads WHERE model = $1 AND uid = $2`, [this.model, uid]));
  }

  async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
    return this.first(await this.db.query<PayloadRow>(`SELECT ${columns} FROM auth_oidc_payloads WHERE model = $1 AND user_code = $2`, [this.model, userCode]));
  }

  /**
   * oidc-provider finds a code (or refresh token), checks it is unconsumed, then consumes it: two replicas
   * redeeming the same code at once would both pass the check. Only the request whose UPDATE marks the row
   * wins; the other is refused as an invalid grant.
   */
  async consume(id: string): Promise<void> {
    const result = await this.db.query('UPDATE auth_oidc_payloads SET consumed_at = now() WHERE model = $1 AND id = $2 AND consumed_at IS NULL', [this.model, id]);
    if (result.rowCount === 0) throw new errors.InvalidGrant('grant already consumed');
  }

  async destroy(id: string): Promise<void> {
    await this.db.query('DELETE FROM auth_oidc_payloads WHERE model = $1 AND id = $2', [this.model, id]);
  }

  async revokeByGrantId(grantId: string): Promise<void> {
    await this.db.query('DELETE FROM auth_oidc_payloads WHERE grant_id = $1', [grantId]);
  }

  private first(result: { rows: PayloadRow[] }): AdapterPayload | undefined {
    return payloadFromRow(result.rows[0], this.clock());
  }
}

/** Removes expired rows (all models); returns how many. */
export async function pruneExpiredPayloads(db: Database): Promise<number> {
  return (await db.query('DELETE FROM auth_oidc_payloads WHERE expires_at IS NOT NULL AND expires_at < now()')).rowCount ?? 0;
}

/** The adapter factory oidc-provider's `adapter` option takes. */
export function postgresAdapterFactory(db: Database): (model: string) => Adapter {
  return (model) => new PostgresAdapter(db, model);
}
