/**
 * Validates raw values against the schema, fills defaults, and turns validator errors into sentences
 * that name the full path and what is allowed (with the closest valid key for a misspelt one).
 */
import AjvModule, { type ErrorObject } from 'ajv';
import { closest } from 'fastest-levenshtein';
import { valuesSchema, type Values } from './schema.js';
import { ValuesError, formatPath, pointerToSegments } from './errors.js';

const Ajv = AjvModule.default ?? AjvModule;
const ajv = new Ajv({ useDefaults: true, allErrors: true, strict: false, formats: { hostname: hostnamePattern() } });
const validateAgainstSchema = ajv.compile(valuesSchema);

function hostnamePattern(): RegExp {
  return /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
}

type JsonSchemaNode = {
  type?: string | string[];
  properties?: Record<string, JsonSchemaNode>;
  items?: JsonSchemaNode;
  additionalProperties?: boolean | JsonSchemaNode;
  anyOf?: JsonSchemaNode[];
};

/** The schema node that describes the value at `segments`, when the schema is specific there. */
function schemaAt(segments: (string | number)[]): JsonSchemaNode | undefined {
  let node: JsonSchemaNode | undefined = valuesSchema as unknown as JsonSchemaNode;
  for (const segment of segments) {
    if (!node) return undefined;
    if (typeof segment === 'number') node = node.items;
    else if (node.properties?.[segment]) node = node.properties[segment];
    else if (typeof node.additionalProperties === 'object') node = node.additionalProperties;
    else return undefined;
  }
  return node;
}

function describeError(error: ErrorObject): string {
  const segments = pointerToSegments(error.instancePath);
  switch (error.keyword) {
    case 'additionalProperty':
    case 'additionalProperties': {
      const unknown = String((error.params as { additionalProperty: string }).additionalProperty);
      const path = formatPath([...segments, unknown]);
      const known = Object.keys(schemaAt(segments)?.properties ?? {});
      const suggestion = known.length > 0 ? closest(unknown, known) : undefined;
      const hint = suggestion ? ` Did you mean ${formatPath([...segments, suggestion])}?` : '';
      const allowed = known.length > 0 ? ` Allowed here: ${known.join(', ')}.` : '';
      return `${path}: unknown key.${hint}${allowed}`;
    }
    case 'type': {
      const expected = (error.params as { type: string | string[] }).type;
      const names = Array.isArray(expected) ? expected.join(' or ') : expected;
      return `${formatPath(segments)}: expected ${article(names)}${names}.`;
    }
    case 'enum': {
      const allowed = (error.params as { allowedValues: unknown[] }).allowedValues;
      return `${formatPath(segments)}: must be one of ${allowed.map((v) => JSON.stringify(v)).join(', ')}.`;
    }
    case 'minimum':
    case 'maximum': {
      const { comparison, limit } = error.params as { comparison: string; limit: number };
      return `${formatPath(segments)}: must be ${comparison} ${limit}.`;
    }
    case 'pattern':
      return `${formatPath(segments)}: must match ${(error.params as { pattern: string }).pattern}.`;
    case 'format':
      return `${formatPath(segments)}: must be a valid ${(error.params as { format: string }).format}.`;
    case 'required':
      return `${formatPath([...segments, (error.params as { missingProperty: string }).missingProperty])}: required.`;
    default:
      return `${formatPath(segments)}: ${error.message ?? 'invalid'}.`;
  }
}

function article(word: string): string {
  return /^[aeiou]/.test(word) ? 'an ' : 'a ';
}

/** Keeps the most useful error per path: a union's branch errors collapse into one line. */
function uniqueProblems(errors: ErrorObject[]): string[] {
  const byPath = new Map<string, ErrorObject[]>();
  for (const error of errors) {
    const key = error.keyword === 'additionalProperties' ? `${error.instancePath}#${JSON.stringify(error.params)}` : error.instancePath;
    byPath.set(key, [...(byPath.get(key) ?? []), error]);
  }
  const problems: string[] = [];
  for (const group of byPath.values()) {
    const typeErrors = group.filter((e) => e.keyword === 'type');
    if (typeErrors.length > 1) {
      const names = [...new Set(typeErrors.flatMap((e) => [(e.params as { type: string }).type].flat()))];
      problems.push(`${formatPath(pointerToSegments(group[0]!.instancePath))}: expected ${names.join(' or ')}.`);
      continue;
    }
    const meaningful = group.filter((e) => e.keyword !== 'anyOf');
    problems.push(...(meaningful.length > 0 ? meaningful : group).map(describeError));
  }
  return [...new Set(problems)];
}

/** Returns a defaulted copy of `raw`, or throws a ValuesError listing every problem. */
export function validateValues(raw: unknown): Values {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ValuesError(['(top level): expected a mapping of keys to values.']);
  }
  const copy = structuredClone(raw) as Record<string, unknown>;
  if (!validateAgainstSchema(copy)) {
    throw new ValuesError(uniqueProblems(validateAgainstSchema.errors ?? []));
  }
  return copy as unknown as Values;
}

/** Defaults alone: the values an empty file gives. */
export function defaultValues(): Values {
  return validateValues({});
}
