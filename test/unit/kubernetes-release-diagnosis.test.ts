/**
 * A release that cannot become healthy, on a real API server: what `install`, `status --kubernetes`,
 * `upgrade` and `diff` tell the operator. The images are set to `pullPolicy: Never` (nothing is pulled:
 * no traffic leaves the machine), PostgreSQL's image is one nobody has (ErrImageNeverPull), and Synapse's
 * media claim asks for a storage class that does not exist (ProvisioningFailed, so its pod is unschedulable).
 *
 * The cluster comes from test/support/kubernetes-cluster.ts; without one the test is skipped and says why.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../support/cli.js';
import { valuesFixturesDir } from '../support/fixtures.js';
import { createTestNamespace, kubectl, testCluster } from '../support/kubernetes-cluster.js';

const availability = await testCluster();
const skip = availability.available ? false : availability.reason;

const brokenRelease = [
  '-f', `${valuesFixturesDir}minimal.yaml`,
  '--set', 'element.enabled=false',
  '--set', 'coturn.enabled=false',
  '--set', 'synapse.server.turn.enabled=false',
  '--set', 'postgresql.image.repository=mxstack-test.invalid/no-such-postgres',
  '--set', 'postgresql.image.pullPolicy=Never',
  '--set', 'synapse.image.pullPolicy=Never',
  '--set', 'router.image.pullPolicy=Never',
  '--set', 'synapse.persistence.storageClassName=mxstack-test-no-such-class',
];

/** A printed `mxstack ...` command line, as arguments for the CLI (the hints have no quoting). */
const argsOfPrinted = (line: string) => line.trim().split(/\s+/).slice(1);

test('a release that cannot start: the status hint shows it, the wait names the causes from the cluster, diff exits 0/1', { skip, timeout: 10 * 60_000 }, async (t) => {
  if (!availability.available) return;
  const cluster = availability.cluster;
  const namespace = await createTestNamespace(cluster, 'diagnosis');
  t.after(() => namespace.delete());
  const where = ['--kubeconfig', cluster.kubeconfig, '-n', namespace.name];

  const installed = runCli(['install', ...brokenRelease, ...where, '--no-wait'], { timeoutMs: 5 * 60_000 });
  assert.equal(installed.status, 0, installed.stderr);
  assert.match(installed.stderr, /^applying \d+ objects \(server-side apply\)$/m, 'progress on stderr');

  // Finding 2: the printed status command, run as printed, shows this release (not the local stack).
  const hint = /^ {2}Status: {2}(mxstack status .*)$/m.exec(installed.stdout)?.[1];
  assert.ok(hint, installed.stdout);
  const status = runCli(argsOfPrinted(hint), { timeoutMs: 2 * 60_000 });
  assert.equal(status.status, 0, status.stderr);
  assert.match(status.stdout, new RegExp(`^release mxstack in namespace ${namespace.name} `, 'm'));
  // Finding 5: a claim without a volume is not "ready / exists".
  assert.match(status.stdout, /^PersistentVolumeClaim\/mxstack-synapse-media\s+progressing\s+pending: no volume yet \(storage class mxstack-test-no-such-class\)$/m);
  assert.match(status.stdout, /health: +\d+ not ready/);

  // Finding 6: the failed wait says why, in the cluster's words.
  const upgraded = runCli(['upgrade', ...brokenRelease, ...where, '--timeout', '40s'], { timeoutMs: 5 * 60_000 });
  assert.equal(upgraded.status, 1, upgraded.stderr);
  assert.match(upgraded.stderr, /^error: still not ready after 40s:$/m);
  assert.match(upgraded.stderr, /because pod mxstack-postgresql-0, container postgresql: ErrImageNeverPull: /);
  assert.match(upgraded.stderr, /because PersistentVolumeClaim\/mxstack-synapse-media: ProvisioningFailed: storageclass\.storage\.k8s\.io "mxstack-test-no-such-class" not found/);
  assert.match(upgraded.stderr, /because pod mxstack-synapse-\S+ is Pending, not scheduled: Unschedulable: .*unbound immediate PersistentVolumeClaims/);
  assert.match(upgraded.stderr, /^ {2}still waiting after \d+s: \d+ of \d+ not ready yet$/m, 'progress while waiting');

  // Finding 4: diff exits like kubectl diff.
  const same = runCli(['diff', ...brokenRelease, ...where], { timeoutMs: 2 * 60_000 });
  assert.equal(same.status, 0, `${same.stdout}\n${same.stderr}`);
  assert.match(same.stdout, /^no changes: release mxstack matches the values\.$/m);
  const changed = runCli(['diff', ...brokenRelease, '--set', 'synapse.server.urlPreviews.enabled=false', ...where], { timeoutMs: 2 * 60_000 });
  assert.equal(changed.status, 1, `${changed.stdout}\n${changed.stderr}`);
  const broken = runCli(['diff', ...brokenRelease, '--kubeconfig', '/nonexistent/kubeconfig', '-n', namespace.name], { timeoutMs: 2 * 60_000 });
  assert.equal(broken.status, 2, broken.stderr);
});

test('the command printed for a missing TLS Secret, run as printed, creates the Secret coturn reads', { skip, timeout: 5 * 60_000 }, async (t) => {
  if (!availability.available) return;
  const cluster = availability.cluster;
  const namespace = await createTestNamespace(cluster, 'tls-secret');
  const files = mkdtempSync(join(tmpdir(), 'mxstack-tls-secret-'));
  t.after(async () => {
    rmSync(files, { recursive: true, force: true });
    await namespace.delete();
  });
  const install = ['install', '-f', `${valuesFixturesDir}coturn-tls.yaml`, '--kubeconfig', cluster.kubeconfig, '-n', namespace.name, '--dry-run'];
  const refused = runCli(install, { timeoutMs: 2 * 60_000 });
  assert.equal(refused.status, 2, refused.stderr);
  const printed = refused.stderr.split('\n').filter((line) => line.includes('coturn-tls'));
  assert.equal(printed.length, 1, refused.stderr);
  const command = /create it first: (kubectl .*)$/.exec(printed[0]!)?.[1];
  assert.ok(command, printed[0]);

  const cert = join(files, 'tls.crt');
  const key = join(files, 'tls.key');
  const openssl = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=turn.example.com', '-keyout', key, '-out', cert], { encoding: 'utf8' });
  assert.equal(openssl.status, 0, openssl.stderr);
  const created = spawnSync('sh', ['-c', command.replace('<certificate file>', cert).replace('<private key file>', key)], {
    encoding: 'utf8',
    env: { ...process.env, KUBECONFIG: cluster.kubeconfig },
  });
  assert.equal(created.status, 0, created.stderr);
  const secret = await kubectl(cluster, ['get', 'secret', 'coturn-tls', `--namespace=${namespace.name}`, '--output=jsonpath={.type} {.data}']);
  assert.match(secret.stdout, /^kubernetes\.io\/tls .*"tls\.crt".*"tls\.key"/);
  const accepted = runCli(install, { timeoutMs: 2 * 60_000 });
  assert.equal(accepted.status, 0, accepted.stderr);
});
