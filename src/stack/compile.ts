/** Values + placement → Stack. Pure. */
import type { Values } from '../values/schema.js';
import { ValuesError } from '../values/errors.js';
import { componentVersions } from '../versions.js';
import { authEnabled, authIdpId, oidcSecretNamePart } from '../values/derived.js';
import { workersEnabled } from '../values/worker-pools.js';
import { databasePasswordRef, deriveDatabase } from './database.js';
import { authPathPrefix, type AuthSecrets, type Placement, type SecretRef, type Stack, type StackAuth, type StackSecrets } from './model.js';

export const defaultRelease = 'mxstack';
export const defaultNamespace = 'matrix';

const ownSecret = (name: string, key: string): SecretRef => ({ name, key, userProvided: false });
const userSecret = (ref: { name: string; key: string } | undefined, fallback: SecretRef): SecretRef =>
  ref ? { name: ref.name, key: ref.key, userProvided: true } : fallback;

function authSecrets(release: string): AuthSecrets {
  const name = `${release}-auth`;
  return {
    clientSecret: ownSecret(name, 'client-secret'),
    sealingKeyring: ownSecret(name, 'sealing-keyring'),
    recoveryCodeKey: ownSecret(name, 'recovery-code-key'),
    cookieKeys: ownSecret(name, 'cookie-keys'),
    signingJwks: ownSecret(name, 'signing-jwks'),
    adminToken: ownSecret(name, 'admin-token'),
    cliAppserviceToken: ownSecret(name, 'cli-appservice-token'),
    cliAppserviceHsToken: ownSecret(name, 'cli-appservice-hs-token'),
  };
}

function stackAuth(baseUrl: string, placement: Placement, synapseDatabase: string): StackAuth {
  return {
    issuer: `${baseUrl.replace(/\/$/, '')}${authPathPrefix}`,
    internalUrl: `http://${placement.hosts.auth}:${placement.ports.auth}${authPathPrefix}`,
    clientId: 'synapse',
    idpId: authIdpId,
    database: `${synapseDatabase}_auth`,
  };
}

/** Names of the Secrets the stack reads; the old chart's names where it had one, so migrations keep them. */
export function deriveSecrets(values: Values, release: string, placement: Placement): StackSecrets {
  const s = values.synapse;
  const admin = `${release}-admin-credentials`;
  const oidcClientSecrets: Record<string, SecretRef> = {};
  for (const provider of s.server.sso.oidc.providers) {
    oidcClientSecrets[provider.idp_id] = userSecret(provider.clientSecretRef, ownSecret(`${release}-oidc-${oidcSecretNamePart(provider.idp_id)}`, 'client-secret'));
  }
  return {
    postgresPassword: databasePasswordRef(values, release, placement),
    adminUsername: ownSecret(admin, 'username'),
    adminPassword: ownSecret(admin, 'password'),
    registrationSharedSecret: ownSecret(admin, 'registration-secret'),
    macaroonSecretKey: ownSecret(`${release}-synapse-keys`, 'macaroon-secret-key'),
    formSecret: ownSecret(`${release}-synapse-keys`, 'form-secret'),
    turnSharedSecret: userSecret(s.server.turn.sharedSecretRef, ownSecret(`${release}-turn-credentials`, 'shared-secret')),
    signingKey: s.signingKey.existingSecret
      ? { name: s.signingKey.existingSecret, key: s.signingKey.secretKey, userProvided: true }
      : ownSecret(`${release}-signing-key`, s.signingKey.secretKey),
    synapseSecretConfig: ownSecret(`${release}-synapse-secret-config`, 'homeserver-secrets.yaml'),
    ...(s.server.email.enabled
      ? { smtpPassword: userSecret(s.server.email.smtpPassSecretRef, ownSecret(`${release}-smtp`, 'password')) }
      : {}),
    oidcClientSecrets,
    ...(authEnabled(values) ? { auth: authSecrets(release) } : {}),
    ...(workersEnabled(values)
      ? {
          workers: {
            replicationSecret: ownSecret(`${release}-synapse-keys`, 'worker-replication-secret'),
            redisPassword: ownSecret(`${release}-redis`, 'password'),
          },
        }
      : {}),
  };
}

/**
 * The host name browsers use for the local stack: its loopback address, or `localhost` when security keys
 * are on, because WebAuthn refuses IP addresses as relying party ids (and http://localhost is a secure context).
 */
function localPublicHost(values: Values, placement: Placement): string {
  return values.synapse.server.mfa.webauthn.enabled ? 'localhost' : placement.hosts.router;
}

function publicBaseUrl(values: Values, placement: Placement): string {
  const explicit = values.synapse.server.publicBaseurl;
  if (explicit) return explicit.endsWith('/') ? explicit : `${explicit}/`;
  if (placement.target === 'local') return `http://${localPublicHost(values, placement)}:${placement.ports.router}/`;
  const host = values.ingress.synapse.host ?? values.synapse.server.name;
  return `https://${host}/`;
}

function elementUrl(values: Values, placement: Placement): string | undefined {
  if (!values.element.enabled) return undefined;
  if (placement.target === 'local') {
    return placement.paths.elementWebRoot ? `http://${localPublicHost(values, placement)}:${placement.ports.router}/` : undefined;
  }
  const host = values.ingress.element.host;
  return host ? `https://${host}/` : undefined;
}

function federationServer(values: Values, placement: Placement, baseUrl: string): string | undefined {
  if (!values.synapse.server.federation.enabled) return undefined;
  if (placement.target === 'local') return `${placement.hosts.router}:${placement.ports.router}`;
  if (!values.ingress.federation.enabled) return undefined;
  return `${new URL(baseUrl).hostname}:443`;
}

/** turn_uris: the configured ones, or derived from coturn's host, ports and TLS. */
export function deriveTurnUris(values: Values, placement: Placement): string[] {
  const turn = values.synapse.server.turn;
  if (!turn.enabled) return [];
  if (turn.uris.length > 0) return turn.uris;
  if (!values.coturn.enabled) return [];
  const host =
    placement.target === 'local'
      ? placement.hosts.coturn
      : values.coturn.hostname ?? values.coturn.service.externalDns.hostname ?? values.coturn.realm ?? values.coturn.externalIP ?? values.synapse.server.name;
  const { turn: turnPort, turns: turnsPort } = placement.ports;
  const uris = [`turn:${host}:${turnPort}?transport=udp`, `turn:${host}:${turnPort}?transport=tcp`];
  if (values.coturn.tls.enabled) uris.push(`turns:${host}:${turnsPort}?transport=tcp`);
  return uris;
}

export interface CompileOptions {
  release?: string;
  namespace?: string;
}

const dnsLabel = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** Object names are `<release>-<component suffix>`; the longest suffix must still fit a 63-character label. */
const longestRelease = 40;

/** Release and namespace become parts of object names and DNS names: refuse what Kubernetes would. */
export function checkReleaseNames(release: string, namespace: string): void {
  const problems: string[] = [];
  if (!dnsLabel.test(release) || !/^[a-z]/.test(release) || release.length > longestRelease)
    problems.push(`--release ${JSON.stringify(release)}: must be lower-case letters, digits and '-', start with a letter, end with a letter or digit, at most ${longestRelease} characters.`);
  if (!dnsLabel.test(namespace) || namespace.length > 63)
    problems.push(`--namespace ${JSON.stringify(namespace)}: must be a DNS label: lower-case letters, digits and '-', at most 63 characters.`);
  if (problems.length > 0) throw new ValuesError(problems);
}

export function compileStack(values: Values, placement: Placement, options: CompileOptions = {}): Stack {
  const release = options.release ?? defaultRelease;
  const namespace = options.namespace ?? defaultNamespace;
  checkReleaseNames(release, namespace);
  const baseUrl = publicBaseUrl(values, placement);
  const database = deriveDatabase(values, placement, release);
  const databaseName = database.name;
  const selectorLabels = (component: string) => ({
    'app.kubernetes.io/name': component,
    'app.kubernetes.io/instance': release,
  });
  const versionOf = (component: string): string => {
    const images: Record<string, { tag: string }> = {
      synapse: values.synapse.image,
      element: values.element.image,
      postgresql: values.postgresql.image,
      coturn: values.coturn.image,
      router: values.router.image,
      auth: values.auth.image,
      redis: values.redis.image,
    };
    return images[component]?.tag ?? componentVersions.synapse;
  };
  return {
    values,
    release,
    namespace,
    placement,
    serverName: values.synapse.server.name,
    publicBaseUrl: baseUrl,
    elementUrl: elementUrl(values, placement),
    brand: values.element.enabled ? values.element.config.brand : values.synapse.server.name,
    federationServer: federationServer(values, placement, baseUrl),
    turnUris: deriveTurnUris(values, placement),
    turnRealm: values.coturn.realm ?? values.synapse.server.name,
    database,
    secrets: deriveSecrets(values, release, placement),
    ...(authEnabled(values) ? { auth: stackAuth(baseUrl, placement, databaseName) } : {}),
    versions: componentVersions,
    selectorLabels,
    labels: (component: string) => ({
      ...values.global.commonLabels,
      ...selectorLabels(component),
      'app.kubernetes.io/component': component,
      'app.kubernetes.io/part-of': 'mxstack',
      'app.kubernetes.io/managed-by': 'mxstack',
      'app.kubernetes.io/version': versionOf(component).replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 63),
    }),
    objectName: (component: string) => `${release}-${component}`,
  };
}
