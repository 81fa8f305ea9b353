/**
 * The state directory of one local stack: generated files, secrets, data, logs, the ports chosen once,
 * the lock and the supervisor's status. Everything a stack owns lives under it.
 */
import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { processIsAlive } from './runtime.js';
import { createPidFile, pidInFile, removePidFile } from './pid-file.js';

/**
 * /var/lib/mxstack/default: the local target runs as root, but its components run as their own users
 * (postgres, matrix-synapse...), which must be able to reach the state directory; a path under /root
 * (mode 0700) would lock them out. MXSTACK_STATE_DIR overrides it.
 */
export function defaultStateDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.MXSTACK_STATE_DIR || join('/var/lib', 'mxstack', 'default');
}

/**
 * The first ancestor of `directory`, as seen inside the runtime root filesystem `rootfs` (where the state
 * directory is bound at the same path), that other users cannot traverse. Ancestors missing there are
 * created 0755 by the supervisor; the runtime's own /root (0700) is the usual culprit.
 */
export function untraversableAncestor(directory: string, rootfs: string): string | undefined {
  let current = dirname(resolve(directory));
  for (;;) {
    try {
      if ((statSync(join(rootfs, current)).mode & 0o001) === 0) return current;
    } catch {
      // Not in the runtime: the supervisor creates it traversable.
    }
    const parent = dirname(current);
    if (parent === current) return undefined;
    current = parent;
  }
}


/** Every path of a state directory, in one place. */
export function stateLayout(stateDirectory: string) {
  const root = resolve(stateDirectory);
  return {
    root,
    stateFile: join(root, 'state.json'),
    portsFile: join(root, 'ports.json'),
    /** The merged values (raw, not defaulted) of the last `up`, mode 0600 (values may hold secrets). */
    valuesFile: join(root, 'values.json'),
    lockFile: join(root, 'lock'),
    statusFile: join(root, 'status.json'),
    adminCredentialsFile: join(root, 'admin-credentials.json'),
    logsDir: join(root, 'logs'),
    logFile: (component: string) => join(root, 'logs', `${component}.log`),
    /** One file per secret: secrets/<Secret name>/<key>, the local twin of a Kubernetes Secret. */
    secretsDir: join(root, 'secrets'),
    postgresqlDir: join(root, 'postgresql'),
    postgresqlDataDir: join(root, 'postgresql', 'data'),
    postgresqlConfFile: join(root, 'postgresql', 'postgresql.conf'),
    synapseConfigDir: join(root, 'synapse', 'config'),
    synapseSecretsDir: join(root, 'synapse', 'secrets'),
    signingKey: join(root, 'synapse', 'keys', 'signing.key'),
    mediaStore: join(root, 'synapse', 'media_store'),
    synapseDataDir: join(root, 'synapse', 'data'),
    /** Synapse's private start-time files (the joined database and email blocks), mode 0700. */
    synapseRuntimeDir: join(root, 'synapse', 'run'),
    routerConfigDir: join(root, 'router'),
    coturnDir: join(root, 'coturn'),
    coturnConfFile: join(root, 'coturn', 'turnserver.conf'),
    /** turnserver.conf followed by the secret lines: the file coturn reads (mode 0600). */
    coturnRuntimeConfFile: join(root, 'coturn', 'turnserver-with-secret.conf'),
    coturnTlsDir: join(root, 'coturn', 'tls'),
    /** The router's federation certificate and key (tls.crt, tls.key), put there by the user before `up`. */
    routerFederationTlsDir: join(root, 'router', 'federation-tls'),
    /** Element Web's files: config, root, nginx.conf, run and the release-* unpacked releases. */
    elementDir: join(root, 'element'),
    /** Element's generated config.json, laid over the Element Web build served. */
    elementConfigDir: join(root, 'element', 'config'),
    /** Where the build with our config.json on top is mounted (overlay) for the web server. */
    elementRootDir: join(root, 'element', 'root'),
    elementNginxConfFile: join(root, 'element', 'nginx.conf'),
    /** nginx's pid file and request buffers, owned by the user it runs as. */
    elementRunDir: join(root, 'element', 'run'),
    /** The verified Element Web release, unpacked: release-<first 12 digits of its SHA-256>. */
    elementReleaseDir: (sha256: string) => join(root, 'element', `release-${sha256.slice(0, 12)}`),
    /** The auth component's generated config.json (no secrets) and its secret files. */
    authConfigDir: join(root, 'auth', 'config'),
    authSecretsDir: join(root, 'auth', 'secrets'),
    /** The auth service's TMPDIR (tsx's compile cache): its own, not a /tmp directory anyone could make first. */
    authTmpDir: join(root, 'auth', 'tmp'),
    redisConfigDir: join(root, 'redis', 'config'),
    /** Python modules the Synapse processes import beside the runtime's (see python/txredisapi.py). */
    pythonDir: join(root, 'python'),
    redisSecretsDir: join(root, 'redis', 'secrets'),
    redisDataDir: join(root, 'redis', 'data'),
    /** hold/<component>: an operation (restore) stopped it; the supervisor does not restart it meanwhile. */
    holdDir: join(root, 'hold'),
  };
}

export type StateLayout = ReturnType<typeof stateLayout>;

/** Written once when the state directory is created: what it was created for. */
export interface StackIdentity {
  serverName: string;
  createdAt: string;
}

export function readJsonFile<T>(path: string): T | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  return JSON.parse(text) as T;
}

/** Written to a temporary sibling and renamed, so readers never see half a file. */
export function writeJsonFileAtomic(path: string, value: unknown, mode = 0o644): void {
  mkdirSync(dirname(path), { recursive: true });
  const temporary = `${path}.tmp-${process.pid}`;
  writeFileSync(temporary, `${JSON.stringify(value, null, 2)}\n`, { mode });
  renameSync(temporary, path);
}

export class StateLockedError extends Error {
  constructor(
    readonly pid: number | undefined,
    stateDir: string,
  ) {
    super(
      `the stack in ${stateDir} is already running (${pid === undefined ? 'another process is starting it now' : `process ${pid}`}); use \`mxstack status\` or \`mxstack down\` first.`,
    );
  }
}

/** The pid holding the lock, when that process is alive. */
export function lockHolder(layout: StateLayout): number | undefined {
  const pid = pidInFile(layout.lockFile);
  return pid !== undefined && processIsAlive(pid) ? pid : undefined;
}

/** Takes the state directory's lock for this process (stale locks of exited processes are replaced). */
export function acquireLock(layout: StateLayout): void {
  const result = createPidFile(layout.lockFile);
  if (!result.created) throw new StateLockedError(result.holder, layout.root);
}

/** Hands the lock to another process (the supervisor), keeping it held throughout. */
export function transferLock(layout: StateLayout, pid: number): void {
  writeFileSync(`${layout.lockFile}.tmp`, `${pid}\n`);
  renameSync(`${layout.lockFile}.tmp`, layout.lockFile);
}

export function releaseLock(layout: StateLayout, pid: number = process.pid): void {
  removePidFile(layout.lockFile, pid);
}

export type ComponentState = 'waiting' | 'starting' | 'running' | 'restarting' | 'stopping' | 'stopped' | 'failed';

export interface ComponentStatus {
  state: ComponentState;
  pid?: number;
  healthy: boolean;
  restarts: number;
  startedAt?: string;
  lastExit?: { code: number | null; signal: string | null; at: string };
}

export type SupervisorPhase = 'starting' | 'running' | 'stopping' | 'stopped' | 'failed';

/** What the supervisor writes after every change. */
export interface SupervisorStatus {
  pid: number;
  phase: SupervisorPhase;
  /** Set when phase is failed: one sentence about why. */
  error?: string;
  updatedAt: string;
  components: Record<string, ComponentStatus>;
}
