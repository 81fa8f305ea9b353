/** Health checks of the local components: HTTP GET, TCP connect, pg_isready inside the runtime. */
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import type { HealthCheck } from '../../kit/local-process.js';
import type { RuntimeUser } from '../../kit/local-process.js';

export async function httpOk(url: string, timeoutMs = 3000): Promise<boolean> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    await response.arrayBuffer();
    return response.status === 200;
  } catch {
    return false;
  }
}

export function tcpOpen(host: string, port: number, timeoutMs = 3000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (open: boolean) => {
      socket.destroy();
      resolve(open);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** `chroot --userspec` arguments running a program of the runtime as one of its users. */
export function chrootArguments(rootfs: string, user: RuntimeUser, argv: string[]): string[] {
  return [`--userspec=${user.uid}:${user.gid}`, `--groups=${user.gid}`, rootfs, ...argv];
}

/** The environment programs get inside the runtime: nothing of the caller's, so runs are reproducible. */
export function runtimeEnvironment(user: RuntimeUser): NodeJS.ProcessEnv {
  return { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOME: user.home, LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8' };
}

/**
 * `setpriv` arguments running a program of this machine as `user` (its own group only, no privilege it could
 * regain). The parent-death signal is set in the same call, after the user switch (which would clear it).
 */
export function hostProcessArguments(user: RuntimeUser, parentDeathSignal: NodeJS.Signals, argv: string[]): string[] {
  return [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', '--no-new-privs', '--pdeathsig', parentDeathSignal, '--', ...argv];
}

/** The environment of a host component: nothing of the caller's (no secret can travel in it). */
export function hostEnvironment(user: RuntimeUser, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...runtimeEnvironment(user), NODE_ENV: 'production', ...extra };
}

export function pgIsReady(rootfs: string, user: RuntimeUser, binDir: string, host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn('chroot', chrootArguments(rootfs, user, [`${binDir}/pg_isready`, '-q', '-h', host, '-p', String(port)]), {
      stdio: 'ignore',
      env: runtimeEnvironment(user),
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.on('error', () => resolve(false));
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve(code === 0);
    });
  });
}

/** One health check. pg_isready runs inside the runtime (only the supervisor, which has it mounted). */
export function checkHealth(check: HealthCheck, runtime?: { rootfs: string; user: RuntimeUser }): Promise<boolean> {
  switch (check.kind) {
    case 'http':
      return httpOk(check.url);
    case 'tcp':
      return tcpOpen(check.host, check.port);
    case 'pg_isready':
      return runtime ? pgIsReady(runtime.rootfs, runtime.user, check.binDir, check.host, check.port) : tcpOpen(check.host, check.port);
  }
}
