/**
 * Synapse's start step, run for real with python3 and PyYAML (what the Synapse image and the runtime
 * bring): it joins the database and SMTP passwords from their files into the blocks of homeserver.yaml,
 * writes them readable by its user only, and replaces itself with the process it was given. The process
 * here is a Python probe standing in for Synapse; it reports what Synapse would see.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { synapseConfigFiles } from '../../src/components/synapse/config.js';
import { synapseJoinedConfigFile, synapseStartScript, synapseStartScriptFile } from '../../src/components/synapse/start.js';
import { databaseFieldFiles, synapseSecretFiles } from '../../src/stack/model.js';
import { compileKubernetesStack, renderKubernetesObjects } from '../../src/targets/kubernetes/render.js';
import { resolveValues } from '../../src/values/load.js';

const databasePassword = 'db-Pass 12:30';
const smtpPassword = 'smtp-pass-7f3a';

/** Prints what the started process sees: its argv, its environment, and the last --config-path file. */
const probe = `
import json, os, sys
joined = sys.argv[-1]
print(json.dumps({"argv": sys.argv, "env": dict(os.environ), "cmdline": open("/proc/self/cmdline").read(),
                  "mode": os.stat(joined).st_mode & 0o777, "joined": open(joined).read()}))
`;

interface ProbeReport {
  argv: string[];
  env: Record<string, string>;
  cmdline: string;
  mode: number;
  joined: string;
}

function withScratch<T>(body: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'mxstack-synapse-start-'));
  try {
    return body(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function startWithProbe(dir: string, configFiles: Record<string, string>, passwords: Record<string, string>): ProbeReport {
  const configDir = join(dir, 'config');
  const secretsDir = join(dir, 'secrets');
  const runtimeDir = join(dir, 'run');
  for (const path of [configDir, secretsDir, runtimeDir]) mkdirSync(path);
  for (const [name, content] of Object.entries(configFiles)) writeFileSync(join(configDir, name), content);
  for (const [name, content] of Object.entries(passwords)) writeFileSync(join(secretsDir, name), `${content}\n`, { mode: 0o440 });
  const joinedPath = join(runtimeDir, synapseJoinedConfigFile);
  const output = execFileSync(
    'python3',
    [join(configDir, synapseStartScriptFile), secretsDir, joinedPath, '-c', probe, '--config-path', join(configDir, 'homeserver.yaml')],
    { encoding: 'utf8', env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } },
  );
  const report = JSON.parse(output) as ProbeReport;
  assert.equal(statSync(joinedPath).mode & 0o777, 0o600);
  return report;
}

const emailValues = {
  synapse: {
    server: {
      name: 'example.org',
      email: { enabled: true, smtpHost: 'smtp.example.org', smtpUser: 'mailer', notifFrom: 'Example <noreply@example.org>' },
    },
  },
};

test('the start step joins both passwords into the rendered blocks, mode 0600, never in argv or the environment', () => {
  const stack = compileKubernetesStack(resolveValues(emailValues));
  const report = withScratch((dir) =>
    startWithProbe(dir, synapseConfigFiles(stack), { [synapseSecretFiles.databasePassword]: databasePassword, [synapseSecretFiles.smtpPassword]: smtpPassword }),
  );
  assert.equal(report.mode, 0o600);
  const joined = parseYaml(report.joined, { version: '1.1' }) as { database: { name: string; args: Record<string, unknown> }; email: Record<string, unknown> };
  assert.equal(joined.database.name, 'psycopg2');
  assert.equal(joined.database.args.password, databasePassword);
  assert.equal(joined.database.args.host, stack.database.host);
  assert.equal(joined.database.args.dbname, stack.database.name);
  assert.equal(joined.database.args.user, stack.database.user);
  assert.equal(joined.email.smtp_pass, smtpPassword);
  assert.equal(joined.email.smtp_host, 'smtp.example.org');
  assert.equal(joined.email.smtp_user, 'mailer');
  // The joined file comes last: Synapse replaces top-level keys file by file, so its blocks win.
  assert.equal(report.argv.length, 5);
  assert.ok(report.argv[2]!.endsWith('/homeserver.yaml'));
  assert.deepEqual([report.argv[3], report.argv[4]!.endsWith(`/${synapseJoinedConfigFile}`)], ['--config-path', true]);
  for (const secret of [databasePassword, smtpPassword]) {
    assert.ok(!report.argv.join(' ').includes(secret), 'a password reached the command line');
    assert.ok(!report.cmdline.includes(secret), 'a password reached /proc/self/cmdline');
    assert.ok(!Object.values(report.env).some((value) => value.includes(secret)), 'a password reached the environment');
  }
});

test('without email the joined file holds only the database block; the script is the same constant for every stack', () => {
  const stack = compileKubernetesStack(resolveValues({ synapse: { server: { name: 'example.org' } } }));
  const report = withScratch((dir) => startWithProbe(dir, synapseConfigFiles(stack), { [synapseSecretFiles.databasePassword]: databasePassword }));
  const joined = parseYaml(report.joined, { version: '1.1' }) as Record<string, { args?: Record<string, unknown> }>;
  assert.deepEqual(Object.keys(joined), ['database']);
  assert.equal(joined.database!.args!.password, databasePassword);
  assert.equal(synapseConfigFiles(stack)[synapseStartScriptFile], synapseStartScript);
  assert.equal(synapseConfigFiles(compileKubernetesStack(resolveValues(emailValues)))[synapseStartScriptFile], synapseStartScript);
});

const externalFromSecrets = {
  synapse: {
    server: { name: 'example.org' },
    database: { external: true, host: { secret: 'chat-db', key: 'host' }, port: { secret: 'chat-db', key: 'port' }, name: 'synapse_prod', user: { secret: 'chat-db', key: 'user' }, sslmode: 'verify-full', password: { secret: 'chat-db', key: 'password' } },
  },
  postgresql: { enabled: false },
};

test('connection fields from Secrets are joined in from their files (the port as a number); literal fields stay as rendered', () => {
  const stack = compileKubernetesStack(resolveValues(externalFromSecrets));
  const report = withScratch((dir) =>
    startWithProbe(dir, synapseConfigFiles(stack), {
      [synapseSecretFiles.databasePassword]: databasePassword,
      [databaseFieldFiles.host]: 'db-17.internal.example',
      [databaseFieldFiles.port]: '6432',
      [databaseFieldFiles.user]: 'chat_owner',
    }),
  );
  const args = (parseYaml(report.joined, { version: '1.1' }) as { database: { args: Record<string, unknown> } }).database.args;
  assert.deepEqual(
    { host: args.host, port: args.port, user: args.user, dbname: args.dbname, sslmode: args.sslmode, password: args.password },
    { host: 'db-17.internal.example', port: 6432, user: 'chat_owner', dbname: 'synapse_prod', sslmode: 'verify-full', password: databasePassword },
  );
  for (const value of ['db-17.internal.example', 'chat_owner']) assert.ok(!report.argv.join(' ').includes(value));
});

test('a port file that is not a number stops the start with the file named and its content not shown', () => {
  const stack = compileKubernetesStack(resolveValues(externalFromSecrets));
  withScratch((dir) => {
    assert.throws(
      () => startWithProbe(dir, synapseConfigFiles(stack), { [synapseSecretFiles.databasePassword]: databasePassword, [databaseFieldFiles.port]: 'five-four-three-two' }),
      (error: { status?: number; stderr?: string }) => {
        assert.notEqual(error.status, 0);
        assert.match(String(error.stderr), new RegExp(`${databaseFieldFiles.port} in .* is not a port number`));
        assert.ok(!String(error.stderr).includes('five-four'));
        return true;
      },
    );
  });
});

/** The start script's environment() run by python3 on the script itself, as `python3 -c`, with `env` as its environment. */
function scriptEnvironment(jemallocPath: string, env: Record<string, string>): Record<string, string> {
  return withScratch((dir) => {
    const script = join(dir, synapseStartScriptFile);
    writeFileSync(script, synapseStartScript);
    const code = [
      'import importlib.util, json, sys',
      `spec = importlib.util.spec_from_file_location("start", ${JSON.stringify(script)})`,
      'module = importlib.util.module_from_spec(spec)',
      'spec.loader.exec_module(module)',
      'print(json.dumps(module.environment(sys.argv[1])))',
    ].join('\n');
    return JSON.parse(execFileSync('python3', ['-c', code, jemallocPath], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env } })) as Record<string, string>;
  });
}

test('jemalloc: preloaded when asked for, the library is there and LD_PRELOAD is not set; a given LD_PRELOAD is left as it is', () => {
  withScratch((dir) => {
    const library = join(dir, 'libjemalloc.so.2');
    writeFileSync(library, '');
    const asked = { MXSTACK_SYNAPSE_JEMALLOC: '1' };
    const preloaded = scriptEnvironment(library, asked);
    assert.equal(preloaded.LD_PRELOAD, library);
    assert.equal(preloaded.MXSTACK_SYNAPSE_JEMALLOC, undefined, 'Synapse does not see the signal');
    assert.equal(scriptEnvironment(library, {}).LD_PRELOAD, undefined);
    assert.equal(scriptEnvironment(library, { ...asked, LD_PRELOAD: '/opt/other.so' }).LD_PRELOAD, '/opt/other.so');
    assert.equal(scriptEnvironment(join(dir, 'missing.so'), asked).LD_PRELOAD, undefined);
  });
  // The path the script looks at by default is where Debian (the runtime and Synapse's image) puts it.
  assert.match(synapseStartScript, /JEMALLOC = "\/usr\/lib\/%s-linux-gnu\/libjemalloc\.so\.2" % platform\.machine\(\)/);
});

test('synapse.jemalloc: every Synapse container, main and workers, asks the start step for jemalloc; by default none does', () => {
  const containers = (sets: Record<string, unknown>) =>
    renderKubernetesObjects(compileKubernetesStack(resolveValues({ synapse: { server: { name: 'example.org' }, workers: { preset: 'small' }, ...sets } })))
      .filter((object) => object.kind === 'Deployment' || object.kind === 'StatefulSet')
      .flatMap((object) => ((object as unknown as { spec: { template: { spec: { containers: Array<{ name: string; env?: Array<{ name: string; value?: string }> }> } } } }).spec.template.spec.containers))
      .filter((container) => container.name === 'synapse');
  const on = containers({ jemalloc: true });
  assert.ok(on.length > 2);
  for (const container of on) assert.deepEqual(container.env?.filter((env) => env.name === 'MXSTACK_SYNAPSE_JEMALLOC'), [{ name: 'MXSTACK_SYNAPSE_JEMALLOC', value: '1' }]);
  for (const container of containers({})) assert.equal(container.env?.find((env) => env.name === 'MXSTACK_SYNAPSE_JEMALLOC'), undefined);
});
