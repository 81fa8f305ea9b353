/**
 * Stacks for the component configuration tests: the Kubernetes placement as the target builds it, and a
 * local-style placement made by hand (loopback addresses, files under one directory), plus helpers to
 * check generated files with the real programs of the runtime root filesystem when it exists.
 */
import { runtimeDir } from '../../src/targets/local/runtime.js';
import { createPortChooser } from '../../src/targets/local/ports.js';
import { PortReservations } from '../../src/targets/local/port-reservations.js';
import { spawn, spawnSync } from 'node:child_process';
import type { TestContext } from 'node:test';
import { existsSync, mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadValues } from '../../src/values/load.js';
import { compileStack } from '../../src/stack/compile.js';
import type { Placement, Stack } from '../../src/stack/model.js';
import { kubernetesPlacement } from '../../src/targets/kubernetes/placement.js';

type Tree = Record<string, unknown>;

export function kubernetesStack(base: Tree = {}): Stack {
  const values = loadValues({ base });
  return compileStack(values, kubernetesPlacement(values, 'mxstack'));
}

type Ports = Placement['ports'];

/** What the local target will look like: everything on 127.0.0.1, files under `dir`. */
export function localPlacement(dir: string, firstPort = 38000, chosen: Partial<Ports> = {}): Placement {
  const host = '127.0.0.1';
  return {
    target: 'local',
    bindAddress: host,
    hosts: { synapse: host, postgresql: host, element: host, router: host, coturn: host, auth: host, redis: host },
    ports: {
      synapseHttp: firstPort,
      synapseMetrics: firstPort + 1,
      postgresql: firstPort + 2,
      element: firstPort + 3,
      router: firstPort + 4,
      routerMetrics: firstPort + 5,
      turn: firstPort + 6,
      turns: firstPort + 7,
      turnMetrics: firstPort + 8,
      relayMin: firstPort + 10,
      relayMax: firstPort + 30,
      auth: firstPort + 31,
      authAdmin: firstPort + 32,
      synapseReplication: firstPort + 33,
      redis: firstPort + 34,
      routerFederation: firstPort + 35,
      ...chosen,
    },
    paths: {
      synapseConfigDir: join(dir, 'synapse/config'),
      synapseSecretsDir: join(dir, 'synapse/secrets'),
      signingKey: join(dir, 'synapse/keys/signing.key'),
      mediaStore: join(dir, 'synapse/media'),
      synapseDataDir: join(dir, 'synapse/data'),
      synapseRuntimeDir: join(dir, 'synapse/run'),
      routerConfigDir: join(dir, 'router'),
      routerFederationTlsDir: join(dir, 'router/federation-tls'),
      coturnTlsDir: join(dir, 'coturn/tls'),
      authConfigDir: join(dir, 'auth/config'),
      authSecretsDir: join(dir, 'auth/secrets'),
      redisConfigDir: join(dir, 'redis/config'),
      redisSecretsDir: join(dir, 'redis/secrets'),
      redisDataDir: join(dir, 'redis/data'),
    },
    synapseWorkers: { kind: 'local', firstPort: firstPort + 40, host },
    coturnRelayAddress: host,
  };
}

/** A local stack serving element.webRoot when the values give one (as `up` does). */
export function localStack(base: Tree = {}, dir = '/tmp/mxstack-local', firstPort?: number, chosen: Partial<Ports> = {}): Stack {
  const values = loadValues({ base });
  const placement = localPlacement(dir, firstPort, chosen);
  const { webRoot } = values.element;
  return compileStack(values, webRoot === undefined ? placement : { ...placement, paths: { ...placement.paths, elementWebRoot: webRoot } });
}

/** Ports this test process handed out stay claimed until it exits, so stacks started meanwhile choose others. */
const testPortClaims = new PortReservations();
process.on('exit', () => testPortClaims.releaseAll());
const handedOut = new Set<number>();

/**
 * A loopback port free right now for TCP (and UDP when asked), never the same twice on this machine while
 * this process runs: chosen like a local stack's ports (below the kernel's ephemeral range, where outgoing
 * connections would take it before the server binds it) and claimed against every other chooser.
 */
export async function freeLoopbackPort(alsoUdp = false): Promise<number> {
  return createPortChooser(handedOut, testPortClaims).single(alsoUdp ? ['tcp', 'udp'] : ['tcp']);
}

/** The same stack with its files moved under `dir` (to check a Kubernetes config inside the rootfs). */
export function withRouterConfigDir(stack: Stack, dir: string): Stack {
  return { ...stack, placement: { ...stack.placement, paths: { ...stack.placement.paths, routerConfigDir: dir } } };
}

/** The runtime `mxstack runtime setup` builds (MXSTACK_ROOTFS overrides it, e.g. to prove the skip path). */
export const runtimeRootfs = process.env.MXSTACK_ROOTFS ?? runtimeDir();

/** Why the real programs cannot be used here, or undefined when they can. */
export function rootfsUnavailable(): string | undefined {
  if (!existsSync(join(runtimeRootfs, 'usr/sbin/haproxy'))) return `no runtime root filesystem at ${runtimeRootfs}`;
  if (process.getuid?.() !== 0) return 'chroot into the runtime root filesystem needs root';
  return undefined;
}

/** A scratch directory inside the rootfs' /tmp: its path inside the rootfs, and a way to remove it. */
export function rootfsScratch(prefix: string): { inside: string; outside: string; remove: () => void } {
  const tmp = join(runtimeRootfs, 'tmp');
  mkdirSync(tmp, { recursive: true });
  const outside = mkdtempSync(join(tmp, `${prefix}-`));
  return { outside, inside: outside.slice(runtimeRootfs.length), remove: () => rmSync(outside, { recursive: true, force: true }) };
}

export function writeFiles(dir: string, files: Record<string, string>): void {
  mkdirSync(dir, { recursive: true });
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
}

/** Runs a program of the rootfs (bounded in time, as `user` when given); stdout and stderr together. */
export function runInRootfs(args: string[], timeoutMs = 20_000, user?: string, input?: string): { status: number | null; output: string } {
  const userspec = user === undefined ? [] : [`--userspec=${user}:${user}`];
  const result = spawnSync('chroot', [...userspec, runtimeRootfs, ...args], { encoding: 'utf8', timeout: timeoutMs, input });
  return { status: result.status, output: `${result.stdout ?? ''}${result.stderr ?? ''}` };
}

/**
 * Runs the runtime's HAProxy on the stack's generated haproxy.cfg (already written inside the runtime) until
 * the test ends; returns the router's base URL.
 */
export function runRuntimeRouter(t: TestContext, stack: Stack): string {
  const router = spawn('chroot', [runtimeRootfs, 'haproxy', '-db', '-f', join(stack.placement.paths.routerConfigDir, 'haproxy.cfg')], { stdio: 'ignore' });
  const killer = setTimeout(() => router.kill('SIGKILL'), 30_000);
  const exited = new Promise((resolve) => router.on('exit', resolve));
  t.after(async () => {
    router.kill('SIGTERM');
    await exited;
    clearTimeout(killer);
  });
  return `http://127.0.0.1:${stack.placement.ports.router}`;
}

/** fetch, retried for about 5 s while the router starts (refused connections) or has not seen its backend up yet (503). */
export async function fetchUntilUp(url: string, init?: RequestInit): Promise<Response> {
  for (let attempt = 0; ; attempt++) {
    try {
      const response = await fetch(url, { ...init, signal: AbortSignal.timeout(3_000) });
      if (response.status !== 503 || attempt >= 50) return response;
    } catch (error) {
      if (attempt >= 50) throw error;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
