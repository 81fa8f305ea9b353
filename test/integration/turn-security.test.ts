/**
 * TURN security beyond test/integration/turn.test.ts (which covers allocate, 401 for a wrong password,
 * 403 for denied peers, no credentials for guests):
 *
 * - expired credentials are refused: a username with a past expiry whose password is the correct HMAC,
 *   computed with the real shared secret read from the stack's secrets directory (the same computation
 *   with a future expiry allocates, so the refusal is the expiry's doing);
 * - with a certificate configured (coturn.tls.enabled), coturn listens for TLS: Synapse hands out a
 *   turns: URI, the handshake presents the configured certificate, and Synapse's credentials allocate
 *   through it. The certificate is a self-signed one the test makes with openssl, placed where the local
 *   target expects it (<state>/coturn/tls/tls.crt and tls.key, readable by coturn's user).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, X509Certificate } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { chownSync, chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startLocalStack, type LocalStackHandle } from '../support/local-stack.js';
import { SynapseAdmin, matrixRequest, type MatrixSession } from '../support/matrix-client.js';
import { StunErrorResponse, TurnClient, parseTurnUri } from '../support/turn-client.js';
import { LocalTarget } from '../../src/targets/local/target-adapter.js';
import { stateLayout } from '../../src/targets/local/state.js';
import { runtimeDir, runtimeUser } from '../../src/targets/local/runtime.js';

interface TurnServerAnswer {
  uris: string[];
  username: string;
  password: string;
  ttl: number;
}

let parent: string;
let stack: LocalStackHandle;
let alice: MatrixSession;
let certificatePem: string;
const openClients: TurnClient[] = [];

/** A self-signed certificate for 127.0.0.1 (IP SAN), valid two days, key and certificate owned by coturn's user. */
function writeCertificate(tlsDir: string): string {
  mkdirSync(tlsDir, { recursive: true });
  const keyFile = join(tlsDir, 'tls.key');
  const certFile = join(tlsDir, 'tls.crt');
  const result = spawnSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', '/CN=turn.mxstack.test', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', keyFile, '-out', certFile],
    { encoding: 'utf8', timeout: 30_000 },
  );
  assert.equal(result.status, 0, result.stderr);
  const coturnUser = runtimeUser(runtimeDir(), 'turnserver');
  for (const file of [keyFile, certFile]) chownSync(file, coturnUser.uid, coturnUser.gid);
  chmodSync(keyFile, 0o600);
  chmodSync(certFile, 0o644);
  return readFileSync(certFile, 'utf8');
}

before(async () => {
  parent = mkdtempSync(join(tmpdir(), 'mxstack-turnsec-'));
  const stateDir = join(parent, 'state');
  certificatePem = writeCertificate(stateLayout(stateDir).coturnTlsDir);
  stack = await startLocalStack({ stateDir, sets: ['coturn.tls.enabled=true', 'coturn.tls.secretName=turn-tls'] });
  const endpoints = stack.status.endpoints!;
  const admin = await SynapseAdmin.login(endpoints.client, stack.adminCredentials(), endpoints.synapse);
  ({ session: alice } = await admin.createTestUser('alice-turnsec'));
}, { timeout: 600_000 });

after(async () => {
  for (const client of openClients) client.close();
  await stack?.dispose();
  if (parent) rmSync(parent, { recursive: true, force: true });
}, { timeout: 300_000 });

function turnCredentials(): Promise<TurnServerAnswer> {
  return matrixRequest<TurnServerAnswer>(alice.baseUrl, 'GET', '/_matrix/client/v3/voip/turnServer', { accessToken: alice.accessToken });
}

async function connect(uri: string, tls?: { ca: string }): Promise<TurnClient> {
  const { host, port, transport } = parseTurnUri(uri);
  const client = await TurnClient.connect({ host, port, transport, timeoutMs: 5000, ...(tls ? { tls } : {}) });
  openClients.push(client);
  return client;
}

async function sharedSecret(): Promise<string> {
  const target = new LocalTarget({ stateDir: stack.stateDir });
  const secret = await target.readSecret(target.stack.secrets.turnSharedSecret);
  assert.ok(secret, 'the TURN shared secret is stored in the secrets directory');
  return secret.trim();
}

/** What Synapse computes: username "<expiry>:<user id>", password base64(HMAC-SHA1(secret, username)). */
function credentialsExpiringAt(secret: string, expirySeconds: number, userId: string) {
  const username = `${expirySeconds}:${userId}`;
  return { username, password: createHmac('sha1', secret).update(username).digest('base64') };
}

function udpUri(uris: string[]): string {
  const uri = uris.find((candidate) => !parseTurnUri(candidate).secure && parseTurnUri(candidate).transport === 'udp');
  assert.ok(uri, `a turn: UDP URI among ${uris.join(', ')}`);
  return uri;
}

test('credentials computed with the real secret allocate while unexpired (the computation is Synapse\'s)', { timeout: 60_000 }, async () => {
  const answer = await turnCredentials();
  const secret = await sharedSecret();
  // Synapse's own answer is reproduced exactly from the stored secret.
  assert.equal(credentialsExpiringAt(secret, Number(answer.username.split(':')[0]), alice.userId).password, answer.password);
  const client = await connect(udpUri(answer.uris));
  const allocation = await client.allocate(credentialsExpiringAt(secret, Math.floor(Date.now() / 1000) + 600, alice.userId));
  assert.ok(allocation.relayedAddress.port > 0);
  await client.release();
});

test('expired credentials with a correct HMAC are refused with 401', { timeout: 60_000 }, async () => {
  const answer = await turnCredentials();
  const secret = await sharedSecret();
  for (const secondsAgo of [5, 3600]) {
    const client = await connect(udpUri(answer.uris));
    const expired = credentialsExpiringAt(secret, Math.floor(Date.now() / 1000) - secondsAgo, alice.userId);
    await assert.rejects(client.allocate(expired), (error: unknown) => {
      assert.ok(error instanceof StunErrorResponse, String(error));
      assert.equal(error.code, 401, `expired ${secondsAgo} s ago`);
      return true;
    });
  }
});

test('with a certificate configured, Synapse offers a turns: URI and coturn allocates over TLS with that certificate', { timeout: 60_000 }, async () => {
  const answer = await turnCredentials();
  const turnsUri = answer.uris.find((uri) => parseTurnUri(uri).secure);
  assert.ok(turnsUri, `a turns: URI among ${answer.uris.join(', ')}`);
  assert.ok(stack.status.endpoints!.turn.includes(turnsUri));
  // Trusting only the test's certificate: the handshake succeeds only if coturn presents exactly it.
  const client = await connect(turnsUri, { ca: certificatePem });
  assert.ok(client.tlsPeer?.authorized, `certificate not trusted: ${client.tlsPeer?.authorizationError}`);
  assert.equal(new Date(client.tlsPeer.validTo!).getTime(), new Date(new X509Certificate(certificatePem).validTo).getTime());
  const allocation = await client.allocate({ username: answer.username, password: answer.password });
  assert.ok(allocation.relayedAddress.port > 0);
  await client.release();
});

test('over TLS, a wrong password is still 401 and a denied peer still 403', { timeout: 60_000 }, async () => {
  const answer = await turnCredentials();
  const turnsUri = answer.uris.find((uri) => parseTurnUri(uri).secure)!;
  const wrong = await connect(turnsUri, { ca: certificatePem });
  await assert.rejects(wrong.allocate({ username: answer.username, password: `${answer.password}x` }), (error: unknown) => error instanceof StunErrorResponse && error.code === 401);
  const client = await connect(turnsUri, { ca: certificatePem });
  await client.allocate({ username: answer.username, password: answer.password });
  await assert.rejects(client.createPermission('127.0.0.1'), (error: unknown) => error instanceof StunErrorResponse && error.code === 403);
  await client.release();
});
