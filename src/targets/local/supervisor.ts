/**
 * The supervisor of one local stack. Started by `up` inside its own private mount namespace
 * (`unshare --mount --propagation private`), so the mounts it makes into the runtime (proc, /dev, a private
 * /run and /tmp, the state directory at its own absolute path) vanish with it and stacks never see each
 * other's. It runs the components in order, each waited on by its health check, restarts a crashed one
 * with exponential backoff, keeps <state>/status.json current, and stops everything in reverse order on
 * SIGTERM.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { checkHealth, chrootArguments, hostEnvironment, hostProcessArguments, runtimeEnvironment } from './health.js';
import type { ComponentPlan, SupervisorPlan } from './plan.js';
import { readJsonFile, releaseLock, stateLayout, transferLock, writeJsonFileAtomic, type ComponentStatus, type StateLayout, type SupervisorStatus } from './state.js';

const healthPollMs = 500;
const healthMonitorMs = 5000;
const maxBackoffMs = 30_000;
/** A component that ran this long before crashing restarts without delay growth. */
const stableRunMs = 60_000;
const stopGraceMs = 30_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const now = () => new Date().toISOString();
const log = (message: string) => process.stdout.write(`${now()} ${message}\n`);

/** Restart delay after the n-th consecutive failure: 1 s, 2 s, 4 s ... capped. */
export function restartDelayMs(consecutiveFailures: number): number {
  return Math.min(maxBackoffMs, 1000 * 2 ** Math.max(0, consecutiveFailures - 1));
}

function run(command: string, args: string[], input?: string): { status: number | null; output: string } {
  const result = spawnSync(command, args, { input, encoding: 'utf8', timeout: 300_000 });
  return { status: result.status, output: `${result.stdout ?? ''}${result.stderr ?? ''}`.trim() };
}

function mustRun(what: string, command: string, args: string[], input?: string): string {
  const result = run(command, args, input);
  if (result.status !== 0) throw new Error(`${what} failed: ${result.output.split('\n').slice(-5).join(' | ')}`);
  return result.output;
}

/** The mounts that make the runtime usable and the state directory visible at the same path inside. */
export function mountRuntime(plan: SupervisorPlan): void {
  const inside = (path: string) => join(plan.rootfs, path);
  // Private /run and /tmp per stack: sockets and pid files of one stack never meet another's.
  mustRun('mounting /run', 'mount', ['-t', 'tmpfs', '-o', 'mode=0755,nosuid,nodev', 'tmpfs', inside('/run')]);
  mkdirSync(inside('/run/lock'), { mode: 0o1777 });
  mustRun('mounting /tmp', 'mount', ['-t', 'tmpfs', '-o', 'mode=1777,nosuid,nodev', 'tmpfs', inside('/tmp')]);
  mustRun('mounting /proc', 'mount', ['-t', 'proc', 'proc', inside('/proc')]);
  mustRun('mounting /dev', 'mount', ['--rbind', '/dev', inside('/dev')]);
  mkdirSync(inside(plan.stateDir), { recursive: true });
  mustRun('mounting the state directory', 'mount', ['--bind', plan.stateDir, inside(plan.stateDir)]);
  if (plan.element) {
    // The build with our config.json on top, read-only: nothing is ever written into the user's build.
    const { configDir, webRoot, rootDir } = plan.element;
    mustRun('mounting Element Web', 'mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${configDir}:${webRoot}`, inside(rootDir)]);
  }
  const postgres = plan.components.find((c) => c.name === 'postgresql');
  if (postgres) {
    // Debian's PostgreSQL puts its socket in /run/postgresql.
    mkdirSync(inside('/run/postgresql'), { mode: 0o2775 });
    chownSync(inside('/run/postgresql'), postgres.user.uid, postgres.user.gid);
  }
}

function runInRuntime(plan: SupervisorPlan, component: ComponentPlan, what: string, argv: string[], input?: string): string {
  const result = spawnSync('chroot', chrootArguments(plan.rootfs, component.user, argv), {
    input,
    encoding: 'utf8',
    env: runtimeEnvironment(component.user),
    timeout: 300_000,
  });
  if (result.status !== 0) throw new Error(`${what} failed: ${`${result.stdout}${result.stderr}`.trim().split('\n').slice(-5).join(' | ')}`);
  return result.stdout;
}

/** initdb on first start, as postgres. */
function initPostgresql(plan: SupervisorPlan, component: ComponentPlan): void {
  const init = plan.postgresql!;
  if (existsSync(join(init.dataDir, 'PG_VERSION'))) return;
  log('postgresql: first start, running initdb');
  mkdirSync(init.dataDir, { recursive: true, mode: 0o700 });
  chownSync(init.dataDir, component.user.uid, component.user.gid);
  runInRuntime(plan, component, 'initdb', [`${init.binDir}/initdb`, '-D', init.dataDir, ...init.initdbArgs]);
}

/** The socket directory the running server uses (5th line of postmaster.pid). */
function postgresqlSocketDir(dataDir: string): string {
  const lines = readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n');
  return lines[4]?.trim() || '/run/postgresql';
}

/** psql's \set quoting: backslash and quote escaped inside single quotes. */
const psqlQuoted = (value: string) => `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

/**
 * The role (password set from its secret file, over stdin) and its databases (Synapse's, and the auth
 * component's when 2FA is on), created when missing: at every start, so a stack that turns 2FA on later
 * gets the auth database at its next `up`.
 */
function ensureDatabase(plan: SupervisorPlan, component: ComponentPlan): void {
  const init = plan.postgresql!;
  const socketDir = postgresqlSocketDir(init.dataDir);
  const password = readFileSync(init.passwordFile, 'utf8').trim();
  const connection = ['-h', socketDir, '-p', String(init.port), '-d', 'postgres'];
  const script = [
    '\\set ON_ERROR_STOP on',
    `\\set role ${psqlQuoted(init.role)}`,
    `\\set password ${psqlQuoted(password)}`,
    "SELECT format('CREATE ROLE %I LOGIN', :'role') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role')\\gexec",
    "SELECT format('ALTER ROLE %I WITH LOGIN PASSWORD %L', :'role', :'password')\\gexec",
    '',
  ].join('\n');
  runInRuntime(plan, component, 'creating the database role', [`${init.binDir}/psql`, '-X', '-q', ...connection], script);
  for (const database of [init.database, ...(init.authDatabase ? [init.authDatabase] : [])]) {
    const exists = runInRuntime(plan, component, 'looking up the database', [
      `${init.binDir}/psql`, '-X', '-tA', ...connection, '-c', `SELECT 1 FROM pg_database WHERE datname = '${database.replace(/'/g, "''")}'`,
    ]);
    if (exists.trim() === '1') continue;
    log(`postgresql: creating database ${database}`);
    runInRuntime(plan, component, 'createdb', [
      `${init.binDir}/createdb`, '-h', socketDir, '-p', String(init.port),
      '--encoding=UTF8', '--locale=C', '--template=template0', `--owner=${init.role}`, database,
    ]);
  }
}

class SupervisedComponent {
  child?: ChildProcess;
  consecutiveFailures = 0;
  startedAtMs = 0;
  status: ComponentStatus = { state: 'waiting', healthy: false, restarts: 0 };
  private exitWaiters: (() => void)[] = [];

  constructor(
    readonly plan: ComponentPlan,
    private readonly supervisor: Supervisor,
  ) {}

  /** The command starting the component: chroot into the runtime, or setpriv on the host. */
  private command(): { command: string; args: string[]; env: NodeJS.ProcessEnv } {
    const { argv, stopSignal, user, environment } = this.plan;
    if (this.plan.runsIn === 'host') return { command: 'setpriv', args: hostProcessArguments(user, stopSignal, argv), env: hostEnvironment(user, environment) };
    // setpriv (after chroot has switched user, which would clear it) asks the kernel to signal the component
    // when the supervisor dies, so even a supervisor killed with SIGKILL leaves nothing running.
    const inside = ['setpriv', '--pdeathsig', stopSignal, '--', ...argv];
    return { command: 'chroot', args: chrootArguments(this.supervisor.plan.rootfs, user, inside), env: { ...runtimeEnvironment(user), ...environment } };
  }

  start(): void {
    const logFd = openSync(this.supervisor.layout.logFile(this.plan.name), 'a', 0o640);
    const { command, args, env } = this.command();
    // Not detached: components stay in the supervisor's process group, which `down` kills as a last resort.
    const child = spawn(command, args, { stdio: ['ignore', logFd, logFd], env, cwd: '/' });
    closeSync(logFd);
    this.child = child;
    this.startedAtMs = Date.now();
    this.status = { ...this.status, state: 'starting', pid: child.pid, healthy: false, startedAt: now() };
    log(`${this.plan.name}: started (pid ${child.pid})`);
    child.on('error', (error) => log(`${this.plan.name}: ${error.message}`));
    child.on('exit', (code, signal) => this.exited(child, code, signal));
    this.supervisor.writeStatus();
  }

  private exited(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.child !== child) return;
    this.child = undefined;
    this.status = { ...this.status, pid: undefined, healthy: false, lastExit: { code, signal, at: now() } };
    const waiters = this.exitWaiters;
    this.exitWaiters = [];
    waiters.forEach((resolve) => resolve());
    if (this.supervisor.stopping) {
      this.status.state = 'stopped';
      log(`${this.plan.name}: stopped`);
      this.supervisor.writeStatus();
      return;
    }
    if (this.supervisor.isHeld(this.plan.name)) {
      this.status.state = 'stopped';
      log(`${this.plan.name}: stopped and held by an operation`);
      this.supervisor.writeStatus();
      this.supervisor.startWhenReleased(this);
      return;
    }
    log(`${this.plan.name}: exited unexpectedly (${signal ?? `code ${code}`})`);
    if (Date.now() - this.startedAtMs >= stableRunMs) this.consecutiveFailures = 0;
    this.consecutiveFailures++;
    this.supervisor.scheduleRestart(this);
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  waitForExit(timeoutMs: number): Promise<boolean> {
    if (!this.child) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.exitWaiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  async stop(): Promise<void> {
    if (!this.child) {
      // A component that failed to start keeps saying so.
      if (this.status.state !== 'failed') this.status = { ...this.status, state: 'stopped', healthy: false };
      return;
    }
    this.status.state = 'stopping';
    this.supervisor.writeStatus();
    this.child.kill(this.plan.stopSignal);
    if (!(await this.waitForExit(stopGraceMs))) {
      log(`${this.plan.name}: did not stop within ${stopGraceMs / 1000} s, killing it`);
      this.child?.kill('SIGKILL');
      await this.waitForExit(10_000);
    }
  }

  checkHealth(): Promise<boolean> {
    return checkHealth(this.plan.health, { rootfs: this.supervisor.plan.rootfs, user: this.plan.user });
  }

  /** Waits until healthy; false when the process exits or the start timeout passes first. */
  async waitHealthy(): Promise<boolean> {
    const deadline = Date.now() + this.plan.startTimeoutSeconds * 1000;
    const child = this.child;
    while (Date.now() < deadline && !this.supervisor.stopping) {
      if (!this.child || this.child !== child) return false;
      if (await this.checkHealth()) {
        this.status = { ...this.status, state: 'running', healthy: true };
        log(`${this.plan.name}: healthy`);
        this.supervisor.writeStatus();
        return true;
      }
      await sleep(healthPollMs);
    }
    return false;
  }
}

class Supervisor {
  readonly layout: StateLayout;
  readonly components: SupervisedComponent[];
  stopping = false;
  phase: SupervisorStatus['phase'] = 'starting';
  error?: string;
  private stopped?: Promise<void>;
  private monitor?: NodeJS.Timeout;

  constructor(readonly plan: SupervisorPlan) {
    this.layout = stateLayout(plan.stateDir);
    this.components = plan.components.map((component) => new SupervisedComponent(component, this));
  }

  writeStatus(): void {
    const status: SupervisorStatus = {
      pid: process.pid,
      phase: this.phase,
      ...(this.error ? { error: this.error } : {}),
      updatedAt: now(),
      components: Object.fromEntries(this.components.map((c) => [c.plan.name, c.status])),
    };
    writeJsonFileAtomic(this.layout.statusFile, status);
  }

  /** An operation (restore) holds a component stopped with the file hold/<name> (src/targets/local/target-adapter.ts). */
  isHeld(name: string): boolean {
    return existsSync(join(this.layout.holdDir, name));
  }

  startWhenReleased(component: SupervisedComponent): void {
    const poll = setInterval(() => {
      if (this.stopping) return clearInterval(poll);
      if (this.isHeld(component.plan.name)) return;
      clearInterval(poll);
      log(`${component.plan.name}: released`);
      component.consecutiveFailures = 0;
      component.start();
      void component.waitHealthy();
    }, healthPollMs);
  }

  scheduleRestart(component: SupervisedComponent): void {
    const delay = restartDelayMs(component.consecutiveFailures);
    component.status = { ...component.status, state: 'restarting' };
    this.writeStatus();
    log(`${component.plan.name}: restarting in ${delay / 1000} s`);
    setTimeout(() => {
      if (this.stopping) return;
      component.status.restarts++;
      component.start();
      void component.waitHealthy();
    }, delay);
  }

  /** The components in start order, consecutive members of a start group together. */
  private startSteps(): SupervisedComponent[][] {
    const steps: SupervisedComponent[][] = [];
    for (const component of this.components) {
      const last = steps.at(-1);
      const group = component.plan.startGroup;
      if (group !== undefined && last?.[0]?.plan.startGroup === group) last.push(component);
      else steps.push([component]);
    }
    return steps;
  }

  async startAll(): Promise<void> {
    this.writeStatus();
    mountRuntime(this.plan);
    for (const step of this.startSteps()) {
      if (this.stopping) return;
      for (const component of step) {
        if (component.plan.name === 'postgresql') initPostgresql(this.plan, component.plan);
        component.start();
      }
      const healthy = await Promise.all(step.map((component) => component.waitHealthy()));
      const failed = step.filter((_, i) => !healthy[i]);
      if (failed.length > 0) {
        if (this.stopping) return;
        for (const component of failed) component.status = { ...component.status, state: 'failed' };
        const names = failed.map((component) => component.plan.name);
        throw new Error(`${names.join(', ')} did not become healthy (see ${failed.map((component) => this.layout.logFile(component.plan.name)).join(', ')})`);
      }
      for (const component of step) if (component.plan.name === 'postgresql') ensureDatabase(this.plan, component.plan);
    }
    this.phase = 'running';
    this.writeStatus();
    log('all components healthy');
    this.monitor = setInterval(() => void this.refreshHealth(), healthMonitorMs);
  }

  private async refreshHealth(): Promise<void> {
    let changed = false;
    for (const component of this.components) {
      if (component.status.state !== 'running' || !component.running) continue;
      const healthy = await component.checkHealth();
      if (healthy !== component.status.healthy) {
        component.status.healthy = healthy;
        changed = true;
      }
    }
    if (changed && !this.stopping) this.writeStatus();
  }

  /** Stops every component in reverse order; once. */
  stopAll(): Promise<void> {
    this.stopped ??= (async () => {
      this.stopping = true;
      if (this.monitor) clearInterval(this.monitor);
      if (this.phase !== 'failed') this.phase = 'stopping';
      this.writeStatus();
      for (const component of [...this.components].reverse()) await component.stop();
      if (this.phase !== 'failed') this.phase = 'stopped';
      this.writeStatus();
    })();
    return this.stopped;
  }
}

/** Entry point of the supervisor process; returns the exit code. */
export async function runSupervisor(stateDir: string): Promise<number> {
  const layout = stateLayout(stateDir);
  const plan = readJsonFile<SupervisorPlan>(join(layout.root, 'plan.json'));
  if (!plan) throw new Error(`no plan in ${layout.root}: start the stack with \`mxstack up\``);
  transferLock(layout, process.pid);
  // Holds belong to operations of the previous run: a new supervisor starts everything.
  rmSync(layout.holdDir, { recursive: true, force: true });
  const supervisor = new Supervisor(plan);
  let exitCode = 0;
  const finished = new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log(`received ${signal}: stopping`);
      void supervisor.stopAll().then(resolve);
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => stop('SIGHUP'));
    // A bug in the supervisor must not leave the components running without it.
    process.on('uncaughtException', (error) => {
      log(`supervisor error: ${error.stack ?? error.message}`);
      exitCode = 1;
      stop('an internal error');
    });
    supervisor.startAll().catch((error: unknown) => {
      supervisor.phase = 'failed';
      supervisor.error = error instanceof Error ? error.message : String(error);
      log(`start failed: ${supervisor.error}`);
      exitCode = 1;
      void supervisor.stopAll().then(resolve);
    });
  });
  await finished;
  releaseLock(layout, process.pid);
  log('supervisor exiting');
  return exitCode;
}
