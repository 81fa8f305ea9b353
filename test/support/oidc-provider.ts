/**
 * A real OpenID Provider for tests (the certified `oidc-provider` library) on 127.0.0.1, and a small
 * "browser" (HTTP with a cookie jar, redirects followed by hand) that walks a Synapse SSO login through it:
 * Synapse's SSO redirect, the provider's login and consent forms, Synapse's callback, then m.login.token.
 *
 *   const idp = await startOidcProvider({ clients: [...], accounts: { alice: { name: 'Alice', ... } } });
 *   after(() => idp.close());
 *
 * The provider's development interactions are used for login and consent: any password is accepted for a
 * known account (the IdP's own authentication is not what these tests are about).
 */
import { createServer, type Server } from 'node:http';
import { randomBytes } from 'node:crypto';
import Provider from 'oidc-provider';

export interface OidcTestClient {
  client_id: string;
  client_secret: string;
  redirect_uris: string[];
}

export interface OidcTestAccount {
  preferred_username: string;
  name: string;
  email: string;
}

export interface OidcProviderHandle {
  /** The issuer exactly as the provider states it in its discovery document (no trailing slash). */
  issuer: string;
  port: number;
  close(): Promise<void>;
}

export async function startOidcProvider(options: { clients: OidcTestClient[]; accounts: Record<string, OidcTestAccount>; port?: number }): Promise<OidcProviderHandle> {
  const server: Server = createServer();
  // Synapse pools its connections to the IdP for up to 2 minutes and does not retry a POST (the token
  // request) on a pooled connection the server has just closed: with Node's 5 s keep-alive default that
  // race showed up as a 504 on a later login. Real IdPs behind a proxy keep connections longer too.
  server.keepAliveTimeout = 180_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('the OIDC provider has no TCP address');
  const issuer = `http://127.0.0.1:${address.port}`;
  const provider = new Provider(issuer, {
    clients: options.clients.map((client) => ({ ...client, grant_types: ['authorization_code'], response_types: ['code'], token_endpoint_auth_method: 'client_secret_basic' })),
    async findAccount(_context: unknown, accountId: string) {
      const account = options.accounts[accountId];
      if (!account) return undefined;
      return { accountId, claims: async () => ({ sub: accountId, ...account, email_verified: true }) };
    },
    claims: { openid: ['sub'], profile: ['name', 'preferred_username'], email: ['email', 'email_verified'] },
    // Claims in the ID token too, so a provider read with user_profile_method auto sees them there.
    conformIdTokenClaims: false,
    cookies: { keys: [randomBytes(32).toString('hex')] },
    features: { devInteractions: { enabled: true } },
  });
  server.on('request', provider.callback());
  return {
    issuer,
    port: address.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

// ---------------------------------------------------------------------------------------------------
// A browser's cookie handling, enough for Synapse's oidc_session cookie and the provider's interaction cookies.

interface StoredCookie {
  host: string;
  path: string;
  name: string;
  value: string;
}

export class CookieJar {
  private cookies: StoredCookie[] = [];

  store(url: URL, setCookieHeaders: string[]): void {
    for (const header of setCookieHeaders) {
      const [pair, ...attributes] = header.split(';').map((part) => part.trim());
      const separator = pair!.indexOf('=');
      const name = pair!.slice(0, separator);
      const value = pair!.slice(separator + 1);
      const pathAttribute = attributes.find((attribute) => attribute.toLowerCase().startsWith('path='));
      const path = pathAttribute ? pathAttribute.slice(5) : '/';
      const expired = attributes.some((attribute) => /^max-age=0$/i.test(attribute) || (/^expires=/i.test(attribute) && Date.parse(attribute.slice(8)) < Date.now()));
      this.cookies = this.cookies.filter((cookie) => !(cookie.host === url.host && cookie.path === path && cookie.name === name));
      if (!expired && value !== '') this.cookies.push({ host: url.host, path, name, value });
    }
  }

  header(url: URL): string | undefined {
    const matching = this.cookies.filter((cookie) => cookie.host === url.host && url.pathname.startsWith(cookie.path));
    return matching.length ? matching.map((cookie) => `${cookie.name}=${cookie.value}`).join('; ') : undefined;
  }
}

export interface BrowserResponse {
  url: URL;
  status: number;
  location?: URL;
  body: string;
  headers: Headers;
}

/** One request, redirects NOT followed, cookies sent and stored; bounded in time. */
export async function browse(
  jar: CookieJar,
  url: URL,
  init: { method?: string; form?: Record<string, string>; timeoutMs?: number; headers?: Record<string, string> } = {},
): Promise<BrowserResponse> {
  const cookie = jar.header(url);
  const response = await fetch(url, {
    method: init.method ?? (init.form ? 'POST' : 'GET'),
    redirect: 'manual',
    headers: {
      accept: 'text/html,application/json',
      ...init.headers,
      ...(cookie ? { cookie } : {}),
      ...(init.form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
    },
    ...(init.form ? { body: new URLSearchParams(init.form).toString() } : {}),
    signal: AbortSignal.timeout(init.timeoutMs ?? 30_000),
  });
  jar.store(url, response.headers.getSetCookie());
  const location = response.headers.get('location');
  return { url, status: response.status, ...(location ? { location: new URL(location, url) } : {}), body: await response.text(), headers: response.headers };
}

/** Follows redirects until a page that is not one (or a URL `stop` accepts, returned unvisited), at most `maxHops`. */
export async function followRedirects(
  jar: CookieJar,
  start: BrowserResponse,
  stop: (url: URL) => boolean = () => false,
  maxHops = 15,
  headers: Record<string, string> = {},
): Promise<BrowserResponse> {
  let response = start;
  for (let hop = 0; hop < maxHops; hop++) {
    if (!response.location || response.status < 300 || response.status >= 400 || stop(response.location)) return response;
    response = await browse(jar, response.location, { headers });
  }
  throw new Error(`more than ${maxHops} redirects from ${start.url.href}, last at ${response.url.href}`);
}

/** The action of the page's (only) form, resolved against the page. */
export function formAction(page: BrowserResponse): URL {
  const match = /<form[^>]*action="([^"]+)"/i.exec(page.body);
  if (!match) throw new Error(`no form on ${page.url.href} (HTTP ${page.status}): ${page.body.slice(0, 300)}`);
  return new URL(match[1]!.replace(/&amp;/g, '&'), page.url);
}

export interface SsoOutcome {
  /** The loginToken Synapse appended to redirectUrl, when the login succeeded. */
  loginToken?: string;
  /** The last response: Synapse's error page when the login failed. */
  last: BrowserResponse;
}

/**
 * Walks a login: Synapse's SSO redirect for `idpId`, the provider's login form (as `account`) and consent
 * form, Synapse's callback; stops at the redirect back to `redirectUrl`, whose loginToken it returns.
 */
export async function ssoLogin(clientBaseUrl: string, idpId: string, redirectUrl: string, account: string): Promise<SsoOutcome> {
  const jar = new CookieJar();
  const start = new URL(`_matrix/client/v3/login/sso/redirect/oidc-${encodeURIComponent(idpId)}`, clientBaseUrl);
  start.searchParams.set('redirectUrl', redirectUrl);
  const isBackAtClient = (url: URL) => url.href.startsWith(redirectUrl);
  let page = await followRedirects(jar, await browse(jar, start), isBackAtClient);
  // Login, then consent: each form posts and redirects to the next interaction or back to Synapse.
  for (let step = 0; step < 4 && !page.location && page.status === 200 && /<form/i.test(page.body); step++) {
    const action = formAction(page);
    if (!action.pathname.startsWith('/interaction/')) break;
    const prompt = /name="prompt" value="([^"]+)"/.exec(page.body)?.[1] ?? 'login';
    const form: Record<string, string> = prompt === 'login' ? { prompt, login: account, password: 'any' } : { prompt };
    page = await followRedirects(jar, await browse(jar, action, { method: 'POST', form }), isBackAtClient);
  }
  if (page.location && isBackAtClient(page.location)) {
    const loginToken = page.location.searchParams.get('loginToken') ?? undefined;
    return { ...(loginToken ? { loginToken } : {}), last: page };
  }
  return { last: page };
}
