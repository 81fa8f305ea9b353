/**
 * The Target interface: everything the operations (`secrets`, `users`, `rooms`, `registration-tokens`,
 * and later `backup`, `restore`, `doctor`) need from where the stack runs. The local target implements it
 * with files and processes (src/targets/local/target-adapter.ts), Kubernetes with kubectl
 * (src/targets/kubernetes/target-adapter.ts). Operations are written once against it.
 *
 * Secret values cross this interface as return values and arguments only: an implementation never logs
 * them, never puts them on a command line and never includes them in an error message.
 */
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

  /** A stored secret value, undefined when the Secret or the key does not exist. */
  readSecret(ref: SecretKeyRef): Promise<string | undefined>;
  /** Creates or replaces one key (other keys of the same Secret are kept). */
  writeSecret(ref: SecretKeyRef, value: string): Promise<void>;
  /** Every stored key of these Secrets (missing Secrets are left out). */
  listSecrets(names: readonly string[]): Promise<StoredSecretKey[]>;

  /** Runs a program inside a running component (local: in its runtime as its user; Kubernetes: kubectl exec). */
  exec(component: ComponentName, argv: readonly string[], options?: ExecOptions): Promise<CommandResult>;
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
