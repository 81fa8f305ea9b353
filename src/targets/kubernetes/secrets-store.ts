/**
 * The release's Secrets in the cluster: create only what is missing (with the generators of
 * src/stack/secrets/generate.ts), never replace an existing value, and assemble the mxstack-cli application
 * service registration (with 2FA) from the stored tokens. The database and email settings are not here:
 * they travel in homeserver.yaml (render's output), their passwords are joined in at Synapse's start.
 * Values travel only on kubectl's stdin and are never printed.
 * Planning is pure; `ensureReleaseSecrets` runs the plan through kubectl.
 */
import { createHash } from 'node:crypto';
import { synapseSecretFiles, type AuthSecrets, type SecretRef, type Stack } from '../../stack/model.js';
import { authSecretGenerators, generateAdminPassword, generatePostgresPassword, generateRandomSecret, generateSigningKey } from '../../stack/secrets/generate.js';
import { cliAppserviceRegistration } from '../../components/synapse/auth.js';
import { cliAppserviceRegistrationRef, synapseSecretFileList } from '../../components/synapse/kubernetes.js';
import { synapseStartStepFiles } from '../../components/synapse/start.js';
import { documentedSecrets, type DocumentedSecret } from './secrets.js';
import type { PlainObject } from './applyset.js';

/** Decoded data of the live Secrets the release reads, by Secret name. */
export type LiveSecrets = Map<string, Record<string, string>>;

export interface SecretGenerators {
  postgresPassword: () => string;
  adminPassword: () => string;
  randomSecret: () => string;
  signingKey: () => string;
  /** The keys of `<release>-auth` (2FA); default: authSecretGenerators. */
  auth?: Record<keyof AuthSecrets, () => string>;
}

export const defaultGenerators: SecretGenerators = {
  postgresPassword: generatePostgresPassword,
  adminPassword: generateAdminPassword,
  randomSecret: () => generateRandomSecret(),
  signingKey: generateSigningKey,
  auth: authSecretGenerators,
};

export interface SecretsPlan {
  /** Secrets that do not exist: created whole (`kubectl create`, which never overwrites). */
  create: { name: string; data: Record<string, string> }[];
  /** Secrets that exist but lack keys: only the missing keys are added. */
  addKeys: { name: string; data: Record<string, string> }[];
  /** What was generated, as `name/key` (for the report; never the value). */
  generated: string[];
  /** Sentences for Secrets mxstack cannot make: the user must create them first. */
  problems: string[];
}

const sameRef = (a: SecretRef | undefined, name: string, key: string) => a !== undefined && a.name === name && a.key === key;

/** How a `secrets-init` key gets its value; undefined when nothing can generate it. */
export function valueSourceFor(stack: Stack, name: string, key: string, generators: SecretGenerators): (() => string) | undefined {
  const s = stack.secrets;
  if (sameRef(s.adminUsername, name, key)) return () => stack.values.synapse.server.adminUser.username;
  if (sameRef(s.postgresPassword, name, key)) return generators.postgresPassword;
  if (sameRef(s.adminPassword, name, key)) return generators.adminPassword;
  if (sameRef(s.signingKey, name, key)) return generators.signingKey;
  for (const ref of [s.registrationSharedSecret, s.macaroonSecretKey, s.formSecret, s.turnSharedSecret, s.workers?.replicationSecret, s.workers?.redisPassword]) {
    if (sameRef(ref, name, key)) return generators.randomSecret;
  }
  if (s.auth) {
    const auth = s.auth;
    const authKey = (Object.keys(auth) as (keyof AuthSecrets)[]).find((k) => sameRef(auth[k], name, key));
    if (authKey) return (generators.auth ?? authSecretGenerators)[authKey];
  }
  return undefined;
}

/** The keys assembled from others (the CLI's appservice registration), never generated. */
const isSecretConfig = (stack: Stack, entry: { name: string; key: string }) => sameRef(cliAppserviceRegistrationRef(stack), entry.name, entry.key);

const isTlsKeyPair = (keys: readonly string[]) => keys.length === 2 && keys.includes('tls.crt') && keys.includes('tls.key');

/**
 * One command that creates the Secret with every missing key (run twice, `kubectl create` fails with
 * "already exists"): `create secret tls` for a certificate and key, `create secret generic` otherwise.
 * When the Secret exists without those keys, the same command is piped into `kubectl apply`. The values
 * are read from files, never written on the command line.
 */
export function howToCreateSecret(namespace: string, name: string, keys: readonly string[], exists: boolean): string {
  const create = isTlsKeyPair(keys)
    ? `kubectl -n ${namespace} create secret tls ${name} --cert=<certificate file> --key=<private key file>`
    : `kubectl -n ${namespace} create secret generic ${name} ${keys.map((key) => `--from-file=${key}=<file holding the value>`).join(' ')}`;
  return exists ? `${create} --dry-run=client -o yaml | kubectl -n ${namespace} apply -f -` : create;
}

interface MissingSecret {
  keys: string[];
  why: string;
}

/** What to create so that every Secret key the manifests read exists (the assembled secret config aside). */
export function planSecrets(stack: Stack, live: LiveSecrets, generators: SecretGenerators = defaultGenerators): SecretsPlan {
  const plan: SecretsPlan = { create: [], addKeys: [], generated: [], problems: [] };
  const pending = new Map<string, Record<string, string>>();
  const missing = new Map<string, MissingSecret>();
  const refuse = (entry: DocumentedSecret, why: string) => {
    const known = missing.get(entry.name);
    if (known) known.keys.push(entry.key);
    else missing.set(entry.name, { keys: [entry.key], why });
  };
  for (const entry of documentedSecrets(stack)) {
    if (entry.createdBy === 'values' || entry.createdBy === 'operator' || isSecretConfig(stack, entry)) continue;
    if (sameRef(stack.secrets.smtpPassword, entry.name, entry.key) && entry.createdBy === 'secrets-init' && !stack.values.synapse.server.email.smtpUser) continue;
    if (live.get(entry.name)?.[entry.key] !== undefined) continue;
    if (entry.createdBy === 'user') {
      refuse(entry, live.has(entry.name) ? 'named in the values lacks it' : `named in the values does not exist in namespace ${stack.namespace}`);
      continue;
    }
    const source = valueSourceFor(stack, entry.name, entry.key, generators);
    if (!source) {
      refuse(entry, `(${entry.purpose}) cannot be generated`);
      continue;
    }
    if (!stack.values.secrets.autoGenerate) {
      refuse(entry, 'is missing and secrets.autoGenerate is false');
      continue;
    }
    pending.set(entry.name, { ...pending.get(entry.name), [entry.key]: source() });
    plan.generated.push(`${entry.name}/${entry.key}`);
  }
  for (const [name, { keys, why }] of missing) {
    const what = `Secret ${name} (${keys.length === 1 ? 'key' : 'keys'} ${keys.join(', ')}) ${why}`;
    plan.problems.push(`${what}; create it first: ${howToCreateSecret(stack.namespace, name, keys, live.has(name))}`);
  }
  for (const [name, data] of pending) {
    if (live.has(name)) plan.addKeys.push({ name, data });
    else plan.create.push({ name, data });
  }
  return plan;
}

/** Labels shared with the rendered Secrets (same values: server-side apply sees no conflict on them). */
export function secretLabels(stack: Stack): Record<string, string> {
  return { 'app.kubernetes.io/instance': stack.release, 'app.kubernetes.io/managed-by': 'mxstack', 'app.kubernetes.io/part-of': 'mxstack' };
}

export function secretManifest(stack: Stack, name: string, data: Record<string, string>): PlainObject {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'Opaque',
    metadata: { name, namespace: stack.namespace, labels: secretLabels(stack) },
    data: Object.fromEntries(Object.entries(data).sort(([a], [b]) => a.localeCompare(b)).map(([key, value]) => [key, Buffer.from(value, 'utf8').toString('base64')])),
  };
}

export function mergePatchForKeys(data: Record<string, string>): string {
  return JSON.stringify({ data: Object.fromEntries(Object.entries(data).map(([key, value]) => [key, Buffer.from(value, 'utf8').toString('base64')])) });
}

/** The stored value of a key: from the live Secrets, else from what the plan is about to create. */
export function storedValue(ref: SecretRef, live: LiveSecrets, plan?: SecretsPlan): string | undefined {
  const fromLive = live.get(ref.name)?.[ref.key];
  if (fromLive !== undefined) return fromLive;
  for (const entry of [...(plan?.create ?? []), ...(plan?.addKeys ?? [])]) {
    if (entry.name === ref.name && entry.data[ref.key] !== undefined) return entry.data[ref.key];
  }
  return undefined;
}

/**
 * Every assembled key of the synapse-secret-config Secret, by key: with 2FA the mxstack-cli application
 * service registration (from the tokens in `<release>-auth`); nothing without. Throws a sentence naming
 * the Secret when a value it needs is nowhere.
 */
export function assembleSecretConfigData(stack: Stack, live: LiveSecrets, plan?: SecretsPlan): Record<string, string> {
  const data: Record<string, string> = {};
  const auth = stack.secrets.auth;
  if (auth) {
    const [asToken, hsToken] = [auth.cliAppserviceToken, auth.cliAppserviceHsToken].map((ref) => {
      const value = storedValue(ref, live, plan);
      if (value === undefined) throw new Error(`cannot assemble ${cliAppserviceRegistrationRef(stack).key}: Secret ${ref.name} has no key ${ref.key}.`);
      return value;
    });
    data[cliAppserviceRegistrationRef(stack).key] = cliAppserviceRegistration(stack, asToken!, hsToken!);
  }
  return data;
}

/** Whether the live synapse-secret-config Secret already holds exactly the assembled keys. */
export function secretConfigUpToDate(stack: Stack, live: LiveSecrets, assembled: Record<string, string>): boolean {
  const current = live.get(stack.secrets.synapseSecretConfig.name) ?? {};
  return Object.entries(assembled).every(([key, value]) => current[key] === value);
}

/**
 * What every Synapse process reads only at start, by file name: the assembled files and the passwords its
 * start step joins in. Their digest is a pod annotation, so a change of any restarts Synapse.
 */
export function synapseStartSecrets(stack: Stack, live: LiveSecrets, plan?: SecretsPlan): Record<string, string> {
  const values: Record<string, string> = { ...assembleSecretConfigData(stack, live, plan) };
  const smtpPass = stack.values.synapse.server.email.smtpPass;
  for (const { ref, file } of synapseSecretFileList(stack)) {
    if (!synapseStartStepFiles.has(file)) continue;
    const value = file === synapseSecretFiles.smtpPassword && smtpPass !== undefined ? smtpPass : storedValue(ref, live, plan);
    if (value !== undefined) values[file] = value;
  }
  return values;
}

/** sha256 over the files by name (a pod annotation: never the values themselves). */
export function secretConfigDigest(files: Record<string, string>): string {
  const hash = createHash('sha256');
  for (const key of Object.keys(files).sort()) hash.update(`${key}\0${files[key]}\0`);
  return hash.digest('hex');
}

export const secretConfigDigestAnnotation = 'mxstack.dev/secret-config-sha256';

/** Names of the Secrets the release reads (to fetch them in one `kubectl get`). */
export function releaseSecretNames(stack: Stack): string[] {
  return [...new Set([...documentedSecrets(stack).map((entry) => entry.name), stack.secrets.synapseSecretConfig.name])].sort();
}

/** Decodes `kubectl get secret ... --output=json` (one object, a List, or nothing). */
export function decodeSecrets(output: string): LiveSecrets {
  const live: LiveSecrets = new Map();
  if (output.trim() === '') return live;
  const parsed = JSON.parse(output) as PlainObject & { items?: PlainObject[] };
  const items = parsed.kind?.endsWith('List') ? parsed.items ?? [] : [parsed];
  for (const item of items) {
    const data = (item.data ?? {}) as Record<string, string>;
    live.set(item.metadata.name, Object.fromEntries(Object.entries(data).map(([key, value]) => [key, Buffer.from(value, 'base64').toString('utf8')])));
  }
  return live;
}

/** Whether a pod template mounts or reads a Secret (volumes, projected volumes, env). */
export function podTemplateUsesSecret(object: PlainObject, secretName: string): boolean {
  const spec = (object.spec as { template?: { spec?: Record<string, unknown> } } | undefined)?.template?.spec;
  if (!spec) return false;
  type Volume = { secret?: { secretName?: string }; projected?: { sources?: { secret?: { name?: string } }[] } };
  const volumes = (spec.volumes ?? []) as Volume[];
  if (volumes.some((v) => v.secret?.secretName === secretName || (v.projected?.sources ?? []).some((s) => s.secret?.name === secretName))) return true;
  type Container = { env?: { valueFrom?: { secretKeyRef?: { name?: string } } }[] };
  const containers = [...((spec.containers ?? []) as Container[]), ...((spec.initContainers ?? []) as Container[])];
  return containers.some((c) => (c.env ?? []).some((e) => e.valueFrom?.secretKeyRef?.name === secretName));
}

/** Whether a pod template mounts a ConfigMap. */
export function podTemplateUsesConfigMap(object: PlainObject, configMapName: string): boolean {
  const spec = (object.spec as { template?: { spec?: { volumes?: { configMap?: { name?: string } }[] } } } | undefined)?.template?.spec;
  return (spec?.volumes ?? []).some((volume) => volume.configMap?.name === configMapName);
}

/**
 * Adds the digest of synapseStartSecrets to every Synapse process's workload (main or worker: each mounts
 * Synapse's ConfigMap and runs the start step), so a change rolls their pods.
 */
export function annotateSecretConfigDigest(objects: readonly PlainObject[], synapseConfigMapName: string, digest: string): PlainObject[] {
  return objects.map((object) => {
    if (!['Deployment', 'StatefulSet'].includes(object.kind) || !podTemplateUsesConfigMap(object, synapseConfigMapName)) return object;
    const spec = object.spec as { template: { metadata?: { annotations?: Record<string, string> } } };
    const template = spec.template;
    return {
      ...object,
      spec: {
        ...spec,
        template: {
          ...template,
          metadata: { ...template.metadata, annotations: { ...template.metadata?.annotations, [secretConfigDigestAnnotation]: digest } },
        },
      },
    };
  });
}
