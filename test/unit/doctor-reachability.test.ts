/**
 * The doctor on a release whose public URL does not resolve where it runs (finding 8 of issue 17): such
 * an endpoint is "not reachable from here", reported once as a warning, and its checks run through the
 * cluster instead (a stand-in router on loopback plays the port-forwarded router Service), where a broken
 * answer still fails. Without a route into the cluster the check fails as before.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { checkCertificates, checkClientVersions, reachabilityChecks, type DoctorEnvironment } from '../../src/ops/doctor/checks.js';

/** `.invalid` never resolves (RFC 6761): the public name as seen from a machine outside the deployment. */
const publicBase = 'https://matrix.example.invalid/';
let routerStatus = 200;
let router: Server;
let routerBase: string;
const seenPaths: string[] = [];

before(async () => {
  router = createServer((request, response) => {
    seenPaths.push(request.url ?? '');
    response.writeHead(routerStatus, { 'content-type': 'application/json' });
    response.end(routerStatus === 200 ? JSON.stringify({ versions: ['v1.11', 'v1.12'] }) : '{}');
  });
  await new Promise<void>((resolve) => router.listen(0, '127.0.0.1', resolve));
  routerBase = `http://127.0.0.1:${(router.address() as AddressInfo).port}/`;
});

after(() => new Promise<void>((resolve) => router.close(() => resolve())));

function environment(throughCluster: boolean): DoctorEnvironment {
  return {
    clientBaseUrl: publicBase,
    publicUrls: [publicBase],
    logsHint: () => '`kubectl logs`',
    ...(throughCluster ? { throughCluster: { withRouter: <T>(use: (base: string) => Promise<T>) => use(routerBase) } } : {}),
  } as unknown as DoctorEnvironment;
}

test('a public URL not reachable from here is checked through the cluster and reported as a warning, not a failure', async () => {
  routerStatus = 200;
  const env = environment(true);
  const [versions] = await checkClientVersions(env);
  assert.equal(versions!.status, 'pass', versions!.detail);
  assert.ok(seenPaths.includes('/_matrix/client/versions'));
  const [reachability, ...more] = reachabilityChecks(env);
  assert.equal(more.length, 0);
  assert.equal(reachability!.status, 'warn');
  assert.match(reachability!.name, /https:\/\/matrix\.example\.invalid/);
  assert.match(reachability!.detail, /not reachable from here/);
  assert.match(reachability!.detail, /\/_matrix\/client\/versions/);
});

test('through the cluster a broken answer still fails', async () => {
  routerStatus = 502;
  const [versions] = await checkClientVersions(environment(true));
  assert.equal(versions!.status, 'fail');
  assert.match(versions!.detail, /HTTP 502/);
});

test('without a route into the cluster, an unreachable public URL fails as before', async () => {
  const env = environment(false);
  const [versions] = await checkClientVersions(env);
  assert.equal(versions!.status, 'fail');
  assert.deepEqual(reachabilityChecks(env), []);
});

test('a certificate whose host does not resolve from here is a warning saying so', async () => {
  const env = environment(true);
  const [certificate] = await checkCertificates(env);
  assert.equal(certificate!.status, 'warn', certificate!.detail);
  assert.match(certificate!.detail, /not reachable from here/);
});
