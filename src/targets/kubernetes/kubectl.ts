/**
 * The one place that runs kubectl. Argument lists are built by pure functions (tested exactly); objects,
 * Secrets included, always travel on stdin, so no secret value is ever on a command line.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Where kubectl points: the user's kubeconfig and context, and the release's namespace. */
export interface KubectlConnection {
  kubeconfig?: string;
  context?: string;
  namespace: string;
}

export interface KubectlResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** The field manager that owns every field mxstack applies (server-side apply). */
export const fieldManager = 'mxstack';

/** The oldest kubectl whose server-side apply and diff mxstack relies on. */
export const minimumKubectlVersion = { major: 1, minor: 27 } as const;

export const kubectlInstallHint =
  'Install it from Debian\'s packages: `sudo apt-get install kubectl` (Debian 12\'s older `kubernetes-client` package is kubectl 1.20, too old for mxstack).';

export class KubectlNotFoundError extends Error {
  constructor() {
    super(`kubectl was not found on PATH. ${kubectlInstallHint}`);
    this.name = 'KubectlNotFoundError';
  }
}

/** kubectl ran and failed; the message names the command (never a secret: none is on a command line). */
export class KubectlError extends Error {
  constructor(
    readonly args: readonly string[],
    readonly result: KubectlResult,
  ) {
    super(`kubectl ${args.join(' ')} failed (exit ${result.exitCode}): ${firstLines(result.stderr || result.stdout, 6) || 'no output'}`);
    this.name = 'KubectlError';
  }
}

function firstLines(text: string, count: number): string {
  return text.trim().split('\n').slice(0, count).join('\n');
}

// ---------------------------------------------------------------------------------------------------------
// Argument builders (pure)
// ---------------------------------------------------------------------------------------------------------

/** Flags that select the cluster: placed first on every invocation. */
export function connectionArgs(connection: KubectlConnection): string[] {
  return [
    ...(connection.kubeconfig ? [`--kubeconfig=${connection.kubeconfig}`] : []),
    ...(connection.context ? [`--context=${connection.context}`] : []),
  ];
}

const namespaceArg = (connection: KubectlConnection) => `--namespace=${connection.namespace}`;

export function clientVersionArgs(): string[] {
  return ['version', '--client', '--output=json'];
}

export interface ApplyOptions {
  /** Server-side dry run: the API server validates and admits, nothing is stored. */
  dryRun?: boolean;
  /** Take fields owned by another manager (Helm, kubectl) instead of failing with a conflict. */
  forceConflicts?: boolean;
}

/** `kubectl apply --server-side`: objects on stdin, one `kind/name` per applied object on stdout. */
export function applyArgs(connection: KubectlConnection, options: ApplyOptions = {}): string[] {
  return [
    ...connectionArgs(connection),
    'apply',
    namespaceArg(connection),
    '--server-side',
    `--field-manager=${fieldManager}`,
    '--validate=strict',
    ...(options.forceConflicts ? ['--force-conflicts'] : []),
    ...(options.dryRun ? ['--dry-run=server'] : []),
    '--output=name',
    '--filename=-',
  ];
}

/** `kubectl diff --server-side`: exit 0 no differences, 1 differences, above 1 an error. */
export function diffArgs(connection: KubectlConnection, options: { forceConflicts?: boolean } = {}): string[] {
  return [
    ...connectionArgs(connection),
    'diff',
    namespaceArg(connection),
    '--server-side',
    `--field-manager=${fieldManager}`,
    ...(options.forceConflicts ? ['--force-conflicts'] : []),
    '--filename=-',
  ];
}

/** `kubectl create` of objects on stdin: fails when one already exists, so it never overwrites. */
export function createArgs(connection: KubectlConnection, options: { dryRun?: boolean } = {}): string[] {
  return [
    ...connectionArgs(connection),
    'create',
    namespaceArg(connection),
    ...(options.dryRun ? ['--dry-run=server'] : []),
    '--output=name',
    '--filename=-',
  ];
}

/**
 * A JSON merge patch read from a file (the patch may carry secret data: never on the command line). Not
 * /dev/stdin: a program's stdin from Node is a socket, which kubectl cannot open by that name (ENXIO).
 */
export function mergePatchArgs(connection: KubectlConnection, resource: string, patchFile: string, options: { dryRun?: boolean } = {}): string[] {
  return [
    ...connectionArgs(connection),
    'patch',
    resource,
    namespaceArg(connection),
    '--type=merge',
    `--patch-file=${patchFile}`,
    ...(options.dryRun ? ['--dry-run=server'] : []),
    '--output=name',
  ];
}

/** Applies a merge patch through a file only this user can read, in a private directory removed afterwards. */
export async function runMergePatch(connection: KubectlConnection, resource: string, patch: string, options: { dryRun?: boolean } = {}): Promise<KubectlResult> {
  const dir = mkdtempSync(join(tmpdir(), 'mxstack-patch-'));
  try {
    const file = join(dir, 'patch.json');
    writeFileSync(file, patch, { mode: 0o600 });
    return await runKubectl(mergePatchArgs(connection, resource, file, options));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface GetOptions {
  selector?: string;
  fieldSelector?: string;
  /** Missing objects give empty output instead of an error. */
  ignoreNotFound?: boolean;
  /** `json` by default; `jsonpath=...` or `go-template=...` to read only metadata. */
  output?: string;
}

export function getArgs(connection: KubectlConnection, resources: readonly string[], options: GetOptions = {}): string[] {
  return [
    ...connectionArgs(connection),
    'get',
    resources.join(','),
    namespaceArg(connection),
    ...(options.selector ? [`--selector=${options.selector}`] : []),
    ...(options.fieldSelector ? [`--field-selector=${options.fieldSelector}`] : []),
    ...(options.ignoreNotFound ? ['--ignore-not-found'] : []),
    `--output=${options.output ?? 'json'}`,
  ];
}

/** `kubectl get` of named objects (`deployment.apps/a service/b`), each a separate argument. */
export function getNamedArgs(connection: KubectlConnection, resources: readonly string[], options: { output?: string } = {}): string[] {
  return [...connectionArgs(connection), 'get', ...resources, namespaceArg(connection), '--ignore-not-found', `--output=${options.output ?? 'json'}`];
}

export interface DeleteOptions {
  timeoutSeconds?: number;
  dryRun?: boolean;
}

/** Deletes named objects (`kind.group/name`); already gone counts as deleted. */
export function deleteArgs(connection: KubectlConnection, resources: readonly string[], options: DeleteOptions = {}): string[] {
  return [
    ...connectionArgs(connection),
    'delete',
    ...resources,
    namespaceArg(connection),
    '--ignore-not-found',
    ...(options.timeoutSeconds !== undefined ? [`--timeout=${options.timeoutSeconds}s`] : []),
    ...(options.dryRun ? ['--dry-run=server'] : []),
  ];
}

/** Deletes every object of some kinds matching a label selector (the Helm release Secrets, claims). */
export function deleteBySelectorArgs(connection: KubectlConnection, resources: readonly string[], selector: string, options: DeleteOptions = {}): string[] {
  return [
    ...connectionArgs(connection),
    'delete',
    resources.join(','),
    namespaceArg(connection),
    `--selector=${selector}`,
    '--ignore-not-found',
    ...(options.timeoutSeconds !== undefined ? [`--timeout=${options.timeoutSeconds}s`] : []),
    ...(options.dryRun ? ['--dry-run=server'] : []),
  ];
}

// ---------------------------------------------------------------------------------------------------------
// Version check (pure)
// ---------------------------------------------------------------------------------------------------------

export interface KubectlVersion {
  major: number;
  minor: number;
  text: string;
}

/** Reads `kubectl version --client --output=json` (gitVersion like `v1.32.4` or `v1.32.4-dispatcher`). */
export function parseClientVersion(output: string): KubectlVersion {
  let gitVersion: unknown;
  try {
    gitVersion = (JSON.parse(output) as { clientVersion?: { gitVersion?: unknown } }).clientVersion?.gitVersion;
  } catch {
    gitVersion = undefined;
  }
  const match = typeof gitVersion === 'string' ? /^v?(\d+)\.(\d+)/.exec(gitVersion) : null;
  if (!match) throw new Error('cannot read the version of kubectl (`kubectl version --client --output=json` gave no clientVersion.gitVersion).');
  return { major: Number(match[1]), minor: Number(match[2]), text: (gitVersion as string).replace(/^v/, '') };
}

/** One sentence when this kubectl is too old, undefined when it will do. */
export function kubectlVersionProblem(version: KubectlVersion): string | undefined {
  const { major, minor } = minimumKubectlVersion;
  if (version.major > major || (version.major === major && version.minor >= minor)) return undefined;
  return `kubectl ${version.text} is too old: mxstack needs kubectl ${major}.${minor} or newer for server-side apply and diff. ${kubectlInstallHint}`;
}

// ---------------------------------------------------------------------------------------------------------
// Execution
// ---------------------------------------------------------------------------------------------------------

export interface RunOptions {
  /** Written to kubectl's stdin (manifests, patches). */
  stdin?: string;
  /** Exit codes that are not failures (kubectl diff exits 1 when there are differences). */
  acceptExitCodes?: readonly number[];
  /** Kill kubectl after this long (a hung API server must not hang mxstack). */
  timeoutMs?: number;
}

export async function runKubectl(args: readonly string[], options: RunOptions = {}): Promise<KubectlResult> {
  const accept = options.acceptExitCodes ?? [0];
  const result = await spawnKubectl(args, options);
  if (!accept.includes(result.exitCode)) throw new KubectlError(args, result);
  return result;
}

function spawnKubectl(args: readonly string[], options: RunOptions): Promise<KubectlResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('kubectl', [...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    const timer = setTimeout(() => child.kill('SIGTERM'), options.timeoutMs ?? 5 * 60_000);
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    child.on('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(error.code === 'ENOENT' ? new KubectlNotFoundError() : error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const text = { stdout: Buffer.concat(stdout).toString('utf8'), stderr: Buffer.concat(stderr).toString('utf8') };
      if (signal) {
        resolve({ exitCode: 124, stdout: text.stdout, stderr: `${text.stderr}\nkubectl was stopped (${signal}) after running too long.` });
        return;
      }
      resolve({ exitCode: code ?? 1, ...text });
    });
    // kubectl may exit before reading stdin (bad flags): ignore EPIPE, the exit code tells the story.
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.stdin ?? '');
  });
}

/** Runs `kubectl version --client` and refuses a missing or too old kubectl with one clear sentence. */
export async function checkKubectl(): Promise<KubectlVersion> {
  const result = await runKubectl(clientVersionArgs(), { timeoutMs: 30_000 });
  const version = parseClientVersion(result.stdout);
  const problem = kubectlVersionProblem(version);
  if (problem) throw new KubectlTooOldError(problem);
  return version;
}

export class KubectlTooOldError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KubectlTooOldError';
  }
}

// ---------------------------------------------------------------------------------------------------------
// Operations (mxstack secrets | users | rooms): exec, port-forward, scale, rollout (added for src/ops)
// ---------------------------------------------------------------------------------------------------------

/** `kubectl exec -i WORKLOAD -- argv`: stdin is passed through (secrets travel there, never in argv). */
export function execArgs(connection: KubectlConnection, workload: string, argv: readonly string[]): string[] {
  return [...connectionArgs(connection), 'exec', namespaceArg(connection), '-i', workload, '--', ...argv];
}

/** Starts kubectl with piped stdio for streaming (backup and restore stream `kubectl exec -i` through it). */
export function spawnKubectlStreaming(args: readonly string[]): ChildProcessWithoutNullStreams {
  return spawn('kubectl', [...args], { stdio: ['pipe', 'pipe', 'pipe'] });
}

/** `kubectl port-forward RESOURCE :PORT` on 127.0.0.1 (a free local port chosen by kubectl). */
export function portForwardArgs(connection: KubectlConnection, resource: string, remotePort: number): string[] {
  return [...connectionArgs(connection), 'port-forward', namespaceArg(connection), '--address=127.0.0.1', resource, `:${remotePort}`];
}

export function scaleArgs(connection: KubectlConnection, workload: string, replicas: number): string[] {
  return [...connectionArgs(connection), 'scale', namespaceArg(connection), `--replicas=${replicas}`, workload];
}

export function rolloutRestartArgs(connection: KubectlConnection, workload: string): string[] {
  return [...connectionArgs(connection), 'rollout', 'restart', namespaceArg(connection), workload];
}

export function rolloutStatusArgs(connection: KubectlConnection, workload: string, timeoutSeconds: number): string[] {
  return [...connectionArgs(connection), 'rollout', 'status', namespaceArg(connection), `--timeout=${timeoutSeconds}s`, workload];
}

/** The local port of `kubectl port-forward`'s first "Forwarding from 127.0.0.1:PORT -> ..." line. */
export function parseForwardedPort(line: string): number | undefined {
  const match = /Forwarding from 127\.0\.0\.1:(\d+) ->/.exec(line);
  return match ? Number(match[1]) : undefined;
}

export interface PortForward {
  localPort: number;
  close(): void;
}

/** Starts a port-forward and resolves once kubectl reports the local port; `close` ends it. */
export function openPortForward(connection: KubectlConnection, resource: string, remotePort: number, timeoutMs = 30_000): Promise<PortForward> {
  const args = portForwardArgs(connection, resource, remotePort);
  return new Promise((resolve, reject) => {
    const child = spawn('kubectl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let settled = false;
    const settle = (error?: Error, port?: number) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (error) {
        child.kill('SIGTERM');
        reject(error);
      } else resolve({ localPort: port!, close: () => child.kill('SIGTERM') });
    };
    const timer = setTimeout(() => settle(new KubectlError(args, { exitCode: 124, stdout: '', stderr: `${stderr}\nno port after ${timeoutMs / 1000} s` })), timeoutMs);
    child.stdout.on('data', (chunk: Buffer) => {
      for (const line of chunk.toString('utf8').split('\n')) {
        const port = parseForwardedPort(line);
        if (port !== undefined) settle(undefined, port);
      }
    });
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.on('error', (error: NodeJS.ErrnoException) => settle(error.code === 'ENOENT' ? new KubectlNotFoundError() : error));
    child.on('close', (code) => settle(new KubectlError(args, { exitCode: code ?? 1, stdout: '', stderr })));
  });
}
