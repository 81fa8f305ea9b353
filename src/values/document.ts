/**
 * Documents generated from the schema: the defaulted values as commented YAML (`mxstack values`) and
 * the values reference (docs/values.md). The schema's descriptions are the single source.
 */
import { Document, isMap, isPair, isScalar, type Pair } from 'yaml';
import { valuesSchema, type Values } from './schema.js';
import { workloadSettingMarker } from './workload.js';

interface SchemaNode {
  type?: string | string[];
  description?: string;
  default?: unknown;
  enum?: unknown[];
  properties?: Record<string, SchemaNode>;
  items?: SchemaNode;
  anyOf?: SchemaNode[];
  additionalProperties?: boolean | SchemaNode;
  pattern?: string;
  minimum?: number;
  maximum?: number;
}

const root = valuesSchema as unknown as SchemaNode;

function annotate(map: unknown, schema: SchemaNode | undefined): void {
  if (!isMap(map) || !schema?.properties) return;
  for (const pair of map.items as Pair[]) {
    if (!isPair(pair) || !isScalar(pair.key)) continue;
    const child = schema.properties[String(pair.key.value)];
    if (!child) continue;
    if (child.description) pair.key.commentBefore = ` ${child.description}`;
    annotate(pair.value, child);
  }
}

export function renderDefaultedValuesYaml(values: Values): string {
  const document = new Document(values, { sortMapEntries: false });
  annotate(document.contents, root);
  return document.toString({ lineWidth: 0 });
}

function typeName(node: SchemaNode): string {
  if (node.enum) return node.enum.map((v) => JSON.stringify(v)).join(' \\| ');
  if (node.anyOf) return node.anyOf.map(typeName).join(' or ');
  if (node.type === 'array') return `list of ${node.items ? typeName(node.items) : 'any'}`;
  if (node.type === 'object' && !node.properties) return 'map';
  return Array.isArray(node.type) ? node.type.join(' or ') : node.type ?? 'any';
}

function constraints(node: SchemaNode): string {
  const parts: string[] = [];
  if (node.minimum !== undefined) parts.push(`≥ ${node.minimum}`);
  if (node.maximum !== undefined) parts.push(`≤ ${node.maximum}`);
  if (node.pattern) parts.push(`matches \`${node.pattern}\``);
  return parts.length > 0 ? ` (${parts.join(', ')})` : '';
}

function defaultText(node: SchemaNode): string {
  if (node.default === undefined) return '—';
  if (node.type === 'object' && node.properties) return '';
  return `\`${JSON.stringify(node.default)}\``;
}

/** One row per key, depth first, in schema order. */
export function valuesReferenceRows(): { path: string; type: string; default: string; description: string }[] {
  const rows: { path: string; type: string; default: string; description: string }[] = [];
  const visit = (node: SchemaNode, path: string) => {
    for (const [key, child] of Object.entries(node.properties ?? {})) {
      if ((child as Record<string, unknown>)[workloadSettingMarker]) continue;
      const childPath = path ? `${path}.${key}` : key;
      rows.push({ path: childPath, type: typeName(child) + constraints(child), default: defaultText(child), description: child.description ?? '' });
      if (child.properties) visit(child, childPath);
      if (child.type === 'array' && child.items?.properties) visit(child.items, `${childPath}[]`);
    }
    const shared = Object.entries(node.properties ?? {}).filter(([, child]) => (child as Record<string, unknown>)[workloadSettingMarker]);
    if (shared.length > 0) {
      rows.push({
        path: `${path}.{${shared.map(([key]) => key).join(', ')}}`,
        type: 'workload settings',
        default: '—',
        description: 'The workload settings: the same keys and meaning as `global.workload.*` (documented there), overriding them for this component by the merge rule of docs/kubernetes.md "Fitting the cluster".',
      });
    }
  };
  visit(root, '');
  return rows;
}

export function renderValuesReferenceMarkdown(): string {
  const escape = (text: string) => text.replace(/\|/g, '\\|');
  const lines = [
    '# Values reference',
    '',
    '<!-- Generated from src/values/schema.ts by `npm run docs`; do not edit by hand. -->',
    '',
    'Every key mxstack accepts. The old Helm chart\'s keys keep their names and meaning; unknown keys are an',
    'error naming the closest valid key. `mxstack values` prints these defaults as commented YAML, and',
    '`mxstack schema` (or `values.schema.json`) gives the same as JSON Schema for editors.',
    '',
    '| key | type | default | description |',
    '|---|---|---|---|',
    ...valuesReferenceRows().map((r) => `| \`${r.path}\` | ${escape(r.type)} | ${escape(r.default)} | ${escape(r.description)} |`),
    '',
  ];
  return lines.join('\n');
}

type JsonObject = { [key: string]: unknown };

/**
 * The schema as editors read it (values.schema.json, `mxstack schema`): the same types, ranges and
 * patterns, but a key with a default is not `required` (TypeBox marks every non-optional key so, while
 * a values file leaves out whatever keeps its default).
 */
export function editorSchema(node: unknown = valuesSchema): unknown {
  const schema = editorNode(node);
  return node === valuesSchema ? acceptLegacySpellings(schema as JsonObject) : schema;
}

function editorNode(node: unknown): unknown {
  if (Array.isArray(node)) return node.map((child) => editorNode(child));
  if (node === null || typeof node !== 'object') return node;
  const object = node as JsonObject;
  const out: JsonObject = Object.fromEntries(Object.entries(object).map(([key, value]) => [key, editorNode(value)]));
  const properties = object.properties as Record<string, JsonObject> | undefined;
  if (Array.isArray(object.required) && properties) {
    const required = (object.required as string[]).filter((key) => properties[key]?.default === undefined);
    if (required.length > 0) out.required = required;
    else delete out.required;
  }
  return out;
}

/** The schema node at a path of property names, or undefined. */
function propertyAt(schema: JsonObject, path: readonly string[]): JsonObject | undefined {
  let node: JsonObject | undefined = schema;
  for (const key of path) node = (node?.properties as Record<string, JsonObject> | undefined)?.[key];
  return node;
}

/**
 * The old chart's spellings that src/values/compat.ts rewrites before validation, accepted by the editor
 * schema too, so that an editor does not flag an old values file that mxstack takes.
 */
function acceptLegacySpellings(schema: JsonObject): JsonObject {
  for (const host of ['synapse', 'element']) {
    const properties = propertyAt(schema, ['ingress', host])?.properties as Record<string, JsonObject> | undefined;
    if (!properties) continue;
    properties.tls = { anyOf: [properties.tls, { type: 'boolean', description: 'The old chart\'s spelling of tls.enabled.' }] };
    const paths = properties.paths;
    if (paths) {
      paths.items = {
        anyOf: [
          paths.items,
          { type: 'object', description: 'The old chart\'s Helm-style path entry (only path is used).', required: ['path'], properties: { path: { type: 'string' }, pathType: { type: 'string' } } },
        ],
      };
    }
  }
  const algorithm = propertyAt(schema, ['synapse', 'server', 'mfa', 'totp', 'algorithm']);
  if (algorithm && Array.isArray(algorithm.enum)) {
    const names = algorithm.enum as string[];
    algorithm.enum = [...names, ...names.map((name) => name.toUpperCase())];
  }
  return schema;
}
