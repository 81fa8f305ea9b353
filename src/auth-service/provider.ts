// The OpenID Provider: oidc-provider 8 configured for the one client (Synapse), with the PostgreSQL adapter,
// our own interaction pages (no dev interactions), implicit consent for this first-party client, and
// pages in the service's look for errors and sign-out.
import Provider, { type Configuration, type KoaContextWithOIDC } from 'oidc-provider';
import type { AuthServiceConfig } from '../components/auth/service-config.js';
import type { Database } from './repository.js';
import * as repo from './repository.js';
import { postgresAdapterFactory } from './adapter.js';
import type { ServiceSecrets } from './config.js';
import { html, trustedHtml } from './html.js';
import { layout, logoutPage } from './pages.js';
import { log } from './log.js';
import { pageSecurityHeaders } from './http.js';

export const oidcScopes = ['openid', 'profile'] as const;

export function createProvider(config: AuthServiceConfig, secrets: ServiceSecrets, db: Database): Provider {
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
    interactions: { url: (_ctx, interaction) => `${config.pathPrefix}/interaction/${interaction.uid}` },
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
    ttl: {
      AccessToken: 3600,
      AuthorizationCode: 60,
      IdToken: 3600,
      Interaction: 3600,
      Session: 14 * 24 * 3600,
      Grant: 14 * 24 * 3600,
    },
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
