/** The layers of src/ (docs/architecture.md): imports point only down, no cycle between folders, and the lint rule enforces it. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';
import { fileImports, folderArrows, folderCycles, upwardArrows } from '../support/import-graph.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

test('every import between folders of src/ points down the layers', () => {
  const arrows = folderArrows(fileImports());
  const up = upwardArrows(arrows).map((arrow) => `${arrow}: ${arrows.get(arrow)!.map((e) => `${e.from} imports ${e.to}`).join('; ')}`);
  assert.deepEqual(up, []);
});

test('no import cycle between the folders of src/', () => {
  assert.deepEqual(folderCycles(folderArrows(fileImports())), []);
});

test('operations use the Target interface only, never an adapter (the CLI chooses it)', () => {
  const intoAdapters = fileImports().filter((e) => e.from.startsWith('ops/') && e.to.startsWith('targets/') && e.to !== 'targets/target.ts');
  assert.deepEqual(intoAdapters, []);
});

test('the cycle finder finds a cycle between folders, and the upward check an upward arrow', () => {
  const arrows = folderArrows([
    { from: 'components/a.ts', to: 'targets/b.ts' },
    { from: 'targets/b.ts', to: 'components/c.ts' },
  ]);
  assert.deepEqual(folderCycles(arrows), ['components -> targets -> components']);
  assert.deepEqual(upwardArrows(arrows), ['components -> targets']);
});

async function lintMessages(file: string, text: string): Promise<string[]> {
  const eslint = new ESLint({ cwd: repoRoot });
  const [result] = await eslint.lintText(text, { filePath: `${repoRoot}/${file}` });
  return result!.messages.map((m) => `${m.ruleId}: ${m.message}`);
}

test('npm run lint fails on an import that points up a layer, and passes one that points down', { timeout: 120_000 }, async () => {
  const up = await lintMessages('src/kit/layer-probe.ts', "import { renderKubernetesObjects } from '../targets/kubernetes/render.js';\nexport const probe = renderKubernetesObjects;\n");
  assert.equal(up.length, 1, up.join('\n'));
  assert.match(up[0]!, /^no-restricted-imports: .*src\/kit\/ may not import components, auth-service, targets, ops, cli/);
  const adapter = await lintMessages('src/ops/layer-probe.ts', "import { LocalTarget } from '../targets/local/target-adapter.js';\nexport const probe = LocalTarget;\n");
  assert.equal(adapter.length, 1, adapter.join('\n'));
  assert.match(adapter[0]!, /^no-restricted-imports: /);
  const down = await lintMessages('src/components/layer-probe.ts', "import { objectMeta } from '../kit/meta.js';\nimport type { Stack } from '../stack/model.js';\nexport const probe = objectMeta;\nexport type Probe = Stack;\n");
  assert.deepEqual(down.filter((m) => m.startsWith('no-restricted-imports')), []);
});
