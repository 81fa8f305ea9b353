/**
 * Values loading: several `-f FILE` (later wins, deep merge) then `--set a.b.c=value`, then the old
 * chart's spellings normalized, then schema validation with defaults, then the semantic checks.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml, parseDocument } from 'yaml';
import { ValuesError, formatPath } from './errors.js';
import { normalizeLegacyValues } from './compat.js';
import { expectsStringAt, validateValues } from './validate.js';
import { checkValues } from './refusals.js';
import type { Values } from './schema.js';

type Tree = Record<string, unknown>;

const isTree = (value: unknown): value is Tree => value !== null && typeof value === 'object' && !Array.isArray(value);

/** Deep merge: mappings merge key by key, anything else (lists included) is replaced by the later value. */
export function deepMerge(base: unknown, override: unknown): unknown {
  if (!isTree(base) || !isTree(override)) return structuredClone(override);
  const merged: Tree = { ...base };
  for (const [key, value] of Object.entries(override)) {
    merged[key] = key in merged ? deepMerge(merged[key], value) : structuredClone(value);
  }
  return merged;
}

export function parseValuesFile(path: string, text: string): Tree {
  const document = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (document.errors.length > 0) {
    const first = document.errors[0]!;
    // The parser's first line names the problem and its line and column; the code frame after it is noise here.
    const summary = first.message.split('\n')[0]!.replace(/:\s*$/, '');
    throw new ValuesError([`${path}: not valid YAML: ${summary}.`]);
  }
  const content: unknown = document.toJS();
  if (content === null || content === undefined) return {};
  if (!isTree(content)) throw new ValuesError([`${path}: expected a mapping of keys to values at the top level.`]);
  return content;
}

export function readValuesFile(path: string): Tree {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ValuesError([`${path}: cannot read the values file (${code === 'ENOENT' ? 'no such file' : code ?? 'error'}).`]);
  }
  return parseValuesFile(path, text);
}

/** Splits `a.b[0].c` (dots inside backslash-escapes kept: `annotations.cert-manager\.io/issuer`). */
export function parseSetPath(path: string): (string | number)[] {
  const segments: (string | number)[] = [];
  let current = '';
  const flush = () => {
    if (current !== '') segments.push(current);
    current = '';
  };
  for (let i = 0; i < path.length; i++) {
    const ch = path[i]!;
    if (ch === '\\' && i + 1 < path.length) {
      current += path[++i];
    } else if (ch === '.') {
      if (current === '' && path[i - 1] !== ']') throw new ValuesError([`--set ${path}: empty key in the path.`]);
      flush();
    } else if (ch === '[') {
      flush();
      const end = path.indexOf(']', i);
      const index = path.slice(i + 1, end);
      if (end < 0 || !/^\d+$/.test(index)) throw new ValuesError([`--set ${path}: list index must be a number in brackets, like providers[0].`]);
      segments.push(Number(index));
      i = end;
    } else {
      current += ch;
    }
  }
  flush();
  if (segments.length === 0) throw new ValuesError([`--set ${path}: empty key.`]);
  return segments;
}

/**
 * Applies one `--set path=value`. The value is read as a YAML scalar or flow collection (`true`, `3`,
 * `[a,b]`), except where the schema wants a string: there the text is kept as typed, so an image tag
 * `1.160` or an annotation value `true` does not turn into a number or a boolean.
 */
export function applySet(values: Tree, assignment: string): Tree {
  const eq = assignment.indexOf('=');
  if (eq <= 0) throw new ValuesError([`--set ${assignment}: expected key=value, like synapse.server.name=example.com.`]);
  const path = parseSetPath(assignment.slice(0, eq));
  const rawValue = assignment.slice(eq + 1);
  if (rawValue === '' && !expectsStringAt(path)) {
    throw new ValuesError([`--set ${assignment.slice(0, eq)}: the value is empty; write one after "=" (like router.port=8080), or leave the --set out to keep the default.`]);
  }
  const quoted = /^(".*"|'.*')$/s.test(rawValue);
  let value: unknown;
  try {
    value = rawValue === '' || (expectsStringAt(path) && !quoted) ? rawValue : parseYaml(rawValue);
  } catch {
    value = rawValue;
  }
  const root = structuredClone(values);
  let node: Tree | unknown[] = root;
  path.forEach((segment, index) => {
    const last = index === path.length - 1;
    const nextIsIndex = typeof path[index + 1] === 'number';
    // A key into a list, or an index into a mapping, would be dropped or misread later: refuse it here.
    const isList = Array.isArray(node);
    if (isList !== (typeof segment === 'number')) {
      const at = formatPath(path.slice(0, index));
      throw new ValuesError([
        `--set ${assignment.slice(0, eq)}: ${at} is ${isList ? 'a list; select an entry with [index]' : 'a mapping, not a list; use .key'}.`,
      ]);
    }
    const container = node as Record<string | number, unknown>;
    if (last) {
      container[segment] = value;
      return;
    }
    const existing = container[segment];
    if (existing === undefined || existing === null || typeof existing !== 'object') {
      container[segment] = nextIsIndex ? [] : {};
    }
    node = container[segment] as Tree | unknown[];
  });
  return root;
}

export interface ValuesSources {
  files?: string[];
  sets?: string[];
  /** Values given in code (tests, the local target's own defaults) merged before the files. */
  base?: Tree;
}

/** Merged raw values, before validation. */
export function mergeValueSources(sources: ValuesSources): Tree {
  let merged: Tree = structuredClone(sources.base ?? {});
  for (const file of sources.files ?? []) merged = deepMerge(merged, readValuesFile(file)) as Tree;
  for (const assignment of sources.sets ?? []) merged = applySet(merged, assignment);
  return merged;
}

/** Raw tree → validated, defaulted, checked values. Throws ValuesError with every problem found. */
export function resolveValues(raw: Tree): Values {
  const values = validateValues(normalizeLegacyValues(raw));
  checkValues(values);
  return values;
}

export function loadValues(sources: ValuesSources): Values {
  return resolveValues(mergeValueSources(sources));
}
