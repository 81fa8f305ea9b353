// The OpenID Provider: oidc-provider 8 configured for the one client (Synapse), with the PostgreSQL adapter,
// our own interaction pages (no dev interactions), implicit consent for this first-party client, and
// pages in the service's look for errors and sign-out.
//
// Every authorization request (a Matrix login or a UIA confirmation: Synapse sends both the same way) asks
// for the password and the second factor again, unless policy.rememberSignInMinutes allows reusing the
// browser's last sign-in and the account, read now under the policy in force now, still allows it
// (`maySkipSignIn`). A sign-in that may not be reused is forgotten at that request.
import type { IncomingMessage, ServerResponse } from 'node:http';
import Provider, { interactionPolicy, type Configuration, type KoaContextWithOIDC } from 'oidc-provider';
import type { AuthServiceConfig } from '../service-config.js';
import type { Database } from '../repository.js';
import * as repo from '../repository.js';
import { postgresAdapterFactory } from './adapter.js';
import type { ServiceSecrets } from './config.js';
import { html, trustedHtml } from './html.js';
import { layout, logoutPage } from './pages.js';
import { log } from './log.js';
import { pageSecurityHeaders } from './http.js';
import { maySkipSignIn, type AccountNow } from './policy.js';

export const oidcScopes = ['openid', 'profile'] as const;

/** How the provider learns the account's state at an authorization, and what time it is (ms since the epoch). */
export interface SignInState {
  readonly accountNow: (username: string) => Promise<AccountNow | undefined>;
  readonly clock: () => number;
}

type OidcSession = KoaContextWithOIDC['oidc']['session'];

/** Drops the sign-in from the provider's session: the browser is signed out of the identity provider. */
function forgetSignIn(session: OidcSession): void {
  const record = session as unknown as Record<string, unknown>;
  delete record.accountId;
  // Assignments (not deletes) mark the session as changed, so oidc-provider stores it at the end of the request.
  for (const key of ['loginTs', 'amr', 'acr', 'authorizations'] as const) record[key] = undefined;
}

/**
 * oidc-provider's default policy (login, then consent) with one more check on the login prompt: an earlier
 * sign-in counts only when `maySkipSignIn` says so at this request.
 */
export function signInPolicy(policy: AuthServiceConfig['policy'], state: SignInState): interactionPolicy.DefaultPolicy {
  const prompts = interactionPolicy.base();
  prompts.get('login')!.checks.add(
    new interactionPolicy.Check('sign_in_not_reusable', 'the password and the second factor are asked at every authorization', async (ctx) => {
      const { session, result } = ctx.oidc;
      // Signed in just now, in this request's own interaction.
      if (result?.login) return interactionPolicy.Check.NO_NEED_TO_PROMPT;
      if (!session?.accountId) return interactionPolicy.Check.NO_NEED_TO_PROMPT; // `no_session` asks
      const nowSeconds = Math.floor(state.clock() / 1000);
      if (maySkipSignIn(policy, { loginTs: session.loginTs, amr: session.amr }, await state.accountNow(session.accountId), nowSeconds)) {
        log('sign-in-reused', { username: session.accountId, ageSeconds: nowSeconds - (session.loginTs ?? nowSeconds) });
        return interactionPolicy.Check.NO_NEED_TO_PROMPT;
      }
      forgetSignIn(session);
      return interactionPolicy.Check.REQUEST_PROMPT;
    }),
  );
  return prompts;
}

/**
 * Lifetimes: a provider session lives only as long as it may be reused (plus the time a sign-in may take);
 * a grant as long as that and the tokens Synapse redeems right after the sign-in.
 */
export function providerTtl(policy: Pick<AuthServiceConfig['policy'], 'rememberSignInMinutes'>): Configuration['ttl'] {
  const remember = policy.rememberSignInMinutes * 60;
  const interaction = 3600;
  return {
    AccessToken: 3600,
    AuthorizationCode: 60,
    IdToken: 3600,
    Interaction: interaction,
    Session: remember + interaction,
    Grant: remember + interaction,
  };
}

export function createProvider(config: AuthServiceConfig, secrets: ServiceSecrets, db: Database, state: SignInState): Provider {
  const pageContext = { brand: config.brand, prefix: config.pathPrefix, csrf: '' };
  const pageHeaders = pageSecurityHeaders(config.client.redirectUris.map((uri) => new URL(uri).origin));
  const configuration: Configuration = {
    adapter: postgresAdapterFactory(db),
    clients: [
      {
        client_id: config.client.clientId,
        client_secret: secrets.clientSecret,
        redirect_uris: config.client.redirectUris,
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    async findAccount(_ctx, accountId) {
      const account = await repo.findAccount(db, accountId);
      if (!account) return undefined;
      return { accountId: account.username, claims: async () => ({ sub: account.username, preferred_username: account.username }) };
    },
    scopes: [...oidcScopes],
    claims: { openid: ['sub'], profile: ['preferred_username'] },
    pkce: { required: () => true, methods: ['S256'] },
    jwks: secrets.signingJwks as Configuration['jwks'],
    cookies: {
      keys: [...secrets.cookieKeys],
      long: { signed: true, httpOnly: true, sameSite: 'lax', path: config.pathPrefix },
      // Short-lived cookies keep oidc-provider's own narrower paths (/auth/interaction/<uid>, /auth/authorize/<uid>).
      short: { signed: true, httpOnly: true, sameSite: 'lax' },
    },
    routes: { authorization: '/authorize', token: '/token', userinfo: '/userinfo', jwks: '/jwks', end_session: '/session/end' },
    interactions: { policy: signInPolicy(config.policy, state), url: (_ctx, interaction) => `${config.pathPrefix}/interaction/${interaction.uid}` },
    features: {
      devInteractions: { enabled: false },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: async (ctx: KoaContextWithOIDC, form: string) => {
          ctx.set(pageHeaders);
          ctx.type = 'html';
          ctx.body = logoutPage(pageContext, trustedHtml(form));
        },
        postLogoutSuccessSource: async (ctx: KoaContextWithOIDC) => {
          ctx.set(pageHeaders);
          ctx.type = 'html';
          ctx.body = layout(pageContext, 'Signed out', html`<p id="signed-out">You are signed out of ${config.brand}.</p>`);
        },
      },
    },
    renderError: async (ctx, out) => {
      ctx.set(pageHeaders);
      ctx.type = 'html';
      ctx.body = layout(pageContext, 'Something went wrong', html`<div id="error" class="error" role="alert">${String(out.error_description ?? out.error ?? 'error')}</div>`);
    },
    ttl: providerTtl(config.policy),
  };
  const provider = new Provider(config.issuer, configuration);
  provider.proxy = true;
  provider.on('server_error', (_ctx, error) => log('oidc-server-error', { message: error.message }));
  provider.on('grant.success', (ctx) => log('oidc-token-issued', { client: ctx.oidc.client?.clientId }));
  provider.on('grant.error', (_ctx, error) => log('oidc-token-refused', { error: error.message }));
  return provider;
}

/** Grants the requested scopes (openid, profile) to the client: consent is implicit for this first-party client. */
export async function implicitGrant(provider: Provider, accountId: string, clientId: string, scope: string, existingGrantId: string | undefined): Promise<string> {
  const grant = (existingGrantId ? await provider.Grant.find(existingGrantId) : undefined) ?? new provider.Grant({ accountId, clientId });
  const allowed = scope.split(' ').filter((name) => (oidcScopes as readonly string[]).includes(name));
  grant.addOIDCScope(allowed.join(' '));
  return grant.save();
}

/** Ends the provider's session of the request's browser (its `_session` cookie) and the grants it holds. */
export async function endProviderSession(provider: Provider, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const session = await provider.Session.get({ req, res } as unknown as KoaContextWithOIDC);
  if (!session.jti || !session.accountId) return;
  const grantIds = Object.values(session.authorizations ?? {}).flatMap((authorization) => (authorization.grantId ? [authorization.grantId] : []));
  for (const grantId of grantIds) {
    const grant = await provider.Grant.find(grantId);
    await grant?.destroy();
  }
  await session.destroy();
  log('provider-session-ended', { client: Object.keys(session.authorizations ?? {}).join(' ') });
}
