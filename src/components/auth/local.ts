/**
 * The auth service on the local target. The runtime has no Node, so it runs on the HOST with the CLI's own
 * Node and sources (bin/mxstack-auth.js) as a user of its own, reading its config.json and secret files from
 * the state directory; after PostgreSQL (its database) and before Synapse, whose logins it serves.
 */
import { join } from 'node:path';
import { loopback, type HostProgram, type LocalProcess, type LocalProcessContext, type LocalProcessDirs, type RuntimeUser } from '../../kit/local-process.js';
import type { Stack } from '../../stack/model.js';
import { authConfigFile, authHealthPath } from './service-config.js';

/**
 * The uid and gid the local auth service runs as. Fixed, so that files it owns keep their owner from one `up`
 * to the next, and chosen where no one else is: above the 16-bit ids every distribution hands out (system
 * 0-999, people 1000-59999, Debian's global 60000-64999, reserved and nobody 65000-65535), below where useradd
 * allocates subordinate ids for containers (SUB_UID_MIN 100000); systemd documents 65536-524287 as unused.
 * Not root, not one of the runtime's users: the service can read its own secrets and nothing of Synapse or
 * PostgreSQL. `up` refuses to start when the host or the runtime gives this id to someone (authIdOwners).
 * Stacks on one machine share it, as they share the runtime's users.
 */
export const localAuthUser: RuntimeUser = { uid: 70000, gid: 70000, home: '/nonexistent' };

export const authConfigPath = (dirs: Pick<LocalProcessDirs, 'authConfigDir'>) => join(dirs.authConfigDir, authConfigFile);

/** `node <entry> --config <config.json> --secrets-dir <dir>`: paths only, never a secret. */
export function authArgv(dirs: Pick<LocalProcessDirs, 'authConfigDir' | 'authSecretsDir'>, program: HostProgram): string[] {
  return [program.node, program.entry, '--config', authConfigPath(dirs), '--secrets-dir', dirs.authSecretsDir];
}

export const authHealthUrl = (stack: Stack) => `http://${loopback}:${stack.placement.ports.auth}${authHealthPath}`;

export function authLocalProcess({ stack, dirs, hostProgram }: LocalProcessContext): LocalProcess | undefined {
  if (!stack.auth) return undefined;
  const { ports } = stack.placement;
  return {
    package: 'mxstack-auth',
    runsIn: 'host',
    user: localAuthUser,
    argv: authArgv(dirs, hostProgram),
    environment: { TMPDIR: dirs.authTmpDir },
    stopSignal: 'SIGTERM',
    health: { kind: 'http', url: authHealthUrl(stack) },
    startTimeoutSeconds: 120,
    ports: { http: ports.auth, admin: ports.authAdmin },
  };
}
