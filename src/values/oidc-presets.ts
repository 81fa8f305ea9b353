/**
 * What each OIDC preset fills in a Synapse `oidc_providers` entry (values always win over it). Data only,
 * so the values checks can see what a preset provides without importing the renderer.
 */
import type { OidcProvider } from './schema.js';

export type OidcPreset = NonNullable<OidcProvider['preset']>;

export type SynapseOidcProvider = Record<string, unknown>;

const standardClaims = {
  scopes: ['openid', 'profile', 'email'],
};

/** Discovery-based providers whose preferred_username is a plain user name. */
const discoveringProvider: SynapseOidcProvider = {
  ...standardClaims,
  discover: true,
  pkce_method: 'auto',
  user_mapping_provider: {
    config: { localpart_template: '{{ user.preferred_username }}', display_name_template: '{{ user.name }}' },
  },
};

/** Providers whose preferred_username is an email address: the localpart is the part before the @. */
const emailUsernameProvider: SynapseOidcProvider = {
  ...discoveringProvider,
  user_mapping_provider: {
    config: {
      localpart_template: "{{ user.preferred_username.split('@')[0] }}",
      display_name_template: '{{ user.name }}',
    },
  },
};

export const oidcPresets: Record<OidcPreset, SynapseOidcProvider> = {
  // Authelia serves the profile claims from its userinfo endpoint, not in the ID token.
  authelia: { ...discoveringProvider, user_profile_method: 'userinfo_endpoint' },
  keycloak: discoveringProvider,
  authentik: discoveringProvider,
  azuread: emailUsernameProvider,
  okta: emailUsernameProvider,
  google: {
    ...standardClaims,
    discover: true,
    issuer: 'https://accounts.google.com',
    idp_brand: 'google',
    user_mapping_provider: { config: { display_name_template: '{{ user.name }}', email_template: '{{ user.email }}' } },
  },
  // GitHub speaks plain OAuth2: no discovery, no ID token, no `sub` claim.
  github: {
    discover: false,
    issuer: 'https://github.com/',
    idp_brand: 'github',
    authorization_endpoint: 'https://github.com/login/oauth/authorize',
    token_endpoint: 'https://github.com/login/oauth/access_token',
    userinfo_endpoint: 'https://api.github.com/user',
    scopes: ['read:user'],
    user_mapping_provider: {
      config: { subject_claim: 'id', localpart_template: '{{ user.login }}', display_name_template: '{{ user.name }}' },
    },
  },
};
