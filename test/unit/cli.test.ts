/** The command line as a user runs it: help everywhere, deterministic render, schema, values, docs. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parse as parseYaml, parseAllDocuments, parseDocument } from 'yaml';
import type { Command } from 'commander';
import { buildProgram } from '../../src/cli/main.js';
import { loadValues } from '../../src/values/load.js';
import { compileKubernetesStack, renderKubernetesObjects, renderKubernetesYaml } from '../../src/targets/kubernetes/render.js';
import { projectRoot, runCli, runCliBatch, stackFramePattern } from '../support/cli.js';
import { goodValuesFixtures, valuesFixturesDir } from '../support/fixtures.js';

const workDir = mkdtempSync(join(tmpdir(), 'mxstack-cli-'));
test.after(() => rmSync(workDir, { recursive: true, force: true }));

const fixture = (name: string) => join(valuesFixturesDir, `${name}.yaml`);

/** Every command path of the program, e.g. ['render'], ['secrets', 'init']. */
function commandPaths(command: Command, prefix: string[] = []): string[][] {
  return command.commands.flatMap((sub) => {
    const path = [...prefix, sub.name()];
    return [path, ...commandPaths(sub, path)];
  });
}

/** The documents of a multi-document render, as the exact text of each object. */
function splitDocuments(stream: string): string[] {
  assert.ok(stream.startsWith('---\n'), 'the stream starts with a document marker');
  return stream.slice(4).split(/^---\n/m);
}

test('--help works on the program and on every command', () => {
  const paths = commandPaths(buildProgram());
  for (const expected of ['render', 'schema', 'values']) assert.ok(paths.some((p) => p.join(' ') === expected), `command ${expected} exists`);
  // Every command through the real entry point, in one process; a few also through bin/mxstack.js
  // itself, as a user runs them (one process each is slow on a busy machine).
  const allPaths = [[], ...paths];
  const batch = runCliBatch(allPaths.map((path) => [...path, '--help']));
  const spawned = [[], ['render'], ['values']].map((path) => ({ path, result: runCli([...path, '--help']) }));
  const checks = [...allPaths.map((path, i) => ({ path, result: batch[i]! })), ...spawned];
  for (const { path, result } of checks) {
    const shown = ['mxstack', ...path].join(' ');
    assert.equal(result.status, 0, `${shown} --help exits 0; stderr:\n${result.stderr}`);
    assert.match(result.stdout, /^Usage: /m, `${shown} --help prints usage`);
    assert.match(result.stdout, new RegExp(`^Usage: mxstack${path.length > 0 ? ` ${path.join(' ')}` : ''}( |$)`, 'm'), `${shown} --help shows its own usage`);
    assert.doesNotMatch(result.stderr, stackFramePattern);
  }
});

test('an unknown command or option exits 2 with a hint, no stack trace', () => {
  for (const args of [['rendr'], ['render', '--no-such-option']]) {
    const result = runCli(args);
    assert.equal(result.status, 2, `${args.join(' ')}: ${result.stderr}`);
    assert.match(result.stderr, /error: /);
    assert.doesNotMatch(result.stderr, stackFramePattern);
    assert.equal(result.stdout, '');
  }
});

for (const file of goodValuesFixtures()) {
  test(`render of ${basename(file)} is byte-identical across runs`, () => {
    const first = runCli(['render', '-f', file]);
    assert.equal(first.status, 0, first.stderr);
    assert.ok(splitDocuments(first.stdout).length > 0, 'renders objects');
    // A second, independent run: this test process, another pid, another time.
    const objects = renderKubernetesObjects(compileKubernetesStack(loadValues({ files: [file] })));
    assert.ok(first.stdout === renderKubernetesYaml(objects), 'two runs give the same bytes');
  });
}

test('render gives the same bytes in two separate CLI processes', () => {
  const [first, second] = [runCli(['render', '-f', fixture('production')]), runCli(['render', '-f', fixture('production')])];
  assert.equal(first.status, 0, first.stderr);
  assert.ok(first.stdout === second.stdout);
});

for (const name of ['minimal', 'production', 'sso-two-providers', 'network-policies']) {
  test(`render --output-dir of ${name} writes one file per object, the same objects as stdout`, () => {
    const outputDir = join(workDir, `out-${name}`);
    const result = runCli(['render', '-f', fixture(name), '--output-dir', outputDir]);
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stdout, '', 'nothing on stdout when writing files');
    const documents = splitDocuments(runCli(['render', '-f', fixture(name)]).stdout);
    const files = readdirSync(outputDir).sort();
    assert.equal(files.length, documents.length, 'one file per object');
    assert.match(result.stderr, new RegExp(`wrote ${documents.length} objects`));
    const contents = files.map((f) => readFileSync(join(outputDir, f), 'utf8'));
    assert.deepEqual([...contents].sort(), [...documents].sort(), 'the files hold exactly the objects of the stream');
    files.forEach((f, i) => {
      const object = parseAllDocuments(contents[i]!);
      assert.equal(object.length, 1, `${f} holds one object`);
      const { kind, metadata } = object[0]!.toJS() as { kind: string; metadata: { name: string } };
      assert.equal(f, `${kind.toLowerCase()}-${metadata.name}.yaml`);
    });
  });
}

test('render --output-dir over an earlier render leaves no stale object behind', () => {
  const outputDir = join(workDir, 'out-rerender');
  assert.equal(runCli(['render', '-f', fixture('network-policies'), '--output-dir', outputDir]).status, 0);
  const before = readdirSync(outputDir);
  const result = runCli(['render', '-f', fixture('minimal'), '--output-dir', outputDir]);
  assert.equal(result.status, 0, result.stderr);
  const after = readdirSync(outputDir);
  assert.ok(before.some((f) => f.startsWith('networkpolicy-')), 'the first render had NetworkPolicies');
  assert.ok(!after.some((f) => f.startsWith('networkpolicy-')), 'none remain after rendering values without them');
  assert.deepEqual(readdirSync(workDir).filter((f) => f.includes('mxstack-tmp')), [], 'no staging directory left');
});

test('render reads several -f files and --set in order', () => {
  const override = join(workDir, 'override.yaml');
  writeFileSync(override, 'synapse:\n  server:\n    name: override.example.com\n');
  const viaFiles = runCli(['render', '-f', fixture('minimal'), '-f', override]);
  assert.equal(viaFiles.status, 0, viaFiles.stderr);
  assert.match(viaFiles.stdout, /server_name: override\.example\.com/);
  const viaSet = runCli(['render', '-f', fixture('minimal'), '-f', override, '--set', 'synapse.server.name=set.example.com']);
  assert.match(viaSet.stdout, /server_name: set\.example\.com/);
  assert.doesNotMatch(viaSet.stdout, /override\.example\.com/);
});

test('a client secret written in values never lands in a ConfigMap or anything but a Secret', () => {
  const secret = 'fixture-okta-client-secret-not-real';
  assert.ok(readFileSync(fixture('sso-okta'), 'utf8').includes(secret), 'the fixture carries the secret');
  const result = runCli(['render', '-f', fixture('sso-okta')]);
  assert.equal(result.status, 0, result.stderr);
  for (const document of splitDocuments(result.stdout)) {
    if (document.includes(secret)) assert.equal((parseYaml(document) as { kind: string }).kind, 'Secret');
  }
  assert.ok(!result.stderr.includes(secret));
});

test('schema prints valid JSON equal to values.schema.json', () => {
  const result = runCli(['schema']);
  assert.equal(result.status, 0, result.stderr);
  const shipped = readFileSync(join(projectRoot, 'values.schema.json'), 'utf8');
  assert.deepEqual(JSON.parse(result.stdout), JSON.parse(shipped));
  assert.equal(result.stdout, shipped, 'byte-identical to the shipped file');
});

test('values prints commented YAML that parses, re-validates and renders the same as its input', () => {
  const input = fixture('production');
  const result = runCli(['values', '-f', input]);
  assert.equal(result.status, 0, result.stderr);
  const document = parseDocument(result.stdout);
  assert.deepEqual(document.errors, []);
  const printed = document.toJS() as Record<string, unknown>;
  // Re-validating the printed values gives back exactly the values they came from.
  const printedFile = join(workDir, 'printed-values.yaml');
  writeFileSync(printedFile, result.stdout);
  assert.deepEqual(loadValues({ files: [printedFile] }), loadValues({ files: [input] }));
  assert.deepEqual(printed, JSON.parse(JSON.stringify(loadValues({ files: [input] }))));
  const fromPrinted = runCli(['render', '-f', printedFile]);
  const fromInput = runCli(['render', '-f', input]);
  assert.equal(fromPrinted.status, 0, fromPrinted.stderr);
  assert.ok(fromPrinted.stdout === fromInput.stdout, 'rendering the printed values gives the same manifests');
  // A comment per key, taken from the schema's descriptions.
  assert.match(result.stdout, /^ *# The server name: the part after the colon in @user:name\. Cannot change later\.[^\n]*\n *name: matrix\.example\.com$/m);
  const comments = result.stdout.split('\n').filter((line) => /^\s*#/.test(line)).length;
  const keys = result.stdout.split('\n').filter((line) => /^\s*[A-Za-z_"'][^:]*:/.test(line)).length;
  assert.ok(comments >= keys * 0.8, `${comments} comments for ${keys} keys`);
});

test('values without any file prints the defaults', () => {
  const result = runCli(['values']);
  assert.equal(result.status, 0, result.stderr);
  const printed = parseYaml(result.stdout) as { synapse: { server: { name: string } } };
  assert.equal(printed.synapse.server.name, 'localhost');
});

test('npm run docs -- --check passes on the committed docs', () => {
  const result = spawnSync('npm', ['run', '-s', 'docs', '--', '--check'], { cwd: projectRoot, encoding: 'utf8', timeout: 120_000 });
  assert.equal(result.status, 0, `docs are stale:\n${result.stderr}`);
});

test('the docs check fails when a generated file is stale', () => {
  const copy = join(workDir, 'docs-check');
  mkdirSync(join(copy, 'docs'), { recursive: true });
  cpSync(join(projectRoot, 'values.schema.json'), join(copy, 'values.schema.json'));
  writeFileSync(join(copy, 'docs', 'values.md'), readFileSync(join(projectRoot, 'docs', 'values.md'), 'utf8').replace('| `synapse.server.name`', '| `synapse.server.nmae`'));
  const tsx = pathToFileURL(join(projectRoot, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
  const result = spawnSync(process.execPath, ['--import', tsx, join(projectRoot, 'scripts', 'generate-docs.ts'), '--check'], { cwd: copy, encoding: 'utf8', timeout: 120_000 });
  assert.equal(result.status, 1, result.stderr);
  assert.match(result.stderr, /docs\/values\.md is out of date/);
  assert.doesNotMatch(result.stderr, /values\.schema\.json is out of date/);
});
