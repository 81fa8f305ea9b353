/**
 * Every good values fixture, rendered, is accepted by a real Kubernetes API server: server-side apply as a
 * dry run with strict field validation (exactly the arguments `mxstack install --dry-run` sends), in a
 * namespace with Pod Security "restricted" enforced, warned and audited, with the CRDs installed. An
 * object rejected, or any warning (an unknown field, a pod template that would violate Pod Security,
 * a deprecated API), fails the fixture.
 *
 * The cluster comes from test/support/kubernetes-cluster.ts (MXSTACK_TEST_KUBECONFIG, or the shared
 * test cluster); without one the test is skipped and says why.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { basename } from 'node:path';
import { stringify } from 'yaml';
import { loadValues } from '../../src/values/load.js';
import { workersEnabled } from '../../src/values/worker-pools.js';
import { compileKubernetesStack, renderKubernetesObjects, renderKubernetesYaml } from '../../src/targets/kubernetes/render.js';
import { toPlainSorted } from '../../src/kit/sorted-json.js';
import { applyArgs } from '../../src/targets/kubernetes/kubectl.js';
import { goodValuesFixtures, valuesFixturesDir } from '../support/fixtures.js';
import { createTestNamespace, installCrds, kubectl, testCluster } from '../support/kubernetes-cluster.js';

const availability = await testCluster();
const skip = availability.available ? false : availability.reason;

function renderFixture(file: string, namespace: string, sets: string[] = []) {
  const stack = compileKubernetesStack(loadValues({ files: [file], sets }), { namespace });
  return renderKubernetesObjects(stack);
}

/** kubectl apply exactly as `mxstack install --dry-run` runs it. */
function dryRunArgs(namespace: string): string[] {
  const args = applyArgs({ namespace }, { dryRun: true });
  assert.ok(args.includes('--validate=strict') && args.includes('--dry-run=server') && args.includes('--server-side'));
  return args;
}

test('every good fixture passes a server-side dry run on a real API server (Pod Security restricted, strict validation)', { skip, timeout: 15 * 60_000 }, async (t) => {
  if (!availability.available) return;
  const cluster = availability.cluster;
  await installCrds(cluster);
  const namespace = await createTestNamespace(cluster, 'dry-run');
  t.after(() => namespace.delete());
  const fixtures = goodValuesFixtures();
  assert.ok(fixtures.length >= 20, `expected the fixtures, found ${fixtures.length}`);
  for (const file of fixtures) {
    await t.test(basename(file, '.yaml'), async () => {
      const objects = renderFixture(file, namespace.name);
      const result = await kubectl(cluster, dryRunArgs(namespace.name), { stdin: renderKubernetesYaml(objects), timeoutMs: 3 * 60_000 });
      assert.equal(result.stderr.trim(), '', `the API server rejected or warned about objects of ${basename(file)}:\n${result.stderr}`);
      assert.equal(result.exitCode, 0);
      const accepted = result.stdout.split('\n').filter((line) => line.trim() !== '');
      assert.equal(accepted.length, objects.length, `every object is accepted: ${accepted.length} of ${objects.length}`);
    });
  }
});

/**
 * Most fixtures leave NetworkPolicies off; their address lists (public Internet, URL preview whitelist,
 * SMTP relay, coturn's own addresses) still must be valid when a user turns them on. One request holds the
 * policies of every fixture with networkPolicy.enabled, renamed `<fixture>-<policy>` so they do not clash.
 */
test('the NetworkPolicies of every fixture with networkPolicy.enabled pass the API server\'s validation', { skip, timeout: 5 * 60_000 }, async (t) => {
  if (!availability.available) return;
  const cluster = availability.cluster;
  const namespace = await createTestNamespace(cluster, 'dry-run-policies');
  t.after(() => namespace.delete());
  const addressSets = [
    'networkPolicy.enabled=true',
    'synapse.server.urlPreviews.ipRangeWhitelist[0]=10.1.2.3',
    'synapse.server.urlPreviews.ipRangeWhitelist[1]=fd00:1::/64',
    'synapse.server.urlPreviews.ipRangeWhitelist[2]=2001:db8::7',
  ];
  const fixtures = goodValuesFixtures();
  assert.ok(fixtures.some((file) => workersEnabled(loadValues({ files: [file] }))), 'the worker fixtures are among them');
  const policies = fixtures.flatMap((file) =>
    renderFixture(file, namespace.name, addressSets)
      .filter((object) => object.kind === 'NetworkPolicy')
      .map((policy) => ({ ...toPlainSorted(policy) as { metadata: { name: string } }, fixture: basename(file, '.yaml') }))
      .map(({ fixture, ...policy }) => ({ ...policy, metadata: { ...policy.metadata, name: `${fixture}-${policy.metadata.name}` } })),
  );
  assert.ok(policies.length > 100, `expected the policies of every fixture, found ${policies.length}`);
  const stream = policies.map((policy) => `---\n${stringify(policy)}`).join('');
  const result = await kubectl(cluster, dryRunArgs(namespace.name), { stdin: stream, timeoutMs: 3 * 60_000 });
  assert.equal(result.stderr.trim(), '', `the API server rejected or warned about NetworkPolicies:\n${result.stderr}`);
  assert.equal(result.exitCode, 0);
});

/** Finding 9 of issue 17: a LoadBalancer took one node port per relay port (101 by default). */
test('coturn\'s LoadBalancer Service takes no node ports (the API server allocates none)', { skip, timeout: 5 * 60_000 }, async (t) => {
  if (!availability.available) return;
  const cluster = availability.cluster;
  const namespace = await createTestNamespace(cluster, 'dry-run-coturn');
  t.after(() => namespace.delete());
  const service = renderFixture(`${valuesFixturesDir}coturn-loadbalancer.yaml`, namespace.name).find((o) => o.kind === 'Service' && o.metadata?.name === 'mxstack-coturn');
  assert.ok(service);
  const args = dryRunArgs(namespace.name).map((arg) => (arg === '--output=name' ? '--output=json' : arg));
  const result = await kubectl(cluster, args, { stdin: JSON.stringify(toPlainSorted(service)) });
  assert.equal(result.exitCode, 0, result.stderr);
  const admitted = JSON.parse(result.stdout) as { spec: { type: string; ports: { name: string; nodePort?: number }[] } };
  assert.equal(admitted.spec.type, 'LoadBalancer');
  assert.ok(admitted.spec.ports.length > 100, `${admitted.spec.ports.length} ports`);
  assert.deepEqual(admitted.spec.ports.filter((port) => port.nodePort !== undefined).map((port) => `${port.name}:${port.nodePort}`), []);
});
