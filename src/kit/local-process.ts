/**
 * What a component tells the local target's supervisor about its process: program and arguments, the user
 * it runs as, how to stop it, how to tell it is healthy, the ports it listens on. Each component writes its
 * own in components/<name>/local.ts; targets/local/plan.ts gathers them into the plan.
 */
import type { Stack } from '../stack/model.js';

/** Every local component listens on the loopback address only. */
export const loopback = '127.0.0.1';

/** A user (of the runtime's /etc/passwd, or of this machine for a host component). */
export interface RuntimeUser {
  uid: number;
  gid: number;
  home: string;
}

/**
 * Where a component runs: `runtime`, a program of the runtime entered with chroot as one of its Debian users;
 * `host`, a program of this machine (the auth service: the runtime has no Node) as a user of its own.
 */
export type ComponentLocation = 'runtime' | 'host';

export type HealthCheck =
  | { kind: 'http'; url: string }
  | { kind: 'tcp'; host: string; port: number }
  | { kind: 'pg_isready'; binDir: string; host: string; port: number };

export interface LocalProcess {
  /** Debian package whose version is reported. */
  package: string;
  /** Where it runs (a plan.json written before host components existed has none: runtime). */
  runsIn: ComponentLocation;
  user: RuntimeUser;
  /** Program and arguments, run inside the runtime with chroot (or on the host, for a host component). */
  argv: string[];
  /** Environment entries added to the fixed one (never a secret). */
  environment?: Record<string, string>;
  stopSignal: NodeJS.Signals;
  health: HealthCheck;
  /** How long a start may take before it counts as failed. */
  startTimeoutSeconds: number;
  /**
   * Consecutive components with the same group start together and are waited on together (the Synapse
   * workers, once the main process has prepared the database).
   */
  startGroup?: string;
  ports: Record<string, number>;
}

/** A process of the plan under its name: the component's, or `synapse-<worker name>` (synapse-sync-1) for a worker. */
export interface NamedLocalProcess extends LocalProcess {
  name: string;
}

/** The users of the runtime's own /etc/passwd that run or own something. */
export interface RuntimeUsers {
  /** Runs Element Web's nginx: reads the public build, owns only its run directory (pid file, buffers). */
  nobody: RuntimeUser;
  postgres: RuntimeUser;
  synapse: RuntimeUser;
  turnserver: RuntimeUser;
  haproxy: RuntimeUser;
  redis: RuntimeUser;
}

/** The Node and the entry a host program (the auth service) is started with. */
export interface HostProgram {
  node: string;
  entry: string;
}

/** The state directory's paths a process spec names (targets/local/state.ts's layout has them all). */
export interface LocalProcessDirs {
  postgresqlDataDir: string;
  postgresqlConfFile: string;
  synapseConfigDir: string;
  synapseSecretsDir: string;
  coturnRuntimeConfFile: string;
  elementRootDir: string;
  /** Element Web's nginx.conf (components/element/nginx.ts). */
  elementNginxConfFile: string;
  /** Where Element Web's unprivileged nginx writes its pid file and request buffers. */
  elementRunDir: string;
  routerConfigDir: string;
  authConfigDir: string;
  authSecretsDir: string;
  authTmpDir: string;
  redisConfigDir: string;
  /** Python modules Synapse imports from the state directory (txredisapi, with workers). */
  pythonDir: string;
}

/** What the local target knows when it asks a component for its process. */
export interface LocalProcessContext {
  stack: Stack;
  dirs: LocalProcessDirs;
  users: RuntimeUsers;
  /** /usr/lib/postgresql/<major>/bin of the runtime. */
  postgresqlBinDir: string;
  hostProgram: HostProgram;
}
