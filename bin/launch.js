// Chooses what the entry points run: the compiled JavaScript in dist/ (fast start) when it was built from
// the sources as they are now, else the TypeScript sources through tsx (slow start, always current).
// So a stale dist/ is never run: a test, or a user who edited src/, always runs the current code.
// `npm ci` builds dist/ (the `prepare` script, scripts/build.js); `npm run build` rebuilds it.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const installDir = fileURLToPath(new URL('..', import.meta.url));

/** The newest modification time (ms) of a directory tree, directories included (an entry removed or added changes its directory's). */
export function newestModification(dir) {
  let newest = statSync(dir).mtimeMs;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestModification(path) : statSync(path).mtimeMs);
  }
  return newest;
}

/** The build record scripts/build.js writes last: the newest source modification it compiled. */
export const buildRecordFile = (root) => join(root, 'dist', 'build.json');

/**
 * True when dist/ was built from src/ as it is now (nothing in src/ changed since), or when the
 * installation ships dist/ without src/ (the auth image).
 */
export function buildIsCurrent(root = installDir) {
  let record;
  try {
    record = JSON.parse(readFileSync(buildRecordFile(root), 'utf8'));
  } catch {
    return false;
  }
  if (typeof record.sourcesModifiedMs !== 'number') return false;
  if (!existsSync(join(root, 'src'))) return true;
  return newestModification(join(root, 'src')) <= record.sourcesModifiedMs;
}

/** Imports `<module>` (a path below src/ without extension, e.g. cli/main) from dist/ when current, else from src/ via tsx. */
export async function importEntry(module, root = installDir) {
  if (buildIsCurrent(root)) return import(join(root, 'dist', `${module}.js`));
  if (process.stderr.isTTY) process.stderr.write('note: dist/ is missing or older than src/: running the sources through tsx (slow start; `npm run build` fixes it)\n');
  const { register } = await import('tsx/esm/api');
  register();
  return import(join(root, 'src', `${module}.ts`));
}
