/**
 * Federation, proven: two local stacks with different server names federate over TLS through their
 * routers' federation listeners (router.federation), each trusting a CA this test creates
 * (synapse.server.federation.customCa, Synapse's federation_custom_ca_list). A user on one invites a user
 * on two, who joins; messages go both ways and arrive through matrix-js-sdk's /sync.
 *
 * Why the server names are `localhost:<port>`: Synapse resolves another server's name before it connects,
 * and a name like one.test needs DNS or an /etc/hosts entry (the runtime's /etc/hosts is shared and
 * read-only). A server name with an explicit port is connected to at that port after a plain address
 * lookup, with no well-known or SRV lookup (the Matrix specification's server discovery, step 2), and
 * `localhost` is in every /etc/hosts. So each stack is named after its own federation listener: the same
 * host, different free ports, different server names; the test CA issues each listener a certificate for
 * localhost. Not `127.0.0.1:<port>`: Synapse checks IP-literal server names against ip_range_blacklist
 * without its whitelist, so loopback literals are always refused. Synapse does refuse loopback addresses
 * by default (ip_range_blacklist) for resolved names too: the test allows 127.0.0.1 and ::1 through
 * synapse.server.federation.ipRangeWhitelist, lists both names in federation.domainWhitelist and empties
 * trustedKeyServers, so no request ever leaves this machine (keys are fetched from the servers themselves).
 *
 * MXSTACK_TEST_WORKERS_PRESET=small runs both stacks with that synapse.workers preset: then the federation
 * reader, inbound and sender pools take the traffic. The test checks from the access logs that the other
 * server's requests reached the reader and inbound workers through the router, and from every Synapse
 * process's Prometheus metrics that the federation sender, and no other process, sent the outgoing
 * transactions (Synapse logs those only at DEBUG). With the default, none (two single Synapse processes),
 * the same metric proves the main process sent them, so the counter the worker check reads is the right one.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { startLocalStack, testPresetRuns, testWorkersPreset, type LocalStackHandle } from '../support/local-stack.js';
import { createTestCa, getOverTls, issueServerCertificate, type TestCa } from '../support/test-ca.js';
import { freeLoopbackPort } from '../support/component-stacks.js';
import { collectLiveMessages, matrixRequest, sendText, serverNameOf, startSyncedClient, SynapseAdmin, waitUntil, type MatrixSession, type SyncedClient } from '../support/matrix-client.js';
import { stateLayout } from '../../src/targets/local/state.js';
import { runtimeDir, runtimeUser } from '../../src/targets/local/runtime.js';

const workersPreset = testWorkersPreset;
const loopbackAddress = '127.0.0.1';
const listenerHost = 'localhost';

let parent: string;
const stacks: LocalStackHandle[] = [];
let one: LocalStackHandle;
let two: LocalStackHandle;
let alice: MatrixSession;
let bob: MatrixSession;
let roomId: string;
let caPem: string;
const openClients: SyncedClient[] = [];

/**
 * The federation listener's certificate (localhost, and its address) signed by the CA, placed where the local
 * target reads it (<state>/router/federation-tls/tls.crt and tls.key), owned by the runtime's haproxy user.
 */
function placeListenerCertificate(ca: TestCa, stateDir: string): void {
  const { cert, key } = issueServerCertificate(ca, stateLayout(stateDir).routerFederationTlsDir, { dnsName: listenerHost, ipAddress: loopbackAddress });
  const haproxy = runtimeUser(runtimeDir(), 'haproxy');
  for (const file of [key, cert]) chownSync(file, haproxy.uid, haproxy.gid);
  chmodSync(key, 0o600);
  chmodSync(cert, 0o644);
}

/** The values of one of the two stacks: named after its federation listener, trusting the test CA only. */
function federationValues(serverName: string, port: number, serverNames: string[], caPem: string): Record<string, unknown> {
  return {
    synapse: {
      server: {
        name: serverName,
        // localhost resolves to 127.0.0.1 and ::1, and Synapse drops a whole lookup when any address is blocked.
        federation: { enabled: true, domainWhitelist: serverNames, trustedKeyServers: [], customCa: caPem, ipRangeWhitelist: [`${loopbackAddress}/32`, '::1/128'] },
        turn: { enabled: false },
      },
      ...(workersPreset === 'none' ? {} : { workers: { preset: workersPreset } }),
    },
    router: { federation: { enabled: true, port, tls: { secretName: 'federation-tls' } } },
    coturn: { enabled: false },
  };
}

before(async () => {
  parent = mkdtempSync(join(tmpdir(), 'mxstack-federation-'));
  // The supervisor's programs run as other users and enter the state directories below.
  chmodSync(parent, 0o711);
  const ca = createTestCa(join(parent, 'ca'), 'mxstack federation test CA');
  caPem = ca.pem;
  const ports = [await freeLoopbackPort(), await freeLoopbackPort()];
  const serverNames = ports.map((port) => `${listenerHost}:${port}`);
  const starts = ['one', 'two'].map(async (name, index) => {
    const stateDir = join(parent, name, 'state');
    mkdirSync(join(parent, name), { mode: 0o711 });
    placeListenerCertificate(ca, stateDir);
    const valuesFile = join(parent, name, 'values.yaml');
    writeFileSync(valuesFile, stringify(federationValues(serverNames[index]!, ports[index]!, serverNames, caPem)));
    const stack = await startLocalStack({ stateDir, valuesFiles: [valuesFile], timeoutMs: 1_500_000 });
    stacks.push(stack);
    return stack;
  });
  const started = await Promise.allSettled(starts);
  const failure = started.find((result): result is PromiseRejectedResult => result.status === 'rejected');
  if (failure) throw failure.reason;
  [one, two] = started.map((result) => (result as PromiseFulfilledResult<LocalStackHandle>).value) as [LocalStackHandle, LocalStackHandle];
}, { timeout: 1_600_000 });

after(async () => {
  for (const client of openClients) client.stop();
  for (const stack of stacks) await stack.dispose().catch((error: unknown) => console.error(error));
  if (parent) rmSync(parent, { recursive: true, force: true });
}, { timeout: 600_000 });

async function testUser(stack: LocalStackHandle, localpart: string): Promise<MatrixSession> {
  const endpoints = stack.status.endpoints!;
  const admin = await SynapseAdmin.login(endpoints.client, stack.adminCredentials(), endpoints.synapse);
  return (await admin.createTestUser(localpart)).session;
}

async function syncedClient(session: MatrixSession): Promise<SyncedClient> {
  const client = await startSyncedClient(session, 120_000);
  openClients.push(client);
  return client;
}

/** GET over TLS from the listener of `serverName` (localhost:<port>), its certificate checked for localhost against the test CA alone, as Synapse does. */
async function getFromListener(serverName: string, path: string): Promise<{ status: number; body: unknown }> {
  const answer = await getOverTls({ host: loopbackAddress, port: Number(serverName.split(':')[1]), path, servername: listenerHost, ca: caPem });
  return { status: answer.status, body: JSON.parse(answer.body) as unknown };
}

test('each stack announces its federation listener, which serves its signing key over TLS with the CA\'s certificate', { timeout: 120_000 }, async () => {
  for (const stack of [one, two]) {
    const serverName = serverNameOf(stack.adminCredentials().user_id);
    const wellKnown = await fetch(new URL('/.well-known/matrix/server', stack.status.endpoints!.wellKnown), { signal: AbortSignal.timeout(10_000) });
    assert.equal(wellKnown.status, 200);
    assert.deepEqual(await wellKnown.json(), { 'm.server': `${loopbackAddress}:${serverName.split(':')[1]}` });

    const key = await getFromListener(serverName, '/_matrix/key/v2/server');
    assert.equal(key.status, 200);
    assert.equal((key.body as { server_name?: string }).server_name, serverName);
    // The listener serves the federation API only: the client API stays on the public port.
    const client = await getFromListener(serverName, '/_matrix/client/versions');
    assert.equal(client.status, 404);
  }
});

test('a user on one invites a user on two, who joins over federation', { timeout: 600_000 }, async () => {
  alice = await testUser(one, 'alice');
  bob = await testUser(two, 'bob');
  assert.notEqual(one.status.serverName, two.status.serverName);
  const bobClient = await syncedClient(bob);

  ({ room_id: roomId } = await matrixRequest<{ room_id: string }>(alice.baseUrl, 'POST', '/_matrix/client/v3/createRoom', {
    accessToken: alice.accessToken,
    body: { preset: 'private_chat', name: 'federated', invite: [bob.userId] },
    timeoutMs: 180_000,
  }));
  await waitUntil(`the invite reaches ${bob.userId}`, 240_000, async () => (bobClient.client.getRoom(roomId)?.getMyMembership() === 'invite' ? true : undefined));

  const query = new URLSearchParams({ server_name: serverNameOf(alice.userId) });
  await matrixRequest(bob.baseUrl, 'POST', `/_matrix/client/v3/join/${encodeURIComponent(roomId)}?${query}`, { accessToken: bob.accessToken, body: {}, timeoutMs: 180_000 });
  const members = await waitUntil(`${one.status.serverName} sees ${bob.userId} joined`, 240_000, async () => {
    const answer = await matrixRequest<{ joined: Record<string, unknown> }>(alice.baseUrl, 'GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/joined_members`, {
      accessToken: alice.accessToken,
    });
    return bob.userId in answer.joined ? answer.joined : undefined;
  });
  assert.deepEqual(Object.keys(members).sort(), [alice.userId, bob.userId].sort());
});

test('messages go both ways and arrive through /sync', { timeout: 600_000 }, async () => {
  const aliceClient = await syncedClient(alice);
  const bobClient = openClients[0]!;
  const toBob = ['from one 1', 'from one 2', 'from one 3'];
  const toAlice = ['from two 1', 'from two 2', 'from two 3'];
  const atBob = collectLiveMessages(bobClient.client, roomId);
  const atAlice = collectLiveMessages(aliceClient.client, roomId);
  try {
    for (const [index, body] of toBob.entries()) await sendText(alice, roomId, body, `one-${index}`);
    await atBob.waitFor(toBob.length, 240_000);
    assert.deepEqual(atBob.bodies, toBob);

    for (const [index, body] of toAlice.entries()) await sendText(bob, roomId, body, `two-${index}`);
    await atAlice.waitFor(toBob.length + toAlice.length, 240_000);
    assert.deepEqual(atAlice.bodies, [...toBob, ...toAlice]);
    await atBob.waitFor(toBob.length + toAlice.length, 60_000);
    assert.deepEqual(atBob.bodies, [...toBob, ...toAlice]);
  } finally {
    atBob.stop();
    atAlice.stop();
  }
});

/** The access log lines of one process (Synapse logs each request it answered at INFO). */
function requestLines(stack: LocalStackHandle, component: string, path: RegExp): string[] {
  const log = readFileSync(stateLayout(stack.stateDir).logFile(component), 'utf8');
  return log.split('\n').filter((line) => line.includes('synapse.access.') && path.test(line));
}

/** The sum of a counter's samples (every label set) in the Prometheus text of one Synapse process's metrics listener; 0 when it has none. */
async function counterOf(stack: LocalStackHandle, component: string, counter: string): Promise<number> {
  const port = stack.status.components[component]?.ports.metrics;
  assert.ok(port, `${component} of ${stack.status.serverName} has a metrics listener`);
  const response = await fetch(`http://${loopbackAddress}:${port}/_synapse/metrics`, { signal: AbortSignal.timeout(30_000) });
  assert.equal(response.status, 200, `${component}'s metrics`);
  const samples = (await response.text()).split('\n').filter((line) => line.startsWith(`${counter}{`) || line.startsWith(`${counter} `));
  return samples.reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
}

/** Every Synapse process of a stack that has a metrics listener (the main process and each worker). */
const synapseProcesses = (stack: LocalStackHandle): string[] =>
  Object.entries(stack.status.components)
    .filter(([name, report]) => (name === 'synapse' || name.startsWith('synapse-')) && report.ports.metrics !== undefined)
    .map(([name]) => name);

/** Synapse counts each transaction it sent to another server (PDUs and EDUs in one PUT /send) in the process that sent it. */
const sentTransactions = 'synapse_federation_client_sent_transactions_total';

/** The processes that may send to other servers: the federation sender pool when the preset runs one, else the main process. */
const federationSenders = (processes: string[]): string[] =>
  testPresetRuns('federationSender') ? processes.filter((name) => /^synapse-federation-sender-\d+$/.test(name)) : processes.filter((name) => name === 'synapse');

test('outgoing transactions were sent by the federation sender pool where the preset runs one, else by the main process', { timeout: 180_000 }, async (t) => {
  for (const stack of [one, two]) {
    const processes = synapseProcesses(stack);
    const senders = federationSenders(processes);
    assert.ok(senders.length > 0, `${stack.status.serverName} runs a federation sender (its processes: ${processes.join(', ')})`);
    const countsOf = (names: string[]) => Promise.all(names.map(async (name) => ({ name, count: await counterOf(stack, name, sentTransactions) })));
    // The receiver may show the events before the sender has counted the answered transaction: wait for the count.
    const sent = await waitUntil(`a federation sender of ${stack.status.serverName} counts its sent transactions`, 120_000, async () => {
      const counts = await countsOf(senders);
      return counts.some((sender) => sender.count > 0) ? counts : undefined;
    }).catch(async (error: unknown) => {
      const counts = (await countsOf(processes)).map(({ name, count }) => `${name}: ${count}`);
      throw new Error(`${error instanceof Error ? error.message : String(error)}; ${sentTransactions} per process: ${counts.join(', ')}`);
    });
    // Synapse shards the destinations over the sender pool: the one other server is always one sender's.
    const sending = sent.filter((sender) => sender.count > 0);
    assert.equal(sending.length, 1, `one sender sends to the one destination: ${sent.map(({ name, count }) => `${name}: ${count}`).join(', ')}`);
    const summary = `${sending[0]!.name} sent ${sending[0]!.count}`;
    for (const other of processes.filter((name) => name !== sending[0]!.name)) {
      assert.equal(await counterOf(stack, other, sentTransactions), 0, `${other} of ${stack.status.serverName} sent no federation transaction (${summary})`);
    }
    t.diagnostic(`${stack.status.serverName}: ${summary} transactions; ${processes.length - 1} other Synapse processes sent none`);
  }
});

test('with workers, the federation pools answered the other server\'s requests', {
  timeout: 60_000,
  skip: testPresetRuns('federationReader') && testPresetRuns('federationInbound') ? false : `the preset (${workersPreset}) runs no federation reader and inbound workers`,
}, () => {
  // Bob's join asked one's federation reader for the join template (make_join) and sent the join (send_join).
  assert.ok(requestLines(one, 'synapse-federation-reader-1', /\/_matrix\/federation\/v1\/make_join\//).length > 0, 'one\'s federation reader answered make_join');
  // Every message crossed in a transaction (/send), which the inbound pool takes.
  for (const stack of [one, two]) {
    const transactions = requestLines(stack, 'synapse-federation-inbound-1', /\/_matrix\/federation\/v1\/send\//);
    assert.ok(transactions.length > 0, `${stack.status.serverName}'s federation inbound worker answered transactions`);
    assert.deepEqual(requestLines(stack, 'synapse', /\/_matrix\/federation\/v1\/send\//), [], `${stack.status.serverName}'s main process answered no transaction`);
  }
});
