/** `up` and `down` of a local stack (`status` is in status.ts). */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { isAbsolute, join } from 'node:path';
import { authEnabled } from '../../values/derived.js';
import type { Stack } from '../../stack/model.js';
import { normalizeLegacyValues } from '../../values/compat.js';
import type { StackInput } from '../../stack/entry.js';
import { registerWithSharedSecret } from '../../components/synapse/shared-secret-registration.js';
import { authAccessProblem, authIdOwners, defaultHostProgram } from './auth.js';
import { localAuthUser } from '../../components/auth/local.js';
import { runtimeUsers, writeAdminCredentials, writeStackFiles } from './files.js';
import { buildSupervisorPlan, type SupervisorPlan } from './plan.js';
import { compileLocalStack, explicitPorts, localMaxWorkers, portProtocols, resolveLocalPorts, type LocalPorts, type PortName } from './placement.js';
import { workerProcesses } from '../../values/worker-pools.js';
import { renderWorkerConfig } from '../../components/synapse/workers.js';
import { createPortChooser, describePortHolder, portInUse, type Protocol } from './ports.js';
import { PortReservations } from './port-reservations.js';
import { mxstackCacheDir, postgresqlBinDir, processIsAlive, runtimeDir, runtimeIsPresent, runtimeVersions } from './runtime.js';
import { ElementReleaseError, elementWebRootOf, elementWebSource, placeElementRelease, type ElementWebSource } from './element-release.js';
import { ensureLocalSecrets, localSecretFile } from './secrets.js';
import {
  acquireLock,
  lockHolder,
  readJsonFile,
  releaseLock,
  stateLayout,
  transferLock,
  untraversableAncestor,
  writeJsonFileAtomic,
  type StackIdentity,
  type StateLayout,
  type SupervisorStatus,
} from './state.js';

/** A problem the user can fix (exit 2): one sentence. */
export class LocalStackUsageError extends Error {}

type Progress = (line: string) => void;

export function requireRoot(command: string): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new LocalStackUsageError(`mxstack ${command} must run as root (it mounts filesystems and enters the runtime with chroot); run it with sudo.`);
  }
}

export function requireRuntime(): string {
  const dir = runtimeDir();
  if (!runtimeIsPresent(dir)) {
    throw new LocalStackUsageError(`the runtime root filesystem is missing (${dir}); build it with \`mxstack runtime setup\`.`);
  }
  return dir;
}

/** Which component uses a port, for messages. */
const portPurpose: Record<PortName, string> = {
  synapseHttp: 'Synapse HTTP (synapse.service.targetPort)',
  synapseMetrics: 'Synapse metrics (synapse.metrics.port)',
  synapseReplication: 'Synapse replication',
  postgresql: 'PostgreSQL',
  redis: 'Redis (redis.port)',
  element: 'Element',
  router: 'router (router.port)',
  routerMetrics: 'router metrics (router.metricsPort)',
  routerFederation: 'router federation listener (router.federation.port)',
  turn: 'TURN (coturn.listeningPort)',
  turns: 'TURNS (coturn.tlsListeningPort)',
  turnMetrics: 'coturn metrics (coturn.prometheusExporter.port)',
  relayMin: 'TURN relay range (coturn.relayPortRange)',
  relayMax: 'TURN relay range (coturn.relayPortRange)',
  auth: 'auth sign-in pages (auth.port)',
  authAdmin: 'auth administration API (auth.adminPort)',
};

/** The ports this stack will listen on (only those of components that run), each with its protocols and use. */
function listenedPorts(stack: Stack): { purpose: string; port: number; protocols: Protocol[] }[] {
  const { ports } = stack.placement;
  const used: PortName[] = ['router', 'routerMetrics', 'synapseHttp'];
  if (stack.values.synapse.metrics.enabled) used.push('synapseMetrics');
  if (stack.values.router.federation.enabled) used.push('routerFederation');
  if (stack.values.postgresql.enabled && !stack.values.synapse.database.external) used.push('postgresql');
  if (stack.values.coturn.enabled) used.push('turn', ...(stack.values.coturn.tls.enabled ? (['turns'] as const) : []));
  if (stack.elementUrl !== undefined) used.push('element');
  if (stack.auth) used.push('auth', 'authAdmin');
  const workers = workerProcesses(stack.values);
  if (workers.length > 0) used.push('redis', 'synapseReplication');
  const list = used.map((name) => ({ purpose: portPurpose[name], port: ports[name], protocols: portProtocols[name as keyof typeof portProtocols] }));
  for (const worker of workers) {
    for (const listener of renderWorkerConfig(stack, worker).worker_listeners as { port: number }[]) {
      list.push({ purpose: `Synapse worker ${worker.name}`, port: listener.port, protocols: ['tcp'] });
    }
  }
  if (stack.values.coturn.enabled) {
    for (let port = ports.relayMin; port <= ports.relayMax; port++) list.push({ purpose: portPurpose.relayMin, port, protocols: ['udp'] });
  }
  return list;
}

/** Refuses to start when another process holds one of the ports: names the port, its use and the holder. */
export function checkPortsFree(stack: Stack): void {
  for (const { purpose, port, protocols } of listenedPorts(stack)) {
    for (const protocol of protocols) {
      const use = portInUse(port, protocol);
      if (use) {
        throw new LocalStackUsageError(
          `port ${port}/${protocol} for the ${purpose} is already in use by ${describePortHolder(use)}; stop it or choose another port in values.`,
        );
      }
    }
  }
}

/** A local stack runs at most localMaxWorkers workers: three ports each in its block. */
function checkWorkerCount(stack: Stack): void {
  const count = workerProcesses(stack.values).length;
  if (count > localMaxWorkers) {
    throw new LocalStackUsageError(`synapse.workers: ${count} worker processes are more than a local stack runs (at most ${localMaxWorkers}); lower the pools' replicas.`);
  }
}

/** element.webRoot must be an Element Web build: a directory holding index.html. */
function checkElementWebRoot(stack: Stack): void {
  const webRoot = stack.values.element.webRoot;
  if (stack.elementUrl === undefined || webRoot === undefined) return;
  if (!isAbsolute(webRoot) || !existsSync(join(webRoot, 'index.html'))) {
    throw new LocalStackUsageError(`element.webRoot: ${webRoot} is not an Element Web build (give the absolute path of the directory holding index.html).`);
  }
}

/** Connection fields in Kubernetes Secrets cannot be read here: the local target takes them as values. */
export function checkDatabaseFieldsLocal(stack: Stack): void {
  const fields = Object.keys(stack.database.fromSecret);
  if (fields.length === 0) return;
  throw new LocalStackUsageError(
    `synapse.database.${fields[0]}: ${fields.map((f) => `synapse.database.${f}`).join(', ')} come from Kubernetes Secrets, which the local target cannot read; write them as values (and the password as synapse.database.password) for a local stack.`,
  );
}

function checkIdentity(layout: StateLayout, serverName: string): void {
  const identity = readJsonFile<StackIdentity>(layout.stateFile);
  if (identity && identity.serverName !== serverName) {
    throw new LocalStackUsageError(
      `the state directory ${layout.root} was created for server name ${identity.serverName}, not ${serverName}; a server name cannot change, use another --state-dir.`,
    );
  }
}

/** The server name the state directory belongs to, recorded once every check has passed. */
function recordIdentity(layout: StateLayout, serverName: string): void {
  if (readJsonFile<StackIdentity>(layout.stateFile)) return;
  writeJsonFileAtomic(layout.stateFile, { serverName, createdAt: new Date().toISOString() } satisfies StackIdentity);
}

/**
 * With 2FA on, the auth service runs on this machine as localAuthUser: that id must be nobody else's, and that
 * user must reach Node, this installation and the state directory. One sentence when not.
 */
function checkAuthCanRun(layout: StateLayout, rootfs: string): void {
  const owners = authIdOwners(rootfs);
  if (owners.length > 0) {
    throw new LocalStackUsageError(
      `uid/gid ${localAuthUser.uid}, which the local 2FA service (the auth component) runs as, already belongs to ${owners.join(' and ')}; remove that user or group, or turn synapse.server.mfa off.`,
    );
  }
  const problem = authAccessProblem(layout, defaultHostProgram());
  if (problem) throw new LocalStackUsageError(problem);
}

/** The path of the CLI entry, to start the supervisor with the same code. */
const cliEntry = fileURLToPath(new URL('../../../bin/mxstack.js', import.meta.url));

function startSupervisor(layout: StateLayout): number {
  mkdirSync(layout.logsDir, { recursive: true });
  const logFd = openSync(layout.logFile('supervisor'), 'a', 0o640);
  const child = spawn('unshare', ['--mount', '--propagation', 'private', '--', process.execPath, cliEntry, 'supervise', '--state-dir', layout.root], {
    detached: true,
    stdio: ['ignore', logFd, logFd],
    cwd: '/',
  });
  closeSync(logFd);
  child.unref();
  if (!child.pid) throw new Error('could not start the supervisor (unshare)');
  return child.pid;
}

function tail(path: string, lines: number): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits for the supervisor to report every component healthy, printing each step once. */
async function waitForRunning(layout: StateLayout, pid: number, progress: Progress, timeoutMs: number, interrupted: () => string | undefined): Promise<void> {
  const reported = new Set<string>();
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const signal = interrupted();
    if (signal) throw new Error(`interrupted (${signal}) before the stack was healthy`);
    const status = readJsonFile<SupervisorStatus>(layout.statusFile);
    if (status?.pid === pid) {
      for (const [name, component] of Object.entries(status.components)) {
        const key = `${name}:${component.state}`;
        if (!reported.has(key) && (component.state === 'starting' || component.state === 'running')) {
          reported.add(key);
          progress(component.state === 'starting' ? `starting ${name}` : `${name} is healthy`);
        }
      }
      if (status.phase === 'running') return;
      if (status.phase === 'failed') {
        const failed = Object.entries(status.components).filter(([, component]) => component.state === 'failed');
        const logs = failed.map(([name]) => `\nlast lines of ${layout.logFile(name)}:\n${tail(layout.logFile(name), 10)}`);
        throw new Error(`the stack did not start: ${status.error}${logs.join('')}`);
      }
    }
    if (!processIsAlive(pid)) {
      throw new Error(`the supervisor exited during start-up; last lines of ${layout.logFile('supervisor')}:\n${tail(layout.logFile('supervisor'), 15)}`);
    }
    await sleep(300);
  }
  throw new Error(`the stack was not healthy after ${timeoutMs / 1000} s; see ${layout.logsDir}`);
}

export interface UpOptions {
  stateDir: string;
  /** The values stage's result (stack/entry.ts), run once by the CLI. */
  input: StackInput;
  progress: Progress;
  /** How long to wait for every component to be healthy. */
  timeoutMs?: number;
}

export interface UpResult {
  stack: Stack;
  plan: SupervisorPlan;
  adminUserId?: string;
  adminCredentialsFile?: string;
  /** Why Element Web is not served, and what to do (one sentence), when it is enabled but not served. */
  elementNotice?: string;
}

/** The Element Web build to serve (element-release.ts); the user's input errors are usage errors. */
async function chooseElementWebSource(values: StackInput['values'], progress: Progress): Promise<ElementWebSource> {
  try {
    return await elementWebSource(values, { cacheDir: mxstackCacheDir(), progress });
  } catch (error) {
    if (error instanceof ElementReleaseError) throw new LocalStackUsageError(error.message);
    throw error;
  }
}

/** Compiles the stack for this machine, writes its files and starts the supervisor; returns when healthy. */
export async function upLocalStack(options: UpOptions): Promise<UpResult> {
  requireRoot('up');
  const rootfs = requireRuntime();
  const { raw, values } = options.input;
  const layout = stateLayout(options.stateDir);
  const closedAncestor = untraversableAncestor(layout.root, rootfs);
  if (closedAncestor)
    throw new LocalStackUsageError(
      `the state directory ${layout.root} is inside ${closedAncestor}, which the stack's own users (postgres, matrix-synapse) cannot enter inside the runtime; choose a --state-dir elsewhere (the default is /var/lib/mxstack/default).`,
    );
  if (authEnabled(values)) checkAuthCanRun(layout, rootfs);
  // A refused `up` writes nothing: a state directory it created for the lock alone is removed again.
  const createdStateDir = !existsSync(layout.root);
  mkdirSync(layout.root, { recursive: true, mode: 0o711 });
  try {
    acquireLock(layout);
  } catch (error) {
    throw new LocalStackUsageError((error as Error).message);
  }
  let supervisorPid: number | undefined;
  let checked = false;
  // The ports chosen below stay claimed against other `up`s until the stack's processes have bound them.
  const reservations = new PortReservations();
  try {
    checkIdentity(layout, values.synapse.server.name);
    const persisted = readJsonFile<LocalPorts>(layout.portsFile);
    const ports = resolveLocalPorts(explicitPorts(normalizeLegacyValues(raw)), persisted, createPortChooser(new Set(), reservations));
    const element = await chooseElementWebSource(values, options.progress);
    const stack = compileLocalStack(values, layout, ports, elementWebRootOf(element, layout));
    checkElementWebRoot(stack);
    checkWorkerCount(stack);
    checkDatabaseFieldsLocal(stack);
    checkPortsFree(stack);
    checked = true;
    recordIdentity(layout, values.synapse.server.name);
    writeJsonFileAtomic(layout.portsFile, ports);
    placeElementRelease(element, layout, options.progress);
    const secrets = ensureLocalSecrets(stack, layout);
    const users = runtimeUsers(rootfs);
    writeStackFiles(stack, secrets, layout, users);
    const versions = Object.fromEntries(runtimeVersions(rootfs).map((v) => [v.package, v.version]));
    const plan = buildSupervisorPlan({
      stack,
      layout,
      rootfs,
      postgresqlBinDir: postgresqlBinDir(rootfs),
      users,
      versions,
      postgresPasswordFile: localSecretFile(layout, stack.secrets.postgresPassword),
    });
    writeJsonFileAtomic(join(layout.root, 'plan.json'), plan);
    // Operations run later without -f see the stack as it was started (2FA on or off, its digits, ports...).
    writeJsonFileAtomic(layout.valuesFile, raw, 0o600);
    supervisorPid = startSupervisor(layout);
    transferLock(layout, supervisorPid);
    options.progress(`supervisor started (pid ${supervisorPid}); logs in ${layout.logsDir}`);
    // Interrupting `up` while it waits undoes the start, rather than leaving a half-started stack behind.
    let interruption: string | undefined;
    const interrupt = (signal: string) => (interruption = signal);
    process.on('SIGINT', interrupt).on('SIGTERM', interrupt);
    try {
      await waitForRunning(layout, supervisorPid, options.progress, options.timeoutMs ?? 600_000, () => interruption);
    } finally {
      process.off('SIGINT', interrupt).off('SIGTERM', interrupt);
    }

    const elementNotice = element.kind === 'unavailable' ? { elementNotice: element.notice } : {};
    const admin = values.synapse.server.adminUser;
    if (!admin.enabled) return { stack, plan, ...elementNotice };
    const registration = await registerWithSharedSecret(
      plan.endpoints.synapse,
      secrets.registrationSharedSecret,
      { username: secrets.adminUsername, password: secrets.adminPassword, admin: admin.admin, ...(admin.displayName ? { displayname: admin.displayName } : {}) },
      stack.serverName,
    );
    writeAdminCredentials(layout, registration.userId, secrets.adminPassword, plan.endpoints.client);
    options.progress(registration.created ? `created the admin user ${registration.userId}` : `the admin user ${registration.userId} already exists`);
    return { stack, plan, adminUserId: registration.userId, adminCredentialsFile: layout.adminCredentialsFile, ...elementNotice };
  } catch (error) {
    if (supervisorPid !== undefined && processIsAlive(supervisorPid)) {
      options.progress('start-up failed: stopping what was started');
      await stopSupervisor(layout, supervisorPid, 120_000);
    }
    releaseLock(layout);
    if (createdStateDir && !checked) rmSync(layout.root, { recursive: true, force: true });
    throw error;
  } finally {
    reservations.releaseAll();
  }
}

async function stopSupervisor(layout: StateLayout, pid: number, timeoutMs: number): Promise<boolean> {
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!processIsAlive(pid)) return true;
    await sleep(200);
  }
  // Last resort: the whole process group (the supervisor and its components).
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
  releaseLock(layout, pid);
  return false;
}

/** Stops the stack in reverse order and waits for it; data, ports and secrets stay. */
export async function downLocalStack(stateDir: string, progress: Progress): Promise<boolean> {
  requireRoot('down');
  const layout = stateLayout(stateDir);
  const pid = lockHolder(layout);
  if (pid === undefined) {
    progress(`the stack in ${layout.root} is not running`);
    return false;
  }
  progress(`stopping the stack in ${layout.root} (supervisor pid ${pid})`);
  const clean = await stopSupervisor(layout, pid, 180_000);
  progress(clean ? 'stopped' : 'the supervisor did not stop in time: killed its processes');
  return true;
}

