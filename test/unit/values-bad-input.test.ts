/**
 * Every bad input is refused the way the design promises: exit code 2, one sentence naming the full
 * path of the value, nothing on stdout, nothing written, no stack trace.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli, runCliBatch, stackFramePattern, type CliResult } from '../support/cli.js';
import { badValuesFixtures, valuesFixturesDir } from '../support/fixtures.js';

const workDir = mkdtempSync(join(tmpdir(), 'mxstack-bad-input-'));
test.after(() => rmSync(workDir, { recursive: true, force: true }));

/** An error line starts with the value's full path (or --set and the path), or names the file for file-level problems. */
function namesPath(stderr: string, path: string): boolean {
  return stderr.split('\n').some((line) => {
    const startsWithPath = [`error: ${path}`, `error: --set ${path}`].some(
      (prefix) => line.startsWith(prefix) && /^[:=]/.test(line.slice(prefix.length)),
    );
    return startsWithPath || (path.endsWith('.yaml') && line.startsWith('error: ') && line.includes(`/${path}: `));
  });
}

function assertRefused(result: CliResult, expect: string, path: string, outputDir: string): void {
  assert.equal(result.status, 2, `exit code 2 expected; stderr:\n${result.stderr}`);
  assert.ok(result.stderr.includes(expect), `stderr should contain "${expect}":\n${result.stderr}`);
  assert.ok(namesPath(result.stderr, path), `an error line should start by naming "${path}":\n${result.stderr}`);
  assert.match(result.stderr, /^error: /m);
  assert.equal(result.stdout, '', 'nothing on stdout');
  assert.doesNotMatch(result.stderr, stackFramePattern, 'no stack trace');
  assert.equal(existsSync(outputDir), false, 'the output directory must not be created');
  assert.deepEqual(
    readdirSync(workDir).filter((name) => name.includes('mxstack-tmp')),
    [],
    'no staging directory left behind',
  );
}

const fixtures = badValuesFixtures();

test('there are at least 30 distinct bad-input fixtures', () => {
  assert.ok(fixtures.length >= 30, `only ${fixtures.length} bad fixtures`);
  const contents = fixtures.map((f) => readFileSync(f.file, 'utf8').split('\n').slice(2).join('\n'));
  assert.equal(new Set(contents).size, contents.length, 'two bad fixtures have the same content');
});

const outputDirOf = (name: string) => join(workDir, `out-${name}`);
const renderArgs = (file: string, name: string) => ['render', '-f', file, '--output-dir', outputDirOf(name)];

/** Every bad fixture through the real entry point, in one process (dozens of Node starts are slow on a shared machine). */
let batchResults: Map<string, CliResult> | undefined;
function batchResultOf(name: string): CliResult {
  batchResults ??= new Map(runCliBatch(fixtures.map((f) => renderArgs(f.file, f.name))).map((result, i) => [fixtures[i]!.name, result]));
  return batchResults.get(name)!;
}

for (const fixture of fixtures) {
  test(`bad values ${fixture.name}: refused with "${fixture.expect}" at ${fixture.path}`, () => {
    assertRefused(batchResultOf(fixture.name), fixture.expect, fixture.path, outputDirOf(fixture.name));
  });
}

// The same through bin/mxstack.js in its own process, for a file-level, a schema and a refusal problem.
for (const name of ['invalid-yaml', 'top-level-list', 'size-suffix-mb', 'mfa-with-password-login']) {
  test(`bad values ${name} through bin/mxstack.js: exit code 2, same message`, () => {
    const fixture = fixtures.find((f) => f.name === name)!;
    const result = runCli(renderArgs(fixture.file, `${name}-spawned`));
    assertRefused(result, fixture.expect, fixture.path, outputDirOf(`${name}-spawned`));
  });
}

const badSets: { name: string; set: string[]; expect: string; path: string }[] = [
  { name: 'unknown nested key', set: ['synapse.server.nmae=example.com'], expect: 'Did you mean synapse.server.name?', path: 'synapse.server.nmae' },
  { name: 'empty path segment', set: ['synapse..server=1'], expect: 'empty key in the path', path: 'synapse..server' },
  { name: 'no equals sign', set: ['synapse.server.name'], expect: 'expected key=value', path: 'synapse.server.name' },
  { name: 'empty key', set: ['=example.com'], expect: 'expected key=value', path: '=example.com' },
  { name: 'non-numeric list index', set: ['synapse.server.sso.oidc.providers[first].idp_id=x'], expect: 'list index must be a number', path: 'synapse.server.sso.oidc.providers[first].idp_id' },
  { name: 'unclosed list index', set: ['synapse.server.sso.oidc.providers[0.idp_id=x'], expect: 'list index must be a number', path: 'synapse.server.sso.oidc.providers[0.idp_id' },
  { name: 'wrong type through --set', set: ['coturn.listeningPort=turn'], expect: 'expected a whole number, found a string', path: 'coturn.listeningPort' },
  { name: 'empty value', set: ['router.port='], expect: 'the value is empty', path: 'router.port' },
  { name: 'empty value of a list', set: ['auth.trustedProxies='], expect: 'the value is empty', path: 'auth.trustedProxies' },
  { name: 'out of range through --set', set: ['coturn.relayPortRange.max=99999'], expect: 'out of range', path: 'coturn.relayPortRange.max' },
  {
    name: 'refusal through --set',
    set: ['synapse.server.mfa.totp.enabled=true', 'synapse.server.passwordLogin.enabled=true'],
    expect: 'would bypass the second factor',
    path: 'synapse.server.passwordLogin.enabled',
  },
  { name: 'index into a mapping', set: ['synapse.server[0]=x'], expect: 'synapse.server is a mapping, not a list', path: 'synapse.server[0]' },
  {
    name: 'key into a list',
    set: ['synapse.server.sso.oidc.providers[0].idp_id=a', 'synapse.server.sso.oidc.providers.idp_name=b'],
    expect: 'synapse.server.sso.oidc.providers is a list',
    path: 'synapse.server.sso.oidc.providers.idp_name',
  },
  { name: 'wrong type of a whole group', set: ['synapse.server=example.com'], expect: 'expected a mapping, found a string', path: 'synapse.server' },
];

const setArgs = (bad: (typeof badSets)[number]) => [
  'render',
  '-f',
  join(valuesFixturesDir, 'minimal.yaml'),
  ...bad.set.flatMap((s) => ['--set', s]),
  '--output-dir',
  outputDirOf(`set-${bad.name.replace(/\W+/g, '-')}`),
];
let setResults: CliResult[] | undefined;

badSets.forEach((bad, index) => {
  test(`bad --set (${bad.name}) is refused naming ${bad.path}`, () => {
    setResults ??= runCliBatch(badSets.map(setArgs));
    assertRefused(setResults[index]!, bad.expect, bad.path, outputDirOf(`set-${bad.name.replace(/\W+/g, '-')}`));
  });
});

test('a bad --set through bin/mxstack.js: exit code 2', () => {
  const bad = badSets[0]!;
  const args = setArgs(bad).map((arg) => (arg.startsWith(workDir) ? `${arg}-spawned` : arg));
  assertRefused(runCli(args), bad.expect, bad.path, `${outputDirOf(`set-${bad.name.replace(/\W+/g, '-')}`)}-spawned`);
});

test('a missing values file is refused with exit code 2 naming the file', () => {
  const outputDir = join(workDir, 'out-missing-file');
  const missing = join(workDir, 'no-such-values.yaml');
  assertRefused(runCli(['render', '-f', missing, '--output-dir', outputDir]), 'no such file', missing, outputDir);
});

test('every problem of a file is reported at once, each on its own line', () => {
  const file = join(workDir, 'several-problems.yaml');
  writeFileSync(file, 'synapse:\n  replicaCount: 3\n  server:\n    nmae: x\ncoturn:\n  userQuota: -1\n');
  const result = runCli(['render', '-f', file]);
  assert.equal(result.status, 2);
  const lines = result.stderr.trim().split('\n');
  assert.equal(lines.length, 3, result.stderr);
  for (const path of ['synapse.replicaCount', 'synapse.server.nmae', 'coturn.userQuota']) {
    assert.equal(lines.filter((line) => line.startsWith(`error: ${path}:`)).length, 1, `one line for ${path}:\n${result.stderr}`);
  }
});

test('a refused render leaves an existing output directory exactly as it was', () => {
  const outputDir = join(workDir, 'kept');
  mkdirSync(outputDir);
  writeFileSync(join(outputDir, 'previous.yaml'), 'kind: ConfigMap\n');
  const result = runCli(['render', '-f', fixtures[0]!.file, '--output-dir', outputDir]);
  assert.equal(result.status, 2);
  assert.deepEqual(readdirSync(outputDir), ['previous.yaml']);
  assert.equal(readFileSync(join(outputDir, 'previous.yaml'), 'utf8'), 'kind: ConfigMap\n');
});

test('a secret written in values never appears in an error message', () => {
  const file = join(workDir, 'secret-in-error.yaml');
  const secret = 'fixture-s3cret-value-never-printed';
  // Both a type problem next to the secret and a refusal about the very provider holding it.
  writeFileSync(
    file,
    [
      'synapse:',
      '  server:',
      '    adminUser:',
      `      password: ${secret}`,
      '      admin: "yes"',
      '    email: {enabled: true, smtpHost: smtp.example.com, smtpPass: 12345}',
      '    sso:',
      '      enabled: true',
      '      oidc:',
      '        enabled: true',
      '        providers:',
      `          - {idp_id: okta, idp_name: Okta, issuer: "https://example.okta.com", client_id: x, client_secret: ${secret}, clientSecretRef: {name: a, key: b}}`,
      '',
    ].join('\n'),
  );
  const result = runCli(['render', '-f', file]);
  assert.equal(result.status, 2);
  assert.ok(!result.stderr.includes(secret), result.stderr);
  assert.ok(!result.stderr.includes('12345'), result.stderr);
});
