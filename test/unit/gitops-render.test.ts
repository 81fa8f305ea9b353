/**
 * The GitOps flow (docs/kubernetes.md): `mxstack secrets init` once, then only what `mxstack render` prints
 * is applied (Argo CD, Flux). Every non-secret setting must therefore travel in render's output, and a
 * change of one must change the rendered objects so that Synapse rolls; secret values never appear in a
 * ConfigMap.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml, parseAllDocuments, stringify } from 'yaml';
import { resolveValues } from '../../src/values/load.js';
import { compileKubernetesStack, renderKubernetesObjects } from '../../src/targets/kubernetes/render.js';
import { toPlainSorted } from '../../src/kit/sorted-json.js';
import { configChecksumAnnotation } from '../../src/kit/pod-security.js';
import { databaseFieldFiles, synapseSecretFiles } from '../../src/stack/model.js';
import { runCliBatch } from '../support/cli.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Plain = any;

const smtpPass = 'smtp-values-password-9c1e';

const emailValues = (smtpHost: string) => ({
  synapse: {
    server: {
      name: 'example.org',
      email: { enabled: true, smtpHost, smtpPort: 2525, smtpUser: 'mailer', smtpPass, notifFrom: 'Example <noreply@example.org>', appName: 'Example Chat' },
    },
    database: { external: true, host: 'db.example.org', name: 'synapse_prod', user: 'synapse_user' },
  },
  postgresql: { enabled: false },
});

function render(smtpHost: string): Plain[] {
  return renderKubernetesObjects(compileKubernetesStack(resolveValues(emailValues(smtpHost)))).map((o) => toPlainSorted(o) as Plain);
}

const synapseConfigMap = (objects: Plain[]) => objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'mxstack-synapse');
const synapseTemplate = (objects: Plain[]) => objects.find((o) => o.kind === 'Deployment' && o.metadata.name === 'mxstack-synapse').spec.template;

test('render carries the SMTP settings and the database host, name and user in the ConfigMap, and no password in any ConfigMap', () => {
  const objects = render('smtp.example.org');
  const homeserver = parseYaml(synapseConfigMap(objects).data['homeserver.yaml'], { version: '1.1' }) as Plain;
  assert.deepEqual(
    [homeserver.email.smtp_host, homeserver.email.smtp_port, homeserver.email.smtp_user, homeserver.email.notif_from, homeserver.email.app_name],
    ['smtp.example.org', 2525, 'mailer', 'Example <noreply@example.org>', 'Example Chat'],
  );
  assert.deepEqual([homeserver.database.args.host, homeserver.database.args.dbname, homeserver.database.args.user], ['db.example.org', 'synapse_prod', 'synapse_user']);
  assert.equal('password' in homeserver.database.args, false);
  assert.equal('smtp_pass' in homeserver.email, false);
  for (const configMap of objects.filter((o) => o.kind === 'ConfigMap')) {
    assert.ok(!JSON.stringify(configMap).includes(smtpPass), `the SMTP password reached ConfigMap ${configMap.metadata.name}`);
  }
  // The password from the values travels in its own rendered Secret, mounted for the start step.
  const smtpSecret = objects.find((o) => o.kind === 'Secret' && o.metadata.name === 'mxstack-smtp');
  assert.equal(smtpSecret.stringData.password, smtpPass);
  const projected = synapseTemplate(objects).spec.volumes.find((v: Plain) => v.name === 'secrets').projected.sources as Plain[];
  assert.ok(projected.some((s) => s.secret.name === 'mxstack-smtp' && s.secret.items.some((i: Plain) => i.path === 'smtp-password')));
});

/** What `mxstack render -f values.yaml` prints for each smtpHost, as objects: exactly what a GitOps tool applies. */
function renderWithCli(smtpHosts: readonly string[]): Plain[][] {
  const dir = mkdtempSync(join(tmpdir(), 'mxstack-gitops-'));
  try {
    const files = smtpHosts.map((smtpHost, index) => {
      const file = join(dir, `values-${index}.yaml`);
      writeFileSync(file, stringify(emailValues(smtpHost)));
      return file;
    });
    return runCliBatch(files.map((file) => ['render', '-f', file])).map((result) => {
      assert.equal(result.status, 0, result.stderr);
      return parseAllDocuments(result.stdout).map((document) => document.toJS() as Plain).filter((object) => object !== null);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('changing smtpHost changes what `mxstack render` prints: the ConfigMap and the checksum of Synapse\'s pod template (a rollout)', () => {
  const [before, after] = renderWithCli(['smtp.example.org', 'mail.example.net']) as [Plain[], Plain[]];
  assert.notEqual(synapseConfigMap(before).data['homeserver.yaml'], synapseConfigMap(after).data['homeserver.yaml']);
  assert.match(synapseConfigMap(after).data['homeserver.yaml'], /smtp_host: mail\.example\.net/);
  const checksum = (objects: Plain[]) => synapseTemplate(objects).metadata.annotations[configChecksumAnnotation];
  assert.ok(checksum(before));
  assert.notEqual(checksum(before), checksum(after));
});

test('database fields from Secrets are neither in the ConfigMap nor described there: they are mounted for the start step', () => {
  const values = {
    synapse: {
      server: { name: 'example.org' },
      database: { external: true, host: { secret: 'chat-db', key: 'host' }, port: { secret: 'chat-db', key: 'port' }, name: 'synapse_prod', user: { secret: 'chat-db', key: 'username' }, password: { secret: 'chat-db', key: 'password' } },
    },
    postgresql: { enabled: false },
  };
  const objects = renderKubernetesObjects(compileKubernetesStack(resolveValues(values))).map((o) => toPlainSorted(o) as Plain);
  const homeserver = parseYaml(synapseConfigMap(objects).data['homeserver.yaml'], { version: '1.1' }) as Plain;
  assert.deepEqual(Object.keys(homeserver.database.args).filter((key) => ['host', 'port', 'user', 'password', 'dbname'].includes(key)).sort(), ['dbname']);
  assert.equal(homeserver.database.args.dbname, 'synapse_prod');
  assert.ok(!synapseConfigMap(objects).data['homeserver.yaml'].includes('chat-db'), 'a Secret reference was written into the ConfigMap');
  const projected = synapseTemplate(objects).spec.volumes.find((v: Plain) => v.name === 'secrets').projected.sources as Plain[];
  const items = projected.filter((s) => s.secret.name === 'chat-db').flatMap((s) => s.secret.items as Plain[]);
  assert.deepEqual(
    items.map((i) => `${i.key}->${i.path}`).sort(),
    [`host->${databaseFieldFiles.host}`, `password->${synapseSecretFiles.databasePassword}`, `port->${databaseFieldFiles.port}`, `username->${databaseFieldFiles.user}`].sort(),
  );
});
