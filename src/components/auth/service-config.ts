/**
 * The contract between the stack and the auth service (the built-in identity provider):
 * - `AuthServiceConfig`: the non-secret config.json the service reads at start (generated from the stack by
 *   `authServiceConfig` in ./config.ts, written to placement.paths.authConfigDir);
 * - `authSecretFiles`: the files in placement.paths.authSecretsDir, one secret each (never in config.json);
 * - the administration API mxstack's CLI calls (`AdminAccountInfo` and the routes in `authAdminRoutes`).
 */
import { databaseFieldFiles } from '../../stack/model.js';

/** The HMAC of the TOTP codes (RFC 6238), as authenticator apps name it. */
export type TotpAlgorithm = 'SHA1' | 'SHA256' | 'SHA512';

export interface AuthServiceConfig {
  /** OpenID Connect issuer, the public URL of the service, no trailing slash: `https://host/auth`. */
  issuer: string;
  /** Path prefix of every route the service serves (the issuer's path): `/auth`. */
  pathPrefix: string;
  /** Sign-in pages and OpenID Connect endpoints. */
  listen: { host: string; port: number };
  /** Administration API for mxstack's CLI (bearer token `admin-token`); never routed from outside. */
  adminListen: { host: string; port: number };
  /**
   * The PostgreSQL server of the stack. The service keeps its data in its own database `database` (created
   * at start when missing) and reads Synapse's `users` table in `synapseDatabase` (the one-time import of
   * existing users' password hashes, and who is a server admin). Password: the file `database-password`.
   */
  database: { host: string; port: number; user: string; database: string; synapseDatabase: string; sslmode: string; ca?: string };
  /** The Matrix server name (user ids are `@<username>:<serverName>`). */
  serverName: string;
  /** Synapse, the one OpenID Connect client: confidential, secret in the file `client-secret`. */
  client: { clientId: string; redirectUris: string[] };
  /** Where a signed-in user is sent from the account page ("Back to Element"). */
  elementUrl?: string;
  /** Name shown on the pages: the stack's brand (Element's brand, else the server name). */
  brand: string;
  policy: AuthPolicy;
  /**
   * Client addresses (for throttling and the audit log) come from X-Forwarded-For only when the direct
   * peer is one of these addresses (the router); otherwise the peer address itself is used.
   */
  trustedProxies: string[];
  /** Cookies get `Secure` (true whenever the issuer is https). */
  secureCookies: boolean;
  /**
   * The directory of the secret files (`authSecretFiles`), placement.paths.authSecretsDir. Optional: the
   * command line's `--secrets-dir <dir>` takes precedence; one of the two must be given.
   */
  secretsDir?: string;
}

export interface AuthPolicy {
  totp: { enabled: boolean; issuer: string; digits: number; period: number; algorithm: TotpAlgorithm };
  /** `origin`: the origin of the sign-in pages (the issuer's), which WebAuthn responses must carry. */
  webauthn: { enabled: boolean; rpId: string; rpName: string; origin: string };
  /** Every account must have a second factor (enrolment at the next sign-in). */
  required: boolean;
  /** Server admins (Synapse `users.admin`) must have a second factor. */
  requiredForAdmins: boolean;
  /**
   * Minutes a finished sign-in may be reused by the next authorization request of the same browser (a login or
   * a UIA confirmation) without the password and second factor; 0: never (every request signs in afresh).
   */
  rememberSignInMinutes: number;
  lockout: { maxFailures: number; durationSeconds: number; failureWindowSeconds: number };
}

/** File names inside placement.paths.authSecretsDir; each holds one value (see AuthSecrets in the stack model). */
export const authSecretFiles = {
  databasePassword: 'database-password',
  clientSecret: 'client-secret',
  sealingKeyring: 'sealing-keyring',
  recoveryCodeKey: 'recovery-code-key',
  cookieKeys: 'cookie-keys',
  signingJwks: 'signing-jwks',
  adminToken: 'admin-token',
} as const;

/**
 * Connection fields that come from Secrets (an operator's database): when one of these files is in the
 * secrets directory it replaces the config's field (a name from a file also names the auth database:
 * `<name>_auth`). `ca` holds the server's CA certificate (PEM).
 */
export const authDatabaseFieldFiles = {
  host: databaseFieldFiles.host,
  port: databaseFieldFiles.port,
  user: databaseFieldFiles.user,
  synapseDatabase: databaseFieldFiles.name,
  sslmode: databaseFieldFiles.sslmode,
  ca: databaseFieldFiles.ca,
} as const;

/** The config file's name inside placement.paths.authConfigDir. */
export const authConfigFile = 'config.json';

/** The shortest password the service accepts (account page, admin API, `mxstack users create`). */
export const minimumPasswordLength = 8;

/** Health endpoint on both listeners: 200 when the database answers. */
export const authHealthPath = '/health';

/**
 * Administration API (adminListen), JSON bodies, `Authorization: Bearer <admin-token>`. Usernames are
 * Matrix localparts. Errors: `{ error: string }` with 400 (bad input), 401 (token), 404 (no such account).
 */
export const authAdminRoutes = {
  /** GET → AdminAccountInfo (404 when neither the service nor Synapse knows the user). */
  account: (username: string) => `/admin/v1/accounts/${encodeURIComponent(username)}`,
  /** PUT { password: string, isAdmin?: boolean } → 204: sets the password (argon2id), creating the account when missing. */
  password: (username: string) => `/admin/v1/accounts/${encodeURIComponent(username)}/password`,
  /** POST {} → AdminAccountInfo: removes every second factor and recovery code; the user enrols afresh. */
  resetSecondFactors: (username: string) => `/admin/v1/accounts/${encodeURIComponent(username)}/reset-second-factors`,
  /** POST {} → 204: clears the account's lockout (not the addresses'). */
  unlock: (username: string) => `/admin/v1/accounts/${encodeURIComponent(username)}/unlock`,
  /** POST {} → 204: ends every sign-in of the account (provider sessions, grants, tokens, web sessions). */
  endSessions: (username: string) => `/admin/v1/accounts/${encodeURIComponent(username)}/end-sessions`,
} as const;

/** What `users info` shows of an account: factors and their names and dates, never secrets. */
export interface AdminAccountInfo {
  username: string;
  isAdmin: boolean;
  /** Must enrol a second factor at the next sign-in: the policy in force requires one and the account has none. */
  mustEnrol: boolean;
  /** `none`: the password still lives in Synapse only and is imported at the first sign-in. */
  password: 'argon2id' | 'synapse-bcrypt' | 'none';
  totp: { enrolled: boolean; enrolledAt?: string };
  webauthn: { name: string; createdAt: string; lastUsedAt?: string }[];
  recoveryCodesLeft: number;
  /** Set while the account is locked out: ISO time the lockout ends. */
  lockedUntil?: string;
}
