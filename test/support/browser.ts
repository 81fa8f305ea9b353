/**
 * A real browser for tests: Debian's Chromium (/usr/bin/chromium) driven through playwright-core, which
 * brings no browser of its own here (never `npx playwright install`). Headless, no network beyond what the
 * test serves on loopback (no component updates, sync, QUIC or background requests), a fresh temporary
 * profile per launch, removed on close.
 *
 * Also the helpers a two-factor test needs from the browser side:
 * - a WebAuthn virtual authenticator through the DevTools protocol (Chromium's own, the same code path a
 *   security key or platform passkey takes, minus the hardware), with export/import of its credentials so a
 *   "security key" can travel to a fresh browser context;
 * - the enrolment QR code read back from a screenshot of the page (pngjs + jsqr), its otpauth:// URI parsed
 *   and codes computed with the `otpauth` library, at any step.
 *
 * WebAuthn refuses IP-address origins ("This is an invalid domain"): pages that use it must be browsed
 * through `localhost`, never `127.0.0.1`.
 */
import { existsSync } from 'node:fs';
import { request as httpRequest, createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import { chromium, type BrowserContext, type CDPSession, type Locator, type Page } from 'playwright-core';
import jsQRModule from 'jsqr';
import { PNG } from 'pngjs';
import * as OTPAuth from 'otpauth';

// jsqr is a CommonJS bundle typed as an ES module with a default export: under NodeNext TypeScript sees the
// default import as the module object, while at run time it is the function, which also carries `.default`.
const jsQR = (jsQRModule as unknown as { default: typeof import('jsqr').default }).default;

export const chromiumPath = '/usr/bin/chromium';

/** Flags for a quiet, self-contained headless Chromium (root in CI: no sandbox). */
export const chromiumArgs = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
] as const;

/**
 * Why browser tests cannot run here, or undefined when they can. scripts/test.sh installs Debian's
 * chromium when it is missing and the suite runs as root, so only a non-root run without it skips.
 */
export function browserSkipReason(): string | undefined {
  if (existsSync(chromiumPath)) return undefined;
  if (process.getuid?.() === 0) return undefined; // let the launch fail loudly: the suite should have installed it
  return `${chromiumPath} is missing and this is not root: install Debian's chromium (apt-get install chromium) to run the browser tests`;
}

export interface BrowserOptions {
  /** Default 'light'. */
  colorScheme?: 'light' | 'dark';
  /** CSS pixels; default 800 x 900 (screenshots stay small). */
  viewport?: { width: number; height: number };
  /**
   * Connect from this loopback address (127.0.0.2, 127.0.0.3, ...) instead of 127.0.0.1, through a small
   * forwarding proxy: "a user at another address", for servers that throttle per client address.
   */
  sourceAddress?: string;
}

export interface TestBrowser {
  /** A fresh, isolated context (its own cookies): "another browser" for the same Chromium. */
  newContext(options?: BrowserOptions): Promise<BrowserContext>;
  close(): Promise<void>;
}

/**
 * Starts Chromium. playwright-core gives it a fresh temporary profile directory (it refuses
 * `--user-data-dir` for a non-persistent launch) and removes it when the browser closes.
 */
export async function launchBrowser(): Promise<TestBrowser> {
  const launched = await chromium.launch({ executablePath: chromiumPath, headless: true, args: [...chromiumArgs], timeout: 60_000 });
  const proxies = new Map<string, Promise<SourceAddressProxy>>();
  const proxyFor = (sourceAddress: string) => {
    let proxy = proxies.get(sourceAddress);
    if (!proxy) proxies.set(sourceAddress, (proxy = startSourceAddressProxy(sourceAddress)));
    return proxy;
  };
  return {
    async newContext(options: BrowserOptions = {}) {
      const proxy = options.sourceAddress ? await proxyFor(options.sourceAddress) : undefined;
      const context = await launched.newContext({
        colorScheme: options.colorScheme ?? 'light',
        viewport: options.viewport ?? { width: 800, height: 900 },
        locale: 'en-GB',
        // `<-loopback>` removes Chromium's implicit bypass of loopback hosts: everything goes through the proxy.
        ...(proxy ? { proxy: { server: proxy.url, bypass: '<-loopback>' } } : {}),
      });
      // Every wait is bounded: a page that never answers fails the test instead of hanging the suite.
      context.setDefaultTimeout(30_000);
      context.setDefaultNavigationTimeout(60_000);
      return context;
    },
    async close() {
      try {
        await launched.close();
      } finally {
        for (const proxy of proxies.values()) await (await proxy).close();
      }
    },
  };
}

// ---- Another client address ----------------------------------------------------------------------------

export interface SourceAddressProxy {
  /** `http://127.0.0.1:<port>`: the proxy server for Chromium. */
  url: string;
  /** How many requests it forwarded (a test can check the browser really used it). */
  forwarded(): number;
  close(): Promise<void>;
}

/** Loopback host names a test may browse; the proxy connects to their IPv4 address (the stack binds 127.0.0.1). */
function loopbackTarget(hostname: string): string {
  if (hostname === 'localhost' || hostname.endsWith('.localhost')) return '127.0.0.1';
  if (/^127\.\d+\.\d+\.\d+$/.test(hostname)) return hostname;
  throw new Error(`the source-address proxy only forwards to loopback, not to ${hostname}`);
}

/**
 * A forwarding HTTP proxy on 127.0.0.1 whose outgoing connections are bound to `sourceAddress` (any address
 * of 127.0.0.0/8 works on Linux without configuration). Plain http requests (absolute-form) and CONNECT
 * tunnels, to loopback only.
 */
export async function startSourceAddressProxy(sourceAddress: string): Promise<SourceAddressProxy> {
  let forwarded = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((request: IncomingMessage, response: ServerResponse) => {
    let target: URL;
    let host: string;
    try {
      target = new URL(request.url ?? '');
      host = loopbackTarget(target.hostname);
    } catch (error) {
      response.writeHead(502, { 'content-type': 'text/plain' }).end(String(error));
      return;
    }
    forwarded += 1;
    const upstream = httpRequest(
      { host, port: Number(target.port || 80), localAddress: sourceAddress, method: request.method, path: `${target.pathname}${target.search}`, headers: request.headers, timeout: 60_000 },
      (answer) => {
        response.writeHead(answer.statusCode ?? 502, answer.rawHeaders);
        answer.pipe(response);
      },
    );
    upstream.on('timeout', () => upstream.destroy(new Error('upstream timeout')));
    upstream.on('error', (error) => {
      if (!response.headersSent) response.writeHead(502, { 'content-type': 'text/plain' });
      response.end(String(error));
    });
    request.pipe(upstream);
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('connect', (request: IncomingMessage, client: Socket, head: Buffer) => {
    const [hostname = '', port = '443'] = (request.url ?? '').split(':');
    let host: string;
    try {
      host = loopbackTarget(hostname);
    } catch {
      client.end('HTTP/1.1 502 Bad Gateway\r\n\r\n');
      return;
    }
    forwarded += 1;
    const upstream = connect({ host, port: Number(port), localAddress: sourceAddress }, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    forwarded: () => forwarded,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

// ---- WebAuthn virtual authenticator (DevTools protocol) -----------------------------------------------

/** A credential as the DevTools protocol exports it (WebAuthn.Credential). */
export interface VirtualCredential {
  credentialId: string;
  isResidentCredential: boolean;
  rpId?: string;
  privateKey: string;
  userHandle?: string;
  signCount: number;
}

export interface VirtualAuthenticator {
  readonly authenticatorId: string;
  /** Credentials the authenticator holds now (made by navigator.credentials.create). */
  credentials(): Promise<VirtualCredential[]>;
  /** Puts a credential (exported from another authenticator) into this one: the same key, another browser. */
  addCredential(credential: VirtualCredential): Promise<void>;
  remove(): Promise<void>;
}

export interface VirtualAuthenticatorOptions {
  /** 'usb' behaves like a roaming security key, 'internal' like a platform passkey. Default 'usb'. */
  transport?: 'usb' | 'internal';
}

/**
 * Adds a CTAP2 authenticator to the page's tab that answers every request at once, with user presence and
 * verification (as if the user touched the key and entered its PIN). It stays with the tab across navigations.
 */
export async function addVirtualAuthenticator(page: Page, options: VirtualAuthenticatorOptions = {}): Promise<VirtualAuthenticator> {
  const session: CDPSession = await page.context().newCDPSession(page);
  await session.send('WebAuthn.enable', { enableUI: false });
  const { authenticatorId } = await session.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: options.transport ?? 'usb',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  return {
    authenticatorId,
    async credentials() {
      const { credentials } = await session.send('WebAuthn.getCredentials', { authenticatorId });
      return credentials as VirtualCredential[];
    },
    async addCredential(credential) {
      await session.send('WebAuthn.addCredential', { authenticatorId, credential });
    },
    async remove() {
      await session.send('WebAuthn.removeVirtualAuthenticator', { authenticatorId });
      await session.detach();
    },
  };
}

// ---- TOTP from the enrolment QR code ------------------------------------------------------------------

/** Reads the QR code in a PNG (the whole image): its text, or an error naming what was seen. */
export function decodeQrPng(png: Buffer): string {
  const image = PNG.sync.read(png);
  const found = jsQR(new Uint8ClampedArray(image.data.buffer, image.data.byteOffset, image.data.byteLength), image.width, image.height);
  if (!found) throw new Error(`no QR code found in a ${image.width}x${image.height} screenshot`);
  return found.data;
}

/** Screenshots one element (the QR code, an <img> or <canvas> or inline <svg>) and decodes it. */
export async function readQrCode(element: Locator): Promise<string> {
  // A quiet zone helps the decoder when the page draws the code flush with its box.
  const png = await element.screenshot({ timeout: 30_000, animations: 'disabled', style: '*{outline:none !important}' });
  return decodeQrPng(png);
}

export interface TotpEnrolment {
  uri: string;
  totp: OTPAuth.TOTP;
  secret: string;
  digits: number;
  period: number;
  algorithm: string;
  issuer: string;
  label: string;
}

/** Parses an otpauth://totp/ URI with the `otpauth` library (an HOTP or malformed URI is an error). */
export function parseTotpUri(uri: string): TotpEnrolment {
  const parsed = OTPAuth.URI.parse(uri);
  if (!(parsed instanceof OTPAuth.TOTP)) throw new Error(`not a TOTP enrolment URI: ${uri.split('?')[0]}`);
  return {
    uri,
    totp: parsed,
    secret: parsed.secret.base32,
    digits: parsed.digits,
    period: parsed.period,
    algorithm: parsed.algorithm,
    issuer: parsed.issuer,
    label: parsed.label,
  };
}

/** The TOTP step (RFC 6238 counter) at a time. */
export function totpStep(enrolment: TotpEnrolment, atMs: number = Date.now()): number {
  return Math.floor(atMs / 1000 / enrolment.period);
}

/** The code of one TOTP step. */
export function totpCodeAtStep(enrolment: TotpEnrolment, step: number): string {
  return enrolment.totp.generate({ timestamp: step * enrolment.period * 1000 });
}

/** The code for the step `offset` steps from the one at `atMs` (0: current, -2: previous-but-one). */
export function totpCode(enrolment: TotpEnrolment, offset = 0, atMs: number = Date.now()): string {
  return totpCodeAtStep(enrolment, totpStep(enrolment, atMs) + offset);
}
