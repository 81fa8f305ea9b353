/**
 * A real local stack for integration tests: `mxstack up --state-dir <temp dir>`, its `status --output json`,
 * `down`, and clean-up that always happens (on failure too, and at process exit for a stack a test forgot).
 *
 *   const stack = await startLocalStack({ sets: ['synapse.server.registration.enabled=true'] });
 *   after(() => stack.dispose());
 *   const { endpoints } = stack.status;   // endpoints.client, .wellKnown, .metrics, .turn; adminCredentialsFile
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LocalStackStatus } from '../../src/targets/local/status.js';
import { workerPresets, type WorkerPoolName, type WorkerPresetName } from '../../src/values/worker-pools.js';
import { elementReleaseUrlVariable } from '../../src/targets/local/element-release.js';
import { cliEntry, projectRoot, type CliResult } from './cli.js';

export type { LocalStackStatus };

export interface AdminCredentials {
  user_id: string;
  password: string;
}

/**
 * Tests never reach the Internet: once a digest is pinned for Element Web's release, `up` would download it.
 * Unless a test serves its own archive, the download goes to a loopback port nothing can listen on (1 is
 * one of fetch's blocked ports), and `up` takes the offline path.
 */
const noInternetUrl = 'http://127.0.0.1:1/tests-never-download-element-web.tar.gz';

/** Runs the real command line without blocking the event loop (several stacks can start at once). */
export function runCliAsync(args: readonly string[], options: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  const timeoutMs = options.timeoutMs ?? 600_000;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliEntry, ...args], {
      cwd: projectRoot,
      env: { ...process.env, MXSTACK_DEBUG: '', [elementReleaseUrlVariable]: process.env[elementReleaseUrlVariable] ?? noInternetUrl, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`mxstack ${args.join(' ')} did not finish within ${timeoutMs / 1000} s\n${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

/** State directories whose stack may still run: stopped synchronously if the test process exits first. */
const liveStateDirs = new Set<string>();
function stopLiveStacks(): void {
  for (const stateDir of liveStateDirs) {
    spawnSync(process.execPath, [cliEntry, 'down', '--state-dir', stateDir], { cwd: projectRoot, stdio: 'ignore', timeout: 120_000 });
  }
  liveStateDirs.clear();
}
process.on('exit', stopLiveStacks);
// An interrupted test run (Ctrl-C, the runner's timeout) stops its stacks too: supervisors are detached.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    stopLiveStacks();
    process.exit(130);
  });
}

/** The synapse.workers preset the integration suites that take one run with (MXSTACK_TEST_WORKERS_PRESET; default none, the single process). */
export const testWorkersPreset = process.env.MXSTACK_TEST_WORKERS_PRESET ?? 'none';

/** The test's preset as `--set` assignments (none for the single process). */
export const workersPresetSets = (): string[] => (testWorkersPreset === 'none' ? [] : [`synapse.workers.preset=${testWorkersPreset}`]);

/** Whether the test's preset runs a process of this pool; where it runs none, the main process does the pool's work. */
export const testPresetRuns = (pool: WorkerPoolName): boolean => (workerPresets[testWorkersPreset as WorkerPresetName]?.[pool] ?? 0) > 0;

export interface StartOptions {
  /** `--set key=value` assignments. */
  sets?: string[];
  /** `-f FILE` values files. */
  valuesFiles?: string[];
  /** Use this state directory (kept on dispose) instead of a new temporary one (removed on dispose). */
  stateDir?: string;
  timeoutMs?: number;
}

export interface LocalStackHandle {
  stateDir: string;
  /** The status right after the last successful `up`. */
  status: LocalStackStatus;
  /** What the last successful `up` printed. */
  upResult: CliResult;
  /** `mxstack status --output json`, now. */
  readStatus(): Promise<LocalStackStatus>;
  adminCredentials(): AdminCredentials;
  /** `mxstack up` again (after `down`), with the same values; throws when it fails. */
  up(): Promise<CliResult>;
  /** `mxstack down`; throws when it fails. */
  down(): Promise<CliResult>;
  /** Stops the stack (if running) and removes a temporary state directory. Safe to call twice. */
  dispose(): Promise<void>;
}

const describe = (args: readonly string[], result: CliResult) =>
  `mxstack ${args.join(' ')} exited with ${result.status}\n--- stderr\n${result.stderr}\n--- stdout\n${result.stdout}`;

export async function readLocalStackStatus(stateDir: string): Promise<LocalStackStatus> {
  const args = ['status', '--state-dir', stateDir, '--output', 'json'];
  const result = await runCliAsync(args, { timeoutMs: 60_000 });
  if (result.status !== 0) throw new Error(describe(args, result));
  return JSON.parse(result.stdout) as LocalStackStatus;
}

/** Starts a stack and waits until `up` reports it healthy. On failure it is stopped and removed before throwing. */
export async function startLocalStack(options: StartOptions = {}): Promise<LocalStackHandle> {
  const temporaryParent = options.stateDir ? undefined : mkdtempSync(join(tmpdir(), 'mxstack-stack-'));
  // mkdtemp makes it 0700: the auth service (2FA) runs on this machine as its own user and must enter it.
  if (temporaryParent) chmodSync(temporaryParent, 0o711);
  const stateDir = options.stateDir ?? join(temporaryParent!, 'state');
  const upArgs = [
    'up',
    '--state-dir',
    stateDir,
    ...(options.valuesFiles ?? []).flatMap((file) => ['-f', file]),
    ...(options.sets ?? []).flatMap((assignment) => ['--set', assignment]),
  ];
  let disposed = false;
  const down = async (): Promise<CliResult> => {
    const args = ['down', '--state-dir', stateDir];
    const result = await runCliAsync(args, { timeoutMs: 240_000 });
    if (result.status !== 0) throw new Error(describe(args, result));
    liveStateDirs.delete(stateDir);
    return result;
  };
  const dispose = async () => {
    if (disposed) return;
    disposed = true;
    try {
      await down();
    } finally {
      if (temporaryParent) rmSync(temporaryParent, { recursive: true, force: true });
    }
  };
  const handle: LocalStackHandle = {
    stateDir,
    status: undefined as unknown as LocalStackStatus,
    upResult: undefined as unknown as CliResult,
    readStatus: () => readLocalStackStatus(stateDir),
    adminCredentials: () => JSON.parse(readFileSync(join(stateDir, 'admin-credentials.json'), 'utf8')) as AdminCredentials,
    async up() {
      liveStateDirs.add(stateDir);
      const result = await runCliAsync(upArgs, { timeoutMs: options.timeoutMs ?? 600_000 });
      if (result.status !== 0) throw new Error(describe(upArgs, result));
      handle.status = await readLocalStackStatus(stateDir);
      handle.upResult = result;
      return result;
    },
    down,
    dispose,
  };
  try {
    await handle.up();
  } catch (error) {
    await dispose().catch(() => undefined);
    throw error;
  }
  return handle;
}
