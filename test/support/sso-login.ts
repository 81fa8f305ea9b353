/**
 * Signing in to a local stack with 2FA as a person would, in a real browser: Synapse's SSO redirect for the
 * idp `oidc-mxstack`, the auth component's pages (password, then a second factor or enrolment), Synapse's
 * callback, and the redirect carrying `loginToken`, which is exchanged for a Matrix access token with
 * `m.login.token` (then /account/whoami proves it works).
 *
 * The pages are driven through the element ids they promise (documented at the top of
 * src/auth-service/pages.ts).
 */
import type { BrowserContext, Locator, Page } from 'playwright-core';
import { matrixRequest } from './matrix-client.js';
import { parseTotpUri, readQrCode, totpCodeAtStep, totpStep, type TotpEnrolment } from './browser.js';

/** Synapse shows the built-in provider as `oidc-` + its idp_id `mxstack`. */
export const mxstackIdpId = 'oidc-mxstack';

export interface StackUrls {
  /** The public base URL the browser uses (`http://localhost:<router>/`: WebAuthn needs a domain, not an IP). */
  browserBase: string;
  /** The same router for API calls from the test (`http://127.0.0.1:<router>/`). */
  apiBase: string;
  /** Where Synapse sends the browser back with `loginToken` (whitelisted; answered by the test, never by the stack). */
  redirectUrl: string;
}

export interface MatrixLogin {
  user_id: string;
  access_token: string;
  device_id?: string;
}

/** `<public base>_matrix/client/v3/login/sso/redirect/oidc-mxstack?redirectUrl=...` */
export function ssoRedirectUrl(urls: StackUrls): string {
  const url = new URL(`_matrix/client/v3/login/sso/redirect/${mxstackIdpId}`, urls.browserBase);
  url.searchParams.set('redirectUrl', urls.redirectUrl);
  return url.href;
}

/**
 * Answers the redirect URL inside the browser (a small "signed in" page), so the flow's last hop needs no
 * server and the test reads `loginToken` from the URL. Call once per context.
 */
export async function answerRedirectUrl(context: BrowserContext, urls: StackUrls): Promise<void> {
  const target = new URL(urls.redirectUrl);
  await context.route(
    (url) => url.origin === target.origin && url.pathname === target.pathname,
    (route) => route.fulfill({ status: 200, contentType: 'text/html', body: '<!doctype html><title>Signed in</title><p id="signed-in">Signed in.</p>' }),
  );
}

/**
 * The auth pages' elements (ids documented at the top of src/auth-service/pages.ts). Kept in one
 * place: the tests speak in user actions.
 */
export const authPage = {
  username: (page: Page) => page.locator('#username'),
  password: (page: Page) => page.locator('#password'),
  signInButton: (page: Page) => page.locator('#sign-in'),
  /** The TOTP code field, on the second-factor page and on the enrolment confirmation. */
  code: (page: Page) => page.locator('#code'),
  verifyButton: (page: Page) => page.locator('#verify'),
  useRecoveryCode: (page: Page) => page.locator('#use-recovery-code'),
  recoveryCode: (page: Page) => page.locator('#recovery-code'),
  useRecoveryButton: (page: Page) => page.locator('#use-recovery'),
  useSecurityKey: (page: Page) => page.locator('#use-security-key'),
  enrolTotp: (page: Page) => page.locator('#enrol-totp'),
  enrolSecurityKey: (page: Page) => page.locator('#enrol-security-key'),
  qrCode: (page: Page) => page.locator('#totp-qr'),
  totpSecret: (page: Page) => page.locator('#totp-secret'),
  confirmTotp: (page: Page) => page.locator('#confirm-totp'),
  recoveryCodes: (page: Page) => page.locator('#recovery-codes'),
  savedButton: (page: Page) => page.locator('#saved'),
  error: (page: Page) => page.locator('#error'),
  notice: (page: Page) => page.locator('#notice'),
  account: {
    username: (page: Page) => page.locator('#account-username'),
    totpStatus: (page: Page) => page.locator('#totp-status'),
    securityKeys: (page: Page) => page.locator('#security-keys > li'),
    securityKeyName: (page: Page) => page.locator('#security-key-name'),
    addSecurityKey: (page: Page) => page.locator('#add-security-key'),
    recoveryCodesLeft: (page: Page) => page.locator('#recovery-codes-left'),
    signOut: (page: Page) => page.locator('#sign-out'),
  },
};

/** Opens Synapse's SSO redirect and waits for the auth component's sign-in form. */
export async function openSignIn(page: Page, urls: StackUrls): Promise<void> {
  await page.goto(ssoRedirectUrl(urls));
  await authPage.password(page).waitFor({ state: 'visible' });
}

/**
 * After a navigation that reaches the identity provider in a browser that may hold an earlier sign-in: 'password'
 * when the auth pages ask for it, 'nothing' when the browser came straight back (the login's redirect URL or
 * Synapse's confirmation on the way there, or Synapse's "Thank you" page after a user-interactive confirmation).
 */
export async function whatTheProviderAsks(page: Page, timeoutMs = 60_000): Promise<'password' | 'nothing'> {
  // Back at the redirect URL (a login token in the URL), at Synapse's confirmation before it (a link carrying
  // the token), or at Synapse's "Thank you" after a confirmation.
  const cameBack = page.locator('#signed-in').or(page.locator('a[href*="loginToken="]')).or(page.getByRole('heading', { name: 'Thank you' }));
  const asked = authPage.password(page).waitFor({ state: 'visible', timeout: timeoutMs }).then(() => 'password' as const);
  const shown = cameBack.first().waitFor({ state: 'visible', timeout: timeoutMs }).then(() => 'nothing' as const);
  const tokenInUrl = page.waitForURL((url) => url.searchParams.has('loginToken'), { timeout: timeoutMs }).then(() => 'nothing' as const);
  try {
    return await Promise.any([asked, shown, tokenInUrl]);
  } catch (error) {
    throw new Error(`neither asked for the password nor came back within ${timeoutMs} ms; the browser is at ${describePage(page.url())}: ${await pageSummary(page)}`, { cause: error });
  }
}

/** Submits a form by clicking its button and waits for the page the POST answers with. */
async function clickAndLoad(page: Page, button: Locator): Promise<void> {
  await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), button.click()]);
}

export async function submitPassword(page: Page, username: string, password: string): Promise<void> {
  await authPage.username(page).fill(username);
  await authPage.password(page).fill(password);
  await clickAndLoad(page, authPage.signInButton(page));
}

/** The code on the second-factor page (`#verify`) or on the enrolment confirmation (`#confirm-totp`). */
export async function submitCode(page: Page, code: string): Promise<void> {
  await authPage.code(page).fill(code);
  const confirm = authPage.confirmTotp(page);
  await clickAndLoad(page, (await confirm.count()) > 0 ? confirm : authPage.verifyButton(page));
}

/** From the second-factor page: "Use a recovery code", then the code. */
export async function submitRecoveryCode(page: Page, code: string): Promise<void> {
  if ((await authPage.recoveryCode(page).count()) === 0) await clickAndLoad(page, authPage.useRecoveryCode(page));
  await authPage.recoveryCode(page).fill(code);
  await clickAndLoad(page, authPage.useRecoveryButton(page));
}

/** On the enrolment page: "Set up an authenticator app" (when a choice is offered), then the QR code. */
export async function startTotpEnrolment(page: Page): Promise<TotpEnrolment> {
  await authPage.qrCode(page).or(authPage.enrolTotp(page)).first().waitFor({ state: 'visible' });
  if ((await authPage.enrolTotp(page).count()) > 0) await clickAndLoad(page, authPage.enrolTotp(page));
  return readEnrolmentQr(page);
}

/** On the recovery-codes page: "I saved them" (the flow continues to Synapse). */
export async function confirmRecoveryCodesSaved(page: Page): Promise<void> {
  await authPage.savedButton(page).click();
}

/** The text of the page's alert (`#error`, role=alert: refusals are announced that way), or ''. */
export async function alertText(page: Page): Promise<string> {
  const alert = authPage.error(page);
  return (await alert.count()) > 0 ? ((await alert.first().textContent()) ?? '').trim() : '';
}

/**
 * Waits for the browser to arrive at the redirect URL with `loginToken` (through Synapse's confirmation page
 * when the redirect URL is not whitelisted: its link is followed) and returns the token.
 */
export async function awaitLoginToken(page: Page, urls: StackUrls, timeoutMs = 60_000): Promise<string> {
  const target = new URL(urls.redirectUrl);
  const arrived = (url: URL) => url.origin === target.origin && url.pathname === target.pathname && url.searchParams.has('loginToken');
  const deadline = Date.now() + timeoutMs;
  while (!arrived(new URL(page.url()))) {
    if (Date.now() > deadline) throw new Error(`no loginToken within ${timeoutMs} ms; the browser is at ${describePage(page.url())}: ${await pageSummary(page)}`);
    const confirm = page.locator('a[href*="loginToken="]');
    if ((await confirm.count()) > 0) {
      await confirm.first().click();
      continue;
    }
    await page.waitForURL(arrived, { timeout: Math.min(2_000, Math.max(1, deadline - Date.now())) }).catch(() => undefined);
  }
  return new URL(page.url()).searchParams.get('loginToken')!;
}

/** A URL without its query (which may hold tokens or states). */
export function describePage(url: string): string {
  const parsed = new URL(url);
  return `${parsed.origin}${parsed.pathname}`;
}

/** The page's heading and alert, for failure messages. */
export async function pageSummary(page: Page): Promise<string> {
  const heading = await page.locator('h1').first().textContent({ timeout: 2_000 }).catch(() => undefined);
  const alert = await alertText(page).catch(() => '');
  return `title "${await page.title().catch(() => '')}", heading "${heading?.trim() ?? ''}"${alert ? `, alert "${alert}"` : ''}`;
}

/** `m.login.token` (single use), then /account/whoami with the new access token. */
export async function exchangeLoginToken(urls: StackUrls, loginToken: string): Promise<MatrixLogin> {
  const login = await matrixRequest<MatrixLogin>(urls.apiBase, 'POST', '/_matrix/client/v3/login', { body: { type: 'm.login.token', token: loginToken } });
  const whoami = await matrixRequest<{ user_id: string }>(urls.apiBase, 'GET', '/_matrix/client/v3/account/whoami', { accessToken: login.access_token });
  if (whoami.user_id !== login.user_id) throw new Error(`whoami says ${whoami.user_id}, the login said ${login.user_id}`);
  return login;
}

/** On the enrolment page: reads the QR code from its screenshot and parses the otpauth:// URI. */
export async function readEnrolmentQr(page: Page): Promise<TotpEnrolment> {
  const qr = authPage.qrCode(page);
  await qr.waitFor({ state: 'visible' });
  return parseTotpUri(await readQrCode(qr));
}

/** The recovery codes as shown (once) after an enrolment. */
export async function readRecoveryCodes(page: Page): Promise<string[]> {
  const list = authPage.recoveryCodes(page);
  await list.waitFor({ state: 'visible' });
  const text = (await list.textContent()) ?? '';
  return [...text.matchAll(/[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}/g)].map((match) => match[0]);
}

/**
 * The step of a code that the service will accept as fresh: not before the current step, and after the last
 * step this account used (a code whose step is not after it is refused as replayed). Waits (bounded) only
 * when even the next step's code (still accepted, ±1 step) would not be after it.
 */
export async function freshStep(enrolment: TotpEnrolment, lastUsedStep: number | undefined): Promise<number> {
  const deadline = Date.now() + 3 * enrolment.period * 1000;
  for (;;) {
    const current = totpStep(enrolment);
    const wanted = Math.max(current, (lastUsedStep ?? -Infinity) + 1);
    if (wanted <= current + 1) return wanted;
    if (Date.now() > deadline) throw new Error('the TOTP clock did not advance');
    await new Promise((resolve) => setTimeout(resolve, 1_000));
  }
}

/**
 * A person's first sign-in with TOTP required: the SSO redirect, password, TOTP enrolment with a fresh
 * code, the ten recovery codes confirmed, back at the client with `loginToken`, exchanged for an access
 * token (whoami checked). One browser context, closed after.
 */
export async function signInEnrolling(browser: { newContext(): Promise<BrowserContext> }, urls: StackUrls, username: string, password: string): Promise<MatrixLogin & { recoveryCodes: string[] }> {
  const context = await browser.newContext();
  try {
    await answerRedirectUrl(context, urls);
    const page = await context.newPage();
    await openSignIn(page, urls);
    await submitPassword(page, username, password);
    const enrolment = await startTotpEnrolment(page);
    await submitCode(page, totpCodeAtStep(enrolment, await freshStep(enrolment, undefined)));
    const recoveryCodes = await readRecoveryCodes(page);
    await confirmRecoveryCodesSaved(page);
    return { ...(await exchangeLoginToken(urls, await awaitLoginToken(page, urls))), recoveryCodes };
  } finally {
    await context.close();
  }
}
