// Small pure HTTP helpers of the auth service: cookies, request bodies, the client address behind the
// router, CSRF tokens, security headers. No framework: node:http and these.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { BlockList, isIP } from 'node:net';

export function parseCookies(header: string | undefined): Map<string, string> {
  const cookies = new Map<string, string>();
  for (const part of (header ?? '').split(';')) {
    const separator = part.indexOf('=');
    if (separator <= 0) continue;
    const name = part.slice(0, separator).trim();
    if (!cookies.has(name)) cookies.set(name, part.slice(separator + 1).trim());
  }
  return cookies;
}

export interface CookieOptions {
  readonly path: string;
  readonly secure: boolean;
  /** Seconds; 0 deletes the cookie; undefined = a session cookie. */
  readonly maxAge?: number;
}

export function serialiseCookie(name: string, value: string, options: CookieOptions): string {
  return [`${name}=${value}`, `Path=${options.path}`, 'HttpOnly', 'SameSite=Lax', ...(options.secure ? ['Secure'] : []), ...(options.maxAge !== undefined ? [`Max-Age=${options.maxAge}`] : [])].join('; ');
}

/** Normalizes an address for throttling and logs: IPv4-mapped IPv6 becomes plain IPv4. */
export function normalizeAddress(address: string): string {
  const trimmed = address.trim();
  return trimmed.startsWith('::ffff:') && isIP(trimmed.slice(7)) === 4 ? trimmed.slice(7) : trimmed;
}

/**
 * The client's address: the peer's, unless the peer is a trusted proxy (the router); then the right-most
 * X-Forwarded-For entry that is not itself a trusted proxy (entries further left are client-controlled).
 */
export function clientAddress(peer: string | undefined, forwardedFor: string | undefined, trustedProxies: readonly string[]): string {
  const trusted = trustedAddresses(trustedProxies);
  const direct = normalizeAddress(peer ?? '');
  if (!trusted.has(direct) || !forwardedFor) return direct || 'unknown';
  const chain = forwardedFor.split(',').map(normalizeAddress).filter((entry) => isIP(entry) !== 0);
  for (let index = chain.length - 1; index >= 0; index--) {
    if (!trusted.has(chain[index]!)) return chain[index]!;
  }
  return chain[0] ?? direct;
}

/**
 * Trusted proxies as addresses or CIDR ranges (on Kubernetes the router's pod address is not known in
 * advance: the stack trusts the pod network's ranges, see auth.trustedProxies).
 */
function trustedAddresses(entries: readonly string[]): { has: (address: string) => boolean } {
  let trusted = trustedByList.get(entries);
  if (!trusted) trustedByList.set(entries, (trusted = buildTrustedAddresses(entries)));
  return trusted;
}

/** Built once per configured list (the service's config is fixed), not once per request. */
const trustedByList = new WeakMap<readonly string[], { has: (address: string) => boolean }>();

function buildTrustedAddresses(entries: readonly string[]): { has: (address: string) => boolean } {
  const list = new BlockList();
  for (const entry of entries.map(normalizeAddress)) {
    const [address = '', prefix] = entry.split('/');
    const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
    if (isIP(address) === 0) continue;
    if (prefix === undefined) list.addAddress(address, family);
    else list.addSubnet(address, Number(prefix), family);
  }
  return { has: (address) => isIP(address) !== 0 && list.check(address, isIP(address) === 6 ? 'ipv6' : 'ipv4') };
}

export function newToken(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}

/** Constant-time comparison of a submitted CSRF token (or bearer token) with the expected one. */
export function tokensMatch(expected: string, submitted: unknown): boolean {
  if (typeof submitted !== 'string' || expected === '') return false;
  const left = Buffer.from(expected, 'utf8');
  const right = Buffer.from(submitted, 'utf8');
  return left.length === right.length && timingSafeEqual(left, right);
}

/** `Authorization: Bearer <token>` checked in constant time. */
export function bearerMatches(header: string | undefined, expected: string): boolean {
  const match = /^Bearer (.+)$/.exec(header ?? '');
  return tokensMatch(expected, match?.[1]);
}

/**
 * Headers of every page: no framing, no inline scripts, no referrer, never cached. Forms may post (and
 * their redirects lead) only to this origin and `formOrigins` (the client's redirect URIs: a sign-in ends
 * with a redirect chain started by a form post, which Chromium checks against form-action).
 */
export function pageSecurityHeaders(formOrigins: readonly string[] = []): Record<string, string> {
  const formAction = ["'self'", ...new Set(formOrigins)].join(' ');
  return {
    'content-security-policy': `default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action ${formAction}; frame-ancestors 'none'; base-uri 'none'`,
    'x-frame-options': 'DENY',
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'cache-control': 'no-store',
    'cross-origin-opener-policy': 'same-origin',
  };
}

/** Sets the page headers on a response before it is written (a later writeHead may override single ones). */
export function applyPageSecurityHeaders(res: ServerResponse, formOrigins: readonly string[]): void {
  for (const [name, value] of Object.entries(pageSecurityHeaders(formOrigins))) res.setHeader(name, value);
}

const maxBodyBytes = 64 * 1024;

export async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > maxBodyBytes) throw new HttpError(413, 'request body too large');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export async function readForm(req: IncomingMessage): Promise<Record<string, string>> {
  const form: Record<string, string> = {};
  for (const [key, value] of new URLSearchParams(await readBody(req))) if (!(key in form)) form[key] = value;
  return form;
}

export async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const text = await readBody(req);
  if (text.trim() === '') return {};
  try {
    const value = JSON.parse(text) as unknown;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('not an object');
    return value as Record<string, unknown>;
  } catch {
    throw new HttpError(400, 'the body must be a JSON object');
  }
}

export class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
  res.end(status === 204 ? undefined : JSON.stringify(body));
}

/** An HTML page; its security headers come from applyPageSecurityHeaders (set for every page route). */
export function sendHtml(res: ServerResponse, status: number, html: string): void {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(html);
}

export function redirect(res: ServerResponse, location: string, extraHeaders: Record<string, string | string[]> = {}): void {
  res.writeHead(303, { location, 'cache-control': 'no-store', ...extraHeaders });
  res.end();
}
