// The administration API for mxstack's CLI (adminListen; never routed from outside): `authAdminRoutes`
// with a bearer token compared in constant time.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { minimumPasswordLength, type AdminAccountInfo } from '../service-config.js';
import * as repo from '../repository.js';
import * as signIn from '../sign-in.js';
import { accountKey } from '../throttle.js';
import { bearerMatches, HttpError, readJson, sendJson } from './http.js';
import { mustEnrolNow, normaliseUsername, secondFactorRequired } from './policy.js';
import { endAccountSessions } from './account-state.js';
import type { Service } from './service.js';
import { findSynapseUser } from './synapse-users.js';
import { log } from './log.js';

const accountRoute = /^\/admin\/v1\/accounts\/([^/]+)(\/password|\/reset-second-factors|\/unlock|\/end-sessions)?$/;

export async function handleAdmin(service: Service, req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
  const match = accountRoute.exec(path);
  if (!match) throw new HttpError(404, 'no such route');
  if (!bearerMatches(req.headers.authorization, service.secrets.adminToken)) {
    log('admin-unauthorised', { path: match[2] ?? '/account' });
    return sendJson(res, 401, { error: 'missing or wrong bearer token' });
  }
  let typed: string;
  try {
    typed = decodeURIComponent(match[1]!);
  } catch {
    throw new HttpError(400, 'the username is not valid URL encoding');
  }
  const username = normaliseUsername(typed, service.config.serverName);
  if (!username) throw new HttpError(400, `not a username of ${service.config.serverName}: ${JSON.stringify(typed)} (a Matrix localpart: a-z, 0-9, . _ = - / +)`);
  const action = match[2] ?? '';
  const method = req.method ?? 'GET';
  if (action === '' && method === 'GET') return accountInfo(service, res, username);
  if (action === '/password' && method === 'PUT') return setPassword(service, req, res, username);
  if (action === '/reset-second-factors' && method === 'POST') return resetSecondFactors(service, res, username);
  if (action === '/unlock' && method === 'POST') return unlock(service, res, username);
  if (action === '/end-sessions' && method === 'POST') return endSessions(service, res, username);
  throw new HttpError(405, `method ${method} not allowed here`);
}

async function adminAccountInfo(service: Service, username: string): Promise<AdminAccountInfo | undefined> {
  const account = await repo.findAccount(service.db, username);
  if (!account) {
    const synapseUser = await findSynapseUser(service.synapseDb, service.config.serverName, username);
    if (!synapseUser) return undefined;
    const factors = { isAdmin: synapseUser.admin, mustEnrol: false, hasTotp: false, securityKeys: 0 };
    return { username, isAdmin: synapseUser.admin, mustEnrol: mustEnrolNow(service.config.policy, factors), password: 'none', totp: { enrolled: false }, webauthn: [], recoveryCodesLeft: 0 };
  }
  const [password, totpAt, keys, summary, throttle] = await Promise.all([
    repo.getPasswordHash(service.db, account.id),
    repo.totpEnrolledAt(service.db, account.id),
    repo.listWebAuthnCredentialInfo(service.db, account.id),
    repo.factorSummary(service.db, account.id),
    repo.loadThrottleEntries(service.db, [accountKey(username)]),
  ]);
  const lockedUntil = throttle.get(accountKey(username))?.lockedUntilMs;
  return {
    username,
    isAdmin: account.isAdmin,
    mustEnrol: mustEnrolNow(service.config.policy, { isAdmin: account.isAdmin, mustEnrol: account.mustEnrol, hasTotp: summary.totp, securityKeys: summary.webauthnCredentials }),
    password: password?.scheme ?? 'none',
    totp: totpAt ? { enrolled: true, enrolledAt: totpAt.toISOString() } : { enrolled: false },
    webauthn: keys.map((key) => ({ name: key.name, createdAt: key.createdAt.toISOString(), ...(key.lastUsedAt ? { lastUsedAt: key.lastUsedAt.toISOString() } : {}) })),
    recoveryCodesLeft: summary.recoveryCodesLeft,
    ...(lockedUntil !== undefined && lockedUntil > Date.now() ? { lockedUntil: new Date(lockedUntil).toISOString() } : {}),
  };
}

async function accountInfo(service: Service, res: ServerResponse, username: string): Promise<void> {
  const info = await adminAccountInfo(service, username);
  if (!info) return sendJson(res, 404, { error: `no account ${username}` });
  sendJson(res, 200, info);
}

async function setPassword(service: Service, req: IncomingMessage, res: ServerResponse, username: string): Promise<void> {
  const body = await readJson(req);
  if (typeof body.password !== 'string' || body.password.length < minimumPasswordLength) throw new HttpError(400, `password must be a string of at least ${minimumPasswordLength} characters`);
  if (body.isAdmin !== undefined && typeof body.isAdmin !== 'boolean') throw new HttpError(400, 'isAdmin must be true or false when given');
  let account = await repo.findAccount(service.db, username);
  if (!account) {
    const synapseUser = await findSynapseUser(service.synapseDb, service.config.serverName, username);
    account = await repo.createAccount(service.db, { username, isAdmin: body.isAdmin ?? synapseUser?.admin ?? false });
  } else if (body.isAdmin !== undefined && body.isAdmin !== account.isAdmin) {
    await repo.setAdmin(service.db, account.id, body.isAdmin);
  }
  await signIn.setPassword(service.auth, account, body.password, undefined, 'admin');
  log('admin-password-set', { username });
  sendJson(res, 204, undefined);
}

async function resetSecondFactors(service: Service, res: ServerResponse, username: string): Promise<void> {
  const account = await repo.findAccount(service.db, username);
  if (!account) return sendJson(res, 404, { error: `no account ${username}` });
  const mustEnrol = secondFactorRequired(service.config.policy, { isAdmin: account.isAdmin, mustEnrol: false });
  await repo.resetSecondFactors(service.db, account.id, { detail: { by: 'admin' } }, mustEnrol);
  // Whoever holds a sign-in of this account (a browser, an open account page) signs in afresh.
  const ended = await endAccountSessions(service.db, username);
  log('admin-second-factors-reset', { username, endedSessionRecords: ended });
  sendJson(res, 200, await adminAccountInfo(service, username));
}

async function endSessions(service: Service, res: ServerResponse, username: string): Promise<void> {
  const ended = await endAccountSessions(service.db, username);
  log('admin-sessions-ended', { username, endedSessionRecords: ended });
  sendJson(res, 204, undefined);
}

async function unlock(service: Service, res: ServerResponse, username: string): Promise<void> {
  const known = (await repo.findAccount(service.db, username)) ?? (await findSynapseUser(service.synapseDb, service.config.serverName, username));
  if (!known) return sendJson(res, 404, { error: `no account ${username}` });
  await repo.saveThrottleEntries(service.db, new Map(), [accountKey(username)]);
  log('admin-account-unlocked', { username });
  sendJson(res, 204, undefined);
}
