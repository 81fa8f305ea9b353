/** JSON files as the components read them: keys sorted at every level, 2-space indent, final newline. */

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === 'object' && !Array.isArray(value);

/** A copy with object keys sorted and undefined members dropped (lists keep their order). */
export function sortedAndDefined(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortedAndDefined);
  if (!isPlainObject(value)) return value;
  const sorted: Record<string, unknown> = {};
  for (const key of Object.keys(value).sort()) {
    if (value[key] !== undefined) sorted[key] = sortedAndDefined(value[key]);
  }
  return sorted;
}

export function toSortedJson(value: unknown): string {
  return `${JSON.stringify(sortedAndDefined(value), null, 2)}\n`;
}
