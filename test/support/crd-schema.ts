/**
 * Validation of rendered custom resources against a pinned CustomResourceDefinition (test/fixtures/crds):
 * ajv against the version's openAPIV3Schema, plus the check the API server's strict decoding adds (a
 * field the structural schema does not declare is an error, not silently pruned).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import AjvModule from 'ajv';
import { parseAllDocuments } from 'yaml';

const Ajv = AjvModule.default ?? AjvModule;

type Schema = {
  type?: string;
  properties?: Record<string, Schema>;
  items?: Schema;
  additionalProperties?: boolean | Schema;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
};

export const crdFixturesDir = fileURLToPath(new URL('../fixtures/crds/', import.meta.url));

/** The openAPIV3Schema of a pinned CRD's served version. */
export function crdSchema(file: string, version = 'v1'): Schema {
  const crd = parseAllDocuments(readFileSync(`${crdFixturesDir}${file}`, 'utf8'))
    .map((d) => d.toJS() as { kind?: string; spec?: { versions: { name: string; schema: { openAPIV3Schema: Schema } }[] } })
    .find((d) => d?.kind === 'CustomResourceDefinition');
  const served = crd?.spec?.versions.find((v) => v.name === version);
  if (!served) throw new Error(`${file}: no version ${version}`);
  return served.schema.openAPIV3Schema;
}

/** Paths of fields the structural schema does not declare (what strict decoding refuses). */
export function undeclaredFields(schema: Schema, value: unknown, path = ''): string[] {
  if (schema['x-kubernetes-preserve-unknown-fields']) return [];
  if (Array.isArray(value)) return schema.items ? value.flatMap((item, i) => undeclaredFields(schema.items!, item, `${path}[${i}]`)) : [];
  if (value === null || typeof value !== 'object') return [];
  const problems: string[] = [];
  for (const [key, child] of Object.entries(value)) {
    // ObjectMeta is the API server's own, validated apart from the CRD's schema.
    if (path === '' && key === 'metadata') continue;
    const declared = schema.properties?.[key] ?? (typeof schema.additionalProperties === 'object' ? schema.additionalProperties : undefined);
    if (!declared) {
      if (schema.additionalProperties !== true) problems.push(`${path}.${key}`);
      continue;
    }
    problems.push(...undeclaredFields(declared, child, `${path}.${key}`));
  }
  return problems;
}

/** Every problem of `object` against the CRD: schema errors and undeclared fields, one line each. */
export function crdProblems(file: string, object: unknown): string[] {
  const schema = crdSchema(file);
  const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
  const validate = ajv.compile(schema);
  const errors = validate(object) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath || '(root)'} ${e.message ?? 'invalid'}`);
  return [...errors, ...undeclaredFields(schema, object).map((path) => `${path}: not declared by the schema`)];
}
