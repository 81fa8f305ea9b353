/**
 * Two-factor sign-in end to end, in a real browser (Debian's Chromium through playwright-core) against ONE
 * real local stack: Synapse, PostgreSQL, the router and the auth component (the built-in identity provider).
 * Every sign-in goes the way Element sends a person: Synapse's SSO redirect for `oidc-mxstack`, the auth
 * pages, Synapse's callback, the redirect carrying `loginToken`, then `m.login.token` for an access token.
 *
 * The stack first runs WITHOUT 2FA (a user is created in Synapse the old way, with a password), then is
 * stopped and started again, same state directory, with `synapse.server.mfa.totp.enabled` and
 * `.webauthn.enabled`, `required: true` (every account must enrol at its next sign-in: the test needs
 * enrolment at first sign-in for new and old accounts alike) and the shortest lockout (60 s).
 *
 * The browser uses `http://localhost:<router>/` as the public base URL: WebAuthn refuses IP-address origins.
 * Contexts get their own loopback source address where per-address throttling would otherwise mix the
 * cases (a lockout of one address must not be what refuses another account).
 *
 * MXSTACK_SCREENSHOTS=<dir> also saves the screenshots docs/2fa.md shows (light, one dark).
 *
 * MXSTACK_TEST_WORKERS_PRESET=small|large (the workers stage of scripts/test.sh) runs the stack with that
 * synapse.workers preset, started once with 2FA on (no stack before 2FA: no stop and start), and only the
 * cases that take the router's paths through the pools: the login flows, TOTP enrolment at the first
 * sign-in through Synapse's SSO redirect (which the router sends to the main process), a sign-in with a code,
 * `m.login.token` and a request with the access token through the router (a client reader), the
 * user-interactive confirmation through Synapse's SSO fallback (delete_devices on the stream writer), and a
 * check of the worker logs that the routing table's processes answered those steps. The other cases test the
 * auth component, which workers do not change: they run with the single process only (default, none).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { stringify } from 'yaml';
import { runCliAsync, startLocalStack, testPresetRuns, testWorkersPreset, workersPresetSets, type LocalStackHandle } from '../support/local-stack.js';
import { loginWithPassword, matrixRequest, MatrixHttpError } from '../support/matrix-client.js';
import {
  addVirtualAuthenticator,
  browserSkipReason,
  launchBrowser,
  totpCodeAtStep,
  totpStep,
  type BrowserOptions,
  type TestBrowser,
  type TotpEnrolment,
  type VirtualCredential,
} from '../support/browser.js';
import {
  alertText,
  answerRedirectUrl,
  authPage,
  awaitLoginToken,
  describePage,
  exchangeLoginToken,
  freshStep,
  openSignIn,
  pageSummary,
  confirmRecoveryCodesSaved,
  readRecoveryCodes,
  startTotpEnrolment,
  submitCode,
  submitPassword,
  submitRecoveryCode,
  ssoRedirectUrl,
  whatTheProviderAsks,
  type MatrixLogin,
  type StackUrls,
} from '../support/sso-login.js';
import { freeLoopbackPort } from '../support/component-stacks.js';
import { readFileSync } from 'node:fs';
import { stateLayout } from '../../src/targets/local/state.js';

const skip = browserSkipReason() ?? (process.getuid?.() !== 0 ? 'the local stack needs root' : undefined);
const screenshotDir = process.env.MXSTACK_SCREENSHOTS;
const withWorkers = testWorkersPreset !== 'none';
/** Cases of the auth component itself (or of the stack before 2FA): with the single process only. */
const singleOnly = skip ?? (withWorkers ? `runs with the single process only (this run: synapse.workers.preset=${testWorkersPreset})` : undefined);

let browser: TestBrowser;
let stack: LocalStackHandle | undefined;
let workDir: string;
let urls: StackUrls;

/** Passwords of the test's accounts (each also in a file for `users create --password-file`). */
const passwords = {
  pat: 'pat-had-this-before-2fa-1',
  alice: 'alice-correct-horse-battery',
  carol: 'carol-staple-and-battery-2',
  erin: 'erin-the-right-password-3',
};

/** What the cases learn from each other (they share the stack and run in order). */
const alice: { enrolment?: TotpEnrolment; lastStep?: number; recoveryCodes?: string[]; securityKey?: VirtualCredential } = {};
const pat: { enrolment?: TotpEnrolment; lastStep?: number } = {};
let erinLockedUntilMs: number | undefined;

function writeValues(name: string, values: unknown): string {
  const file = join(workDir, name);
  writeFileSync(file, stringify(values));
  return file;
}

async function cli(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return runCliAsync([...args, '--state-dir', stack!.stateDir], { timeoutMs: 120_000 });
}

async function cliOk(args: string[]): Promise<string> {
  const result = await cli(args);
  assert.equal(result.status, 0, `mxstack ${args.join(' ')} failed:\n${result.stderr}\n${result.stdout}`);
  return result.stdout;
}

async function createUser(username: keyof typeof passwords): Promise<void> {
  const file = join(workDir, `${username}.password`);
  writeFileSync(file, `${passwords[username]}\n`, { mode: 0o600 });
  await cliOk(['users', 'create', username, '--password-file', file]);
}

/** `users info --output json`, the part 2FA adds (src/ops/users.ts SecondFactors). */
interface SecondFactors {
  password: 'argon2id' | 'synapse-bcrypt' | 'none';
  authenticator_app: { enrolled: boolean; enrolled_at: string | null };
  security_keys: { name: string; created: string; last_used: string | null }[];
  recovery_codes_left: number;
  must_enrol: boolean;
  locked_until: string | null;
}

/** The user's second factors; null while the auth service has no account yet (never signed in there). */
async function secondFactorsOrNull(username: string): Promise<SecondFactors | null> {
  const info = JSON.parse(await cliOk(['users', 'info', username, '--output', 'json'])) as { second_factors?: SecondFactors | null };
  assert.notEqual(info.second_factors, undefined, `users info ${username} has no second_factors field while 2FA is on`);
  return info.second_factors!;
}

async function secondFactors(username: string): Promise<SecondFactors> {
  const factors = await secondFactorsOrNull(username);
  assert.ok(factors, `users info ${username}: no account at the auth service`);
  return factors;
}

/** A fresh browser context (no cookies: a person on another device) that answers the redirect URL. */
async function newContext(options: BrowserOptions = {}): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext(options);
  await answerRedirectUrl(context, urls);
  return { context, page: await context.newPage() };
}

/** With MXSTACK_SCREENSHOTS: the page, full width, down to a little below its card (no empty tail). */
async function screenshot(page: Page, name: string): Promise<void> {
  if (!screenshotDir) return;
  mkdirSync(screenshotDir, { recursive: true });
  const card = await page.locator('main').first().boundingBox();
  const width = page.viewportSize()?.width ?? 800;
  await page.screenshot({
    path: join(screenshotDir, `${name}.png`),
    fullPage: true,
    animations: 'disabled',
    caret: 'hide',
    ...(card ? { clip: { x: 0, y: 0, width, height: Math.ceil(card.y + card.height + 40) } } : {}),
  });
}

/** With MXSTACK_SCREENSHOTS, also the terminal output docs/2fa.md quotes. */
function saveTerminalOutput(name: string, command: string, output: string): void {
  if (!screenshotDir) return;
  mkdirSync(screenshotDir, { recursive: true });
  writeFileSync(join(screenshotDir, `${name}.txt`), `$ ${command}\n${output}`);
}

async function signedIn(page: Page): Promise<MatrixLogin> {
  return exchangeLoginToken(urls, await awaitLoginToken(page, urls));
}

/** Enters a TOTP code for a step the service will take as fresh; records the step used. */
async function enterFreshCode(page: Page, enrolment: TotpEnrolment, state: { lastStep?: number }): Promise<void> {
  const step = await freshStep(enrolment, state.lastStep);
  await submitCode(page, totpCodeAtStep(enrolment, step));
  state.lastStep = step;
}

/** Still on a page that asks for a code, with a refusal announced. */
async function assertCodeRefused(page: Page, what: string): Promise<void> {
  assert.ok(!new URL(page.url()).searchParams.has('loginToken'), `${what}: signed in anyway`);
  await authPage.code(page).waitFor({ state: 'visible' });
  assert.notEqual(await alertText(page), '', `${what}: no refusal shown (${await pageSummary(page)})`);
}

before(async () => {
  if (skip) return;
  workDir = mkdtempSync(join(tmpdir(), 'mxstack-2fa-'));
  // The state directory lives inside: the auth service's own uid must be able to pass through (not list).
  chmodSync(workDir, 0o711);
  const routerPort = await freeLoopbackPort();
  urls = {
    browserBase: `http://localhost:${routerPort}/`,
    apiBase: `http://127.0.0.1:${routerPort}/`,
    redirectUrl: `http://localhost:${routerPort}/signed-in`,
  };
  const common = {
    router: { port: routerPort },
    synapse: {
      server: {
        publicBaseurl: urls.browserBase,
        // Many logins from one address in a few minutes: Synapse's own login rate limit is not under test.
        rateLimits: { loginPerSecond: 10, loginBurst: 100 },
        sso: { clientWhitelist: [urls.redirectUrl] },
      },
    },
  };
  const withoutTwoFactor = writeValues('values-before.yaml', common);
  const withTwoFactor = writeValues('values-2fa.yaml', {
    ...common,
    synapse: {
      server: {
        ...common.synapse.server,
        mfa: {
          totp: { enabled: true, issuer: 'mxstack test' },
          webauthn: { enabled: true, rpName: 'mxstack test' },
          required: true,
          lockout: { maxFailures: 10, durationSeconds: 60 },
        },
      },
    },
  });
  const stateDir = join(workDir, 'state');

  if (withWorkers) {
    // The workers' paths only: one stack, started with 2FA on (pat's case, the stack before 2FA, is not run).
    stack = await startLocalStack({ stateDir, valuesFiles: [withTwoFactor], sets: workersPresetSets(), timeoutMs: 1_200_000 });
    browser = await launchBrowser();
    return;
  }
  // 1. The stack as it was before 2FA: Pat gets an account (and a Synapse bcrypt password) the old way.
  const before2fa = await startLocalStack({ stateDir, valuesFiles: [withoutTwoFactor] });
  stack = before2fa;
  await createUser('pat');
  // Her password works in Synapse now: its refusal later is 2FA's doing, not a wrong password.
  await loginWithPassword(urls.apiBase, 'pat', passwords.pat);
  await before2fa.down();
  // 2. The same state directory with 2FA on: Synapse keeps its users.
  stack = await startLocalStack({ stateDir, valuesFiles: [withTwoFactor] });
  browser = await launchBrowser();
}, { timeout: 1_200_000 });

after(async () => {
  await browser?.close();
  await stack?.dispose();
  if (workDir) rmSync(workDir, { recursive: true, force: true });
}, { timeout: 300_000 });

test('while 2FA is on Synapse offers only SSO through oidc-mxstack: m.login.password is refused, even with the right password', { skip, timeout: 120_000 }, async () => {
  const flows = await matrixRequest<{ flows: { type: string; identity_providers?: { id: string }[] }[] }>(urls.apiBase, 'GET', '/_matrix/client/v3/login');
  const types = flows.flows.map((flow) => flow.type);
  assert.ok(!types.includes('m.login.password'), `flows: ${types.join(', ')}`);
  const sso = flows.flows.find((flow) => flow.type === 'm.login.sso');
  assert.ok(sso?.identity_providers?.some((idp) => idp.id === 'oidc-mxstack'), JSON.stringify(sso));
  // Pat's password is still in Synapse's users table (bcrypt, from before 2FA): it must not log in there.
  await assert.rejects(
    matrixRequest(urls.apiBase, 'POST', '/_matrix/client/v3/login', {
      body: { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'pat' }, password: passwords.pat },
    }),
    (error: unknown) => error instanceof MatrixHttpError && error.status >= 400 && error.status < 500,
  );
});

/** The access log lines of one process (Synapse logs each request it answered at INFO). */
function requestLines(component: string, request: RegExp): string[] {
  const log = readFileSync(stateLayout(stack!.stateDir).logFile(component), 'utf8');
  return log.split('\n').filter((line) => line.includes('synapse.access.') && request.test(line));
}

/** Which Synapse processes answered a request: `synapse` (main) or `synapse-<worker>`. */
function answeredBy(request: RegExp): string[] {
  const processes = Object.keys(stack!.status.components).filter((name) => name === 'synapse' || name.startsWith('synapse-'));
  return processes.filter((name) => requestLines(name, request).length > 0);
}

test('a user created before 2FA signs in with the old password, is made to enrol, and users info then shows the factor', { skip: singleOnly, timeout: 180_000 }, async () => {
  const before = await secondFactorsOrNull('pat');
  assert.equal(before?.authenticator_app.enrolled ?? false, false);
  const { context, page } = await newContext();
  await openSignIn(page, urls);
  await submitPassword(page, 'pat', passwords.pat);
  const enrolment = await startTotpEnrolment(page);
  assert.match(enrolment.label, /pat/);
  pat.enrolment = enrolment;
  await enterFreshCode(page, enrolment, pat);
  const codes = await readRecoveryCodes(page);
  assert.equal(codes.length, 10);
  await confirmRecoveryCodesSaved(page);
  const login = await signedIn(page);
  assert.equal(login.user_id, `@pat:${stack!.status.serverName}`);
  const after = await secondFactors('pat');
  assert.equal(after.authenticator_app.enrolled, true);
  assert.equal(after.recovery_codes_left, 10);
  assert.equal(after.must_enrol, false);
  assert.equal(after.password, 'argon2id', 'the Synapse bcrypt hash was replaced at the first sign-in');
  await context.close();
});

test('enrol an authenticator app: the QR code decodes to the configured TOTP parameters; recovery codes are shown once', { skip, timeout: 180_000 }, async () => {
  await createUser('alice');
  const { context, page } = await newContext();
  await openSignIn(page, urls);
  await screenshot(page, '1-sign-in');
  await submitPassword(page, 'alice', passwords.alice);
  await authPage.enrolTotp(page).waitFor({ state: 'visible' });
  await screenshot(page, '2-enrol-choice');
  const enrolment = await startTotpEnrolment(page);
  await screenshot(page, '3-enrol-qr');
  assert.equal((await authPage.totpSecret(page).textContent())?.replace(/\s/g, ''), enrolment.secret, 'the key shown for typing is the one in the QR code');
  assert.deepEqual([enrolment.issuer, enrolment.digits, enrolment.period, enrolment.algorithm], ['mxstack test', 6, 30, 'SHA1']);
  assert.match(enrolment.label, /alice/);
  alice.enrolment = enrolment;
  await enterFreshCode(page, enrolment, alice);
  const codes = await readRecoveryCodes(page);
  await screenshot(page, '4-recovery-codes');
  assert.equal(codes.length, 10);
  assert.equal(new Set(codes).size, 10);
  alice.recoveryCodes = codes;
  await confirmRecoveryCodesSaved(page);
  const login = await signedIn(page);
  assert.equal(login.user_id, `@alice:${stack!.status.serverName}`);
  // Shown once: going back does not show them again.
  await page.goBack().catch(() => undefined);
  const text = await page.content();
  for (const code of codes) assert.ok(!text.includes(code), 'a recovery code was shown a second time');
  await context.close();
});

test('sign in with password and a code from the app: a Matrix access token', { skip, timeout: 180_000 }, async () => {
  assert.ok(alice.enrolment, 'alice enrolled in the previous test');
  const { context, page } = await newContext();
  await openSignIn(page, urls);
  await submitPassword(page, 'alice', passwords.alice);
  await authPage.code(page).waitFor({ state: 'visible' });
  await screenshot(page, '5-code');
  await enterFreshCode(page, alice.enrolment, alice);
  const login = await signedIn(page);
  assert.equal(login.user_id, `@alice:${stack!.status.serverName}`);
  await context.close();
});

/** On the sign-in page: alice's password, then (asked for) a fresh code from her app. */
async function aliceGivesPasswordAndCode(page: Page): Promise<void> {
  assert.ok(alice.enrolment, 'alice enrolled earlier');
  await submitPassword(page, 'alice', passwords.alice);
  await authPage.code(page).waitFor({ state: 'visible' });
  await enterFreshCode(page, alice.enrolment, alice);
}

/** A full sign-in of alice through Synapse's SSO redirect (password and code): her Matrix login. */
async function aliceSignsIn(page: Page): Promise<MatrixLogin> {
  await openSignIn(page, urls);
  await aliceGivesPasswordAndCode(page);
  return signedIn(page);
}

test('after a completed sign-in, a second Matrix login in the same browser asks for the password and the code again', { skip: singleOnly, timeout: 240_000 }, async () => {
  const { context, page } = await newContext();
  const first = await aliceSignsIn(page);
  // The same browser, as after "Sign out" in Element: Element's sign-out cannot end the provider's session.
  await page.goto(ssoRedirectUrl(urls));
  assert.equal(await whatTheProviderAsks(page), 'password', 'the second login was let through without the password');
  await aliceGivesPasswordAndCode(page);
  const second = await signedIn(page);
  assert.equal(second.user_id, first.user_id);
  assert.notEqual(second.device_id, first.device_id, 'a new Matrix login');
  await context.close();
});

test('a user-interactive confirmation (delete_devices through Synapse\'s SSO fallback) asks for the password and the code, in a browser that just signed in', { skip, timeout: 240_000 }, async () => {
  const { context, page } = await newContext();
  const login = await aliceSignsIn(page);
  const deleteDevices = (auth?: Record<string, unknown>) =>
    matrixRequest(urls.apiBase, 'POST', '/_matrix/client/v3/delete_devices', { accessToken: login.access_token, body: { devices: [login.device_id], ...(auth ? { auth } : {}) } });
  const challenge = await deleteDevices().then(
    () => assert.fail('delete_devices without a confirmation was accepted'),
    (error: unknown) => {
      assert.ok(error instanceof MatrixHttpError && error.status === 401, String(error));
      return error.body as { session: string; flows: { stages: string[] }[] };
    },
  );
  assert.deepEqual(challenge.flows.map((flow) => flow.stages), [['m.login.sso']]);
  // What Element opens in a popup: Synapse's fallback page, "Continue with …", then the identity provider.
  const fallback = new URL('_matrix/client/v3/auth/m.login.sso/fallback/web', urls.browserBase);
  fallback.searchParams.set('session', challenge.session);
  await page.goto(fallback.href);
  const confirmation = { button: (await page.locator('a.primary-button').textContent())?.trim(), html: await page.content() };
  await Promise.all([page.waitForNavigation(), page.locator('a.primary-button').click()]);
  assert.equal(await whatTheProviderAsks(page), 'password', 'the confirmation was given without the password');
  // One name throughout (Element's brand in these values): Synapse's button and pages, the auth pages.
  const brand = 'Element';
  assert.equal(confirmation.button, `Continue with ${brand}`);
  assert.doesNotMatch(confirmation.html, /Matrix\.org Foundation|© 20\d\d/, "Synapse's footer is replaced");
  assert.match(confirmation.html, new RegExp(`<title>Confirm it's you · ${brand}</title>`));
  assert.equal((await page.locator('.brand').textContent())?.trim(), brand);
  assert.equal(await page.locator('link[rel="icon"]').getAttribute('href'), '/auth/static/favicon.svg');
  await aliceGivesPasswordAndCode(page);
  await page.getByRole('heading', { name: 'Thank you' }).waitFor({ state: 'visible' });
  assert.equal(await page.title(), `Authentication successful · ${brand}`);
  await deleteDevices({ session: challenge.session });
  const whoami = () => matrixRequest(urls.apiBase, 'GET', '/_matrix/client/v3/account/whoami', { accessToken: login.access_token });
  if (withWorkers) {
    // delete_devices ran on the stream writer; whoami goes to a client reader, which forgets the cached
    // token when the invalidation reaches it over replication (Redis): on a loaded machine, not at once.
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline && (await whoami().then(() => true, () => false))) await new Promise((resolve) => setTimeout(resolve, 500));
  }
  await assert.rejects(whoami(), (error: unknown) => error instanceof MatrixHttpError && error.status === 401, 'the device is gone');
  await context.close();
});

test('the code just used and a wrong code are refused; then a fresh code works', { skip: singleOnly, timeout: 240_000 }, async () => {
  assert.ok(alice.enrolment && alice.lastStep !== undefined, 'alice signed in with a code in the previous test');
  const enrolment = alice.enrolment;
  const { context, page } = await newContext({ sourceAddress: '127.0.0.2' });
  await openSignIn(page, urls);
  await submitPassword(page, 'alice', passwords.alice);
  await authPage.code(page).waitFor({ state: 'visible' });

  // Reused: the code of the step the previous sign-in used, still inside the ±1 window (a replay, not a
  // wrong code) unless the machine stalled for a minute.
  assert.ok(Math.abs(totpStep(enrolment) - alice.lastStep) <= 1, 'the last used step is still within the window');
  await submitCode(page, totpCodeAtStep(enrolment, alice.lastStep));
  await assertCodeRefused(page, 'the code already used');

  // Wrong: a code no step within reach produces.
  const now = totpStep(enrolment);
  const nearby = new Set([-1, 0, 1, 2].map((offset) => totpCodeAtStep(enrolment, now + offset)));
  let wrong = '000000';
  for (let n = 1; nearby.has(wrong); n += 1) wrong = String(n).padStart(6, '0');
  await submitCode(page, wrong);
  await assertCodeRefused(page, 'a wrong code');
  await screenshot(page, '6-code-refused');

  await enterFreshCode(page, enrolment, alice);
  assert.equal((await signedIn(page)).user_id, `@alice:${stack!.status.serverName}`);
  await context.close();
});

test('a recovery code signs in once, then never again', { skip: singleOnly, timeout: 180_000 }, async () => {
  assert.ok(alice.recoveryCodes?.length, 'alice has recovery codes');
  const code = alice.recoveryCodes[0]!;
  for (const attempt of ['first', 'second'] as const) {
    const { context, page } = await newContext({ sourceAddress: '127.0.0.2' });
    await openSignIn(page, urls);
    await submitPassword(page, 'alice', passwords.alice);
    await authPage.useRecoveryCode(page).click();
    await authPage.recoveryCode(page).waitFor({ state: 'visible' });
    if (attempt === 'first') await screenshot(page, '7-recovery-code');
    // Typed as a person might: lower case, spaces for dashes.
    await submitRecoveryCode(page, code.toLowerCase().replace(/-/g, ' '));
    if (attempt === 'first') {
      assert.equal((await signedIn(page)).user_id, `@alice:${stack!.status.serverName}`);
    } else {
      assert.ok(!new URL(page.url()).searchParams.has('loginToken'), 'a used recovery code signed in again');
      await authPage.recoveryCode(page).waitFor({ state: 'visible' });
      assert.notEqual(await alertText(page), '', `no refusal shown (${await pageSummary(page)})`);
    }
    await context.close();
  }
  assert.equal((await secondFactors('alice')).recovery_codes_left, 9);
});

test('add a security key on the account page, then sign in with it (virtual authenticator)', { skip: singleOnly, timeout: 240_000 }, async () => {
  assert.ok(alice.recoveryCodes, 'alice is enrolled');
  const { context, page } = await newContext();
  const authenticator = await addVirtualAuthenticator(page, { transport: 'usb' });
  // The account page signs in by itself: password, then a second factor (a recovery code: no TOTP step to wait for).
  await page.goto(new URL('auth/account', urls.browserBase).href);
  await submitPassword(page, 'alice', passwords.alice);
  await submitRecoveryCode(page, alice.recoveryCodes[1]!);
  await authPage.account.username(page).waitFor({ state: 'visible' });
  assert.equal(await authPage.account.username(page).textContent(), 'alice');
  assert.equal(await authPage.account.totpStatus(page).textContent(), 'On');
  assert.equal(await authPage.account.recoveryCodesLeft(page).textContent(), '8');
  const accountHtml = await page.content();
  assert.ok(!alice.recoveryCodes.some((code) => accountHtml.includes(code)), 'the account page shows a recovery code again');
  await screenshot(page, '8-account');
  await authPage.account.securityKeyName(page).fill('Test key');
  await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), authPage.account.addSecurityKey(page).click()]);
  await authPage.account.securityKeys(page).first().waitFor({ state: 'visible' });
  assert.match((await authPage.account.securityKeys(page).first().textContent()) ?? '', /Test key/);
  const credentials = await authenticator.credentials();
  assert.equal(credentials.length, 1, `the authenticator holds ${credentials.length} credentials (${await pageSummary(page)})`);
  alice.securityKey = credentials[0];
  assert.deepEqual((await secondFactors('alice')).security_keys.map((key) => key.name), ['Test key']);
  await screenshot(page, '9-account-with-key');
  await context.close();

  // Another browser with the same key: password, then "Use a security key".
  const other = await newContext();
  const imported = await addVirtualAuthenticator(other.page, { transport: 'usb' });
  await imported.addCredential(alice.securityKey!);
  await openSignIn(other.page, urls);
  await submitPassword(other.page, 'alice', passwords.alice);
  await authPage.useSecurityKey(other.page).waitFor({ state: 'visible' });
  await screenshot(other.page, '10-second-factor-with-key');
  await authPage.useSecurityKey(other.page).click();
  assert.equal((await signedIn(other.page)).user_id, `@alice:${stack!.status.serverName}`);
  assert.ok((await imported.credentials())[0]!.signCount > alice.securityKey!.signCount, 'the key signed an assertion');
  await other.context.close();
});

test('users reset-2fa: the user enrols afresh at the next sign-in', { skip: singleOnly, timeout: 240_000 }, async () => {
  await createUser('carol');
  const first = await newContext({ sourceAddress: '127.0.0.3' });
  await openSignIn(first.page, urls);
  await submitPassword(first.page, 'carol', passwords.carol);
  const oldEnrolment = await startTotpEnrolment(first.page);
  await enterFreshCode(first.page, oldEnrolment, {});
  await readRecoveryCodes(first.page);
  await confirmRecoveryCodesSaved(first.page);
  await signedIn(first.page);
  await first.context.close();
  assert.equal((await secondFactors('carol')).authenticator_app.enrolled, true);

  saveTerminalOutput('users-info-before-reset', 'mxstack users info carol', await cliOk(['users', 'info', 'carol']));
  const output = await cliOk(['users', 'reset-2fa', 'carol', '--yes']);
  assert.match(output, /carol/);
  saveTerminalOutput('users-reset-2fa', 'mxstack users reset-2fa carol --yes', output);
  const reset = await secondFactors('carol');
  assert.equal(reset.authenticator_app.enrolled, false);
  assert.equal(reset.recovery_codes_left, 0);
  assert.equal(reset.must_enrol, true);
  saveTerminalOutput('users-info-after-reset', 'mxstack users info carol', await cliOk(['users', 'info', 'carol']));

  const again = await newContext({ sourceAddress: '127.0.0.3' });
  await openSignIn(again.page, urls);
  await submitPassword(again.page, 'carol', passwords.carol);
  const newEnrolment = await startTotpEnrolment(again.page);
  assert.notEqual(newEnrolment.secret, oldEnrolment.secret, 'a new secret after the reset');
  await enterFreshCode(again.page, newEnrolment, {});
  assert.equal((await readRecoveryCodes(again.page)).length, 10);
  await confirmRecoveryCodesSaved(again.page);
  assert.equal((await signedIn(again.page)).user_id, `@carol:${stack!.status.serverName}`);
  await again.context.close();
});

test('10 wrong passwords lock the account for the configured time; the right password is refused meanwhile; another account still signs in', { skip: singleOnly, timeout: 240_000 }, async () => {
  await createUser('erin');
  const attacker = await newContext({ sourceAddress: '127.0.0.4' });
  const startedMs = Date.now();
  for (let attempt = 1; attempt <= 10; attempt += 1) {
    await openSignIn(attacker.page, urls);
    await submitPassword(attacker.page, 'erin', `not-the-password-${attempt}`);
    assert.notEqual(await alertText(attacker.page), '', `wrong password ${attempt}: no refusal shown (${describePage(attacker.page.url())})`);
  }
  const finishedMs = Date.now();
  await attacker.context.close();

  // The right password, from yet another address: refused, the account itself is locked.
  const owner = await newContext({ sourceAddress: '127.0.0.5' });
  await openSignIn(owner.page, urls);
  await submitPassword(owner.page, 'erin', passwords.erin);
  const refusal = await alertText(owner.page);
  assert.match(refusal, /locked|too many|try again/i, `the right password while locked: ${await pageSummary(owner.page)}`);
  await screenshot(owner.page, '11-locked');
  await owner.context.close();
  const factors = await secondFactors('erin');
  assert.ok(factors.locked_until, 'users info shows the lockout');
  erinLockedUntilMs = Date.parse(factors.locked_until);
  // The configured 60 s, counted from the 10th failure.
  assert.ok(erinLockedUntilMs >= startedMs + 60_000 - 1_000 && erinLockedUntilMs <= finishedMs + 60_000 + 1_000, `locked until ${factors.locked_until}`);

  // Alice, at another address, is not affected.
  const other = await newContext({ sourceAddress: '127.0.0.6' });
  await openSignIn(other.page, urls);
  await submitPassword(other.page, 'alice', passwords.alice);
  await submitRecoveryCode(other.page, alice.recoveryCodes![2]!);
  assert.equal((await signedIn(other.page)).user_id, `@alice:${stack!.status.serverName}`);
  await other.context.close();
});

test('a code from the previous-but-one step is refused (not a replay: the account last used an older step); a current code works', { skip: singleOnly, timeout: 240_000 }, async () => {
  assert.ok(pat.enrolment && pat.lastStep !== undefined, 'pat enrolled earlier');
  const enrolment = pat.enrolment;
  // The previous-but-one step must be after pat's last used one, or the refusal would only prove replay
  // (this runs late, during erin's lockout, so the clock has usually moved on already).
  const deadline = Date.now() + 4 * enrolment.period * 1000;
  while (totpStep(enrolment) - 2 <= pat.lastStep) {
    assert.ok(Date.now() < deadline, 'the TOTP clock did not advance');
    await new Promise((resolve) => setTimeout(resolve, 1_000));
  }
  const { context, page } = await newContext({ sourceAddress: '127.0.0.2' });
  await openSignIn(page, urls);
  await submitPassword(page, 'pat', passwords.pat);
  await authPage.code(page).waitFor({ state: 'visible' });
  await submitCode(page, totpCodeAtStep(enrolment, totpStep(enrolment) - 2));
  await assertCodeRefused(page, 'a code from the previous-but-one step');
  await enterFreshCode(page, enrolment, pat);
  assert.equal((await signedIn(page)).user_id, `@pat:${stack!.status.serverName}`);
  await context.close();
});

test('once the lockout ends the right password works again', { skip: singleOnly, timeout: 180_000 }, async () => {
  assert.ok(erinLockedUntilMs, 'erin was locked in the previous test');
  const waitMs = erinLockedUntilMs - Date.now() + 1_000;
  if (waitMs > 0) await new Promise((resolve) => setTimeout(resolve, Math.min(waitMs, 90_000)));
  const { context, page } = await newContext({ sourceAddress: '127.0.0.5' });
  await openSignIn(page, urls);
  await submitPassword(page, 'erin', passwords.erin);
  // Erin has no factor yet: the policy (required) sends her to enrolment, past the password.
  await authPage.enrolTotp(page).waitFor({ state: 'visible' });
  await context.close();
});

test('with workers, the routing table\'s processes answered the sign-in: SSO steps on the main process, the token login and whoami on a client reader, delete_devices on the stream writer (each on the main process where the preset runs no such pool)', {
  skip: skip ?? (withWorkers ? undefined : 'the single-process stack has no workers'),
  timeout: 60_000,
}, () => {
  const ssoRedirect = answeredBy(/"GET \/_matrix\/client\/v3\/login\/sso\/redirect\/oidc-mxstack\?/);
  assert.deepEqual(ssoRedirect, ['synapse'], 'the SSO redirect');
  assert.deepEqual(answeredBy(/"(GET|POST) \/_synapse\/client\/oidc\/callback/), ['synapse'], 'the OpenID Connect callback');
  // The CLI (users create) logs in on the main process's own listener, past the router: only the client
  // readers' share is counted. The cases above exchanged three login tokens through the router, and asked
  // whoami with each access token. Without client readers (the sync preset) the main process answers them,
  // and its count includes the CLI's logins.
  const clientReaders = testPresetRuns('clientReader')
    ? Object.keys(stack!.status.components).filter((name) => name.startsWith('synapse-client-reader-'))
    : ['synapse'];
  const answeredByClientReaders = (request: RegExp) => clientReaders.reduce((sum, name) => sum + requestLines(name, request).length, 0);
  assert.ok(answeredByClientReaders(/"POST \/_matrix\/client\/v3\/login HTTP/) >= 3, `${clientReaders.join(', ')} answered the m.login.token logins`);
  assert.ok(answeredByClientReaders(/"GET \/_matrix\/client\/v3\/account\/whoami HTTP/) >= 3, `${clientReaders.join(', ')} answered whoami`);
  const streamWriter = testPresetRuns('streamWriter') ? 'synapse-stream-writer-1' : 'synapse';
  assert.deepEqual(answeredBy(/"POST \/_matrix\/client\/v3\/delete_devices HTTP/), [streamWriter], 'delete_devices');
});

test('dark theme: the sign-in page follows the system colour scheme', { skip: singleOnly, timeout: 60_000 }, async () => {
  const { context, page } = await newContext({ colorScheme: 'dark' });
  await openSignIn(page, urls);
  const background = await page.evaluate('getComputedStyle(document.body).backgroundColor');
  const [r = 255, g = 255, b = 255] = String(background).match(/\d+/g)!.map(Number);
  assert.ok(r + g + b < 3 * 128, `dark background expected, got ${background}`);
  await screenshot(page, '12-sign-in-dark');
  await context.close();
});
