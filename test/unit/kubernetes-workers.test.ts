import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadValues } from '../../src/values/load.js';
import { compileKubernetesStack, renderKubernetesObjects, toPlainSorted } from '../../src/targets/kubernetes/render.js';
import { restrictedProfileViolations } from '../../src/targets/kubernetes/pod-security.js';
import type { KubeObject } from '../../src/targets/kubernetes/objects.js';

type Tree = Record<string, unknown>;
type Plain = { kind: string; metadata: { name: string }; spec?: Tree; data?: Record<string, string> };

function render(workers: Tree): Plain[] {
  const values = loadValues({ base: { synapse: { server: { name: 'example.org' }, workers } } });
  return renderKubernetesObjects(compileKubernetesStack(values)).map((object: KubeObject) => toPlainSorted(object) as Plain);
}

const find = (objects: Plain[], kind: string, name: string) => objects.find((o) => o.kind === kind && o.metadata.name === name);

test('no workers: no worker workload, no Redis', () => {
  const objects = render({});
  assert.equal(objects.some((o) => o.metadata.name.startsWith('mxstack-synapse-') && ['StatefulSet', 'Deployment'].includes(o.kind)), false);
  assert.equal(find(objects, 'Deployment', 'mxstack-redis'), undefined);
});

test('named pools are StatefulSets whose pods pick their worker file by ordinal; the others Deployments that name themselves', () => {
  const objects = render({ preset: 'large', pools: { sync: { autoscaling: { enabled: true, minReplicas: 2, maxReplicas: 6 } } } });
  const persisters = find(objects, 'StatefulSet', 'mxstack-synapse-event-persister');
  assert.ok(persisters);
  assert.equal((persisters.spec as { replicas: number }).replicas, 2);
  const persisterCommand = JSON.stringify(persisters.spec);
  assert.match(persisterCommand, /worker-event-persister-\$\(\(\$\{HOSTNAME##\*-\} \+ 1\)\)\.yaml/);
  const sync = find(objects, 'Deployment', 'mxstack-synapse-sync');
  assert.ok(sync);
  assert.equal('replicas' in (sync.spec as Tree), false, 'the autoscaler owns the replica count');
  assert.match(JSON.stringify(sync.spec), /worker_name: %s/);
  const hpa = find(objects, 'HorizontalPodAutoscaler', 'mxstack-synapse-sync') as { spec: { minReplicas: number; maxReplicas: number; scaleTargetRef: Tree } } | undefined;
  assert.deepEqual([hpa?.spec.minReplicas, hpa?.spec.maxReplicas, hpa?.spec.scaleTargetRef.name], [2, 6, 'mxstack-synapse-sync']);
  assert.ok(find(objects, 'PodDisruptionBudget', 'mxstack-synapse-client-reader'), 'two client readers: a disruption budget');
  assert.equal(find(objects, 'PodDisruptionBudget', 'mxstack-synapse-pusher'), undefined, 'one pusher: no budget that would block drains');
  const headless = find(objects, 'Service', 'mxstack-synapse-stream-writer') as { spec: { clusterIP: string; ports: { name: string }[] } } | undefined;
  assert.equal(headless?.spec.clusterIP, 'None');
  assert.deepEqual(headless?.spec.ports.map((p) => p.name), ['http', 'replication', 'metrics']);
  const main = find(objects, 'Service', 'mxstack-synapse') as unknown as { spec: { ports: { name: string; port: number }[] } };
  assert.ok(main.spec.ports.some((p) => p.name === 'replication' && p.port === 9093), 'instance_map.main is reached through the Service');
});

test('every worker and Redis pod passes Pod Security "restricted"; the Redis password is in no ConfigMap', () => {
  const objects = render({ preset: 'small' });
  const pods = objects.filter((o) => ['StatefulSet', 'Deployment'].includes(o.kind) && /synapse-|redis/.test(o.metadata.name));
  assert.ok(pods.length >= 15);
  for (const workload of pods) {
    const spec = (workload.spec as { template: { spec: Parameters<typeof restrictedProfileViolations>[0] } }).template.spec;
    assert.deepEqual(restrictedProfileViolations(spec), [], workload.metadata.name);
  }
  const redisConf = find(objects, 'ConfigMap', 'mxstack-redis')?.data?.['redis.conf'] ?? '';
  assert.match(redisConf, /^include \/secrets\/password\.conf$/m);
  assert.doesNotMatch(redisConf, /requirepass/);
});

test('ServiceMonitors: one per worker pool on its metrics port, and Redis\'s exporter', () => {
  const values = loadValues({ base: { synapse: { server: { name: 'example.org' }, workers: { preset: 'small' } }, metrics: { serviceMonitor: { enabled: true } } } });
  const monitors = renderKubernetesObjects(compileKubernetesStack(values))
    .map((object: KubeObject) => toPlainSorted(object) as Plain)
    .filter((o) => o.kind === 'ServiceMonitor');
  const names = monitors.map((m) => m.metadata.name);
  for (const name of ['mxstack-synapse-sync', 'mxstack-synapse-event-persister', 'mxstack-synapse-appservice-notifier', 'mxstack-redis']) assert.ok(names.includes(name), name);
  const sync = monitors.find((m) => m.metadata.name === 'mxstack-synapse-sync') as unknown as { spec: { endpoints: { port: string; path: string }[] } };
  assert.deepEqual(sync.spec.endpoints.map((e) => [e.port, e.path]), [['metrics', '/_synapse/metrics']]);
});
