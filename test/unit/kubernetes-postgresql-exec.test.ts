/**
 * PostgreSQL's programs through `kubectl exec` on a release (finding 8 of issue 17): the StatefulSet runs
 * initdb with --auth=scram-sha-256, so the image's local socket asks for the password too; the adapter
 * must read it inside the container from POSTGRES_PASSWORD_FILE (never from a command line), and a failure
 * must carry the program's own message, not kubectl's "command terminated with exit code 2".
 * kubectl is the recording stand-in here (test/support/fake-kubectl); the real cluster run is in
 * test/kubernetes/release.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadValues } from '../../src/values/load.js';
import { compileKubernetesStack } from '../../src/targets/kubernetes/render.js';
import { KubernetesTarget } from '../../src/targets/kubernetes/target-adapter.js';
import { installFakeKubectl } from '../support/fake-kubectl.js';

const stack = compileKubernetesStack(loadValues({ sets: ['synapse.server.name=chat.example'] }), { release: 'mx', namespace: 'chat' });
const target = new KubernetesTarget(stack, { namespace: 'chat' });

test('postgresqlTool runs the program with the password from POSTGRES_PASSWORD_FILE, not on its command line', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mxstack-pg-tool-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // A stand-in psql that reports what it was given (the real one is in the postgres image).
  writeFileSync(join(dir, 'psql'), '#!/bin/sh\necho "PGPASSWORD=${PGPASSWORD:-}"\necho "ARGS=$*"\n');
  chmodSync(join(dir, 'psql'), 0o755);
  writeFileSync(join(dir, 'password'), 'stored-db-password\n');
  const argv = [...target.postgresqlTool('psql'), '-X', '-tA', '-d', 'postgres', '-c', 'SELECT 1'];
  assert.ok(!argv.join(' ').includes('stored-db-password'));
  const run = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', env: { PATH: `${dir}:/usr/bin:/bin`, POSTGRES_PASSWORD_FILE: join(dir, 'password') } });
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout, /^PGPASSWORD=stored-db-password$/m);
  assert.match(run.stdout, /^ARGS=--no-password -U synapse -X -tA -d postgres -c SELECT 1$/m);
});

test("exec returns the program's own stderr without kubectl's exit-code line", async (t) => {
  const message = 'psql: error: connection to server on socket "/var/run/postgresql/.s.PGSQL.5432" failed: fe_sendauth: no password supplied';
  const fake = installFakeKubectl([{ match: ['exec', 'statefulset.apps/mx-postgresql'], stderr: `${message}\ncommand terminated with exit code 2\n`, exit: 2 }]);
  t.after(() => fake.restore());
  const result = await target.exec('postgresql', [...target.postgresqlTool('psql'), '-c', 'SELECT 1']);
  assert.equal(result.exitCode, 2);
  assert.equal(result.stderr.trim().split('\n').pop(), message);
});
