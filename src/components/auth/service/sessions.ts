// The service's own web sessions (sign-in progress per OpenID interaction, the account page's sign-in,
// the CSRF synchronizer token, WebAuthn challenges). Stored server-side in PostgreSQL with oidc-provider's
// payloads (model `WebSession`), so replicas share them; the browser holds only a random id in an
// HttpOnly, SameSite=Lax cookie scoped to the path prefix.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AdapterPayload } from 'oidc-provider';
import { PostgresAdapter } from './adapter.js';
import { newToken, parseCookies, serialiseCookie } from './http.js';
import type { Database } from '../repository.js';
import type { SecondFactorProof } from './policy.js';

export type Stage = 'password' | 'second-factor' | 'enrol' | 'enrol-totp' | 'recovery-codes' | 'done';

export interface FlowState {
  stage: Stage;
  accountId?: string;
  username?: string;
  /** Shown once on the next page, then cleared. */
  error?: string;
  notice?: string;
  /** Recovery codes waiting to be shown once, sealed under the service's sealing key. */
  sealedCodes?: string;
  /** Where the flow goes after the recovery codes page. */
  afterCodes?: Stage;
  /** Expected WebAuthn challenge of the ceremony in progress. */
  challenge?: string;
  /** The second factor this sign-in proved (given or just enrolled); none: the password alone. */
  secondFactor?: SecondFactorProof;
}

export interface WebSession {
  id: string;
  csrf: string;
  flows: Record<string, FlowState>;
}

export const sessionCookieName = 'mxauth_session';
const sessionTtlSeconds = 3600;

export class SessionStore {
  private readonly adapter: PostgresAdapter;

  constructor(db: Database, private readonly cookiePath: string, private readonly secure: boolean) {
    this.adapter = new PostgresAdapter(db, 'WebSession');
  }

  async load(req: IncomingMessage): Promise<WebSession | undefined> {
    const id = parseCookies(req.headers.cookie).get(sessionCookieName);
    if (!id || !/^[A-Za-z0-9_-]{43}$/.test(id)) return undefined;
    const payload = await this.adapter.find(id);
    if (!payload) return undefined;
    return { id, csrf: String(payload.csrf), flows: (payload.flows as Record<string, FlowState> | undefined) ?? {} };
  }

  /** The request's session, or a new one (its cookie set on `res`). */
  async loadOrCreate(req: IncomingMessage, res: ServerResponse): Promise<WebSession> {
    const existing = await this.load(req);
    if (existing) return existing;
    const session: WebSession = { id: newToken(), csrf: newToken(), flows: {} };
    await this.save(session);
    res.appendHeader('set-cookie', serialiseCookie(sessionCookieName, session.id, { path: this.cookiePath, secure: this.secure }));
    return session;
  }

  async save(session: WebSession): Promise<void> {
    await this.adapter.upsert(session.id, { csrf: session.csrf, flows: session.flows } as AdapterPayload, sessionTtlSeconds);
  }

  /**
   * A new id and CSRF token for the same session state (after the password step), so an id planted in the
   * browser before the sign-in never names a signed-in session.
   */
  async rotate(session: WebSession, res: ServerResponse): Promise<void> {
    await this.adapter.destroy(session.id);
    session.id = newToken();
    session.csrf = newToken();
    await this.save(session);
    res.appendHeader('set-cookie', serialiseCookie(sessionCookieName, session.id, { path: this.cookiePath, secure: this.secure }));
  }

  async destroy(session: WebSession, res: ServerResponse): Promise<void> {
    await this.adapter.destroy(session.id);
    res.appendHeader('set-cookie', serialiseCookie(sessionCookieName, '', { path: this.cookiePath, secure: this.secure, maxAge: 0 }));
  }
}
