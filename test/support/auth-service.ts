/**
 * The real auth service for tests: started from bin/mxstack-auth.js as a child process with a generated
 * config.json and freshly generated secret files, on 127.0.0.1, against a PostgreSQL from auth-postgres.ts.
 * `stop()` sends SIGTERM and waits for the exit code. Also a small browser (fetch + cookie jar + an
 * X-Forwarded-For address) and page scraping helpers for the tests.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { authSecretFiles, type AuthPolicy, type AuthServiceConfig } from '../../src/components/auth/service-config.js';
import { formatSealingKeyring, generateRecoveryCodeKey, generateSealingKey } from '../../src/components/auth/keys.js';
import { browse, CookieJar, followRedirects, type BrowserResponse } from './oidc-provider.js';
import type { AuthPostgres } from './auth-postgres.js';
import { freeLoopbackPort } from './component-stacks.js';

export interface AuthServiceHandle {
  readonly config: AuthServiceConfig;
  readonly issuer: string;
  readonly adminUrl: string;
  readonly clientSecret: string;
  readonly adminToken: string;
  /** Where the page listener is (the issuer may point at a proxy in front of it). */
  readonly listenUrl: string;
  readonly secretsDir: string;
  /** Everything the service printed on stdout and stderr so far. */
  output(): string;
  stop(): Promise<number | null>;
}

export interface AuthServiceOptions {
  readonly postgres: AuthPostgres;
  readonly policy?: Partial<AuthPolicy>;
  readonly serverName?: string;
  readonly redirectUri?: string;
  /** The service's own database (default synapse_auth); created by the service when missing. */
  readonly database?: string;
  /** The public issuer, when a proxy in front of the service has another address (default: the service's own). */
  readonly issuer?: string;
  /** Another replica of this service: the same config (but its own ports and `policy` merged over its policy) and the same secret files. */
  readonly replicaOf?: AuthServiceHandle;
}

export function testSigningJwks(): { keys: Record<string, unknown>[] } {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { keys: [{ ...privateKey.export({ format: 'jwk' }), kid: `test-${randomBytes(4).toString('hex')}`, alg: 'RS256', use: 'sig' }] };
}

export async function startAuthService(options: AuthServiceOptions): Promise<AuthServiceHandle> {
  const [port, adminPort] = [await freeLoopbackPort(), await freeLoopbackPort()];
  const dir = mkdtempSync(join(tmpdir(), 'mxstack-auth-service-'));
  const replicaOf = options.replicaOf;
  const secretsDir = replicaOf?.secretsDir ?? join(dir, 'secrets');
  const clientSecret = replicaOf?.clientSecret ?? randomBytes(24).toString('base64url');
  const adminToken = replicaOf?.adminToken ?? randomBytes(24).toString('base64url');
  if (!replicaOf) {
    mkdirSync(secretsDir, { mode: 0o700 });
    const secrets: Record<keyof typeof authSecretFiles, string> = {
      databasePassword: 'unused-with-trust-authentication',
      clientSecret,
      sealingKeyring: formatSealingKeyring([generateSealingKey('k1')]),
      recoveryCodeKey: generateRecoveryCodeKey(),
      cookieKeys: `${randomBytes(32).toString('hex')},${randomBytes(32).toString('hex')}`,
      signingJwks: JSON.stringify(testSigningJwks()),
      adminToken,
    };
    for (const [key, file] of Object.entries(authSecretFiles)) {
      writeFileSync(join(secretsDir, file), secrets[key as keyof typeof authSecretFiles] + '\n');
      chmodSync(join(secretsDir, file), 0o600);
    }
  }
  const issuer = options.issuer ?? replicaOf?.issuer ?? `http://127.0.0.1:${port}/auth`;
  const serverName = options.serverName ?? 'example.test';
  const config: AuthServiceConfig = replicaOf
    ? { ...replicaOf.config, listen: { host: '127.0.0.1', port }, adminListen: { host: '127.0.0.1', port: adminPort }, policy: { ...replicaOf.config.policy, ...options.policy } }
    : {
        issuer,
        pathPrefix: '/auth',
        listen: { host: '127.0.0.1', port },
        adminListen: { host: '127.0.0.1', port: adminPort },
        database: { host: options.postgres.socketDir, port: 5432, user: options.postgres.user, database: options.database ?? 'synapse_auth', synapseDatabase: 'synapse', sslmode: 'disable' },
        serverName,
        client: { clientId: 'synapse', redirectUris: [options.redirectUri ?? 'http://127.0.0.1:9/_synapse/client/oidc/callback'] },
        elementUrl: 'http://127.0.0.1:9/element/',
        brand: 'Element Test',
        policy: {
          totp: { enabled: true, issuer: 'Test Matrix', digits: 6, period: 30, algorithm: 'SHA1' },
          webauthn: { enabled: true, rpId: 'localhost', rpName: 'Test Matrix', origin: `http://localhost:${new URL(issuer).port}` },
          required: true,
          requiredForAdmins: true,
          rememberSignInMinutes: 0,
          lockout: { maxFailures: 3, durationSeconds: 600, failureWindowSeconds: 600 },
          ...options.policy,
        },
        trustedProxies: ['127.0.0.1'],
        secureCookies: false,
        secretsDir,
      };
  const configPath = join(dir, 'config.json');
  writeFileSync(configPath, JSON.stringify(config, null, 2));
  const child: ChildProcess = spawn(process.execPath, [new URL('../../bin/mxstack-auth.js', import.meta.url).pathname, '--config', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const stop = async (): Promise<number | null> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    const code = await exited;
    clearTimeout(timer);
    rmSync(dir, { recursive: true, force: true }); // a replica's dir holds only its config: the secrets stay with the first
    return code;
  };
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`the auth service exited with ${child.exitCode}: ${output}`);
    }
    const healthy = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(2000) }).then((response) => response.ok, () => false);
    if (healthy) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`the auth service did not become healthy within 60 s: ${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return { config, issuer, adminUrl: `http://127.0.0.1:${adminPort}`, listenUrl: `http://127.0.0.1:${port}`, secretsDir, clientSecret, adminToken, output: () => output, stop };
}

/**
 * A load balancer for replicas: an HTTP proxy on 127.0.0.1 that sends each request to the next target in
 * turn (round robin), so consecutive requests of one sign-in land on different replicas.
 */
export async function startRoundRobinProxy(port: number, targets: () => readonly string[]): Promise<{ url: string; close(): Promise<void> }> {
  let next = 0;
  const server = createHttpServer((req, res) => {
    const list = targets();
    const target = new URL(list[next++ % list.length]!);
    const upstream = httpRequest({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => {
      res.writeHead(502);
      res.end();
    });
    req.pipe(upstream);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A page as the fetch-driven browser of test/support/oidc-provider.ts returns it. */
export type Page = BrowserResponse;

/** A browser: cookie jar, redirects not followed, and the client address the (trusted) router reports. */
export class TestBrowser {
  readonly jar = new CookieJar();
  constructor(readonly forwardedFor: string) {}

  request(url: URL | string, init: { method?: string; form?: Record<string, string> } = {}): Promise<Page> {
    return browse(this.jar, new URL(url), { ...init, headers: { accept: 'text/html', 'x-forwarded-for': this.forwardedFor } });
  }

  /** Follows redirects (at most 10) until a page, or a location `stop` accepts (returned unvisited). */
  follow(page: Page, stop: (url: URL) => boolean = () => false): Promise<Page> {
    return followRedirects(this.jar, page, stop, 10, { 'x-forwarded-for': this.forwardedFor });
  }

  /** Submits the form whose id is `formId` on `page` with `fields` (+ its CSRF token), following redirects. */
  async submit(page: Page, formId: string, fields: Record<string, string>, stop?: (url: URL) => boolean): Promise<Page> {
    const form = formOn(page, formId);
    return this.follow(await this.request(form.action, { form: { csrf: form.csrf, ...fields } }), stop);
  }

  /** Posts to a form action found by its path suffix (forms without an id: buttons like "I saved them"). */
  async submitAction(page: Page, actionSuffix: string, fields: Record<string, string> = {}, stop?: (url: URL) => boolean): Promise<Page> {
    const match = new RegExp(`<form[^>]*action="([^"]*${actionSuffix.replace(/[/]/g, '\\/')})"`).exec(page.body);
    if (!match) throw new Error(`no form posting to *${actionSuffix} on ${page.url.href}: ${page.body.slice(0, 400)}`);
    return this.follow(await this.request(new URL(unescapeHtml(match[1]!), page.url), { form: { csrf: csrfOn(page), ...fields } }), stop);
  }
}

export function unescapeHtml(text: string): string {
  return text.replace(/&#(\d+);/g, (_, code: string) => String.fromCharCode(Number(code))).replace(/&amp;/g, '&');
}

export function csrfOn(page: Page): string {
  const match = /name="csrf" value="([^"]+)"/.exec(page.body);
  if (!match) throw new Error(`no CSRF token on ${page.url.href} (HTTP ${page.status}): ${page.body.slice(0, 400)}`);
  return unescapeHtml(match[1]!);
}

export function formOn(page: Page, id: string): { action: URL; csrf: string } {
  const match = new RegExp(`<form id="${id}"[^>]*action="([^"]+)"`).exec(page.body);
  if (!match) throw new Error(`no form #${id} on ${page.url.href} (HTTP ${page.status}): ${page.body.slice(0, 600)}`);
  return { action: new URL(unescapeHtml(match[1]!), page.url), csrf: csrfOn(page) };
}

export function textOf(page: Page, id: string): string | undefined {
  const match = new RegExp(`id="${id}"[^>]*>([^<]*)<`).exec(page.body);
  return match ? unescapeHtml(match[1]!).trim() : undefined;
}

export function recoveryCodesOn(page: Page): string[] {
  return [...page.body.matchAll(/<li><code>([^<]+)<\/code><\/li>/g)].map((match) => unescapeHtml(match[1]!));
}
