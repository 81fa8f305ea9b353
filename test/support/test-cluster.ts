/**
 * The Kubernetes cluster of the end-to-end tests (test/kubernetes/): the one MXSTACK_TEST_KUBECONFIG names
 * (kind, k3d, a real cluster), else the shared single-node test cluster of this machine
 * (MXSTACK_TEST_KUBE_TOOL, default /work/shared/kubernetes: `cluster up` is idempotent), else none, and
 * the suite says LOUDLY why it does not run.
 *
 * Images: the shared cluster gets the test images (test-images.ts) imported with `cluster import`, once
 * per archive. Another cluster gets them through MXSTACK_TEST_IMAGE_LOAD, a command that is given the
 * archive's path (e.g. `kind load image-archive`); without it, that cluster must be able to pull the
 * upstream images itself.
 *
 * Services are reached from the test host through their ClusterIP (the shared cluster's node routes
 * 198.19.0.0/16): a loopback TCP proxy forwards to the Service, so clients see a fixed local port.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { mxstackCacheDir } from '../../src/targets/local/runtime.js';
import { ensureTestImageArchive, sharedClusterDir, type ImageArchive } from './test-images.js';

export interface TestCluster {
  kubeconfig: string;
  /** The machine's shared test cluster (images imported with `cluster import`). */
  shared: boolean;
}

export interface KubectlRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

const sharedClusterTool = () => join(sharedClusterDir, 'cluster');

/** The cluster to test against, or why there is none (printed loudly by the suite). */
export function resolveTestCluster(): { cluster?: TestCluster; skip?: string } {
  const named = process.env.MXSTACK_TEST_KUBECONFIG;
  if (named) {
    if (!existsSync(named)) return { skip: `MXSTACK_TEST_KUBECONFIG names ${named}, which does not exist` };
    return { cluster: { kubeconfig: named, shared: false } };
  }
  if (!existsSync(sharedClusterTool())) {
    return { skip: `no cluster: set MXSTACK_TEST_KUBECONFIG to a kubeconfig (kind, k3d, a real cluster), or provide the shared test cluster at ${sharedClusterDir}` };
  }
  if (process.getuid?.() !== 0) return { skip: `the shared test cluster at ${sharedClusterDir} needs root (run the suite as root, or set MXSTACK_TEST_KUBECONFIG)` };
  if (spawnSync('sh', ['-c', 'command -v kubectl'], { stdio: 'ignore' }).status !== 0) return { skip: 'kubectl is not on PATH' };
  return { cluster: { kubeconfig: '', shared: true } };
}

/** `cluster up` (idempotent; installs its Debian packages on a fresh machine), returning the kubeconfig path. */
export function startSharedCluster(progress: (line: string) => void): string {
  const up = spawnSync(sharedClusterTool(), ['up'], { encoding: 'utf8', timeout: 15 * 60_000, maxBuffer: 16 * 1024 * 1024 });
  if (up.status !== 0) throw new Error(`${sharedClusterTool()} up failed (${up.status ?? up.signal}):\n${up.stderr.split('\n').slice(-30).join('\n')}`);
  progress(up.stderr.trim().split('\n').pop() ?? 'cluster up');
  return up.stdout.trim().split('\n').pop()!;
}

export function printSkipBanner(reason: string): void {
  const line = '!'.repeat(100);
  process.stderr.write(`\n${line}\n!!! THE KUBERNETES END-TO-END SUITE DID NOT RUN: ${reason}\n${line}\n\n`);
}

export function kubectl(cluster: TestCluster, args: readonly string[], options: { stdin?: string; timeoutMs?: number } = {}): Promise<KubectlRun> {
  return new Promise((resolve, reject) => {
    const child = spawn('kubectl', [...args], { env: { ...process.env, KUBECONFIG: cluster.kubeconfig }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
    child.stdin.end(options.stdin ?? '');
  });
}

export async function kubectlOk(cluster: TestCluster, args: readonly string[], options: { stdin?: string; timeoutMs?: number } = {}): Promise<string> {
  const result = await kubectl(cluster, args, options);
  if (result.status !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${result.status}): ${result.stderr.trim()}`);
  return result.stdout;
}

/** A namespace of the test's own, with Pod Security "restricted" enforced (what the manifests promise to pass). */
export async function createTestNamespace(cluster: TestCluster): Promise<string> {
  const name = `${process.env.MXSTACK_TEST_NAMESPACE_PREFIX ?? 'mxstack-e2e'}-${randomBytes(3).toString('hex')}`;
  await kubectlOk(cluster, ['create', 'namespace', name]);
  await kubectlOk(cluster, ['label', 'namespace', name, 'pod-security.kubernetes.io/enforce=restricted', 'pod-security.kubernetes.io/warn=restricted']);
  return name;
}

export async function deleteTestNamespace(cluster: TestCluster, name: string): Promise<void> {
  await kubectl(cluster, ['delete', 'namespace', name, '--wait=true', '--timeout=180s'], { timeoutMs: 200_000 });
}

/** Image names containerd of the shared cluster holds. */
function sharedClusterImages(): string[] {
  const listed = spawnSync(sharedClusterTool(), ['images'], { encoding: 'utf8' });
  return listed.status === 0 ? listed.stdout.split('\n').filter(Boolean) : [];
}

/** containerd's full name of a short reference (docker.io/library/ for official images). */
export function normalizedImageName(name: string): string {
  const firstPart = name.split('/')[0]!;
  const hasRegistry = name.includes('/') && (firstPart.includes('.') || firstPart.includes(':') || firstPart === 'localhost');
  if (hasRegistry) return name;
  return name.includes('/') ? `docker.io/${name}` : `docker.io/library/${name}`;
}

export interface LoadedImages extends ImageArchive {
  importSeconds: number;
}

/**
 * Builds (or reuses) the image archive and puts it where the cluster's kubelet finds it. The shared
 * cluster is skipped when it already holds every name from this very archive (a marker per kubeconfig).
 */
export function loadTestImages(cluster: TestCluster, progress: (line: string) => void): LoadedImages {
  const archive = ensureTestImageArchive(progress);
  const started = Date.now();
  const markerDir = join(mxstackCacheDir(), 'kubernetes-test-images');
  const marker = join(markerDir, `imported-${createHash('sha256').update(cluster.kubeconfig).digest('hex').slice(0, 12)}`);
  if (cluster.shared) {
    const present = new Set(sharedClusterImages());
    const upToDate = existsSync(marker) && readFileSync(marker, 'utf8').trim() === archive.key && archive.images.every((image) => present.has(normalizedImageName(image.name)));
    if (!upToDate) {
      progress(`importing ${archive.path} into the shared cluster`);
      const imported = spawnSync(sharedClusterTool(), ['import', archive.path], { encoding: 'utf8', timeout: 15 * 60_000, maxBuffer: 16 * 1024 * 1024 });
      if (imported.status !== 0) throw new Error(`cluster import failed: ${imported.stderr.trim()}`);
      mkdirSync(markerDir, { recursive: true });
      writeFileSync(marker, `${archive.key}\n`);
    }
  } else if (process.env.MXSTACK_TEST_IMAGE_LOAD) {
    progress(`loading the images with ${process.env.MXSTACK_TEST_IMAGE_LOAD} ${archive.path}`);
    const loaded = spawnSync('sh', ['-c', `${process.env.MXSTACK_TEST_IMAGE_LOAD} "$1"`, 'sh', archive.path], { encoding: 'utf8', timeout: 15 * 60_000 });
    if (loaded.status !== 0) throw new Error(`MXSTACK_TEST_IMAGE_LOAD failed: ${loaded.stderr.trim()}`);
  } else {
    progress('MXSTACK_TEST_IMAGE_LOAD is not set: the cluster must pull the images the manifests name');
  }
  return { ...archive, importSeconds: (Date.now() - started) / 1000 };
}

export interface ServiceProxy {
  port: number;
  /** Forget the Service's address (after it was deleted and created again). */
  refresh(): void;
  close(): Promise<void>;
}

/**
 * A loopback TCP proxy to one port of a Service's ClusterIP, looked up when first needed (and again after
 * refresh() or a failed connection): the Service may not exist yet when the proxy starts.
 */
export async function startServiceProxy(cluster: TestCluster, namespace: string, service: string, servicePort: number, localPort: number): Promise<ServiceProxy> {
  let address: Promise<string> | undefined;
  const lookup = () =>
    (address ??= kubectlOk(cluster, ['get', 'service', service, '-n', namespace, '-o', 'jsonpath={.spec.clusterIP}']).then((ip) => {
      if (!ip.trim()) throw new Error(`service ${service} has no ClusterIP`);
      return ip.trim();
    }));
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.pause();
    lookup().then(
      (ip) => {
        const upstream = connect({ host: ip, port: servicePort });
        sockets.add(upstream);
        upstream.on('close', () => sockets.delete(upstream));
        upstream.on('error', () => {
          address = undefined;
          client.destroy();
        });
        client.on('error', () => upstream.destroy());
        upstream.on('connect', () => {
          client.pipe(upstream);
          upstream.pipe(client);
          client.resume();
        });
      },
      () => {
        address = undefined;
        client.destroy();
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(localPort, '127.0.0.1', resolve);
  });
  return {
    port: localPort,
    refresh: () => (address = undefined),
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** The ClusterIP of a Service (for UDP, which the proxy does not carry: TURN is reached directly). */
export async function serviceClusterIp(cluster: TestCluster, namespace: string, service: string): Promise<string> {
  return (await kubectlOk(cluster, ['get', 'service', service, '-n', namespace, '-o', 'jsonpath={.spec.clusterIP}'])).trim();
}
