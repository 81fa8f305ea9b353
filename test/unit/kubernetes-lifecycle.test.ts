/**
 * The Kubernetes lifecycle: install, upgrade, diff, status, uninstall.
 *
 * No Kubernetes API server can run on these machines (no kube-apiserver package, no container engine),
 * so the exact kubectl invocations are checked through a recording stand-in for kubectl
 * (test/support/fake-kubectl/) put first on PATH: it records argv and stdin and answers scripted outputs.
 * The inventory and prune computation, the guards, the Secrets plan and the wait logic are pure
 * functions, tested directly. The flags mxstack passes are also checked against the real kubectl's help.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { loadValues } from '../../src/values/load.js';
import { compileKubernetesStack, renderKubernetesObjects } from '../../src/targets/kubernetes/render.js';
import {
  applysetId,
  applysetPartOfLabel,
  asMembers,
  buildParent,
  computePrune,
  formatGroupKinds,
  groupKind,
  kubectlResource,
  parentProblem,
  parseGroupKinds,
  planDeletion,
  releaseApplysetId,
  valuesHash,
  type PlainObject,
} from '../../src/targets/kubernetes/applyset.js';
import {
  applyArgs,
  createArgs,
  deleteArgs,
  deleteBySelectorArgs,
  diffArgs,
  execArgs,
  getArgs,
  getNamedArgs,
  kubectlVersionProblem,
  mergePatchArgs,
  parseClientVersion,
  portForwardArgs,
  rolloutRestartArgs,
  rolloutStatusArgs,
  scaleArgs,
} from '../../src/targets/kubernetes/kubectl.js';
import {
  awaitedRefs,
  certificateReadiness,
  deploymentReadiness,
  jobReadiness,
  parseDuration,
  statefulSetReadiness,
  waitUntilReady,
  waitVerdict,
} from '../../src/targets/kubernetes/wait.js';
import {
  explainHelmTakeover,
  helmTakeover,
  livePostgres,
  liveServerName,
  parseHelmReleaseListing,
  postgresMajorChange,
  postgresMajorOfImage,
  serverNameChange,
  streamWritersChange,
} from '../../src/targets/kubernetes/guards.js';
import {
  annotateSecretConfigDigest,
  secretConfigDigest,
  synapseStartSecrets,
  decodeSecrets,
  planSecrets,
  secretConfigDigestAnnotation,
  type SecretGenerators,
} from '../../src/targets/kubernetes/secrets-store.js';
import { runCli } from '../support/cli.js';
import { fakeKubectlDir } from '../support/fake-kubectl.js';

const minimalValues = fileURLToPath(new URL('../fixtures/values/minimal.yaml', import.meta.url));

function stackOf(sets: string[] = [], files: string[] = [minimalValues]) {
  const values = loadValues({ files, sets });
  return compileKubernetesStack(values, { release: 'mxstack', namespace: 'matrix' });
}

const id = releaseApplysetId('mxstack', 'matrix');
const object = (kind: string, name: string, extra: Partial<PlainObject> = {}, apiVersion = 'v1'): PlainObject => ({
  apiVersion,
  kind,
  ...extra,
  metadata: { name, namespace: 'matrix', ...(extra.metadata ?? {}) },
});
const member = (kind: string, name: string, apiVersion = 'v1', applyset = id) =>
  object(kind, name, { metadata: { name, namespace: 'matrix', labels: { [applysetPartOfLabel]: applyset } } }, apiVersion);

// -------------------------------------------------------------------------------------------------------
// Pure: inventory and prune
// -------------------------------------------------------------------------------------------------------

describe('ApplySet inventory', () => {
  test('the id follows the KEP: the same value kubectl computes for Secret my-set in namespace test', () => {
    // Value from kubectl's own apply tests (parent Secret my-set, namespace test).
    assert.equal(applysetId({ name: 'my-set', namespace: 'test', kind: 'Secret', group: '' }), 'applyset-0eFHV8ySqp7XoShsGvyWFQD3s96yqwHmzc4e0HR1dsY-v1');
    assert.notEqual(releaseApplysetId('mxstack', 'matrix'), releaseApplysetId('mxstack', 'other'));
    assert.match(id, /^applyset-[A-Za-z0-9_-]{43}-v1$/);
  });

  test('group-kinds are written Kind.group (core: Kind), sorted and de-duplicated', () => {
    assert.equal(groupKind({ group: 'apps', kind: 'Deployment' }), 'Deployment.apps');
    assert.equal(groupKind({ group: '', kind: 'Service' }), 'Service');
    assert.equal(formatGroupKinds(['Service', 'Deployment.apps', 'ConfigMap', 'Service']), 'ConfigMap,Deployment.apps,Service');
    assert.deepEqual(parseGroupKinds(' ConfigMap, Deployment.apps ,'), ['ConfigMap', 'Deployment.apps']);
    assert.equal(kubectlResource({ group: 'networking.k8s.io', kind: 'Ingress', name: 'web' }), 'ingress.networking.k8s.io/web');
  });

  test('the parent Secret carries the id label, the tooling and the group-kinds, and no data', () => {
    const stack = stackOf();
    const parent = buildParent(stack, { tooling: 'mxstack/0.1.0', groupKinds: ['Service', 'Deployment.apps'], valuesHash: 'sha256:abc' });
    assert.equal(parent.metadata.name, 'mxstack-applyset');
    assert.equal(parent.metadata.labels?.['applyset.kubernetes.io/id'], id);
    assert.equal(parent.metadata.annotations?.['applyset.kubernetes.io/tooling'], 'mxstack/0.1.0');
    assert.equal(parent.metadata.annotations?.['applyset.kubernetes.io/contains-group-kinds'], 'Deployment.apps,Service');
    assert.equal(parent.data, undefined);
  });

  test('the values hash follows the values but not the secrets written in them', () => {
    const hash = (sets: string[]) => valuesHash(stackOf(sets).values);
    assert.match(hash([]), /^sha256:[0-9a-f]{64}$/);
    assert.equal(hash([]), hash([]));
    assert.notEqual(hash([]), hash(['synapse.server.urlPreviews.enabled=false']));
    assert.equal(hash([]), hash(['synapse.server.adminUser.password=hunter2']));
  });

  test('every rendered object becomes a member labelled part-of the release ApplySet', () => {
    const stack = stackOf();
    const members = asMembers(renderKubernetesObjects(stack), id);
    assert.ok(members.length > 10);
    for (const m of members) assert.equal(m.metadata.labels?.[applysetPartOfLabel], id, `${m.kind}/${m.metadata.name}`);
  });

  test('prune set = previous inventory − current render, and never an object without our part-of label', () => {
    const rendered = [member('ConfigMap', 'kept'), member('Deployment', 'web', 'apps/v1')];
    const live = [
      member('ConfigMap', 'kept'),
      member('Deployment', 'web', 'apps/v1'),
      member('ConfigMap', 'old-config'),
      member('Deployment', 'web', 'extensions/v1beta1'), // another group: another object
      member('ConfigMap', 'other-release', 'v1', releaseApplysetId('other', 'matrix')),
      object('ConfigMap', 'unlabelled'),
    ];
    const pruned = computePrune(live, rendered, id).map((o) => `${o.apiVersion} ${o.kind}/${o.metadata.name}`);
    assert.deepEqual(pruned, ['v1 ConfigMap/old-config', 'extensions/v1beta1 Deployment/web']);
    // A listing that left out the namespace still never prunes a rendered object.
    const withoutNamespace = { ...member('ConfigMap', 'kept'), metadata: { name: 'kept', labels: { [applysetPartOfLabel]: id } } };
    assert.deepEqual(computePrune([withoutNamespace], rendered, id), []);
  });

  test('volumes and Secrets are kept unless purge; a Namespace is never deleted', () => {
    const objects = [member('PersistentVolumeClaim', 'media'), member('Secret', 'keys'), member('Service', 'web'), object('Namespace', 'matrix')];
    const plain = planDeletion(objects, { purge: false });
    assert.deepEqual(plain.delete.map((o) => o.kind), ['Service']);
    assert.deepEqual(plain.keep.map((k) => k.object.kind), ['PersistentVolumeClaim', 'Secret', 'Namespace']);
    const purge = planDeletion(objects, { purge: true });
    assert.deepEqual(purge.delete.map((o) => o.kind), ['PersistentVolumeClaim', 'Secret', 'Service']);
    assert.deepEqual(purge.keep.map((k) => k.object.kind), ['Namespace']);
  });

  test('a parent that is not ours is refused with a sentence', () => {
    assert.equal(parentProblem(undefined, id), undefined);
    const foreign = object('Secret', 'mxstack-applyset', {
      metadata: { name: 'mxstack-applyset', labels: { 'applyset.kubernetes.io/id': id }, annotations: { 'applyset.kubernetes.io/tooling': 'kubectl/v1.32' } },
    });
    assert.match(parentProblem(foreign, id) ?? '', /managed by kubectl\/v1\.32, not mxstack/);
    assert.match(parentProblem(object('Secret', 'mxstack-applyset'), id) ?? '', /not an ApplySet parent/);
  });
});

// -------------------------------------------------------------------------------------------------------
// Pure: kubectl arguments and version
// -------------------------------------------------------------------------------------------------------

describe('kubectl invocations', () => {
  const connection = { namespace: 'matrix', kubeconfig: '/tmp/kc', context: 'prod' };

  test('apply is server-side, field manager mxstack, strict validation, objects on stdin', () => {
    assert.deepEqual(applyArgs(connection), [
      '--kubeconfig=/tmp/kc',
      '--context=prod',
      'apply',
      '--namespace=matrix',
      '--server-side',
      '--field-manager=mxstack',
      '--validate=strict',
      '--output=name',
      '--filename=-',
    ]);
    const takeover = applyArgs({ namespace: 'matrix' }, { dryRun: true, forceConflicts: true });
    assert.ok(takeover.includes('--force-conflicts') && takeover.includes('--dry-run=server'));
    assert.deepEqual(diffArgs({ namespace: 'matrix' }), ['diff', '--namespace=matrix', '--server-side', '--field-manager=mxstack', '--filename=-']);
  });

  test('Secrets are never on a command line: create reads stdin, patch a private file', () => {
    assert.deepEqual(createArgs({ namespace: 'm' }), ['create', '--namespace=m', '--output=name', '--filename=-']);
    assert.deepEqual(mergePatchArgs({ namespace: 'm' }, 'secret/x', '/tmp/p/patch.json'), ['patch', 'secret/x', '--namespace=m', '--type=merge', '--patch-file=/tmp/p/patch.json', '--output=name']);
  });

  test('get and delete name the objects and the namespace', () => {
    assert.deepEqual(getArgs({ namespace: 'm' }, ['configmap', 'deployment.apps'], { selector: 'a=b', ignoreNotFound: true }), [
      'get',
      'configmap,deployment.apps',
      '--namespace=m',
      '--selector=a=b',
      '--ignore-not-found',
      '--output=json',
    ]);
    assert.deepEqual(getNamedArgs({ namespace: 'm' }, ['secret/a', 'secret/b']), ['get', 'secret/a', 'secret/b', '--namespace=m', '--ignore-not-found', '--output=json']);
    assert.deepEqual(deleteArgs({ namespace: 'm' }, ['service/a'], { timeoutSeconds: 60 }), ['delete', 'service/a', '--namespace=m', '--ignore-not-found', '--timeout=60s']);
  });

  test('kubectl older than 1.27 is refused with a sentence; newer, with a vendor suffix, is accepted', () => {
    const version = (text: string) => parseClientVersion(JSON.stringify({ clientVersion: { gitVersion: text } }));
    assert.equal(kubectlVersionProblem(version('v1.32.4-dispatcher')), undefined);
    assert.equal(kubectlVersionProblem(version('v1.27.0')), undefined);
    assert.equal(kubectlVersionProblem(version('v2.0.0')), undefined);
    const problem = kubectlVersionProblem(version('v1.20.2'));
    assert.match(problem ?? '', /kubectl 1\.20\.2 is too old: mxstack needs kubectl 1\.27 or newer/);
    assert.match(problem ?? '', /apt-get install kubectl/);
    assert.throws(() => parseClientVersion('not json'), /cannot read the version of kubectl/);
  });

  const realKubectl = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' });
  test('every flag mxstack passes exists in the real kubectl on this machine', { skip: realKubectl.status !== 0 && 'no kubectl on PATH' }, () => {
    // Flags only: what follows `--` belongs to the program kubectl exec runs.
    const flagsOf = (args: string[]) => args.slice(0, args.includes('--') ? args.indexOf('--') : args.length).filter((a) => a.startsWith('--')).map((a) => a.split('=')[0]!);
    const invocations: Record<string, string[]> = {
      apply: applyArgs(connection, { dryRun: true, forceConflicts: true }),
      diff: diffArgs(connection, { forceConflicts: true }),
      create: createArgs(connection, { dryRun: true }),
      patch: mergePatchArgs(connection, 'secret/x', '/tmp/p/patch.json', { dryRun: true }),
      get: [...getArgs(connection, ['secret'], { selector: 'a', fieldSelector: 'b', ignoreNotFound: true }), ...getNamedArgs(connection, ['x'])],
      delete: [...deleteArgs(connection, ['x'], { timeoutSeconds: 1, dryRun: true }), ...deleteBySelectorArgs(connection, ['x'], 'a=b', { timeoutSeconds: 1 })],
      // The operations' invocations (src/ops through the Kubernetes target) live in the same module.
      exec: execArgs(connection, 'deployment/x', ['true']),
      'port-forward': portForwardArgs(connection, 'service/x', 8008),
      scale: scaleArgs(connection, 'deployment/x', 0),
      'rollout restart': rolloutRestartArgs(connection, 'deployment/x'),
      'rollout status': rolloutStatusArgs(connection, 'deployment/x', 60),
    };
    const global = spawnSync('kubectl', ['options'], { encoding: 'utf8' }).stdout;
    for (const [command, args] of Object.entries(invocations)) {
      const help = spawnSync('kubectl', [...command.split(' '), '--help'], { encoding: 'utf8' }).stdout + global;
      for (const flag of flagsOf(args)) assert.ok(help.includes(`${flag}=`) || help.includes(`${flag}:`), `kubectl ${command} has no ${flag}`);
    }
  });
});

// -------------------------------------------------------------------------------------------------------
// Pure: readiness and the wait loop
// -------------------------------------------------------------------------------------------------------

describe('waiting for the release', () => {
  const deployment = (spec: object, status: object, generation = 2) =>
    object('Deployment', 'web', { spec, status, metadata: { name: 'web', generation } } as Partial<PlainObject>, 'apps/v1');

  test('a Deployment is ready once every replica is updated and available (kubectl rollout status rules)', () => {
    assert.equal(deploymentReadiness(deployment({ replicas: 2 }, { observedGeneration: 1 })).detail, 'waiting for the controller to see the new spec');
    assert.deepEqual(deploymentReadiness(deployment({ replicas: 2 }, { observedGeneration: 2, updatedReplicas: 1, replicas: 2 })), {
      state: 'progressing',
      detail: '1 of 2 replicas updated',
    });
    assert.equal(deploymentReadiness(deployment({ replicas: 2 }, { observedGeneration: 2, updatedReplicas: 2, replicas: 3, availableReplicas: 2 })).detail, '1 old replicas terminating');
    assert.equal(deploymentReadiness(deployment({ replicas: 2 }, { observedGeneration: 2, updatedReplicas: 2, replicas: 2, availableReplicas: 1 })).state, 'progressing');
    assert.equal(deploymentReadiness(deployment({ replicas: 2 }, { observedGeneration: 2, updatedReplicas: 2, replicas: 2, availableReplicas: 2 })).state, 'ready');
    assert.equal(deploymentReadiness(deployment({ replicas: 0 }, { observedGeneration: 2 })).state, 'ready');
    const stalled = deploymentReadiness(deployment({ replicas: 1 }, { observedGeneration: 2, conditions: [{ type: 'Progressing', reason: 'ProgressDeadlineExceeded', message: 'ReplicaSet "web-1" has timed out progressing.' }] }));
    assert.equal(stalled.state, 'failed');
  });

  test('StatefulSets, Jobs and Certificates', () => {
    const sts = (status: object) => object('StatefulSet', 'db', { spec: { replicas: 1 }, status: { observedGeneration: 1, ...status }, metadata: { name: 'db', generation: 1 } } as Partial<PlainObject>, 'apps/v1');
    assert.equal(statefulSetReadiness(sts({ readyReplicas: 0 })).detail, '0 of 1 pods ready');
    assert.equal(statefulSetReadiness(sts({ readyReplicas: 1, currentRevision: 'a', updateRevision: 'b', updatedReplicas: 0 })).state, 'progressing');
    assert.equal(statefulSetReadiness(sts({ readyReplicas: 1, currentRevision: 'b', updateRevision: 'b' })).state, 'ready');

    const job = (status: object) => object('Job', 'admin', { status } as Partial<PlainObject>, 'batch/v1');
    assert.equal(jobReadiness(job({ active: 1 })).state, 'progressing');
    assert.equal(jobReadiness(job({ conditions: [{ type: 'Complete', status: 'True' }] })).state, 'ready');
    const failed = jobReadiness(job({ conditions: [{ type: 'Failed', status: 'True', reason: 'BackoffLimitExceeded', message: 'Job has reached the specified backoff limit' }] }));
    assert.deepEqual(failed, { state: 'failed', detail: 'failed: Job has reached the specified backoff limit' });

    const cert = (conditions: object[]) => object('Certificate', 'tls', { status: { conditions } } as Partial<PlainObject>, 'cert-manager.io/v1');
    assert.equal(certificateReadiness(cert([{ type: 'Ready', status: 'True' }])).state, 'ready');
    assert.equal(certificateReadiness(cert([{ type: 'Ready', status: 'False', message: 'Issuing certificate as Secret does not exist' }])).detail, 'not ready: Issuing certificate as Secret does not exist');
    assert.equal(certificateReadiness(cert([{ type: 'Issuing', status: 'False', reason: 'Failed', message: 'ACME order failed' }])).state, 'failed');
  });

  test('awaited: workloads, Jobs, and the Certificates cert-manager makes from annotated Ingresses', () => {
    const ingress = object('Ingress', 'web', {
      metadata: { name: 'web', annotations: { 'cert-manager.io/cluster-issuer': 'letsencrypt' } },
      spec: { tls: [{ secretName: 'web-tls' }, { secretName: 'web-tls' }] },
    } as Partial<PlainObject>, 'networking.k8s.io/v1');
    const plainIngress = object('Ingress', 'plain', { spec: { tls: [{ secretName: 'manual-tls' }] } } as Partial<PlainObject>, 'networking.k8s.io/v1');
    const refs = awaitedRefs([ingress, plainIngress, object('Deployment', 'web', {}, 'apps/v1'), object('Job', 'admin', {}, 'batch/v1'), object('Service', 'web')]);
    assert.deepEqual(refs.map((r) => `${r.kind}/${r.name}`), ['Certificate/web-tls', 'Deployment/web', 'Job/admin']);
  });

  test('the verdict: a failure stops at once, all ready succeeds, otherwise until the deadline', () => {
    const ref = { group: 'apps', kind: 'Deployment', namespace: 'matrix', name: 'web' };
    const at = (state: 'ready' | 'progressing' | 'failed') => [{ ref, readiness: { state, detail: state } }];
    assert.equal(waitVerdict(at('failed'), 0, 1000).outcome, 'failed');
    assert.equal(waitVerdict(at('ready'), 5000, 1000).outcome, 'ready');
    assert.equal(waitVerdict(at('progressing'), 999, 1000).outcome, 'continue');
    assert.equal(waitVerdict(at('progressing'), 1000, 1000).outcome, 'timeout');
  });

  test('the loop polls until ready, reporting each change once, and gives up at the timeout', async () => {
    const ref = { group: 'apps', kind: 'Deployment', namespace: 'matrix', name: 'web' };
    const polls = [
      deployment({ replicas: 1 }, { observedGeneration: 2, updatedReplicas: 0 }),
      deployment({ replicas: 1 }, { observedGeneration: 2, updatedReplicas: 0 }),
      deployment({ replicas: 1 }, { observedGeneration: 2, updatedReplicas: 1, replicas: 1, availableReplicas: 1 }),
    ];
    let clock = 0;
    const lines: string[] = [];
    const verdict = await waitUntilReady({
      refs: [ref],
      read: async () => [polls.shift() ?? polls[0]!],
      timeoutMs: 60_000,
      intervalMs: 2000,
      report: (line) => lines.push(line),
      now: () => clock,
      sleep: async (ms) => {
        clock += ms;
      },
    });
    assert.equal(verdict.outcome, 'ready');
    assert.deepEqual(lines, ['waiting Deployment/web: 0 of 1 replicas updated', 'ready   Deployment/web: 1 of 1 replicas available']);

    clock = 0;
    const stuck = await waitUntilReady({
      refs: [ref],
      read: async () => [],
      timeoutMs: 10_000,
      report: () => undefined,
      now: () => clock,
      sleep: async (ms) => {
        clock += ms;
      },
    });
    assert.equal(stuck.outcome, 'timeout');
    assert.equal(clock, 10_000);
  });

  test('durations', () => {
    assert.equal(parseDuration('10m'), 600_000);
    assert.equal(parseDuration('1h30m'), 5_400_000);
    assert.equal(parseDuration('90'), 90_000);
    assert.equal(parseDuration('ten'), undefined);
    assert.equal(parseDuration(''), undefined);
  });
});

// -------------------------------------------------------------------------------------------------------
// Pure: guards
// -------------------------------------------------------------------------------------------------------

describe('guards', () => {
  const synapseConfigMap = (serverName: string) => object('ConfigMap', 'mxstack-synapse', { data: { 'homeserver.yaml': `server_name: ${serverName}\npublic_baseurl: https://x/\n` } } as Partial<PlainObject>);

  test('a server name change is refused; the same name passes', () => {
    const live = liveServerName([object('ConfigMap', 'other', { data: { 'config.json': '{}' } } as Partial<PlainObject>), synapseConfigMap('old.example')]);
    assert.deepEqual(live, { serverName: 'old.example', configMap: 'mxstack-synapse' });
    assert.equal(serverNameChange(live, 'old.example'), undefined);
    const refusal = serverNameChange(live, 'new.example') ?? '';
    assert.match(refusal, /refusing to change the server name from old\.example to new\.example/);
    assert.match(refusal, /Synapse cannot rename a server/);
    assert.equal(serverNameChange(undefined, 'new.example'), undefined);
  });

  test('upgrade says when the Synapse stream writers change (every Synapse process restarts), and is silent otherwise', () => {
    const live = [object('ConfigMap', 'mxstack-synapse', { data: { 'homeserver.yaml': 'server_name: a\nstream_writers:\n  events: event-persister-1\ninstance_map:\n  main: {host: x, port: 9093}\n  event-persister-1: {host: y, port: 9093}\n' } } as Partial<PlainObject>)];
    const same = { stream_writers: { events: 'event-persister-1' }, instance_map: { main: {}, 'event-persister-1': {} } };
    assert.equal(streamWritersChange(live, 'mxstack-synapse', same), undefined);
    const more = { stream_writers: { events: ['event-persister-1', 'event-persister-2'] }, instance_map: { main: {}, 'event-persister-1': {}, 'event-persister-2': {} } };
    assert.match(streamWritersChange(live, 'mxstack-synapse', more) ?? '', /stream writers change .*event-persister-2.*every Synapse process restarts/);
    assert.match(streamWritersChange(live, 'mxstack-synapse', {}) ?? '', /stream writers change/, 'back to the monolith');
    assert.equal(streamWritersChange([], 'mxstack-synapse', more), undefined, 'a first install has nothing to compare');
  });

  test('PostgreSQL major versions from image references', () => {
    assert.equal(postgresMajorOfImage('postgres:16-alpine'), 16);
    assert.equal(postgresMajorOfImage('docker.io/library/postgres:18.1'), 18);
    assert.equal(postgresMajorOfImage('registry:5000/postgres:15@sha256:abc'), 15);
    assert.equal(postgresMajorOfImage('postgres:latest'), undefined);
    assert.equal(postgresMajorOfImage('postgres'), undefined);
  });

  test('a PostgreSQL major change warns and suggests a backup and the pin; the same major is silent', () => {
    const sts = object('StatefulSet', 'matrix-synapse-postgresql', { spec: { template: { spec: { containers: [{ name: 'postgresql', image: 'postgres:16-alpine' }] } } } } as Partial<PlainObject>, 'apps/v1');
    const live = livePostgres([sts]);
    assert.deepEqual(live, { statefulSet: 'matrix-synapse-postgresql', image: 'postgres:16-alpine', major: 16 });
    const warning = postgresMajorChange(live, { image: 'postgres:18-alpine', major: 18 }, { release: 'r', namespace: 'n' }) ?? '';
    assert.match(warning, /from major version 16 \(postgres:16-alpine\) to 18/);
    assert.match(warning, /mxstack backup/);
    assert.match(warning, /--set postgresql\.image\.tag=16-alpine/);
    assert.equal(postgresMajorChange(live, { image: 'postgres:16.4', major: 16 }, { release: 'r', namespace: 'n' }), undefined);
  });

  test('Helm release Secrets are read from metadata only and the takeover is explained', () => {
    const listing = 'sh.helm.release.v1.matrix-synapse.v1\tmatrix-synapse\tsuperseded\t1\nsh.helm.release.v1.matrix-synapse.v2\tmatrix-synapse\tdeployed\t2\nunrelated\t\t\t\n';
    const secrets = parseHelmReleaseListing(listing);
    assert.deepEqual(secrets.map((s) => s.name), ['sh.helm.release.v1.matrix-synapse.v1', 'sh.helm.release.v1.matrix-synapse.v2']);
    const found = helmTakeover(secrets, ['deployment.apps/matrix-synapse-synapse'])!;
    assert.deepEqual(found.releases, ['matrix-synapse']);
    const text = explainHelmTakeover(found, { release: 'mxstack', namespace: 'matrix' }).join('\n');
    assert.match(text, /--force-conflicts/);
    assert.match(text, /sh\.helm\.release\.v1\.\*/);
    assert.match(text, /use --release matrix-synapse/);
    assert.match(text, /--take-over-helm-release/);
    assert.equal(helmTakeover([], []), undefined);
    assert.equal(helmTakeover([], ['deployment.apps/leftover']), undefined, 'leftovers without a release Secret are no release');
  });
});

// -------------------------------------------------------------------------------------------------------
// Pure: the release Secrets
// -------------------------------------------------------------------------------------------------------

describe('release Secrets', () => {
  let counter = 0;
  const generators: SecretGenerators = {
    postgresPassword: () => `pg-${++counter}`,
    adminPassword: () => `admin-${++counter}`,
    randomSecret: () => `random-${++counter}`,
    signingKey: () => `ed25519 a_test key-${++counter}`,
  };

  test('only missing keys are generated; existing ones are never replaced', () => {
    const stack = stackOf();
    const fresh = planSecrets(stack, new Map(), generators);
    assert.deepEqual(fresh.problems, []);
    const created = new Map(fresh.create.map((s) => [s.name, Object.keys(s.data).sort()]));
    assert.deepEqual(created.get('mxstack-postgresql'), ['postgres-password']);
    assert.deepEqual(created.get('mxstack-admin-credentials'), ['password', 'registration-secret', 'username']);
    assert.deepEqual(created.get('mxstack-signing-key'), ['signing.key']);
    assert.equal(created.has('mxstack-synapse-secret-config'), false, 'the secret config is assembled, not generated');
    assert.equal(fresh.create.find((s) => s.name === 'mxstack-admin-credentials')?.data.username, 'admin');

    // The old chart's Secrets exist with the same names and keys: nothing of theirs is touched.
    const live = new Map<string, Record<string, string>>([
      ['mxstack-postgresql', { 'postgres-password': 'kept' }],
      ['mxstack-admin-credentials', { username: 'admin', password: 'kept' }],
    ]);
    const partial = planSecrets(stack, live, generators);
    assert.equal(partial.create.some((s) => s.name === 'mxstack-postgresql'), false);
    assert.deepEqual(partial.addKeys, [{ name: 'mxstack-admin-credentials', data: { 'registration-secret': partial.addKeys[0]!.data['registration-secret']! } }]);
  });

  test('with workers the replication secret and the Redis password are generated (install on a fresh namespace)', () => {
    const plan = planSecrets(stackOf(['synapse.workers.preset=small']), new Map(), generators);
    assert.deepEqual(plan.problems, []);
    const created = new Map(plan.create.map((s) => [s.name, Object.keys(s.data).sort()]));
    assert.deepEqual(created.get('mxstack-redis'), ['password']);
    assert.ok(created.get('mxstack-synapse-keys')?.includes('worker-replication-secret'), JSON.stringify([...created]));
  });

  test('a Secret the values point at must exist: refused with how to create it', () => {
    const stack = stackOf(['synapse.database.passwordSecretRef.name=db-credentials', 'synapse.database.passwordSecretRef.key=password']);
    const plan = planSecrets(stack, new Map(), generators);
    assert.equal(plan.problems.length, 1);
    assert.match(plan.problems[0]!, /Secret db-credentials \(key password\) named in the values does not exist in namespace matrix/);
    assert.match(plan.problems[0]!, /kubectl -n matrix create secret generic db-credentials --from-file=password=/);
  });

  test('a TLS Secret the values name is one `kubectl create secret tls` command, not one command per key', () => {
    const stack = stackOf(['coturn.tls.enabled=true', 'coturn.tls.secretName=coturn-tls']);
    const plan = planSecrets(stack, new Map(), generators);
    const tls = plan.problems.filter((p) => p.includes('coturn-tls'));
    assert.equal(tls.length, 1, tls.join('\n'));
    assert.match(tls[0]!, /^Secret coturn-tls \(keys tls\.crt, tls\.key\) named in the values does not exist in namespace matrix; create it first: kubectl -n matrix create secret tls coturn-tls --cert=<certificate file> --key=<private key file>$/);
    // Several missing keys of one Secret: one command with every key (a second `create` would fail).
    const noGenerate = planSecrets(stackOf(['secrets.autoGenerate=false']), new Map(), generators);
    const admin = noGenerate.problems.filter((p) => p.includes('mxstack-admin-credentials'));
    assert.equal(admin.length, 1, admin.join('\n'));
    assert.match(admin[0]!, /create secret generic mxstack-admin-credentials (--from-file=[a-z-]+=<file holding the value> ?){2,}$/);
  });

  test('with secrets.autoGenerate false, missing secrets are refused instead of generated', () => {
    const plan = planSecrets(stackOf(['secrets.autoGenerate=false']), new Map(), generators);
    assert.equal(plan.create.length, 0);
    assert.ok(plan.problems.some((p) => /mxstack-signing-key \(key signing\.key\) is missing and secrets\.autoGenerate is false/.test(p)));
  });

  test('the digest of what Synapse reads only at start follows the stored database password and rolls only Synapse', () => {
    const stack = stackOf();
    const live = new Map([['mxstack-postgresql', { 'postgres-password': 'stored-password' }]]);
    assert.deepEqual(synapseStartSecrets(stack, live), { 'database-password': 'stored-password' });
    const rotated = new Map([['mxstack-postgresql', { 'postgres-password': 'rotated' }]]);
    assert.notEqual(secretConfigDigest(synapseStartSecrets(stack, live)), secretConfigDigest(synapseStartSecrets(stack, rotated)));

    const members = annotateSecretConfigDigest(asMembers(renderKubernetesObjects(stack), id), stack.objectName('synapse'), 'd1');
    const annotated = members.filter((m) => (m.spec as { template?: { metadata?: { annotations?: Record<string, string> } } })?.template?.metadata?.annotations?.[secretConfigDigestAnnotation] === 'd1');
    assert.deepEqual(annotated.map((m) => `${m.kind}/${m.metadata.name}`), ['Deployment/mxstack-synapse']);
  });

  test('decoding kubectl output: one object, a List, or nothing', () => {
    const secret = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'a' }, data: { k: Buffer.from('v').toString('base64') } };
    assert.deepEqual(decodeSecrets(JSON.stringify(secret)).get('a'), { k: 'v' });
    assert.deepEqual([...decodeSecrets(JSON.stringify({ kind: 'List', items: [secret] })).keys()], ['a']);
    assert.equal(decodeSecrets('').size, 0);
  });
});

// -------------------------------------------------------------------------------------------------------
// The commands, run as a user runs them, against the recording stand-in
// -------------------------------------------------------------------------------------------------------

interface Rule {
  match: string[];
  stdout?: string;
  stderr?: string;
  exit?: number;
  times?: number;
  stdinIncludes?: string;
}

interface Call {
  argv: string[];
  stdin: string;
}

const versionRule = (version = 'v1.32.4'): Rule => ({ match: ['version --client'], stdout: JSON.stringify({ clientVersion: { gitVersion: version } }) });
const list = (items: object[]) => JSON.stringify({ apiVersion: 'v1', kind: 'List', items });
const secretJson = (name: string, data: Record<string, string>) => ({
  apiVersion: 'v1',
  kind: 'Secret',
  metadata: { name, namespace: 'matrix' },
  data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
});

/** Live objects that report ready, for every workload the render waits for. */
function readyWorkloads(stack = stackOf()): object[] {
  return awaitedRefs(asMembers(renderKubernetesObjects(stack), id)).map((ref) => {
    const base = { apiVersion: ref.group === 'batch' ? 'batch/v1' : 'apps/v1', kind: ref.kind, metadata: { name: ref.name, namespace: 'matrix', generation: 1 } };
    if (ref.kind === 'Job') return { ...base, status: { conditions: [{ type: 'Complete', status: 'True' }] } };
    if (ref.kind === 'StatefulSet') return { ...base, spec: { replicas: 1 }, status: { observedGeneration: 1, readyReplicas: 1, currentRevision: 'r1', updateRevision: 'r1' } };
    return { ...base, spec: { replicas: 1 }, status: { observedGeneration: 1, replicas: 1, updatedReplicas: 1, availableReplicas: 1 } };
  });
}

const liveParent = (groupKinds: string, tooling = 'mxstack/0.1.0') => ({
  apiVersion: 'v1',
  kind: 'Secret',
  metadata: {
    name: 'mxstack-applyset',
    namespace: 'matrix',
    labels: { 'applyset.kubernetes.io/id': id },
    annotations: { 'applyset.kubernetes.io/tooling': tooling, 'applyset.kubernetes.io/contains-group-kinds': groupKinds, 'mxstack.dev/values-sha256': 'sha256:old' },
  },
});

const existingSecrets = () =>
  list([
    secretJson('mxstack-postgresql', { 'postgres-password': 'pg-secret-value' }),
    secretJson('mxstack-admin-credentials', { username: 'admin', password: 'admin-secret-value', 'registration-secret': 'reg-secret-value' }),
    secretJson('mxstack-synapse-keys', { 'macaroon-secret-key': 'mac-secret-value', 'form-secret': 'form-secret-value' }),
    secretJson('mxstack-turn-credentials', { 'shared-secret': 'turn-secret-value' }),
    secretJson('mxstack-signing-key', { 'signing.key': 'ed25519 a_abcd signing-secret-value' }),
  ]);

/** The cluster of an installed release: namespace, parent, Secrets, nothing Helm, workloads ready. */
function installedCluster(extra: Rule[] = []): Rule[] {
  return [
    versionRule(),
    ...extra,
    { match: ['get namespace/matrix'], stdout: JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'matrix' } }) },
    { match: ['get secret/mxstack-applyset '], stdout: JSON.stringify(liveParent('ConfigMap,Deployment.apps,Service')) },
    { match: ['get secret --namespace=matrix --field-selector=type=helm.sh/release.v1'], stdout: '' },
    { match: ['--selector=app.kubernetes.io/managed-by=Helm'], stdout: '' },
    { match: ['get configmap,statefulset.apps,deployment.apps', '--selector=app.kubernetes.io/instance=mxstack'], stdout: list([]) },
    { match: ['get secret/mxstack-admin-credentials'], stdout: existingSecrets() },
    { match: ['get ', 'deployment.apps/mxstack-synapse '], stdout: list(readyWorkloads()) },
    { match: ['get job.batch/'], stdout: '' },
    { match: ['--selector=applyset.kubernetes.io/part-of='], stdout: list([]) },
    { match: ['apply'], stdout: '@names' },
    { match: ['create'], stdout: '@names' },
    { match: ['patch'], stdout: 'secret/patched\n' },
    { match: ['delete'], stdout: '' },
  ];
}

function runWithFakeKubectl(args: string[], rules: Rule[], env: NodeJS.ProcessEnv = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'mxstack-fake-kubectl-'));
  try {
    writeFileSync(join(dir, 'script.json'), JSON.stringify(rules));
    const result = runCli(args, { env: { PATH: `${fakeKubectlDir}${delimiter}${process.env.PATH}`, FAKE_KUBECTL_DIR: dir, ...env } });
    const log = join(dir, 'calls.jsonl');
    const calls: Call[] = existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').filter(Boolean).map((line) => JSON.parse(line) as Call) : [];
    return { ...result, calls };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const subcommand = (call: Call) => call.argv.find((a) => !a.startsWith('--')) ?? '';
const secretValuesIn = ['pg-secret-value', 'admin-secret-value', 'reg-secret-value', 'mac-secret-value', 'turn-secret-value', 'signing-secret-value'];

function assertNoSecretOnCommandLines(calls: Call[], output: string) {
  for (const call of calls) {
    for (const value of secretValuesIn) assert.ok(!call.argv.join(' ').includes(value), `a secret value on a command line: ${call.argv.join(' ')}`);
  }
  for (const value of secretValuesIn) assert.ok(!output.includes(value), 'a secret value in the output');
}

const documentsOf = (stdin: string) => parseAllDocuments(stdin).map((d) => d.toJS() as PlainObject).filter(Boolean);

describe('mxstack install / upgrade (through the kubectl stand-in)', { concurrency: 2 }, () => {
  test('a fresh install creates the namespace and the missing Secrets, applies, waits, and says what to do next', () => {
    const rules: Rule[] = [
      versionRule(),
      { match: ['get namespace/matrix'], stdout: '' },
      { match: ['get ', 'deployment.apps/mxstack-synapse '], stdout: list(readyWorkloads()) },
      { match: ['apply'], stdout: '@names' },
      { match: ['create'], stdout: '@names' },
    ];
    const run = runWithFakeKubectl(['install', '-f', minimalValues, '--kubeconfig', '/tmp/kc', '--context', 'prod'], rules);
    assert.equal(run.status, 0, run.stderr);
    for (const call of run.calls.slice(1)) assert.deepEqual(call.argv.slice(0, 2), ['--kubeconfig=/tmp/kc', '--context=prod']);

    const creates = run.calls.filter((c) => subcommand(c) === 'create');
    const createdKinds = creates.flatMap((c) => documentsOf(c.stdin)).map((o) => `${o.kind}/${o.metadata.name}`);
    assert.equal(createdKinds[0], 'Namespace/matrix');
    assert.ok(createdKinds.includes('Secret/mxstack-signing-key') && createdKinds.includes('Secret/mxstack-postgresql'), createdKinds.join(' '));
    const namespace = documentsOf(creates[0]!.stdin)[0]!;
    assert.equal(namespace.metadata.labels?.['pod-security.kubernetes.io/enforce'], 'restricted');

    const applies = run.calls.filter((c) => subcommand(c) === 'apply');
    const appliedDocs = applies.map((c) => documentsOf(c.stdin));
    const membersApply = appliedDocs.find((docs) => docs.length > 5)!;
    assert.ok(membersApply.every((o) => o.metadata.labels?.[applysetPartOfLabel] === id));
    // The generated password travelled through stdin only; the database settings travel in the ConfigMap, without it.
    assert.equal(appliedDocs.flat().some((o) => o.metadata.name === 'mxstack-synapse-secret-config'), false, 'nothing to assemble without 2FA');
    const password = Buffer.from((documentsOf(creates.find((c) => c.stdin.includes('mxstack-postgresql'))!.stdin)[0]!.data as Record<string, string>)['postgres-password']!, 'base64').toString();
    const synapseConfigMap = membersApply.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'mxstack-synapse')!;
    assert.match((synapseConfigMap.data as Record<string, string>)['homeserver.yaml']!, /host: mxstack-postgresql/);
    assert.ok(!JSON.stringify(membersApply).includes(password), 'the password reached an applied object');
    for (const call of run.calls) assert.ok(!call.argv.join(' ').includes(password), 'the generated password is on a command line');
    assert.ok(!run.stdout.includes(password) && !run.stderr.includes(password));

    // The parent lists the members' kinds after the run, with the values hash.
    const finalParent = appliedDocs.at(-1)![0]!;
    assert.equal(finalParent.metadata.name, 'mxstack-applyset');
    assert.match(finalParent.metadata.annotations?.['applyset.kubernetes.io/contains-group-kinds'] ?? '', /^ConfigMap,Deployment\.apps,Job\.batch,/);
    assert.match(finalParent.metadata.annotations?.['mxstack.dev/values-sha256'] ?? '', /^sha256:[0-9a-f]{64}$/);

    assert.match(run.stdout, /^Installed release mxstack in namespace matrix: \d+ objects applied, 8 secrets generated\.$/m);
    assert.match(run.stdout, /Admin: {3}@admin:example\.com; password in Secret mxstack-admin-credentials, key password:/);
    assert.match(run.stdout, /kubectl --kubeconfig \/tmp\/kc --context prod -n matrix get secret mxstack-admin-credentials/);
    assert.match(run.stderr, /ready {3}Deployment\/mxstack-synapse: 1 of 1 replicas available/);
    // The hint must show this release, not the local stack: `status` needs --kubernetes for that.
    assert.match(run.stdout, /^ {2}Status: {2}mxstack status --kubernetes --kubeconfig \/tmp\/kc --context prod -n matrix --release mxstack$/m);
    assert.match(run.stderr, /^public routes: none rendered .*Service mxstack-router\.$/m, 'install tells which public routes it rendered');
  });

  test('an upgrade prunes what is no longer rendered: only members of this release, data kept', () => {
    const stale = [
      member('ConfigMap', 'mxstack-old-config'),
      member('PersistentVolumeClaim', 'mxstack-old-media'),
      member('ConfigMap', 'mxstack-synapse'),
      member('ConfigMap', 'someone-else', 'v1', releaseApplysetId('other', 'matrix')),
    ];
    const rules = installedCluster([{ match: ['--selector=applyset.kubernetes.io/part-of='], stdout: list(stale) }]);
    const run = runWithFakeKubectl(['upgrade', '-f', minimalValues], rules);
    assert.equal(run.status, 0, run.stderr);
    const deletes = run.calls.filter((c) => subcommand(c) === 'delete');
    assert.equal(deletes.length, 1);
    assert.deepEqual(deletes[0]!.argv.filter((a) => !a.startsWith('--')), ['delete', 'configmap/mxstack-old-config']);
    assert.match(run.stderr, /pruned ConfigMap\/mxstack-old-config/);
    assert.match(run.stderr, /kept PersistentVolumeClaim\/mxstack-old-media, no longer rendered, because it holds data/);
    // The kept claim stays in the inventory so a later purge finds it.
    const finalParent = documentsOf(run.calls.filter((c) => subcommand(c) === 'apply').at(-1)!.stdin)[0]!;
    assert.match(finalParent.metadata.annotations?.['applyset.kubernetes.io/contains-group-kinds'] ?? '', /PersistentVolumeClaim/);
    assert.match(run.stdout, /^Upgraded release mxstack in namespace matrix: \d+ objects applied, 1 pruned\.$/m);
    assertNoSecretOnCommandLines(run.calls, run.stdout + run.stderr);
    // Nothing generated: every Secret existed; the secret config is rewritten from the stored password.
    assert.equal(run.calls.filter((c) => subcommand(c) === 'create').length, 0);
  });

  test('--no-wait applies and prunes without polling; --dry-run sends every change as a server-side dry run', () => {
    const noWait = runWithFakeKubectl(['upgrade', '-f', minimalValues, '--no-wait'], installedCluster());
    assert.equal(noWait.status, 0, noWait.stderr);
    assert.equal(noWait.calls.some((c) => c.argv.some((a) => a.startsWith('deployment.apps/'))), false);
    assert.match(noWait.stdout, /Not waited for \(--no-wait\): follow the rollout with mxstack status --kubernetes -n matrix --release mxstack\./);

    const dry = runWithFakeKubectl(['upgrade', '-f', minimalValues, '--dry-run'], installedCluster());
    assert.equal(dry.status, 0, dry.stderr);
    const changing = dry.calls.filter((c) => ['apply', 'create', 'patch', 'delete'].includes(subcommand(c)));
    assert.ok(changing.length > 0);
    for (const call of changing) assert.ok(call.argv.includes('--dry-run=server'), call.argv.join(' '));
    assert.match(dry.stdout, /^Dry run of release mxstack in namespace matrix: \d+ objects accepted by the API server\.$/m);
  });

  test('invalid values are refused before any kubectl call (exit 2)', () => {
    const run = runWithFakeKubectl(['install', '--set', 'synapse.server.nmae=x'], installedCluster());
    assert.equal(run.status, 2);
    assert.equal(run.calls.length, 0);
    assert.match(run.stderr, /synapse\.server\.nmae/);
  });

  test('a server name change is refused from the live ConfigMap, nothing applied (exit 2)', () => {
    const configMap = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'mxstack-synapse', namespace: 'matrix' }, data: { 'homeserver.yaml': 'server_name: old.example\n' } };
    const run = runWithFakeKubectl(['upgrade', '-f', minimalValues], installedCluster([{ match: ['get configmap,statefulset.apps,deployment.apps'], stdout: list([configMap]) }]));
    assert.equal(run.status, 2);
    assert.match(run.stderr, /^error: refusing to change the server name from old\.example to example\.com/m);
    assert.equal(run.calls.some((c) => ['apply', 'create', 'patch', 'delete'].includes(subcommand(c))), false);
  });

  test('a PostgreSQL major change needs --yes without a terminal', () => {
    const sts = { apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'mxstack-postgresql' }, spec: { template: { spec: { containers: [{ name: 'postgresql', image: 'postgres:16-alpine' }] } } } };
    const rules = installedCluster([{ match: ['get configmap,statefulset.apps,deployment.apps'], stdout: list([sts]) }]);
    const refused = runWithFakeKubectl(['upgrade', '-f', minimalValues], rules);
    assert.equal(refused.status, 2);
    assert.match(refused.stderr, /PostgreSQL would change from major version 16/);
    assert.match(refused.stderr, /mxstack backup/);
    assert.match(refused.stderr, /Nothing was changed: confirm on a terminal, or add --yes/);
    assert.equal(refused.stderr.match(/PostgreSQL would change/g)?.length, 1, 'said once');
    assert.equal(refused.calls.some((c) => subcommand(c) === 'apply'), false);

    const accepted = runWithFakeKubectl(['upgrade', '-f', minimalValues, '--yes'], rules);
    assert.equal(accepted.status, 0, accepted.stderr);
    assert.match(accepted.stderr, /warning: PostgreSQL would change/);
  });

  test('a Helm release is explained, and taken over only with --take-over-helm-release', () => {
    const helm = [
      { match: ['--field-selector=type=helm.sh/release.v1'], stdout: 'sh.helm.release.v1.mxstack.v3\tmxstack\tdeployed\t3\n' },
      { match: ['--selector=app.kubernetes.io/managed-by=Helm'], stdout: 'deployment.apps/mxstack-synapse\nservice/mxstack-synapse\n' },
      { match: ['get secret/mxstack-applyset '], stdout: '' },
    ];
    const explained = runWithFakeKubectl(['upgrade', '-f', minimalValues], installedCluster(helm));
    assert.equal(explained.status, 2);
    assert.match(explained.stderr, /holds a Helm release \(mxstack\) with 2 objects managed by Helm/);
    assert.match(explained.stderr, /--take-over-helm-release/);
    assert.equal(explained.calls.some((c) => subcommand(c) === 'apply'), false);

    const takeover = runWithFakeKubectl(['upgrade', '-f', minimalValues, '--take-over-helm-release'], installedCluster(helm));
    assert.equal(takeover.status, 0, takeover.stderr);
    const memberApply = takeover.calls.filter((c) => subcommand(c) === 'apply').find((c) => documentsOf(c.stdin).length > 5)!;
    assert.ok(memberApply.argv.includes('--force-conflicts'));
    const deletes = takeover.calls.filter((c) => subcommand(c) === 'delete').map((c) => c.argv.filter((a) => !a.startsWith('--')).join(' '));
    assert.deepEqual(deletes, ['delete secret/sh.helm.release.v1.mxstack.v3']);
    assert.match(takeover.stderr, /removed 1 Helm release Secrets/);
  });

  test('kubectl missing or too old: one sentence with the apt command (exit 1)', () => {
    const old = runWithFakeKubectl(['install', '-f', minimalValues], [versionRule('v1.20.2')]);
    assert.equal(old.status, 1);
    assert.equal(old.stderr.trim(), `error: kubectl 1.20.2 is too old: mxstack needs kubectl 1.27 or newer for server-side apply and diff. Install it from Debian's packages: \`sudo apt-get install kubectl\` (Debian 12's older \`kubernetes-client\` package is kubectl 1.20, too old for mxstack).`);

    const missing = runCli(['install', '-f', minimalValues], { env: { PATH: '/nonexistent' } });
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /^error: kubectl was not found on PATH\. Install it from Debian's packages: `sudo apt-get install kubectl`/);
  });

  test('a failed Job is run again by the upgrade; a rejected apply explains immutable fields and prunes nothing', () => {
    const failedJob = { apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'mxstack-admin-bootstrap', namespace: 'matrix' }, status: { conditions: [{ type: 'Failed', status: 'True' }] } };
    const rerun = runWithFakeKubectl(['upgrade', '-f', minimalValues, '--no-wait'], installedCluster([{ match: ['get job.batch/mxstack-admin-bootstrap --namespace'], stdout: list([failedJob]) }]));
    assert.equal(rerun.status, 0, rerun.stderr);
    assert.match(rerun.stderr, /running Job\/mxstack-admin-bootstrap again: it failed last time/);
    const deleteJob = rerun.calls.findIndex((c) => c.argv.includes('job.batch/mxstack-admin-bootstrap') && subcommand(c) === 'delete');
    const applyMembers = rerun.calls.findIndex((c) => subcommand(c) === 'apply' && documentsOf(c.stdin).length > 5);
    assert.ok(deleteJob >= 0 && deleteJob < applyMembers, 'the Job is deleted before the members are applied');

    const immutable = 'The Deployment "mxstack-synapse" is invalid: spec.selector: Invalid value: ...: field is immutable\n';
    const rejected = runWithFakeKubectl(['upgrade', '-f', minimalValues], installedCluster([{ match: ['apply'], stdinIncludes: 'kind: Deployment', stderr: immutable, exit: 1 }]));
    assert.equal(rejected.status, 1);
    assert.match(rejected.stderr, /^error: kubectl apply failed: The Deployment "mxstack-synapse" is invalid/m);
    assert.match(rejected.stderr, /selector and volume claim templates cannot change in place/);
    assert.match(rejected.stderr, /nothing was pruned/);
    assert.equal(rejected.calls.some((c) => subcommand(c) === 'delete'), false);
  });

  test('a workload that fails stops the wait at once with where to look, and nothing is pruned (exit 1)', () => {
    const failing = readyWorkloads().map((o) =>
      (o as PlainObject).kind === 'Job' ? { ...o, status: { conditions: [{ type: 'Failed', status: 'True', message: 'Job has reached the specified backoff limit' }] } } : o,
    );
    const rules = installedCluster([
      { match: ['get ', 'deployment.apps/mxstack-synapse '], stdout: list(failing) },
      { match: ['--selector=applyset.kubernetes.io/part-of='], stdout: list([member('ConfigMap', 'mxstack-old-config')]) },
    ]);
    const run = runWithFakeKubectl(['upgrade', '-f', minimalValues], rules);
    assert.equal(run.status, 1);
    assert.match(run.stderr, /error: the release did not become healthy:\n {2}FAILED {2}Job\/mxstack-admin-bootstrap: failed: Job has reached the specified backoff limit\n {6}see: kubectl -n matrix logs job\.batch\/mxstack-admin-bootstrap/);
    assert.match(run.stderr, /Nothing was pruned/);
    assert.equal(run.calls.some((c) => subcommand(c) === 'delete'), false);
  });

  test('upgrade of a release that does not exist is refused', () => {
    const run = runWithFakeKubectl(['upgrade', '-f', minimalValues, '--release', 'typo'], [
      versionRule(),
      { match: ['get namespace/matrix'], stdout: JSON.stringify({ kind: 'Namespace', metadata: { name: 'matrix' } }) },
      { match: ['get secret/typo-applyset'], stdout: '' },
      { match: ['get secret'], stdout: '' },
      { match: ['--selector=app.kubernetes.io/managed-by=Helm'], stdout: '' },
    ]);
    assert.equal(run.status, 2);
    assert.match(run.stderr, /no release typo in namespace matrix: nothing to upgrade/);
  });
});

describe('mxstack diff / status / uninstall (through the kubectl stand-in)', { concurrency: 2 }, () => {
  test('diff prints kubectl\'s server-side diff and what would be pruned, and exits 1 when anything differs (kubectl\'s convention)', () => {
    const rules = installedCluster([
      { match: ['diff'], stdout: '--- /tmp/LIVE/apps.v1.Deployment.matrix.mxstack-synapse\n+++ /tmp/MERGED/apps.v1.Deployment.matrix.mxstack-synapse\n-  replicas: 0\n+  replicas: 1\n', exit: 1 },
      { match: ['--selector=applyset.kubernetes.io/part-of='], stdout: list([member('ConfigMap', 'mxstack-old-config')]) },
    ]);
    const run = runWithFakeKubectl(['diff', '-f', minimalValues], rules);
    assert.equal(run.status, 1, run.stderr);
    const diff = run.calls.find((c) => subcommand(c) === 'diff')!;
    assert.ok(diff.argv.includes('--server-side'));
    assert.match(run.stdout, /\+ {2}replicas: 1/);
    assert.match(run.stdout, /^# ConfigMap\/mxstack-old-config would be pruned \(no longer rendered\)$/m);
    assert.equal(run.calls.some((c) => ['apply', 'create', 'patch', 'delete'].includes(subcommand(c))), false, 'diff changes nothing');
    assertNoSecretOnCommandLines(run.calls, run.stdout + run.stderr);
  });

  test('diff with nothing to change says so (exit 0); kubectl failing is an error (exit 2, never 1 = "differences")', () => {
    const same = runWithFakeKubectl(['diff', '-f', minimalValues], installedCluster([{ match: ['diff'], stdout: '' }]));
    assert.equal(same.status, 0, same.stderr);
    assert.equal(same.stdout.trim(), 'no changes: release mxstack matches the values.');
    const broken = runWithFakeKubectl(['diff', '-f', minimalValues], installedCluster([{ match: ['diff'], stderr: 'error: the server could not find the requested resource\n', exit: 2 }]));
    assert.equal(broken.status, 2);
    assert.match(broken.stderr, /kubectl diff .* failed \(exit 2\): error: the server could not find the requested resource/);
  });

  test('status --kubernetes lists the members with their readiness, the Synapse version and the values hash', () => {
    const synapse = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'mxstack-synapse', namespace: 'matrix', generation: 3, labels: { [applysetPartOfLabel]: id } },
      spec: { replicas: 1, template: { spec: { containers: [{ name: 'synapse', image: 'ghcr.io/element-hq/synapse:v1.160.0' }] } } },
      status: { observedGeneration: 3, replicas: 1, updatedReplicas: 1, availableReplicas: 0 },
    };
    const rules = installedCluster([{ match: ['--selector=applyset.kubernetes.io/part-of='], stdout: list([synapse, member('Service', 'mxstack-synapse')]) }]);
    const run = runWithFakeKubectl(['status', '--kubernetes'], rules);
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /synapse: {6}1\.160\.0 \(ghcr\.io\/element-hq\/synapse:v1\.160\.0\)/);
    assert.match(run.stdout, /values hash: {2}sha256:old/);
    assert.match(run.stdout, /health: {7}1 not ready/);
    assert.match(run.stdout, /Deployment\/mxstack-synapse\s+progressing\s+0 of 1 replicas available/);
    const json = JSON.parse(runWithFakeKubectl(['status', '--kubernetes', '--output', 'json'], rules).stdout) as { synapseVersion: string; ready: boolean };
    assert.equal(json.synapseVersion, '1.160.0');
    assert.equal(json.ready, false);
  });

  test('uninstall deletes the members but keeps volumes and Secrets, then the inventory', () => {
    const members = [member('Deployment', 'mxstack-synapse', 'apps/v1'), member('PersistentVolumeClaim', 'mxstack-synapse-media'), member('Secret', 'mxstack-admin-credentials'), member('Service', 'mxstack-synapse')];
    const run = runWithFakeKubectl(['uninstall'], installedCluster([{ match: ['--selector=applyset.kubernetes.io/part-of='], stdout: list(members) }]));
    assert.equal(run.status, 0, run.stderr);
    const deleted = run.calls.filter((c) => subcommand(c) === 'delete').map((c) => c.argv.filter((a) => !a.startsWith('--')).slice(1).join(' '));
    assert.deepEqual(deleted, ['deployment.apps/mxstack-synapse service/mxstack-synapse', 'secret/mxstack-applyset']);
    assert.match(run.stdout, /kept: the volumes \(database, media\) and the Secrets/);
  });

  test('uninstall --purge without a terminal and without --yes refuses and deletes nothing; with --yes it purges', () => {
    const claim = { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'data-mxstack-postgresql-0', namespace: 'matrix' } };
    const rules = installedCluster([
      { match: ['--selector=applyset.kubernetes.io/part-of='], stdout: list([member('Deployment', 'mxstack-synapse', 'apps/v1')]) },
      { match: ['get persistentvolumeclaim', '--selector=app.kubernetes.io/instance=mxstack'], stdout: list([claim]) },
      { match: ['get secret --namespace=matrix --selector=app.kubernetes.io/instance=mxstack,app.kubernetes.io/managed-by=mxstack'], stdout: list([]) },
    ]);
    const refused = runWithFakeKubectl(['uninstall', '--purge'], rules);
    assert.equal(refused.status, 2);
    assert.match(refused.stderr, /1 PersistentVolumeClaims \(database and media\): data-mxstack-postgresql-0/);
    assert.match(refused.stderr, /Nothing was deleted: confirm on a terminal, or add --yes\./);
    assert.equal(refused.calls.some((c) => subcommand(c) === 'delete'), false);

    const purged = runWithFakeKubectl(['uninstall', '--purge', '--yes'], rules);
    assert.equal(purged.status, 0, purged.stderr);
    const deleted = purged.calls.filter((c) => subcommand(c) === 'delete').flatMap((c) => c.argv.filter((a) => !a.startsWith('--')).slice(1));
    assert.ok(deleted.includes('persistentvolumeclaim/data-mxstack-postgresql-0'));
    assert.ok(deleted.includes('secret/mxstack-signing-key') && deleted.includes('secret/mxstack-postgresql'));
    assert.equal(deleted.at(-1), 'secret/mxstack-applyset');
  });
});
