/** Writes docs/values.md and values.schema.json from the schema; `--check` fails when they are stale. */
import { readFileSync, writeFileSync } from 'node:fs';
import { editorSchema, renderValuesReferenceMarkdown } from '../src/values/document.js';

const outputs: Record<string, string> = {
  'docs/values.md': renderValuesReferenceMarkdown(),
  'values.schema.json': `${JSON.stringify(editorSchema(), null, 2)}\n`,
};

const check = process.argv.includes('--check');
let stale = 0;
for (const [path, content] of Object.entries(outputs)) {
  let current = '';
  try {
    current = readFileSync(path, 'utf8');
  } catch {
    current = '';
  }
  if (current === content) continue;
  if (check) {
    process.stderr.write(`${path} is out of date: run npm run docs\n`);
    stale++;
  } else {
    writeFileSync(path, content);
    process.stderr.write(`wrote ${path}\n`);
  }
}
process.exitCode = stale > 0 ? 1 : 0;
