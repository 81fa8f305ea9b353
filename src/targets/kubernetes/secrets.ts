/**
 * Secrets on Kubernetes. The manifests reference Secrets; they render one only for a secret value the
 * user wrote into the values (adminUser.password / registrationSecret, an OIDC provider's client_secret,
 * email.smtpPass). Everything else is created by `mxstack secrets init` or brought by the user.
 * `documentedSecrets` lists every Secret key the release reads and who creates it.
 */
import { Secret } from 'kubernetes-models/v1/Secret';
import type { SecretRef, Stack } from '../../stack/model.js';
import { adminBootstrapComponent, adminBootstrapSecretFiles } from '../../components/synapse/admin-bootstrap.js';
import { cliAppserviceRegistrationRef, synapseComponent, synapseSecretFileList } from '../../components/synapse/kubernetes.js';
import { authComponent, authSecretFileList } from '../../components/auth/kubernetes.js';
import { objectMeta } from '../../kit/meta.js';
import type { KubeObject } from '../../kit/objects.js';

/** Who puts a Secret key in place. */
export type SecretSource =
  /** `mxstack render` (and apply), from a value written in the values file. */
  | 'values'
  /** The user (a Secret the values point at, or a certificate issuer). */
  | 'user'
  /** `mxstack secrets init`. */
  | 'secrets-init'
  /** An operator, once the release's resource for it is applied (CloudNativePG's `<cluster>-app`). */
  | 'operator';

export interface DocumentedSecret {
  name: string;
  key: string;
  createdBy: SecretSource;
  /** What reads it: workloads (`deployment/<name>` ...) or mxstack itself. */
  readBy: string[];
  purpose: string;
}

/** Annotation on the Secrets rendered from values, so `secrets init` knows not to generate those keys. */
export const secretSourceAnnotation = 'mxstack.dev/secret-source';

interface ValuesSecret {
  ref: SecretRef;
  value: string;
}

/** The secret values written in the values file, each with the Secret key it belongs to. */
export function secretsWrittenInValues(stack: Stack): ValuesSecret[] {
  const server = stack.values.synapse.server;
  const { secrets } = stack;
  const written: ValuesSecret[] = [];
  if (server.adminUser.password !== undefined) written.push({ ref: secrets.adminPassword, value: server.adminUser.password });
  if (server.adminUser.registrationSecret !== undefined) written.push({ ref: secrets.registrationSharedSecret, value: server.adminUser.registrationSecret });
  for (const provider of server.sso.oidc.providers) {
    const ref = secrets.oidcClientSecrets[provider.idp_id];
    if (provider.client_secret !== undefined && ref) written.push({ ref, value: provider.client_secret });
  }
  if (server.email.smtpPass !== undefined && secrets.smtpPassword) written.push({ ref: secrets.smtpPassword, value: server.email.smtpPass });
  const databasePassword = (stack.values.synapse.database as { password?: unknown }).password;
  if (typeof databasePassword === 'string') written.push({ ref: secrets.postgresPassword, value: databasePassword });
  return written;
}

/** One Secret per name, holding exactly the keys written in values. */
export function valuesSecretObjects(stack: Stack): KubeObject[] {
  const byName = new Map<string, Record<string, string>>();
  for (const { ref, value } of secretsWrittenInValues(stack)) {
    byName.set(ref.name, { ...byName.get(ref.name), [ref.key]: value });
  }
  return [...byName.entries()].map(
    ([name, stringData]) =>
      new Secret({
        metadata: objectMeta(stack, synapseComponent, name, { [secretSourceAnnotation]: 'values' }),
        type: 'Opaque',
        stringData,
      }),
  );
}

function sourceOf(stack: Stack, ref: SecretRef): SecretSource {
  if (secretsWrittenInValues(stack).some((written) => written.ref.name === ref.name && written.ref.key === ref.key)) return 'values';
  if (ref.operatorCreated) return 'operator';
  return ref.userProvided ? 'user' : 'secrets-init';
}

/** Every Secret key the release reads, who creates it and what reads it (one entry per name and key). */
export function documentedSecrets(stack: Stack): DocumentedSecret[] {
  const v = stack.values;
  const uses: { ref: SecretRef; readBy: string; purpose: string }[] = [];
  const add = (ref: SecretRef, readBy: string, purpose: string) => uses.push({ ref, readBy, purpose });
  const synapseDeployment = `deployment/${stack.objectName(synapseComponent)}`;

  for (const file of synapseSecretFileList(stack)) add(file.ref, synapseDeployment, `${file.file}: ${file.purpose}`);
  add(stack.secrets.signingKey, synapseDeployment, 'the federation signing key (signing_key_path)');
  if (v.synapse.server.adminUser.enabled) {
    for (const file of adminBootstrapSecretFiles(stack)) add(file.ref, `job/${stack.objectName(adminBootstrapComponent)}`, file.purpose);
  }
  // A password of a user-provided SMTP Secret that Synapse does not read (no smtpUser) is still documented.
  if (stack.secrets.smtpPassword) add(stack.secrets.smtpPassword, synapseDeployment, 'SMTP password, joined into the email block at Synapse\'s start');
  add(stack.secrets.adminUsername, 'mxstack users', 'localpart of the administrator');
  if (stack.secrets.auth) {
    const authDeployment = `deployment/${stack.objectName(authComponent)}`;
    for (const file of authSecretFileList(stack)) add(file.ref, authDeployment, `${file.file}: ${file.purpose}`);
    const registration = `${cliAppserviceRegistrationRef(stack).key}`;
    add(stack.secrets.auth.cliAppserviceToken, 'mxstack secrets init', `as_token of the mxstack-cli application service, written into ${registration}`);
    add(stack.secrets.auth.cliAppserviceToken, 'mxstack users', 'as_token: the CLI logs in as the administrator with it (m.login.application_service)');
    add(stack.secrets.auth.cliAppserviceHsToken, 'mxstack secrets init', `hs_token of the mxstack-cli application service, written into ${registration}`);
    add(stack.secrets.auth.adminToken, 'mxstack users', 'bearer token of the auth service\'s administration API');
  }
  if (stack.database.provider === 'statefulset' && v.postgresql.enabled) {
    add(stack.secrets.postgresPassword, `statefulset/${stack.objectName('postgresql')}`, 'POSTGRES_PASSWORD_FILE of the release PostgreSQL');
  }
  if (v.coturn.enabled) {
    add(stack.secrets.turnSharedSecret, `deployment/${stack.objectName('coturn')}`, 'static-auth-secret of coturn (same value as Synapse\'s)');
    if (v.coturn.tls.enabled && v.coturn.tls.secretName) {
      for (const key of ['tls.crt', 'tls.key']) {
        add({ name: v.coturn.tls.secretName, key, userProvided: true }, `deployment/${stack.objectName('coturn')}`, 'TURNS certificate (kubernetes.io/tls)');
      }
    }
  }
  if (v.router.federation.enabled && v.router.federation.tls.secretName) {
    for (const key of ['tls.crt', 'tls.key']) {
      add({ name: v.router.federation.tls.secretName, key, userProvided: true }, `deployment/${stack.objectName('router')}`, 'certificate of the router\'s federation listener (kubernetes.io/tls)');
    }
  }

  const merged = new Map<string, DocumentedSecret>();
  for (const { ref, readBy, purpose } of uses) {
    const id = `${ref.name}\0${ref.key}`;
    const existing = merged.get(id);
    if (existing) {
      if (!existing.readBy.includes(readBy)) existing.readBy.push(readBy);
      continue;
    }
    merged.set(id, { name: ref.name, key: ref.key, createdBy: sourceOf(stack, ref), readBy: [readBy], purpose });
  }
  return [...merged.values()].sort((a, b) => a.name.localeCompare(b.name) || a.key.localeCompare(b.key));
}
