/**
 * The release lifecycle on a cluster: install/upgrade (guards → Secrets → apply → wait → prune), diff,
 * status and uninstall. Every cluster access goes through kubectl.ts; the decisions are the pure
 * functions of applyset.ts, guards.ts, wait.ts and secrets-store.ts. Progress goes to `report` (stderr).
 */
import { stringify } from 'yaml';
import type { Stack } from '../../stack/model.js';
import type { KubeObject } from '../../kit/objects.js';
import {
  applysetParentName,
  asMembers,
  buildParent,
  computePrune,
  deletionOrder,
  describeRef,
  groupKindToResource,
  groupKindsOf,
  kubectlResource,
  mxstackVersion,
  parentProblem,
  planDeletion,
  readParent,
  refKey,
  refOf,
  releaseApplysetId,
  toolingValue,
  valuesHash,
  applysetPartOfLabel,
  type ObjectRef,
  type ParentState,
  type PlainObject,
} from './applyset.js';
import {
  applyArgs,
  checkKubectl,
  createArgs,
  deleteArgs,
  diffArgs,
  getArgs,
  getNamedArgs,
  runMergePatch,
  runKubectl,
  type KubectlConnection,
} from './kubectl.js';
import {
  desiredPostgres,
  explainHelmTakeover,
  helmReleaseListingFormat,
  helmTakeover,
  livePostgres,
  liveServerName,
  parseHelmReleaseListing,
  postgresMajorChange,
  serverNameChange,
  streamWritersChange,
  type HelmTakeover,
} from './guards.js';
import {
  annotateSecretConfigDigest,
  assembleSecretConfigData,
  decodeSecrets,
  mergePatchForKeys,
  planSecrets,
  releaseSecretNames,
  secretConfigDigest,
  secretConfigUpToDate,
  synapseStartSecrets,
  secretManifest,
  type LiveSecrets,
  type SecretsPlan,
} from './secrets-store.js';
import { awaitedRefs, formatDuration, readinessOf, statusLine, waitUntilReady, type WaitStatus, type WaitVerdict } from './wait.js';
import { documentedSecrets } from './secrets.js';
import { synapseComponent } from '../../components/synapse/kubernetes.js';
import { renderHomeserverConfig } from '../../components/synapse/config.js';
import { causesOf, type EventObject, type LiveDiagnostics } from './wait-causes.js';

/** A refusal the user can act on: nothing was applied or deleted (exit 2). */
export class ReleaseRefusal extends Error {
  constructor(readonly lines: string[]) {
    super(lines.join('\n'));
    this.name = 'ReleaseRefusal';
  }
}

/** The release did not become healthy, or kubectl failed midway (exit 1). */
export class ReleaseFailure extends Error {
  constructor(readonly lines: string[]) {
    super(lines.join('\n'));
    this.name = 'ReleaseFailure';
  }
}

export interface ReleaseContext {
  connection: KubectlConnection;
  stack: Stack;
  objects: KubeObject[];
  report: (line: string) => void;
}

// ---------------------------------------------------------------------------------------------------------
// Reading the cluster
// ---------------------------------------------------------------------------------------------------------

function parseItems(output: string): PlainObject[] {
  if (output.trim() === '') return [];
  const parsed = JSON.parse(output) as PlainObject & { items?: PlainObject[] };
  return parsed.kind?.endsWith('List') ? parsed.items ?? [] : [parsed];
}

async function getObjects(connection: KubectlConnection, resources: readonly string[], selector?: string): Promise<PlainObject[]> {
  const result = await runKubectl(getArgs(connection, resources, { ...(selector ? { selector } : {}), ignoreNotFound: true }));
  return parseItems(result.stdout);
}

async function getNamed(connection: KubectlConnection, resources: readonly string[]): Promise<PlainObject[]> {
  if (resources.length === 0) return [];
  return parseItems((await runKubectl(getNamedArgs(connection, resources))).stdout);
}

async function namespaceExists(connection: KubectlConnection): Promise<boolean> {
  return (await getNamed(connection, [`namespace/${connection.namespace}`])).length > 0;
}

async function readParentObject(connection: KubectlConnection, release: string): Promise<PlainObject | undefined> {
  return (await getNamed(connection, [`secret/${applysetParentName(release)}`]))[0];
}

/** Live members of the ApplySet: objects of the parent's group-kinds carrying our part-of label. */
async function readMembers(connection: KubectlConnection, parent: ParentState): Promise<PlainObject[]> {
  if (parent.groupKinds.length === 0) return [];
  return getObjects(connection, parent.groupKinds.map(groupKindToResource), `${applysetPartOfLabel}=${parent.id}`);
}

async function readLiveSecrets(connection: KubectlConnection, stack: Stack): Promise<LiveSecrets> {
  const names = releaseSecretNames(stack).map((name) => `secret/${name}`);
  return decodeSecrets((await runKubectl(getNamedArgs(connection, names))).stdout);
}

const helmObjectKinds = [
  'deployment.apps',
  'statefulset.apps',
  'job.batch',
  'service',
  'configmap',
  'serviceaccount',
  'persistentvolumeclaim',
  'ingress.networking.k8s.io',
  'networkpolicy.networking.k8s.io',
  'horizontalpodautoscaler.autoscaling',
];

async function detectHelm(connection: KubectlConnection): Promise<HelmTakeover | undefined> {
  // Only metadata is read: a Helm release Secret's payload holds the old values, passwords included.
  const releases = await runKubectl(getArgs(connection, ['secret'], { fieldSelector: 'type=helm.sh/release.v1', output: helmReleaseListingFormat }));
  const objects = await runKubectl(getArgs(connection, helmObjectKinds, { selector: 'app.kubernetes.io/managed-by=Helm', output: 'name', ignoreNotFound: true }));
  const names = objects.stdout.split('\n').map((line) => line.trim()).filter((line) => line !== '');
  return helmTakeover(parseHelmReleaseListing(releases.stdout), names);
}

/** What the guards need: the release's ConfigMaps, StatefulSets and Deployments. */
async function readWorkloads(connection: KubectlConnection, release: string): Promise<PlainObject[]> {
  return getObjects(connection, ['configmap', 'statefulset.apps', 'deployment.apps'], `app.kubernetes.io/instance=${release}`);
}

// ---------------------------------------------------------------------------------------------------------
// Install / upgrade
// ---------------------------------------------------------------------------------------------------------

export interface InstallOptions {
  /** `upgrade` insists that the release exists (a typo in --release must not start a second stack). */
  mode: 'install' | 'upgrade';
  wait: boolean;
  timeoutMs: number;
  dryRun: boolean;
  takeOverHelmRelease: boolean;
  /** Asked before a risky but legitimate change (PostgreSQL major version); false refuses. */
  confirm: (warning: string) => Promise<boolean>;
}

export interface InstallResult {
  mode: 'install' | 'upgrade';
  dryRun: boolean;
  applied: number;
  pruned: string[];
  kept: string[];
  generatedSecrets: string[];
  waited: boolean;
}

interface Preflight {
  namespaceExists: boolean;
  parent?: ParentState;
  helm?: HelmTakeover;
  live: LiveSecrets;
  plan: SecretsPlan;
}

/** CustomResourceDefinitions the rendered objects need, with how to get them when they are missing. */
export function requiredDefinitions(objects: readonly KubeObject[]): { name: string; install: string }[] {
  const cloudnativePg =
    'install the CloudNativePG operator first (its release manifest cnpg-<version>.yaml applied with `kubectl apply --server-side -f`, or its Helm chart cloudnative-pg; see docs/kubernetes.md "CloudNativePG"), wait until it runs, then install again';
  const needed = new Map<string, string>();
  for (const object of objects) {
    if (object.apiVersion === 'postgresql.cnpg.io/v1') needed.set(`${object.kind.toLowerCase()}s.postgresql.cnpg.io`, cloudnativePg);
  }
  return [...needed].sort().map(([name, install]) => ({ name, install }));
}

async function checkDefinitions(context: ReleaseContext): Promise<void> {
  const required = requiredDefinitions(context.objects);
  if (required.length === 0) return;
  const present = new Set((await getNamed(context.connection, required.map((d) => `customresourcedefinition.apiextensions.k8s.io/${d.name}`))).map((o) => o.metadata.name));
  const missing = required.filter((d) => !present.has(d.name));
  if (missing.length > 0) {
    throw new ReleaseRefusal(missing.map((d) => `the cluster has no CustomResourceDefinition ${d.name} (postgresql.mode cloudnative-pg needs it): ${d.install}.`));
  }
}

async function preflight(context: ReleaseContext, options: InstallOptions): Promise<Preflight> {
  const { connection, stack, report } = context;
  await checkDefinitions(context);
  const exists = await namespaceExists(connection);
  if (!exists) {
    if (options.mode === 'upgrade') throw new ReleaseRefusal([`namespace ${connection.namespace} does not exist: there is no release to upgrade (use mxstack install).`]);
    return { namespaceExists: false, live: new Map(), plan: planSecrets(stack, new Map()) };
  }
  const parentObject = await readParentObject(connection, stack.release);
  const problem = parentProblem(parentObject, releaseApplysetId(stack.release, stack.namespace));
  if (problem) throw new ReleaseRefusal([problem]);
  const parent = readParent(parentObject);
  const helm = await detectHelm(connection);
  if (options.mode === 'upgrade' && !parent && !helm) {
    throw new ReleaseRefusal([`no release ${stack.release} in namespace ${connection.namespace}: nothing to upgrade (check --release and --namespace, or use mxstack install).`]);
  }
  if (helm && !options.takeOverHelmRelease) throw new ReleaseRefusal(explainHelmTakeover(helm, { release: stack.release, namespace: connection.namespace }));

  const workloads = await readWorkloads(connection, stack.release);
  const rename = serverNameChange(liveServerName(workloads.filter((o) => o.kind === 'ConfigMap')), stack.serverName);
  if (rename) throw new ReleaseRefusal([rename]);
  const writers = streamWritersChange(workloads.filter((o) => o.kind === 'ConfigMap'), stack.objectName('synapse'), renderHomeserverConfig(stack));
  if (writers) report(`note: ${writers}`);
  const majorChange = postgresMajorChange(livePostgres(workloads.filter((o) => o.kind === 'StatefulSet')), desiredPostgres(stack), stack);
  if (majorChange && options.dryRun) report(`warning: ${majorChange}`);
  else if (majorChange && !(await options.confirm(majorChange))) {
    throw new ReleaseRefusal([majorChange, 'Nothing was changed: confirm on a terminal, or add --yes (after the backup).']);
  }

  const live = await readLiveSecrets(connection, stack);
  const plan = planSecrets(stack, live);
  if (helm && options.takeOverHelmRelease && plan.generated.includes(`${stack.secrets.signingKey.name}/${stack.secrets.signingKey.key}`)) {
    report(
      `warning: Secret ${stack.secrets.signingKey.name} does not exist, so a NEW signing key will be generated. ` +
        'The old chart kept its key on the Synapse volume; copy it into that Secret first to keep the server\'s identity (docs/migrating-from-helm.md).',
    );
  }
  return { namespaceExists: true, ...(parent ? { parent } : {}), ...(helm ? { helm } : {}), live, plan };
}

function namespaceManifest(stack: Stack): PlainObject {
  // hostNetwork for coturn is the one opt-in that the restricted profile forbids.
  const enforce = stack.values.coturn.enabled && stack.values.coturn.hostNetwork ? 'privileged' : 'restricted';
  return {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: {
      name: stack.namespace,
      labels: { 'pod-security.kubernetes.io/enforce': enforce, 'pod-security.kubernetes.io/warn': 'restricted', 'app.kubernetes.io/managed-by': 'mxstack' },
    },
  };
}

const toYamlStream = (objects: readonly PlainObject[]) => objects.map((o) => `---\n${stringify(o, { lineWidth: 0 })}`).join('');

/**
 * Whether the digest of Synapse's start-time secrets must wait for the apply: the database password is created
 * by an operator (CloudNativePG's `<cluster>-app`) that only acts once the release's Cluster exists.
 */
export function startSecretsAwaitOperator(stack: Stack, live: LiveSecrets): boolean {
  const ref = stack.secrets.postgresPassword;
  return ref.operatorCreated === true && live.get(ref.name)?.[ref.key] === undefined;
}

/** Polls until the operator has created the database password's Secret (bounded by timeoutMs). */
async function awaitOperatorSecret(context: ReleaseContext, timeoutMs: number): Promise<LiveSecrets> {
  const { connection, stack, report } = context;
  const ref = stack.secrets.postgresPassword;
  report(`waiting up to ${formatDuration(timeoutMs)} for CloudNativePG to create Secret ${ref.name} (the database password)`);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const live = await readLiveSecrets(connection, stack);
    if (!startSecretsAwaitOperator(stack, live)) return live;
    if (Date.now() > deadline) {
      throw new ReleaseFailure([
        `Secret ${ref.name} did not appear within ${formatDuration(timeoutMs)}: is the CloudNativePG operator running? See kubectl -n ${stack.namespace} describe cluster.postgresql.cnpg.io/${stack.database.cluster ?? ''}.`,
        'Nothing was pruned. Fix the cause, then run again.',
      ]);
    }
    await new Promise((resolve) => setTimeout(resolve, 3000));
  }
}

async function writeSecrets(context: ReleaseContext, pre: Preflight, dryRun: boolean): Promise<string | undefined> {
  const { connection, stack, report } = context;
  for (const entry of pre.plan.create) {
    await runKubectl(createArgs(connection, { dryRun }), { stdin: toYamlStream([secretManifest(stack, entry.name, entry.data)]) });
    report(`${dryRun ? 'would create' : 'created'} Secret ${entry.name} (${Object.keys(entry.data).sort().join(', ')})`);
  }
  for (const entry of pre.plan.addKeys) {
    await runMergePatch(connection, `secret/${entry.name}`, mergePatchForKeys(entry.data), { dryRun });
    report(`${dryRun ? 'would add' : 'added'} to Secret ${entry.name}: ${Object.keys(entry.data).sort().join(', ')}`);
  }
  const secretConfig = assembleSecretConfigData(stack, pre.live, pre.plan);
  const ref = stack.secrets.synapseSecretConfig;
  if (!secretConfigUpToDate(stack, pre.live, secretConfig)) {
    await runKubectl(applyArgs(connection, { dryRun }), { stdin: toYamlStream([secretManifest(stack, ref.name, secretConfig)]) });
    report(`${dryRun ? 'would write' : 'wrote'} Secret ${ref.name} (${ref.key}: the mxstack-cli application service registration)`);
  }
  if (startSecretsAwaitOperator(stack, pre.live)) {
    report(`Synapse starts once CloudNativePG has created Secret ${stack.secrets.postgresPassword.name} (the database password its start step joins in)`);
    return undefined;
  }
  return secretConfigDigest(synapseStartSecrets(stack, pre.live, pre.plan));
}

/**
 * Jobs to delete before applying, so they run again: a failed one (it is retried by the upgrade), and a
 * completed one whose pod template changed (a Job's template is immutable).
 */
async function jobsToRecreate(context: ReleaseContext, members: readonly PlainObject[]): Promise<{ ref: ObjectRef; why: string }[]> {
  const jobs = members.filter((o) => o.kind === 'Job');
  const live = await getNamed(context.connection, jobs.map((job) => kubectlResource(refOf(job))));
  const failed = live.filter((job) => readinessOf(job).state === 'failed');
  const complete = live.filter((job) => readinessOf(job).state === 'ready');
  const recreate = failed.map((job) => ({ ref: refOf(job), why: 'it failed last time' }));
  if (complete.length === 0) return recreate;
  const names = new Set(complete.map((job) => job.metadata.name));
  const probe = await runKubectl(applyArgs(context.connection, { dryRun: true, forceConflicts: true }), {
    stdin: toYamlStream(jobs.filter((job) => names.has(job.metadata.name))),
    acceptExitCodes: [0, 1],
  });
  if (probe.exitCode === 0 || !/immutable/i.test(probe.stderr)) return recreate;
  return [...recreate, ...complete.map((job) => ({ ref: refOf(job), why: 'its pod template changed and a Job\'s template is immutable' }))];
}

async function deleteObjects(context: ReleaseContext, objects: readonly PlainObject[], timeoutMs: number): Promise<void> {
  if (objects.length === 0) return;
  const resources = deletionOrder(objects).map((o) => kubectlResource(refOf(o)));
  await runKubectl(deleteArgs(context.connection, resources, { timeoutSeconds: Math.max(30, Math.round(timeoutMs / 1000)) }), {
    timeoutMs: timeoutMs + 60_000,
  });
}

/** The release's pods and the namespace's Warning events: what explains a workload that is not ready. */
async function readDiagnostics(context: ReleaseContext): Promise<LiveDiagnostics> {
  const { connection, stack } = context;
  const pods = await getObjects(connection, ['pod'], `app.kubernetes.io/instance=${stack.release}`);
  const events = parseItems((await runKubectl(getArgs(connection, ['event'], { fieldSelector: 'type=Warning' }))).stdout) as unknown as EventObject[];
  return { pods, events };
}

/** The cluster's reasons for each workload not ready, by refKey (empty when it cannot be read). */
async function explainNotReady(context: ReleaseContext, members: readonly PlainObject[], statuses: readonly WaitStatus[]): Promise<Map<string, string[]>> {
  const causes = new Map<string, string[]>();
  let live: LiveDiagnostics;
  try {
    live = await readDiagnostics(context);
  } catch {
    return causes;
  }
  for (const status of statuses) {
    const workload = members.find((member) => refKey(refOf(member)) === refKey(status.ref));
    if (workload) causes.set(refKey(status.ref), causesOf(workload, live));
  }
  return causes;
}

function readReady(context: ReleaseContext) {
  return (refs: readonly ObjectRef[]) => getNamed(context.connection, refs.map(kubectlResource));
}

/** Where to look next for an object that is not ready: a Job's log, otherwise its events. */
function inspectHint(ref: ObjectRef, namespace: string): string {
  const verb = ref.kind === 'Job' ? 'logs' : 'describe';
  return `      see: kubectl -n ${namespace} ${verb} ${kubectlResource(ref)}`;
}

function waitFailureLines(verdict: WaitVerdict, timeoutMs: number, namespace: string, causes: ReadonlyMap<string, string[]>): string[] {
  const because = (status: WaitStatus) => (causes.get(refKey(status.ref)) ?? []).map((cause) => `      because ${cause}`);
  const listed = (statuses: WaitStatus[]) => statuses.flatMap((s) => [`  ${statusLine(s)}`, ...because(s), inspectHint(s.ref, namespace)]);
  if (verdict.outcome === 'failed') return ['the release did not become healthy:', ...listed(verdict.failures)];
  if (verdict.outcome === 'timeout') return [`still not ready after ${formatDuration(timeoutMs)}:`, ...listed(verdict.pending)];
  return [];
}

/** kubectl's own words, plus what to do for the failures a user can meet (conflicts, immutable fields). */
export function applyFailureLines(stderr: string, takingOver: boolean): string[] {
  const lines = [`kubectl apply failed: ${stderr.trim().split('\n').slice(0, 8).join('\n')}`];
  if (/immutable|Forbidden: updates to statefulset spec/i.test(stderr)) {
    lines.push(
      'A Deployment\'s or StatefulSet\'s selector and volume claim templates cannot change in place.' +
        (takingOver
          ? ' When taking over the old chart, delete its workloads first (their volumes are kept): see docs/migrating-from-helm.md.'
          : ' Delete that workload (its volumes are kept) and run again.'),
    );
  }
  if (/conflict/i.test(stderr) && !takingOver) lines.push('Another field manager owns some of these fields; check who with kubectl get -o yaml --show-managed-fields.');
  lines.push('Objects listed before the error may have been applied; nothing was pruned.');
  return lines;
}

export async function installRelease(context: ReleaseContext, options: InstallOptions): Promise<InstallResult> {
  const { connection, stack, report } = context;
  await checkKubectl();
  const pre = await preflight(context, options);
  if (pre.plan.problems.length > 0) {
    const createNamespace = `namespace ${connection.namespace} does not exist yet: create it first (kubectl create namespace ${connection.namespace}), then these Secrets:`;
    throw new ReleaseRefusal(pre.namespaceExists ? pre.plan.problems : [createNamespace, ...pre.plan.problems]);
  }
  const mode = pre.parent ? 'upgrade' : options.mode;
  const dryRun = options.dryRun;
  const forceConflicts = Boolean(pre.helm);
  const id = releaseApplysetId(stack.release, stack.namespace);
  const tooling = toolingValue(mxstackVersion());

  if (!pre.namespaceExists) {
    const namespace = namespaceManifest(stack);
    await runKubectl(createArgs(connection, { dryRun }), { stdin: toYamlStream([namespace]) });
    report(`${dryRun ? 'would create' : 'created'} namespace ${connection.namespace} (Pod Security: ${namespace.metadata.labels?.['pod-security.kubernetes.io/enforce']})`);
    if (dryRun) {
      report(`namespace ${connection.namespace} does not exist: a server-side dry run cannot check objects inside it.`);
      return { mode, dryRun, applied: 0, pruned: [], kept: [], generatedSecrets: pre.plan.generated, waited: false };
    }
  }

  const digest = await writeSecrets(context, pre, dryRun);
  let members = digest === undefined ? asMembers(context.objects, id) : annotateSecretConfigDigest(asMembers(context.objects, id), stack.objectName(synapseComponent), digest);
  const currentKinds = groupKindsOf(members);

  // The parent first lists the union of old and new kinds: an interrupted run leaves nothing untracked.
  await runKubectl(applyArgs(connection, { dryRun }), {
    stdin: toYamlStream([buildParent(stack, { tooling, groupKinds: [...(pre.parent?.groupKinds ?? []), ...currentKinds], ...(pre.parent?.valuesHash ? { valuesHash: pre.parent.valuesHash } : {}) })]),
  });

  if (!dryRun && pre.parent) {
    const recreate = await jobsToRecreate(context, members);
    for (const job of recreate) report(`running ${describeRef(job.ref)} again: ${job.why}`);
    if (recreate.length > 0) await runKubectl(deleteArgs(connection, recreate.map((job) => kubectlResource(job.ref)), { timeoutSeconds: 60 }));
  }

  report(`${dryRun ? 'checking' : 'applying'} ${members.length} objects (server-side apply${dryRun ? ', dry run' : ''}${forceConflicts ? ', taking over fields owned by Helm' : ''})`);
  const applied = await runKubectl(applyArgs(connection, { dryRun, forceConflicts }), { stdin: toYamlStream(members), timeoutMs: 10 * 60_000, acceptExitCodes: [0, 1] });
  if (applied.exitCode !== 0) throw new ReleaseFailure(applyFailureLines(applied.stderr, Boolean(pre.helm)));
  const appliedCount = applied.stdout.split('\n').filter((line) => line.trim() !== '').length;

  if (digest === undefined && !dryRun) {
    // Synapse's pods wait for the operator's Secret (a missing Secret volume holds them): once it exists,
    // apply the workloads again with the digest of the start-time secrets so that a later change rolls them.
    const live = await awaitOperatorSecret(context, options.timeoutMs);
    members = annotateSecretConfigDigest(asMembers(context.objects, id), stack.objectName(synapseComponent), secretConfigDigest(synapseStartSecrets(stack, live)));
    const again = await runKubectl(applyArgs(connection, { dryRun: false, forceConflicts }), { stdin: toYamlStream(members), timeoutMs: 10 * 60_000, acceptExitCodes: [0, 1] });
    if (again.exitCode !== 0) throw new ReleaseFailure(applyFailureLines(again.stderr, Boolean(pre.helm)));
  }

  let waited = false;
  if (options.wait && !dryRun) {
    const refs = awaitedRefs(members);
    report(`waiting up to ${formatDuration(options.timeoutMs)} for ${refs.length} workloads to be ready (--no-wait skips this)`);
    const verdict = await waitUntilReady({
      refs,
      read: readReady(context),
      timeoutMs: options.timeoutMs,
      report: (line) => report(`  ${line}`),
      explain: async (pending) => [...(await explainNotReady(context, members, pending)).values()].flat(),
    });
    if (verdict.outcome !== 'ready') {
      const notReady = verdict.outcome === 'failed' ? verdict.failures : verdict.outcome === 'timeout' ? verdict.pending : [];
      const causes = await explainNotReady(context, members, notReady);
      throw new ReleaseFailure([...waitFailureLines(verdict, options.timeoutMs, stack.namespace, causes), 'Nothing was pruned. Fix the cause, then run again.']);
    }
    waited = true;
  }

  const liveMembers = pre.parent ? await readMembers(connection, { ...pre.parent, groupKinds: [...new Set([...pre.parent.groupKinds, ...currentKinds])] }) : [];
  const deletion = planDeletion(computePrune(liveMembers, members, id), { purge: false });
  if (!dryRun) await deleteObjects(context, deletion.delete, options.timeoutMs);
  for (const object of deletion.delete) report(`${dryRun ? 'would prune' : 'pruned'} ${describeRef(refOf(object))}`);
  for (const { object, reason } of deletion.keep) {
    report(`kept ${describeRef(refOf(object))}, no longer rendered, because ${reason}; delete it when no longer needed: kubectl -n ${stack.namespace} delete ${kubectlResource(refOf(object))}`);
  }

  const keptKinds = groupKindsOf(deletion.keep.map((k) => k.object));
  await runKubectl(applyArgs(connection, { dryRun }), {
    stdin: toYamlStream([buildParent(stack, { tooling, groupKinds: [...currentKinds, ...keptKinds], valuesHash: valuesHash(stack.values) })]),
  });

  if (pre.helm && !dryRun && pre.helm.secrets.length > 0) {
    await runKubectl(deleteArgs(connection, pre.helm.secrets.map((s) => `secret/${s.name}`)));
    report(`removed ${pre.helm.secrets.length} Helm release Secrets: Helm no longer tracks ${pre.helm.releases.join(', ') || 'the release'}`);
  }

  return {
    mode,
    dryRun,
    applied: appliedCount,
    pruned: deletion.delete.map((o) => describeRef(refOf(o))),
    kept: deletion.keep.map((k) => describeRef(refOf(k.object))),
    generatedSecrets: pre.plan.generated,
    waited,
  };
}

// ---------------------------------------------------------------------------------------------------------
// Diff
// ---------------------------------------------------------------------------------------------------------

export interface DiffResult {
  /** kubectl's unified diff of the objects (empty when they match). */
  diff: string;
  namespaceMissing: boolean;
  createdSecrets: string[];
  secretConfigChanges: boolean;
  prune: string[];
  helm?: HelmTakeover;
}

export async function diffRelease(context: ReleaseContext): Promise<DiffResult> {
  const { connection, stack } = context;
  await checkKubectl();
  const id = releaseApplysetId(stack.release, stack.namespace);
  if (!(await namespaceExists(connection))) {
    const plan = planSecrets(stack, new Map());
    return { diff: '', namespaceMissing: true, createdSecrets: plan.generated, secretConfigChanges: true, prune: [] };
  }
  const parentObject = await readParentObject(connection, stack.release);
  const problem = parentProblem(parentObject, id);
  if (problem) throw new ReleaseRefusal([problem]);
  const parent = readParent(parentObject);
  const helm = await detectHelm(connection);
  const live = await readLiveSecrets(connection, stack);
  const plan = planSecrets(stack, live);
  if (plan.problems.length > 0) throw new ReleaseRefusal(plan.problems);
  const secretConfig = assembleSecretConfigData(stack, live, plan);
  const members = startSecretsAwaitOperator(stack, live)
    ? asMembers(context.objects, id)
    : annotateSecretConfigDigest(asMembers(context.objects, id), stack.objectName(synapseComponent), secretConfigDigest(synapseStartSecrets(stack, live, plan)));
  const result = await runKubectl(diffArgs(connection, { forceConflicts: Boolean(helm) }), { stdin: toYamlStream(members), acceptExitCodes: [0, 1] });
  const liveMembers = parent ? await readMembers(connection, parent) : [];
  const prune = planDeletion(computePrune(liveMembers, members, id), { purge: false });
  return {
    diff: result.stdout,
    namespaceMissing: false,
    createdSecrets: plan.generated,
    secretConfigChanges: !secretConfigUpToDate(stack, live, secretConfig),
    prune: prune.delete.map((o) => describeRef(refOf(o))),
    ...(helm ? { helm } : {}),
  };
}

// ---------------------------------------------------------------------------------------------------------
// Status
// ---------------------------------------------------------------------------------------------------------

export interface ObjectStatus {
  kind: string;
  name: string;
  state: 'ready' | 'progressing' | 'failed';
  detail: string;
}

export interface ReleaseStatus {
  release: string;
  namespace: string;
  tooling: string;
  valuesHash?: string;
  synapseImage?: string;
  synapseVersion?: string;
  objects: ObjectStatus[];
  ready: boolean;
}

/** The Synapse version a Deployment runs, from its image tag (`ghcr.io/element-hq/synapse:v1.160.0`). */
export function synapseVersionOf(image: string | undefined): string | undefined {
  const tag = image?.split('@')[0]?.split('/').pop()?.split(':')[1];
  return tag ? tag.replace(/^v/, '') : undefined;
}

export async function releaseStatus(context: ReleaseContext): Promise<ReleaseStatus> {
  const { connection, stack } = context;
  await checkKubectl();
  const parentObject = (await namespaceExists(connection)) ? await readParentObject(connection, stack.release) : undefined;
  const parent = readParent(parentObject);
  if (!parent) throw new ReleaseFailure([`no release ${stack.release} in namespace ${connection.namespace} (no Secret ${applysetParentName(stack.release)}).`]);
  const members = await readMembers(connection, parent);
  const objects = [...members]
    .sort((a, b) => a.kind.localeCompare(b.kind) || a.metadata.name.localeCompare(b.metadata.name))
    .map((object) => ({ kind: object.kind, name: object.metadata.name, ...readinessOf(object) }));
  const synapse = members.find((o) => o.kind === 'Deployment' && o.metadata.name === stack.objectName('synapse'));
  const containers = ((synapse?.spec as { template?: { spec?: { containers?: { name?: string; image?: string }[] } } } | undefined)?.template?.spec?.containers ?? []);
  const synapseImage = (containers.find((c) => c.name === 'synapse') ?? containers[0])?.image;
  const synapseVersion = synapseVersionOf(synapseImage);
  return {
    release: stack.release,
    namespace: connection.namespace,
    tooling: parent.tooling,
    ...(parent.valuesHash ? { valuesHash: parent.valuesHash } : {}),
    ...(synapseImage ? { synapseImage } : {}),
    ...(synapseVersion ? { synapseVersion } : {}),
    objects,
    ready: objects.every((o) => o.state === 'ready'),
  };
}

// ---------------------------------------------------------------------------------------------------------
// Uninstall
// ---------------------------------------------------------------------------------------------------------

export interface UninstallOptions {
  purge: boolean;
  timeoutMs: number;
  /** Asked before --purge deletes data; false refuses. */
  confirmPurge: (summary: string[]) => Promise<boolean>;
}

export interface UninstallResult {
  deleted: string[];
  kept: string[];
  purgedClaims: string[];
  purgedSecrets: string[];
}

/** Secrets of the release that --purge deletes: made by mxstack, never the ones the user brought. */
export function purgeableSecretNames(stack: Stack, labelled: readonly PlainObject[]): string[] {
  // The operator's Secrets belong to its resource (owner reference): they go with it.
  const own = documentedSecrets(stack).filter((entry) => entry.createdBy !== 'user' && entry.createdBy !== 'operator').map((entry) => entry.name);
  return [...new Set([...own, stack.secrets.synapseSecretConfig.name, ...labelled.map((o) => o.metadata.name)])]
    .filter((name) => name !== applysetParentName(stack.release))
    .sort();
}

export async function uninstallRelease(context: ReleaseContext, options: UninstallOptions): Promise<UninstallResult> {
  const { connection, stack, report } = context;
  await checkKubectl();
  const parentObject = (await namespaceExists(connection)) ? await readParentObject(connection, stack.release) : undefined;
  const problem = parentProblem(parentObject, releaseApplysetId(stack.release, stack.namespace));
  if (problem) throw new ReleaseRefusal([problem]);
  const parent = readParent(parentObject);
  if (!parent) throw new ReleaseFailure([`no release ${stack.release} in namespace ${connection.namespace}: nothing to uninstall.`]);

  const members = await readMembers(connection, parent);
  const plan = planDeletion(members, { purge: options.purge });
  let claims: PlainObject[] = [];
  let secrets: string[] = [];
  if (options.purge) {
    const releaseSelector = `app.kubernetes.io/instance=${stack.release}`;
    const memberClaimNames = new Set(members.filter((o) => o.kind === 'PersistentVolumeClaim').map((o) => o.metadata.name));
    const labelledClaims = await getObjects(connection, ['persistentvolumeclaim'], releaseSelector);
    claims = [...members.filter((o) => o.kind === 'PersistentVolumeClaim'), ...labelledClaims.filter((c) => !memberClaimNames.has(c.metadata.name))];
    const labelledSecrets = await getObjects(connection, ['secret'], `${releaseSelector},app.kubernetes.io/managed-by=mxstack`);
    const existing = new Set((await readLiveSecrets(connection, stack)).keys());
    for (const s of labelledSecrets) existing.add(s.metadata.name);
    secrets = purgeableSecretNames(stack, labelledSecrets).filter((name) => existing.has(name));
    const summary = [
      `--purge deletes the release's data as well, and it cannot be recovered:`,
      `  ${claims.length} PersistentVolumeClaims (database and media): ${claims.map((c) => c.metadata.name).join(', ') || 'none'}`,
      `  ${secrets.length} Secrets (signing key, passwords): ${secrets.join(', ') || 'none'}`,
    ];
    if (!(await options.confirmPurge(summary))) throw new ReleaseRefusal([...summary, 'Nothing was deleted: confirm on a terminal, or add --yes.']);
  }

  const memberClaims = new Set(plan.delete.filter((o) => o.kind === 'PersistentVolumeClaim').map((o) => o.metadata.name));
  const extraClaims = claims.filter((c) => !memberClaims.has(c.metadata.name));
  const memberSecrets = new Set(plan.delete.filter((o) => o.kind === 'Secret').map((o) => o.metadata.name));
  const extraSecrets = secrets.filter((name) => !memberSecrets.has(name));
  report(`deleting ${plan.delete.length + extraClaims.length + extraSecrets.length} objects of release ${stack.release}`);
  await deleteObjects(context, plan.delete, options.timeoutMs);
  if (extraClaims.length > 0) await deleteObjects(context, extraClaims, options.timeoutMs);
  if (extraSecrets.length > 0) await runKubectl(deleteArgs(connection, extraSecrets.map((name) => `secret/${name}`)));
  await runKubectl(deleteArgs(connection, [`secret/${applysetParentName(stack.release)}`]));
  return {
    deleted: [...plan.delete, ...extraClaims].map((o) => describeRef(refOf(o))).concat(extraSecrets.map((name) => `Secret/${name}`)),
    kept: plan.keep.map((k) => describeRef(refOf(k.object))),
    purgedClaims: claims.map((c) => c.metadata.name),
    purgedSecrets: secrets,
  };
}
