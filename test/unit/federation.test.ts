/**
 * Federation settings: server names with a port, the router's federation listener (router.federation) and
 * the custom CA Synapse verifies other servers with (synapse.server.federation.customCa), on both targets.
 * The listener is also run for real: the runtime's HAProxy terminates TLS with a certificate from a CA made
 * here and forwards only the federation API to an upstream standing in for Synapse (the real Synapse
 * behind it is test/integration/federation.test.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { parse } from 'yaml';
import { loadValues } from '../../src/values/load.js';
import { splitServerName } from '../../src/values/derived.js';
import { renderRouterConfig, routerConfigFiles } from '../../src/components/router/config.js';
import { renderHomeserverConfig, synapseConfigFiles, federationCaFile } from '../../src/components/synapse/config.js';
import { renderWorkerConfig } from '../../src/components/synapse/workers.js';
import { workerProcesses } from '../../src/values/worker-pools.js';
import { renderWellKnownServer } from '../../src/components/wellknown/config.js';
import { renderKubernetesObjects } from '../../src/targets/kubernetes/render.js';
import { publicHosts } from '../../src/targets/kubernetes/public-routes.js';
import { documentedSecrets } from '../../src/targets/kubernetes/secrets.js';
import type { Stack } from '../../src/stack/model.js';
import type { IDeployment } from 'kubernetes-models/apps/v1/Deployment';
import type { IService } from 'kubernetes-models/v1/Service';
import type { IConfigMap } from 'kubernetes-models/v1/ConfigMap';
import type { INetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import {
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
import { createTestCa, getOverTls, issueServerCertificate } from '../support/test-ca.js';

const caPem = '-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n';
const listener = { federation: { enabled: true, tls: { secretName: 'federation-tls' } } };
const withListener = { synapse: { server: { name: 'example.org', federation: { customCa: caPem } } }, router: listener };

test('a server name may carry a port; hosts derived from it drop the port', () => {
  assert.deepEqual(splitServerName('example.org'), { host: 'example.org' });
  assert.deepEqual(splitServerName('127.0.0.1:8448'), { host: '127.0.0.1', port: 8448 });
  assert.deepEqual(splitServerName('[::1]:8449'), { host: '::1', port: 8449 });
  const values = loadValues({ base: { synapse: { server: { name: 'example.org:8449' } }, router: { federation: { ...listener.federation, port: 8449 } } } });
  const stack = kubernetesStack({ synapse: { server: { name: 'example.org:8449' } }, router: { federation: { ...listener.federation, port: 8449 } } });
  assert.equal(values.synapse.server.name, 'example.org:8449');
  assert.equal(stack.serverName, 'example.org:8449');
  assert.equal(stack.publicBaseUrl, 'https://example.org/');
  assert.equal(stack.turnRealm, 'example.org');
  assert.ok(publicHosts(stack).every((host) => host.host === 'example.org'), JSON.stringify(publicHosts(stack)));
});

test('well-known announces the federation listener: its address locally, the public host and its port on Kubernetes', () => {
  const local = localStack(withListener, '/tmp/mxstack-federation', 39000);
  assert.deepEqual(renderWellKnownServer(local), { 'm.server': `127.0.0.1:${local.placement.ports.routerFederation}` });
  const kubernetes = kubernetesStack({ ...withListener, router: { federation: { ...listener.federation, port: 8443 } } });
  assert.deepEqual(renderWellKnownServer(kubernetes), { 'm.server': 'example.org:8443' });
  // Without the listener nothing changes: the ingress on 443, the local router's public port.
  assert.deepEqual(renderWellKnownServer(kubernetesStack({ synapse: { server: { name: 'example.org' } } })), { 'm.server': 'example.org:443' });
  const plain = localStack({}, '/tmp/mxstack-federation', 39000);
  assert.deepEqual(renderWellKnownServer(plain), { 'm.server': `127.0.0.1:${plain.placement.ports.router}` });
});

test('the custom CA is written beside homeserver.yaml and listed in federation_custom_ca_list', () => {
  for (const stack of [kubernetesStack(withListener), localStack(withListener, '/tmp/mxstack-federation')]) {
    const configDir = stack.placement.paths.synapseConfigDir;
    assert.deepEqual(renderHomeserverConfig(stack).federation_custom_ca_list, [`${configDir}/${federationCaFile}`]);
    assert.equal(synapseConfigFiles(stack)[federationCaFile], caPem);
  }
  const without = kubernetesStack();
  assert.equal('federation_custom_ca_list' in renderHomeserverConfig(without), false);
  assert.equal(federationCaFile in synapseConfigFiles(without), false);
});

test('ipRangeWhitelist and ipRangeBlacklist reach homeserver.yaml, which the main process and every worker read', () => {
  const ranges = { ipRangeWhitelist: ['10.20.0.0/16', '192.168.7.7', 'fd00:1::/64'], ipRangeBlacklist: ['10.0.0.0/8', '::1/128'] };
  for (const stack of [
    kubernetesStack({ synapse: { server: { federation: ranges } } }),
    localStack({ synapse: { server: { federation: ranges }, workers: { preset: 'small' } } }, '/tmp/mxstack-federation'),
  ]) {
    const config = renderHomeserverConfig(stack);
    assert.deepEqual(config.ip_range_whitelist, ranges.ipRangeWhitelist);
    assert.deepEqual(config.ip_range_blacklist, ranges.ipRangeBlacklist);
    // The workers are started with homeserver.yaml and their own file, which must not override the ranges.
    for (const worker of workerProcesses(stack.values)) {
      const own = renderWorkerConfig(stack, worker);
      assert.equal('ip_range_whitelist' in own || 'ip_range_blacklist' in own, false, worker.name);
    }
  }
  // Unset: Synapse's own defaults (its DEFAULT_IP_RANGE_BLOCKLIST, no whitelist), nothing written.
  const defaults = renderHomeserverConfig(kubernetesStack());
  assert.equal('ip_range_whitelist' in defaults, false);
  assert.equal('ip_range_blacklist' in defaults, false);
  // An explicitly empty blacklist is written (it is not Synapse's default).
  assert.deepEqual(renderHomeserverConfig(kubernetesStack({ synapse: { server: { federation: { ipRangeBlacklist: [] } } } })).ip_range_blacklist, []);
});

test('the ranges are refused in additionalConfig (the NetworkPolicies follow the values keys) and must be addresses or CIDRs', () => {
  for (const key of ['ip_range_whitelist', 'ip_range_blacklist', 'federation_ip_range_blacklist']) {
    assert.throws(
      () => loadValues({ base: { synapse: { additionalConfig: { [key]: ['10.0.0.0/8'] } } } }),
      (error: Error) => error.message.includes(`synapse.additionalConfig.${key}`) && error.message.includes('synapse.server.federation.ipRangeWhitelist'),
    );
  }
  assert.throws(
    () => loadValues({ base: { synapse: { server: { federation: { ipRangeBlacklist: ['intranet'] } } } } }),
    (error: Error) => error.message.includes('synapse.server.federation.ipRangeBlacklist[0]') && error.message.includes('CIDR'),
  );
});

test('Kubernetes: the federation egress policy of the main process and of every worker pool allows the whitelisted ranges on 443 and 8448, or on networkPolicy.egress.federationPorts', () => {
  const policiesOf = (values: Record<string, unknown>, egress: Record<string, unknown> = {}) =>
    renderKubernetesObjects(kubernetesStack({ ...values, networkPolicy: { enabled: true, egress } })).filter(
      (o): o is typeof o & INetworkPolicy => o.kind === 'NetworkPolicy' && (o.metadata?.name ?? '').endsWith('-to-federation'),
    );
  const cidrsOf = (policy: INetworkPolicy) => (policy.spec?.egress ?? []).flatMap((rule) => (rule.to ?? []).map((peer) => peer.ipBlock?.cidr));
  const plain = policiesOf({ synapse: { server: { name: 'example.org' }, workers: { preset: 'small' } } });
  assert.equal(plain.length, 2, plain.map((p) => p.metadata?.name).join(', '));
  for (const policy of plain) assert.deepEqual(cidrsOf(policy), ['0.0.0.0/0', '2000::/3']);
  const whitelisted = policiesOf({ synapse: { server: { name: 'example.org', federation: { ipRangeWhitelist: ['10.20.0.0/16', '192.168.7.7', 'fd00:1::5'] } }, workers: { preset: 'small' } } });
  assert.deepEqual(whitelisted.map((p) => p.metadata?.name).sort(), plain.map((p) => p.metadata?.name).sort());
  for (const policy of whitelisted) {
    assert.deepEqual(cidrsOf(policy), ['0.0.0.0/0', '2000::/3', '10.20.0.0/16', '192.168.7.7/32', 'fd00:1::5/128'], policy.metadata?.name);
    assert.deepEqual(policy.spec?.egress?.[0]?.ports, [{ protocol: 'TCP', port: 443 }, { protocol: 'TCP', port: 8448 }]);
  }
  // networkPolicy.egress.federationPorts replaces 443 and 8448 in every one of them.
  const otherPorts = policiesOf({ synapse: { server: { name: 'example.org' }, workers: { preset: 'small' } } }, { federationPorts: [443, 8449] });
  assert.equal(otherPorts.length, 2);
  for (const policy of otherPorts) assert.deepEqual(policy.spec?.egress?.[0]?.ports, [{ protocol: 'TCP', port: 443 }, { protocol: 'TCP', port: 8449 }], policy.metadata?.name);
  // Federation off: no federation egress, whatever the whitelist says.
  assert.deepEqual(policiesOf({ synapse: { server: { name: 'example.org', federation: { enabled: false, ipRangeWhitelist: ['10.20.0.0/16'] } } } }), []);
});

const sectionOf = (cfg: string, header: string): string[] | undefined =>
  cfg
    .split('\n\n')
    .find((block) => block.startsWith(`${header}\n`))
    ?.split('\n')
    .slice(1)
    .map((line) => line.trim());

test('the router has a federation frontend only with router.federation.enabled; it loads the Secret\'s two files', () => {
  assert.equal(sectionOf(renderRouterConfig(kubernetesStack()), 'frontend federation'), undefined);
  const stack = kubernetesStack(withListener);
  const cfg = renderRouterConfig(stack);
  assert.deepEqual(sectionOf(cfg, 'crt-store federation'), ["load crt '/federation-tls/tls.crt' key '/federation-tls/tls.key' alias listener"]);
  const frontend = sectionOf(cfg, 'frontend federation');
  assert.ok(frontend?.includes("bind 0.0.0.0:8448 ssl crt '@federation/listener' alpn http/1.1"), frontend?.join('\n'));
  assert.ok(cfg.indexOf('crt-store federation') < cfg.indexOf('frontend federation'), 'the store is declared before its use');
  // Reached directly, not through an ingress: a forwarded address another server claims is dropped.
  assert.ok(frontend?.includes('http-request del-header X-Forwarded-For'), frontend?.join('\n'));
});

test('with workers the federation listener routes through the pools like the public frontend', () => {
  const stack = kubernetesStack({ ...withListener, synapse: { ...withListener.synapse, workers: { preset: 'small' } } });
  const frontend = sectionOf(renderRouterConfig(stack), 'frontend federation')!;
  assert.ok(frontend.some((line) => line.startsWith('use_backend synapse_federation_inbound_source if ') && line.includes('/_matrix/federation/v1/send/')), frontend.join('\n'));
  assert.ok(frontend.some((line) => line.startsWith('use_backend synapse_federation_reader_least_connections if ') && line.includes('make_join')), frontend.join('\n'));
  assert.equal(frontend.at(-1), 'default_backend synapse');
});

test('Kubernetes: the router exposes the listener (container and Service port), mounts the TLS Secret, and a NetworkPolicy admits other servers', () => {
  const stack = kubernetesStack({ ...withListener, networkPolicy: { enabled: true } });
  const objects = renderKubernetesObjects(stack);
  const find = <T>(kind: string, name: string): T => {
    const found = objects.find((o) => o.kind === kind && o.metadata?.name === name);
    assert.ok(found, `${kind} ${name} rendered`);
    return found as unknown as T;
  };
  const pod = find<IDeployment>('Deployment', 'mxstack-router').spec!.template.spec!;
  const container = pod.containers[0]!;
  assert.ok(container.ports?.some((p) => p.name === 'federation' && p.containerPort === 8448));
  assert.ok(container.volumeMounts?.some((m) => m.name === 'federation-tls' && m.mountPath === '/federation-tls'));
  assert.equal(pod.volumes?.find((v) => v.name === 'federation-tls')?.secret?.secretName, 'federation-tls');
  const service = find<IService>('Service', 'mxstack-router');
  assert.ok(service.spec?.ports?.some((p) => p.name === 'federation' && p.port === 8448 && p.targetPort === 'federation'));
  const policy = find<INetworkPolicy>('NetworkPolicy', 'mxstack-router-from-other-servers');
  assert.deepEqual(policy.spec?.ingress, [{ ports: [{ port: 8448, protocol: 'TCP' }] }]);
  assert.ok(documentedSecrets(stack).some((secret) => secret.name === 'federation-tls' && secret.key === 'tls.key'), 'the certificate Secret is listed among the secrets');
  // The custom CA travels in Synapse's ConfigMap (a CA certificate is public).
  const configMap = find<IConfigMap>('ConfigMap', 'mxstack-synapse');
  assert.equal(configMap.data?.[federationCaFile], caPem);
  assert.deepEqual((parse(configMap.data!['homeserver.yaml']!) as Record<string, unknown>).federation_custom_ca_list, [`/config/${federationCaFile}`]);
});

/** A CA and a certificate for 127.0.0.1 signed by it, written as the listener expects (tls.crt, tls.key); returns the CA's PEM. */
function writeListenerCertificate(tlsDir: string, scratch: string): string {
  const ca = createTestCa(join(scratch, 'ca'));
  issueServerCertificate(ca, tlsDir, { ipAddress: '127.0.0.1' });
  return ca.pem;
}

/** A Kubernetes stack whose router files (config and certificate) sit under `dir` inside the runtime. */
function withFilesUnder(stack: Stack, dir: string): Stack {
  const moved = withRouterConfigDir(stack, dir);
  return { ...moved, placement: { ...moved.placement, paths: { ...moved.placement.paths, routerFederationTlsDir: join(dir, 'federation-tls') } } };
}

test('the real HAProxy accepts the federation listener (Kubernetes and local, with and without workers)', (t) => {
  const unavailable = rootfsUnavailable();
  if (unavailable) return t.skip(unavailable);
  const scratch = rootfsScratch('federation-router-check');
  t.after(scratch.remove);
  const stacks = [
    ['kubernetes', withFilesUnder(kubernetesStack(withListener), join(scratch.inside, 'kubernetes'))],
    ['kubernetes, workers', withFilesUnder(kubernetesStack({ ...withListener, synapse: { ...withListener.synapse, workers: { preset: 'small' } } }), join(scratch.inside, 'workers'))],
    ['local', localStack(withListener, join(scratch.inside, 'local'), 41100)],
  ] as const;
  for (const [name, stack] of stacks) {
    const tlsDir = join(runtimeRootfs, stack.placement.paths.routerFederationTlsDir);
    writeListenerCertificate(tlsDir, join(runtimeRootfs, scratch.inside));
    writeFiles(join(runtimeRootfs, stack.placement.paths.routerConfigDir), routerConfigFiles(stack));
    const cfgFile = join(stack.placement.paths.routerConfigDir, 'haproxy.cfg');
    const result = runInRootfs(['haproxy', '-c', '-f', cfgFile]);
    assert.equal(result.status, 0, `${name}: haproxy -c failed:\n${result.output}`);
    assert.doesNotMatch(result.output, /\[ALERT\]/, `${name}: ${result.output}`);
  }
});

/** GET from the listener at 127.0.0.1, retried for about 5 s while HAProxy starts or has not seen its backend up yet. */
async function getWhenUp(port: number, path: string, ca: string): Promise<{ status: number; body: string }> {
  for (let attempt = 0; ; attempt++) {
    try {
      const answer = await getOverTls({ host: '127.0.0.1', port, path, ca, timeoutMs: 5_000 });
      if (answer.status !== 503 || attempt >= 50) return answer;
    } catch (error) {
      if (attempt >= 50) throw error;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

test('a running HAProxy terminates TLS with the listener certificate and forwards only the federation API', { timeout: 60_000 }, async (t) => {
  const unavailable = rootfsUnavailable();
  if (unavailable) return t.skip(unavailable);
  const scratch = rootfsScratch('federation-router-run');
  t.after(scratch.remove);
  const stack = localStack(withListener, scratch.inside, undefined, {
    synapseHttp: await freeLoopbackPort(),
    router: await freeLoopbackPort(),
    routerMetrics: await freeLoopbackPort(),
    routerFederation: await freeLoopbackPort(),
  });
  const ca = writeListenerCertificate(join(runtimeRootfs, stack.placement.paths.routerFederationTlsDir), join(runtimeRootfs, scratch.inside));
  writeFiles(join(runtimeRootfs, stack.placement.paths.routerConfigDir), routerConfigFiles(stack));
  const seen: { url: string; proto: string | undefined }[] = [];
  const synapse = createServer((request, response) => {
    if (request.url !== '/health') seen.push({ url: request.url!, proto: request.headers['x-forwarded-proto'] as string | undefined });
    response.setHeader('content-type', 'application/json');
    response.end(request.url === '/health' ? 'OK' : '{"server_name":"example.org"}');
  });
  await new Promise<void>((resolve) => synapse.listen(stack.placement.ports.synapseHttp, '127.0.0.1', resolve));
  t.after(() => synapse.close());
  runRuntimeRouter(t, stack);

  const port = stack.placement.ports.routerFederation;
  const key = await getWhenUp(port, '/_matrix/key/v2/server', ca);
  assert.equal(key.status, 200, key.body);
  const send = await getWhenUp(port, '/_matrix/federation/v1/version', ca);
  assert.equal(send.status, 200, send.body);
  assert.deepEqual(seen, [
    { url: '/_matrix/key/v2/server', proto: 'https' },
    { url: '/_matrix/federation/v1/version', proto: 'https' },
  ]);
  for (const path of ['/_matrix/client/versions', '/_synapse/admin/v1/server_version', '/.well-known/matrix/client', '/']) {
    const answer = await getWhenUp(port, path, ca);
    assert.equal(answer.status, 404, `${path} is not served on the federation listener`);
  }
  assert.equal(seen.length, 2, 'nothing else reached Synapse');
  // A client that does not trust the test CA is refused the handshake.
  const otherCa = createTestCa(join(runtimeRootfs, scratch.inside, 'other-ca'));
  await assert.rejects(getOverTls({ host: '127.0.0.1', port, path: '/_matrix/key/v2/server', ca: otherCa.pem }), /certificate/);
});
