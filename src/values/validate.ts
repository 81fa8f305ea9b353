/**
 * Validates raw values against the schema, fills defaults, and turns validator errors into sentences
 * that name the full path and what is allowed (with the closest valid key for a misspelt one).
 */
import AjvModule, { type ErrorObject } from 'ajv';
import { distance } from 'fastest-levenshtein';
import { valuesSchema, type Values } from './schema.js';
import { ValuesError, formatPath, pointerToSegments } from './errors.js';

const Ajv = AjvModule.default ?? AjvModule;
// verbose: errors carry the offending value, so messages can say what was found (never for secrets:
// those are plain strings with no enum or pattern, and type errors name only the kind found).
const ajv = new Ajv({ useDefaults: true, allErrors: true, verbose: true, strict: false });
const validateAgainstSchema = ajv.compile(valuesSchema);

type JsonSchemaNode = {
  type?: string | string[];
  description?: string;
  properties?: Record<string, JsonSchemaNode>;
  items?: JsonSchemaNode;
  additionalProperties?: boolean | JsonSchemaNode;
  /** TypeBox writes Record<string, T> as patternProperties. */
  patternProperties?: Record<string, JsonSchemaNode>;
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
    else if (node.patternProperties) node = Object.entries(node.patternProperties).find(([pattern]) => new RegExp(pattern).test(segment))?.[1];
    else return undefined;
  }
  return node;
}

/** The known key closest to a misspelt one, when it is close enough to be what the user meant. */
export function closestKey(unknown: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const d = distance(unknown.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return bestDistance <= Math.max(2, Math.floor(unknown.length / 3)) ? best : undefined;
}

/** YAML words for JSON Schema types: users write mappings and lists, not objects and arrays. */
const yamlTypeNames: Record<string, string> = { object: 'mapping', array: 'list', integer: 'whole number', null: 'empty value' };
const yamlTypeName = (type: string) => yamlTypeNames[type] ?? type;

function kindOf(value: unknown): string {
  if (value === null || value === undefined) return 'an empty value';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return `${article(typeof value)}${typeof value}`;
}

function expectedTypes(types: string[], found: unknown): string {
  const names = [...new Set(types.map(yamlTypeName))];
  return `expected ${names.map((n) => `${article(n)}${n}`).join(' or ')}, found ${kindOf(found)}.`;
}

/** The key's own description, in parentheses, so a range or pattern error says what the value is for. */
function meaningOf(error: ErrorObject): string {
  const description = (error.parentSchema as JsonSchemaNode | undefined)?.description;
  // The first sentence says what the value is for; the rest (defaults, advice) belongs to the docs.
  const firstSentence = description?.split(/\.\s+(?=[A-Z])/)[0];
  return firstSentence ? ` (${firstSentence.replace(/\.$/, '')})` : '';
}

/** True where the schema wants a plain string (a tag, an annotation value): `--set` then keeps the text as typed. */
export function expectsStringAt(segments: (string | number)[]): boolean {
  return schemaAt(segments)?.type === 'string';
}

function describeError(error: ErrorObject): string {
  const segments = pointerToSegments(error.instancePath);
  const path = formatPath(segments);
  switch (error.keyword) {
    case 'additionalProperty':
    case 'additionalProperties': {
      const unknown = String((error.params as { additionalProperty: string }).additionalProperty);
      const known = Object.keys(schemaAt(segments)?.properties ?? {});
      const suggestion = closestKey(unknown, known);
      const hint = suggestion ? ` Did you mean ${formatPath([...segments, suggestion])}?` : '';
      const allowed = known.length > 0 ? ` Allowed here: ${known.join(', ')}.` : '';
      return `${formatPath([...segments, unknown])}: unknown key.${hint}${allowed}`;
    }
    case 'type': {
      const expected = (error.params as { type: string | string[] }).type;
      return `${path}: ${expectedTypes([expected].flat(), error.data)}`;
    }
    case 'enum': {
      const allowed = (error.params as { allowedValues: unknown[] }).allowedValues;
      const suggestion = typeof error.data === 'string' ? closestKey(error.data, allowed.map(String)) : undefined;
      const hint = suggestion ? ` Did you mean ${JSON.stringify(suggestion)}?` : '';
      return `${path}: ${JSON.stringify(error.data)} is not allowed; must be one of ${allowed.map((v) => JSON.stringify(v)).join(', ')}.${hint}`;
    }
    case 'minimum':
    case 'maximum': {
      const { comparison, limit } = error.params as { comparison: string; limit: number };
      return `${path}: ${JSON.stringify(error.data)} is out of range${meaningOf(error)}; must be ${comparison} ${limit}.`;
    }
    case 'pattern': {
      // A known format (src/values/formats.ts) says in words what is allowed; a bare pattern shows itself.
      const sentence = (error.parentSchema as { patternErrorMessage?: string } | undefined)?.patternErrorMessage;
      if (sentence) return `${path}: ${JSON.stringify(error.data)} is not valid${meaningOf(error)}; it ${sentence}.`;
      return `${path}: ${JSON.stringify(error.data)} is not valid${meaningOf(error)}; must match ${(error.params as { pattern: string }).pattern}.`;
    }
    case 'minItems': {
      const { limit } = error.params as { limit: number };
      return `${path}: needs at least ${limit} ${limit === 1 ? 'item' : 'items'}${meaningOf(error)}, found ${(error.data as unknown[]).length}.`;
    }
    case 'uniqueItems': {
      const { i } = error.params as { i: number };
      return `${path}: ${JSON.stringify((error.data as unknown[])[i])} is listed twice${meaningOf(error)}; list each value once.`;
    }
    case 'format':
      return `${path}: ${JSON.stringify(error.data)} is not a valid ${(error.params as { format: string }).format}.`;
    case 'required':
      return `${formatPath([...segments, (error.params as { missingProperty: string }).missingProperty])}: required.`;
    default:
      return `${path}: ${error.message ?? 'invalid'}.`;
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
      const names = typeErrors.flatMap((e) => [(e.params as { type: string | string[] }).type].flat());
      problems.push(`${formatPath(pointerToSegments(group[0]!.instancePath))}: ${expectedTypes(names, group[0]!.data)}`);
      continue;
    }
    // A value of a union's string branch that fails its format: the other branches' type errors are noise.
    const valueErrors = group.filter((e) => e.keyword !== 'anyOf' && e.keyword !== 'type');
    const meaningful = valueErrors.length > 0 ? valueErrors : group.filter((e) => e.keyword !== 'anyOf');
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
