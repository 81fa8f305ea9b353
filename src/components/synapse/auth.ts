/**
 * Synapse's side of the built-in identity provider (the auth component), when 2FA is on: the `mxstack`
 * OIDC provider entry, and the `mxstack-cli` application service through which mxstack's CLI logs in as
 * the administrator while Synapse's password login is off.
 */
import { posix } from 'node:path';
import type { Stack, StackAuth } from '../../stack/model.js';
import { synapseSecretFiles } from '../../stack/model.js';
import { oidcClientSecretPath } from './oidc.js';
import type { SynapseOidcProvider } from './oidc-presets.js';
import { toSynapseYaml } from './config.js';

/** Id (and sender localpart) of the CLI's application service. */
const cliAppserviceId = 'mxstack-cli';

/** The `oidc_providers` entry for the auth component. */
export function mxstackOidcProvider(stack: Stack, auth: StackAuth): SynapseOidcProvider {
  return {
    idp_id: auth.idpId,
    // Element's button reads "Continue with <idp_name>": the same name as the pages behind it.
    idp_name: stack.brand,
    issuer: auth.issuer,
    // The endpoints are fixed by the stack: the browser goes to the public one, Synapse to the internal ones.
    discover: false,
    authorization_endpoint: `${auth.issuer}/authorize`,
    token_endpoint: `${auth.internalUrl}/token`,
    userinfo_endpoint: `${auth.internalUrl}/userinfo`,
    jwks_uri: `${auth.internalUrl}/jwks`,
    // Synapse would insist on https for those internal endpoints (they are plain http between pods, or on
    // loopback). This skips only those scheme checks of the metadata; the ID token's signature is still
    // verified against jwks_uri.
    skip_verification: true,
    client_id: auth.clientId,
    client_auth_method: 'client_secret_basic',
    client_secret_path: oidcClientSecretPath(stack.placement.paths.synapseSecretsDir, auth.idpId),
    scopes: ['openid', 'profile'],
    pkce_method: 'always',
    user_profile_method: 'userinfo_endpoint',
    // Accounts exist in Synapse first (`mxstack users create`): the subject is the localpart itself.
    allow_existing_users: true,
    enable_registration: false,
    user_mapping_provider: {
      config: { subject_claim: 'sub', localpart_template: '{{ user.preferred_username }}' },
    },
  };
}

/** `^@admin:example\.com$`: the one user id the CLI's application service may act as. */
function exactUserIdPattern(userId: string): string {
  return `^${userId.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`;
}

/** The admin user's Matrix id, `@<adminUser.username>:<server name>`. */
export function adminUserId(stack: Stack): string {
  return `@${stack.values.synapse.server.adminUser.username}:${stack.serverName}`;
}

/** The application service registration as an object (Synapse's app_service_config_files format). */
export function cliAppserviceRegistrationConfig(stack: Stack, asToken: string, hsToken: string): Record<string, unknown> {
  return {
    id: cliAppserviceId,
    // Nothing listens: Synapse pushes no events to it.
    url: null,
    as_token: asToken,
    hs_token: hsToken,
    sender_localpart: cliAppserviceId,
    namespaces: {
      users: [{ exclusive: false, regex: exactUserIdPattern(adminUserId(stack)) }],
      aliases: [],
      rooms: [],
    },
    rate_limited: false,
  };
}

/**
 * The registration file's text (it holds both tokens: it belongs in Synapse's secrets directory as
 * `synapseSecretFiles.cliAppserviceRegistration`). Both targets write exactly this.
 */
export function cliAppserviceRegistration(stack: Stack, asToken: string, hsToken: string): string {
  return toSynapseYaml(cliAppserviceRegistrationConfig(stack, asToken, hsToken));
}

/** Where homeserver.yaml's app_service_config_files points. */
export function cliAppserviceRegistrationPath(stack: Stack): string {
  return posix.join(stack.placement.paths.synapseSecretsDir, synapseSecretFiles.cliAppserviceRegistration);
}
