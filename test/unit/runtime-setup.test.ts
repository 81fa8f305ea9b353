/** What `mxstack runtime setup` shows and what the docs say it builds. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { mmdebstrapArguments, mmdebstrapLineShown, runtimePackages, runWithProgress } from '../../src/targets/local/runtime.js';
import { projectRoot } from '../support/cli.js';

test("mmdebstrap's expected unsandboxed-download warning does not reach the user; its other lines, errors among them, do", async () => {
  // The line mmdebstrap prints when apt's _apt user cannot enter the build directory (in root's cache).
  const expected = "W: Download is performed unsandboxed as root as file /root/.cache/mxstack/runtime-x.building-1/var/cache/apt/archives/partial/ couldn't be accessed by user _apt";
  const shown: string[] = [];
  const script = [`echo "${expected}" >&2`, 'echo "I: downloading packages with apt..."', 'echo "W: some other warning" >&2', 'echo "E: a real error" >&2', 'exit 3'].join('; ');
  const code = await runWithProgress('sh', ['-c', script], (line) => shown.push(line), '[mmdebstrap] ', mmdebstrapLineShown);
  assert.equal(code, 3);
  assert.deepEqual(shown.sort(), ['[mmdebstrap] E: a real error', '[mmdebstrap] I: downloading packages with apt...', '[mmdebstrap] W: some other warning']);
});

test("docs/local-target.md shows the runtime's package list as runtime setup passes it to mmdebstrap", () => {
  const include = mmdebstrapArguments('/target', 'http://mirror.invalid/debian', []).find((arg) => arg.startsWith('--include='));
  assert.equal(include, `--include=${runtimePackages.join(',')}`);
  const docs = readFileSync(join(projectRoot, 'docs', 'local-target.md'), 'utf8');
  assert.ok(docs.includes(`mmdebstrap --variant=apt ${include} sid`), `docs/local-target.md must show mmdebstrap --variant=apt ${include} sid`);
});
