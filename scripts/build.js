// Compiles src/ to dist/ (tsc -p tsconfig.build.json) and copies the files src/ holds beside its modules
// (stylesheets, SQL, scripts). Run by `npm ci`/`npm install` (the `prepare` script) and `npm run build`.
// Written in JavaScript so it needs nothing but Node and the TypeScript compiler.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildRecordFile, newestModification } from '../bin/launch.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const src = join(root, 'src');
const dist = join(root, 'dist');

// Taken before compiling: a source edited while tsc runs makes the build stale, not silently current.
const sourcesModifiedMs = newestModification(src);
rmSync(dist, { recursive: true, force: true });
let tsc;
try {
  tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
} catch {
  // An install without devDependencies (npm ci --omit=dev): the entry points run the sources through tsx.
  process.stdout.write('mxstack: no TypeScript compiler installed (devDependencies omitted): dist/ not built, the sources run through tsx.\n');
  process.exit(0);
}
execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit', cwd: root });
cpSync(src, dist, { recursive: true, filter: (path) => !path.endsWith('.ts') });
mkdirSync(dirname(buildRecordFile(root)), { recursive: true });
writeFileSync(buildRecordFile(root), `${JSON.stringify({ sourcesModifiedMs })}\n`);
