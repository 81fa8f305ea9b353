/**
 * The Target of a release on a cluster (src/targets/target.ts), through kubectl only (src/targets/kubernetes/
 * kubectl.ts): Synapse through a port-forward opened for one operation and closed after, Secrets read and
 * written with values on stdin only, commands with `kubectl exec`, components scaled or restarted.
 */
import { stringify } from 'yaml';
import type { ComponentName, Stack } from '../../stack/model.js';
import { streamingCommand, TargetUsageError, type CommandResult, type ExecOptions, type PostgresqlTool, type SecretKeyRef, type StoredSecretKey, type StreamingCommand, type Target } from '../target.js';
import {
  applyArgs,
  createArgs,
  execArgs,
  getArgs,
  getNamedArgs,
  runMergePatch,
  openPortForward,
  rolloutRestartArgs,
  rolloutStatusArgs,
  runKubectl,
  scaleArgs,
  spawnKubectlStreaming,
  type KubectlConnection,
} from './kubectl.js';
// The worker pools from the values alone: this module loads with every command (no Kubernetes models here).
import { kebabCase, poolMaxProcesses, poolReplicas, workerPoolNames, workerPools, type WorkerPoolName } from '../../values/worker-pools.js';
import { assembleSecretConfigData, decodeSecrets, mergePatchForKeys, releaseSecretNames, secretConfigUpToDate, secretManifest } from './secrets-store.js';

/** Where CloudNativePG instances keep PostgreSQL's socket. */
export const cloudnativePgSocketDir = '/controller/run';

/** Where coturn's init container writes the configuration coturn runs with (src/components/coturn/kubernetes.ts). */
const coturnRuntimeConfig = '/run/coturn/turnserver.conf';

/** Runs "$0" "$@" with PGPASSWORD from the container's POSTGRES_PASSWORD_FILE (set by the StatefulSet). */
export const postgresPasswordFromFile = 'PGPASSWORD="$(cat "$POSTGRES_PASSWORD_FILE")" && export PGPASSWORD && exec "$0" "$@"';

/** kubectl's own last stderr line after a command in the container failed: not the command's message. */
const kubectlExitTrailer = /\n?command terminated with exit code \d+\s*$/;

/** The command's own stderr, without kubectl's trailer, so errors carry the program's message. */
export function commandStderr(stderr: string): string {
  return stderr.replace(kubectlExitTrailer, '');
}

/** Every exit code is an answer of the command, not a kubectl failure (the caller reads exitCode). */
const anyExitCode = Array.from({ length: 256 }, (_, code) => code);

interface SecretObject {
  metadata: { name: string; creationTimestamp?: string; managedFields?: { time?: string }[] };
  data?: Record<string, string>;
}

/** The last write of a Secret: the newest managedFields time, else its creation. */
export function lastWriteOf(secret: SecretObject): Date {
  const times = (secret.metadata.managedFields ?? []).map((f) => f.time).filter((t): t is string => typeof t === 'string');
  const newest = [...times, secret.metadata.creationTimestamp ?? '1970-01-01T00:00:00Z'].sort().pop()!;
  return new Date(newest);
}

function parseSecretObjects(output: string): SecretObject[] {
  if (output.trim() === '') return [];
  const parsed = JSON.parse(output) as SecretObject & { kind?: string; items?: SecretObject[] };
  return parsed.kind?.endsWith('List') ? parsed.items ?? [] : [parsed];
}

interface PodListObject {
  items?: { metadata: { name: string; deletionTimestamp?: string }; status?: { conditions?: { type: string; status: string }[] } }[];
}

/** The Ready pods of a `kubectl get pods -o json` answer, not being deleted, sorted by name. */
export function readyPodNames(output: string): string[] {
  const list = JSON.parse(output.trim() || '{}') as PodListObject;
  return (list.items ?? [])
    .filter((pod) => !pod.metadata.deletionTimestamp && (pod.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True'))
    .map((pod) => pod.metadata.name)
    .sort();
}

export class KubernetesTarget implements Target {
  readonly kind = 'kubernetes' as const;
  readonly description: string;
  readonly files = { coturnConfig: coturnRuntimeConfig };

  constructor(
    readonly stack: Stack,
    private readonly connection: KubectlConnection,
  ) {
    this.description = `release ${stack.release} in namespace ${connection.namespace}`;
  }

  /**
   * The workload running a component: PostgreSQL is a StatefulSet, the rest Deployments. A CloudNativePG
   * Cluster has no workload of its own to exec into: its -rw Service selects exactly the primary, and
   * `kubectl exec service/<cluster>-rw` runs in that pod (no client pod, no superuser password: the
   * tools use the instance's local socket).
   */
  workload(component: ComponentName): string {
    if (component === 'postgresql' && this.stack.database.provider === 'cloudnative-pg') return `service/${this.stack.placement.hosts.postgresql}`;
    return `${component === 'postgresql' ? 'statefulset.apps' : 'deployment.apps'}/${this.stack.objectName(component)}`;
  }

  /** Runs `use` with a local port forwarded to one port of a component's Service, closed after. */
  withServicePort<T>(service: string, port: number, use: (localPort: number) => Promise<T>): Promise<T> {
    return this.withPortForward(`service/${service}`, port, use);
  }

  /** Runs `use` with a local port forwarded to one port of a pod, closed after. */
  withPodPort<T>(pod: string, port: number, use: (localPort: number) => Promise<T>): Promise<T> {
    return this.withPortForward(`pod/${pod}`, port, use);
  }

  private async withPortForward<T>(resource: string, port: number, use: (localPort: number) => Promise<T>): Promise<T> {
    const forward = await openPortForward(this.connection, resource, port);
    try {
      return await use(forward.localPort);
    } finally {
      forward.close();
    }
  }

  /** The names of the Ready pods carrying these labels, sorted (terminating pods are not Ready for this). */
  async readyPods(labels: Record<string, string>): Promise<string[]> {
    const selector = Object.entries(labels)
      .map(([key, value]) => `${key}=${value}`)
      .join(',');
    return readyPodNames((await runKubectl(getArgs(this.connection, ['pods'], { selector }))).stdout);
  }

  async withSynapse<T>(use: (baseUrl: string) => Promise<T>): Promise<T> {
    return this.withServicePort(this.stack.objectName('synapse'), this.stack.values.synapse.service.port, (port) => use(`http://127.0.0.1:${port}/`));
  }

  async withAuth<T>(use: (adminBaseUrl: string) => Promise<T>): Promise<T> {
    if (!this.stack.auth) throw new TargetUsageError(`${this.description} has no auth component (synapse.server.mfa.totp and .webauthn are off).`);
    return this.withServicePort(this.stack.objectName('auth'), this.stack.placement.ports.authAdmin, (port) => use(`http://127.0.0.1:${port}/`));
  }

  private async secretObject(name: string): Promise<SecretObject | undefined> {
    return parseSecretObjects((await runKubectl(getNamedArgs(this.connection, [`secret/${name}`]))).stdout)[0];
  }

  async readSecret(ref: SecretKeyRef): Promise<string | undefined> {
    const live = decodeSecrets((await runKubectl(getNamedArgs(this.connection, [`secret/${ref.name}`]))).stdout);
    return live.get(ref.name)?.[ref.key];
  }

  async writeSecret(ref: SecretKeyRef, value: string): Promise<void> {
    if (await this.secretObject(ref.name)) {
      await runMergePatch(this.connection, `secret/${ref.name}`, mergePatchForKeys({ [ref.key]: value }));
      return;
    }
    await runKubectl(createArgs(this.connection), { stdin: stringify(secretManifest(this.stack, ref.name, { [ref.key]: value })) });
  }

  async listSecrets(names: readonly string[]): Promise<StoredSecretKey[]> {
    if (names.length === 0) return [];
    const objects = parseSecretObjects((await runKubectl(getNamedArgs(this.connection, names.map((n) => `secret/${n}`)))).stdout);
    return objects.flatMap((secret) =>
      Object.keys(secret.data ?? {})
        .sort()
        .map((key) => ({ name: secret.metadata.name, key, updatedAt: lastWriteOf(secret) })),
    );
  }

  async exec(component: ComponentName, argv: readonly string[], options: ExecOptions = {}): Promise<CommandResult> {
    // kubectl exec runs as the container's user; options.user is the local target's concern.
    const result = await runKubectl(execArgs(this.connection, this.workload(component), argv), {
      stdin: options.stdin ?? '',
      acceptExitCodes: anyExitCode,
      timeoutMs: options.timeoutMs ?? 120_000,
    });
    return { ...result, stderr: commandStderr(result.stderr) };
  }

  spawn(component: ComponentName, argv: readonly string[]): StreamingCommand {
    return streamingCommand(spawnKubectlStreaming(execArgs(this.connection, this.workload(component), argv)));
  }

  /**
   * The official image's programs on its local socket, as POSTGRES_USER (the image's superuser). Local
   * connections need the password too (initdb ran with --auth=scram-sha-256): it is read inside the
   * container from the file the image itself reads (POSTGRES_PASSWORD_FILE), never passed on a command line.
   */
  postgresqlTool(tool: PostgresqlTool): string[] {
    // CloudNativePG: its socket directory, as `postgres` (peer authentication of the instance's own user).
    if (this.stack.database.provider === 'cloudnative-pg') return [tool, '-h', cloudnativePgSocketDir, '-U', 'postgres'];
    return ['sh', '-c', postgresPasswordFromFile, tool, '--no-password', '-U', this.stack.database.user];
  }

  async isRunning(component: ComponentName): Promise<boolean> {
    const cluster = component === 'postgresql' && this.stack.database.provider === 'cloudnative-pg';
    const resource = cluster ? `cluster.postgresql.cnpg.io/${this.stack.database.cluster!}` : this.workload(component);
    const output = (await runKubectl(getNamedArgs(this.connection, [resource]))).stdout;
    if (output.trim() === '') return false;
    const workload = JSON.parse(output) as { status?: { readyReplicas?: number; readyInstances?: number } };
    return ((cluster ? workload.status?.readyInstances : workload.status?.readyReplicas) ?? 0) > 0;
  }

  private desiredReplicas(component: ComponentName): number {
    const values = this.stack.values;
    if (component === 'element') return values.element.replicaCount;
    if (component === 'router') return values.router.replicaCount;
    if (component === 'synapse') return values.synapse.replicaCount;
    if (component === 'auth') return values.auth.replicaCount;
    return 1;
  }

  /**
   * The workloads of Synapse's worker pools (docs/workers.md): a StatefulSet for a pool named in the shared
   * configuration, else a Deployment; what they run now (an autoscaler may have scaled it) or, when that
   * cannot be read, the pool's replicas or autoscaling floor.
   */
  private synapseWorkerWorkloads(): { pool: WorkerPoolName; workload: string; component: string }[] {
    const workers = this.stack.values.synapse.workers;
    return workerPoolNames
      .filter((pool) => poolMaxProcesses(workers, pool) > 0)
      .map((pool) => {
        // As src/components/synapse/worker-kubernetes.ts names them (workerPoolComponent).
        const component = `synapse-${kebabCase(pool)}`;
        return { pool, component, workload: `${workerPools[pool].named ? 'statefulset.apps' : 'deployment.apps'}/${this.stack.objectName(component)}` };
      });
  }

  /** Replica counts of the worker workloads when `stop('synapse')` scaled them to 0, for `start('synapse')`. */
  private readonly stoppedWorkerReplicas = new Map<string, number>();

  /** Waits until no pod with the component's labels is left (terminating ones included). */
  private async waitNoPods(component: string, workload: string): Promise<void> {
    const selector = Object.entries(this.stack.selectorLabels(component))
      .map(([key, value]) => `${key}=${value}`)
      .join(',');
    const deadline = Date.now() + 300_000;
    while (Date.now() < deadline) {
      const pods = JSON.parse((await runKubectl(getArgs(this.connection, ['pods'], { selector }))).stdout || '{}') as { items?: unknown[] };
      if ((pods.items ?? []).length === 0) return;
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
    throw new Error(`${component} pods were still running 300 s after scaling ${workload} to 0.`);
  }

  /**
   * Scales to 0 and waits until no pod of the component is left (terminating ones included). Synapse is the
   * main process and every worker pool (a restore must not leave a worker serving from its caches of the
   * data it replaces, nor connected to the database being swapped): the worker pools first, then the main.
   */
  async stop(component: ComponentName): Promise<void> {
    if (component === 'synapse') {
      await Promise.all(
        this.synapseWorkerWorkloads().map(async ({ component: pool, workload }) => {
          const current = await runKubectl(getNamedArgs(this.connection, [workload], { output: 'jsonpath={.spec.replicas}' }));
          const replicas = Number(current.stdout.trim());
          if (Number.isInteger(replicas) && replicas > 0) this.stoppedWorkerReplicas.set(workload, replicas);
          await runKubectl(scaleArgs(this.connection, workload, 0));
          await this.waitNoPods(pool, workload);
        }),
      );
    }
    await runKubectl(scaleArgs(this.connection, this.workload(component), 0));
    await this.waitNoPods(component, this.workload(component));
  }

  /** Scales back and waits for the rollout; Synapse: the main process first, then its worker pools (they need its replication listener). */
  async start(component: ComponentName): Promise<void> {
    await runKubectl(scaleArgs(this.connection, this.workload(component), this.desiredReplicas(component)));
    await runKubectl(rolloutStatusArgs(this.connection, this.workload(component), 600), { timeoutMs: 660_000 });
    if (component !== 'synapse') return;
    const workers = this.synapseWorkerWorkloads();
    for (const { pool, workload } of workers) {
      const replicas = this.stoppedWorkerReplicas.get(workload) ?? poolReplicas(this.stack.values.synapse.workers, pool);
      await runKubectl(scaleArgs(this.connection, workload, replicas));
    }
    for (const { workload } of workers) {
      await runKubectl(rolloutStatusArgs(this.connection, workload, 600), { timeoutMs: 660_000 });
      this.stoppedWorkerReplicas.delete(workload);
    }
  }

  /**
   * Re-assembles the CLI's appservice registration (with 2FA) from the stored secrets, then restarts and waits
   * for each component (Synapse's start step joins the stored database and SMTP passwords in again).
   */
  async applySecrets(components: readonly ComponentName[]): Promise<void> {
    const names = releaseSecretNames(this.stack).map((name) => `secret/${name}`);
    const live = decodeSecrets((await runKubectl(getNamedArgs(this.connection, names))).stdout);
    const ref = this.stack.secrets.synapseSecretConfig;
    const assembled = assembleSecretConfigData(this.stack, live);
    if (!secretConfigUpToDate(this.stack, live, assembled)) {
      await runKubectl(applyArgs(this.connection), { stdin: stringify(secretManifest(this.stack, ref.name, assembled)) });
    }
    for (const component of components) {
      await runKubectl(rolloutRestartArgs(this.connection, this.workload(component)));
      await runKubectl(rolloutStatusArgs(this.connection, this.workload(component), 600), { timeoutMs: 660_000 });
    }
  }
}
