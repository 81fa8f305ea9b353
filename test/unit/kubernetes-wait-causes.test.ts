/**
 * Why a workload is not ready, from live pods and events (shapes as the API server returns them; the
 * image pull, unschedulable and ProvisioningFailed cases are also produced for real in
 * kubernetes-release-diagnosis.test.ts). Crash loops and Pod Security refusals need a runnable image or
 * a non-compliant pod, so they are checked here on recorded objects.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { PlainObject } from '../../src/targets/kubernetes/applyset.js';
import { causesOf, podsOfWorkload } from '../../src/targets/kubernetes/wait-causes.js';
import { claimReadiness, readinessOf } from '../../src/targets/kubernetes/wait.js';

const labels = { 'app.kubernetes.io/instance': 'mx', 'app.kubernetes.io/name': 'synapse' };
const deployment: PlainObject = {
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'mx-synapse' },
  spec: { template: { metadata: { labels }, spec: { volumes: [{ name: 'data', persistentVolumeClaim: { claimName: 'mx-synapse-media' } }] } } },
};
const pod = (name: string, status: unknown, podLabels = labels): PlainObject => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name, labels: podLabels }, status } as PlainObject);
const event = (kind: string, name: string, reason: string, message: string, lastTimestamp: string, type = 'Warning') => ({ type, reason, message, lastTimestamp, count: 3, involvedObject: { kind, name } });

test('a crash loop names the container, the reason, the exit code and the restarts', () => {
  const crashing = pod('mx-synapse-7d9-abcde', {
    phase: 'Running',
    conditions: [{ type: 'PodScheduled', status: 'True' }],
    containerStatuses: [{ name: 'synapse', restartCount: 4, state: { waiting: { reason: 'CrashLoopBackOff', message: 'back-off 1m20s restarting failed container' } }, lastState: { terminated: { exitCode: 1, reason: 'Error' } } }],
  });
  assert.deepEqual(causesOf(deployment, { pods: [crashing], events: [] }), [
    'pod mx-synapse-7d9-abcde, container synapse: CrashLoopBackOff: back-off 1m20s restarting failed container (exited 1 Error, 4 restarts)',
  ]);
});

test('Warning events of the workload\'s ReplicaSets, pods and claims are named; other objects\' and Normal events are not', () => {
  const events = [
    event('ReplicaSet', 'mx-synapse-7d9', 'FailedCreate', 'pods "mx-synapse-7d9-x" is forbidden: violates PodSecurity "restricted:latest": runAsNonRoot != true', '2026-01-01T00:00:02Z'),
    event('PersistentVolumeClaim', 'mx-synapse-media', 'ProvisioningFailed', 'storageclass.storage.k8s.io "longhorn" not found', '2026-01-01T00:00:01Z'),
    event('Pod', 'mx-router-5c-zzz', 'BackOff', 'not ours', '2026-01-01T00:00:03Z'),
    event('ReplicaSet', 'mx-synapse-7d9', 'SuccessfulCreate', 'normal', '2026-01-01T00:00:04Z', 'Normal'),
  ];
  assert.deepEqual(causesOf(deployment, { pods: [], events }), [
    'PersistentVolumeClaim/mx-synapse-media: ProvisioningFailed: storageclass.storage.k8s.io "longhorn" not found (3 times)',
    'ReplicaSet/mx-synapse-7d9: FailedCreate: pods "mx-synapse-7d9-x" is forbidden: violates PodSecurity "restricted:latest": runAsNonRoot != true (3 times)',
  ]);
});

test('pods belong to a workload by its pod template labels; ContainerCreating is no cause', () => {
  const ours = pod('mx-synapse-1', { containerStatuses: [{ name: 'synapse', state: { waiting: { reason: 'ContainerCreating' } } }] });
  const router = pod('mx-router-1', {}, { ...labels, 'app.kubernetes.io/name': 'router' });
  assert.deepEqual(podsOfWorkload(deployment, [ours, router]).map((p) => p.metadata.name), ['mx-synapse-1']);
  assert.deepEqual(causesOf(deployment, { pods: [ours, router], events: [] }), []);
});

test('a claim is ready when Bound, not while Pending; Lost is a failure', () => {
  const claim = (phase?: string): PlainObject => ({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'c' }, spec: { storageClassName: 'longhorn' }, ...(phase ? { status: { phase } } : {}) } as PlainObject);
  assert.deepEqual(readinessOf(claim('Pending')), { state: 'progressing', detail: 'pending: no volume yet (storage class longhorn)' });
  assert.equal(readinessOf(claim('Bound')).state, 'ready');
  assert.equal(claimReadiness(claim('Lost')).state, 'failed');
});
