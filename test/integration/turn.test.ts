/**
 * TURN end to end: Synapse hands out time-limited credentials derived from the shared secret, and the
 * running coturn (the same turnserver.conf Kubernetes would mount) accepts exactly those, refuses a wrong
 * password, refuses relaying to private and loopback peers, and gives guests nothing.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startLocalStack, type LocalStackHandle } from '../support/local-stack.js';
import { MatrixHttpError, SynapseAdmin, matrixRequest, type MatrixSession } from '../support/matrix-client.js';
import { StunErrorResponse, TurnClient, parseTurnUri } from '../support/turn-client.js';

interface TurnServerAnswer {
  uris: string[];
  username: string;
  password: string;
  ttl: number;
}

let stack: LocalStackHandle;
let admin: SynapseAdmin;
let alice: MatrixSession;
const openClients: TurnClient[] = [];

before(async () => {
  // Guest registration on, so the test can check that guests still get no TURN credentials.
  stack = await startLocalStack({ sets: ['synapse.server.registration.allowGuests=true'] });
  const endpoints = stack.status.endpoints!;
  admin = await SynapseAdmin.login(endpoints.client, stack.adminCredentials(), endpoints.synapse);
  ({ session: alice } = await admin.createTestUser('alice-turn'));
}, { timeout: 600_000 });

after(async () => {
  for (const client of openClients) client.close();
  await stack?.dispose();
}, { timeout: 300_000 });

async function turnCredentials(session: MatrixSession): Promise<TurnServerAnswer> {
  return matrixRequest<TurnServerAnswer>(session.baseUrl, 'GET', '/_matrix/client/v3/voip/turnServer', {
    accessToken: session.accessToken,
  });
}

async function connect(uri: string): Promise<TurnClient> {
  const { host, port, transport } = parseTurnUri(uri);
  const client = await TurnClient.connect({ host, port, transport, timeoutMs: 5000 });
  openClients.push(client);
  return client;
}

function plainUri(answer: TurnServerAnswer, transport: 'udp' | 'tcp'): string {
  const uri = answer.uris.find((candidate) => {
    const parsed = parseTurnUri(candidate);
    return !parsed.secure && parsed.transport === transport;
  });
  assert.ok(uri, `no turn: URI with transport=${transport} among ${answer.uris.join(', ')}`);
  return uri;
}

test('voip/turnServer returns the stack\'s TURN URIs and credentials that expire', { timeout: 60_000 }, async () => {
  const answer = await turnCredentials(alice);
  assert.deepEqual([...answer.uris].sort(), [...stack.status.endpoints!.turn].sort());
  assert.ok(answer.ttl > 0 && answer.ttl <= 86_400, `ttl ${answer.ttl}`);
  const [expiry, userId] = [answer.username.slice(0, answer.username.indexOf(':')), answer.username.slice(answer.username.indexOf(':') + 1)];
  assert.equal(userId, alice.userId);
  const secondsLeft = Number(expiry) - Date.now() / 1000;
  assert.ok(secondsLeft > 0 && secondsLeft <= answer.ttl + 5, `username expiry ${expiry} vs ttl ${answer.ttl}`);
  assert.match(answer.password, /^[A-Za-z0-9+/]+=*$/);
});

test('a real Allocate over UDP succeeds with Synapse-issued credentials, and Refresh(0) releases it', { timeout: 60_000 }, async () => {
  const answer = await turnCredentials(alice);
  const uri = plainUri(answer, 'udp');
  const client = await connect(uri);
  const allocation = await client.allocate({ username: answer.username, password: answer.password });
  assert.equal(allocation.relayedAddress.family, 'IPv4');
  assert.ok(allocation.relayedAddress.port > 0);
  assert.ok(allocation.lifetimeSeconds > 0);
  assert.ok(allocation.mappedAddress, 'Allocate success carries XOR-MAPPED-ADDRESS');

  assert.ok((await client.refresh(300)) > 0, 'Refresh keeps the allocation alive');
  await client.release();
  // coturn deletes the allocation about a second after Refresh(0), and any request before that restarts
  // the wait; so probe only after growing quiet periods. Once deleted, the 5-tuple has no allocation: 437.
  let code: number | undefined;
  for (const quietMs of [2_000, 4_000, 8_000]) {
    await new Promise((resolve) => setTimeout(resolve, quietMs));
    code = await client.release().then(
      () => undefined,
      (error: unknown) => (error instanceof StunErrorResponse ? error.code : Promise.reject(error)),
    );
    if (code !== undefined) break;
  }
  assert.equal(code, 437, 'after release the allocation is gone (437 Allocation Mismatch)');
});

test('Allocate over TCP succeeds too when a transport=tcp URI is offered', { timeout: 60_000 }, async (t) => {
  const answer = await turnCredentials(alice);
  const tcpUri = answer.uris.find((uri) => !parseTurnUri(uri).secure && parseTurnUri(uri).transport === 'tcp');
  if (!tcpUri) {
    t.skip('the stack offers no plain TCP TURN URI');
    return;
  }
  const client = await connect(tcpUri);
  const allocation = await client.allocate({ username: answer.username, password: answer.password });
  assert.ok(allocation.relayedAddress.port > 0);
  await client.release();
});

test('a wrong password is refused with 401', { timeout: 60_000 }, async () => {
  const answer = await turnCredentials(alice);
  const client = await connect(plainUri(answer, 'udp'));
  const wrongPassword = Buffer.from(Buffer.from(answer.password, 'base64').map((byte) => byte ^ 0xff)).toString('base64');
  await assert.rejects(client.allocate({ username: answer.username, password: wrongPassword }), (error: unknown) => {
    assert.ok(error instanceof StunErrorResponse, String(error));
    assert.equal(error.code, 401);
    return true;
  });
});

test('a password is valid only for the username it was issued for (no forged expiry)', { timeout: 60_000 }, async () => {
  const answer = await turnCredentials(alice);
  const client = await connect(plainUri(answer, 'udp'));
  // The password is HMAC(secret, username): a changed expiry (here: already past) must not pass.
  const expired = `${Math.floor(Date.now() / 1000) - 60}:${alice.userId}`;
  await assert.rejects(client.allocate({ username: expired, password: answer.password }), (error: unknown) => {
    assert.ok(error instanceof StunErrorResponse && error.code === 401, String(error));
    return true;
  });
});

test('CreatePermission to private and loopback peers is refused with 403; a public peer is allowed', { timeout: 60_000 }, async () => {
  const answer = await turnCredentials(alice);
  const client = await connect(plainUri(answer, 'udp'));
  await client.allocate({ username: answer.username, password: answer.password });
  for (const peer of ['10.0.0.1', '127.0.0.1', '192.168.1.1', '172.16.0.1', '169.254.169.254']) {
    await assert.rejects(client.createPermission(peer), (error: unknown) => {
      assert.ok(error instanceof StunErrorResponse, `${peer}: ${String(error)}`);
      assert.equal(error.code, 403, `CreatePermission to ${peer}`);
      return true;
    });
  }
  // A permission only installs state in coturn: no packet is sent to the peer.
  await client.createPermission('8.8.8.8');
  await client.release();
});

test('guests get no TURN credentials', { timeout: 60_000 }, async () => {
  const endpoints = stack.status.endpoints!;
  const guest = await matrixRequest<{ access_token: string; user_id: string }>(
    endpoints.client,
    'POST',
    '/_matrix/client/v3/register?kind=guest',
    { body: {} },
  );
  const session: MatrixSession = { baseUrl: endpoints.client, userId: guest.user_id, accessToken: guest.access_token };
  await assert.rejects(turnCredentials(session), (error: unknown) => {
    assert.ok(error instanceof MatrixHttpError, String(error));
    assert.equal(error.status, 403);
    return true;
  });
  // The same guest token works elsewhere, so the refusal is about TURN, not a broken session.
  const whoami = await matrixRequest<{ user_id: string }>(endpoints.client, 'GET', '/_matrix/client/v3/account/whoami', {
    accessToken: session.accessToken,
  });
  assert.equal(whoami.user_id, guest.user_id);
});
