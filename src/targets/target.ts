/**
 * The Target interface: everything the operations (`secrets`, `users`, `rooms`, `registration-tokens`,
 * and later `backup`, `restore`, `doctor`) need from where the stack runs. The local target implements it
 * with files and processes (src/targets/local/target-adapter.ts), Kubernetes with kubectl
 * (src/targets/kubernetes/target-adapter.ts). Operations are written once against it.
 *
 * Secret values cross this interface as return values and arguments only: an implementation never logs
 * them, never puts them on a command line and never includes them in an error message.
 */
import type { Readable, Writable } from 'node:stream';
import type { ComponentName, Stack } from '../stack/model.js';

/** A Secret key: `name` is the Kubernetes Secret name (locally, the directory under <state>/secrets). */
export interface SecretKeyRef {
  name: string;
  key: string;
}

/** What `listSecrets` reports of one stored key: never its value. */
export interface StoredSecretKey extends SecretKeyRef {
  /** When the value was last written (Kubernetes: the Secret's creation time; locally: the file's mtime). */
  updatedAt: Date;
}

export interface CommandResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  /** Written to the command's stdin: how secrets reach a command (never argv, never the environment). */
  stdin?: string;
  /** Run as this user of the component (locally a user of the runtime; on Kubernetes the container's). */
  user?: string;
  timeoutMs?: number;
}

/** A command whose stdin and stdout are streams (backup and restore move gigabytes through them). */
export interface StreamingCommand {
  stdin: Writable;
  stdout: Readable;
  /** Resolves when the command exits: its exit code and the end of its stderr (bounded). */
  finished: Promise<{ exitCode: number; stderr: string }>;
  kill(): void;
}

/** The PostgreSQL client programs backup and restore run inside the postgresql component. */
export type PostgresqlTool = 'pg_dump' | 'pg_restore' | 'psql' | 'createdb' | 'dropdb';

export interface Target {
  readonly kind: 'local' | 'kubernetes';
  /** One phrase for messages: `the local stack in /var/lib/x`, `release mxstack in namespace matrix`. */
  readonly description: string;
  /** The compiled stack this target runs (secret names, server name, components enabled). */
  readonly stack: Stack;
  /** Files inside components that operations read (paths as the component sees them). */
  readonly files: {
    /** The configuration coturn runs with, secret lines included. */
    coturnConfig: string;
  };

  /**
   * Runs `use` with a base URL (trailing slash) reaching Synapse's own HTTP listener (client and admin
   * API, not through the router). Kubernetes opens a port-forward for the call and closes it after.
   */
  withSynapse<T>(use: (baseUrl: string) => Promise<T>): Promise<T>;
  /**
   * Runs `use` with a base URL (trailing slash) reaching the auth component's administration API
   * (auth.adminPort). Refused with a TargetUsageError when the stack has no auth component.
   */
  withAuth<T>(use: (adminBaseUrl: string) => Promise<T>): Promise<T>;

  /** A stored secret value, undefined when the Secret or the key does not exist. */
  readSecret(ref: SecretKeyRef): Promise<string | undefined>;
  /** Creates or replaces one key (other keys of the same Secret are kept). */
  writeSecret(ref: SecretKeyRef, value: string): Promise<void>;
  /** Every stored key of these Secrets (missing Secrets are left out). */
  listSecrets(names: readonly string[]): Promise<StoredSecretKey[]>;

  /** Runs a program inside a running component (local: in its runtime as its user; Kubernetes: kubectl exec). */
  exec(component: ComponentName, argv: readonly string[], options?: ExecOptions): Promise<CommandResult>;
  /** Like `exec`, with stdin and stdout as streams (nothing is buffered in memory). */
  spawn(component: ComponentName, argv: readonly string[], options?: { user?: string }): StreamingCommand;
  /**
   * The argv prefix of a PostgreSQL client program run in the postgresql component as the database's
   * superuser over the local socket (locally the runtime's /usr/lib/postgresql/<major>/bin and the stack's
   * port; on Kubernetes the image's programs as POSTGRES_USER).
   */
  postgresqlTool(tool: PostgresqlTool): string[];
  /** Whether the component runs now (false when it is disabled or stopped). */
  isRunning(component: ComponentName): Promise<boolean>;
  /** Stops a component and keeps it stopped until `start` (local: `up` again; Kubernetes: scale to 0). */
  stop(component: ComponentName): Promise<void>;
  start(component: ComponentName): Promise<void>;
  /**
   * Makes the components read the stored secrets again: regenerates the files built from them (Synapse's
   * secret files, coturn's configuration) and restarts the components, then waits until they are healthy.
   */
  applySecrets(components: readonly ComponentName[]): Promise<void>;
}

/** A problem the user can fix, found by a target (exit 2). */
export class TargetUsageError extends Error {}

/** Wraps a spawned process (stdio all pipes) as a StreamingCommand; only the last 64 KiB of stderr are kept. */
export function streamingCommand(child: import('node:child_process').ChildProcessWithoutNullStreams): StreamingCommand {
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString('utf8')).slice(-65_536);
  });
  // A command may exit before reading all of stdin: the exit code tells the story, not EPIPE.
  child.stdin.on('error', () => undefined);
  const finished = new Promise<{ exitCode: number; stderr: string }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ exitCode: signal ? 128 + 9 : code ?? 1, stderr }));
  });
  return { stdin: child.stdin, stdout: child.stdout, finished, kill: () => void child.kill('SIGKILL') };
}
