// The sign-in flow shared by OpenID interactions (/auth/interaction/<uid>) and the account page
// (/auth/account): password, then a second factor or enrolment as the policy says, recovery codes shown
// once; plus the account page's factor management. State lives in the server-side session (sessions.ts);
// every POST carries the session's CSRF token; every refusal is shown through the page's #error region.
import type { IncomingMessage, ServerResponse } from 'node:http';
import QRCode from 'qrcode';
import * as repo from '../repository.js';
import * as signIn from '../sign-in.js';
import { open, seal } from '../secret-box.js';
import { totpEnrolmentUri } from '../totp.js';
import { clientAddress, HttpError, readForm, readJson, redirect, sendHtml, sendJson, tokensMatch } from './http.js';
import { trustedHtml } from './html.js';
import { endProviderSession } from './provider.js';
import * as pages from './pages.js';
import { mayRemoveFactor, minutesToWait, normaliseUsername, stepAfterPassword, type AccountFactors } from './policy.js';
import type { Service } from './service.js';
import type { FlowState, WebSession } from './sessions.js';
import { syncFromSynapse } from './synapse-users.js';
import * as webauthn from './webauthn.js';
import { log } from './log.js';
import { minimumPasswordLength } from '../service-config.js';

export interface FlowTarget {
  readonly kind: 'interaction' | 'account';
  /** Key of the flow in the session. */
  readonly key: string;
  /** URL path the flow's routes hang off. */
  readonly base: string;
}

export const messages = {
  wrongPassword: 'Wrong username or password.',
  wrongCode: 'Wrong code. Check the time on your device and try again.',
  wrongRecoveryCode: 'Wrong or already used recovery code.',
  securityKeyRefused: 'The security key was not accepted.',
  wrongCurrentPassword: 'The current password is wrong.',
  lastFactor: 'This is your last second factor and your account must have one: add another first.',
  passwordTooShort: `The new password must have at least ${minimumPasswordLength} characters.`,
  expired: 'Your session expired. Please start again.',
} as const;

export function lockedMessage(retryAfterMs: number): string {
  const minutes = minutesToWait(retryAfterMs);
  return `Too many attempts; try again in ${minutes} minute${minutes === 1 ? '' : 's'}.`;
}

function refusalMessage(refusal: signIn.Refusal, otherwise: string): string {
  return refusal.reason === 'locked' ? lockedMessage(refusal.retryAfterMs) : otherwise;
}

function addressOf(service: Service, req: IncomingMessage): string {
  const forwarded = req.headers['x-forwarded-for'];
  return clientAddress(req.socket.remoteAddress, Array.isArray(forwarded) ? forwarded.join(',') : forwarded, service.config.trustedProxies);
}

function factorsOf(account: repo.Account, summary: repo.FactorSummary): AccountFactors & { recoveryCodesLeft: number } {
  return { isAdmin: account.isAdmin, mustEnrol: account.mustEnrol, hasTotp: summary.totp, securityKeys: summary.webauthnCredentials, recoveryCodesLeft: summary.recoveryCodesLeft };
}

async function accountFactors(service: Service, account: repo.Account): Promise<AccountFactors & { recoveryCodesLeft: number }> {
  return factorsOf(account, await repo.factorSummary(service.db, account.id));
}

/**
 * Handles GET/POST `target.base + subpath`. `finish` is called (with the request's session) when the flow reaches `done` on an
 * interaction (it completes the OpenID interaction and writes the response).
 */
export async function handleFlow(service: Service, req: IncomingMessage, res: ServerResponse, target: FlowTarget, subpath: string, finish: (flow: FlowState, session: WebSession) => Promise<void>): Promise<void> {
  const method = req.method ?? 'GET';
  if (method === 'GET' || method === 'HEAD') {
    const session = await service.sessions.loadOrCreate(req, res);
    const flow = (session.flows[target.key] ??= { stage: 'password' });
    if (subpath === '' || subpath === '/') return renderStage(service, res, session, target, flow, finish);
    if (subpath === '/recovery' && flow.stage === 'second-factor') return renderRecovery(service, res, session, target, flow);
    return redirect(res, target.base);
  }
  if (method !== 'POST') throw new HttpError(405, 'method not allowed');
  const json = subpath.startsWith('/webauthn/') && subpath !== '/webauthn/remove';
  const session = await service.sessions.load(req);
  const body = json ? await readJson(req) : await readForm(req);
  const submitted = json ? req.headers['x-csrf-token'] : body.csrf;
  if (!session || !tokensMatch(session.csrf, submitted)) {
    log('csrf-refused', { path: target.base + subpath, address: addressOf(service, req) });
    if (json) return sendJson(res, 403, { error: messages.expired });
    return sendHtml(res, 403, pages.messagePage({ brand: service.config.brand, prefix: service.config.pathPrefix, csrf: '' }, 'Session expired', messages.expired));
  }
  const flow = (session.flows[target.key] ??= { stage: 'password' });
  const address = addressOf(service, req);
  const step = { service, session, flow, target, address, body: body as Record<string, unknown>, req, res };
  const handler = postHandlers[subpath];
  if (!handler) throw new HttpError(404, 'not found');
  await handler(step);
}

interface Step {
  readonly service: Service;
  readonly session: WebSession;
  readonly flow: FlowState;
  readonly target: FlowTarget;
  readonly address: string;
  readonly body: Record<string, unknown>;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
}

function field(step: Step, name: string): string {
  const value = step.body[name];
  return typeof value === 'string' ? value : '';
}

/** Saves the session and sends the browser back to the flow's page (which shows the new stage). */
async function back(step: Step, changes: Partial<FlowState> = {}, to = step.target.base): Promise<void> {
  Object.assign(step.flow, changes);
  await step.service.sessions.save(step.session);
  redirect(step.res, to);
}

async function jsonBack(step: Step, status: number, body: Record<string, unknown>): Promise<void> {
  await step.service.sessions.save(step.session);
  sendJson(step.res, status, body);
}

async function flowAccount(step: Step): Promise<repo.Account | undefined> {
  return step.flow.username ? repo.findAccount(step.service.db, step.flow.username) : undefined;
}

/** Starts a WebAuthn ceremony: its challenge is kept in the flow for the verify step, the options go to the browser. */
async function sendCeremonyOptions(step: Step, options: { readonly challenge: string }): Promise<void> {
  step.flow.challenge = options.challenge;
  return jsonBack(step, 200, options as unknown as Record<string, unknown>);
}

function canEnrol(step: Step): boolean {
  return step.flow.stage === 'enrol' || (step.target.kind === 'account' && step.flow.stage === 'done');
}

/** After enrolment: recovery codes (when new ones were made) are shown once, then the flow is done. */
async function afterEnrolment(step: Step, account: repo.Account, recoveryCodes: readonly string[]): Promise<Partial<FlowState>> {
  if (recoveryCodes.length === 0) return { stage: 'done', challenge: undefined };
  return { stage: 'recovery-codes', afterCodes: 'done', challenge: undefined, sealedCodes: seal(JSON.stringify(recoveryCodes), step.service.auth.sealing.current, `recovery-codes:${step.session.id}:${account.id}`) };
}

type PostHandler = (step: Step) => Promise<void>;

const postHandlers: Record<string, PostHandler> = {
  async '/password'(step) {
    if (step.flow.stage !== 'password') return back(step);
    const { service } = step;
    const username = normaliseUsername(field(step, 'username'), service.config.serverName);
    const password = field(step, 'password');
    if (!username || password === '') return back(step, { error: messages.wrongPassword, username: undefined });
    if ((await syncFromSynapse(service.db, service.synapseDb, service.config.serverName, username)) === 'deactivated') {
      log('sign-in-refused-deactivated', { username, address: step.address });
      return back(step, { error: messages.wrongPassword });
    }
    const outcome = await signIn.signInWithPassword(service.auth, username, password, step.address);
    if (!outcome.ok) {
      log(outcome.reason === 'locked' ? 'sign-in-locked' : 'sign-in-password-refused', { username, address: step.address, flow: step.target.kind });
      return back(step, { error: refusalMessage(outcome, messages.wrongPassword) });
    }
    const next = stepAfterPassword(service.config.policy, factorsOf(outcome.account, outcome.factors));
    log('sign-in-password-accepted', { username, address: step.address, flow: step.target.kind, next });
    if (next === 'done') await repo.appendAudit(service.db, { accountId: outcome.account.id, username, event: 'sign-in', address: step.address, detail: { factor: 'password' } });
    Object.assign(step.flow, { stage: next, accountId: outcome.account.id, username });
    await service.sessions.rotate(step.session, step.res);
    return redirect(step.res, step.target.base);
  },

  async '/totp'(step) {
    const account = await flowAccount(step);
    if (step.flow.stage !== 'second-factor' || !account) return back(step);
    const outcome = await signIn.verifyTotp(step.service.auth, account, field(step, 'code'), step.address);
    log(outcome.ok ? 'sign-in-totp-accepted' : 'sign-in-totp-refused', { username: account.username, address: step.address });
    if (!outcome.ok) return back(step, { error: refusalMessage(outcome, messages.wrongCode) });
    return back(step, { stage: 'done', secondFactor: 'totp' });
  },

  async '/recovery'(step) {
    const account = await flowAccount(step);
    if (step.flow.stage !== 'second-factor' || !account) return back(step);
    const outcome = await signIn.verifyRecoveryCode(step.service.auth, account, field(step, 'code'), step.address);
    log(outcome.ok ? 'sign-in-recovery-code-accepted' : 'sign-in-recovery-code-refused', { username: account.username, address: step.address });
    if (!outcome.ok) return back(step, { error: refusalMessage(outcome, messages.wrongRecoveryCode) }, `${step.target.base}/recovery`);
    return back(step, { stage: 'done', secondFactor: 'recovery-code', notice: `Recovery code used: ${outcome.codesLeft} left.` });
  },

  async '/enrol/totp/start'(step) {
    const account = await flowAccount(step);
    if (!canEnrol(step) || !account || !step.service.config.policy.totp.enabled) return back(step);
    if ((await repo.factorSummary(step.service.db, account.id)).totp) return back(step);
    await signIn.beginTotpEnrolment(step.service.auth, account);
    log('totp-enrolment-started', { username: account.username });
    return back(step, { stage: 'enrol-totp', afterCodes: step.flow.stage });
  },

  async '/enrol/totp/confirm'(step) {
    const account = await flowAccount(step);
    if (step.flow.stage !== 'enrol-totp' || !account) return back(step);
    const outcome = await signIn.confirmTotpEnrolment(step.service.auth, account, field(step, 'code'), step.address);
    log(outcome.ok ? 'totp-enrolled' : 'totp-enrolment-refused', { username: account.username, address: step.address });
    if (!outcome.ok) return back(step, { error: refusalMessage(outcome, messages.wrongCode) });
    return back(step, { ...(await afterEnrolment(step, account, outcome.recoveryCodes)), secondFactor: 'totp' });
  },

  async '/enrol/totp/cancel'(step) {
    const account = await flowAccount(step);
    if (step.flow.stage !== 'enrol-totp' || !account) return back(step);
    // Only an unconfirmed enrolment is dropped: a confirmed authenticator is removed on the account page.
    if ((await repo.getTotp(step.service.db, account.id))?.confirmed === false) await repo.removeTotp(step.service.db, account.id);
    return back(step, { stage: step.flow.afterCodes ?? 'enrol', afterCodes: undefined });
  },

  async '/continue'(step) {
    if (step.flow.stage !== 'recovery-codes') return back(step);
    return back(step, { stage: step.flow.afterCodes ?? 'done', sealedCodes: undefined, afterCodes: undefined });
  },

  async '/cancel'(step) {
    delete step.session.flows[step.target.key];
    await step.service.sessions.save(step.session);
    redirect(step.res, step.target.base);
  },

  async '/webauthn/authenticate/options'(step) {
    const account = await flowAccount(step);
    if (step.flow.stage !== 'second-factor' || !account) return jsonBack(step, 409, { error: messages.expired });
    const locked = await signIn.lockoutOf(step.service.auth, account.username, step.address);
    if (locked) return jsonBack(step, 429, { error: refusalMessage(locked, '') });
    return sendCeremonyOptions(step, await webauthn.authenticationOptions(step.service.db, step.service.config.policy.webauthn, account));
  },

  async '/webauthn/authenticate/verify'(step) {
    const account = await flowAccount(step);
    const challenge = step.flow.challenge;
    if (step.flow.stage !== 'second-factor' || !account || !challenge) return jsonBack(step, 409, { error: messages.expired });
    step.flow.challenge = undefined;
    const verified = await webauthn.verifyAuthentication(step.service.db, step.service.config.policy.webauthn, account, challenge, step.body.response);
    const outcome = await signIn.completeWebAuthnSignIn(step.service.auth, account, verified, step.address);
    log(outcome.ok ? 'sign-in-webauthn-accepted' : 'sign-in-webauthn-refused', { username: account.username, address: step.address });
    if (!outcome.ok) return jsonBack(step, 400, { error: refusalMessage(outcome, messages.securityKeyRefused) });
    Object.assign(step.flow, { stage: 'done', secondFactor: 'security-key' });
    return jsonBack(step, 200, { redirect: step.target.base });
  },

  async '/webauthn/register/options'(step) {
    const account = await flowAccount(step);
    if (!canEnrol(step) || !account || !step.service.config.policy.webauthn.enabled) return jsonBack(step, 409, { error: messages.expired });
    return sendCeremonyOptions(step, await webauthn.registrationOptions(step.service.db, step.service.config.policy.webauthn, account));
  },

  async '/webauthn/register/verify'(step) {
    const account = await flowAccount(step);
    const challenge = step.flow.challenge;
    if (!canEnrol(step) || !account || !challenge) return jsonBack(step, 409, { error: messages.expired });
    step.flow.challenge = undefined;
    const credential = await webauthn.verifyRegistration(step.service.config.policy.webauthn, challenge, step.body.response, typeof step.body.name === 'string' ? step.body.name : '');
    if (!credential) {
      log('webauthn-registration-refused', { username: account.username, address: step.address });
      return jsonBack(step, 400, { error: messages.securityKeyRefused });
    }
    const { recoveryCodes } = await signIn.addSecurityKey(step.service.auth, account, credential, step.address);
    log('webauthn-added', { username: account.username, address: step.address });
    Object.assign(step.flow, await afterEnrolment(step, account, recoveryCodes), { secondFactor: 'security-key' }, step.flow.stage === 'done' ? { notice: 'Security key added.' } : {});
    return jsonBack(step, 200, { redirect: step.target.base });
  },

  // The account page's own actions (signed in: stage done).
  async '/totp/remove'(step) {
    const account = await signedInAccount(step);
    if (!account) return back(step);
    if (!mayRemoveFactor(step.service.config.policy, await accountFactors(step.service, account), 'totp')) return back(step, { error: messages.lastFactor });
    await signIn.removeAuthenticatorApp(step.service.auth, account, step.address);
    log('totp-removed', { username: account.username, address: step.address });
    return back(step, { notice: 'Authenticator app removed.' });
  },

  async '/webauthn/remove'(step) {
    const account = await signedInAccount(step);
    if (!account) return back(step);
    if (!mayRemoveFactor(step.service.config.policy, await accountFactors(step.service, account), 'security-key')) return back(step, { error: messages.lastFactor });
    const removed = await signIn.removeSecurityKey(step.service.auth, account, Buffer.from(field(step, 'id'), 'base64url'), step.address);
    if (removed) log('webauthn-removed', { username: account.username, address: step.address });
    return back(step, removed ? { notice: 'Security key removed.' } : {});
  },

  async '/recovery-codes/regenerate'(step) {
    const account = await signedInAccount(step);
    if (!account) return back(step);
    const codes = await signIn.regenerateRecoveryCodes(step.service.auth, account, step.address);
    log('recovery-codes-generated', { username: account.username, address: step.address });
    return back(step, await afterEnrolment(step, account, codes));
  },

  async '/password/change'(step) {
    const account = await signedInAccount(step);
    if (!account) return back(step);
    const next = field(step, 'next');
    if (next.length < minimumPasswordLength) return back(step, { error: messages.passwordTooShort });
    const outcome = await signIn.changePassword(step.service.auth, account, field(step, 'current'), next, step.address);
    log(outcome.ok ? 'password-changed' : 'password-change-refused', { username: account.username, address: step.address });
    return back(step, outcome.ok ? { notice: 'Password changed.' } : { error: refusalMessage(outcome, messages.wrongCurrentPassword) });
  },

  async '/sign-out'(step) {
    await step.service.sessions.destroy(step.session, step.res);
    // The identity provider's sign-in in this browser ends too: the next Matrix login asks again.
    await endProviderSession(step.service.provider, step.req, step.res);
    log('account-signed-out', { username: step.flow.username });
    redirect(step.res, step.target.base);
  },
};

async function signedInAccount(step: Step): Promise<repo.Account | undefined> {
  return step.target.kind === 'account' && step.flow.stage === 'done' ? flowAccount(step) : undefined;
}

// ---------------------------------------------------------------------------------------------------

async function renderStage(service: Service, res: ServerResponse, session: WebSession, target: FlowTarget, flow: FlowState, finish: (flow: FlowState, session: WebSession) => Promise<void>): Promise<void> {
  const page = { brand: service.config.brand, prefix: service.config.pathPrefix, csrf: session.csrf, flow: target.base, error: flow.error, notice: flow.notice };
  const account = flow.username ? await repo.findAccount(service.db, flow.username) : undefined;
  const clearFlash = async (): Promise<void> => {
    if (flow.error !== undefined || flow.notice !== undefined) {
      delete flow.error;
      delete flow.notice;
    }
    await service.sessions.save(session);
  };
  if (!account || flow.stage === 'password') {
    session.flows[target.key] = { stage: 'password' };
    await service.sessions.save(session);
    return sendHtml(res, 200, pages.signInPage({ ...page, username: flow.username }));
  }
  const policy = service.config.policy;
  switch (flow.stage) {
    case 'second-factor': {
      const factors = await accountFactors(service, account);
      await clearFlash();
      return sendHtml(res, 200, pages.secondFactorPage({ ...page, username: account.username, totp: factors.hasTotp, securityKey: factors.securityKeys > 0, digits: policy.totp.digits }));
    }
    case 'enrol':
      await clearFlash();
      return sendHtml(res, 200, pages.enrolPage({ ...page, username: account.username, totp: policy.totp.enabled, webauthn: policy.webauthn.enabled }));
    case 'enrol-totp': {
      const stored = await repo.getTotp(service.db, account.id);
      if (!stored || stored.confirmed) {
        flow.stage = flow.afterCodes ?? 'done';
        return renderStage(service, res, session, target, flow, finish);
      }
      const secret = open(stored.sealedSecret, service.auth.sealing.keyring, account.id);
      const uri = totpEnrolmentUri({ ...service.auth.totpPolicy, digits: stored.digits, period: stored.period, algorithm: stored.algorithm }, account.username, secret);
      const qrSvg = trustedHtml(await QRCode.toString(uri, { type: 'svg', margin: 1, errorCorrectionLevel: 'M' }));
      await clearFlash();
      return sendHtml(res, 200, pages.totpEnrolmentPage({ ...page, qrSvg, secret, digits: stored.digits }));
    }
    case 'recovery-codes': {
      const codes = flow.sealedCodes ? (JSON.parse(open(flow.sealedCodes, service.auth.sealing.keyring, `recovery-codes:${session.id}:${account.id}`)) as string[]) : [];
      delete flow.sealedCodes;
      await clearFlash();
      return sendHtml(res, 200, pages.recoveryCodesPage({ ...page, codes }));
    }
    case 'done':
      if (target.kind === 'interaction') return finish(flow, session);
      await clearFlash();
      return sendHtml(res, 200, pages.accountPage({ ...page, view: await accountView(service, account) }));
  }
}

async function renderRecovery(service: Service, res: ServerResponse, session: WebSession, target: FlowTarget, flow: FlowState): Promise<void> {
  const page = { brand: service.config.brand, prefix: service.config.pathPrefix, csrf: session.csrf, flow: target.base, error: flow.error };
  delete flow.error;
  await service.sessions.save(session);
  return sendHtml(res, 200, pages.recoveryPage({ ...page, username: flow.username ?? '' }));
}

async function accountView(service: Service, account: repo.Account): Promise<pages.AccountView> {
  const keys = await repo.listWebAuthnCredentialInfo(service.db, account.id);
  return {
    username: account.username,
    totpEnrolledAt: await repo.totpEnrolledAt(service.db, account.id),
    totpEnabled: service.config.policy.totp.enabled,
    webauthnEnabled: service.config.policy.webauthn.enabled,
    securityKeys: keys.map((key) => ({ id: key.credentialId.toString('base64url'), name: key.name, createdAt: key.createdAt, lastUsedAt: key.lastUsedAt })),
    recoveryCodesLeft: (await repo.factorSummary(service.db, account.id)).recoveryCodesLeft,
    elementUrl: service.config.elementUrl,
  };
}
