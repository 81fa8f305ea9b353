/**
 * Stand-ins on loopback for unit tests of the operations with built-in 2FA: an HTTP server speaking the
 * auth service's admin API (the contract in src/components/auth/service-config.ts) over an in-memory
 * account table, a scripted Synapse (login, whoami, the Admin API calls `users` makes), and a Target
 * reaching both. They exist because a unit test cannot start PostgreSQL and Synapse; the real service and
 * the real Synapse are exercised by test/integration/ops-auth.test.ts.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { authAdminRoutes, type AdminAccountInfo } from '../../src/components/auth/service-config.js';
import type { Stack } from '../../src/stack/model.js';
import type { SecretKeyRef, Target } from '../../src/targets/target.js';
import { loadValues } from '../../src/values/load.js';
import { compileKubernetesStack } from '../../src/targets/kubernetes/render.js';

export const serverName = 'example.org';

export function stackWith(options: { auth: boolean; sets?: string[] }): Stack {
  const sets = [`synapse.server.name=${serverName}`, ...(options.auth ? ['synapse.server.mfa.totp.enabled=true'] : []), ...(options.sets ?? [])];
  return compileKubernetesStack(loadValues({ sets }), { release: 'mx', namespace: 'chat' });
}

type Route = (request: IncomingMessage, url: URL, body: string) => { status: number; body?: unknown } | undefined;

export interface Recorded {
  method: string;
  path: string;
  authorization?: string;
  body: string;
}

export class FakeHttp {
  readonly requests: Recorded[] = [];
  private server?: Server;
  url = '';
  constructor(private readonly route: Route) {}

  async start(): Promise<this> {
    this.server = createServer((request: IncomingMessage, response: ServerResponse) => {
      let body = '';
      request.on('data', (chunk: Buffer) => (body += chunk.toString()));
      request.on('end', () => {
        const url = new URL(request.url ?? '/', 'http://x');
        this.requests.push({ method: request.method ?? '', path: url.pathname, body, ...(request.headers.authorization ? { authorization: request.headers.authorization } : {}) });
        const answer = this.route(request, url, body) ?? { status: 404, body: { errcode: 'M_NOT_FOUND', error: 'not scripted' } };
        if (answer.body === undefined) {
          response.writeHead(answer.status);
          response.end();
          return;
        }
        response.writeHead(answer.status, { 'content-type': 'application/json' });
        response.end(JSON.stringify(answer.body));
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/`;
    return this;
  }

  stop(): Promise<void> {
    return new Promise((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

export interface FakeAccount {
  password?: string;
  isAdmin: boolean;
  mustEnrol: boolean;
  totpEnrolledAt?: string;
  webauthn: { name: string; createdAt: string; lastUsedAt?: string }[];
  recoveryCodesLeft: number;
  lockedUntil?: string;
}

/** The auth service's admin API over an in-memory table; the policy requires a factor of admins. */
export class FakeAuthService extends FakeHttp {
  readonly accounts = new Map<string, FakeAccount>();
  /** Synapse users without an account here: described as the real service does (password none, no factors). */
  readonly synapseOnly = new Set<string>();
  healthy = true;
  constructor(readonly token: string) {
    super((request, url, body) => this.answer(request, url, body));
  }

  info(username: string): AdminAccountInfo {
    const account = this.accounts.get(username)!;
    return {
      username,
      isAdmin: account.isAdmin,
      mustEnrol: account.mustEnrol,
      password: account.password !== undefined ? 'argon2id' : 'none',
      totp: { enrolled: account.totpEnrolledAt !== undefined, ...(account.totpEnrolledAt ? { enrolledAt: account.totpEnrolledAt } : {}) },
      webauthn: account.webauthn,
      recoveryCodesLeft: account.recoveryCodesLeft,
      ...(account.lockedUntil ? { lockedUntil: account.lockedUntil } : {}),
    };
  }

  private answer(request: IncomingMessage, url: URL, body: string): { status: number; body?: unknown } | undefined {
    if (url.pathname === '/health') return this.healthy ? { status: 200, body: { ok: true } } : { status: 503, body: { error: 'database unreachable' } };
    if (request.headers.authorization !== `Bearer ${this.token}`) return { status: 401, body: { error: 'bad token' } };
    const match = /^\/admin\/v1\/accounts\/([^/]+)(\/[a-z-]+)?$/.exec(url.pathname);
    if (!match) return undefined;
    const username = decodeURIComponent(match[1]!);
    const action = match[2] ?? '';
    const path = url.pathname;
    const account = this.accounts.get(username);
    if (request.method === 'GET' && path === authAdminRoutes.account(username)) {
      if (account) return { status: 200, body: this.info(username) };
      if (this.synapseOnly.has(username)) {
        return { status: 200, body: { username, isAdmin: false, mustEnrol: false, password: 'none', totp: { enrolled: false }, webauthn: [], recoveryCodesLeft: 0 } satisfies AdminAccountInfo };
      }
      return { status: 404, body: { error: 'no such account' } };
    }
    if (request.method === 'PUT' && action === '/password') {
      const { password, isAdmin } = JSON.parse(body) as { password?: unknown; isAdmin?: boolean };
      if (typeof password !== 'string' || password.length < 8) return { status: 400, body: { error: 'password must be a string of at least 8 characters' } };
      const existing = account ?? { isAdmin: false, mustEnrol: false, webauthn: [], recoveryCodesLeft: 0 };
      this.accounts.set(username, { ...existing, password, ...(isAdmin !== undefined ? { isAdmin } : {}) });
      return { status: 204 };
    }
    if (!account) return { status: 404, body: { error: 'no such account' } };
    if (request.method === 'POST' && action === '/reset-second-factors') {
      const { totpEnrolledAt: _totp, ...rest } = account;
      this.accounts.set(username, { ...rest, webauthn: [], recoveryCodesLeft: 0, mustEnrol: account.isAdmin });
      return { status: 200, body: this.info(username) };
    }
    if (request.method === 'POST' && action === '/unlock') {
      const { lockedUntil: _locked, ...rest } = account;
      this.accounts.set(username, rest);
      return { status: 204 };
    }
    return undefined;
  }
}

export interface FakeSynapseUser {
  admin: boolean;
  deactivated: boolean;
  /** The body of the PUT that created it. */
  created: Record<string, unknown>;
  devices: string[];
}

/** Synapse as `users` and the admin session see it; the admin logs in only through the application service. */
export class FakeSynapse extends FakeHttp {
  readonly users = new Map<string, FakeSynapseUser>();
  readonly tokens = new Map<string, string>();
  logins = 0;
  constructor(
    readonly asToken: string,
    readonly adminLocalpart = 'admin',
  ) {
    super((request, url, body) => this.answer(request, url, body));
    this.users.set(`@${adminLocalpart}:${serverName}`, { admin: true, deactivated: false, created: {}, devices: [] });
  }

  private answer(request: IncomingMessage, url: URL, body: string): { status: number; body?: unknown } | undefined {
    const path = url.pathname;
    if (request.method === 'POST' && path === '/_matrix/client/v3/login') {
      const submission = JSON.parse(body) as { type?: string; identifier?: { type?: string; user?: string }; device_id?: string };
      if (submission.type === 'm.login.password') return { status: 400, body: { errcode: 'M_UNKNOWN', error: 'Unknown login type m.login.password' } };
      if (submission.type !== 'm.login.application_service') return { status: 400, body: { errcode: 'M_UNKNOWN', error: 'Unknown login type' } };
      if (request.headers.authorization !== `Bearer ${this.asToken}`) return { status: 401, body: { errcode: 'M_UNKNOWN_TOKEN', error: 'Invalid access token passed.' } };
      if (submission.identifier?.type !== 'm.id.user' || submission.identifier.user !== this.adminLocalpart) return { status: 403, body: { errcode: 'M_FORBIDDEN', error: 'Invalid access_token' } };
      this.logins++;
      const token = `syt_admin_${this.logins}`;
      this.tokens.set(token, `@${this.adminLocalpart}:${serverName}`);
      return { status: 200, body: { user_id: `@${this.adminLocalpart}:${serverName}`, access_token: token, device_id: submission.device_id } };
    }
    const caller = this.tokens.get((request.headers.authorization ?? '').replace(/^Bearer /, ''));
    if (!caller) return { status: 401, body: { errcode: 'M_UNKNOWN_TOKEN', error: 'Unknown token' } };
    if (path === '/_matrix/client/v3/account/whoami') return { status: 200, body: { user_id: caller } };
    const admin = /^\/_synapse\/admin\/v1\/users\/([^/]+)\/admin$/.exec(path);
    if (admin) return { status: 200, body: { admin: this.users.get(decodeURIComponent(admin[1]!))?.admin ?? false } };
    const user = /^\/_synapse\/admin\/v2\/users\/([^/]+)$/.exec(path);
    if (user) {
      const userId = decodeURIComponent(user[1]!);
      if (request.method === 'PUT') {
        const fields = JSON.parse(body) as Record<string, unknown>;
        this.users.set(userId, { admin: fields.admin === true, deactivated: false, created: fields, devices: [] });
        return { status: 201, body: { name: userId, admin: fields.admin === true, deactivated: false } };
      }
      const found = this.users.get(userId);
      return found ? { status: 200, body: { name: userId, admin: found.admin, deactivated: found.deactivated, creation_ts: 1_700_000_000 } } : { status: 404, body: { errcode: 'M_NOT_FOUND', error: 'User not found' } };
    }
    const devices = /^\/_synapse\/admin\/v2\/users\/([^/]+)\/(devices|delete_devices)$/.exec(path);
    if (devices) {
      const found = this.users.get(decodeURIComponent(devices[1]!));
      if (!found) return { status: 404, body: { errcode: 'M_NOT_FOUND', error: 'User not found' } };
      if (devices[2] === 'devices') return { status: 200, body: { devices: found.devices.map((id) => ({ device_id: id })), total: found.devices.length } };
      const gone = (JSON.parse(body) as { devices: string[] }).devices;
      found.devices = found.devices.filter((id) => !gone.includes(id));
      return { status: 200, body: {} };
    }
    if (/^\/_synapse\/admin\/v1\/users\/[^/]+\/joined_rooms$/.test(path)) return { status: 200, body: { joined_rooms: [], total: 0 } };
    if (/^\/_synapse\/admin\/v1\/reset_password\//.test(path)) return { status: 403, body: { errcode: 'M_FORBIDDEN', error: 'Password change disabled' } };
    return undefined;
  }
}

/** A Target reaching the stand-ins: Synapse, the auth admin API, secrets in memory. Nothing else runs. */
export class FakeTarget implements Target {
  readonly kind = 'kubernetes' as const;
  readonly description = 'the fake stack';
  readonly files = { coturnConfig: '/coturn.conf' };
  readonly secrets = new Map<string, string>();
  constructor(
    readonly stack: Stack,
    private readonly synapseUrl: string,
    private readonly authUrl: string,
  ) {}
  withSynapse<T>(use: (baseUrl: string) => Promise<T>): Promise<T> {
    return use(this.synapseUrl);
  }
  withAuth<T>(use: (adminBaseUrl: string) => Promise<T>): Promise<T> {
    return use(this.authUrl);
  }
  async readSecret(ref: SecretKeyRef) {
    return this.secrets.get(`${ref.name}/${ref.key}`);
  }
  async writeSecret(ref: SecretKeyRef, value: string) {
    this.secrets.set(`${ref.name}/${ref.key}`, value);
  }
  setSecret(ref: SecretKeyRef, value: string): void {
    this.secrets.set(`${ref.name}/${ref.key}`, value);
  }
  async listSecrets() {
    return [];
  }
  exec(): never {
    throw new Error('the fake target runs no commands');
  }
  spawn(): never {
    throw new Error('the fake target runs no commands');
  }
  postgresqlTool(): never {
    throw new Error('the fake target has no PostgreSQL');
  }
  async isRunning() {
    return true;
  }
  async stop() {}
  async start() {}
  async applySecrets() {}
}
