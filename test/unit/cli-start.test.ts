/**
 * How the entry points start: the compiled dist/ only when it was built from the current sources (a stale
 * dist/ is never run, so tests and users always run the code as it is), and `--help`/`status` without
 * loading the values, the compiler or the Kubernetes models (the slow modules).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { buildIsCurrent, buildRecordFile, importEntry, newestModification } from '../../bin/launch.js';
import { cliEntry, projectRoot } from '../support/cli.js';

const workDir = mkdtempSync(join(tmpdir(), 'mxstack-cli-start-'));
test.after(() => rmSync(workDir, { recursive: true, force: true }));

/** An installation tree with src/cli/main.ts and dist/cli/main.js that say which one ran. */
function fakeInstallation(name: string): string {
  const root = join(workDir, name);
  mkdirSync(join(root, 'src', 'cli'), { recursive: true });
  mkdirSync(join(root, 'dist', 'cli'), { recursive: true });
  writeFileSync(join(root, 'src', 'cli', 'main.ts'), "export const ranFrom: string = 'src';\n");
  writeFileSync(join(root, 'src', 'cli', 'helper.ts'), 'export {};\n');
  writeFileSync(join(root, 'dist', 'cli', 'main.js'), "export const ranFrom = 'dist';\n");
  return root;
}

const recordBuild = (root: string) => writeFileSync(buildRecordFile(root), JSON.stringify({ sourcesModifiedMs: newestModification(join(root, 'src')) }));
const inTheFuture = (path: string) => utimesSync(path, new Date(Date.now() + 60_000), new Date(Date.now() + 60_000));

test('dist/ runs only when it was built from the sources as they are now', async () => {
  const root = fakeInstallation('current');
  assert.equal(buildIsCurrent(root), false, 'never built: not current');
  recordBuild(root);
  assert.equal(buildIsCurrent(root), true);
  assert.equal((await importEntry('cli/main', root)).ranFrom, 'dist');
});

test('an edited source makes dist/ stale: the sources run (through tsx), never the old build', async () => {
  const root = fakeInstallation('edited');
  recordBuild(root);
  writeFileSync(join(root, 'src', 'cli', 'main.ts'), "export const ranFrom: string = 'src, edited';\n");
  inTheFuture(join(root, 'src', 'cli', 'main.ts'));
  assert.equal(buildIsCurrent(root), false);
  assert.equal((await importEntry('cli/main', root)).ranFrom, 'src, edited');
});

test('a removed or added source file makes dist/ stale too', () => {
  const removed = fakeInstallation('removed');
  recordBuild(removed);
  unlinkSync(join(removed, 'src', 'cli', 'helper.ts'));
  inTheFuture(join(removed, 'src', 'cli'));
  assert.equal(buildIsCurrent(removed), false);

  const added = fakeInstallation('added');
  recordBuild(added);
  writeFileSync(join(added, 'src', 'cli', 'new.ts'), 'export {};\n');
  inTheFuture(join(added, 'src', 'cli', 'new.ts'));
  assert.equal(buildIsCurrent(added), false);
});

test('the auth service entry starts through the same choice', () => {
  const entry = readFileSync(join(projectRoot, 'bin', 'mxstack-auth.js'), 'utf8');
  assert.match(entry, /importEntry\('[^']*\/main'\)/);
  assert.doesNotMatch(entry, /from 'tsx/);
});

/** The modules (of src/ or dist/, without extension) and packages a real `node bin/mxstack.js ...` loads. */
function modulesLoadedBy(args: string[]): string[] {
  const out = join(workDir, `loaded-${args[0]}.txt`);
  const hooks = join(workDir, 'record-hooks.mjs');
  writeFileSync(
    hooks,
    [
      "import { appendFileSync } from 'node:fs';",
      'export async function resolve(specifier, context, next) {',
      '  const resolved = await next(specifier, context);',
      `  appendFileSync(${JSON.stringify(out)}, resolved.url + '\\n');`,
      '  return resolved;',
      '}',
    ].join('\n'),
  );
  const register = join(workDir, 'record.mjs');
  writeFileSync(register, `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(hooks).href)});\n`);
  const result = spawnSync(process.execPath, ['--import', pathToFileURL(register).href, cliEntry, ...args], { cwd: projectRoot, encoding: 'utf8', timeout: 60_000 });
  assert.equal(result.status, 0, result.stderr);
  return [
    ...new Set(
      readFileSync(out, 'utf8')
        .split('\n')
        .filter((url) => url.startsWith('file:'))
        .map((url) => {
          const inPackage = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
          return inPackage ? `package ${inPackage[1]}` : url.replace(/^.*\/(?:src|dist)\//, '').replace(/\.(ts|js)$/, '');
        }),
    ),
  ];
}

const slowModules = /^(values\/(load|schema|validate)|stack\/compile|targets\/kubernetes\/render|targets\/local\/lifecycle|package (kubernetes-models|@kubernetes-models\/.*|ajv|@sinclair\/typebox|yaml|pg|oidc-provider))$/;

test('--help and status load no values, compiler, Kubernetes models or validators (each command loads its own code when it runs)', () => {
  const stateDir = join(workDir, 'no-stack');
  for (const args of [['--help'], ['status', '--state-dir', stateDir]]) {
    const slow = modulesLoadedBy(args).filter((module) => slowModules.test(module));
    assert.deepEqual(slow, [], `mxstack ${args.join(' ')} loaded ${slow.join(', ')}`);
  }
});

test('an installation that ships dist/ without src/ (the auth image) runs dist/', async () => {
  const root = fakeInstallation('image');
  recordBuild(root);
  rmSync(join(root, 'src'), { recursive: true });
  assert.equal((await importEntry('cli/main', root)).ranFrom, 'dist');
});
