/**
 * The local target's lifecycle with the real programs: up with defaults, what clients see through the
 * router, the admin credentials, restart after a crash, down and up again with the data kept, two stacks
 * side by side, and the errors a user can fix.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { signingKeyInfo } from '../../src/stack/secrets/generate.js';
import { runtimeDir, runtimeUser } from '../../src/targets/local/runtime.js';
import { cliEntry, projectRoot } from '../support/cli.js';
import { readLocalStackStatus, runCliAsync, startLocalStack, type LocalStackHandle, type LocalStackStatus } from '../support/local-stack.js';

const minutes = (n: number) => n * 60_000;

async function getJson(url: string): Promise<{ status: number; headers: Headers; body: Record<string, unknown> }> {
  const response = await fetch(url, { signal: AbortSignal.timeout(30_000) });
  return { status: response.status, headers: response.headers, body: (await response.json()) as Record<string, unknown> };
}

async function login(clientUrl: string, userId: string, password: string): Promise<Response> {
  return fetch(new URL('_matrix/client/v3/login', clientUrl), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ type: 'm.login.password', identifier: { type: 'm.id.user', user: userId }, password }),
    signal: AbortSignal.timeout(30_000),
  });
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

function assertHealthy(status: LocalStackStatus): void {
  assert.equal(status.running, true);
  assert.equal(status.healthy, true, JSON.stringify(status.components));
  for (const name of ['postgresql', 'synapse', 'coturn', 'router']) {
    const component = status.components[name];
    assert.ok(component, `component ${name} is reported`);
    assert.equal(component.healthy, true, `${name} is healthy`);
    assert.ok(Number.isInteger(component.pid), `${name} has a pid`);
    assert.match(component.version ?? '', /\d/, `${name} reports its version`);
  }
}

describe('a local stack with default values', { timeout: minutes(20) }, () => {
  let stack: LocalStackHandle;

  before(async () => {
    stack = await startLocalStack();
  });
  after(async () => {
    await stack?.dispose();
  });

  test('status --output json reports every component healthy and the endpoints', () => {
    const { status } = stack;
    assertHealthy(status);
    assert.equal(status.serverName, 'localhost');
    assert.match(status.endpoints!.client, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    assert.match(status.endpoints!.wellKnown, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    assert.ok(status.endpoints!.metrics.some((url) => url.endsWith('/_synapse/metrics')));
    assert.ok(status.endpoints!.turn.some((uri) => /^turn:127\.0\.0\.1:\d+\?transport=udp$/.test(uri)));
    assert.equal(status.adminCredentialsFile, join(stack.stateDir, 'admin-credentials.json'));
  });

  test('the client API answers through the router', async () => {
    const versions = await getJson(new URL('_matrix/client/versions', stack.status.endpoints!.client).href);
    assert.equal(versions.status, 200);
    assert.ok(Array.isArray(versions.body.versions) && versions.body.versions.includes('v1.1'));
  });

  test('the well-known documents are served, the client one with CORS', async () => {
    const base = stack.status.endpoints!.wellKnown;
    const client = await getJson(new URL('.well-known/matrix/client', base).href);
    assert.equal(client.status, 200);
    assert.equal(client.headers.get('access-control-allow-origin'), '*');
    const homeserver = client.body['m.homeserver'] as { base_url: string };
    assert.equal(new URL(homeserver.base_url).href, stack.status.endpoints!.client);
    const server = await getJson(new URL('.well-known/matrix/server', base).href);
    assert.equal(server.status, 200);
    assert.match(String(server.body['m.server']), /^127\.0\.0\.1:\d+$/);
  });

  test('every metrics URL is scraped successfully', async () => {
    for (const url of stack.status.endpoints!.metrics) {
      const response = await fetch(url, { signal: AbortSignal.timeout(30_000) });
      assert.equal(response.status, 200, url);
      assert.match(await response.text(), /^# (HELP|TYPE) /m, url);
    }
  });

  test('the admin credentials file is private and its password logs in', async () => {
    const file = stack.status.adminCredentialsFile!;
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const credentials = stack.adminCredentials();
    assert.equal(credentials.user_id, '@admin:localhost');
    const response = await login(stack.status.endpoints!.client, credentials.user_id, credentials.password);
    assert.equal(response.status, 200);
    const body = (await response.json()) as { user_id: string; access_token: string };
    assert.equal(body.user_id, '@admin:localhost');
    const wrong = await login(stack.status.endpoints!.client, credentials.user_id, `${credentials.password}x`);
    assert.equal(wrong.status, 403);
  });

  test('Synapse signs with the generated key, read from a 0600 file owned by matrix-synapse', async () => {
    const keyFile = join(stack.stateDir, 'synapse', 'keys', 'signing.key');
    const stat = statSync(keyFile);
    assert.equal(stat.mode & 0o777, 0o600);
    assert.equal(stat.uid, runtimeUser(runtimeDir(), 'matrix-synapse').uid);
    const expected = signingKeyInfo(readFileSync(keyFile, 'utf8'));
    const published = await getJson(new URL('_matrix/key/v2/server', stack.status.endpoints!.client).href);
    const verifyKeys = published.body.verify_keys as Record<string, { key: string }>;
    assert.deepEqual(Object.keys(verifyKeys), [expected.keyId]);
    assert.equal(verifyKeys[expected.keyId]!.key, expected.publicKey);
  });

  test('Synapse started through its start step: the database password joined in a 0600 file of matrix-synapse, homeserver.yaml without it', () => {
    const joined = join(stack.stateDir, 'synapse', 'run', 'joined-secrets.yaml');
    const stat = statSync(joined);
    assert.equal(stat.mode & 0o777, 0o600);
    assert.equal(stat.uid, runtimeUser(runtimeDir(), 'matrix-synapse').uid);
    const password = readFileSync(join(stack.stateDir, 'synapse', 'secrets', 'database-password'), 'utf8').trim();
    assert.ok(password.length > 0);
    assert.ok(readFileSync(joined, 'utf8').includes(password));
    const homeserver = readFileSync(join(stack.stateDir, 'synapse', 'config', 'homeserver.yaml'), 'utf8');
    assert.match(homeserver, /dbname: /);
    assert.ok(!homeserver.includes(password));
  });

  test('a second up on the running stack refuses with exit code 2', async () => {
    const result = await runCliAsync(['up', '--state-dir', stack.stateDir], { timeoutMs: 120_000 });
    assert.equal(result.status, 2, result.stderr);
    assert.match(result.stderr, /already running/);
  });

  test('a second stack runs side by side with its own ports and data', async () => {
    const second = await startLocalStack();
    try {
      assertHealthy(second.status);
      assert.notEqual(second.status.endpoints!.client, stack.status.endpoints!.client);
      const ports = (s: LocalStackStatus) => Object.values(s.components).flatMap((c) => Object.values(c.ports));
      const shared = ports(second.status).filter((port) => ports(stack.status).includes(port));
      assert.deepEqual(shared, []);
      for (const s of [stack.status, second.status]) {
        const versions = await getJson(new URL('_matrix/client/versions', s.endpoints!.client).href);
        assert.equal(versions.status, 200);
      }
      assert.notEqual(second.adminCredentials().password, stack.adminCredentials().password);
    } finally {
      await second.dispose();
    }
    // Stopping the second stack left the first one untouched.
    assertHealthy(await stack.readStatus());
  });

  test('a killed Synapse is restarted by the supervisor', async () => {
    const before = await stack.readStatus();
    const pid = before.components.synapse!.pid!;
    process.kill(pid, 'SIGKILL');
    const after = await waitFor(
      'Synapse to be restarted and healthy',
      async () => {
        const status = await stack.readStatus();
        const synapse = status.components.synapse!;
        return synapse.restarts >= 1 && synapse.healthy && synapse.pid !== pid ? status : undefined;
      },
      minutes(3),
    );
    assert.ok(after.components.synapse!.restarts >= before.components.synapse!.restarts + 1);
    // The router notices Synapse is back with its own health checks, a few seconds later.
    await waitFor(
      'the client API through the router',
      async () => ((await fetch(new URL('_matrix/client/versions', after.endpoints!.client), { signal: AbortSignal.timeout(10_000) })).status === 200 ? true : undefined),
      minutes(1),
    );
  });

  test('down stops everything; up again keeps ports, secrets and data', async () => {
    const before = await stack.readStatus();
    const credentials = stack.adminCredentials();
    await stack.down();
    const stopped = await stack.readStatus();
    assert.equal(stopped.running, false);
    for (const component of Object.values(stopped.components)) assert.equal(component.healthy, false);
    await assert.rejects(fetch(new URL('_matrix/client/versions', before.endpoints!.client), { signal: AbortSignal.timeout(5000) }));

    const renamed = await runCliAsync(['up', '--state-dir', stack.stateDir, '--set', 'synapse.server.name=example.org'], { timeoutMs: 120_000 });
    assert.equal(renamed.status, 2, renamed.stderr);
    assert.match(renamed.stderr, /created for server name localhost, not example\.org/);
    assert.equal((await stack.readStatus()).running, false, 'the refused up started nothing');

    await stack.up();
    assertHealthy(stack.status);
    assert.deepEqual(stack.status.endpoints, before.endpoints);
    assert.deepEqual(stack.adminCredentials(), credentials);
    const response = await login(stack.status.endpoints!.client, credentials.user_id, credentials.password);
    assert.equal(response.status, 200);
  });
  test('a supervisor killed with SIGKILL takes its components with it, and up starts again', async () => {
    const before = await stack.readStatus();
    const pids = Object.values(before.components).map((c) => c.pid!);
    process.kill(before.supervisorPid!, 'SIGKILL');
    const alive = (pid: number) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    await waitFor('every component to exit', async () => (pids.some(alive) ? undefined : true), minutes(2));
    assert.equal((await stack.readStatus()).running, false);
    await stack.up();
    assertHealthy(stack.status);
    const credentials = stack.adminCredentials();
    assert.equal((await login(stack.status.endpoints!.client, credentials.user_id, credentials.password)).status, 200);
  });
});

describe('a local stack serving an Element Web build', { timeout: minutes(10) }, () => {
  let stack: LocalStackHandle;
  let build: string;

  before(async () => {
    // A stand-in for an Element Web build: its own index.html and a config.json that must be replaced.
    build = mkdtempSync(join(tmpdir(), 'mxstack-element-'));
    writeFileSync(join(build, 'index.html'), '<!doctype html><title>Element stand-in</title>\n');
    writeFileSync(join(build, 'config.json'), '{"brand": "from the build"}\n');
    mkdirSync(join(build, 'bundles'));
    writeFileSync(join(build, 'bundles', 'app.js'), 'console.log("element");\n');
    stack = await startLocalStack({ sets: [`element.webRoot=${build}`, 'element.config.brand=Chat'] });
  });
  after(async () => {
    await stack?.dispose();
    rmSync(build, { recursive: true, force: true });
  });

  test('the router serves the build, with the generated config.json in place of its own', async () => {
    const element = stack.status.components.element;
    assert.ok(element?.healthy, 'element is run and healthy');
    const client = stack.status.endpoints!.client;
    const index = await fetch(client, { signal: AbortSignal.timeout(30_000) });
    assert.equal(index.status, 200);
    assert.match(await index.text(), /Element stand-in/);
    const bundle = await fetch(new URL('bundles/app.js', client), { signal: AbortSignal.timeout(30_000) });
    assert.equal(await bundle.text(), 'console.log("element");\n');
    const config = await getJson(new URL('config.json', client).href);
    assert.equal(config.body.brand, 'Chat');
    const server = config.body.default_server_config as { 'm.homeserver': { base_url: string } };
    assert.equal(new URL(server['m.homeserver'].base_url).href, client);
    assert.equal(readFileSync(join(build, 'config.json'), 'utf8'), '{"brand": "from the build"}\n', 'the build itself is untouched');
  });
});

describe('errors a user can fix', { timeout: minutes(5) }, () => {
  let parent: string;
  let listener: Server;

  before(async () => {
    parent = mkdtempSync(join(tmpdir(), 'mxstack-errors-'));
    listener = createServer();
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  });
  after(() => {
    listener?.close();
    rmSync(parent, { recursive: true, force: true });
  });

  test('a port in use is named with the process holding it', async () => {
    const port = (listener.address() as { port: number }).port;
    const stateDir = join(parent, 'port-in-use');
    const result = await runCliAsync(['up', '--state-dir', stateDir, '--set', `router.port=${port}`], { timeoutMs: 120_000 });
    assert.equal(result.status, 2, result.stderr);
    assert.match(result.stderr, new RegExp(`port ${port}/tcp for the router \\(router\\.port\\) is already in use by process ${process.pid} \\(node\\)`));
    // A refused command writes nothing: not even the state directory's identity (state.json) or its lock.
    assert.equal(existsSync(stateDir), false, `${stateDir} was left behind by a refused up`);
    assert.equal((await readLocalStackStatus(stateDir)).running, false);
  });

  test('a missing runtime names the command that builds it', async () => {
    const result = await runCliAsync(['up', '--state-dir', join(parent, 'no-runtime')], { env: { XDG_CACHE_HOME: join(parent, 'empty-cache') } });
    assert.equal(result.status, 2, result.stderr);
    assert.match(result.stderr, /runtime root filesystem is missing .*mxstack runtime setup/);
  });
  test('up as an ordinary user says it needs root', () => {
    const result = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, cliEntry, 'up', '--state-dir', join(parent, 'not-root')], {
      cwd: projectRoot,
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(result.status, 2, result.stderr);
    assert.match(result.stderr, /must run as root/);
  });

  test('runtime setup without mmdebstrap, when apt-get cannot install it, says what to do', async () => {
    // A PATH where mmdebstrap does not exist and apt-get fails like a machine without the package.
    const bin = join(parent, 'bin');
    mkdirSync(bin);
    symlinkSync('/bin/sh', join(bin, 'sh'));
    writeFileSync(join(bin, 'apt-get'), '#!/bin/sh\necho "E: Unable to locate package mmdebstrap" >&2\nexit 100\n');
    chmodSync(join(bin, 'apt-get'), 0o755);
    const result = await runCliAsync(['runtime', 'setup'], { env: { PATH: bin, XDG_CACHE_HOME: join(parent, 'setup-cache') }, timeoutMs: 120_000 });
    assert.equal(result.status, 2, result.stderr);
    assert.match(result.stderr, /\[apt-get\] E: Unable to locate package mmdebstrap/);
    assert.match(result.stderr, /could not install mmdebstrap with apt-get .*mxstack runtime setup/);
  });
});
