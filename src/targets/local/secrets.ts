/**
 * The local twin of the stack's Kubernetes Secrets: one file per secret key under
 * <state>/secrets/<Secret name>/<key>, root-only. Missing secrets are generated, existing ones never replaced.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { AuthSecrets, SecretRef, Stack } from '../../stack/model.js';
import {
  authSecretGenerators,
  generateAdminPassword,
  generatePostgresPassword,
  generateRandomSecret,
  generateSigningKey,
} from '../../ops/secrets/generate.js';
import type { LocalAuthSecretValues } from './auth.js';
import type { StateLayout } from './state.js';

export class MissingSecretError extends Error {}

export function localSecretFile(layout: StateLayout, ref: SecretRef): string {
  return join(layout.secretsDir, ref.name, ref.key);
}

export function readLocalSecret(layout: StateLayout, ref: SecretRef): string | undefined {
  try {
    return readFileSync(localSecretFile(layout, ref), 'utf8');
  } catch {
    return undefined;
  }
}

function writeLocalSecret(layout: StateLayout, ref: SecretRef, value: string): void {
  const file = localSecretFile(layout, ref);
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, value, { mode: 0o600 });
  chmodSync(file, 0o600);
}

/**
 * A secret's value: written in values (which wins, it is the user's explicit choice), else the stored one,
 * else a generated one (stored), else, when nothing can generate it, an error naming the file to write.
 */
function ensureSecret(layout: StateLayout, ref: SecretRef, fromValues: string | undefined, generate: (() => string) | undefined): string {
  const stored = readLocalSecret(layout, ref);
  if (fromValues !== undefined) {
    if (stored !== fromValues) writeLocalSecret(layout, ref, fromValues);
    return fromValues;
  }
  if (stored !== undefined) return stored;
  if (!generate) {
    throw new MissingSecretError(`secret ${ref.name}/${ref.key} is missing: write it to ${localSecretFile(layout, ref)} (mode 0600) or set it in values.`);
  }
  const value = generate();
  writeLocalSecret(layout, ref, value);
  return value;
}

export interface LocalSecretValues {
  postgresPassword: string;
  adminUsername: string;
  adminPassword: string;
  registrationSharedSecret: string;
  macaroonSecretKey: string;
  formSecret: string;
  turnSharedSecret: string;
  signingKey: string;
  smtpPassword?: string;
  oidcClientSecrets: Record<string, string>;
  /** The auth component's keys, when 2FA is on. */
  auth?: LocalAuthSecretValues;
  /** With workers: the replication secret and Redis's password. */
  workers?: { replicationSecret: string; redisPassword: string };
}

/** The auth component's keys (<state>/secrets/<release>-auth/*), generated as `secrets init` does when missing. */
function ensureAuthSecrets(refs: AuthSecrets, layout: StateLayout): LocalAuthSecretValues {
  const keys = Object.keys(authSecretGenerators) as (keyof AuthSecrets)[];
  return Object.fromEntries(keys.map((key) => [key, ensureSecret(layout, refs[key], undefined, authSecretGenerators[key])])) as LocalAuthSecretValues;
}

/** Every secret the stack reads, generating the missing ones. */
export function ensureLocalSecrets(stack: Stack, layout: StateLayout): LocalSecretValues {
  const { secrets, values } = stack;
  const admin = values.synapse.server.adminUser;
  const email = values.synapse.server.email;
  const oidcClientSecrets: Record<string, string> = {};
  for (const provider of values.synapse.server.sso.oidc.providers) {
    const ref = secrets.oidcClientSecrets[provider.idp_id];
    if (ref) oidcClientSecrets[provider.idp_id] = ensureSecret(layout, ref, provider.client_secret, undefined);
  }
  return {
    postgresPassword: ensureSecret(layout, secrets.postgresPassword, undefined, generatePostgresPassword),
    adminUsername: ensureSecret(layout, secrets.adminUsername, admin.username, undefined),
    adminPassword: ensureSecret(layout, secrets.adminPassword, admin.password, generateAdminPassword),
    registrationSharedSecret: ensureSecret(layout, secrets.registrationSharedSecret, admin.registrationSecret, generateRandomSecret),
    macaroonSecretKey: ensureSecret(layout, secrets.macaroonSecretKey, undefined, generateRandomSecret),
    formSecret: ensureSecret(layout, secrets.formSecret, undefined, generateRandomSecret),
    turnSharedSecret: ensureSecret(layout, secrets.turnSharedSecret, undefined, generateRandomSecret),
    signingKey: ensureSecret(layout, secrets.signingKey, undefined, generateSigningKey),
    ...(email.enabled && secrets.smtpPassword
      ? { smtpPassword: ensureSecret(layout, secrets.smtpPassword, email.smtpPass, undefined) }
      : {}),
    oidcClientSecrets,
    ...(secrets.auth ? { auth: ensureAuthSecrets(secrets.auth, layout) } : {}),
    ...(secrets.workers
      ? {
          workers: {
            replicationSecret: ensureSecret(layout, secrets.workers.replicationSecret, undefined, generateRandomSecret),
            redisPassword: ensureSecret(layout, secrets.workers.redisPassword, undefined, generateRandomSecret),
          },
        }
      : {}),
  };
}

export function secretsDirExists(layout: StateLayout): boolean {
  return existsSync(layout.secretsDir);
}
