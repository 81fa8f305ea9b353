import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import { join } from 'node:path';
import { renderRouterConfig, routerConfigFiles } from '../../src/components/router/config.js';
import { compileKubernetesStack, renderKubernetesObjects } from '../../src/targets/kubernetes/render.js';
import { loadValues } from '../../src/values/load.js';
import { renderWellKnownClient, renderWellKnownServer } from '../../src/components/wellknown/config.js';
import type { Stack } from '../../src/stack/model.js';
import {
  freeLoopbackPort,
  kubernetesStack,
  localStack,
  rootfsScratch,
  rootfsUnavailable,
  runInRootfs,
  runRuntimeRouter,
  fetchUntilUp,
  runtimeRootfs,
  withRouterConfigDir,
  writeFiles,
} from '../support/component-stacks.js';

const delegated = { synapse: { server: { name: 'example.org' } }, ingress: { synapse: { host: 'matrix.example.org' } } };

const sectionOf = (cfg: string, header: string): string[] => {
  const blocks = cfg.split('\n\n');
  const block = blocks.find((b) => b.startsWith(`${header}\n`));
  assert.ok(block, `section "${header}" present`);
  return block.split('\n').slice(1).map((line) => line.trim());
};

test('well-known documents: server delegation and client base URL without trailing slash', () => {
  const stack = kubernetesStack(delegated);
  assert.deepEqual(renderWellKnownServer(stack), { 'm.server': 'matrix.example.org:443' });
  assert.deepEqual(renderWellKnownClient(stack), { 'm.homeserver': { base_url: 'https://matrix.example.org' } });
  const files = routerConfigFiles(stack);
  assert.deepEqual(Object.keys(files).sort(), ['haproxy.cfg', 'well-known-client.json', 'well-known-server.json']);
  assert.deepEqual(JSON.parse(files['well-known-server.json']!), { 'm.server': 'matrix.example.org:443' });
  assert.deepEqual(JSON.parse(files['well-known-client.json']!), { 'm.homeserver': { base_url: 'https://matrix.example.org' } });
});

test('without federation there is no server well-known file, and the router answers 404 for it', () => {
  const stack = kubernetesStack({ ...delegated, synapse: { server: { name: 'example.org', federation: { enabled: false } } } });
  assert.equal(renderWellKnownServer(stack), undefined);
  const files = routerConfigFiles(stack);
  assert.equal('well-known-server.json' in files, false);
  assert.doesNotMatch(files['haproxy.cfg']!, /well-known-server\.json/);
  assert.match(files['haproxy.cfg']!, /return status 404 .*if well_known_server/);
});

test('the client well-known is served with CORS headers and answers preflight', () => {
  const frontend = sectionOf(renderRouterConfig(kubernetesStack(delegated)), 'frontend matrix');
  const clientRules = frontend.filter((line) => line.includes('if well_known_client'));
  assert.equal(clientRules.length, 2);
  for (const rule of clientRules) assert.match(rule, /hdr Access-Control-Allow-Origin '\*'/);
  assert.ok(clientRules.some((rule) => rule.includes('status 204') && rule.endsWith('METH_OPTIONS')));
  assert.ok(clientRules.some((rule) => rule.includes("file '/usr/local/etc/haproxy/well-known-client.json'")));
});

test('the Synapse admin API is refused from outside unless router.exposeAdminApi', () => {
  const closed = sectionOf(renderRouterConfig(kubernetesStack()), 'frontend matrix');
  assert.ok(closed.includes('http-request deny deny_status 403 if synapse_admin'));
  assert.ok(closed.includes('use_backend synapse if synapse_api'));
  const open = sectionOf(renderRouterConfig(kubernetesStack({ router: { exposeAdminApi: true } })), 'frontend matrix');
  assert.equal(open.some((line) => line.includes('deny')), false);
  assert.ok(open.includes('use_backend synapse if synapse_api || synapse_admin'));
});

test('Kubernetes: fully qualified Service names, re-resolved through the pod resolv.conf; a Service is not health-checked but retried while it has no Ready pod', () => {
  const cfg = renderRouterConfig(kubernetesStack());
  assert.deepEqual(sectionOf(cfg, 'resolvers kubernetes'), ['parse-resolv-conf', 'hold valid 10s']);
  // Kubernetes sends a Service's traffic to Ready pods only: an HAProxy check of it only lags (a DOWN server answers 503 at once).
  assert.deepEqual(sectionOf(cfg, 'backend synapse'), ['retries 60', 'retry-on conn-failure', 'server synapse mxstack-synapse.matrix.svc.cluster.local:8008 resolvers kubernetes init-addr last,libc,none']);
  assert.ok(!sectionOf(cfg, 'backend element').some((line) => / check\b|httpchk/.test(line)), 'no check of the Element Service either');
  // Locally each program is checked on its health path.
  const local = renderRouterConfig(localStack());
  assert.ok(sectionOf(local, 'backend synapse').includes('http-check send meth GET uri /health'));
  assert.ok(sectionOf(local, 'backend synapse').some((line) => line.startsWith('server synapse ') && line.endsWith(' check')));
  assert.ok(sectionOf(cfg, 'backend element').some((line) => line.startsWith('server element mxstack-element.matrix.svc.cluster.local:8080 ')));
  const frontend = sectionOf(cfg, 'frontend matrix');
  assert.ok(frontend.includes('bind 0.0.0.0:8080'));
  assert.ok(frontend.includes('default_backend element'));
  assert.ok(frontend.some((line) => line.startsWith('http-request set-header X-Forwarded-Proto https unless')), 'an ingress in front keeps its own header');
  const metrics = sectionOf(cfg, 'frontend metrics');
  assert.ok(metrics.includes('bind 0.0.0.0:8405'));
  assert.ok(metrics.includes('monitor-uri /health'));
  assert.ok(metrics.includes('http-request use-service prometheus-exporter if { path /metrics }'));
});

test('local: addresses without resolvers, the router is the edge, and Element without a web root says so', () => {
  const cfg = renderRouterConfig(localStack({}, '/tmp/state', 41000));
  assert.doesNotMatch(cfg, /^resolvers/m);
  assert.ok(sectionOf(cfg, 'backend synapse').includes('server synapse 127.0.0.1:41000 check'));
  const frontend = sectionOf(cfg, 'frontend matrix');
  assert.ok(frontend.includes('http-request del-header X-Forwarded-For'));
  assert.ok(frontend.includes('http-request set-header X-Forwarded-Proto http'));
  assert.ok(frontend.some((line) => line.includes("string 'Element Web is not served by this local stack (mxstack up said why): set element.archive")));
  assert.doesNotMatch(cfg, /backend element/);

  const withElement = renderRouterConfig(localStack({ element: { webRoot: '/srv/element' } }, '/tmp/state', 41000));
  assert.ok(sectionOf(withElement, 'backend element').includes('server element 127.0.0.1:41003 check'));
  assert.doesNotMatch(withElement, /not served by this local stack/);
});

test('Element disabled: no Element backend, a 404 that says why', () => {
  const cfg = renderRouterConfig(kubernetesStack({ element: { enabled: false } }));
  assert.doesNotMatch(cfg, /backend element|default_backend/);
  assert.match(cfg, /Element Web is not deployed by this stack/);
});

function checkWithHaproxy(stack: Stack, scratchDir: { inside: string; outside: string }): { status: number | null; output: string } {
  const files = routerConfigFiles(stack);
  writeFiles(scratchDir.outside, files);
  return runInRootfs(['haproxy', '-c', '-f', join(scratchDir.inside, 'haproxy.cfg')]);
}

test('the real HAProxy 3.2 accepts the Kubernetes and the local configuration without warnings', (t) => {
  const unavailable = rootfsUnavailable();
  if (unavailable) {
    t.skip(unavailable);
    return;
  }
  const scratch = rootfsScratch('router-config-check');
  t.after(scratch.remove);
  const stacks: [string, Stack][] = [
    ['kubernetes', withRouterConfigDir(kubernetesStack(delegated), join(scratch.inside, 'kubernetes'))],
    ['kubernetes, no federation, no element, admin exposed', withRouterConfigDir(
      kubernetesStack({ synapse: { server: { federation: { enabled: false } } }, element: { enabled: false }, router: { exposeAdminApi: true } }),
      join(scratch.inside, 'kubernetes-minimal'),
    )],
    ['local', localStack({}, join(scratch.inside, 'local'), 41000)],
    ['local with element', localStack({ element: { webRoot: '/srv/element' } }, join(scratch.inside, 'local-element'), 41000)],
  ];
  for (const [name, stack] of stacks) {
    const dir = stack.placement.paths.routerConfigDir;
    const result = checkWithHaproxy(stack, { inside: dir, outside: join(runtimeRootfs, dir) });
    assert.equal(result.status, 0, `${name}: haproxy -c failed:\n${result.output}`);
    assert.doesNotMatch(result.output, /\[WARNING\]|\[ALERT\]/, `${name}: ${result.output}`);
  }
});

interface Seen {
  url?: string;
  headers?: IncomingHttpHeaders;
}

test('a running HAProxy serves well-known with CORS, proxies the Matrix API and refuses the admin API', { timeout: 40_000 }, async (t) => {
  const unavailable = rootfsUnavailable();
  if (unavailable) {
    t.skip(unavailable);
    return;
  }
  const scratch = rootfsScratch('router-run');
  t.after(scratch.remove);
  const stack = localStack({ synapse: { server: { name: 'example.org' } } }, scratch.inside, undefined, {
    synapseHttp: await freeLoopbackPort(),
    router: await freeLoopbackPort(),
    routerMetrics: await freeLoopbackPort(),
  });
  writeFiles(join(runtimeRootfs, stack.placement.paths.routerConfigDir), routerConfigFiles(stack));

  const seen: Seen = {};
  const synapse = createServer((request, response) => {
    if (request.url !== '/health') Object.assign(seen, { url: request.url, headers: request.headers });
    response.end(request.url === '/health' ? 'OK' : '{}');
  });
  await new Promise<void>((resolve) => synapse.listen(stack.placement.ports.synapseHttp, '127.0.0.1', resolve));
  t.after(() => synapse.close());

  const base = runRuntimeRouter(t, stack);

  const client = await fetchUntilUp(`${base}/.well-known/matrix/client`);
  assert.equal(client.status, 200);
  assert.equal(client.headers.get('content-type'), 'application/json');
  assert.equal(client.headers.get('access-control-allow-origin'), '*');
  assert.deepEqual(await client.json(), { 'm.homeserver': { base_url: stack.publicBaseUrl.replace(/\/$/, '') } });

  const preflight = await fetchUntilUp(`${base}/.well-known/matrix/client`, { method: 'OPTIONS' });
  assert.equal(preflight.status, 204);
  assert.match(preflight.headers.get('access-control-allow-methods') ?? '', /GET/);

  const server = await fetchUntilUp(`${base}/.well-known/matrix/server`);
  assert.equal(server.headers.get('access-control-allow-origin'), null);
  assert.deepEqual(await server.json(), { 'm.server': stack.federationServer });

  const api = await fetchUntilUp(`${base}/_matrix/client/versions`, { headers: { 'X-Forwarded-For': '203.0.113.66', 'X-Forwarded-Proto': 'https' } });
  assert.equal(api.status, 200);
  assert.equal(seen.url, '/_matrix/client/versions');
  assert.equal(seen.headers?.['x-forwarded-for'], '127.0.0.1', 'a client-supplied X-Forwarded-For is replaced at the edge');
  assert.equal(seen.headers?.['x-forwarded-proto'], 'http');

  for (const path of ['/_synapse/admin/v1/server_version', '//_synapse/admin/v1/server_version', '/_synapse/%61dmin/v1/server_version']) {
    assert.equal((await fetchUntilUp(`${base}${path}`)).status, 403, `${path} refused`);
  }
  assert.equal(seen.url, '/_matrix/client/versions', 'no admin request reached Synapse');

  const root = await fetchUntilUp(`${base}/`);
  assert.equal(root.status, 404);
  assert.match(await root.text(), /Element Web is not served by this local stack/);

  const health = await fetchUntilUp(`http://127.0.0.1:${stack.placement.ports.routerMetrics}/health`);
  assert.equal(health.status, 200);
  const metrics = await fetchUntilUp(`http://127.0.0.1:${stack.placement.ports.routerMetrics}/metrics`);
  assert.match(await metrics.text(), /^haproxy_process_/m);
});

test('Kubernetes: the router rolls a new pod in before an old one stops (maxUnavailable 0, maxSurge 1)', () => {
  const objects = renderKubernetesObjects(compileKubernetesStack(loadValues({ base: {} }), { release: 'mx', namespace: 'matrix' }));
  const router = objects.find((o) => o.kind === 'Deployment' && o.metadata?.name === 'mx-router') as unknown as { spec: { strategy: unknown } };
  assert.deepEqual(router.spec.strategy, { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } });
});
