/**
 * Stopping and starting Synapse on a release with workers (what `mxstack restore` does around the database
 * swap): every worker pool is scaled to 0 and gone before the main process stops, the main process is back
 * and rolled out before the pools, and each pool gets back the replicas it ran (an autoscaled pool: what its
 * autoscaler had set, not the floor). kubectl is the recording stand-in (test/support/fake-kubectl); the
 * real cluster run is test/kubernetes/workers.test.ts (backup and restore with the small preset).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadValues } from '../../src/values/load.js';
import { compileKubernetesStack } from '../../src/targets/kubernetes/render.js';
import { KubernetesTarget } from '../../src/targets/kubernetes/target-adapter.js';
import { installFakeKubectl } from '../support/fake-kubectl.js';

const stack = compileKubernetesStack(
  loadValues({ sets: ['synapse.server.name=chat.example', 'synapse.workers.pools.sync.autoscaling.enabled=true', 'synapse.workers.pools.streamWriter.replicas=1'] }),
  { release: 'mx', namespace: 'chat' },
);

test('stop and start of synapse cover every worker pool, workers stopped first and started after the main process', async (t) => {
  const fake = installFakeKubectl([
      // The autoscaler had scaled the sync pool to 2.
      { match: ['get', 'deployment.apps/mx-synapse-sync', 'jsonpath={.spec.replicas}'], stdout: '2' },
      { match: ['get', 'statefulset.apps/mx-synapse-stream-writer', 'jsonpath={.spec.replicas}'], stdout: '1' },
      { match: ['get', 'pods'], stdout: '{"items":[]}' },
      { match: ['scale'], stdout: '' },
      { match: ['rollout', 'status'], stdout: '' },
    ]);
  t.after(() => fake.restore());

  const target = new KubernetesTarget(stack, { namespace: 'chat' });
  await target.stop('synapse');
  await target.start('synapse');

  const calls = fake
    .calls()
    .map((call) => call.argv)
    .filter((argv) => argv.includes('scale') || argv.includes('rollout'))
    .map((argv) => argv.filter((arg) => /^(scale|rollout|status|(deployment|statefulset)\.apps\/.*|--replicas=\d+)$/.test(arg)).join(' '));
  const stopMain = calls.indexOf('scale --replicas=0 deployment.apps/mx-synapse');
  assert.ok(stopMain >= 0, calls.join('\n'));
  const stops = calls.slice(0, stopMain).sort();
  assert.deepEqual(stops, ['scale --replicas=0 deployment.apps/mx-synapse-sync', 'scale --replicas=0 statefulset.apps/mx-synapse-stream-writer'], 'every pool is scaled to 0 before the main process');
  assert.deepEqual(calls.slice(stopMain + 1), [
    'scale --replicas=1 deployment.apps/mx-synapse',
    'rollout status deployment.apps/mx-synapse',
    'scale --replicas=2 deployment.apps/mx-synapse-sync',
    'scale --replicas=1 statefulset.apps/mx-synapse-stream-writer',
    'rollout status deployment.apps/mx-synapse-sync',
    'rollout status statefulset.apps/mx-synapse-stream-writer',
  ]);
});
