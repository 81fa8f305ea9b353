/**
 * postgresql.mode cloudnative-pg and databases from Secrets. kubernetes-models has no CloudNativePG types:
 * the rendered Cluster and ScheduledBackup are validated against the pinned CRDs (test/fixtures/crds, v1.30.0)
 * with ajv plus the strict-decoding field check. No operator runs here: what the operator does with the
 * Cluster is covered by the server-side dry run of the fixtures, not by these tests.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { loadValues } from '../../src/values/load.js';
import { ValuesError } from '../../src/values/errors.js';
import { compileKubernetesStack, renderKubernetesObjects } from '../../src/targets/kubernetes/render.js';
import { toPlainSorted } from '../../src/kit/sorted-json.js';
import { planSecrets } from '../../src/targets/kubernetes/secrets-store.js';
import { documentedSecrets } from '../../src/targets/kubernetes/secrets.js';
import { requiredDefinitions, startSecretsAwaitOperator } from '../../src/targets/kubernetes/lifecycle.js';
import { KubernetesTarget } from '../../src/targets/kubernetes/target-adapter.js';
import { authServiceConfig } from '../../src/components/auth/config.js';
import { withDatabaseFiles } from '../../src/auth-service/config.js';
import { cloudnativePgSchedule } from '../../src/components/postgresql/cloudnative-pg.js';
import type { Stack } from '../../src/stack/model.js';
import { crdProblems } from '../support/crd-schema.js';
import { valuesFixturesDir } from '../support/fixtures.js';

type Tree = Record<string, unknown>;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Plain = any;

const stackOf = (base: Tree, files: string[] = []): Stack => compileKubernetesStack(loadValues({ base, files }), { release: 'mx', namespace: 'matrix' });
const renderStack = (stack: Stack): Plain[] => renderKubernetesObjects(stack).map((o) => toPlainSorted(o));
const find = (objects: Plain[], kind: string, name: string): Plain => {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
  assert.ok(found, `${kind}/${name}`);
  return found;
};
const cnpgFixture = join(valuesFixturesDir, 'cloudnative-pg.yaml');

/** Synapse's database block as rendered (no password, no field from a Secret) and its secret files as `secret/key>file`. */
function synapseDatabase(objects: Plain[]): { args: Plain; files: string[] } {
  const args = parseYaml(find(objects, 'ConfigMap', 'mx-synapse').data['homeserver.yaml'], { version: '1.1' }).database.args;
  const sources = find(objects, 'Deployment', 'mx-synapse').spec.template.spec.volumes.find((v: Plain) => v.name === 'secrets').projected.sources;
  return { args, files: sources.flatMap((s: Plain) => s.secret.items.map((i: Plain) => `${s.secret.name}/${i.key}>${i.path}`)) };
}

test('the CloudNativePG fixture renders a Cluster and a ScheduledBackup that pass the pinned CRDs', () => {
  const objects = renderStack(stackOf({}, [cnpgFixture]));
  const cluster = find(objects, 'Cluster', 'mx-postgresql');
  assert.deepEqual(crdProblems('cnpg-clusters.yaml', cluster), []);
  const scheduled = find(objects, 'ScheduledBackup', 'mx-postgresql-backup');
  assert.deepEqual(crdProblems('cnpg-scheduledbackups.yaml', scheduled), []);
  assert.equal(cluster.apiVersion, 'postgresql.cnpg.io/v1');
  assert.equal(cluster.metadata.namespace, 'matrix');
  assert.deepEqual(cluster.spec.bootstrap.initdb, {
    database: 'synapse',
    owner: 'synapse',
    encoding: 'UTF8',
    localeCollate: 'C',
    localeCType: 'C',
    postInitApplicationSQL: ['ALTER ROLE "synapse" CREATEDB'],
  });
  assert.equal(cluster.spec.instances, 2);
  assert.deepEqual(cluster.spec.storage, { size: '20Gi' });
  assert.equal(cluster.spec.resources.requests.cpu, '200m');
  assert.equal(cluster.spec.enableSuperuserAccess, false);
  assert.deepEqual(cluster.spec.inheritedMetadata, { labels: { team: 'matrix' } });
  assert.equal(cluster.spec.backup.barmanObjectStore.destinationPath, 's3://matrix-backups/postgresql');
  assert.deepEqual(cluster.spec.backup.barmanObjectStore.s3Credentials.accessKeyId, { name: 'backup-store', key: 'access-key-id' });
  assert.equal(cluster.spec.backup.retentionPolicy, '14d');
  assert.equal(scheduled.spec.schedule, '0 0 3 * * *');
  assert.deepEqual(scheduled.spec.cluster, { name: 'mx-postgresql' });
  // No StatefulSet and no Service of mxstack's own PostgreSQL: the operator runs it.
  assert.equal(objects.filter((o) => o.kind === 'StatefulSet').length, 0);
  assert.equal(objects.filter((o) => o.kind === 'Service' && /postgresql/.test(o.metadata.name)).length, 0);
});

test('the CRD check itself rejects what the API server would: a wrong type, an unknown field', () => {
  const cluster = find(renderStack(stackOf({}, [cnpgFixture])), 'Cluster', 'mx-postgresql');
  assert.match(crdProblems('cnpg-clusters.yaml', { ...cluster, spec: { ...cluster.spec, instances: 'two' } }).join('\n'), /instances/);
  assert.match(crdProblems('cnpg-clusters.yaml', { ...cluster, spec: { ...cluster.spec, bootstrap: { initdb: { ...cluster.spec.bootstrap.initdb, lcCollate: 'C' } } } }).join('\n'), /\.spec\.bootstrap\.initdb\.lcCollate: not declared/);
  assert.match(crdProblems('cnpg-clusters.yaml', { ...cluster, spec: { storage: cluster.spec.storage } }).join('\n'), /instances/);
});

test('Synapse, the auth component and the backup CronJob use the Cluster\'s -rw Service and -app Secret', () => {
  const stack = stackOf({}, [cnpgFixture]);
  assert.equal(stack.database.provider, 'cloudnative-pg');
  assert.equal(stack.database.host, 'mx-postgresql-rw');
  assert.deepEqual(stack.secrets.postgresPassword, { name: 'mx-postgresql-app', key: 'password', userProvided: true, operatorCreated: true });
  const objects = renderStack(stack);
  const synapse = synapseDatabase(objects);
  assert.deepEqual({ host: synapse.args.host, port: synapse.args.port, password: synapse.args.password, sslmode: synapse.args.sslmode }, { host: 'mx-postgresql-rw', port: 5432, password: undefined, sslmode: 'require' });
  assert.ok(synapse.files.includes('mx-postgresql-app/password>database-password'), synapse.files.join(', '));
  assert.equal(authServiceConfig(stack).database.host, 'mx-postgresql-rw');
  const auth = find(objects, 'Deployment', 'mx-auth').spec.template.spec;
  const authSources = auth.volumes.find((v: Plain) => v.name === 'secrets').projected.sources;
  assert.ok(authSources.some((s: Plain) => s.secret.name === 'mx-postgresql-app' && s.secret.items.some((i: Plain) => i.key === 'password' && i.path === 'database-password')));
  const backup = find(objects, 'CronJob', 'mx-backup').spec.jobTemplate.spec.template.spec;
  assert.equal(backup.containers[0].env.find((e: Plain) => e.name === 'PGHOST').value, 'mx-postgresql-rw');
  assert.ok(backup.volumes.find((v: Plain) => v.name === 'password').projected.sources.some((s: Plain) => s.secret.name === 'mx-postgresql-app'));
});

test('the operator\'s Secret is neither generated nor demanded; install writes the secret config once it exists', () => {
  const stack = stackOf({}, [cnpgFixture]);
  const plan = planSecrets(stack, new Map());
  assert.ok(!plan.generated.some((g) => g.startsWith('mx-postgresql-app/')), plan.generated.join(', '));
  assert.deepEqual(plan.problems, []);
  assert.equal(documentedSecrets(stack).find((d) => d.name === 'mx-postgresql-app')?.createdBy, 'operator');
  assert.equal(startSecretsAwaitOperator(stack, new Map()), true);
  assert.equal(startSecretsAwaitOperator(stack, new Map([['mx-postgresql-app', { password: 'x' }]])), false);
  assert.deepEqual(requiredDefinitions(renderKubernetesObjects(stack)).map((d) => d.name), ['clusters.postgresql.cnpg.io', 'scheduledbackups.postgresql.cnpg.io']);
  assert.match(requiredDefinitions(renderKubernetesObjects(stack))[0]!.install, /install the CloudNativePG operator first/);
  assert.deepEqual(requiredDefinitions(renderKubernetesObjects(stackOf({ synapse: { server: { name: 'example.com' } } }))), []);
});

test('NetworkPolicies: the release\'s clients reach the Cluster\'s pods, which admit them, the other instances and the operator', () => {
  const objects = renderStack(stackOf({}, [cnpgFixture]));
  for (const client of ['synapse', 'auth', 'backup']) {
    const egress = find(objects, 'NetworkPolicy', `mx-${client}-to-postgresql`).spec;
    assert.deepEqual(egress.egress, [{ to: [{ podSelector: { matchLabels: { 'cnpg.io/cluster': 'mx-postgresql' } } }], ports: [{ protocol: 'TCP', port: 5432 }] }], client);
  }
  const ingress = find(objects, 'NetworkPolicy', 'mx-postgresql-from-clients').spec;
  assert.deepEqual(ingress.podSelector, { matchLabels: { 'cnpg.io/cluster': 'mx-postgresql' } });
  assert.deepEqual(ingress.ingress[0].from[0].podSelector.matchExpressions[0].values, ['synapse', 'auth', 'backup']);
  assert.deepEqual(ingress.ingress[2].from, [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'cnpg-system' } } }]);
  assert.deepEqual(ingress.ingress[2].ports.map((p: Plain) => p.port), [5432, 8000]);
});

test('operations reach the primary through the -rw Service with the instance\'s own socket', () => {
  const target = new KubernetesTarget(stackOf({}, [cnpgFixture]), { namespace: 'matrix' });
  assert.equal(target.workload('postgresql'), 'service/mx-postgresql-rw');
  assert.deepEqual(target.postgresqlTool('pg_dump'), ['pg_dump', '-h', '/controller/run', '-U', 'postgres']);
  assert.equal(target.workload('synapse'), 'deployment.apps/mx-synapse');
  const statefulset = new KubernetesTarget(stackOf({ synapse: { server: { name: 'example.com' } } }), { namespace: 'matrix' });
  assert.equal(statefulset.workload('postgresql'), 'statefulset.apps/mx-postgresql');
});

test('CloudNativePG refusals: contradicting an external database, pod settings the operator owns, backups without a destination', () => {
  const refused = (base: Tree): string => {
    try {
      renderStack(stackOf(base));
    } catch (error) {
      assert.ok(error instanceof ValuesError, (error as Error).message);
      return error.problems.join('\n');
    }
    return assert.fail('accepted');
  };
  const server = { name: 'example.com' };
  assert.match(refused({ synapse: { server, database: { secret: 'other-app' } }, postgresql: { mode: 'cloudnative-pg', enabled: false } }), /^postgresql\.mode: cloudnative-pg .* contradicts synapse\.database\.external/m);
  assert.match(refused({ synapse: { server }, postgresql: { mode: 'cloudnative-pg', extraContainers: [{ name: 'x', image: 'busybox' }] } }), /^postgresql\.extraContainers: with postgresql\.mode cloudnative-pg the operator builds/m);
  assert.match(refused({ synapse: { server }, postgresql: { mode: 'cloudnative-pg', cloudnativePg: { backup: { schedule: '0 3 * * *' } } } }), /^postgresql\.cloudnativePg\.backup\.destinationPath: required/m);
  assert.equal(cloudnativePgSchedule('5 4 * * 0'), '0 5 4 * * 0');
});

// ---------------------------------------------------------------- databases from Secrets

test('one line points at an operator\'s database: synapse.database.secret with the -app Secret\'s keys', () => {
  const stack = stackOf({ synapse: { server: { name: 'example.com' }, database: { secret: 'chat-db-app' } } });
  assert.equal(stack.values.postgresql.enabled, false, 'the release PostgreSQL is not needed');
  assert.equal(stack.database.provider, 'external');
  assert.deepEqual(
    Object.fromEntries(Object.entries(stack.database.fromSecret).map(([field, ref]) => [field, `${ref.name}/${ref.key}`])),
    { host: 'chat-db-app/host', port: 'chat-db-app/port', name: 'chat-db-app/dbname', user: 'chat-db-app/user' },
  );
  assert.deepEqual(stack.secrets.postgresPassword, { name: 'chat-db-app', key: 'password', userProvided: true });
  // Synapse's start step joins every field in from the files mounted from the Secret: none is in the ConfigMap.
  const objects = renderStack(stack);
  const synapse = synapseDatabase(objects);
  assert.deepEqual({ host: synapse.args.host, port: synapse.args.port, dbname: synapse.args.dbname, user: synapse.args.user, password: synapse.args.password }, { host: undefined, port: undefined, dbname: undefined, user: undefined, password: undefined });
  for (const item of ['chat-db-app/host>database-host', 'chat-db-app/port>database-port', 'chat-db-app/dbname>database-name', 'chat-db-app/user>database-user', 'chat-db-app/password>database-password']) {
    assert.ok(synapse.files.includes(item), `${item} in ${synapse.files.join(', ')}`);
  }
  // Missing: install refuses with the command to create it.
  assert.match(planSecrets(stack, new Map()).problems.join('\n'), /Secret chat-db-app \(keys dbname, host, password, port, user\) named in the values does not exist/);
  assert.equal(objects.filter((o) => o.kind === 'StatefulSet' || o.kind === 'Cluster').length, 0);
});

test('every connection field can be a value or {secret, key}; the CA is mounted where Synapse, auth and the backup read it', () => {
  const base = {
    synapse: {
      server: { name: 'example.com', mfa: { totp: { enabled: true } } },
      database: { external: true, host: 'pg.example.com', port: { secret: 'pg-conn', key: 'port' }, name: 'matrix', user: { secret: 'pg-conn', key: 'username' }, password: { secret: 'pg-pass', key: 'pw' }, sslmode: 'verify-full', ca: { secret: 'pg-ca', key: 'ca.crt' } },
    },
    postgresql: { enabled: false },
    backup: { schedule: '0 3 * * *' },
  };
  const stack = stackOf(base);
  assert.deepEqual(Object.keys(stack.database.fromSecret).sort(), ['ca', 'port', 'user']);
  const objects = renderStack(stack);
  const synapse = synapseDatabase(objects);
  assert.deepEqual({ host: synapse.args.host, port: synapse.args.port, user: synapse.args.user, sslmode: synapse.args.sslmode, sslrootcert: synapse.args.sslrootcert }, { host: 'pg.example.com', port: undefined, user: undefined, sslmode: 'verify-full', sslrootcert: '/secrets/database-ca.pem' });
  for (const item of ['pg-conn/port>database-port', 'pg-conn/username>database-user', 'pg-pass/pw>database-password']) assert.ok(synapse.files.includes(item), `${item} in ${synapse.files.join(', ')}`);
  const synapseSources = find(objects, 'Deployment', 'mx-synapse').spec.template.spec.volumes.find((v: Plain) => v.name === 'secrets').projected.sources;
  assert.ok(synapseSources.some((s: Plain) => s.secret.name === 'pg-ca' && s.secret.items[0].path === 'database-ca.pem'));
  const authItems = find(objects, 'Deployment', 'mx-auth').spec.template.spec.volumes.find((v: Plain) => v.name === 'secrets').projected.sources.flatMap((s: Plain) => s.secret.items.map((i: Plain) => `${s.secret.name}/${i.key}>${i.path}`));
  for (const item of ['pg-conn/port>database-port', 'pg-conn/username>database-user', 'pg-ca/ca.crt>database-ca.pem', 'pg-pass/pw>database-password']) assert.ok(authItems.includes(item), `${item} in ${authItems.join(', ')}`);
  const env = find(objects, 'CronJob', 'mx-backup').spec.jobTemplate.spec.template.spec.containers[0].env;
  assert.deepEqual(env.find((e: Plain) => e.name === 'PGPORT'), { name: 'PGPORT', valueFrom: { secretKeyRef: { name: 'pg-conn', key: 'port' } } });
  assert.deepEqual(env.find((e: Plain) => e.name === 'PGHOST'), { name: 'PGHOST', value: 'pg.example.com' });
  assert.equal(env.find((e: Plain) => e.name === 'PGSSLROOTCERT').value, '/database-ca/database-ca.pem');
  // A CA written in values sits in Synapse's ConfigMap (it is public).
  const withValueCa = renderStack(stackOf({ ...base, synapse: { ...base.synapse, database: { ...base.synapse.database, ca: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n' } } }));
  assert.match(find(withValueCa, 'ConfigMap', 'mx-synapse').data['database-ca.pem'], /BEGIN CERTIFICATE/);
});

test('a database password written in values lands in a rendered Secret, never a ConfigMap', () => {
  const objects = renderStack(stackOf({ synapse: { server: { name: 'example.com' }, database: { external: true, host: 'pg.example.com', password: 'written-in-values-Kx81' } }, postgresql: { enabled: false } }));
  assert.equal(find(objects, 'Secret', 'mx-postgresql').stringData['postgres-password'], 'written-in-values-Kx81');
  for (const configMap of objects.filter((o) => o.kind === 'ConfigMap')) assert.ok(!JSON.stringify(configMap).includes('written-in-values-Kx81'), configMap.metadata.name);
});

test('a {key} reference without a Secret, or a reference for the release database, is refused', () => {
  assert.throws(() => stackOf({ synapse: { server: { name: 'example.com' }, database: { external: true, host: { key: 'host' } } }, postgresql: { enabled: false } }), /synapse\.database\.host: \{key: host\} names no Secret/);
  assert.throws(() => stackOf({ synapse: { server: { name: 'example.com' }, database: { user: { secret: 's', key: 'user' } } } }), /synapse\.database\.user: a Secret reference describes an external database/);
});

test('the auth service takes connection fields from files in its secrets directory', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mxstack-auth-db-'));
  try {
    const stack = stackOf({ synapse: { server: { name: 'example.com', mfa: { totp: { enabled: true } } } } });
    const config = authServiceConfig(stack);
    assert.deepEqual(withDatabaseFiles(config, dir), config, 'no files: the config as written');
    writeFileSync(join(dir, 'database-host'), 'db.internal\n');
    writeFileSync(join(dir, 'database-port'), '6432');
    writeFileSync(join(dir, 'database-name'), 'app');
    writeFileSync(join(dir, 'database-ca.pem'), 'PEM');
    const database = withDatabaseFiles(config, dir).database;
    assert.deepEqual(database, { ...config.database, host: 'db.internal', port: 6432, synapseDatabase: 'app', database: 'app_auth', ca: 'PEM' });
    writeFileSync(join(dir, 'database-port'), 'not-a-port');
    assert.throws(() => withDatabaseFiles(config, dir), /database-port must hold a port number/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
