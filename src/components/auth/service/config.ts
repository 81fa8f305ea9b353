// Reads the service's config.json (AuthServiceConfig) and its secret files. Every problem is one clear
// error naming the file or field and what is allowed; secret values never appear in an error.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { authSecretFiles, type AuthServiceConfig } from '../service-config.js';
import { parseRecoveryCodeKey, parseSealingKeyring, type SealingKeyring } from '../keys.js';

export interface ServiceSecrets {
  readonly databasePassword: string;
  readonly clientSecret: string;
  readonly sealing: SealingKeyring;
  readonly recoveryCodeKey: Buffer;
  readonly cookieKeys: readonly string[];
  /** RS256 private JWKs. */
  readonly signingJwks: { keys: Record<string, unknown>[] };
  readonly adminToken: string;
}

export interface ServiceArguments {
  readonly configPath: string;
  readonly secretsDir: string | undefined;
}

export const usage = 'usage: mxstack-auth --config <config.json> [--secrets-dir <dir>]';

export function parseArguments(argv: readonly string[]): ServiceArguments {
  let configPath: string | undefined;
  let secretsDir: string | undefined;
  for (let index = 0; index < argv.length; index++) {
    const argument = argv[index];
    const value = argv[index + 1];
    if ((argument === '--config' || argument === '--secrets-dir') && value !== undefined && !value.startsWith('--')) {
      if (argument === '--config') configPath = value;
      else secretsDir = value;
      index++;
    } else {
      throw new Error(`unexpected argument ${JSON.stringify(argument)}; ${usage}`);
    }
  }
  if (!configPath) throw new Error(`--config is required; ${usage}`);
  return { configPath, secretsDir };
}

export function loadConfig(path: string): AuthServiceConfig {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new Error(`cannot read the auth service config ${path}: ${(error as Error).message}`);
  }
  return checkConfig(parsed, path);
}

function checkConfig(value: unknown, path: string): AuthServiceConfig {
  const config = value as AuthServiceConfig;
  const missing = (['issuer', 'pathPrefix', 'listen', 'adminListen', 'database', 'serverName', 'client', 'brand', 'policy', 'trustedProxies', 'secureCookies'] as const).filter(
    (key) => typeof value !== 'object' || value === null || (config as unknown as Record<string, unknown>)[key] === undefined,
  );
  if (missing.length > 0) throw new Error(`${path}: missing field(s) ${missing.join(', ')} (see AuthServiceConfig)`);
  if (!/^https?:\/\/[^/]+(\/.*[^/])?$/.test(config.issuer)) throw new Error(`${path}: issuer must be an http(s) URL without a trailing slash, got ${JSON.stringify(config.issuer)}`);
  if (!/^\/[A-Za-z0-9._~-]+(\/[A-Za-z0-9._~-]+)*$/.test(config.pathPrefix)) throw new Error(`${path}: pathPrefix must look like /auth, got ${JSON.stringify(config.pathPrefix)}`);
  if (new URL(config.issuer).pathname !== config.pathPrefix) throw new Error(`${path}: the issuer's path (${new URL(config.issuer).pathname}) must equal pathPrefix (${config.pathPrefix})`);
  if (!config.policy.totp.enabled && !config.policy.webauthn.enabled) throw new Error(`${path}: policy enables neither totp nor webauthn (at least one second factor must be on)`);
  const remember = config.policy.rememberSignInMinutes ?? 0;
  if (!Number.isInteger(remember) || remember < 0) throw new Error(`${path}: policy.rememberSignInMinutes must be a whole number of minutes, 0 or more, got ${JSON.stringify(remember)}`);
  return { ...config, policy: { ...config.policy, rememberSignInMinutes: remember } };
}

/** The directory of the secret files: `--secrets-dir`, else the config's `secretsDir`. */
export function secretsDirectory(args: ServiceArguments, config: AuthServiceConfig): string {
  const dir = args.secretsDir ?? config.secretsDir;
  if (!dir) throw new Error(`no secrets directory: give --secrets-dir <dir> or set secretsDir in the config; ${usage}`);
  return dir;
}

function readSecret(dir: string, name: string): string {
  let text: string;
  try {
    text = readFileSync(join(dir, name), 'utf8');
  } catch (error) {
    throw new Error(`cannot read the secret file ${join(dir, name)} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  const value = text.trim();
  if (value === '') throw new Error(`the secret file ${join(dir, name)} is empty`);
  return value;
}

export function loadSecrets(dir: string): ServiceSecrets {
  const jwksText = readSecret(dir, authSecretFiles.signingJwks);
  let signingJwks: { keys: Record<string, unknown>[] };
  try {
    signingJwks = JSON.parse(jwksText) as { keys: Record<string, unknown>[] };
  } catch {
    throw new Error(`the secret file ${join(dir, authSecretFiles.signingJwks)} is not JSON (a JWKS: {"keys": [RS256 private JWKs]})`);
  }
  if (!Array.isArray(signingJwks.keys) || signingJwks.keys.length === 0 || signingJwks.keys.some((key) => key.kty !== 'RSA' || typeof key.d !== 'string')) {
    throw new Error(`the secret file ${join(dir, authSecretFiles.signingJwks)} must be a JWKS with at least one private RSA key`);
  }
  const cookieKeys = readSecret(dir, authSecretFiles.cookieKeys).split(',').map((key) => key.trim()).filter((key) => key !== '');
  if (cookieKeys.some((key) => key.length < 32)) throw new Error(`the secret file ${join(dir, authSecretFiles.cookieKeys)} must hold comma-separated keys of at least 32 characters`);
  return {
    databasePassword: readSecret(dir, authSecretFiles.databasePassword),
    clientSecret: readSecret(dir, authSecretFiles.clientSecret),
    sealing: parseSealingKeyring(readSecret(dir, authSecretFiles.sealingKeyring)),
    recoveryCodeKey: parseRecoveryCodeKey(readSecret(dir, authSecretFiles.recoveryCodeKey)),
    cookieKeys,
    signingJwks,
    adminToken: readSecret(dir, authSecretFiles.adminToken),
  };
}
