/**
 * `backup verify` and `restore` given something that is no backup archive at all: one sentence naming the
 * path and what it is, exit code 2, nothing touched (and verify, which changes nothing, never says it did not).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliEntry, projectRoot, runCli, stackFramePattern, type CliResult } from '../support/cli.js';

const work = mkdtempSync(join(tmpdir(), 'mxstack-backup-cli-'));
test.after(() => rmSync(work, { recursive: true, force: true }));

const textFile = join(work, 'notarchive.txt');
writeFileSync(textFile, 'this is a note, not a backup\n');
const directory = join(work, 'a-directory');
mkdirSync(directory);
const stateDir = join(work, 'state');

function assertRefused(result: CliResult, sentence: string): void {
  assert.equal(result.status, 2, result.stderr);
  assert.equal(result.stderr.trim(), `error: ${sentence}`);
  assert.equal(result.stdout, '');
  assert.doesNotMatch(result.stderr, stackFramePattern);
  assert.equal(existsSync(stateDir), false, 'restore opened or created no stack');
}

const cases: [string, string, string][] = [
  ['a text file', textFile, `${textFile} is not an mxstack backup archive.`],
  ['/etc/services', '/etc/services', '/etc/services is not an mxstack backup archive.'],
  ['a directory', directory, `${directory} is a directory, not an mxstack backup archive.`],
  ['a missing file', join(work, 'missing.tar'), `${join(work, 'missing.tar')} cannot be read (no such file).`],
];

for (const [what, file, sentence] of cases) {
  test(`backup verify of ${what}: "${sentence}"`, () => assertRefused(runCli(['backup', 'verify', file]), sentence));
  test(`restore of ${what}: "${sentence}", before the stack is opened`, () => assertRefused(runCli(['restore', file, '--yes', '--state-dir', stateDir]), sentence));
}

test('an unreadable file: "cannot be read (permission denied)" (run as nobody; root reads everything)', { skip: process.getuid?.() !== 0 && 'needs root to switch to nobody' }, () => {
  const open = join(work, 'readable-dir');
  mkdirSync(open);
  chmodSync(work, 0o755);
  chmodSync(open, 0o755);
  const file = join(open, 'root-only.tar');
  writeFileSync(file, 'x'.repeat(1024), { mode: 0o600 });
  const result = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, cliEntry, 'backup', 'verify', file], {
    cwd: projectRoot,
    encoding: 'utf8',
    timeout: 60_000,
  });
  assertRefused({ status: result.status, stdout: result.stdout, stderr: result.stderr }, `${file} cannot be read (permission denied).`);
});
