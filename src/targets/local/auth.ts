/**
 * The auth component on the local target. The runtime has no Node, so the service runs on the HOST with the
 * CLI's own Node and sources (bin/mxstack-auth.js), started by the supervisor like the other components but
 * without chroot, under a uid/gid of its own. This module holds what that needs: the user, the argv, the
 * secret files, and the checks that this user can reach the program and the state directory.
 */
import { readFileSync, realpathSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { authSecretFiles } from '../../components/auth/service-config.js';
import { localAuthUser } from '../../components/auth/local.js';
import type { HostProgram, RuntimeUser } from '../../kit/local-process.js';
import { authSecretFileOfKey } from '../../components/auth/config.js';
import type { AuthSecrets } from '../../stack/model.js';
import type { StateLayout } from './state.js';

/** The mxstack installation this code runs from (the directory holding bin/ and src/). */
const mxstackInstallDir = resolve(fileURLToPath(new URL('../../..', import.meta.url)));

/** The service's entry point: registers tsx and runs src/auth-service/main.ts. */
export const authEntry = join(mxstackInstallDir, 'bin', 'mxstack-auth.js');

export const defaultHostProgram = (): HostProgram => ({ node: process.execPath, entry: authEntry });

/** The auth secrets a local stack keeps under <state>/secrets/<release>-auth/ (see AuthSecrets). */
export type LocalAuthSecretValues = Record<keyof AuthSecrets, string>;

/** The files of placement.paths.authSecretsDir: one secret each; the database password is the stack's role's. */
export function authSecretFileContents(auth: LocalAuthSecretValues, databasePassword: string): Record<string, string> {
  const files: Record<string, string> = { [authSecretFiles.databasePassword]: databasePassword };
  for (const [key, { file }] of Object.entries(authSecretFileOfKey) as [keyof typeof authSecretFileOfKey, { file: string }][]) files[file] = auth[key];
  return files;
}

/** Users and groups of a passwd or group file text that have the id `id` (third field). */
export function entriesWithId(text: string, id: number): string[] {
  return text
    .split('\n')
    .map((line) => line.split(':'))
    .filter((fields) => fields.length >= 3 && Number(fields[2]) === id && fields[2] !== '')
    .map((fields) => fields[0]!);
}

const readIfPresent = (path: string) => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
};

/**
 * Who already has the auth user's uid or gid, on this machine or in the runtime: `user NAME (uid 70000) in
 * /etc/passwd` lines; empty when the id is free.
 */
export function authIdOwners(rootfs: string, user: RuntimeUser = localAuthUser, read: (path: string) => string = readIfPresent): string[] {
  const owners: string[] = [];
  for (const [where, root] of [['this machine', '/'], ['the runtime', rootfs]] as const) {
    for (const name of entriesWithId(read(join(root, 'etc/passwd')), user.uid)) owners.push(`user ${name} (uid ${user.uid}) on ${where}`);
    for (const name of entriesWithId(read(join(root, 'etc/group')), user.gid)) owners.push(`group ${name} (gid ${user.gid}) on ${where}`);
  }
  return owners;
}

export type Access = 'read' | 'execute';

interface Mode {
  mode: number;
  uid: number;
  gid: number;
}

/** Whether `user` (its own group only: the service runs with --clear-groups) has `bit` (4 r, 2 w, 1 x) on a file. */
export function permits(stats: Mode, user: RuntimeUser, bit: number): boolean {
  if (user.uid === 0) return true;
  const shift = stats.uid === user.uid ? 6 : stats.gid === user.gid ? 3 : 0;
  return ((stats.mode >> shift) & bit) !== 0;
}

/**
 * The first path `user` cannot get through on the way to `path` (an ancestor it cannot traverse), or `path`
 * itself when it cannot read (or execute) it; undefined when it can. Missing paths count as reachable: they
 * are created traversable (the state directory) or reported by the program itself.
 */
export function unreachablePath(path: string, user: RuntimeUser, access: Access, stat: (path: string) => Mode = statSync): string | undefined {
  const target = resolve(path);
  const ancestors: string[] = [];
  for (let current = dirname(target); ; current = dirname(current)) {
    ancestors.unshift(current);
    if (dirname(current) === current) break;
  }
  const statOf = (p: string) => {
    try {
      return stat(p);
    } catch {
      return undefined;
    }
  };
  for (const ancestor of ancestors) {
    const stats = statOf(ancestor);
    if (stats && !permits(stats, user, 1)) return ancestor;
  }
  const stats = statOf(target);
  if (stats && !permits(stats, user, access === 'read' ? 4 : 1)) return target;
  return undefined;
}

const realpathOr = (path: string) => {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
};

/**
 * One sentence when the auth user cannot run the service from this installation (Node, the entry, the
 * sources and node_modules) or cannot enter the state directory; undefined when it can.
 */
export function authAccessProblem(layout: StateLayout, program: HostProgram, user: RuntimeUser = localAuthUser, stat?: (path: string) => Mode): string | undefined {
  const who = `uid ${user.uid} (the user the 2FA service, the auth component, runs as on this machine)`;
  const node = realpathOr(program.node);
  const closedNode = unreachablePath(node, user, 'execute', stat);
  if (closedNode) return `Node (${node}) cannot be run by ${who}: ${closedNode} is closed to it; use a Node installed where every user can run it (e.g. /usr/bin/node).`;
  const installDir = dirname(dirname(realpathOr(program.entry)));
  const installFiles = [
    program.entry,
    join(installDir, 'package.json'),
    join(installDir, 'src', 'auth-service', 'main.ts'),
    join(installDir, 'node_modules', 'tsx', 'package.json'),
    join(installDir, 'node_modules', 'oidc-provider', 'package.json'),
  ];
  for (const file of installFiles) {
    const closed = unreachablePath(realpathOr(file), user, 'read', stat);
    if (closed) return `mxstack is installed in ${installDir}, but ${who} cannot read ${closed}; install mxstack where every user can read it (e.g. /opt/mxstack) to turn 2FA on locally.`;
  }
  const closedState = unreachablePath(layout.root, user, 'execute', stat);
  if (closedState && closedState !== layout.root) {
    return `the state directory ${layout.root} is inside ${closedState}, which ${who} cannot enter; choose a --state-dir elsewhere (the default is /var/lib/mxstack/default).`;
  }
  return undefined;
}
