/**
 * Where the database is and how to reach it, from the values: the release's own StatefulSet, a
 * CloudNativePG Cluster (its -rw Service and -app Secret), or an external server whose connection fields
 * are values or Secret keys (defaults: the keys of CloudNativePG's `<cluster>-app` Secret). Pure.
 */
import type { Values } from '../values/schema.js';
import { cloudnativePgAppSecretKeys, type DatabaseField, type DatabaseProvider, type Placement, type SecretRef, type StackDatabase } from './model.js';

type Sourced = string | number | { secret?: string; key: string } | undefined;

/** synapse.database as the schema allows it (TypeBox cannot express the value-or-reference unions statically). */
interface DatabaseValues {
  external: boolean;
  secret?: string;
  host?: string | { secret?: string; key: string };
  port?: number | { secret?: string; key: string };
  name?: string | { secret?: string; key: string };
  user?: string | { secret?: string; key: string };
  password?: string | { secret?: string; key: string };
  sslmode?: string | { secret?: string; key: string };
  ca?: string | { secret?: string; key: string };
  passwordSecretRef?: { name: string; key: string };
}

export function databaseValues(values: Values): DatabaseValues {
  return values.synapse.database as unknown as DatabaseValues;
}

export const cloudnativePgPort = 5432;

export function databaseProvider(values: Values): DatabaseProvider {
  if (databaseValues(values).external || databaseValues(values).secret !== undefined) return 'external';
  return values.postgresql.mode === 'cloudnative-pg' ? 'cloudnative-pg' : 'statefulset';
}

export function cloudnativePgClusterName(values: Values, release: string): string {
  return values.postgresql.cloudnativePg.clusterName ?? `${release}-postgresql`;
}

/** The Secret key a field written as `{secret?, key}` (or left out, with synapse.database.secret) points at. */
function secretSource(values: Values, written: Sourced, defaultKey: string | undefined): SecretRef | undefined {
  const defaultSecret = databaseValues(values).secret;
  if (typeof written === 'object') {
    const name = written.secret ?? defaultSecret;
    return name === undefined ? undefined : { name, key: written.key, userProvided: true };
  }
  if (written === undefined && defaultSecret !== undefined && defaultKey !== undefined) return { name: defaultSecret, key: defaultKey, userProvided: true };
  return undefined;
}

const describe = (ref: SecretRef) => `(Secret ${ref.name}, key ${ref.key})`;

function externalDatabase(values: Values): StackDatabase {
  const db = databaseValues(values);
  const written: Record<DatabaseField, Sourced> = { host: db.host, port: db.port, name: db.name, user: db.user, sslmode: db.sslmode, ca: db.ca };
  const defaultKeys: Record<DatabaseField, string | undefined> = { ...cloudnativePgAppSecretKeys, sslmode: undefined, ca: undefined };
  const fromSecret: Partial<Record<DatabaseField, SecretRef>> = {};
  for (const field of Object.keys(written) as DatabaseField[]) {
    const ref = secretSource(values, written[field], defaultKeys[field]);
    if (ref) fromSecret[field] = ref;
  }
  const literal = <T>(field: DatabaseField, fallback: T): T | string => (fromSecret[field] ? describe(fromSecret[field]!) : typeof written[field] === 'object' || written[field] === undefined ? fallback : (written[field] as T));
  return {
    provider: 'external',
    host: String(literal('host', '')),
    port: fromSecret.port ? 5432 : typeof db.port === 'number' ? db.port : 5432,
    name: String(literal('name', values.postgresql.database)),
    user: String(literal('user', values.postgresql.username)),
    sslmode: String(literal('sslmode', 'prefer')),
    ...(typeof db.ca === 'string' ? { ca: db.ca } : {}),
    fromSecret,
  };
}

export function deriveDatabase(values: Values, placement: Placement, release: string): StackDatabase {
  const provider = databaseProvider(values);
  if (provider === 'external') return externalDatabase(values);
  const name = typeof databaseValues(values).name === 'string' ? (databaseValues(values).name as string) : values.postgresql.database;
  const user = typeof databaseValues(values).user === 'string' ? (databaseValues(values).user as string) : values.postgresql.username;
  const onCluster = provider === 'cloudnative-pg' && placement.target === 'kubernetes';
  return {
    provider: onCluster ? 'cloudnative-pg' : 'statefulset',
    ...(onCluster ? { cluster: cloudnativePgClusterName(values, release) } : {}),
    host: placement.hosts.postgresql,
    port: placement.ports.postgresql,
    name,
    user,
    // CloudNativePG serves TLS with its own CA: encrypted, not verified (the CA is the operator's).
    sslmode: onCluster ? 'require' : 'disable',
    fromSecret: {},
  };
}

/** The database password's Secret key: from the values' reference, the external Secret, CloudNativePG's -app Secret, or mxstack's own. */
export function databasePasswordRef(values: Values, release: string, placement: Placement): SecretRef {
  const db = databaseValues(values);
  const own: SecretRef = { name: `${release}-postgresql`, key: 'postgres-password', userProvided: false };
  if (typeof db.password === 'string') return own;
  const fromValues = secretSource(values, db.password, databaseProvider(values) === 'external' ? cloudnativePgAppSecretKeys.password : undefined);
  if (fromValues) return fromValues;
  if (db.passwordSecretRef) return { name: db.passwordSecretRef.name, key: db.passwordSecretRef.key, userProvided: true };
  if (databaseProvider(values) === 'cloudnative-pg' && placement.target === 'kubernetes') {
    return { name: `${cloudnativePgClusterName(values, release)}-app`, key: cloudnativePgAppSecretKeys.password, userProvided: true, operatorCreated: true };
  }
  return own;
}
