/**
 * The two HTTP listeners. `<p>` is config.pathPrefix (`/auth`); `<flow>` is `<p>/interaction/<uid>` (an
 * OpenID sign-in) or `<p>/account` (the account page).
 *
 * listen (pages + OpenID Connect):
 *   GET  /health                                  200 {status:'ok'} when the database answers, else 503
 *   GET  <p>, <p>/                                → 303 <p>/account
 *   GET  <p>/.well-known/openid-configuration     discovery (oidc-provider)
 *   GET  <p>/authorize, <p>/authorize/<uid>       authorization endpoint and its resume (oidc-provider)
 *   POST <p>/token                                token endpoint, client_secret_basic, PKCE S256
 *   GET  <p>/userinfo                             {sub, preferred_username}
 *   GET  <p>/jwks                                 public signing keys
 *   GET  <p>/session/end, POST <p>/session/end/confirm   sign-out (oidc-provider, our page)
 *   GET  <p>/static/auth.css, <p>/static/auth.js  the stylesheet and the WebAuthn script
 *   GET  <p>/static/favicon.svg                   the pages' icon
 *   GET  <flow>                                   the page of the flow's current step
 *   GET  <flow>/recovery                          recovery code form (during the second-factor step)
 *   POST <flow>/password                          form: csrf, username, password
 *   POST <flow>/totp                              form: csrf, code
 *   POST <flow>/recovery                          form: csrf, code (a recovery code)
 *   POST <flow>/enrol/totp/start                  form: csrf → QR page
 *   POST <flow>/enrol/totp/confirm                form: csrf, code
 *   POST <flow>/enrol/totp/cancel                 form: csrf (drops the unconfirmed secret)
 *   POST <flow>/continue                          form: csrf ("I saved them" after recovery codes)
 *   POST <flow>/cancel                            form: csrf ("Sign in as someone else")
 *   POST <flow>/webauthn/authenticate/options     JSON, header x-csrf-token → PublicKeyCredentialRequestOptionsJSON
 *   POST <flow>/webauthn/authenticate/verify      JSON {response} → {redirect}
 *   POST <flow>/webauthn/register/options         JSON → PublicKeyCredentialCreationOptionsJSON
 *   POST <flow>/webauthn/register/verify          JSON {response, name} → {redirect}
 *   POST <p>/account/totp/remove                  form: csrf (signed in)
 *   POST <p>/account/webauthn/remove              form: csrf, id (base64url credential id)
 *   POST <p>/account/recovery-codes/regenerate    form: csrf → recovery codes page
 *   POST <p>/account/password/change              form: csrf, current, next (8+ characters)
 *   POST <p>/account/sign-out                     form: csrf
 *
 * adminListen (bearer admin-token; authAdminRoutes in ../service-config.ts):
 *   GET  /health
 *   GET  /admin/v1/accounts/<username>                        → AdminAccountInfo | 404
 *   PUT  /admin/v1/accounts/<username>/password               {password, isAdmin?} → 204
 *   POST /admin/v1/accounts/<username>/reset-second-factors   {} → AdminAccountInfo
 *   POST /admin/v1/accounts/<username>/unlock                 {} → 204
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { readFileSync } from 'node:fs';
import { authHealthPath } from '../service-config.js';
import { handleAdmin } from './admin.js';
import { handleFlow, messages } from './flows.js';
import { applyPageSecurityHeaders, HttpError, redirect, sendHtml, sendJson } from './http.js';
import { implicitGrant } from './provider.js';
import { authenticationMethods } from './policy.js';
import * as pages from './pages.js';
import type { Service } from './service.js';
import type { FlowState, WebSession } from './sessions.js';
import { log } from './log.js';

const staticFiles: Record<string, { type: string; body: Buffer }> = {
  'auth.css': { type: 'text/css; charset=utf-8', body: readFileSync(new URL('./static/auth.css', import.meta.url)) },
  'auth.js': { type: 'text/javascript; charset=utf-8', body: readFileSync(new URL('./static/auth.js', import.meta.url)) },
  'favicon.svg': { type: 'image/svg+xml', body: readFileSync(new URL('./static/favicon.svg', import.meta.url)) },
};

async function health(service: Service, res: ServerResponse): Promise<void> {
  try {
    await service.db.query('SELECT 1');
    sendJson(res, 200, { status: 'ok' });
  } catch {
    sendJson(res, 503, { status: 'database unavailable' });
  }
}

function sendError(service: Service, res: ServerResponse, error: unknown, json: boolean): void {
  const status = error instanceof HttpError ? error.status : 500;
  const message = error instanceof HttpError ? error.message : 'internal error';
  if (!(error instanceof HttpError)) log('request-failed', { message: (error as Error).message });
  if (res.headersSent) return void res.end();
  if (json) return sendJson(res, status, { error: message });
  applyPageSecurityHeaders(res, []);
  sendHtml(res, status, pages.messagePage({ brand: service.config.brand, prefix: service.config.pathPrefix, csrf: '' }, status === 404 ? 'Not found' : 'Something went wrong', message));
}

export function publicHandler(service: Service): (req: IncomingMessage, res: ServerResponse) => void {
  const prefix = service.config.pathPrefix;
  const providerCallback = service.provider.callback();
  const formOrigins = service.config.client.redirectUris.map((uri) => new URL(uri).origin);
  const interactionPath = new RegExp(`^${prefix}/interaction/([A-Za-z0-9_-]+)(/.*)?$`);
  return (req, res) => {
    const url = new URL(req.url ?? '/', 'http://service.invalid');
    const path = url.pathname;
    const json = path.includes('/webauthn/');
    void (async () => {
      if (path === authHealthPath) return health(service, res);
      if (path.startsWith(`${prefix}/static/`)) {
        const file = staticFiles[path.slice(prefix.length + 8)];
        if (!file || (req.method !== 'GET' && req.method !== 'HEAD')) throw new HttpError(404, 'not found');
        res.writeHead(200, { 'content-type': file.type, 'cache-control': 'public, max-age=300', 'x-content-type-options': 'nosniff' });
        return void res.end(req.method === 'HEAD' ? undefined : file.body);
      }
      const interaction = interactionPath.exec(path);
      // oidc-provider's own responses (below) keep its headers: some of its pages auto-submit with inline scripts.
      if (interaction || path === `${prefix}/account` || path.startsWith(`${prefix}/account/`)) applyPageSecurityHeaders(res, formOrigins);
      if (interaction) return handleInteraction(service, req, res, interaction[1]!, interaction[2] ?? '');
      if (path === `${prefix}/account` || path.startsWith(`${prefix}/account/`)) {
        return handleFlow(service, req, res, { kind: 'account', key: 'account', base: `${prefix}/account` }, path.slice(prefix.length + 8), async () => undefined);
      }
      if ((path === prefix || path === `${prefix}/`) && (req.method === 'GET' || req.method === 'HEAD')) return redirect(res, `${prefix}/account`);
      if (path.startsWith(`${prefix}/`)) {
        // oidc-provider builds its URLs from the mount path it finds in originalUrl minus url.
        (req as IncomingMessage & { originalUrl?: string }).originalUrl = req.url;
        req.url = (req.url ?? '/').slice(prefix.length) || '/';
        return providerCallback(req, res);
      }
      throw new HttpError(404, 'not found');
    })().catch((error: unknown) => sendError(service, res, error, json));
  };
}

async function handleInteraction(service: Service, req: IncomingMessage, res: ServerResponse, uid: string, subpath: string): Promise<void> {
  const prefix = service.config.pathPrefix;
  let details: Awaited<ReturnType<typeof service.provider.interactionDetails>>;
  try {
    details = await service.provider.interactionDetails(req, res);
  } catch {
    return sendHtml(res, 400, pages.messagePage({ brand: service.config.brand, prefix, csrf: '' }, 'Sign-in expired', `${messages.expired} Go back to the app and sign in again.`));
  }
  if (details.uid !== uid) throw new HttpError(400, 'this sign-in does not belong to this browser session');
  const clientId = String(details.params.client_id);
  log('interaction', { uid, prompt: details.prompt.name, reasons: details.prompt.reasons.join(' ') });
  const scope = String(details.params.scope ?? 'openid');
  if (details.prompt.name === 'consent' && details.session?.accountId) {
    // Consent is implicit for the one first-party client.
    const grantId = await implicitGrant(service.provider, details.session.accountId, clientId, scope, details.grantId);
    return void (await service.provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true }));
  }
  const target = { kind: 'interaction' as const, key: `interaction:${uid}`, base: `${prefix}/interaction/${uid}` };
  await handleFlow(service, req, res, target, subpath, async (flow: FlowState, session: WebSession) => {
    const accountId = flow.username!;
    const grantId = await implicitGrant(service.provider, accountId, clientId, scope, details.grantId);
    delete session.flows[target.key];
    await service.sessions.save(session);
    log('interaction-finished', { username: accountId, client: clientId });
    await service.provider.interactionFinished(req, res, { login: { accountId, amr: authenticationMethods(flow.secondFactor) }, consent: { grantId } }, { mergeWithLastSubmission: false });
  });
}

export function adminHandler(service: Service): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const path = new URL(req.url ?? '/', 'http://service.invalid').pathname;
    void (async () => {
      if (path === authHealthPath) return health(service, res);
      await handleAdmin(service, req, res, path);
    })().catch((error: unknown) => sendError(service, res, error, true));
  };
}

export async function listen(handler: (req: IncomingMessage, res: ServerResponse) => void, address: { host: string; port: number }): Promise<Server> {
  const server = createServer(handler);
  // Synapse pools connections to the token endpoint for a long time and does not retry a POST on one the
  // server just closed: keep idle connections longer than it does.
  server.keepAliveTimeout = 180_000;
  server.headersTimeout = 185_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(address.port, address.host, () => resolve());
  });
  return server;
}

