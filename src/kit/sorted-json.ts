/** JSON as mxstack writes it: keys sorted at every level, undefined members dropped, so output is byte-stable. */

/**
 * A plain copy with object keys sorted and undefined members dropped (lists keep their order). Objects with
 * a toJSON (kubernetes-models classes) are copied as what they serialize to.
 */
export function toPlainSorted(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(toPlainSorted);
  if (value === null || typeof value !== 'object') return value;
  const source = typeof (value as { toJSON?: () => unknown }).toJSON === 'function' ? (value as { toJSON: () => unknown }).toJSON() : value;
  if (source !== value) return toPlainSorted(source);
  const record = value as Record<string, unknown>;
  const sorted: Record<string, unknown> = {};
  for (const key of Object.keys(record).sort()) {
    if (record[key] !== undefined) sorted[key] = toPlainSorted(record[key]);
  }
  return sorted;
}

/** JSON files as the components read them: sorted (toPlainSorted), 2-space indent, final newline. */
export function toSortedJson(value: unknown): string {
  return `${JSON.stringify(toPlainSorted(value), null, 2)}\n`;
}
