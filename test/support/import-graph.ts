/**
 * The import graph of src/ between layers: which folder imports which, read from the sources (static
 * `import`/`export ... from` and dynamic `import()` with a relative specifier). Used by the architecture
 * test and by scripts that print the numbers.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';

export const srcDir = new URL('../../src/', import.meta.url).pathname;

/** The layers from the bottom up; an import may point only to its own layer or one listed before it. */
export const layerOrder = ['values', 'stack', 'kit', 'components', 'auth-service', 'targets', 'ops', 'cli'] as const;
export type Layer = (typeof layerOrder)[number];

const specifier = /(?:^|[\s;])(?:import|export)\s[^'"]*?from\s*['"](\.{1,2}\/[^'"]+)['"]|import\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

/** `values`, `stack`, ... for a path below src/; files directly in src/ (versions.ts) belong to the bottom layer. */
export function folderOf(file: string): string {
  const parts = relative(srcDir, file).split('/');
  return parts.length === 1 ? 'values' : parts[0]!;
}

export interface ImportEdge {
  from: string;
  to: string;
}

/** Every relative import between two source files of src/ (paths relative to src/). */
export function fileImports(root: string = srcDir): ImportEdge[] {
  const edges: ImportEdge[] = [];
  for (const file of sourceFiles(root)) {
    const text = readFileSync(file, 'utf8');
    for (const match of text.matchAll(specifier)) {
      const spec = match[1] ?? match[2]!;
      const target = normalize(join(dirname(file), spec)).replace(/\.js$/, '.ts');
      if (!target.startsWith(root)) continue;
      edges.push({ from: relative(root, file), to: relative(root, target) });
    }
  }
  return edges;
}

/** Folder-to-folder arrows (`components -> targets`), each with the file imports that make it. */
export function folderArrows(edges: ImportEdge[]): Map<string, ImportEdge[]> {
  const arrows = new Map<string, ImportEdge[]>();
  for (const edge of edges) {
    const from = folderOf(join(srcDir, edge.from));
    const to = folderOf(join(srcDir, edge.to));
    if (from === to) continue;
    const key = `${from} -> ${to}`;
    arrows.set(key, [...(arrows.get(key) ?? []), edge]);
  }
  return arrows;
}

const rank = (folder: string) => layerOrder.indexOf(folder as Layer);

/** Arrows pointing up the layer list (or into a folder that is no layer at all). */
export function upwardArrows(arrows: Map<string, ImportEdge[]>): string[] {
  return [...arrows.keys()].filter((key) => {
    const [from, to] = key.split(' -> ') as [string, string];
    return rank(from) < 0 || rank(to) < 0 || rank(to) > rank(from);
  });
}

/** Cycles between folders (each as `a -> b -> a`), found by depth-first search over the arrows. */
export function folderCycles(arrows: Map<string, ImportEdge[]>): string[] {
  const next = new Map<string, string[]>();
  for (const key of arrows.keys()) {
    const [from, to] = key.split(' -> ') as [string, string];
    next.set(from, [...(next.get(from) ?? []), to]);
  }
  const cycles = new Set<string>();
  const walk = (path: string[]) => {
    for (const to of next.get(path.at(-1)!) ?? []) {
      const at = path.indexOf(to);
      if (at >= 0) {
        const cycle = path.slice(at);
        const start = cycle.indexOf([...cycle].sort()[0]!);
        cycles.add([...cycle.slice(start), ...cycle.slice(0, start), cycle[start]].join(' -> '));
      } else walk([...path, to]);
    }
  };
  for (const from of next.keys()) walk([from]);
  return [...cycles].sort();
}
