/**
 * The GitOps flow on a real cluster (docs/kubernetes.md, "GitOps"): `mxstack secrets init` once, then only
 * what `mxstack render` prints is applied, here by `kubectl apply --server-side` as Argo CD or Flux would.
 * Synapse starts through its start step (the database password joined in from its Secret file, in a
 * memory-backed emptyDir), and a changed smtpHost in the values reaches the running Synapse by a new
 * render alone: its ConfigMap changes, the Deployment rolls, the new process has the new setting.
 *
 * No passwords are printed: the probes inside the pod print only what they were asked (a host name, a
 * file mode, whether a value is present). The cluster and images: as in release.test.ts.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml, parseAllDocuments, stringify } from 'yaml';
import { kubectlOk as kubectlOkOn, mxstackOkOn } from '../support/kubernetes-e2e.js';
import { createTestNamespace, testCluster, type TestCluster, type TestNamespace } from '../support/kubernetes-cluster.js';
import { loadTestImages } from '../support/test-images.js';

const availability = await testCluster();
const skip = availability.available ? false : availability.reason;

const release = 'mxstack';
const synapse = `deployment/${release}-synapse`;
const joinedFile = '/run/synapse/joined-secrets.yaml';
/** The user's own Secret for the SMTP password (as a GitOps user keeps it: outside the rendered manifests). */
const smtpSecret = 'gitops-smtp';

let cluster: TestCluster;
let testNamespace: TestNamespace | undefined;
let namespace: string;
let workDir: string;

function log(line: string): void {
  process.stderr.write(`[kubernetes gitops] ${line}\n`);
}

const kubectlOk = (args: readonly string[], options: { stdin?: string; timeoutMs?: number } = {}) => kubectlOkOn(cluster, args, options);
const mxstackOk = (args: string[]) => mxstackOkOn(cluster, args, 300_000);

function valuesFile(smtpHost: string): string {
  const file = join(workDir, 'values.yaml');
  writeFileSync(
    file,
    stringify({
      synapse: {
        server: {
          name: 'gitops.test',
          turn: { enabled: false },
          email: { enabled: true, smtpHost, smtpUser: 'mailer', smtpPassSecretRef: { name: smtpSecret, key: 'password' }, notifFrom: 'Chat <noreply@gitops.test>' },
        },
      },
      element: { enabled: false },
      coturn: { enabled: false },
    }),
  );
  return file;
}

/** What a GitOps tool does with the repository's manifests: `mxstack render`'s output, applied as it is. */
async function renderAndApply(smtpHost: string): Promise<unknown[]> {
  const manifests = await mxstackOk(['render', '-f', valuesFile(smtpHost), '-n', namespace, '--release', release]);
  await kubectlOk(['apply', '--server-side', '--field-manager=gitops-e2e', '-n', namespace, '-f', '-'], { stdin: manifests, timeoutMs: 120_000 });
  return parseAllDocuments(manifests).map((document) => document.toJS() as unknown);
}

async function rolledOut(): Promise<void> {
  await kubectlOk(['rollout', 'status', synapse, '-n', namespace, '--timeout=600s'], { timeoutMs: 620_000 });
}

/** Runs Python in the running Synapse container (the image's own interpreter and PyYAML); the strategy is Recreate, so one pod. */
async function inSynapse(script: string): Promise<string> {
  return (await kubectlOk(['exec', synapse, '-n', namespace, '-c', 'synapse', '--', 'python', '-c', script], { timeoutMs: 60_000 })).trim();
}

/**
 * Facts about what Synapse started with, never a value: the effective email block (homeserver.yaml with the
 * joined file over it, shallowly, as Synapse merges its --config-path files), whether both passwords were
 * joined, the joined file's mode and file system, and that no password is in PID 1's argv or environment.
 */
const probe = `
import os, yaml
joined = yaml.safe_load(open("${joinedFile}"))
config = yaml.safe_load(open("/config/homeserver.yaml"))
config.update(joined)
secret = lambda name: open("/secrets/" + name).read().strip()
passwords = [secret("database-password"), secret("smtp-password")]
mounts = [line.split() for line in open("/proc/mounts")]
cmdline, environ = open("/proc/1/cmdline").read(), open("/proc/1/environ").read()
print(yaml.safe_dump({
  "smtp_host": config["email"]["smtp_host"],
  "database_password_joined": config["database"]["args"]["password"] == passwords[0],
  "smtp_password_joined": config["email"]["smtp_pass"] == passwords[1],
  "mode": os.stat("${joinedFile}").st_mode & 0o777,
  "tmpfs": any(m[1] == "/run/synapse" and m[2] == "tmpfs" for m in mounts),
  "password_in_argv_or_environ": any(p in cmdline or p in environ for p in passwords),
  "synapse_is_pid1": "synapse.app.homeserver" in cmdline,
}))
`;

async function factsOfSynapse(): Promise<Record<string, unknown>> {
  return parseYaml(await inSynapse(probe)) as Record<string, unknown>;
}

before(async () => {
  if (skip) return;
  workDir = mkdtempSync(join(tmpdir(), 'mxstack-k8s-gitops-'));
  cluster = (availability as { cluster: TestCluster }).cluster;
  loadTestImages(cluster, log);
  testNamespace = await createTestNamespace(cluster, 'i14-gitops2');
  namespace = testNamespace.name;
  log(`namespace ${namespace}`);
}, { timeout: 1_800_000 });

after(async () => {
  if (testNamespace && !process.env.MXSTACK_TEST_KEEP_NAMESPACE) await testNamespace.delete();
  if (workDir) rmSync(workDir, { recursive: true, force: true });
}, { timeout: 300_000 });

test('secrets init once, then render | kubectl apply: Synapse starts through its start step', { skip, timeout: 900_000 }, async () => {
  const smtpPassword = `smtp-${randomBytes(12).toString('hex')}`;
  const secret = { apiVersion: 'v1', kind: 'Secret', metadata: { name: smtpSecret }, type: 'Opaque', stringData: { password: smtpPassword } };
  await kubectlOk(['create', '-n', namespace, '-f', '-'], { stdin: JSON.stringify(secret) });
  await mxstackOk(['secrets', 'init', '--kubernetes', '-n', namespace, '--release', release, '-f', valuesFile('smtp.gitops.test')]);
  const objects = await renderAndApply('smtp.gitops.test');
  await rolledOut();
  const password = Buffer.from(await kubectlOk(['get', `secret/${release}-postgresql`, '-n', namespace, '-o', 'jsonpath={.data.postgres-password}']), 'base64').toString('utf8');
  assert.ok(password.length > 0);
  for (const rendered of objects.map((object) => JSON.stringify(object))) {
    assert.ok(!rendered.includes(password) && !rendered.includes(smtpPassword), 'a password is in the rendered manifests');
  }
  assert.deepEqual(await factsOfSynapse(), {
    smtp_host: 'smtp.gitops.test',
    database_password_joined: true,
    smtp_password_joined: true,
    mode: 0o600,
    tmpfs: true,
    password_in_argv_or_environ: false,
    synapse_is_pid1: true,
  });
});

test('a changed smtpHost reaches the running Synapse through a new render alone', { skip, timeout: 900_000 }, async () => {
  const before = Number(await kubectlOk(['get', synapse, '-n', namespace, '-o', 'jsonpath={.metadata.generation}']));
  await renderAndApply('mail.gitops.test');
  await rolledOut();
  assert.ok(Number(await kubectlOk(['get', synapse, '-n', namespace, '-o', 'jsonpath={.metadata.generation}'])) > before, 'Synapse was not rolled out');
  const facts = await factsOfSynapse();
  assert.deepEqual([facts.smtp_host, facts.database_password_joined, facts.smtp_password_joined], ['mail.gitops.test', true, true]);
  // The operations read the joined file too: the database password Synapse started with is the stored one.
  await mxstackOk(['secrets', 'verify', '--kubernetes', '-n', namespace, '--release', release, '-f', valuesFile('mail.gitops.test')]);
});
