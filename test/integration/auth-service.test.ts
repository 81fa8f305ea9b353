// The auth service as it runs in a stack: bin/mxstack-auth.js started as a child process with a generated
// config and secret files, against a throwaway real PostgreSQL (test/support/auth-postgres.ts). The OpenID
// client side (what Synapse does) is driven here with fetch: authorization code + PKCE S256, the token
// endpoint with client_secret_basic, the id_token verified against the service's /jwks with `jose`, userinfo.
// Synapse itself is not started: its `users` table is a small stand-in with the columns the service reads
// (name, password_hash, admin, deactivated; same types as Synapse's) in a database named `synapse`.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import bcrypt from 'bcryptjs';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import * as OTPAuth from 'otpauth';
import { authAdminRoutes, type AdminAccountInfo } from '../../src/components/auth/service-config.js';
import { authPostgresSkipReason, startAuthPostgres, type AuthPostgres } from '../support/auth-postgres.js';
import { join } from 'node:path';
import { addVirtualAuthenticator, browserSkipReason, type VirtualCredential, launchBrowser, parseTotpUri, readQrCode, totpCode } from '../support/browser.js';
import { PostgresAdapter, pruneExpiredPayloads } from '../../src/components/auth/service/adapter.js';
import { csrfOn, formOn, recoveryCodesOn, startAuthService, startRoundRobinProxy, TestBrowser, textOf, type AuthServiceHandle, type Page } from '../support/auth-service.js';
import { freeLoopbackPort } from '../support/component-stacks.js';

const skip = authPostgresSkipReason();
const redirectUri = 'http://127.0.0.1:9/_synapse/client/oidc/callback';

let postgres: AuthPostgres | undefined;
let service: AuthServiceHandle | undefined;
let addressCounter = 10;

/** Each browser comes from its own address (X-Forwarded-For through the trusted "router" 127.0.0.1), so
 * the per-address throttle of one scenario does not affect another. */
function newBrowser(): TestBrowser {
  return new TestBrowser(`192.0.2.${addressCounter++}`);
}

before(async () => {
  if (skip) return;
  postgres = await startAuthPostgres();
  await postgres.createDatabase('synapse');
  const synapse = postgres.poolFor('synapse');
  await synapse.query(`CREATE TABLE users (name text NOT NULL UNIQUE, password_hash text, creation_ts bigint, admin smallint DEFAULT 0 NOT NULL, deactivated smallint DEFAULT 0 NOT NULL)`);
  await synapse.query('INSERT INTO users (name, password_hash, admin, deactivated) VALUES ($1, $2, 0, 0), ($3, $4, 1, 1)', [
    '@bob:example.test',
    bcrypt.hashSync('bob-synapse-password', 10),
    '@dave:example.test',
    bcrypt.hashSync('dave-password', 10),
  ]);
  service = await startAuthService({ postgres, redirectUri });
});

after(async () => {
  if (process.env.AUTH_SERVICE_LOG) (await import('node:fs')).writeFileSync(process.env.AUTH_SERVICE_LOG, service?.output() ?? '');
  const code = await service?.stop();
  if (service) {
    assert.equal(code, 0, `the service exits 0 on SIGTERM; output:\n${service.output()}`);
    for (const secret of [service.clientSecret, service.adminToken, 'alice-password-1', 'alice-password-2', 'bob-synapse-password', ...(aliceSecret ? [aliceSecret] : []), ...aliceRecoveryCodes]) {
      assert.ok(!service.output().includes(secret), 'the log never contains a secret or password');
    }
  }
  await stopRememberServices();
  await postgres?.stop();
});

function svc(): AuthServiceHandle {
  return service!;
}

async function admin(path: string, init: { method?: string; body?: unknown; token?: string | null } = {}): Promise<{ status: number; json: unknown }> {
  const token = init.token === undefined ? svc().adminToken : init.token;
  const response = await fetch(svc().adminUrl + path, {
    method: init.method ?? 'GET',
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await response.text();
  return { status: response.status, json: text ? (JSON.parse(text) as unknown) : undefined };
}

interface Authorization {
  readonly page: Page;
  readonly verifier: string;
  readonly state: string;
  readonly nonce: string;
}

/** What Synapse does: redirect the browser to /authorize with PKCE S256; returns the sign-in page. */
async function startAuthorization(browser: TestBrowser): Promise<Authorization> {
  const authorization = await beginAuthorization(browser);
  const { page } = authorization;
  assert.equal(page.status, 200, page.body.slice(0, 500));
  assert.match(page.url.pathname, /^\/auth\/interaction\/[A-Za-z0-9_-]+$/);
  return authorization;
}

/**
 * The same request, for a browser that may hold an earlier sign-in: `page` is the first page shown, or the
 * redirect to the client when the provider answered without asking anything.
 */
async function beginAuthorization(browser: TestBrowser): Promise<Authorization> {
  const verifier = randomBytes(32).toString('base64url');
  const state = randomBytes(8).toString('hex');
  const nonce = randomBytes(8).toString('hex');
  const url = new URL(`${svc().issuer}/authorize`);
  url.search = new URLSearchParams({
    client_id: 'synapse',
    response_type: 'code',
    scope: 'openid profile',
    redirect_uri: redirectUri,
    state,
    nonce,
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
  }).toString();
  const page = await browser.follow(await browser.request(url), atCallback);
  return { page, verifier, state, nonce };
}

const atCallback = (url: URL): boolean => url.href.startsWith(redirectUri);

/** The code Synapse's callback would receive (the page must be the redirect to the callback). */
function callbackCode(page: Page, authorization: Authorization): string {
  assert.ok(page.location && atCallback(page.location), `expected the redirect to the client, got HTTP ${page.status} ${page.url.href}: ${page.body.slice(0, 600)}`);
  assert.equal(page.location.searchParams.get('state'), authorization.state);
  return page.location.searchParams.get('code')!;
}

async function exchangeCode(code: string, verifier: string): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await fetch(`${svc().issuer}/token`, {
    method: 'POST',
    headers: { authorization: `Basic ${Buffer.from(`synapse:${svc().clientSecret}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: verifier }).toString(),
    signal: AbortSignal.timeout(30_000),
  });
  return { status: response.status, json: (await response.json()) as Record<string, unknown> };
}

function totpFor(secret: string): OTPAuth.TOTP {
  return new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(secret), digits: 6, period: 30, algorithm: 'SHA1' });
}

/** A code for the NEXT step: accepted (±1 step) and always later than a code of the current step. */
function nextStepCode(secret: string): string {
  aliceLastCodeAt = Date.now() + 30_000;
  return totpFor(secret).generate({ timestamp: aliceLastCodeAt });
}

async function signInWithPassword(browser: TestBrowser, authorization: Authorization, username: string, password: string): Promise<Page> {
  return browser.submit(authorization.page, 'sign-in-form', { username, password }, atCallback);
}

/** Enrols TOTP from the enrolment page; returns the secret, the recovery codes and the page after them. */
async function enrolTotp(browser: TestBrowser, enrolPage: Page): Promise<{ secret: string; recoveryCodes: string[]; after: Page }> {
  assert.match(enrolPage.body, /id="enrol-totp"/, enrolPage.body.slice(0, 800));
  const qrPage = await browser.submitAction(enrolPage, '/enrol/totp/start');
  assert.match(qrPage.body, /id="totp-qr"[^>]*>\s*<svg/, 'the QR code is an inline SVG');
  const secret = textOf(qrPage, 'totp-secret')!;
  assert.match(secret, /^[A-Z2-7]+=*$/);
  const wrong = await browser.submit(qrPage, 'totp-confirm-form', { code: totpFor(secret).generate({ timestamp: Date.now() - 600_000 }) });
  assert.match(textOf(wrong, 'error') ?? '', /Wrong code/);
  const codesPage = await browser.submit(wrong, 'totp-confirm-form', { code: totpFor(secret).generate() });
  const recoveryCodes = recoveryCodesOn(codesPage);
  assert.equal(recoveryCodes.length, 10, codesPage.body.slice(0, 800));
  const reload = await browser.request(codesPage.url);
  assert.deepEqual(recoveryCodesOn(reload), [], 'recovery codes are shown once');
  const after = await browser.submitAction(reload, '/continue', {}, atCallback);
  return { secret, recoveryCodes, after };
}

let aliceSecret = '';
/** The time whose step gave alice's last accepted code: that code (and any earlier one) is a replay from then on. */
let aliceLastCodeAt = 0;
let aliceRecoveryCodes: string[] = [];

test('admin API: 401 without the admin token or with a wrong one; set a password (argon2id)', { skip }, async () => {
  assert.equal((await admin(authAdminRoutes.account('alice'), { token: null })).status, 401);
  assert.equal((await admin(authAdminRoutes.account('alice'), { token: 'wrong' })).status, 401);
  assert.equal((await admin(authAdminRoutes.password('alice'), { method: 'PUT', body: { password: 'alice-password-1' }, token: 'x' + svc().adminToken })).status, 401);
  assert.equal((await admin(authAdminRoutes.account('nobody'))).status, 404);
  assert.equal((await admin(authAdminRoutes.password('alice'), { method: 'PUT', body: { password: 'short' } })).status, 400);
  assert.equal((await admin(authAdminRoutes.password('alice'), { method: 'PUT', body: { password: 'alice-password-1' } })).status, 204);
  const info = (await admin(authAdminRoutes.account('alice'))).json as AdminAccountInfo;
  // This service requires a factor (policy.required) and alice has none: she must enrol, as her sign-in will show.
  assert.deepEqual(info, { username: 'alice', isAdmin: false, mustEnrol: true, password: 'argon2id', totp: { enrolled: false }, webauthn: [], recoveryCodesLeft: 0 });
});

test('OIDC code flow with PKCE: password, TOTP enrolment, recovery codes, code exchange, id_token and userinfo', { skip }, async () => {
  const browser = newBrowser();
  const authorization = await startAuthorization(browser);
  assert.match(authorization.page.body, /<label for="username">Username<\/label>/);
  assert.match(authorization.page.body, /autocomplete="current-password"/);
  assert.equal(authorization.page.headers.get('cache-control'), 'no-store');
  assert.match(authorization.page.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/);
  assert.match(authorization.page.headers.get('content-security-policy') ?? '', /form-action 'self' http:\/\/127\.0\.0\.1:9;/, "the sign-in's redirect chain may end at the client");
  assert.equal(authorization.page.headers.get('referrer-policy'), 'no-referrer');
  assert.doesNotMatch(authorization.page.headers.get('content-security-policy') ?? '', /unsafe-inline/);
  const wrongPassword = await signInWithPassword(browser, authorization, 'alice', 'not-her-password');
  assert.equal(textOf(wrongPassword, 'error'), 'Wrong username or password.');
  // Mixed case and the full user id are the same account.
  const enrolPage = await browser.submit(wrongPassword, 'sign-in-form', { username: '@Alice:example.test', password: 'alice-password-1' });
  const enrolment = await enrolTotp(browser, enrolPage);
  aliceSecret = enrolment.secret;
  aliceRecoveryCodes = enrolment.recoveryCodes;
  const code = callbackCode(enrolment.after, authorization);

  const tokens = await exchangeCode(code, authorization.verifier);
  assert.equal(tokens.status, 200, JSON.stringify(tokens.json));
  const { payload } = await jwtVerify(String(tokens.json.id_token), createRemoteJWKSet(new URL(`${svc().issuer}/jwks`)), { issuer: svc().issuer, audience: 'synapse' });
  assert.equal(payload.sub, 'alice');
  assert.equal(payload.nonce, authorization.nonce);
  const userinfo = await fetch(`${svc().issuer}/userinfo`, { headers: { authorization: `Bearer ${String(tokens.json.access_token)}` } });
  assert.equal(userinfo.status, 200);
  assert.deepEqual(await userinfo.json(), { sub: 'alice', preferred_username: 'alice' });

  const replayed = await exchangeCode(code, authorization.verifier);
  assert.equal(replayed.status, 400);
  assert.equal(replayed.json.error, 'invalid_grant', 'an authorization code works once');

  const discovery = (await (await fetch(`${svc().issuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
  assert.equal(discovery.issuer, svc().issuer);
  assert.equal(discovery.authorization_endpoint, `${svc().issuer}/authorize`);
  assert.equal(discovery.token_endpoint, `${svc().issuer}/token`);
  assert.equal(discovery.userinfo_endpoint, `${svc().issuer}/userinfo`);
  assert.equal(discovery.jwks_uri, `${svc().issuer}/jwks`);
  assert.equal(discovery.end_session_endpoint, `${svc().issuer}/session/end`);
});

test('a wrong PKCE verifier is refused at the token endpoint', { skip }, async () => {
  const browser = newBrowser();
  const authorization = await startAuthorization(browser);
  const second = await signInWithPassword(browser, authorization, 'alice', 'alice-password-1');
  const done = await browser.submit(second, 'totp-form', { code: nextStepCode(aliceSecret) }, atCallback);
  const tokens = await exchangeCode(callbackCode(done, authorization), randomBytes(32).toString('base64url'));
  assert.equal(tokens.status, 400);
  assert.equal(tokens.json.error, 'invalid_grant');
});

test('second factor: a wrong code and a replayed code are refused; a recovery code works once', { skip }, async () => {
  // The previous test used the next step's code: the current step's code is now a replay (an older step).
  const browser = newBrowser();
  const authorization = await startAuthorization(browser);
  const second = await signInWithPassword(browser, authorization, 'alice', 'alice-password-1');
  assert.match(second.body, /id="totp-form"/);
  assert.match(second.body, /autocomplete="one-time-code"/);
  assert.match(second.body, /inputmode="numeric"/);
  const wrong = await browser.submit(second, 'totp-form', { code: String((Number(totpFor(aliceSecret).generate()) + 1) % 1_000_000).padStart(6, '0') });
  assert.match(textOf(wrong, 'error') ?? '', /Wrong code/);
  const replay = await browser.submit(wrong, 'totp-form', { code: totpFor(aliceSecret).generate({ timestamp: aliceLastCodeAt }) });
  assert.match(textOf(replay, 'error') ?? '', /Wrong code/, 'the code already used in the previous test is refused');
  const recoveryPage = await browser.follow(await browser.request(new URL(`${authorization.page.url.pathname}/recovery`, authorization.page.url)));
  assert.match(recoveryPage.body, /<label for="recovery-code">Recovery code<\/label>/);
  const done = await browser.submit(recoveryPage, 'recovery-form', { code: aliceRecoveryCodes[0]!.toLowerCase() }, atCallback);
  assert.equal((await exchangeCode(callbackCode(done, authorization), authorization.verifier)).status, 200);

  const again = newBrowser();
  const authorization2 = await startAuthorization(again);
  await signInWithPassword(again, authorization2, 'alice', 'alice-password-1');
  const recoveryPage2 = await again.request(new URL(`${authorization2.page.url.pathname}/recovery`, authorization2.page.url));
  const refused = await again.submit(recoveryPage2, 'recovery-form', { code: aliceRecoveryCodes[0]! });
  assert.equal(textOf(refused, 'error'), 'Wrong or already used recovery code.');
  const info = (await admin(authAdminRoutes.account('alice'))).json as AdminAccountInfo;
  assert.equal(info.recoveryCodesLeft, 9);
  assert.equal(info.totp.enrolled, true);
});

test('CSRF: a form post without the session token is refused', { skip }, async () => {
  const browser = newBrowser();
  const authorization = await startAuthorization(browser);
  const form = formOn(authorization.page, 'sign-in-form');
  const forged = await browser.request(form.action, { form: { csrf: 'forged', username: 'alice', password: 'alice-password-1' } });
  assert.equal(forged.status, 403);
  const missing = await browser.request(form.action, { form: { username: 'alice', password: 'alice-password-1' } });
  assert.equal(missing.status, 403);
  // The account page needs no OpenID interaction: a second browser with a session of its own.
  const victim = newBrowser();
  const victimForm = formOn(await victim.request(`${svc().issuer}/account`), 'sign-in-form');
  const stranger = newBrowser();
  await stranger.request(`${svc().issuer}/account`);
  const crossSite = await stranger.request(victimForm.action, { form: { csrf: victimForm.csrf, username: 'alice', password: 'alice-password-1' } });
  assert.equal(crossSite.status, 403, "another browser's session does not carry this token");
  assert.equal((await victim.request(victimForm.action, { form: { csrf: victimForm.csrf, username: 'mallory', password: 'wrong' } })).status, 303, 'the right token is accepted');
});

test(`lockout: after maxFailures wrong passwords the account is locked for everyone; unlock clears it`, { skip }, async () => {
  assert.equal((await admin(authAdminRoutes.password('carol'), { method: 'PUT', body: { password: 'carol-password' } })).status, 204);
  let page: Page | undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    const browser = newBrowser();
    page = await signInWithPassword(browser, await startAuthorization(browser), 'carol', `wrong-${attempt}`);
  }
  assert.equal(textOf(page!, 'error'), 'Wrong username or password.');
  const browser = newBrowser();
  const locked = await signInWithPassword(browser, await startAuthorization(browser), 'carol', 'carol-password');
  assert.equal(textOf(locked, 'error'), 'Too many attempts; try again in 10 minutes.', 'the right password is refused while locked');
  const info = (await admin(authAdminRoutes.account('carol'))).json as AdminAccountInfo;
  assert.ok(info.lockedUntil && Date.parse(info.lockedUntil) > Date.now());
  const otherUser = newBrowser();
  const alice = await signInWithPassword(otherUser, await startAuthorization(otherUser), 'alice', 'alice-password-1');
  assert.match(alice.body, /id="totp-form"/, 'other accounts are unaffected');
  assert.equal((await admin(authAdminRoutes.unlock('carol'), { method: 'POST', body: {} })).status, 204);
  const afterUnlock = newBrowser();
  const enrol = await signInWithPassword(afterUnlock, await startAuthorization(afterUnlock), 'carol', 'carol-password');
  assert.match(enrol.body, /id="enrol-totp"/, 'policy required: carol must enrol');
});

test('Synapse users keep their bcrypt password (imported once, re-hashed); deactivated users are refused', { skip }, async () => {
  assert.equal(((await admin(authAdminRoutes.account('bob'))).json as AdminAccountInfo).password, 'none');
  const browser = newBrowser();
  const authorization = await startAuthorization(browser);
  const enrolPage = await signInWithPassword(browser, authorization, '@BOB:example.test', 'bob-synapse-password');
  const { after } = await enrolTotp(browser, enrolPage);
  assert.equal((await exchangeCode(callbackCode(after, authorization), authorization.verifier)).status, 200);
  const info = (await admin(authAdminRoutes.account('bob'))).json as AdminAccountInfo;
  assert.equal(info.password, 'argon2id');
  assert.equal(info.totp.enrolled, true);
  const dave = newBrowser();
  const refused = await signInWithPassword(dave, await startAuthorization(dave), 'dave', 'dave-password');
  assert.equal(textOf(refused, 'error'), 'Wrong username or password.');
});

test('admin reset-second-factors: factors gone, must enrol again (policy requires one)', { skip }, async () => {
  const reset = await admin(authAdminRoutes.resetSecondFactors('bob'), { method: 'POST', body: {} });
  assert.equal(reset.status, 200);
  const info = reset.json as AdminAccountInfo;
  assert.equal(info.mustEnrol, true);
  assert.deepEqual(info.totp, { enrolled: false });
  assert.equal(info.recoveryCodesLeft, 0);
  const browser = newBrowser();
  const enrol = await signInWithPassword(browser, await startAuthorization(browser), 'bob', 'bob-synapse-password');
  assert.match(enrol.body, /id="enrol-totp"/);
  assert.equal((await admin(authAdminRoutes.resetSecondFactors('nobody'), { method: 'POST', body: {} })).status, 404);
});

test('account page: sign in with password + code, regenerate recovery codes, change password, sign out', { skip }, async () => {
  const browser = newBrowser();
  const signInPage = await browser.request(`${svc().issuer}/account`);
  const cookiesBefore = browser.jar.header(signInPage.url);
  const second = await browser.submit(signInPage, 'sign-in-form', { username: 'alice', password: 'alice-password-1' });
  assert.notEqual(browser.jar.header(signInPage.url), cookiesBefore, 'the session id changes after the password (no fixation)');
  assert.equal((await browser.request(formOn(signInPage, 'sign-in-form').action, { form: { csrf: csrfOn(signInPage), username: 'alice', password: 'x' } })).status, 403, 'the CSRF token from before the sign-in is void');
  assert.match(second.body, /id="totp-form"/);
  // The code last accepted is refused again (a replay); a recovery code signs in instead.
  const account = await browser.submit(second, 'totp-form', { code: totpFor(aliceSecret).generate({ timestamp: aliceLastCodeAt }) });
  assert.match(textOf(account, 'error') ?? '', /Wrong code/);
  const recoveryPage = await browser.request(`${svc().issuer}/account/recovery`);
  const signedIn = await browser.submit(recoveryPage, 'recovery-form', { code: aliceRecoveryCodes[1]! });
  assert.equal(textOf(signedIn, 'account-username'), 'alice', signedIn.body);
  assert.equal(textOf(signedIn, 'totp-status'), 'On');
  assert.equal(textOf(signedIn, 'recovery-codes-left'), '8');
  const codesPage = await browser.submitAction(signedIn, '/recovery-codes/regenerate');
  const fresh = recoveryCodesOn(codesPage);
  assert.equal(fresh.length, 10);
  const back = await browser.submitAction(codesPage, '/continue');
  assert.equal(textOf(back, 'recovery-codes-left'), '10');
  const wrongCurrent = await browser.submit(back, 'change-password-form', { current: 'nope', next: 'alice-password-2' });
  assert.equal(textOf(wrongCurrent, 'error'), 'The current password is wrong.');
  const changed = await browser.submit(wrongCurrent, 'change-password-form', { current: 'alice-password-1', next: 'alice-password-2' });
  assert.equal(textOf(changed, 'notice'), 'Password changed.');
  const removeRefused = await browser.submitAction(changed, '/totp/remove');
  assert.match(textOf(removeRefused, 'error') ?? '', /last second factor/);
  const signedOut = await browser.submitAction(removeRefused, '/sign-out');
  assert.match(signedOut.body, /id="sign-in-form"/);
  aliceRecoveryCodes = fresh;
  const again = newBrowser();
  const oldPassword = await signInWithPassword(again, await startAuthorization(again), 'alice', 'alice-password-1');
  assert.equal(textOf(oldPassword, 'error'), 'Wrong username or password.');
});

test('sign-out at the end_session endpoint: a confirmation page in the service look, without inline scripts', { skip }, async () => {
  // Signed in first (password changed and recovery codes regenerated by the account page test).
  const browser = newBrowser();
  const authorization = await startAuthorization(browser);
  await signInWithPassword(browser, authorization, 'alice', 'alice-password-2');
  const recoveryPage = await browser.request(new URL(`${authorization.page.url.pathname}/recovery`, authorization.page.url));
  callbackCode(await browser.submit(recoveryPage, 'recovery-form', { code: aliceRecoveryCodes[0]! }, atCallback), authorization);
  const page = await browser.request(`${svc().issuer}/session/end`);
  assert.equal(page.status, 200);
  assert.match(page.body, /<form id="op.logoutForm" method="post" action="[^"]*\/auth\/session\/end\/confirm">/);
  assert.match(page.body, /<button id="confirm-sign-out" type="submit" form="op.logoutForm" name="logout" value="yes">Sign out<\/button>/);
  assert.doesNotMatch(page.body, /<script/);
  assert.match(page.headers.get('content-security-policy') ?? '', /form-action 'self' http:\/\/127\.0\.0\.1:9;/);
  const xsrf = /name="xsrf" value="([^"]+)"/.exec(page.body)![1]!;
  const done = await browser.follow(await browser.request(new URL(`${svc().issuer}/session/end/confirm`), { form: { xsrf, logout: 'yes' } }));
  assert.equal(done.status, 200);
  assert.match(done.body, /id="signed-out"/);
});

test('PostgreSQL adapter: find by id, uid and user code; consume; revoke by grant; expired rows are absent', { skip }, async () => {
  // The service's own database, created by the service at start (its tables come from schema.sql).
  const db = postgres!.poolFor('synapse_auth');
  const adapter = new PostgresAdapter(db, 'TestModel');
  await adapter.upsert('a', { jti: 'a', grantId: 'g1', uid: 'u1', userCode: 'UC-1' }, 60);
  await adapter.upsert('b', { jti: 'b', grantId: 'g1' }, 60);
  await adapter.upsert('c', { jti: 'c', grantId: 'g2' }, 60);
  assert.deepEqual(await adapter.find('a'), { jti: 'a', grantId: 'g1', uid: 'u1', userCode: 'UC-1' });
  assert.equal((await adapter.findByUid('u1'))?.jti, 'a');
  assert.equal((await adapter.findByUserCode('UC-1'))?.jti, 'a');
  assert.equal(await new PostgresAdapter(db, 'OtherModel').find('a'), undefined, 'models are separate');
  await adapter.consume('a');
  const consumed = await adapter.find('a');
  assert.equal(typeof consumed?.consumed, 'number');
  // Two replicas redeeming one code at the same instant: exactly one consume wins, the other is invalid_grant.
  await adapter.upsert('raced', { jti: 'raced' }, 60);
  const race = await Promise.allSettled([adapter.consume('raced'), new PostgresAdapter(db, 'TestModel').consume('raced')]);
  assert.deepEqual(race.map((r) => r.status).sort(), ['fulfilled', 'rejected']);
  const loser = race.find((r): r is PromiseRejectedResult => r.status === 'rejected')!;
  assert.equal((loser.reason as { error?: string }).error, 'invalid_grant');
  await assert.rejects(adapter.consume('a'), { error: 'invalid_grant' }, 'consuming twice is refused');
  await adapter.revokeByGrantId('g1');
  assert.equal(await adapter.find('a'), undefined);
  assert.equal(await adapter.find('b'), undefined);
  assert.equal((await adapter.find('c'))?.jti, 'c');
  await adapter.destroy('c');
  assert.equal(await adapter.find('c'), undefined);
  // Written "ten minutes ago" for one minute: expired now.
  await new PostgresAdapter(db, 'TestModel', () => Date.now() - 600_000).upsert('old', { jti: 'old' }, 60);
  assert.equal(await adapter.find('old'), undefined);
  assert.ok((await pruneExpiredPayloads(db)) >= 1);
  assert.equal((await db.query("SELECT count(*)::int AS n FROM auth_oidc_payloads WHERE id = 'old'")).rows[0].n, 0);
});

test('health on both listeners; static files; unknown interaction', { skip }, async () => {
  assert.equal((await fetch(`${svc().issuer.replace('/auth', '')}/health`)).status, 200);
  assert.equal((await fetch(`${svc().adminUrl}/health`)).status, 200);
  const css = await fetch(`${svc().issuer}/static/auth.css`);
  assert.equal(css.status, 200);
  assert.match(await css.text(), /prefers-color-scheme: dark/);
  const favicon = await fetch(`${svc().issuer}/static/favicon.svg`);
  assert.equal(favicon.status, 200);
  assert.equal(favicon.headers.get('content-type'), 'image/svg+xml');
  assert.match(await favicon.text(), /^<svg /);
  assert.equal((await fetch(`${svc().issuer}/static/nope.js`)).status, 404);
  const root = await fetch(svc().issuer, { redirect: 'manual' });
  assert.equal(root.status, 303);
  assert.equal(root.headers.get('location'), '/auth/account');
  const expired = await fetch(`${svc().issuer}/interaction/doesnotexist`);
  assert.equal(expired.status, 400);
});

// ---- A real browser on the service's own pages (Debian Chromium through playwright-core) -------------------
// Security keys through Chromium's virtual authenticator (the DevTools protocol); the authenticator app
// enrolled from the QR code read back from a screenshot. The pages are browsed at `localhost` (WebAuthn
// refuses IP-address origins), the service's configured WebAuthn origin.

const browserSkip = skip || browserSkipReason() || false;

test('Chromium: enrol a security key and an authenticator app on the account page, then sign in with the key', { skip: browserSkip }, async () => {
  assert.equal((await admin(authAdminRoutes.password('erin'), { method: 'PUT', body: { password: 'erin-password' } })).status, 204);
  const chromium = await launchBrowser();
  try {
    const context = await chromium.newContext({ colorScheme: 'dark' });
    const page = await context.newPage();
    const key = await addVirtualAuthenticator(page);
    const accountUrl = `${svc().config.policy.webauthn.origin}/auth/account`;
    await page.goto(accountUrl);
    await page.getByLabel('Username').fill('erin');
    await page.getByLabel('Password').fill('erin-password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Set up two-factor authentication' }).waitFor();
    await page.getByLabel('Name of the security key').fill('Test key <b>');
    await page.getByRole('button', { name: 'Add a security key' }).click();
    await page.getByRole('heading', { name: 'Save your recovery codes' }).waitFor();
    assert.equal(await page.locator('#recovery-codes li').count(), 10);
    if (process.env.AUTH_SCREENSHOTS) await page.screenshot({ path: join(process.env.AUTH_SCREENSHOTS, 'recovery-codes-dark.png') });
    await page.getByRole('button', { name: 'I saved them' }).click();
    await page.getByRole('heading', { name: 'Your account' }).waitFor();
    assert.equal((await key.credentials()).length, 1);
    assert.match(await page.locator('#security-keys').innerText(), /Test key <b>/);

    await page.getByRole('button', { name: 'Add an authenticator app' }).click();
    const enrolment = parseTotpUri(await readQrCode(page.locator('#totp-qr svg')));
    assert.equal(enrolment.secret, await page.locator('#totp-secret').innerText(), 'the QR code and the text show the same secret');
    assert.equal(enrolment.issuer, 'Test Matrix');
    if (process.env.AUTH_SCREENSHOTS) await page.screenshot({ path: join(process.env.AUTH_SCREENSHOTS, 'totp-enrolment-dark.png') });
    await page.getByLabel('Authentication code').fill(totpCode(enrolment));
    await page.getByRole('button', { name: 'Confirm' }).click();
    await page.getByRole('heading', { name: 'Your account' }).waitFor();
    assert.equal(await page.locator('#totp-status').innerText(), 'On');
    if (process.env.AUTH_SCREENSHOTS) await page.screenshot({ path: join(process.env.AUTH_SCREENSHOTS, 'account-dark.png'), fullPage: true });
    await page.getByRole('button', { name: 'Sign out' }).click();

    await page.getByLabel('Username').fill('@Erin:example.test');
    await page.getByLabel('Password').fill('erin-password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('button', { name: 'Use a security key' }).click();
    await page.getByRole('heading', { name: 'Your account' }).waitFor();
    const info = (await admin(authAdminRoutes.account('erin'))).json as AdminAccountInfo;
    assert.equal(info.webauthn.length, 1);
    assert.equal(info.webauthn[0]!.name, 'Test key <b>');
    assert.ok(info.webauthn[0]!.lastUsedAt, 'the key was used to sign in');
    assert.equal(info.totp.enrolled, true);

    const light = await chromium.newContext({ colorScheme: 'light' });
    const signIn = await light.newPage();
    await signIn.goto(accountUrl);
    if (process.env.AUTH_SCREENSHOTS) await signIn.screenshot({ path: join(process.env.AUTH_SCREENSHOTS, 'sign-in-light.png') });
    // Runs in the page (a string: this file is compiled without the DOM types).
    const inlineScriptBlocked = await signIn.evaluate(`(() => {
      const element = document.createElement('script');
      element.textContent = 'window.inlineRan = true';
      document.body.append(element);
      return window.inlineRan !== true;
    })()`);
    assert.equal(inlineScriptBlocked, true, 'the CSP blocks inline scripts');
  } finally {
    await chromium.close();
  }
});

test('audit log: sign-ins, failures, lockouts and factor changes are recorded, never a secret', { skip }, async () => {
  const db = postgres!.poolFor('synapse_auth');
  const rows = (await db.query<{ username: string | null; event: string; address: string | null; detail: Record<string, unknown> }>('SELECT username, event, address, detail FROM auth_audit_log ORDER BY id')).rows;
  const events = new Set(rows.map((row) => row.event));
  for (const event of ['sign-in', 'sign-in-failed', 'locked-out', 'password-imported', 'totp-enrolled', 'recovery-codes-generated', 'recovery-code-used', 'password-changed', 'second-factors-reset']) {
    assert.ok(events.has(event), `audit has ${event}`);
  }
  if (!browserSkip) assert.ok(events.has('webauthn-added'));
  assert.ok(rows.some((row) => row.event === 'locked-out' && row.username === 'carol'));
  assert.ok(rows.some((row) => row.event === 'sign-in' && row.username === 'alice' && row.address?.startsWith('192.0.2.')), 'addresses come from X-Forwarded-For of the trusted router');
  const text = JSON.stringify(rows);
  for (const secret of ['alice-password-1', 'alice-password-2', 'bob-synapse-password', 'carol-password', aliceSecret, ...aliceRecoveryCodes]) assert.ok(!text.includes(secret), 'no secret in the audit log');
});

test('policy without "required": password alone for users, enrolment for admins (requiredForAdmins), TOTP only', { skip }, async () => {
  const synapse = postgres!.poolFor('synapse');
  await synapse.query('INSERT INTO users (name, password_hash, admin, deactivated) VALUES ($1, $2, 1, 0)', ['@grace:example.test', bcrypt.hashSync('grace-password', 10)]);
  const lenient = await startAuthService({
    postgres: postgres!,
    redirectUri,
    database: 'lenient_auth',
    policy: { required: false, requiredForAdmins: true, webauthn: { enabled: false, rpId: 'localhost', rpName: 'Test', origin: 'http://localhost' } },
  });
  const previous = service;
  service = lenient;
  try {
    assert.equal((await admin(authAdminRoutes.password('frank'), { method: 'PUT', body: { password: 'frank-password' } })).status, 204);
    const browser = newBrowser();
    const authorization = await startAuthorization(browser);
    const done = await signInWithPassword(browser, authorization, 'frank', 'frank-password');
    const tokens = await exchangeCode(callbackCode(done, authorization), authorization.verifier);
    assert.equal(tokens.status, 200, 'a user without a factor signs in with the password alone');

    const admins = newBrowser();
    const adminAuthorization = await startAuthorization(admins);
    const enrol = await signInWithPassword(admins, adminAuthorization, 'grace', 'grace-password');
    assert.match(enrol.body, /id="enrol-totp"/, 'a server admin must enrol');
    assert.doesNotMatch(enrol.body, /security-key/, 'no security key offered while WebAuthn is off');
    assert.equal(((await admin(authAdminRoutes.account('grace'))).json as AdminAccountInfo).isAdmin, true, 'admin flag from Synapse');

    const accountBrowser = newBrowser();
    const accountPage = await accountBrowser.submit(await accountBrowser.request(`${svc().issuer}/account`), 'sign-in-form', { username: 'frank', password: 'frank-password' });
    assert.equal(textOf(accountPage, 'totp-status'), 'Off');
    const qrPage = await accountBrowser.submitAction(accountPage, '/enrol/totp/start');
    assert.match(qrPage.body, /id="totp-confirm-form"/);
    const cancelled = await accountBrowser.submitAction(qrPage, '/enrol/totp/cancel');
    assert.equal(textOf(cancelled, 'totp-status'), 'Off', 'cancelling the enrolment leads back to the account page');
    assert.deepEqual(((await admin(authAdminRoutes.account('frank'))).json as AdminAccountInfo).totp, { enrolled: false });

    const reset = (await admin(authAdminRoutes.resetSecondFactors('frank'), { method: 'POST', body: {} })).json as AdminAccountInfo;
    assert.equal(reset.mustEnrol, false, 'reset does not force enrolment when the policy does not require a factor');
  } finally {
    service = previous;
    assert.equal(await lenient.stop(), 0);
  }
});

test('two replicas behind a round-robin proxy share interactions, sessions, single-use codes and signing keys', { skip }, async () => {
  const proxyPort = await freeLoopbackPort();
  const first = await startAuthService({ postgres: postgres!, redirectUri, database: 'replicated_auth', issuer: `http://127.0.0.1:${proxyPort}/auth` });
  const second = await startAuthService({ postgres: postgres!, replicaOf: first }).catch(async (error: unknown) => {
    await first.stop();
    throw error;
  });
  const proxy = await startRoundRobinProxy(proxyPort, () => [first.listenUrl, second.listenUrl]);
  const previous = service;
  service = first;
  try {
    assert.equal((await admin(authAdminRoutes.password('henry'), { method: 'PUT', body: { password: 'henry-password' } })).status, 204);
    const browser = newBrowser();
    const authorization = await startAuthorization(browser);
    const enrolPage = await signInWithPassword(browser, authorization, 'henry', 'henry-password');
    const { after } = await enrolTotp(browser, enrolPage);
    const code = callbackCode(after, authorization);
    const tokens = await exchangeCode(code, authorization.verifier);
    assert.equal(tokens.status, 200, JSON.stringify(tokens.json));
    const userinfo = async (): Promise<number> => (await fetch(`${svc().issuer}/userinfo`, { headers: { authorization: `Bearer ${String(tokens.json.access_token)}` } })).status;
    assert.deepEqual([await userinfo(), await userinfo()], [200, 200], 'the access token is valid at both replicas');
    assert.equal((await exchangeCode(code, authorization.verifier)).json.error, 'invalid_grant', 'the other replica knows the code was used');
    // A replayed code revokes what it gave (oidc-provider): at both replicas.
    assert.deepEqual([await userinfo(), await userinfo()], [401, 401]);
    const [jwksFirst, jwksSecond] = await Promise.all([first, second].map(async (replica) => (await fetch(`${replica.listenUrl}/auth/jwks`)).json()));
    assert.deepEqual(jwksFirst, jwksSecond);
    for (const replica of [first, second]) assert.match(replica.output(), /"event":"interaction"/, 'each replica served part of the sign-in');
  } finally {
    service = previous;
    await proxy.close();
    assert.equal(await second.stop(), 0);
    assert.equal(await first.stop(), 0);
  }
});

test('Chromium: an OpenID sign-in that enrols a security key, then one that uses it, each ending at the client', { skip: browserSkip }, async () => {
  assert.equal((await admin(authAdminRoutes.password('ivan'), { method: 'PUT', body: { password: 'ivan-password' } })).status, 204);
  const chromium = await launchBrowser();
  try {
    /** Drives one authorization in a fresh context; returns the code the client's redirect URI received. */
    const signIn = async (context: Awaited<ReturnType<typeof chromium.newContext>>, act: (page: Awaited<ReturnType<typeof context.newPage>>) => Promise<void>): Promise<string> => {
      let received: URL | undefined;
      // The client (Synapse) is not running: its callback is answered here and the code kept.
      await context.route(`${redirectUri}**`, async (route) => {
        received = new URL(route.request().url());
        await route.fulfill({ status: 200, contentType: 'text/plain', body: 'callback reached' });
      });
      const page = await context.newPage();
      const verifier = randomBytes(32).toString('base64url');
      const url = new URL(`${svc().config.policy.webauthn.origin}/auth/authorize`);
      url.search = new URLSearchParams({ client_id: 'synapse', response_type: 'code', scope: 'openid profile', redirect_uri: redirectUri, state: 's', nonce: 'n', code_challenge: createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256' }).toString();
      await page.goto(url.href);
      await act(page);
      await page.getByText('callback reached').waitFor();
      const code = received?.searchParams.get('code');
      assert.ok(code, 'the client received a code');
      assert.equal((await exchangeCode(code, verifier)).status, 200);
      return code;
    };
    const first = await chromium.newContext();
    let credentials: VirtualCredential[] = [];
    await signIn(first, async (page) => {
      const authenticator = await addVirtualAuthenticator(page);
      await page.getByLabel('Username').fill('ivan');
      await page.getByLabel('Password').fill('ivan-password');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('button', { name: 'Add a security key' }).click();
      await page.locator('#recovery-codes li').first().waitFor();
      credentials = await authenticator.credentials();
      await page.getByRole('button', { name: 'I saved them' }).click();
    });
    assert.equal(credentials.length, 1);
    // The same key in another browser: the credential moves to a new virtual authenticator.
    const second = await chromium.newContext();
    await signIn(second, async (page) => {
      const authenticator = await addVirtualAuthenticator(page);
      await authenticator.addCredential(credentials[0]!);
      await page.getByLabel('Username').fill('ivan');
      await page.getByLabel('Password').fill('ivan-password');
      await page.getByRole('button', { name: 'Sign in' }).click();
      assert.equal(await page.locator('#totp-form').count(), 0, 'no code form without an authenticator app');
      await page.getByRole('button', { name: 'Use a security key' }).click();
    });
    const info = (await admin(authAdminRoutes.account('ivan'))).json as AdminAccountInfo;
    assert.ok(info.webauthn[0]?.lastUsedAt);
  } finally {
    await chromium.close();
  }
});

// ---- No silent sign-in: what the provider remembers of a finished sign-in, and when that ends ----------------
// Synapse sends a Matrix login and a user-interactive confirmation (UIA over SSO) as the same authorization
// request, so each case below holds for both.

/** The sign-in page of a new authorization in `browser` (which holds an earlier sign-in), never a silent answer. */
async function assertAsksForPassword(browser: TestBrowser, what: string): Promise<Authorization> {
  const authorization = await beginAuthorization(browser);
  assert.ok(!authorization.page.location || !atCallback(authorization.page.location), `${what}: the provider answered the client without asking anything`);
  assert.match(authorization.page.body, /id="sign-in-form"/, `${what}: ${authorization.page.body.slice(0, 400)}`);
  return authorization;
}

/** A new authorization in `browser` answered at once (the earlier sign-in reused); the code is redeemed. */
async function assertSignInReused(browser: TestBrowser, what: string): Promise<void> {
  const authorization = await beginAuthorization(browser);
  const tokens = await exchangeCode(callbackCode(authorization.page, authorization), authorization.verifier);
  assert.equal(tokens.status, 200, `${what}: ${JSON.stringify(tokens.json)}`);
}

test('nothing is remembered by default: after a completed sign-in, the next authorization in the same browser asks for the password and the code again', { skip }, async () => {
  assert.equal((await admin(authAdminRoutes.password('kim'), { method: 'PUT', body: { password: 'kim-password' } })).status, 204);
  const browser = newBrowser();
  const authorization = await startAuthorization(browser);
  const { after } = await enrolTotp(browser, await signInWithPassword(browser, authorization, 'kim', 'kim-password'));
  assert.equal((await exchangeCode(callbackCode(after, authorization), authorization.verifier)).status, 200);

  const again = await assertAsksForPassword(browser, 'the second authorization');
  const second = await signInWithPassword(browser, again, 'kim', 'kim-password');
  assert.match(second.body, /id="totp-form"/, 'after the password, the code is asked again');
  assert.ok(!second.location || !atCallback(second.location));
});

/** Ages every provider session of `username` by `seconds`: the clock of the sign-in, moved back. */
async function ageSignIns(username: string, seconds: number, database: string): Promise<number> {
  const db = postgres!.poolFor(database);
  const result = await db.query(
    `UPDATE auth_oidc_payloads SET payload = jsonb_set(payload, '{loginTs}', to_jsonb((payload->>'loginTs')::bigint - $2::bigint))
      WHERE model = 'Session' AND payload->>'accountId' = $1`,
    [username, seconds],
  );
  return result.rowCount ?? 0;
}

// A second service (own database) with rememberSignInMinutes set, behind a proxy whose target can change: a
// "restart with new values" is a new process with the new policy on the same database and secrets.
const rememberMinutes = 10;
const rememberDatabase = 'remember_auth';
const rememberServices: AuthServiceHandle[] = [];
let rememberProxy: { url: string; close(): Promise<void> } | undefined;
let lenaCodes: string[] = [];

async function rememberService(): Promise<AuthServiceHandle> {
  if (rememberServices.length === 0) {
    const proxyPort = await freeLoopbackPort();
    const policy = { required: false, requiredForAdmins: true, rememberSignInMinutes: rememberMinutes };
    rememberServices.push(await startAuthService({ postgres: postgres!, redirectUri, database: rememberDatabase, issuer: `http://127.0.0.1:${proxyPort}/auth`, policy }));
    rememberProxy = await startRoundRobinProxy(proxyPort, () => [rememberServices.at(-1)!.listenUrl]);
    await postgres!.poolFor('synapse').query('INSERT INTO users (name, password_hash, admin, deactivated) VALUES ($1, NULL, 0, 0), ($2, NULL, 0, 0)', ['@mia:example.test', '@nina:example.test']);
  }
  return rememberServices.at(-1)!;
}

/** Called by the file's `after` before PostgreSQL stops. */
async function stopRememberServices(): Promise<void> {
  await rememberProxy?.close();
  for (const handle of rememberServices.reverse()) assert.equal(await handle.stop(), 0, handle.output());
}

/** Runs `use` with the remember service as `svc()`. */
async function withRememberService(use: () => Promise<void>): Promise<void> {
  const previous = service;
  service = await rememberService();
  try {
    await use();
  } finally {
    service = previous;
  }
}

/** Lena, with an authenticator app and recovery codes (used where a second TOTP code would be a replay). */
async function signInLena(browser: TestBrowser): Promise<void> {
  if (lenaCodes.length === 0) {
    assert.equal((await admin(authAdminRoutes.password('lena'), { method: 'PUT', body: { password: 'lena-password' } })).status, 204);
    const setup = newBrowser();
    const account = await setup.submit(await setup.request(`${svc().issuer}/account`), 'sign-in-form', { username: 'lena', password: 'lena-password' });
    const qrPage = await setup.submitAction(account, '/enrol/totp/start');
    const secret = textOf(qrPage, 'totp-secret')!;
    lenaCodes = recoveryCodesOn(await setup.submit(qrPage, 'totp-confirm-form', { code: totpFor(secret).generate() }));
    assert.equal(lenaCodes.length, 10);
  }
  const authorization = await startAuthorization(browser);
  await signInWithPassword(browser, authorization, 'lena', 'lena-password');
  const recoveryPage = await browser.request(new URL(`${authorization.page.url.pathname}/recovery`, authorization.page.url));
  const done = await browser.submit(recoveryPage, 'recovery-form', { code: lenaCodes.shift()! }, atCallback);
  assert.equal((await exchangeCode(callbackCode(done, authorization), authorization.verifier)).status, 200);
}

test('rememberSignInMinutes: the same browser is let through inside the window and asked again after it (the sign-in aged in the store)', { skip }, () =>
  withRememberService(async () => {
    const browser = newBrowser();
    await signInLena(browser);
    await assertSignInReused(browser, 'inside the window');
    assert.ok((await ageSignIns('lena', rememberMinutes * 60 - 30, rememberDatabase)) >= 1);
    await assertSignInReused(browser, '30 seconds before the window ends');
    assert.ok((await ageSignIns('lena', 60, rememberDatabase)) >= 1);
    await assertAsksForPassword(browser, '30 seconds after the window ended');
  }));

test("rememberSignInMinutes: the account page's sign-out ends the provider's session of that browser", { skip }, () =>
  withRememberService(async () => {
    const browser = newBrowser();
    await signInLena(browser);
    await assertSignInReused(browser, 'before the sign-out');
    const second = await browser.submit(await browser.request(`${svc().issuer}/account`), 'sign-in-form', { username: 'lena', password: 'lena-password' });
    assert.match(second.body, /id="totp-form"/);
    const accountPage = await browser.submit(await browser.request(`${svc().issuer}/account/recovery`), 'recovery-form', { code: lenaCodes.shift()! });
    assert.equal(textOf(accountPage, 'account-username'), 'lena');
    await browser.submitAction(accountPage, '/sign-out');
    await assertAsksForPassword(browser, "after the account page's sign-out");
  }));

test('rememberSignInMinutes: reset-2fa ends every session of the user (two browsers)', { skip }, () =>
  withRememberService(async () => {
    const [laptop, phone] = [newBrowser(), newBrowser()];
    await signInLena(laptop);
    await signInLena(phone);
    await assertSignInReused(laptop, 'before the reset');
    assert.equal((await admin(authAdminRoutes.resetSecondFactors('lena'), { method: 'POST', body: {} })).status, 200);
    await assertAsksForPassword(laptop, 'the laptop after reset-2fa');
    await assertAsksForPassword(phone, 'the phone after reset-2fa');
  }));

test('rememberSignInMinutes: a deactivation in Synapse stops reuse at the next request; end-sessions (users deactivate) removes every session, grant and token', { skip }, () =>
  withRememberService(async () => {
    assert.equal((await admin(authAdminRoutes.password('mia'), { method: 'PUT', body: { password: 'mia-password' } })).status, 204);
    const [desk, tablet] = [newBrowser(), newBrowser()];
    for (const browser of [desk, tablet]) {
      const authorization = await startAuthorization(browser);
      const done = await signInWithPassword(browser, authorization, 'mia', 'mia-password');
      assert.equal((await exchangeCode(callbackCode(done, authorization), authorization.verifier)).status, 200, 'mia needs no factor under this policy');
    }
    await assertSignInReused(desk, 'before the deactivation');
    await postgres!.poolFor('synapse').query("UPDATE users SET deactivated = 1 WHERE name = '@mia:example.test'");
    await assertAsksForPassword(desk, 'after the deactivation in Synapse');
    assert.equal((await admin(authAdminRoutes.endSessions('mia'), { method: 'POST', body: {} })).status, 204);
    const kept = await postgres!.poolFor(rememberDatabase).query("SELECT model FROM auth_oidc_payloads WHERE payload->>'accountId' = 'mia'");
    assert.deepEqual(kept.rows, [], 'no session, grant or token of mia is left');
    const refused = await signInWithPassword(tablet, await assertAsksForPassword(tablet, 'after end-sessions'), 'mia', 'mia-password');
    assert.equal(textOf(refused, 'error'), 'Wrong username or password.');
  }));

test('rememberSignInMinutes: switching "required" on (a restart with new values) forces enrolment at the next authorization of a remembered user without a factor; users info says so first', { skip }, () =>
  withRememberService(async () => {
    assert.equal((await admin(authAdminRoutes.password('nina'), { method: 'PUT', body: { password: 'nina-password' } })).status, 204);
    const browser = newBrowser();
    const first = await startAuthorization(browser);
    assert.equal((await exchangeCode(callbackCode(await signInWithPassword(browser, first, 'nina', 'nina-password'), first), first.verifier)).status, 200);
    await assertSignInReused(browser, 'under the old policy');
    assert.equal(((await admin(authAdminRoutes.account('nina'))).json as AdminAccountInfo).mustEnrol, false);
    rememberServices.push(await startAuthService({ postgres: postgres!, replicaOf: rememberServices[0]!, policy: { required: true } }));
    service = rememberServices.at(-1)!;
    assert.equal(((await admin(authAdminRoutes.account('nina'))).json as AdminAccountInfo).mustEnrol, true, 'users info: must enrol, from the policy in force');
    const again = await assertAsksForPassword(browser, 'under required: true');
    assert.match((await signInWithPassword(browser, again, 'nina', 'nina-password')).body, /id="enrol-totp"/, 'made to enrol');
  }));
