import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chownSync, chmodSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import {
  postgresqlConfValue,
  postgresqlInitdbArgs,
  postgresqlSettings,
  renderPostgresqlConf,
} from '../../src/components/postgresql/config.js';
import { kubernetesStack, localStack, rootfsScratch, rootfsUnavailable, runInRootfs, runtimeRootfs, writeFiles } from '../support/component-stacks.js';

test('settings come from values, address and port from the placement', () => {
  const settings = postgresqlSettings(
    kubernetesStack({ postgresql: { config: { maxConnections: 250, sharedBuffers: '1GB', workMem: '16MB', walLevel: 'logical', logMinDurationStatement: -1 } } }),
  );
  assert.deepEqual(settings, {
    listen_addresses: '0.0.0.0',
    port: 5432,
    max_connections: 250,
    shared_buffers: '1GB',
    effective_cache_size: '768MB',
    maintenance_work_mem: '64MB',
    work_mem: '16MB',
    wal_level: 'logical',
    log_min_duration_statement: -1,
    commit_delay: 0,
    commit_siblings: 5,
    password_encryption: 'scram-sha-256',
    log_destination: 'stderr',
    logging_collector: 'off',
  });
  const local = postgresqlSettings(localStack({}, '/tmp/x', 41000));
  assert.equal(local.listen_addresses, '127.0.0.1');
  assert.equal(local.port, 41002);
});

test('postgresql.conf quotes strings and leaves numbers bare', () => {
  const conf = renderPostgresqlConf(kubernetesStack());
  assert.match(conf, /^max_connections = 100$/m);
  assert.match(conf, /^log_min_duration_statement = 1000$/m);
  assert.match(conf, /^shared_buffers = '256MB'$/m);
  assert.match(conf, /^listen_addresses = '0\.0\.0\.0'$/m);
  assert.match(conf, /^password_encryption = 'scram-sha-256'$/m);
  assert.ok(conf.endsWith('\n'));
  assert.equal(postgresqlConfValue("it's"), "'it''s'");
  assert.equal(postgresqlConfValue('C:\\dir'), "'C:\\\\dir'");
  assert.equal(postgresqlConfValue(-1), '-1');
});

test('a size PostgreSQL would refuse at start is refused at render, naming the value', () => {
  assert.throws(() => renderPostgresqlConf(kubernetesStack({ postgresql: { config: { sharedBuffers: '256Mi' } } })), /postgresql\.config\.sharedBuffers: "256Mi"/);
  assert.throws(() => renderPostgresqlConf(kubernetesStack({ postgresql: { config: { workMem: '8mb' } } })), /postgresql\.config\.workMem/);
});

test('initdb arguments: UTF8, locale C and scram-sha-256, plus the values\' own, without duplicates', () => {
  assert.deepEqual(postgresqlInitdbArgs(kubernetesStack()), ['--encoding=UTF8', '--locale=C', '--auth=scram-sha-256']);
  assert.deepEqual(postgresqlInitdbArgs(kubernetesStack({ postgresql: { initdbArgs: '-E UTF-8 --locale C --data-checksums --auth-local=peer' } })), [
    '--encoding=UTF8',
    '--locale=C',
    '--auth=scram-sha-256',
    '--data-checksums',
    '--auth-local=peer',
  ]);
});

test('initdb arguments that would give Synapse the wrong encoding or locale, or weaker network auth, are refused', () => {
  for (const [args, reason] of [
    ['--encoding=LATIN1', /UTF8/],
    ['-E SQL_ASCII', /UTF8/],
    ['--locale=en_US.UTF-8', /exactly C/],
    ['--lc-collate de_DE.UTF-8', /exactly C/],
    ['--locale-provider=icu --icu-locale=und', /libc/],
    ['--auth=trust', /scram-sha-256/],
    ['--auth-host md5', /scram-sha-256/],
    ['--encoding', /needs a value/],
  ] as const) {
    assert.throws(() => postgresqlInitdbArgs(kubernetesStack({ postgresql: { initdbArgs: args } })), (error: Error) => /postgresql\.initdbArgs/.test(error.message) && reason.test(error.message), args);
  }
});

test('the real PostgreSQL 18 initialises with these arguments and reads the generated settings', { timeout: 90_000 }, (t) => {
  const unavailable = rootfsUnavailable();
  if (unavailable) {
    t.skip(unavailable);
    return;
  }
  const scratch = rootfsScratch('postgresql-config');
  t.after(scratch.remove);
  const stack = localStack({ postgresql: { config: { sharedBuffers: '128MB', walLevel: 'logical', commitDelay: 300, commitSiblings: 3 } } }, scratch.inside, 44000 + (process.pid % 200) * 10);
  writeFiles(scratch.outside, { 'mxstack.conf': renderPostgresqlConf(stack), pwfile: 'initdb-test-password\n' });

  const owner = statSync(join(runtimeRootfs, 'var/lib/postgresql'));
  for (const entry of ['', ...readdirSync(scratch.outside)]) chownSync(join(scratch.outside, entry), owner.uid, owner.gid);
  chmodSync(join(scratch.outside, 'pwfile'), 0o600);
  const bin = '/usr/lib/postgresql/18/bin';
  const data = join(scratch.inside, 'data');
  const asPostgres = (args: string[]) => runInRootfs(args, 60_000, 'postgres');

  const init = asPostgres([`${bin}/initdb`, '-D', data, `--pwfile=${scratch.inside}/pwfile`, ...postgresqlInitdbArgs(stack)]);
  assert.equal(init.status, 0, init.output);
  assert.match(init.output, /database cluster will be initialized with locale "C"/);
  const template = runInRootfs(
    [`${bin}/postgres`, '--single', '-D', data, 'template1'],
    60_000,
    'postgres',
    "select pg_encoding_to_char(encoding) || '/' || datcollate || '/' || datctype as created from pg_database where datname = 'template1';\n",
  );
  assert.match(template.output, /created = "UTF8\/C\/C"/, 'what Synapse checks: UTF8, collate C, ctype C');
  writeFiles(join(scratch.outside, 'data'), {
    'postgresql.auto.conf': `include '${scratch.inside}/mxstack.conf'\n`,
  });

  const expected: Record<string, string> = {
    listen_addresses: '127.0.0.1',
    port: String(stack.placement.ports.postgresql),
    shared_buffers: String((128 * 1024) / 8), // 8 kB pages
    work_mem: String(8 * 1024),
    wal_level: 'logical',
    log_min_duration_statement: '1000',
    commit_delay: '300',
    commit_siblings: '3',
    password_encryption: 'scram-sha-256',
    max_connections: '100',
  };
  for (const [name, value] of Object.entries(expected)) {
    const shown = asPostgres([`${bin}/postgres`, '-D', data, '-C', name]);
    assert.equal(shown.status, 0, shown.output);
    assert.equal(shown.output.trim(), value, name);
  }
});
