/**
 * A recording stand-in for kubectl, put first on PATH by tests: no Kubernetes API server can run on these
 * machines, so the tests check the exact kubectl invocations instead.
 *
 * FAKE_KUBECTL_DIR holds:
 *   script.json  [{ "match": ["get", "namespace/matrix"], "stdinIncludes": "...", "times": 1,
 *                   "stdout": "...", "stderr": "...", "exit": 0 }, ...]
 *                Each `match` string must occur in the space-joined argv; the first rule that matches and
 *                is not used up answers. `"stdout": "@names"` answers `kind/name` for each object on stdin
 *                (what `--output=name` prints). No matching rule: exit 1 and say so on stderr.
 *   calls.jsonl  one {"argv": [...], "stdin": "..."} line per invocation (plus "patchFile": its contents for
 *                --patch-file), appended.
 *   used.json    how often each rule answered (for `times`).
 */
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';

const dir = process.env.FAKE_KUBECTL_DIR;
if (!dir) {
  process.stderr.write('fake kubectl: FAKE_KUBECTL_DIR is not set\n');
  process.exit(97);
}
const argv = process.argv.slice(2);
const stdin = process.stdin.isTTY ? '' : readFileSync(0, 'utf8');
// A merge patch travels in a file (see mergePatchArgs): recorded as patchFile, read as kubectl reads it.
const patchArg = argv.find((arg) => arg.startsWith('--patch-file='));
const patchFile = patchArg ? readFileSync(patchArg.slice('--patch-file='.length), 'utf8') : undefined;
appendFileSync(join(dir, 'calls.jsonl'), `${JSON.stringify({ argv, stdin, ...(patchFile !== undefined ? { patchFile } : {}) })}\n`);

const rules = JSON.parse(readFileSync(join(dir, 'script.json'), 'utf8'));
const usedFile = join(dir, 'used.json');
const used = existsSync(usedFile) ? JSON.parse(readFileSync(usedFile, 'utf8')) : {};
const joined = argv.join(' ');

const index = rules.findIndex(
  (rule, i) =>
    rule.match.every((part) => joined.includes(part)) &&
    (rule.stdinIncludes === undefined || stdin.includes(rule.stdinIncludes)) &&
    (rule.times === undefined || (used[i] ?? 0) < rule.times),
);
if (index < 0) {
  process.stderr.write(`fake kubectl: no scripted answer for: kubectl ${joined}\n`);
  process.exit(1);
}
used[index] = (used[index] ?? 0) + 1;
writeFileSync(usedFile, JSON.stringify(used));

const rule = rules[index];
const namesOnStdin = () =>
  parseAllDocuments(stdin)
    .map((document) => document.toJS())
    .filter((object) => object && object.kind)
    .map((object) => `${object.kind.toLowerCase()}/${object.metadata.name}\n`)
    .join('');
process.stdout.write(rule.stdout === '@names' ? namesOnStdin() : (rule.stdout ?? ''));
process.stderr.write(rule.stderr ?? '');
process.exit(rule.exit ?? 0);
