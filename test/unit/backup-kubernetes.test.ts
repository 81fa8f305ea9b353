import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadValues } from '../../src/values/load.js';
import { compileKubernetesStack } from '../../src/targets/kubernetes/render.js';
import { componentObjectBuilders } from '../../src/targets/kubernetes/components.js';
import { backupObjects, backupScript } from '../../src/components/backup/kubernetes.js';

const stackWith = (sets: string[]) => compileKubernetesStack(loadValues({ sets: ['synapse.server.name=example.org', ...sets] }), { release: 'mx', namespace: 'chat' });

test('no backup.schedule: no CronJob and no claim', () => {
  assert.deepEqual(backupObjects(stackWith([])), []);
});

test('backup.schedule renders a hardened CronJob with the claim, retention and password as a file', () => {
  const stack = stackWith(['networkPolicy.enabled=true', 'backup.schedule=0 3 * * *', 'backup.retention=3', 'backup.persistence.size=5Gi', 'backup.persistence.storageClassName=fast']);
  const rendered = componentObjectBuilders.flatMap((build) => build(stack));
  const cron = rendered.find((o) => o.kind === 'CronJob') as unknown as {
    spec: { schedule: string; concurrencyPolicy: string; jobTemplate: { spec: { template: { spec: Record<string, unknown> & { containers: Record<string, unknown>[]; securityContext: Record<string, unknown> } } } } };
  };
  assert.ok(cron, 'the CronJob is in the rendered list');
  assert.equal(cron.spec.schedule, '0 3 * * *');
  assert.equal(cron.spec.concurrencyPolicy, 'Forbid');
  const pod = cron.spec.jobTemplate.spec.template.spec;
  assert.equal(pod.securityContext.runAsNonRoot, true);
  const container = pod.containers[0]!;
  const env = container.env as { name: string; value?: string }[];
  assert.equal(env.find((e) => e.name === 'MXSTACK_RETENTION')?.value, '3');
  assert.equal(env.find((e) => e.name === 'PGHOST')?.value, stack.database.host);
  assert.ok(!JSON.stringify(cron).toLowerCase().includes('pgpassword'), 'no password in the environment');
  const claim = rendered.find((o) => o.kind === 'PersistentVolumeClaim' && o.metadata?.name === 'mx-backup') as unknown as { spec: { storageClassName: string; resources: { requests: { storage: string } } } };
  assert.equal(claim.spec.storageClassName, 'fast');
  assert.equal(claim.spec.resources.requests.storage, '5Gi');
  // The backup pod may reach PostgreSQL through the NetworkPolicies.
  const policies = rendered.filter((o) => o.kind === 'NetworkPolicy').map((o) => o.metadata?.name);
  assert.ok(policies.includes('mx-backup-to-postgresql') && policies.includes('mx-postgresql-from-backup'), 'policies let the backup pod reach the database');
});

test('the dump script: passfile escaping, checksum, atomic rename and retention (run with sh and a stand-in pg_dump)', (t) => {
  const work = mkdtempSync(join(tmpdir(), 'mxstack-backup-script-'));
  t.after(() => rmSync(work, { recursive: true, force: true }));
  const paths = { backups: join(work, 'backups'), passwordFile: join(work, 'password'), scratch: join(work, 'scratch') };
  const bin = join(work, 'bin');
  for (const dir of [paths.backups, paths.scratch, bin]) mkdirSync(dir);
  writeFileSync(paths.passwordFile, 'pa:ss\\word');
  // pg_dump stand-in: records the passfile it was given and writes a "dump" to --file.
  writeFileSync(join(bin, 'pg_dump'), `#!/bin/sh\ncat "$PGPASSFILE" > "${work}/seen-pgpass"\nfor a in "$@"; do case "$a" in --file=*) printf 'PGDMP %s' "$MXSTACK_SERVER_NAME" > "\${a#--file=}";; esac; done\n`);
  // date stand-in: a new second on every call, so dumps get distinct names.
  writeFileSync(join(bin, 'date'), `#!/bin/sh\nn=$(cat "${work}/n" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "${work}/n"; echo "20260101T00000\${n}Z"\n`);
  chmodSync(join(bin, 'pg_dump'), 0o755);
  chmodSync(join(bin, 'date'), 0o755);
  const run = () =>
    spawnSync('sh', ['-c', backupScript(paths)], {
      encoding: 'utf8',
      env: { PATH: `${bin}:/usr/bin:/bin`, MXSTACK_SERVER_NAME: 'example.org', MXSTACK_RETENTION: '2' },
    });
  for (let i = 0; i < 4; i++) {
    const result = run();
    assert.equal(result.status, 0, result.stderr);
  }
  assert.equal(readFileSync(join(work, 'seen-pgpass'), 'utf8'), '*:*:*:*:pa\\:ss\\\\word\n');
  const files = readdirSync(paths.backups).sort();
  assert.deepEqual(files, ['example.org-20260101T000003Z.dump', 'example.org-20260101T000003Z.dump.sha256', 'example.org-20260101T000004Z.dump', 'example.org-20260101T000004Z.dump.sha256']);
  const check = spawnSync('sha256sum', ['-c', 'example.org-20260101T000004Z.dump.sha256'], { cwd: paths.backups, encoding: 'utf8' });
  assert.equal(check.status, 0, check.stdout + check.stderr);

  // A failing pg_dump leaves no dump and no partial file behind, and prunes nothing.
  writeFileSync(join(bin, 'pg_dump'), '#!/bin/sh\necho "connection refused" >&2\nexit 1\n');
  const failed = run();
  assert.notEqual(failed.status, 0);
  assert.deepEqual(readdirSync(paths.backups).sort(), files);
});
