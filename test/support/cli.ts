/** Runs the real command line (`node bin/mxstack.js ...`) as a user would, for tests. */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const projectRoot = fileURLToPath(new URL('../../', import.meta.url));
export const cliEntry = fileURLToPath(new URL('../../bin/mxstack.js', import.meta.url));

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Milliseconds before the run is killed (a hung command fails the test instead of the suite). */
  timeoutMs?: number;
}

export function runCli(args: readonly string[], options: CliOptions = {}): CliResult {
  const result = spawnSync(process.execPath, [cliEntry, ...args], {
    cwd: options.cwd ?? projectRoot,
    env: { ...process.env, MXSTACK_DEBUG: '', ...options.env },
    encoding: 'utf8',
    timeout: options.timeoutMs ?? 60_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (result.error) throw result.error;
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** A line that looks like a JavaScript stack frame: users must never see one. */
export const stackFramePattern = /^\s+at .+(\(.*:\d+:\d+\)|:\d+:\d+)$/m;

/**
 * Several invocations of the real entry point in one Node process (see cli-batch.ts): for checks that
 * need many runs but no process isolation between them.
 */
export function runCliBatch(invocations: readonly (readonly string[])[], options: CliOptions = {}): CliResult[] {
  const batchEntry = fileURLToPath(new URL('./cli-batch.ts', import.meta.url));
  const result = spawnSync(process.execPath, ['--import', 'tsx', batchEntry], {
    cwd: options.cwd ?? projectRoot,
    env: { ...process.env, MXSTACK_DEBUG: '', ...options.env },
    input: JSON.stringify(invocations),
    encoding: 'utf8',
    timeout: options.timeoutMs ?? 120_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (result.error) throw result.error;
  if (result.status !== 0) throw new Error(`the batch runner failed (${result.status}):\n${result.stderr}`);
  return JSON.parse(result.stdout) as CliResult[];
}
