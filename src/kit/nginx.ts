/**
 * nginx configuration from objects: a directive is a name with its arguments, a block adds children. The
 * renderer quotes every argument that needs it, so no value can end a directive or open a block.
 */

export interface NginxDirective {
  name: string;
  args: readonly string[];
  /** Present for a block (`events { ... }`, `location = /x { ... }`). */
  children?: readonly NginxDirective[];
}

export const directive = (name: string, ...args: string[]): NginxDirective => ({ name, args });

export const block = (name: string, args: readonly string[], children: readonly NginxDirective[]): NginxDirective => ({ name, args, children });

/** An argument as nginx reads it: bare when it is plain, else double-quoted with `"` and `\` escaped. */
export function nginxArgument(value: string): string {
  if (/^[A-Za-z0-9_./:=*^~$-]+$/.test(value)) return value;
  if (/[\n\r\0]/.test(value)) throw new Error(`an nginx argument cannot hold a line break: ${JSON.stringify(value)}`);
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

function renderDirective(entry: NginxDirective, depth: number): string[] {
  const indent = '    '.repeat(depth);
  const head = [entry.name, ...entry.args.map(nginxArgument)].join(' ');
  if (entry.children === undefined) return [`${indent}${head};`];
  return [`${indent}${head} {`, ...entry.children.flatMap((child) => renderDirective(child, depth + 1)), `${indent}}`];
}

export function renderNginxConfig(directives: readonly NginxDirective[]): string {
  return `${directives.flatMap((entry) => renderDirective(entry, 0)).join('\n')}\n`;
}
