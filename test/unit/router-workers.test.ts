/**
 * The routing table compiled into HAProxy: checked by the real HAProxy 3.2 of the runtime, and run with
 * stand-in worker processes (small Node HTTP servers on the workers' ports; the routing, the fallback and
 * the queue limit are the router's, which is what is tested here).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { renderRouterConfig, routerConfigFiles } from '../../src/components/router/config.js';
import { synapseRoutes } from '../../src/components/synapse/routes.js';
import type { Stack } from '../../src/stack/model.js';
import { workerProcesses } from '../../src/values/worker-pools.js';
import {
  fetchUntilUp,
  freeLoopbackPort,
  kubernetesStack,
  localStack,
  rootfsScratch,
  rootfsUnavailable,
  runInRootfs,
  runRuntimeRouter,
  runtimeRootfs,
  withRouterConfigDir,
  writeFiles,
} from '../support/component-stacks.js';

type Tree = Record<string, unknown>;
const workers = (preset: string, extra: Tree = {}): Tree => ({ synapse: { workers: { preset, ...extra } } });

const sectionOf = (cfg: string, header: string): string[] => {
  const block = cfg.split('\n\n').find((b) => b.startsWith(`${header}\n`));
  assert.ok(block, `section "${header}" present`);
  return block.split('\n').slice(1).map((line) => line.trim());
};

test('without workers the router configuration has no pool backend and no worker rule', () => {
  const cfg = renderRouterConfig(kubernetesStack());
  assert.doesNotMatch(cfg, /backend synapse_|X-Mxstack-Balance/);
});

test('every rule of the table whose pool runs becomes a use_backend line, in order, each guarded by its backend being up unless the main process cannot stand in', () => {
  const stack = localStack(workers('small'), '/tmp/router-workers', 30000);
  const frontend = sectionOf(renderRouterConfig(stack), 'frontend matrix');
  const rules = frontend.filter((line) => line.startsWith('use_backend synapse_'));
  assert.equal(rules.length, synapseRoutes.filter((route) => route.pool !== 'main').length);
  for (const rule of rules.filter((line) => !line.startsWith('use_backend synapse_media_repository_'))) assert.match(rule, /\{ nbsrv\((synapse_[a-z_]+)\) gt 0 \}$/);
  // The main process has no media repository while the pool runs (enable_media_repo: false): media waits for the pool.
  const mediaRules = rules.filter((line) => line.startsWith('use_backend synapse_media_repository_'));
  assert.ok(mediaRules.length > 0);
  for (const rule of mediaRules) assert.doesNotMatch(rule, /nbsrv/);
  const media = sectionOf(renderRouterConfig(stack), 'backend synapse_media_repository_least_connections');
  assert.ok(media.includes('retry-on conn-failure') && media.includes('option redispatch 1'), media.join('\n'));
  assert.ok(media.some((line) => /^server media-repository-1 127\.0\.0\.1:\d+$/.test(line)), media.join('\n'));
  assert.ok(!media.some((line) => line.includes('httpchk')), 'no health check can take the only media process out');
  const mainIndex = frontend.indexOf('use_backend synapse if synapse_api');
  assert.ok(frontend.findIndex((line) => line.startsWith('use_backend synapse_')) < mainIndex, 'worker rules come before the main process default');
  const sso = frontend.findIndex((line) => line.includes('/login/sso/redirect'));
  assert.ok(frontend[sso]!.startsWith('use_backend synapse if'), 'SSO goes to the main process, before any worker rule');
  const sync = sectionOf(renderRouterConfig(stack), 'backend synapse_sync_access_token');
  assert.ok(sync.includes('balance hdr(X-Mxstack-Balance)'));
  assert.ok(sync.some((line) => line.startsWith('server sync-1 127.0.0.1:30040 check')));
  assert.ok(sync[0]!.startsWith('http-request return status 429 content-type application/json'), 'a full queue is refused first');
  assert.ok(sectionOf(renderRouterConfig(stack), 'backend synapse_federation_inbound_source').includes('balance source'));
});

test('Kubernetes: named pools list each pod, pools that autoscale are a DNS template as large as their ceiling', () => {
  const stack = kubernetesStack(workers('small', { pools: { sync: { autoscaling: { enabled: true, minReplicas: 2, maxReplicas: 8 } } } }));
  const cfg = renderRouterConfig(stack);
  assert.ok(
    sectionOf(cfg, 'backend synapse_sync_access_token').includes(
      'server-template sync- 8 mxstack-synapse-sync.matrix.svc.cluster.local:8008 check resolvers kubernetes init-addr none',
    ),
  );
  assert.ok(
    sectionOf(cfg, 'backend synapse_stream_writer_least_connections').some((line) =>
      line.startsWith('server stream-writer-1 mxstack-synapse-stream-writer-0.mxstack-synapse-stream-writer.matrix.svc.cluster.local:8008 check'),
    ),
  );
});

test('the real HAProxy accepts the router configuration of every preset on both targets', (t) => {
  const unavailable = rootfsUnavailable();
  if (unavailable) return t.skip(unavailable);
  const scratch = rootfsScratch('router-workers-check');
  t.after(scratch.remove);
  const stacks: [string, Stack][] = [
    ['local small', localStack(workers('small'), join(scratch.inside, 'local-small'), 30000)],
    ['local large', localStack(workers('large'), join(scratch.inside, 'local-large'), 30000)],
    ['kubernetes large, autoscaling sync', withRouterConfigDir(kubernetesStack(workers('large', { pools: { sync: { autoscaling: { enabled: true } } } })), join(scratch.inside, 'k8s'))],
  ];
  for (const [name, stack] of stacks) {
    const dir = stack.placement.paths.routerConfigDir;
    writeFiles(join(runtimeRootfs, dir), routerConfigFiles(stack));
    const result = runInRootfs(['haproxy', '-c', '-f', join(dir, 'haproxy.cfg')]);
    assert.equal(result.status, 0, `${name}: ${result.output}`);
    assert.doesNotMatch(result.output, /\[WARNING\]|\[ALERT\]/, `${name}: ${result.output}`);
  }
});

/** A stand-in process answering /health and naming itself in X-Served-By; `holdMs` delays other answers. */
async function standIn(t: { after: (fn: () => void) => void }, name: string, port: number, holdMs = 0): Promise<Server> {
  const server = createServer((request, response) => {
    const answer = () => {
      response.setHeader('X-Served-By', name);
      response.end(request.url === '/health' ? 'OK' : '{}');
    };
    if (request.url === '/health' || holdMs === 0) answer();
    else setTimeout(answer, holdMs);
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  t.after(() => server.closeAllConnections());
  t.after(() => server.close());
  return server;
}

test('a running HAProxy routes to the pools, falls back to the main process when a pool is down, and answers 429 when a queue is full', { timeout: 90_000 }, async (t) => {
  const unavailable = rootfsUnavailable();
  if (unavailable) return t.skip(unavailable);
  const scratch = rootfsScratch('router-workers-run');
  t.after(scratch.remove);
  const firstPort = await freeLoopbackPort();
  const stack = localStack(
    { synapse: { server: { name: 'example.org' }, workers: { preset: 'none', pools: { sync: { replicas: 1 }, eventCreator: { replicas: 1 } }, maxConnectionsPerProcess: 1, maxQueuedPerPool: 1 } } },
    scratch.inside,
    firstPort,
    { synapseHttp: await freeLoopbackPort(), router: await freeLoopbackPort(), routerMetrics: await freeLoopbackPort() },
  );
  writeFiles(join(runtimeRootfs, stack.placement.paths.routerConfigDir), routerConfigFiles(stack));
  const [sync, eventCreator] = workerProcesses(stack.values);
  const workerPort = (index: number) => firstPort + 40 + 3 * index;
  await standIn(t, 'main', stack.placement.ports.synapseHttp);
  const syncServer = await standIn(t, 'sync-1', workerPort(sync!.index));
  await standIn(t, 'event-creator-1', workerPort(eventCreator!.index), 3_000);
  const base = runRuntimeRouter(t, stack);
  const servedBy = async (path: string, init?: RequestInit) => (await fetchUntilUp(`${base}${path}`, init)).headers.get('x-served-by');

  // Routed by the table (retried while HAProxy's first checks have not seen the pools up yet).
  let first = '';
  for (let attempt = 0; attempt < 50 && first !== 'sync-1'; attempt++) {
    first = (await servedBy('/_matrix/client/v3/sync?since=s1')) ?? '';
    if (first !== 'sync-1') await new Promise((resolve) => setTimeout(resolve, 200));
  }
  assert.equal(first, 'sync-1');
  assert.equal(await servedBy('/_matrix/client/v3/sync'), 'sync-1', 'no initial sync pool: initial syncs go to the sync pool');
  assert.equal(await servedBy('/_matrix/client/versions'), 'main', 'no client reader: the main process');

  // The queue: one request in flight, one waiting, the third refused at once in Matrix's words.
  const send = (i: number) => fetch(`${base}/_matrix/client/v3/rooms/!r:example.org/send/m.room.message/t${i}`, { method: 'PUT', body: '{}', signal: AbortSignal.timeout(20_000) });
  const inFlight = send(1);
  await new Promise((resolve) => setTimeout(resolve, 300));
  const queued = send(2);
  await new Promise((resolve) => setTimeout(resolve, 300));
  const refused = await send(3);
  assert.equal(refused.status, 429);
  assert.equal(refused.headers.get('retry-after'), '1');
  assert.equal(((await refused.json()) as { errcode: string }).errcode, 'M_LIMIT_EXCEEDED');
  assert.equal((await inFlight).headers.get('x-served-by'), 'event-creator-1');
  assert.equal((await queued).headers.get('x-served-by'), 'event-creator-1');

  // The sync pool goes away: its requests fall back to the main process.
  syncServer.closeAllConnections();
  await new Promise<void>((resolve) => syncServer.close(() => resolve()));
  let fallback = '';
  for (let attempt = 0; attempt < 50 && fallback !== 'main'; attempt++) {
    const response = await fetch(`${base}/_matrix/client/v3/sync?since=s1`, { signal: AbortSignal.timeout(5_000) }).catch(() => undefined);
    fallback = response?.headers.get('x-served-by') ?? '';
    if (fallback !== 'main') await new Promise((resolve) => setTimeout(resolve, 200));
  }
  assert.equal(fallback, 'main');
});
