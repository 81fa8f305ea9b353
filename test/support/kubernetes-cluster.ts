/**
 * The real Kubernetes cluster the tests use, shared by the dry-run test (unit stage) and the end-to-end
 * suite.
 *
 * Which cluster:
 * 1. `MXSTACK_TEST_KUBECONFIG=<file>`: that cluster (kind, k3d, a real one). The tests create their own
 *    namespaces there (prefix `mxstack-test-`) and delete them afterwards; nothing else is touched.
 * 2. Otherwise the shared single-node test cluster of these machines (`shared/kubernetes/` beside the clone,
 *    found in the project root's parent or an ancestor of it), started with its idempotent `cluster up`
 *    (needs root; about 20 s cold, under a second when it runs already). It is never stopped by the tests:
 *    other suites on the machine use it too.
 * 3. Neither: the cluster tests skip, with the reason on stderr and in the skipped test.
 *
 * CRDs (cert-manager, Gateway API, ServiceMonitor, CloudNativePG) come from `MXSTACK_TEST_CRDS_DIR` or the
 * shared tool's `crds/` and are installed with server-side apply (client-side apply of the CNPG Pooler CRD
 * exceeds the 256 KiB annotation limit).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The environment variable naming the kubeconfig of the cluster to test against. */
export const testKubeconfigVariable = 'MXSTACK_TEST_KUBECONFIG';
/** The environment variable naming a folder of CRD manifests to install (default: the shared tool's crds/). */
export const testCrdsDirVariable = 'MXSTACK_TEST_CRDS_DIR';

export const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export interface TestCluster {
  kubeconfig: string;
  /** Where it came from, for messages: the variable or the shared tool's path. */
  origin: string;
  /** The CRD manifests folder, when one was found. */
  crdsDir?: string;
}

export type ClusterAvailability = { available: true; cluster: TestCluster } | { available: false; reason: string };

/** `shared/kubernetes` in the project root's parent or the nearest ancestor that has one. */
export function findSharedClusterTool(start = projectRoot): string | undefined {
  for (let dir = dirname(start); ; dir = dirname(dir)) {
    const candidate = join(dir, 'shared', 'kubernetes');
    if (existsSync(join(candidate, 'cluster'))) return candidate;
    if (dirname(dir) === dir) return undefined;
  }
}

interface ProcessResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export function runProcess(command: string, args: readonly string[], options: { stdin?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<ProcessResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, [...args], { stdio: ['pipe', 'pipe', 'pipe'], env: options.env ?? process.env });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    const timer = setTimeout(() => child.kill('SIGTERM'), options.timeoutMs ?? 5 * 60_000);
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({
        exitCode: code ?? (signal ? 124 : 1),
        stdout: Buffer.concat(stdout).toString('utf8'),
        stderr: Buffer.concat(stderr).toString('utf8'),
      });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.stdin ?? '');
  });
}

const lastLines = (text: string, count: number) => text.trim().split('\n').slice(-count).join('\n');

function crdsDirFor(tool: string | undefined): string | undefined {
  const fromEnv = process.env[testCrdsDirVariable];
  if (fromEnv) return fromEnv;
  return tool && existsSync(join(tool, 'crds')) ? join(tool, 'crds') : undefined;
}

async function locateCluster(): Promise<ClusterAvailability> {
  const tool = findSharedClusterTool();
  const crdsDir = crdsDirFor(tool);
  const named = process.env[testKubeconfigVariable];
  if (named) {
    if (!existsSync(named)) return { available: false, reason: `${testKubeconfigVariable}=${named}: no such file` };
    return { available: true, cluster: { kubeconfig: named, origin: `${testKubeconfigVariable}=${named}`, ...(crdsDir ? { crdsDir } : {}) } };
  }
  if (!tool) {
    return { available: false, reason: `no cluster: set ${testKubeconfigVariable} to a kubeconfig (kind, k3d, ...), or place the shared test cluster tool at ../shared/kubernetes` };
  }
  if (process.getuid?.() !== 0) return { available: false, reason: `the shared test cluster (${tool}) needs root, and ${testKubeconfigVariable} is not set` };
  // The daemons `cluster up` starts outlive this suite: they must not inherit its TMPDIR (scripts/test.sh
  // makes one per run and removes it at the end; runc then fails every exec probe and `kubectl exec`).
  const { TMPDIR: _suiteTmp, ...environment } = process.env;
  const up = await runProcess(join(tool, 'cluster'), ['up'], { timeoutMs: 10 * 60_000, env: environment });
  const kubeconfig = up.stdout.trim().split('\n').pop() ?? '';
  if (up.exitCode !== 0 || !existsSync(kubeconfig)) {
    return { available: false, reason: `${tool}/cluster up failed (exit ${up.exitCode}): ${lastLines(up.stderr || up.stdout, 8)}` };
  }
  return { available: true, cluster: { kubeconfig, origin: `${tool}/cluster up`, ...(crdsDir ? { crdsDir } : {}) } };
}

let located: Promise<ClusterAvailability> | undefined;

/**
 * The test cluster, located (and the shared one started) once per process. When none can run, the reason
 * is also written to stderr, loudly, so a skipped suite is never mistaken for a passing one.
 */
export function testCluster(): Promise<ClusterAvailability> {
  located ??= locateCluster().then((availability) => {
    if (!availability.available) process.stderr.write(`\n*** Kubernetes tests SKIPPED: ${availability.reason}\n\n`);
    return availability;
  });
  return located;
}

/** kubectl against the test cluster (never the user's own kubeconfig). */
export function kubectl(cluster: TestCluster, args: readonly string[], options: { stdin?: string; timeoutMs?: number } = {}): Promise<ProcessResult> {
  return runProcess('kubectl', [`--kubeconfig=${cluster.kubeconfig}`, ...args], options);
}

async function kubectlOrThrow(cluster: TestCluster, args: readonly string[], options: { stdin?: string; timeoutMs?: number } = {}): Promise<ProcessResult> {
  const result = await kubectl(cluster, args, options);
  if (result.exitCode !== 0) throw new Error(`kubectl ${args.join(' ')} failed (exit ${result.exitCode}): ${lastLines(result.stderr || result.stdout, 8)}`);
  return result;
}

/** Installs the CRDs (server-side apply, idempotent) and waits until the API server serves them. */
export async function installCrds(cluster: TestCluster): Promise<void> {
  if (!cluster.crdsDir) throw new Error(`no CRD manifests: set ${testCrdsDirVariable} to a folder of them`);
  await kubectlOrThrow(cluster, ['apply', '--server-side', '--field-manager=mxstack-tests', '--force-conflicts', `--filename=${cluster.crdsDir}`]);
  await kubectlOrThrow(cluster, ['wait', '--for=condition=Established', '--timeout=60s', `--filename=${cluster.crdsDir}`]);
}

/** The Pod Security labels of a namespace held to the "restricted" profile in all three modes. */
export const restrictedNamespaceLabels = {
  'pod-security.kubernetes.io/enforce': 'restricted',
  'pod-security.kubernetes.io/warn': 'restricted',
  'pod-security.kubernetes.io/audit': 'restricted',
} as const;

/** Marks every namespace a test creates, so leftovers of an interrupted run can be found and removed. */
export const testNamespaceLabel = 'mxstack.dev/test-namespace';

export interface TestNamespace {
  name: string;
  delete(): Promise<void>;
}

/** The environment variable giving the test namespaces another prefix than `mxstack-test-` (runs that share a cluster tell theirs apart). */
export const testNamespacePrefixVariable = 'MXSTACK_TEST_NAMESPACE_PREFIX';

/** A fresh namespace `<prefix><purpose>-<random>` (prefix `mxstack-test-` by default), Pod Security "restricted" unless other labels are given. */
export async function createTestNamespace(cluster: TestCluster, purpose: string, labels: Record<string, string> = restrictedNamespaceLabels): Promise<TestNamespace> {
  const prefix = process.env[testNamespacePrefixVariable] || 'mxstack-test-';
  const name = `${prefix}${purpose}-${randomBytes(3).toString('hex')}`;
  const manifest = { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: { ...labels, [testNamespaceLabel]: 'true' } } };
  await kubectlOrThrow(cluster, ['create', '--filename=-'], { stdin: JSON.stringify(manifest) });
  return {
    name,
    delete: async () => {
      await kubectlOrThrow(cluster, ['delete', 'namespace', name, '--ignore-not-found', '--wait=false']);
    },
  };
}
