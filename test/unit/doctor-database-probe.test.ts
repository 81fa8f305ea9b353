/**
 * doctor's check of an external database runs `synapseDatabaseProbeScript` in the Synapse container with
 * Synapse's own secret config. Here it runs for real: the runtime's python3 and psycopg2 (the same
 * packages the local target's Synapse uses) against a real PostgreSQL from the runtime, one database
 * created as Synapse needs it (UTF8, C) and one with the cluster's default C.UTF-8 collation.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { databaseLocaleVerdict, synapseDatabaseProbeScript } from '../../src/ops/doctor/checks.js';
import { runtimeDir, runtimeUser } from '../../src/targets/local/runtime.js';
import { authPostgresSkipReason, startAuthPostgres, type AuthPostgres } from '../support/auth-postgres.js';

const skip = authPostgresSkipReason();
let postgres: AuthPostgres | undefined;

before(async () => {
  if (skip) return;
  postgres = await startAuthPostgres();
  await postgres.pool.query(`CREATE DATABASE synapse_good TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'`);
  await postgres.pool.query(`CREATE DATABASE synapse_bad TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'`);
});
after(() => postgres?.stop());

/** Runs the probe as the runtime's postgres user on a secret config naming `database` (socket connection). */
function probe(database: string): { status: number | null; stdout: string; stderr: string } {
  const rootfs = runtimeDir();
  const socketInside = postgres!.socketDir.slice(rootfs.length);
  const file = join(postgres!.socketDir, `homeserver-secrets-${database}.yaml`);
  writeFileSync(file, stringify({ database: { name: 'psycopg2', args: { user: 'postgres', password: 'unused-with-trust', dbname: database, host: socketInside, port: 5432, cp_min: 1, cp_max: 1 } } }));
  chmodSync(file, 0o644);
  const user = runtimeUser(rootfs, 'postgres');
  const result = spawnSync('chroot', [`--userspec=${user.uid}:${user.gid}`, rootfs, 'python3', '-c', synapseDatabaseProbeScript, file.slice(rootfs.length)], { encoding: 'utf8', timeout: 30_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

test('the probe reports UTF8 and C for a database created as Synapse needs it', { skip }, () => {
  const result = probe('synapse_good');
  assert.equal(result.status, 0, result.stderr);
  assert.equal(result.stdout.trim(), 'UTF8|C|C|synapse_good');
  const verdict = databaseLocaleVerdict('database encoding and locale', 'synapse_good', result.stdout.trim(), 'recreate it');
  assert.equal(verdict.status, 'pass', verdict.detail);
});

test('the probe exposes a C.UTF-8 collation, and the verdict fails with the fix', { skip }, () => {
  const result = probe('synapse_bad');
  assert.equal(result.status, 0, result.stderr);
  const verdict = databaseLocaleVerdict('database encoding and locale', 'synapse_bad', result.stdout.trim(), 'recreate it');
  assert.equal(verdict.status, 'fail');
  assert.match(verdict.detail, /LC_COLLATE C\.UTF-8/);
  assert.equal(verdict.fix, 'recreate it');
});

test('a database Synapse cannot reach makes the probe fail without printing the password', { skip }, () => {
  const result = probe('no_such_database');
  assert.notEqual(result.status, 0);
  assert.match(result.stderr, /no_such_database/);
  assert.ok(!result.stderr.includes('unused-with-trust'));
});
