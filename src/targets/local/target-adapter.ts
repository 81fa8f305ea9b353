/**
 * The Target of a local stack (src/targets/target.ts): Synapse's own listener on 127.0.0.1, secrets as files
 * under <state>/secrets/<name>/<key>, commands run inside a component's runtime as its user, entered
 * through the supervisor's private mount namespace (where the state directory is mounted into the runtime).
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { ComponentName, Stack } from '../../stack/model.js';
import { stackInput, type StackInput } from '../../stack/entry.js';
import {
  TargetUsageError,
  streamingCommand,
  type CommandResult,
  type ExecOptions,
  type PostgresqlTool,
  type SecretKeyRef,
  type StoredSecretKey,
  type StreamingCommand,
  type Target,
} from '../target.js';
import { chrootArguments, runtimeEnvironment } from './health.js';
import { runtimeUsers, writeAdminCredentials, writeStackFiles } from './files.js';
import { compileLocalStack, valueAt, type LocalPorts } from './placement.js';
import type { ComponentPlan, SupervisorPlan } from './plan.js';
import { processIsAlive, runtimeUser } from './runtime.js';
import type { RuntimeUser } from '../../kit/local-process.js';
import { ensureLocalSecrets } from './secrets.js';
import { lockHolder, readJsonFile, stateLayout, type StackIdentity, type StateLayout, type SupervisorStatus } from './state.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The Debian user each component runs as inside the runtime. */
const runtimeUserNames: Partial<Record<ComponentName, string>> = {
  postgresql: 'postgres',
  synapse: 'matrix-synapse',
  coturn: 'turnserver',
  router: 'haproxy',
};

export interface LocalTargetOptions {
  stateDir: string;
  /**
   * The values the stack was started with (the values stage's result). When absent, the values the last
   * `up` recorded, else the defaults; either way with the server name recorded in the state directory.
   */
  input?: StackInput;
}

/** Ports of a state directory that never ran: only secrets are handled then, and they do not depend on ports. */
const noPorts: LocalPorts = {
  synapseHttp: 0, synapseMetrics: 0, synapseReplication: 0, redis: 0, synapseWorkers: 0, postgresql: 0, element: 0, router: 0, routerMetrics: 0, routerFederation: 0, turn: 0, turns: 0, turnMetrics: 0, relayMin: 0, relayMax: 0, auth: 0, authAdmin: 0,
};

/**
 * The stack as `up` compiled it: the values given, else the values the last `up` recorded, else the
 * defaults with the recorded server name; the same ports. A state directory that never ran (no plan yet)
 * gets the values alone: enough for `secrets init`.
 */
export function recordedStack(layout: StateLayout, plan: SupervisorPlan | undefined, input: StackInput | undefined): Stack {
  const raw = input?.raw ?? readJsonFile<Record<string, unknown>>(layout.valuesFile) ?? {};
  const recordedName = plan?.serverName ?? readJsonFile<StackIdentity>(layout.stateFile)?.serverName;
  // The recorded name fills in only where the values leave it out; values given whole are not staged again.
  const addName = recordedName !== undefined && valueAt(raw, ['synapse', 'server', 'name']) === undefined;
  const values = input && !addName ? input.values : stackInput({ raw: addName ? deepSet(raw, ['synapse', 'server', 'name'], recordedName) : raw }).values;
  if (recordedName && values.synapse.server.name !== recordedName) {
    throw new TargetUsageError(`the values name server ${values.synapse.server.name}, but ${layout.root} runs ${recordedName}; pass the values the stack was started with.`);
  }
  const ports = readJsonFile<LocalPorts>(layout.portsFile) ?? noPorts;
  return compileLocalStack(values, layout, ports, plan ? plan.element?.webRoot : values.element.webRoot);
}

/** Sets a value only when the path is absent (the user's values win). */
function deepSet(tree: Record<string, unknown>, path: string[], value: unknown): Record<string, unknown> {
  const copy = structuredClone(tree);
  let node: Record<string, unknown> = copy;
  for (const key of path.slice(0, -1)) {
    if (typeof node[key] !== 'object' || node[key] === null) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  const last = path[path.length - 1]!;
  if (node[last] === undefined) node[last] = value;
  return copy;
}

function runProcess(command: string, args: string[], options: { stdin?: string; env?: NodeJS.ProcessEnv; timeoutMs: number }): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], ...(options.env ? { env: options.env } : {}) });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        exitCode: signal ? 124 : code ?? 1,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.stdin ?? '');
  });
}

export class LocalTarget implements Target {
  readonly kind = 'local' as const;
  readonly description: string;
  readonly stack: Stack;
  readonly files: { coturnConfig: string };
  private readonly layout: StateLayout;
  private readonly recordedPlan: SupervisorPlan | undefined;

  constructor(options: LocalTargetOptions) {
    this.layout = stateLayout(options.stateDir);
    this.recordedPlan = readJsonFile<SupervisorPlan>(join(this.layout.root, 'plan.json'));
    this.stack = recordedStack(this.layout, this.recordedPlan, options.input);
    this.description = `the local stack in ${this.layout.root}`;
    this.files = { coturnConfig: this.layout.coturnRuntimeConfFile };
  }

  /** The plan `up` wrote: every operation on running components needs it. */
  private get plan(): SupervisorPlan {
    if (!this.recordedPlan) throw new TargetUsageError(`no local stack in ${this.layout.root}: start one with \`mxstack up --state-dir ${this.layout.root}\`.`);
    return this.recordedPlan;
  }

  private supervisorPid(): number {
    const pid = lockHolder(this.layout);
    // Like an unreachable server (exit 1), not a usage error: the same command works once the stack runs.
    if (pid === undefined) throw new Error(`cannot reach Synapse: ${this.description} is not running; start it with \`mxstack up --state-dir ${this.layout.root}\`.`);
    return pid;
  }

  private status(): SupervisorStatus | undefined {
    return readJsonFile<SupervisorStatus>(this.layout.statusFile);
  }

  private componentPlan(component: ComponentName): ComponentPlan {
    const plan = this.plan.components.find((c) => c.name === component);
    if (!plan) throw new TargetUsageError(`${component} does not run in ${this.description}.`);
    return plan;
  }

  /** A component whose programs are in the runtime (commands run there); the auth service runs on the host. */
  private runtimeComponentPlan(component: ComponentName): ComponentPlan {
    const plan = this.componentPlan(component);
    if (plan.runsIn === 'host') throw new TargetUsageError(`${component} runs on this machine, not inside the runtime, in ${this.description}: no command runs in its place.`);
    return plan;
  }

  async withSynapse<T>(use: (baseUrl: string) => Promise<T>): Promise<T> {
    this.supervisorPid();
    return use(this.plan.endpoints.synapse);
  }

  async withAuth<T>(use: (adminBaseUrl: string) => Promise<T>): Promise<T> {
    this.supervisorPid();
    if (!this.stack.auth) throw new TargetUsageError(`${this.description} has no auth component (synapse.server.mfa.totp and .webauthn are off).`);
    // The running plan's endpoint (what the service listens on), else the recorded ports.
    return use(this.plan.endpoints.authAdmin ?? `http://${this.stack.placement.hosts.auth}:${this.stack.placement.ports.authAdmin}/`);
  }

  private secretFile(ref: SecretKeyRef): string {
    if (!/^[a-z0-9][a-z0-9.-]*$/.test(ref.name) || !/^[A-Za-z0-9._-]+$/.test(ref.key) || ref.key.startsWith('..')) {
      throw new TargetUsageError(`invalid secret reference ${ref.name}/${ref.key}.`);
    }
    return join(this.layout.secretsDir, ref.name, ref.key);
  }

  async readSecret(ref: SecretKeyRef): Promise<string | undefined> {
    try {
      return readFileSync(this.secretFile(ref), 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  async writeSecret(ref: SecretKeyRef, value: string): Promise<void> {
    const file = this.secretFile(ref);
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    // Written to a fresh 0600 file and renamed is not needed: the directory is root-only (0700).
    writeFileSync(file, value, { mode: 0o600 });
    chmodSync(file, 0o600);
  }

  async listSecrets(names: readonly string[]): Promise<StoredSecretKey[]> {
    const keys: StoredSecretKey[] = [];
    for (const name of names) {
      let entries: string[];
      try {
        entries = readdirSync(join(this.layout.secretsDir, name));
      } catch {
        continue;
      }
      for (const key of entries.sort()) {
        const stats = statSync(join(this.layout.secretsDir, name, key));
        if (stats.isFile()) keys.push({ name, key, updatedAt: stats.mtime });
      }
    }
    return keys;
  }

  private user(component: ComponentName, name?: string): RuntimeUser {
    if (name) return name === 'root' ? { uid: 0, gid: 0, home: '/root' } : runtimeUser(this.plan.rootfs, name);
    const plan = this.plan.components.find((c) => c.name === component);
    if (plan) return plan.user;
    return runtimeUser(this.plan.rootfs, runtimeUserNames[component] ?? 'root');
  }

  async exec(component: ComponentName, argv: readonly string[], options: ExecOptions = {}): Promise<CommandResult> {
    const pid = this.supervisorPid();
    this.runtimeComponentPlan(component);
    const user = this.user(component, options.user);
    // The supervisor's mount namespace holds the runtime's /proc, /dev, private /run and the state directory.
    return runProcess('nsenter', [`--target=${pid}`, '--mount', '--', 'chroot', ...chrootArguments(this.plan.rootfs, user, [...argv])], {
      env: runtimeEnvironment(user),
      timeoutMs: options.timeoutMs ?? 120_000,
      ...(options.stdin !== undefined ? { stdin: options.stdin } : {}),
    });
  }

  async isRunning(component: ComponentName): Promise<boolean> {
    if (lockHolder(this.layout) === undefined) return false;
    const reported = this.status()?.components[component];
    return reported?.state === 'running' && reported.pid !== undefined && processIsAlive(reported.pid);
  }

  spawn(component: ComponentName, argv: readonly string[], options: { user?: string } = {}): StreamingCommand {
    const pid = this.supervisorPid();
    this.runtimeComponentPlan(component);
    const user = this.user(component, options.user);
    const child = spawn('nsenter', [`--target=${pid}`, '--mount', '--', 'chroot', ...chrootArguments(this.plan.rootfs, user, [...argv])], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: runtimeEnvironment(user),
    });
    return streamingCommand(child);
  }

  postgresqlTool(tool: PostgresqlTool): string[] {
    const postgresql = this.plan.postgresql;
    if (!postgresql) throw new TargetUsageError(`${this.description} uses an external database: back it up with its own tools.`);
    // Debian's server puts its socket in /run/postgresql (the stack's private /run).
    return [`${postgresql.binDir}/${tool}`, '-h', '/run/postgresql', '-p', String(postgresql.port)];
  }

  /** The worker processes of Synapse (synapse-<worker>, docs/workers.md) in this stack's plan; none without workers. */
  private synapseWorkers(): ComponentPlan[] {
    return this.plan.components.filter((c) => c.name.startsWith('synapse-'));
  }

  /**
   * Stops one component and holds it stopped: a hold file tells the supervisor not to restart it
   * (src/targets/local/supervisor.ts); a new supervisor (the next `up`) clears every hold. Synapse is the
   * main process and every worker (a restore must not leave a worker serving from its caches of the data
   * it replaces): the workers stop first, together, then the main process.
   */
  async stop(component: ComponentName): Promise<void> {
    const plan = this.componentPlan(component);
    if (component === 'synapse') await Promise.all(this.synapseWorkers().map((worker) => this.stopProcess(worker)));
    await this.stopProcess(plan);
  }

  private async stopProcess(plan: ComponentPlan): Promise<void> {
    mkdirSync(this.layout.holdDir, { recursive: true, mode: 0o700 });
    writeFileSync(join(this.layout.holdDir, plan.name), `${process.pid}\n`);
    const deadline = Date.now() + 60_000;
    let signalled: number | undefined;
    while (Date.now() < deadline) {
      const now = this.status()?.components[plan.name];
      if (now?.state === 'stopped' && (now.pid === undefined || !processIsAlive(now.pid))) return;
      // A process the supervisor (re)started after the hold was written (a scheduled restart) is stopped too.
      if (now?.pid !== undefined && now.pid !== signalled && processIsAlive(now.pid)) {
        process.kill(now.pid, plan.stopSignal);
        signalled = now.pid;
      }
      await sleep(250);
    }
    throw new Error(`${plan.name} did not stop within 60 s; see ${this.layout.logFile(plan.name)}.`);
  }

  /**
   * Releases a hold and waits until the supervisor reports the component running and healthy. Synapse:
   * the main process first, then its workers (they need its replication listener), all healthy.
   */
  async start(component: ComponentName): Promise<void> {
    const plan = this.componentPlan(component);
    await this.startProcess(plan);
    if (component === 'synapse') await Promise.all(this.synapseWorkers().map((worker) => this.startProcess(worker)));
  }

  private async startProcess(plan: ComponentPlan): Promise<void> {
    rmSync(join(this.layout.holdDir, plan.name), { force: true });
    const deadline = Date.now() + 300_000;
    while (Date.now() < deadline) {
      const now = this.status()?.components[plan.name];
      if (now?.state === 'running' && now.healthy && now.pid !== undefined && processIsAlive(now.pid)) return;
      await sleep(500);
    }
    throw new Error(`${plan.name} did not become healthy within 300 s; see ${this.layout.logFile(plan.name)}.`);
  }

  /** Rewrites every file built from secrets, then restarts the components (the supervisor restarts what exits). */
  async applySecrets(components: readonly ComponentName[]): Promise<void> {
    // A stack that never ran gets its files from its first `up`.
    if (!this.recordedPlan) return;
    const secrets = ensureLocalSecrets(this.stack, this.layout);
    const rootfs = this.plan.rootfs;
    writeStackFiles(this.stack, secrets, this.layout, runtimeUsers(rootfs));
    this.refreshAdminCredentialsFile(secrets.adminPassword);
    for (const component of components) await this.restart(component);
  }

  /** admin-credentials.json (written by `up`) follows a rotated admin password. */
  private refreshAdminCredentialsFile(password: string): void {
    const written = readJsonFile<{ user_id?: string; password?: string; homeserver?: string }>(this.layout.adminCredentialsFile);
    if (!written?.user_id || !written.homeserver || written.password === password) return;
    writeAdminCredentials(this.layout, written.user_id, password, written.homeserver);
  }

  /** Ends the component's process and waits until the supervisor reports a new one healthy. */
  private async restart(component: ComponentName): Promise<void> {
    const before = this.status()?.components[component];
    if (!before?.pid) return;
    process.kill(before.pid, this.componentPlan(component).stopSignal);
    const deadline = Date.now() + 300_000;
    while (Date.now() < deadline) {
      await sleep(500);
      const now = this.status()?.components[component];
      if (now?.pid !== undefined && now.pid !== before.pid && now.state === 'running' && now.healthy) return;
    }
    throw new Error(`${component} did not come back healthy within 300 s after its restart; see ${this.layout.logFile(component)}.`);
  }
}
