/** Refusals of synapse.database's value-or-Secret connection fields that need only the values. */
import type { Values } from './schema.js';

const referencedFields = ['host', 'port', 'name', 'user', 'password', 'sslmode', 'ca'] as const;

type Reference = { secret?: string; key: string };
const isReference = (value: unknown): value is Reference => typeof value === 'object' && value !== null && 'key' in value;

/** A {key} without a Secret name and no synapse.database.secret; Secret references without an external database. */
export function databaseReferenceProblems(values: Values): string[] {
  const database = values.synapse.database as unknown as Record<string, unknown>;
  const problems: string[] = [];
  for (const field of referencedFields) {
    const written = database[field];
    if (!isReference(written)) continue;
    if (written.secret === undefined && database.secret === undefined) {
      problems.push(`synapse.database.${field}: {key: ${written.key}} names no Secret; add secret: <name>, or set synapse.database.secret.`);
    }
    if (!values.synapse.database.external && field !== 'password') {
      problems.push(`synapse.database.${field}: a Secret reference describes an external database; set synapse.database.external: true (or synapse.database.secret), or write the value.`);
    }
  }
  if (typeof database.password === 'string' && values.synapse.database.passwordSecretRef) {
    problems.push('synapse.database: give either password or passwordSecretRef, not both.');
  }
  return problems;
}
