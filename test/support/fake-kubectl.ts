/**
 * The recording stand-in for kubectl (test/support/fake-kubectl/fake-kubectl.mjs) for tests that drive the
 * Kubernetes target adapter in this process: its rules are written to a fresh directory and the stand-in
 * is put first on PATH until restore().
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The directory holding the stand-in `kubectl`: put it first on a child process's PATH. */
export const fakeKubectlDir = fileURLToPath(new URL('./fake-kubectl/', import.meta.url));

export interface FakeKubectlCall {
  argv: string[];
  stdin: string;
  /** The contents of the file named by --patch-file, when there was one. */
  patchFile?: string;
}

export interface FakeKubectl {
  /** Every invocation so far, in order. */
  calls(): FakeKubectlCall[];
  /** PATH and FAKE_KUBECTL_DIR as they were; the rules and the record are removed. */
  restore(): void;
}

/** Answers this process's kubectl invocations by `rules` (the stand-in's script.json format). */
export function installFakeKubectl(rules: unknown[]): FakeKubectl {
  const dir = mkdtempSync(join(tmpdir(), 'mxstack-fake-kubectl-'));
  writeFileSync(join(dir, 'script.json'), JSON.stringify(rules));
  const saved = { PATH: process.env.PATH, FAKE_KUBECTL_DIR: process.env.FAKE_KUBECTL_DIR };
  process.env.PATH = `${fakeKubectlDir}:${process.env.PATH}`;
  process.env.FAKE_KUBECTL_DIR = dir;
  return {
    calls: () =>
      readFileSync(join(dir, 'calls.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as FakeKubectlCall),
    restore: () => {
      process.env.PATH = saved.PATH;
      if (saved.FAKE_KUBECTL_DIR === undefined) delete process.env.FAKE_KUBECTL_DIR;
      else process.env.FAKE_KUBECTL_DIR = saved.FAKE_KUBECTL_DIR;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
