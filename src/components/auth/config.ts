/** The auth component's config.json (the contract in ./service-config.ts), derived from the stack. Pure. */
import { authPathPrefix, type AuthSecrets, type Stack } from '../../stack/model.js';
import { authSecretFiles, type AuthPolicy, type AuthServiceConfig } from './service-config.js';
import type { TotpAlgorithm } from './totp.js';
import { toSortedJson } from '../wellknown/sorted-json.js';

/** Locally the router reaches the service over loopback; on Kubernetes from the pod network (values). */
function authTrustedProxies(stack: Stack): string[] {
  return stack.placement.target === 'local' ? [stack.placement.hosts.router] : [...stack.values.auth.trustedProxies];
}

function requireAuth(stack: Stack): NonNullable<Stack['auth']> {
  if (!stack.auth) throw new Error('authServiceConfig: the stack has no auth component (synapse.server.mfa.totp and .webauthn are off).');
  return stack.auth;
}

function authPolicy(stack: Stack): AuthPolicy {
  const { mfa } = stack.values.synapse.server;
  const issuer = requireAuth(stack).issuer;
  return {
    totp: {
      enabled: mfa.totp.enabled,
      issuer: mfa.totp.issuer,
      digits: mfa.totp.digits,
      period: mfa.totp.period,
      algorithm: mfa.totp.algorithm.toUpperCase() as TotpAlgorithm,
    },
    webauthn: {
      enabled: mfa.webauthn.enabled,
      rpId: mfa.webauthn.rpId ?? new URL(stack.publicBaseUrl).hostname,
      rpName: mfa.webauthn.rpName,
      origin: new URL(issuer).origin,
    },
    required: mfa.required,
    requiredForAdmins: mfa.requiredForAdmins,
    rememberSignInMinutes: mfa.rememberSignInMinutes,
    lockout: { ...mfa.lockout },
  };
}

/** Synapse's OIDC callback: the one redirect URI of the `synapse` client. */
function synapseOidcCallbackUrl(stack: Stack): string {
  return `${stack.publicBaseUrl}_synapse/client/oidc/callback`;
}

/** config.json of the auth service (no secrets: those are files in placement.paths.authSecretsDir). */
export function authServiceConfig(stack: Stack): AuthServiceConfig {
  const auth = requireAuth(stack);
  const { placement, database } = stack;
  return {
    issuer: auth.issuer,
    pathPrefix: authPathPrefix,
    listen: { host: placement.bindAddress, port: placement.ports.auth },
    adminListen: { host: placement.bindAddress, port: placement.ports.authAdmin },
    database: {
      host: database.host,
      port: database.port,
      user: database.user,
      database: auth.database,
      synapseDatabase: database.name,
      sslmode: database.sslmode,
    },
    serverName: stack.serverName,
    client: { clientId: auth.clientId, redirectUris: [synapseOidcCallbackUrl(stack)] },
    ...(stack.elementUrl !== undefined ? { elementUrl: stack.elementUrl } : {}),
    brand: stack.brand,
    policy: authPolicy(stack),
    trustedProxies: authTrustedProxies(stack),
    secureCookies: new URL(auth.issuer).protocol === 'https:',
    secretsDir: placement.paths.authSecretsDir,
  };
}

/** config.json as written to placement.paths.authConfigDir: sorted keys, so equal stacks give equal bytes. */
export function renderAuthConfigFile(stack: Stack): string {
  return toSortedJson(authServiceConfig(stack));
}

/**
 * Which `<release>-auth` key lands in which file of placement.paths.authSecretsDir, on both targets (the
 * database password comes from PostgreSQL's Secret; the appservice tokens are Synapse's).
 */
export const authSecretFileOfKey: Record<Exclude<keyof AuthSecrets, 'cliAppserviceToken' | 'cliAppserviceHsToken'>, { file: string; purpose: string }> = {
  clientSecret: { file: authSecretFiles.clientSecret, purpose: 'Synapse\'s client secret' },
  sealingKeyring: { file: authSecretFiles.sealingKeyring, purpose: 'TOTP sealing keyring' },
  recoveryCodeKey: { file: authSecretFiles.recoveryCodeKey, purpose: 'recovery-code HMAC key' },
  cookieKeys: { file: authSecretFiles.cookieKeys, purpose: 'cookie signing keys' },
  signingJwks: { file: authSecretFiles.signingJwks, purpose: 'OpenID Connect signing keys (JWKS)' },
  adminToken: { file: authSecretFiles.adminToken, purpose: 'administration API bearer token' },
};
