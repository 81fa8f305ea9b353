/**
 * What the end-to-end suites on a real cluster (test/kubernetes/) share: a log with the suite's name, the
 * durations printed at the end (never asserted), the test images loaded into the cluster, and the kubectl
 * and mxstack runs a suite expects to succeed.
 */
import assert from 'node:assert/strict';
import { runCliAsync } from './local-stack.js';
import { kubectl, type TestCluster } from './kubernetes-cluster.js';
import { loadTestImages } from './test-images.js';

export const seconds = (since: number, until = Date.now()): string => `${((until - since) / 1000).toFixed(1)} s`;

export class E2eSuite {
  /** What took how long, in the order it happened (printed by printDurations). */
  readonly timings: Record<string, string> = {};
  private readonly started = Date.now();

  constructor(private readonly name: string) {}

  log(line: string): void {
    process.stderr.write(`[${this.name}] ${line}\n`);
  }

  /** Builds (once per machine) and loads the images, recording both durations. */
  loadImages(cluster: TestCluster): ReturnType<typeof loadTestImages> {
    const images = loadTestImages(cluster, (line) => this.log(line));
    this.timings['image build'] = images.built ? `${images.buildSeconds.toFixed(1)} s` : 'cached';
    this.timings['image import'] = `${images.importSeconds.toFixed(1)} s`;
    return images;
  }

  printDurations(): void {
    this.timings.suite = seconds(this.started);
    this.log(`durations: ${Object.entries(this.timings).map(([what, took]) => `${what} ${took}`).join(', ')}`);
  }
}

export async function kubectlOk(cluster: TestCluster, args: readonly string[], options: { stdin?: string; timeoutMs?: number } = {}): Promise<string> {
  const result = await kubectl(cluster, args, options);
  assert.equal(result.exitCode, 0, `kubectl ${args.join(' ')} failed: ${result.stderr}`);
  return result.stdout;
}

/** The command line against the cluster (its kubeconfig in the environment). */
export function mxstackOn(cluster: TestCluster, args: string[], timeoutMs = 900_000) {
  return runCliAsync(args, { timeoutMs, env: { KUBECONFIG: cluster.kubeconfig } });
}

export async function mxstackOkOn(cluster: TestCluster, args: string[], timeoutMs?: number): Promise<string> {
  const result = await mxstackOn(cluster, args, timeoutMs);
  assert.equal(result.status, 0, `mxstack ${args.join(' ')} exited ${result.status}:\n${result.stderr}\n${result.stdout}`);
  return result.stdout;
}
