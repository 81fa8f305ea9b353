/**
 * `mxstack users list --kubernetes` end to end through the recording fake kubectl: the admin credentials
 * come from the release's Secret, Synapse is reached through `kubectl port-forward` (answered here by a
 * stand-in Synapse on loopback), the access token is cached in a Secret, and no secret is ever on a
 * kubectl command line.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
// Asynchronous: the stand-in Synapse answers from this process's event loop while the CLI runs.
import { runCliAsync } from '../support/local-stack.js';
import { fakeKubectlDir } from '../support/fake-kubectl.js';

/** Everything this file writes (exported secrets among them) is under one directory, removed at the end. */
const workDir = mkdtempSync(join(tmpdir(), 'mxstack-ops-kubernetes-'));
after(() => rmSync(workDir, { recursive: true, force: true }));
let synapse: Server;
let synapsePort: number;
const seen: string[] = [];

before(async () => {
  synapse = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString()));
    request.on('end', () => {
      const path = new URL(request.url ?? '/', 'http://x').pathname;
      seen.push(`${request.method} ${path}`);
      const reply = (status: number, value: unknown) => {
        response.writeHead(status, { 'content-type': 'application/json' });
        response.end(JSON.stringify(value));
      };
      const authorized = request.headers.authorization === 'Bearer token-from-login';
      if (path === '/_matrix/client/v3/login') {
        const login = JSON.parse(body) as { identifier: { user: string }; password: string };
        return login.identifier.user === 'root' && login.password === 'stored-admin-password'
          ? reply(200, { user_id: '@root:chat.example', access_token: 'token-from-login' })
          : reply(403, { errcode: 'M_FORBIDDEN' });
      }
      if (!authorized) return reply(401, { errcode: 'M_UNKNOWN_TOKEN' });
      if (path === '/_matrix/client/v3/account/whoami') return reply(200, { user_id: '@root:chat.example' });
      if (path === '/_synapse/admin/v1/users/%40root%3Achat.example/admin') return reply(200, { admin: true });
      if (path === '/_synapse/admin/v2/users') {
        return reply(200, { users: [{ name: '@root:chat.example', admin: 1, deactivated: 0, is_guest: 0 }, { name: '@ann:chat.example', admin: 0, deactivated: 0, is_guest: 0 }], total: 2 });
      }
      return reply(404, { errcode: 'M_NOT_FOUND' });
    });
  });
  await new Promise<void>((resolve) => synapse.listen(0, '127.0.0.1', resolve));
  synapsePort = (synapse.address() as AddressInfo).port;
});

after(() => new Promise<void>((resolve) => synapse.close(() => resolve())));

const secretJson = (name: string, data: Record<string, string>) =>
  JSON.stringify({ kind: 'Secret', metadata: { name }, data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')])) });

test('users list --kubernetes: credentials from the Secret, Synapse through port-forward, token cached, no secret in argv', async () => {
  const dir = mkdtempSync(join(workDir, 'fake-kubectl-'));
  writeFileSync(
    join(dir, 'script.json'),
    JSON.stringify([
      { match: ['get', 'secret/mx-admin-token'], stdout: '' },
      { match: ['get', 'secret/mx-admin-credentials'], stdout: secretJson('mx-admin-credentials', { username: 'root', password: 'stored-admin-password' }) },
      { match: ['port-forward', 'service/mx-synapse', ':8008'], stdout: `Forwarding from 127.0.0.1:${synapsePort} -> 8008\n` },
      { match: ['create', '--namespace=chat'], stdout: '@names' },
    ]),
  );
  const result = await runCliAsync(
    ['users', 'list', '--kubernetes', '--context', 'prod', '-n', 'chat', '--release', 'mx', '--set', 'synapse.server.name=chat.example', '--output', 'json'],
    { env: { PATH: `${fakeKubectlDir}:${process.env.PATH}`, FAKE_KUBECTL_DIR: dir }, timeoutMs: 120_000 },
  );
  assert.equal(result.status, 0, result.stderr);
  assert.deepEqual((JSON.parse(result.stdout) as { user_id: string; admin: boolean }[]).map((u) => [u.user_id, u.admin]), [['@root:chat.example', true], ['@ann:chat.example', false]]);
  assert.deepEqual(seen.slice(0, 2), ['POST /_matrix/client/v3/login', 'GET /_matrix/client/v3/account/whoami']);

  const calls = readFileSync(join(dir, 'calls.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line) as { argv: string[]; stdin: string });
  const forward = calls.find((c) => c.argv.includes('port-forward'))!;
  assert.deepEqual(forward.argv, ['--context=prod', 'port-forward', '--namespace=chat', '--address=127.0.0.1', 'service/mx-synapse', ':8008']);
  for (const call of calls) {
    for (const secret of ['stored-admin-password', 'token-from-login']) assert.ok(!call.argv.join(' ').includes(secret), `secret on kubectl's command line: ${call.argv.join(' ')}`);
  }
  const cached = calls.find((c) => c.argv.includes('create'))!;
  assert.match(cached.stdin, /name: mx-admin-token/);
  assert.match(cached.stdin, new RegExp(`access-token: ${Buffer.from('token-from-login').toString('base64')}`));
});
