/** `mxstack install | upgrade | diff | status | uninstall`: the release lifecycle on a cluster, via kubectl. */
import { createInterface } from 'node:readline/promises';
import type { Command } from 'commander';
import { ExitStatus, UsageError } from './main.js';
import { ValuesError } from '../values/errors.js';
import { addReleaseOptions, addValuesOptions, valuesFromOptions, type ValuesOptions } from './options.js';
import type { KubectlConnection } from '../targets/kubernetes/kubectl.js';
import type { InstallResult, ReleaseContext, ReleaseStatus } from '../targets/kubernetes/lifecycle.js';
import type { Stack } from '../stack/model.js';

interface ClusterOptions extends ValuesOptions {
  release: string;
  namespace: string;
  kubeconfig?: string;
  context?: string;
}

interface InstallCliOptions extends ClusterOptions {
  wait: boolean;
  timeout: string;
  dryRun?: boolean;
  takeOverHelmRelease?: boolean;
  yes?: boolean;
}

interface UninstallCliOptions extends ClusterOptions {
  purge?: boolean;
  yes?: boolean;
  timeout: string;
}

const progress = (line: string) => process.stderr.write(`${line}\n`);

function addClusterOptions(command: Command): Command {
  return addReleaseOptions(addValuesOptions(command))
    .option('--kubeconfig <file>', 'kubeconfig file (default: kubectl\'s own: $KUBECONFIG or ~/.kube/config)')
    .option('--context <name>', 'kubeconfig context (default: the current context)');
}

function connectionOf(options: ClusterOptions): KubectlConnection {
  return {
    namespace: options.namespace,
    ...(options.kubeconfig ? { kubeconfig: options.kubeconfig } : {}),
    ...(options.context ? { context: options.context } : {}),
  };
}

/** Values are loaded and validated (exit 2 on a problem) before any kubectl call. */
async function releaseContext(options: ClusterOptions): Promise<ReleaseContext> {
  const { compileKubernetesStack, renderKubernetesObjects } = await import('../targets/kubernetes/render.js');
  const values = await valuesFromOptions(options);
  const stack = compileKubernetesStack(values, { release: options.release, namespace: options.namespace });
  return { connection: connectionOf(options), stack, objects: renderKubernetesObjects(stack), report: progress };
}

async function timeoutOf(text: string): Promise<number> {
  const { parseDuration } = await import('../targets/kubernetes/wait.js');
  const ms = parseDuration(text);
  if (ms === undefined || ms <= 0) throw new UsageError(`--timeout ${text}: expected a duration like 10m, 90s or 1h30m.`);
  return ms;
}

/** How the user's own kubectl commands must be written to reach the same cluster and namespace. */
function kubectlPrefix(options: ClusterOptions): string {
  return ['kubectl', ...(options.kubeconfig ? [`--kubeconfig ${options.kubeconfig}`] : []), ...(options.context ? [`--context ${options.context}`] : []), `-n ${options.namespace}`].join(' ');
}

function mxstackFlags(options: ClusterOptions): string {
  return [
    ...(options.kubeconfig ? [`--kubeconfig ${options.kubeconfig}`] : []),
    ...(options.context ? [`--context ${options.context}`] : []),
    `-n ${options.namespace}`,
    `--release ${options.release}`,
  ].join(' ');
}

async function withErrors<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    const [{ ReleaseFailure, ReleaseRefusal }, { KubectlNotFoundError, KubectlTooOldError }] = await Promise.all([
      import('../targets/kubernetes/lifecycle.js'),
      import('../targets/kubernetes/kubectl.js'),
    ]);
    if (error instanceof ReleaseRefusal) throw new UsageError(error.lines.join('\n'));
    if (error instanceof ReleaseFailure) throw new Error(error.lines.join('\n'));
    if (error instanceof KubectlNotFoundError || error instanceof KubectlTooOldError) throw new Error(error.message);
    throw error;
  }
}

const isInteractive = () => Boolean(process.stdin.isTTY && process.stderr.isTTY);

/** Asks on a terminal; without one, only --yes answers. */
async function askYesNo(question: string, yes: boolean | undefined): Promise<boolean> {
  if (yes) return true;
  if (!isInteractive()) return false;
  const prompt = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^(y|yes)$/i.test((await prompt.question(`${question} [y/N] `)).trim());
  } finally {
    prompt.close();
  }
}

function nextSteps(stack: Stack, result: InstallResult, options: ClusterOptions): string[] {
  const verb = result.dryRun ? 'Dry run of' : result.mode === 'install' ? 'Installed' : 'Upgraded';
  const lines = [
    `${verb} release ${stack.release} in namespace ${stack.namespace}: ${result.applied} objects ${result.dryRun ? 'accepted by the API server' : 'applied'}` +
      `${result.pruned.length > 0 ? `, ${result.pruned.length} ${result.dryRun ? 'to prune' : 'pruned'}` : ''}` +
      `${result.generatedSecrets.length > 0 ? `, ${result.generatedSecrets.length} secrets ${result.dryRun ? 'to generate' : 'generated'}` : ''}.`,
  ];
  if (result.dryRun) return lines;
  if (!result.waited) lines.push(`Not waited for (--no-wait): follow the rollout with mxstack status --kubernetes ${mxstackFlags(options)}.`);
  lines.push(`  Synapse: ${stack.publicBaseUrl}  (server name ${stack.serverName})`);
  if (stack.elementUrl) lines.push(`  Element: ${stack.elementUrl}`);
  const admin = stack.values.synapse.server.adminUser;
  if (admin.enabled) {
    const secret = stack.secrets.adminPassword;
    lines.push(
      `  Admin:   @${admin.username}:${stack.serverName}; password in Secret ${secret.name}, key ${secret.key}:`,
      `           ${kubectlPrefix(options)} get secret ${secret.name} -o jsonpath='{.data.${secret.key}}' | base64 -d`,
    );
  }
  lines.push(`  Status:  mxstack status --kubernetes ${mxstackFlags(options)}`);
  return lines;
}

/** `name/key` entries grouped by Secret name. */
function keysBySecret(entries: readonly string[]): [string, string[]][] {
  const grouped = new Map<string, string[]>();
  for (const entry of entries) {
    const slash = entry.indexOf('/');
    const name = entry.slice(0, slash);
    grouped.set(name, [...(grouped.get(name) ?? []), entry.slice(slash + 1)]);
  }
  return [...grouped.entries()];
}

function printStatus(status: ReleaseStatus): void {
  const out: string[] = [
    `release ${status.release} in namespace ${status.namespace} (${status.tooling})`,
    `  synapse:      ${status.synapseVersion ?? 'not deployed'}${status.synapseImage ? ` (${status.synapseImage})` : ''}`,
    `  values hash:  ${status.valuesHash ?? 'unknown'}`,
    `  health:       ${status.ready ? 'all workloads ready' : `${status.objects.filter((o) => o.state !== 'ready').length} not ready`}`,
    '',
  ];
  const width = Math.max(...status.objects.map((o) => `${o.kind}/${o.name}`.length), 6);
  out.push(`${'OBJECT'.padEnd(width)}  STATE        DETAIL`);
  for (const o of status.objects) out.push(`${`${o.kind}/${o.name}`.padEnd(width)}  ${o.state.padEnd(11)}  ${o.detail}`);
  process.stdout.write(`${out.join('\n')}\n`);
}

/**
 * `status` is shared with the local target (src/cli/local.ts): `--kubernetes` and the cluster options
 * select the release on a cluster.
 */
export function addKubernetesStatusOptions(command: Command): Command {
  return addClusterOptions(command.option('--kubernetes', 'the release on a cluster (via kubectl) instead of the local stack'));
}

/** Takes the parsed options of a command extended by addKubernetesStatusOptions. */
export async function printKubernetesStatus(options: { output: string }): Promise<void> {
  const context = await releaseContext(options as ClusterOptions & { output: string });
  const { releaseStatus } = await import('../targets/kubernetes/lifecycle.js');
  const status = await withErrors(() => releaseStatus(context));
  if (options.output === 'json') process.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
  else printStatus(status);
}

/** `mxstack diff` exits like `kubectl diff`, so that scripts and CI gates can rely on it. */
export const diffExitStatus = { none: 0, differences: 1, error: 2 } as const;

/** Any failure of diff exits 2: exit 1 means "there are differences". */
async function diffErrorsExitTwo<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await withErrors(run);
  } catch (error) {
    if (error instanceof ExitStatus || error instanceof UsageError || error instanceof ValuesError || !(error instanceof Error)) throw error;
    throw new ExitStatus(diffExitStatus.error, error.message);
  }
}

/** Prints what an upgrade would change; true when anything would. */
async function printDiff(options: ClusterOptions): Promise<boolean> {
  const context = await releaseContext(options);
  const { diffRelease } = await import('../targets/kubernetes/lifecycle.js');
  const result = await diffRelease(context);
  if (result.namespaceMissing) {
    process.stdout.write(`namespace ${options.namespace} does not exist: install would create it and all ${context.objects.length} objects.\n`);
    return true;
  }
  if (result.helm) {
    progress(`note: a Helm release (${result.helm.releases.join(', ') || 'unnamed'}) is in the namespace; this diff shows the takeover (fields owned by Helm taken with --force-conflicts).`);
  }
  process.stdout.write(result.diff);
  const notes = [
    ...keysBySecret(result.createdSecrets).map(([name, keys]) => `Secret ${name}: ${keys.join(', ')} would be generated`),
    ...(result.secretConfigChanges ? [`Secret ${context.stack.secrets.synapseSecretConfig.name} (${context.stack.secrets.synapseSecretConfig.key}) would be rewritten`] : []),
    ...result.prune.map((name) => `${name} would be pruned (no longer rendered)`),
  ];
  for (const note of notes) process.stdout.write(`# ${note}\n`);
  const different = result.diff.trim() !== '' || notes.length > 0;
  if (!different) process.stdout.write(`no changes: release ${options.release} matches the values.\n`);
  return different;
}

export function registerKubernetesCommands(program: Command): void {
  for (const mode of ['install', 'upgrade'] as const) {
    addClusterOptions(
      program
        .command(mode)
        .description(
          mode === 'install'
            ? 'install the release on a cluster (or upgrade it when it exists): Secrets, apply, wait, prune'
            : 'upgrade an installed release: apply the current values, wait until healthy, prune what is no longer rendered',
        ),
    )
      .option('--no-wait', 'apply and prune, then return without waiting for the workloads')
      .option('--timeout <duration>', 'how long to wait for the workloads (e.g. 10m, 300s)', '10m')
      .option('--dry-run', 'server-side dry run: the API server validates and admits everything, nothing is stored')
      .option('--take-over-helm-release', 'take over a Helm release of the old chart in the namespace (see docs/migrating-from-helm.md)')
      .option('--yes', 'answer yes to questions (a PostgreSQL major version change)')
      .action(async (options: InstallCliOptions) => {
        const context = await releaseContext(options);
        const timeoutMs = await timeoutOf(options.timeout);
        const { installRelease } = await import('../targets/kubernetes/lifecycle.js');
        const result = await withErrors(() =>
          installRelease(context, {
            mode,
            wait: options.wait,
            timeoutMs,
            dryRun: Boolean(options.dryRun),
            takeOverHelmRelease: Boolean(options.takeOverHelmRelease),
            confirm: async (warning) => {
              if (!options.yes && !isInteractive()) return false;
              progress(`warning: ${warning}`);
              return askYesNo('Continue with the new PostgreSQL major version?', options.yes);
            },
          }),
        );
        const { describePublicRoutes } = await import('../targets/kubernetes/public-routes.js');
        for (const line of describePublicRoutes(context.stack)) progress(line);
        process.stdout.write(`${nextSteps(context.stack, result, options).join('\n')}\n`);
      });
  }

  addClusterOptions(
    program
      .command('diff')
      .description('show what an upgrade would change: kubectl server-side diff, Secrets to create, objects to prune; exit 0 no changes, 1 changes, 2 an error'),
  ).action(async (options: ClusterOptions) => {
    const different = await diffErrorsExitTwo(() => printDiff(options));
    if (different) throw new ExitStatus(diffExitStatus.differences);
  });

  addClusterOptions(program.command('uninstall').description('remove the release\'s objects; volumes and Secrets are kept unless --purge'))
    .option('--purge', 'also delete the volumes (database, media) and the Secrets (signing key, passwords)')
    .option('--yes', 'do not ask before --purge deletes data')
    .option('--timeout <duration>', 'how long to wait for deletions', '5m')
    .action(async (options: UninstallCliOptions) => {
      const context = await releaseContext(options);
      const timeoutMs = await timeoutOf(options.timeout);
      const { uninstallRelease } = await import('../targets/kubernetes/lifecycle.js');
      const result = await withErrors(() =>
        uninstallRelease(context, {
          purge: Boolean(options.purge),
          timeoutMs,
          confirmPurge: async (summary) => {
            if (options.yes) return true;
            if (!isInteractive()) return false;
            for (const line of summary) progress(line);
            return askYesNo(`Delete release ${options.release} and its data?`, false);
          },
        }),
      );
      const lines = [`Uninstalled release ${options.release} from namespace ${options.namespace}: ${result.deleted.length} objects deleted.`];
      if (options.purge) lines.push(`  data deleted too: ${result.purgedClaims.length} volume claims, ${result.purgedSecrets.length} Secrets.`);
      else {
        lines.push('  kept: the volumes (database, media) and the Secrets (signing key, passwords), so installing again finds the data;');
        lines.push('  mxstack uninstall --purge deletes them.');
      }
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}
