/**
 * A typed client of the auth component's administration API (the contract: authAdminRoutes and
 * AdminAccountInfo in src/components/auth/service-config.ts). It listens on auth.adminPort, never routed;
 * `withAuthAdmin` reaches it through the Target and reads its bearer token from the Secret
 * (stack.secrets.auth.adminToken). Every failure is an AuthAdminError with one sentence; neither the token
 * nor a password ever appears in a message.
 */
import { authAdminRoutes, authHealthPath, type AdminAccountInfo } from '../components/auth/service-config.js';
import { AdminApiError, connectionCause } from './admin-api.js';
import { TargetUsageError, type Target } from './target.js';

export type { AdminAccountInfo };

/** A failure of an auth admin call (exit 1 like the Synapse Admin API's). */
export class AuthAdminError extends AdminApiError {
  constructor(message: string, status?: number) {
    super(message, status);
    this.name = 'AuthAdminError';
  }
}

/** The sentence for a stack without built-in 2FA (a usage error: the command does not apply). */
export const authOffSentence = (description: string) =>
  `two-factor authentication is off on ${description} (synapse.server.mfa.totp.enabled and synapse.server.mfa.webauthn.enabled are false), so there is no second factor to manage.`;

export class AuthAdminClient {
  constructor(
    /** The admin listener, with a trailing slash. */
    readonly baseUrl: string,
    private readonly token: string,
  ) {}

  private async request(method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
    const url = new URL(path.replace(/^\//, ''), this.baseUrl);
    let response: Response;
    try {
      response = await fetch(url, {
        method,
        headers: { authorization: `Bearer ${this.token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(60_000),
      });
    } catch (error) {
      throw new AuthAdminError(`cannot reach the auth service's admin API at ${this.baseUrl} (${connectionCause(error)}): is the auth component running?`);
    }
    const text = await response.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    return { status: response.status, json };
  }

  /** Turns a non-2xx answer into one sentence about `username`. */
  private failure(method: string, path: string, status: number, json: unknown, username?: string): AuthAdminError {
    const said = typeof (json as { error?: unknown })?.error === 'string' ? (json as { error: string }).error : undefined;
    if (status === 401) return new AuthAdminError('the auth service refused the admin token (stored in the auth Secret, key admin-token): was it rotated without restarting the auth component?', 401);
    if (status === 404 && username !== undefined) return new AuthAdminError(`user ${username} not found at the auth service.`, 404);
    return new AuthAdminError(`the auth service answered ${method} ${path} with HTTP ${status}${said ? `: ${said}` : ''}${username !== undefined ? ` (user ${username})` : ''}.`, status);
  }

  /** GET /health on the admin listener: undefined when healthy, else what was seen. */
  async health(): Promise<string | undefined> {
    const { status } = await this.request('GET', authHealthPath);
    return status === 200 ? undefined : `HTTP ${status}`;
  }

  /** The account's factors (names and dates only), or undefined when neither the service nor Synapse knows it. */
  async findAccount(username: string): Promise<AdminAccountInfo | undefined> {
    const path = authAdminRoutes.account(username);
    const { status, json } = await this.request('GET', path);
    if (status === 404) return undefined;
    if (status !== 200) throw this.failure('GET', path, status, json, username);
    return parseAccountInfo(json, username);
  }

  async account(username: string): Promise<AdminAccountInfo> {
    const info = await this.findAccount(username);
    if (!info) throw new AuthAdminError(`user ${username} not found at the auth service.`, 404);
    return info;
  }

  /** Sets the password (the service hashes it with argon2id), creating the account when missing. */
  async setPassword(username: string, password: string, isAdmin?: boolean): Promise<void> {
    const path = authAdminRoutes.password(username);
    const { status, json } = await this.request('PUT', path, { password, ...(isAdmin !== undefined ? { isAdmin } : {}) });
    if (status !== 204 && status !== 200) throw this.failure('PUT', path, status, json, username);
  }

  /** Removes every second factor and recovery code; returns the account as it is afterwards. */
  async resetSecondFactors(username: string): Promise<AdminAccountInfo> {
    const path = authAdminRoutes.resetSecondFactors(username);
    const { status, json } = await this.request('POST', path, {});
    if (status !== 200) throw this.failure('POST', path, status, json, username);
    return parseAccountInfo(json, username);
  }

  /** Ends every sign-in the service holds for the account (sessions, grants, tokens, open pages). */
  async endSessions(username: string): Promise<void> {
    const path = authAdminRoutes.endSessions(username);
    const { status, json } = await this.request('POST', path, {});
    if (status !== 204 && status !== 200) throw this.failure('POST', path, status, json, username);
  }

  /** Clears the account's lockout. */
  async unlock(username: string): Promise<void> {
    const path = authAdminRoutes.unlock(username);
    const { status, json } = await this.request('POST', path, {});
    if (status !== 204 && status !== 200) throw this.failure('POST', path, status, json, username);
  }
}

/** Shape-checks an AdminAccountInfo answer (a wrong answer is one sentence, not a crash later). */
export function parseAccountInfo(json: unknown, username: string): AdminAccountInfo {
  const info = json as Partial<AdminAccountInfo> | undefined;
  const ok =
    typeof info === 'object' &&
    info !== null &&
    typeof info.username === 'string' &&
    typeof info.isAdmin === 'boolean' &&
    typeof info.mustEnrol === 'boolean' &&
    typeof info.totp?.enrolled === 'boolean' &&
    Array.isArray(info.webauthn) &&
    typeof info.recoveryCodesLeft === 'number';
  if (!ok) throw new AuthAdminError(`the auth service answered about ${username} with something that is not an account description.`);
  return info as AdminAccountInfo;
}

/** The Matrix localpart of a full user id (the auth service's account name). */
export const localpartOf = (userId: string) => userId.slice(1, userId.indexOf(':'));

/** Runs `use` with a client of the auth admin API; refused (TargetUsageError) when the stack has no auth component. */
export async function withAuthAdmin<T>(target: Target, use: (auth: AuthAdminClient) => Promise<T>): Promise<T> {
  const secrets = target.stack.secrets.auth;
  if (!target.stack.auth || !secrets) throw new TargetUsageError(authOffSentence(target.description));
  const token = (await target.readSecret(secrets.adminToken))?.trim();
  if (!token) {
    throw new AuthAdminError(`no admin token of the auth service is stored in ${secrets.adminToken.name}/${secrets.adminToken.key} on ${target.description}; run \`mxstack secrets init\` and start the stack.`);
  }
  return target.withAuth((baseUrl) => use(new AuthAdminClient(baseUrl, token)));
}
