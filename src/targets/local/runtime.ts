/**
 * The runtime root filesystem: a Debian sid tree holding the real programs (Synapse, PostgreSQL, coturn,
 * HAProxy), built once with mmdebstrap and cached outside the work tree, keyed by what it contains.
 */
import type { RuntimeUser } from '../../kit/local-process.js';
import { createHash } from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

export const runtimeSuite = 'sid';
export const runtimePackages = ['matrix-synapse', 'python3-authlib', 'python3-hiredis', 'coturn', 'postgresql', 'redis-server', 'haproxy', 'nginx', 'ca-certificates'] as const;

/** Debian's name for the machine architecture. */
export function debianArchitecture(nodeArch: string = process.arch): string {
  const names: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'armhf', ia32: 'i386', ppc64: 'ppc64el', s390x: 's390x', riscv64: 'riscv64' };
  return names[nodeArch] ?? nodeArch;
}

/** Short sha256 of suite + package list + architecture: a different package set is a different runtime. */
export function runtimeKey(suite: string = runtimeSuite, packages: readonly string[] = runtimePackages, arch: string = debianArchitecture()): string {
  return createHash('sha256').update(`${suite}\n${[...packages].join(',')}\n${arch}`).digest('hex').slice(0, 12);
}

export function mxstackCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.XDG_CACHE_HOME || join(env.HOME || homedir(), '.cache'), 'mxstack');
}

export function runtimeDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(mxstackCacheDir(env), `runtime-${runtimeKey()}`);
}

/** A finished runtime: the build renames the directory into place only once mmdebstrap succeeded. */
export function runtimeIsPresent(dir: string = runtimeDir()): boolean {
  return existsSync(join(dir, 'usr/bin/python3')) && existsSync(join(dir, 'var/lib/dpkg/status'));
}

/** The mirror URI of the host's apt configuration (deb822 `URIs:` first, then the one-line format). */
export function hostMirrorFrom(debianSources: string | undefined, sourcesList: string | undefined): string | undefined {
  for (const line of (debianSources ?? '').split('\n')) {
    const match = /^URIs:\s*(\S+)/i.exec(line.trim());
    if (match) return match[1];
  }
  for (const line of (sourcesList ?? '').split('\n')) {
    // deb [options] URI suite components
    const match = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)/.exec(line.trim());
    if (match) return match[1];
  }
  return undefined;
}

/** Every Acquire::Check-Valid-Until / Check-Date setting of the host, as `Name "value"` apt options. */
export function hostAptOptionsFrom(confFiles: string[]): string[] {
  const options: string[] = [];
  for (const text of confFiles) {
    for (const match of text.matchAll(/(Acquire::Check-(?:Valid-Until|Date))\s+("[^"]*"|\S+?)\s*;/g)) {
      const option = `${match[1]} ${match[2]}`;
      if (!options.includes(option)) options.push(option);
    }
  }
  return options;
}

const readIfPresent = (path: string): string | undefined => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
};

export function hostMirror(): string | undefined {
  return hostMirrorFrom(readIfPresent('/etc/apt/sources.list.d/debian.sources'), readIfPresent('/etc/apt/sources.list'));
}

export function hostAptOptions(confDir = '/etc/apt/apt.conf.d'): string[] {
  let names: string[] = [];
  try {
    names = readdirSync(confDir).sort();
  } catch {
    return [];
  }
  return hostAptOptionsFrom(names.map((name) => readIfPresent(join(confDir, name)) ?? ''));
}

export function mmdebstrapArguments(target: string, mirror: string, aptOptions: string[]): string[] {
  return [
    '--variant=apt',
    `--include=${runtimePackages.join(',')}`,
    ...aptOptions.map((option) => `--aptopt=${option}`),
    runtimeSuite,
    target,
    mirror,
  ];
}

/** A setup problem the user fixes on the host (apt configuration, installing mmdebstrap). */
export class RuntimeSetupError extends Error {}

type Progress = (line: string) => void;

/**
 * mmdebstrap's line saying apt downloads as root: expected, because the build directory is in root's cache,
 * which apt's _apt user cannot enter. The one line of its output a user need not see; the rest stays.
 */
export const mmdebstrapLineShown = (line: string): boolean => !/^W: Download is performed unsandboxed as root as file .* couldn't be accessed by user _apt$/.test(line);

/**
 * Runs a command, passing each output line (stdout and stderr) that `shown` keeps to progress; resolves
 * with its exit code.
 */
export function runWithProgress(command: string, args: string[], progress: Progress, prefix: string, shown: (line: string) => boolean = () => true): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream }).on('line', (line) => {
        if (shown(line)) progress(`${prefix}${line}`);
      });
    }
    child.on('error', (error) => {
      progress(`${prefix}${error.message}`);
      resolve(127);
    });
    child.on('close', (code) => resolve(code ?? 1));
  });
}

const commandExists = (name: string): boolean => spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;

async function ensureMmdebstrap(progress: Progress): Promise<void> {
  if (commandExists('mmdebstrap')) return;
  progress('mmdebstrap is not installed: installing it with apt-get');
  const install = () => runWithProgress('apt-get', ['install', '-y', '--no-install-recommends', 'mmdebstrap'], progress, '[apt-get] ');
  if ((await install()) === 0 && commandExists('mmdebstrap')) return;
  progress('apt-get install failed: refreshing the package lists and trying again');
  await runWithProgress('apt-get', ['update'], progress, '[apt-get] ');
  if ((await install()) === 0 && commandExists('mmdebstrap')) return;
  throw new RuntimeSetupError('could not install mmdebstrap with apt-get (see the apt-get lines above); install it yourself and run `mxstack runtime setup` again.');
}

/** Pids of the processes building this runtime now (their `.building-<pid>` directories). */
function runningBuilds(cacheDir: string, finalName: string): number[] {
  let names: string[] = [];
  try {
    names = readdirSync(cacheDir);
  } catch {
    return [];
  }
  const pids: number[] = [];
  for (const name of names) {
    const match = new RegExp(`^${finalName}\\.building-(\\d+)$`).exec(name);
    if (!match) continue;
    const pid = Number(match[1]);
    // A build whose process is gone was interrupted: its directory is removed.
    if (processIsAlive(pid) && pid !== process.pid) pids.push(pid);
    else rmSync(join(cacheDir, name), { recursive: true, force: true });
  }
  return pids;
}

const buildWaitMs = 30 * 60_000;

/** Waits for another process's build of the same runtime, so two setups never build it twice at once. */
async function waitForOtherBuilds(cacheDir: string, finalName: string, progress: Progress): Promise<void> {
  const deadline = Date.now() + buildWaitMs;
  let reported = false;
  for (let pids = runningBuilds(cacheDir, finalName); pids.length > 0; pids = runningBuilds(cacheDir, finalName)) {
    if (Date.now() > deadline) throw new Error(`process ${pids.join(', ')} has been building the runtime for over 30 minutes; stop it or wait.`);
    if (!reported) progress(`waiting for the runtime build of process ${pids.join(', ')} to finish`);
    reported = true;
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

export function processIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface SetupResult {
  dir: string;
  reused: boolean;
}

/** Builds the runtime root filesystem, or reuses it when present. Root only. */
export async function setupRuntime(progress: Progress): Promise<SetupResult> {
  const dir = runtimeDir();
  if (runtimeIsPresent(dir)) {
    progress(`reusing the runtime at ${dir}`);
    return { dir, reused: true };
  }
  const mirror = hostMirror();
  if (!mirror) {
    throw new RuntimeSetupError('no Debian mirror found in /etc/apt/sources.list.d/debian.sources (URIs:) or /etc/apt/sources.list (deb line); configure apt first.');
  }
  await ensureMmdebstrap(progress);
  const cacheDir = mxstackCacheDir();
  mkdirSync(cacheDir, { recursive: true });
  const finalName = `runtime-${runtimeKey()}`;
  await waitForOtherBuilds(cacheDir, finalName, progress);
  if (runtimeIsPresent(dir)) {
    progress(`reusing the runtime at ${dir}, just built by another process`);
    return { dir, reused: true };
  }
  // Built beside its final place and renamed when complete, so an interrupted build never looks finished.
  const building = join(cacheDir, `${finalName}.building-${process.pid}`);
  rmSync(building, { recursive: true, force: true });
  progress(`building the runtime (Debian ${runtimeSuite}: ${runtimePackages.join(', ')}) into ${dir}; this takes about two minutes`);
  const removeBuild = () => rmSync(building, { recursive: true, force: true });
  const code = await runWithProgress('mmdebstrap', mmdebstrapArguments(building, mirror, hostAptOptions()), progress, '[mmdebstrap] ', mmdebstrapLineShown);
  if (code !== 0 || !runtimeIsPresent(building)) {
    removeBuild();
    throw new Error(`mmdebstrap failed (exit code ${code}); see its lines above.`);
  }
  try {
    renameSync(building, dir);
  } catch (error) {
    // Another setup finished first: keep its runtime.
    removeBuild();
    if (!runtimeIsPresent(dir)) throw error;
  }
  progress(`runtime ready at ${dir}`);
  return { dir, reused: false };
}

export interface RuntimePackageVersion {
  package: string;
  version: string;
}

/** Versions of the component packages inside the runtime (dpkg-query in the chroot). */
export function runtimeVersions(dir: string = runtimeDir()): RuntimePackageVersion[] {
  const packages = [...runtimePackages.filter((p) => p !== 'ca-certificates'), `postgresql-${postgresqlMajor(dir)}`, 'python3'];
  const result = spawnSync('chroot', [dir, 'dpkg-query', '-W', '-f=${Package}\\t${Version}\\n', ...packages], {
    encoding: 'utf8',
  });
  if (result.status !== 0) throw new Error(`dpkg-query in the runtime failed: ${result.stderr.trim()}`);
  return result.stdout
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [pkg, version] = line.split('\t');
      return { package: pkg!, version: version ?? '' };
    });
}

/** Major version of the newest PostgreSQL in the runtime. */
export function postgresqlMajor(dir: string): number {
  const majors = readdirSync(join(dir, 'usr/lib/postgresql'))
    .filter((name) => /^\d+$/.test(name))
    .map(Number)
    .sort((a, b) => b - a);
  if (majors.length === 0) throw new Error(`no PostgreSQL in the runtime at ${dir}`);
  return majors[0]!;
}

/** /usr/lib/postgresql/<major>/bin of the newest PostgreSQL in the runtime (inside-the-chroot path). */
export function postgresqlBinDir(dir: string): string {
  return `/usr/lib/postgresql/${postgresqlMajor(dir)}/bin`;
}


/** A user of the runtime's own /etc/passwd (the Debian packages create postgres, matrix-synapse, turnserver). */
export function runtimeUser(dir: string, name: string): RuntimeUser {
  const passwd = readFileSync(join(dir, 'etc/passwd'), 'utf8');
  for (const line of passwd.split('\n')) {
    const fields = line.split(':');
    if (fields[0] === name) return { uid: Number(fields[2]), gid: Number(fields[3]), home: fields[5] || '/' };
  }
  throw new Error(`user ${name} does not exist in the runtime at ${dir}`);
}
