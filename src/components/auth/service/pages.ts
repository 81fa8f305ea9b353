/**
 * The server-rendered pages of the auth service. Every value is escaped by the `html` template.
 *
 * Elements a browser test drives (ids are stable; labels and button texts as shown):
 * - every page: `#error` (role=alert, aria-live; the message of a refusal, e.g. "Wrong username or
 *   password.", "Too many attempts; try again in N minutes.", "Wrong code.")
 * - sign-in (`<flow>` = /auth/interaction/<uid> or /auth/account): form `#sign-in-form` (POST <flow>/password),
 *   `#username` (label "Username"), `#password` (label "Password"), button `#sign-in` "Sign in"
 * - second factor: form `#totp-form` (POST <flow>/totp), `#code` (label "Authentication code"), button
 *   `#verify` "Verify"; button `#use-security-key` "Use a security key" (only with security keys); link
 *   `#use-recovery-code` "Use a recovery code" → form `#recovery-form` (POST <flow>/recovery),
 *   `#recovery-code` (label "Recovery code"), button `#use-recovery` "Sign in with recovery code", link
 *   `#back-to-code` "Back"; button `#cancel` "Sign in as someone else"
 * - enrolment choice: button `#enrol-totp` "Set up an authenticator app", button `#enrol-security-key`
 *   "Add a security key" (with `#security-key-name`, label "Name of the security key")
 * - authenticator app enrolment: `#totp-qr` (inline SVG QR code of the otpauth:// URI), `#totp-secret`
 *   (the secret as text), form `#totp-confirm-form` (POST <flow>/enrol/totp/confirm), `#code` (label
 *   "Authentication code"), button `#confirm-totp` "Confirm"; button `#cancel-totp` "Cancel" (back to the
 *   previous page, the unconfirmed secret dropped)
 * - recovery codes (shown once): list `#recovery-codes` (one `<li><code>` per code), button `#saved`
 *   "I saved them"
 * - account page (/auth/account, after signing in): `#totp-status` ("On"/"Off"), button `#add-totp` "Add an
 *   authenticator app" or `#remove-totp` "Remove the authenticator app"; list `#security-keys` (li per key
 *   with name, "added <date>", "last used <date>", button "Remove" of class `remove-security-key`);
 *   `#security-key-name` + button `#add-security-key` "Add a security key"; `#recovery-codes-left`
 *   (a number); button `#regenerate-recovery-codes` "Generate new recovery codes"; form
 *   `#change-password-form` with `#current-password` ("Current password"), `#new-password`
 *   ("New password"), button `#change-password` "Change password"; `#notice` (role=status, e.g.
 *   "Password changed."); button `#sign-out` "Sign out"; link `#back-to-element` "Back to Element" when set.
 * - sign-out (/auth/session/end, oidc-provider's form `#op.logoutForm`): button `#confirm-sign-out` "Sign out",
 *   `#stay-signed-in` "Stay signed in"; afterwards `#signed-out`.
 * - the security key buttons run /auth/static/auth.js (navigator.credentials); a refusal appears in `#error`.
 * WebAuthn needs a domain origin: browse the pages at `localhost`, never `127.0.0.1`, and configure
 * policy.webauthn.{rpId, origin} to match.
 */
import { html, type Html } from './html.js';

export interface PageContext {
  readonly brand: string;
  readonly prefix: string;
  readonly csrf: string;
}

export interface FlowPage extends PageContext {
  /** Base path of the flow's routes: `/auth/interaction/<uid>` or `/auth/account`. */
  readonly flow: string;
  readonly error?: string | undefined;
  readonly notice?: string | undefined;
}

export function layout(ctx: PageContext, title: string, body: Html, options: { scripts?: boolean } = {}): string {
  return html`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<meta name="csrf-token" content="${ctx.csrf}">
<title>${title} · ${ctx.brand}</title>
<link rel="icon" type="image/svg+xml" href="${ctx.prefix}/static/favicon.svg">
<link rel="stylesheet" href="${ctx.prefix}/static/auth.css">
${options.scripts ? html`<script src="${ctx.prefix}/static/auth.js" defer></script>` : ''}
</head>
<body>
<main class="card">
<p class="brand">${ctx.brand}</p>
<h1>${title}</h1>
${body}
</main>
</body>
</html>
`.text;
}

function csrfField(ctx: PageContext): Html {
  return html`<input type="hidden" name="csrf" value="${ctx.csrf}">`;
}

function messages(page: FlowPage): Html {
  return html`<div id="error" class="error" role="alert" aria-live="assertive">${page.error ?? ''}</div>${page.notice ? html`<div id="notice" class="notice" role="status">${page.notice}</div>` : ''}`;
}

export function signInPage(page: FlowPage & { username?: string | undefined }): string {
  return layout(
    page,
    'Sign in',
    html`${messages(page)}
<form id="sign-in-form" method="post" action="${page.flow}/password">
${csrfField(page)}
<label for="username">Username</label>
<input id="username" name="username" type="text" autocomplete="username" autocapitalize="none" spellcheck="false" required value="${page.username ?? ''}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button id="sign-in" type="submit">Sign in</button>
</form>`,
  );
}

export function codeInput(digits: number): Html {
  return html`<label for="code">Authentication code</label>
<input id="code" name="code" type="text" inputmode="numeric" pattern="[0-9 ]*" autocomplete="one-time-code" maxlength="${digits + 2}" required autofocus>`;
}

export function secondFactorPage(page: FlowPage & { username: string; totp: boolean; securityKey: boolean; digits: number }): string {
  return layout(
    page,
    'Two-factor authentication',
    html`${messages(page)}
<p>Signing in as <strong>${page.username}</strong>.</p>
${page.totp
  ? html`<form id="totp-form" method="post" action="${page.flow}/totp">
${csrfField(page)}
<p>Enter the code from your authenticator app.</p>
${codeInput(page.digits)}
<button id="verify" type="submit">Verify</button>
</form>`
  : ''}
${page.securityKey
  ? html`<div class="alternative"><button id="use-security-key" type="button" class="${page.totp ? 'secondary' : ''}" data-webauthn="authenticate" data-options="${page.flow}/webauthn/authenticate/options" data-verify="${page.flow}/webauthn/authenticate/verify">Use a security key</button></div>`
  : ''}
<p class="alternative"><a id="use-recovery-code" href="${page.flow}/recovery">Use a recovery code</a></p>
<form method="post" action="${page.flow}/cancel" class="alternative">${csrfField(page)}<button id="cancel" type="submit" class="link">Sign in as someone else</button></form>`,
    { scripts: page.securityKey },
  );
}

export function recoveryPage(page: FlowPage & { username: string }): string {
  return layout(
    page,
    'Use a recovery code',
    html`${messages(page)}
<p>Signing in as <strong>${page.username}</strong>. Each recovery code works once.</p>
<form id="recovery-form" method="post" action="${page.flow}/recovery">
${csrfField(page)}
<label for="recovery-code">Recovery code</label>
<input id="recovery-code" name="code" type="text" autocomplete="off" autocapitalize="characters" spellcheck="false" required autofocus>
<button id="use-recovery" type="submit">Sign in with recovery code</button>
</form>
<p class="alternative"><a id="back-to-code" href="${page.flow}">Back</a></p>`,
  );
}

export function enrolPage(page: FlowPage & { username: string; totp: boolean; webauthn: boolean }): string {
  return layout(
    page,
    'Set up two-factor authentication',
    html`${messages(page)}
<p><strong>${page.username}</strong>, your account needs a second factor: something you have, in addition to your password.</p>
${page.totp
  ? html`<form method="post" action="${page.flow}/enrol/totp/start">
${csrfField(page)}
<button id="enrol-totp" type="submit">Set up an authenticator app</button>
</form>`
  : ''}
${page.webauthn ? securityKeyRegistration(page, page.totp) : ''}`,
    { scripts: page.webauthn },
  );
}

function securityKeyRegistration(page: FlowPage, secondary: boolean): Html {
  return html`<div class="alternative">
<label for="security-key-name">Name of the security key</label>
<input id="security-key-name" name="name" type="text" maxlength="64" value="Security key" autocomplete="off">
<button id="${page.flow.endsWith('/account') ? 'add-security-key' : 'enrol-security-key'}" type="button" class="${secondary ? 'secondary' : ''}" data-webauthn="register" data-options="${page.flow}/webauthn/register/options" data-verify="${page.flow}/webauthn/register/verify">Add a security key</button>
</div>`;
}

export function totpEnrolmentPage(page: FlowPage & { qrSvg: Html; secret: string; digits: number }): string {
  return layout(
    page,
    'Set up an authenticator app',
    html`${messages(page)}
<p>Scan this QR code with your authenticator app.</p>
<div id="totp-qr" class="qr" role="img" aria-label="QR code for your authenticator app">${page.qrSvg}</div>
<p>Or enter this key by hand: <code id="totp-secret" class="secret">${page.secret}</code></p>
<form id="totp-confirm-form" method="post" action="${page.flow}/enrol/totp/confirm">
${csrfField(page)}
<p>Then enter the code the app shows.</p>
${codeInput(page.digits)}
<button id="confirm-totp" type="submit">Confirm</button>
</form>
<form method="post" action="${page.flow}/enrol/totp/cancel" class="alternative">${csrfField(page)}<button id="cancel-totp" type="submit" class="link">Cancel</button></form>`,
  );
}

export function recoveryCodesPage(page: FlowPage & { codes: readonly string[] }): string {
  return layout(
    page,
    'Save your recovery codes',
    html`${messages(page)}
<p>Each code signs you in once if you lose your authenticator. Keep them somewhere safe: they are shown only now.</p>
<ul id="recovery-codes" class="codes">${page.codes.map((code) => html`<li><code>${code}</code></li>`)}</ul>
<form method="post" action="${page.flow}/continue">
${csrfField(page)}
<button id="saved" type="submit">I saved them</button>
</form>`,
  );
}

export interface AccountView {
  readonly username: string;
  readonly totpEnrolledAt: Date | undefined;
  readonly totpEnabled: boolean;
  readonly webauthnEnabled: boolean;
  readonly securityKeys: readonly { id: string; name: string; createdAt: Date; lastUsedAt: Date | undefined }[];
  readonly recoveryCodesLeft: number;
  readonly elementUrl: string | undefined;
}

function day(date: Date): string {
  return date.toISOString().slice(0, 10);
}

export function accountPage(page: FlowPage & { view: AccountView }): string {
  const { view } = page;
  return layout(
    page,
    'Your account',
    html`${messages(page)}
<p>Signed in as <strong id="account-username">${view.username}</strong>.</p>
<section aria-labelledby="app-heading">
<h2 id="app-heading">Authenticator app</h2>
<p>Status: <span id="totp-status">${view.totpEnrolledAt ? 'On' : 'Off'}</span>${view.totpEnrolledAt ? html` (added ${day(view.totpEnrolledAt)})` : ''}</p>
${view.totpEnrolledAt
  ? html`<form method="post" action="${page.flow}/totp/remove">${csrfField(page)}<button id="remove-totp" type="submit" class="danger">Remove the authenticator app</button></form>`
  : view.totpEnabled
    ? html`<form method="post" action="${page.flow}/enrol/totp/start">${csrfField(page)}<button id="add-totp" type="submit">Add an authenticator app</button></form>`
    : ''}
</section>
${view.webauthnEnabled || view.securityKeys.length > 0
  ? html`<section aria-labelledby="keys-heading">
<h2 id="keys-heading">Security keys</h2>
<ul id="security-keys" class="keys">${view.securityKeys.map(
      (key) => html`<li><span class="key-name">${key.name || 'Security key'}</span> <span class="meta">added ${day(key.createdAt)}${key.lastUsedAt ? html`, last used ${day(key.lastUsedAt)}` : ''}</span>
<form method="post" action="${page.flow}/webauthn/remove" class="inline">${csrfField(page)}<input type="hidden" name="id" value="${key.id}"><button type="submit" class="remove-security-key danger">Remove</button></form></li>`,
    )}</ul>
${view.webauthnEnabled ? securityKeyRegistration(page, false) : ''}
</section>`
  : ''}
<section aria-labelledby="recovery-heading">
<h2 id="recovery-heading">Recovery codes</h2>
<p><span id="recovery-codes-left">${view.recoveryCodesLeft}</span> unused recovery codes left.</p>
<form method="post" action="${page.flow}/recovery-codes/regenerate">${csrfField(page)}<button id="regenerate-recovery-codes" type="submit" class="secondary">Generate new recovery codes</button></form>
</section>
<section aria-labelledby="password-heading">
<h2 id="password-heading">Password</h2>
<form id="change-password-form" method="post" action="${page.flow}/password/change">
${csrfField(page)}
<input type="text" name="username" autocomplete="username" value="${view.username}" hidden>
<label for="current-password">Current password</label>
<input id="current-password" name="current" type="password" autocomplete="current-password" required>
<label for="new-password">New password</label>
<input id="new-password" name="next" type="password" autocomplete="new-password" minlength="8" required>
<button id="change-password" type="submit">Change password</button>
</form>
</section>
<form method="post" action="${page.flow}/sign-out" class="alternative">${csrfField(page)}<button id="sign-out" type="submit" class="secondary">Sign out</button></form>
${view.elementUrl ? html`<p class="alternative"><a id="back-to-element" href="${view.elementUrl}">Back to Element</a></p>` : ''}`,
    { scripts: view.webauthnEnabled },
  );
}

export function messagePage(ctx: PageContext, title: string, message: string): string {
  return layout(ctx, title, html`<div id="error" class="error" role="alert" aria-live="assertive">${message}</div>`);
}

export function logoutPage(ctx: PageContext, formHtml: Html): string {
  return layout(
    ctx,
    'Sign out',
    html`<p>Do you want to sign out of ${ctx.brand}?</p>
${formHtml}
<button id="confirm-sign-out" type="submit" form="op.logoutForm" name="logout" value="yes">Sign out</button>
<button id="stay-signed-in" type="submit" form="op.logoutForm" class="secondary">Stay signed in</button>`,
  );
}
