/**
 * The compiled stack: what every component needs to know about the others, derived once from the
 * values and a placement. Targets differ only in the placement (addresses, ports, paths), never in
 * how configuration files are generated.
 */
import type { Values } from '../values/schema.js';
import { componentVersions } from '../versions.js';

export type TargetKind = 'kubernetes' | 'local';

/**
 * The components of a stack, in start order (a component's dependencies come before it). The one list:
 * components/registry.ts holds each one's contract, and targets, doctor and the CLI derive theirs from it.
 */
export const componentNames = ['postgresql', 'auth', 'redis', 'synapse', 'coturn', 'element', 'router'] as const;

export type ComponentName = (typeof componentNames)[number];

/** Where a target puts each component: host names, ports and file locations. */
export interface Placement {
  target: TargetKind;
  /** Address servers bind to (0.0.0.0 in pods, 127.0.0.1 locally). */
  bindAddress: string;
  /** How each component is reached by the others. */
  hosts: Record<ComponentName, string>;
  ports: {
    synapseHttp: number;
    synapseMetrics: number;
    /** The main process's HTTP replication listener (workers only; never routed). */
    synapseReplication: number;
    postgresql: number;
    /** Redis, the replication bus (workers only). */
    redis: number;
    element: number;
    router: number;
    routerMetrics: number;
    turn: number;
    turns: number;
    turnMetrics: number;
    relayMin: number;
    relayMax: number;
    /** The auth component: sign-in pages and OpenID Connect endpoints (routed under authPathPrefix). */
    auth: number;
    /** The auth component's administration API for mxstack's CLI (never routed). */
    authAdmin: number;
  };
  paths: {
    /** Directory holding the generated, non-secret Synapse files (homeserver.yaml, log.yaml). */
    synapseConfigDir: string;
    /** Directory holding one file per Synapse secret (see SynapseSecretFile). */
    synapseSecretsDir: string;
    /** The signing key file. */
    signingKey: string;
    mediaStore: string;
    /** Synapse's data directory (pid file, uploads in flight). */
    synapseDataDir: string;
    /** Directory of the router's files (haproxy.cfg, well-known JSON). */
    routerConfigDir: string;
    /** Directory of coturn's TLS certificate and key (tls.crt, tls.key), when TLS is on. */
    coturnTlsDir: string;
    /** Directory holding the auth component's generated, non-secret config.json. */
    authConfigDir: string;
    /** Directory holding one file per auth secret (see authSecretFiles in components/auth/service-config.ts). */
    authSecretsDir: string;
    /** Directory holding redis.conf (no secret). */
    redisConfigDir: string;
    /** Directory holding Redis's secret include (requirepass). */
    redisSecretsDir: string;
    /** Redis's data directory. */
    redisDataDir: string;
    /**
     * Local target: the Element Web build served (element.webRoot, or the verified release unpacked in the
     * state directory); absent when there is none, and Element is then not served.
     */
    elementWebRoot?: string;
  };
  /**
   * Where each Synapse worker listens (HTTP, replication, metrics) and how the others reach it. Kubernetes:
   * fixed container ports, one DNS name per pod; locally: a block of three loopback ports per worker.
   */
  synapseWorkers: WorkerPlacement;
  /** Address coturn relays from and announces when no externalIP is configured. */
  coturnRelayAddress?: string;
}

export interface WorkerAddress {
  /** How the router and the other processes reach this process. */
  host: string;
  http: number;
  replication: number;
  metrics: number;
}

export type WorkerPlacement =
  | { kind: 'kubernetes'; http: number; replication: number; metrics: number }
  /** The worker at index i listens on firstPort + 3i (HTTP), + 1 (replication), + 2 (metrics). */
  | { kind: 'local'; firstPort: number; host: string };

/** File names inside placement.paths.redisSecretsDir. */
export const redisSecretFiles = {
  /** redis.conf's include holding `requirepass`. */
  passwordConf: 'password.conf',
} as const;

/** File names inside placement.paths.synapseSecretsDir. */
export const synapseSecretFiles = {
  /** YAML with only the `database` and `email` blocks (Synapse has no *_path for them). */
  secretConfig: 'homeserver-secrets.yaml',
  registrationSharedSecret: 'registration_shared_secret',
  macaroonSecretKey: 'macaroon_secret_key',
  formSecret: 'form_secret',
  turnSharedSecret: 'turn_shared_secret',
  oidcClientSecret: (idpId: string) => `oidc_${idpId}_client_secret`,
  /** worker_replication_secret_path: authenticates HTTP replication between Synapse processes (workers only). */
  replicationSecret: 'worker_replication_secret',
  /** redis.password_path (workers only). */
  redisPassword: 'redis_password',
  /** The database server's CA certificate (sslrootcert) when it comes from a Secret; a CA written in values is `databaseCaFile` in the config directory. */
  databaseCa: 'database-ca.pem',
  /** The `mxstack-cli` application service registration (holds its as_token and hs_token), when 2FA is on. */
  cliAppserviceRegistration: 'mxstack-cli-appservice.yaml',
} as const;

/** A Kubernetes Secret key the stack reads, and who creates it. */
export interface SecretRef {
  name: string;
  key: string;
  /** true when values point at a Secret the user manages; false when `mxstack secrets init` creates it. */
  userProvided: boolean;
  /** Created by an operator the release deploys a resource for (CloudNativePG's `<cluster>-app`), after the apply. */
  operatorCreated?: boolean;
}

/** The connection fields of the database; each may come from a Secret instead of the values. */
export type DatabaseField = 'host' | 'port' | 'name' | 'user' | 'sslmode' | 'ca';

/** How PostgreSQL is provided: mxstack's StatefulSet, a CloudNativePG Cluster, or a server outside the release. */
export type DatabaseProvider = 'statefulset' | 'cloudnative-pg' | 'external';

export interface StackDatabase {
  provider: DatabaseProvider;
  /** The CloudNativePG Cluster's name (provider cloudnative-pg). */
  cluster?: string;
  /** Literal values; for a field in `fromSecret` only a description of where it comes from (never configuration). */
  host: string;
  port: number;
  name: string;
  user: string;
  sslmode: string;
  /** CA certificate (PEM) written in the values. */
  ca?: string;
  /** Fields read from Secrets when the release is installed (and mounted as files where a process reads them). */
  fromSecret: Partial<Record<DatabaseField, SecretRef>>;
}

/** The keys of CloudNativePG's `<cluster>-app` Secret: the defaults of synapse.database.secret. */
export const cloudnativePgAppSecretKeys = { host: 'host', port: 'port', name: 'dbname', user: 'user', password: 'password' } as const;

export interface StackSecrets {
  postgresPassword: SecretRef;
  adminPassword: SecretRef;
  adminUsername: SecretRef;
  registrationSharedSecret: SecretRef;
  macaroonSecretKey: SecretRef;
  formSecret: SecretRef;
  turnSharedSecret: SecretRef;
  signingKey: SecretRef;
  /** The Secret holding homeserver-secrets.yaml (database and email blocks), assembled by `secrets init`. */
  synapseSecretConfig: SecretRef;
  smtpPassword?: SecretRef;
  /** With workers: the shared secret of HTTP replication, and Redis's password. */
  workers?: { replicationSecret: SecretRef; redisPassword: SecretRef };
  oidcClientSecrets: Record<string, SecretRef>;
  /** The auth component's keys (all in `<release>-auth`), present when it is deployed. */
  auth?: AuthSecrets;
}

/** Keys of the `<release>-auth` Secret, created by `mxstack secrets init`. */
export interface AuthSecrets {
  /** Synapse's client secret at the auth component (also mounted into Synapse as oidc_mxstack_client_secret). */
  clientSecret: SecretRef;
  /** TOTP sealing keyring `id:base64,...` (first = current; see stack/secrets/auth-keys.ts). */
  sealingKeyring: SecretRef;
  /** HMAC key of recovery-code hashes (base64, 32 bytes). */
  recoveryCodeKey: SecretRef;
  /** Cookie signing keys, comma-separated (first signs, all verify). */
  cookieKeys: SecretRef;
  /** The OpenID Connect signing keys: a JWKS JSON with private keys. */
  signingJwks: SecretRef;
  /** Bearer token of the administration API (mxstack's CLI). */
  adminToken: SecretRef;
  /**
   * as_token of the `mxstack-cli` application service, whose namespace is the admin user only: the CLI's
   * way to log in as the admin (m.login.application_service) while Synapse's password login is off.
   */
  cliAppserviceToken: SecretRef;
  /** hs_token of that application service (Synapse requires one; nothing listens for it). */
  cliAppserviceHsToken: SecretRef;
}

/** The auth component (the built-in identity provider) as the other components see it. */
export interface StackAuth {
  /** OpenID Connect issuer: the public URL of the auth component, no trailing slash (`https://host/auth`). */
  issuer: string;
  /** URL Synapse reaches the auth component at from inside the stack (token, userinfo, jwks), no trailing slash. */
  internalUrl: string;
  /** Synapse's client id at the auth component. */
  clientId: string;
  /** Synapse's idp_id: logins go through `/_matrix/client/v3/login/sso/redirect/oidc-<idpId>`. */
  idpId: string;
  /** The auth component's own database on the stack's PostgreSQL: Synapse's database name + `_auth`. */
  database: string;
}

/**
 * Kubernetes' default cluster domain. HAProxy's own DNS resolver ignores resolv.conf's `search` list, so
 * hosts it resolves are written fully qualified with it.
 */
export const kubernetesClusterDomain = 'cluster.local';

/** The path prefix under which the router serves the auth component on the public host. */
export const authPathPrefix = '/auth';

export interface Stack {
  values: Values;
  release: string;
  namespace: string;
  placement: Placement;
  serverName: string;
  /** Public URL of the Synapse client API, with a trailing slash. */
  publicBaseUrl: string;
  /** Public URL of Element Web, when it is deployed and reachable. */
  elementUrl?: string;
  /**
   * The one name of the sign-in: Element's brand (element.config.brand) when Element is deployed, else the
   * server name. Element's SSO button (Synapse's idp_name for the auth component), the auth component's pages
   * and Synapse's own SSO pages all show it.
   */
  brand: string;
  /** Host:port announced in /.well-known/matrix/server. */
  federationServer?: string;
  turnUris: string[];
  turnRealm: string;
  database: StackDatabase;
  secrets: StackSecrets;
  /** The built-in identity provider, when synapse.server.mfa.totp or .webauthn is enabled. */
  auth?: StackAuth;
  versions: typeof componentVersions;
  /** Recommended labels shared by every object, and the selector labels per component. */
  labels: (component: string) => Record<string, string>;
  selectorLabels: (component: string) => Record<string, string>;
  /** `<release>-<component>`: the object name of a component. */
  objectName: (component: string) => string;
}
