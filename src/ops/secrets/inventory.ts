/**
 * Every secret a stack reads, with its purpose and how `secrets init` gets its value: generated, written
 * in the values, or brought by the user (an `existingSecret`-style reference, never generated).
 * Pure: a function of the stack.
 */
import type { AuthSecrets, SecretRef, Stack } from '../../stack/model.js';
import { authSecretGenerators, generateAdminPassword, generatePostgresPassword, generateRandomSecret, generateSigningKey } from './generate.js';

/** What each key of the auth component's Secret is for (`secrets list`). */
const authSecretPurposes: Record<keyof AuthSecrets, string> = {
  clientSecret: 'Synapse\'s client secret at the built-in identity provider (2FA)',
  sealingKeyring: 'keyring sealing TOTP secrets at rest (2FA)',
  recoveryCodeKey: 'HMAC key of the recovery-code hashes (2FA)',
  cookieKeys: 'signing keys of the sign-in cookies (2FA)',
  signingJwks: 'OpenID Connect signing keys of the identity provider (JWKS, 2FA)',
  adminToken: 'bearer token of the identity provider\'s administration API (mxstack users)',
  cliAppserviceToken: 'as_token of the mxstack-cli application service (admin login while password login is off)',
  cliAppserviceHsToken: 'hs_token of the mxstack-cli application service',
};

/** `auth-client-secret`, `auth-sealing-keyring`, ...: the key names with an `auth-` prefix. */
const authSecretId = (ref: SecretRef) => `auth-${ref.key}`;

export type SecretOrigin =
  /** mxstack generates it when missing. */
  | 'generated'
  /** Written in the values file (adminUser.password, an OIDC client_secret ...). */
  | 'values'
  /** The user creates it (the values point at their Secret, or nothing can generate it). */
  | 'user';

export interface SecretEntry {
  /** Stable short name, used by `secrets rotate NAME`. */
  id: string;
  ref: SecretRef;
  purpose: string;
  origin: SecretOrigin;
  /** The value from values (origin 'values'), or a generator (origin 'generated'). */
  value?: () => string;
}

export function secretInventory(stack: Stack): SecretEntry[] {
  const { secrets, values } = stack;
  const server = values.synapse.server;
  const entries: SecretEntry[] = [];
  const add = (id: string, ref: SecretRef, purpose: string, fromValues: string | undefined, generate: (() => string) | undefined) => {
    if (ref.userProvided) entries.push({ id, ref, purpose, origin: 'user' });
    else if (fromValues !== undefined) entries.push({ id, ref, purpose, origin: 'values', value: () => fromValues });
    else if (generate) entries.push({ id, ref, purpose, origin: 'generated', value: generate });
    else entries.push({ id, ref, purpose, origin: 'user' });
  };
  const bundledDatabase = values.postgresql.enabled && !values.synapse.database.external;
  add('postgres-password', secrets.postgresPassword, 'password of the database role Synapse uses', undefined, bundledDatabase ? generatePostgresPassword : undefined);
  add('admin-username', secrets.adminUsername, 'localpart of the administrator', server.adminUser.username, undefined);
  add('admin-password', secrets.adminPassword, 'password of the administrator', server.adminUser.password, generateAdminPassword);
  add('registration-shared-secret', secrets.registrationSharedSecret, 'registration_shared_secret (admin registration)', server.adminUser.registrationSecret, () => generateRandomSecret());
  add('macaroon-secret-key', secrets.macaroonSecretKey, 'macaroon_secret_key (login and access tokens)', undefined, () => generateRandomSecret());
  add('form-secret', secrets.formSecret, 'form_secret (consent and fallback forms)', undefined, () => generateRandomSecret());
  if (server.turn.enabled || values.coturn.enabled) {
    add('turn-shared-secret', secrets.turnSharedSecret, 'TURN shared secret (Synapse and coturn)', undefined, () => generateRandomSecret());
  }
  add('signing-key', secrets.signingKey, 'the federation signing key (ed25519)', undefined, generateSigningKey);
  if (server.email.enabled && secrets.smtpPassword && server.email.smtpUser) {
    add('smtp-password', secrets.smtpPassword, 'SMTP password', server.email.smtpPass, undefined);
  }
  if (server.sso.enabled && server.sso.oidc.enabled) {
    for (const provider of server.sso.oidc.providers) {
      const ref = secrets.oidcClientSecrets[provider.idp_id];
      if (ref) add(`oidc-${provider.idp_id}`, ref, `client secret of OIDC provider ${provider.idp_id}`, provider.client_secret, undefined);
    }
  }
  if (secrets.workers) {
    add('worker-replication-secret', secrets.workers.replicationSecret, 'worker_replication_secret (HTTP replication between Synapse processes)', undefined, () => generateRandomSecret());
    add('redis-password', secrets.workers.redisPassword, 'the Redis password (Synapse processes, Redis, its exporter)', undefined, () => generateRandomSecret());
  }
  if (secrets.auth) {
    for (const key of Object.keys(authSecretPurposes) as (keyof AuthSecrets)[]) {
      const ref = secrets.auth[key];
      add(authSecretId(ref), ref, authSecretPurposes[key], undefined, authSecretGenerators[key]);
    }
  }
  return entries;
}

/** Names of the Secrets holding the inventory (for listing). */
export function inventorySecretNames(entries: readonly SecretEntry[]): string[] {
  return [...new Set(entries.map((e) => e.ref.name))].sort();
}
