/**
 * A STOCK Synapse for comparison: the config `python3 -m synapse.app.homeserver --generate-config` writes,
 * changed only where it must be to run here (its database points at a PostgreSQL from the same runtime,
 * its listener at a free loopback port). Rate limits, caches and everything else stay upstream defaults.
 *
 * Programs run from the runtime root filesystem inside a private mount namespace (`unshare -m`), so the
 * /dev and /proc mounts they need vanish with them and never touch the host or other stacks.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chownSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { createHmac } from 'node:crypto';
import { parse, stringify } from 'yaml';
import { GiveUp, waitUntil } from '../test/support/matrix-client.js';

export interface StockSynapse {
  /** Synapse's own listener (client, federation and admin APIs). */
  baseUrl: string;
  serverName: string;
  /** Registers a user with the generated registration_shared_secret; returns the user id. */
  registerAdmin(localpart: string, password: string): Promise<string>;
  /** The process id of each program's outermost process (its namespace wrapper), for CPU accounting. */
  processRoots(): Record<string, number>;
  stop(): Promise<void>;
}

interface RuntimeUserIds {
  uid: number;
  gid: number;
}

function runtimeUserIds(runtimeDir: string, name: string): RuntimeUserIds {
  for (const line of readFileSync(join(runtimeDir, 'etc/passwd'), 'utf8').split('\n')) {
    const fields = line.split(':');
    if (fields[0] === name) return { uid: Number(fields[2]), gid: Number(fields[3]) };
  }
  throw new Error(`user ${name} does not exist in the runtime at ${runtimeDir}`);
}

export async function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts `command` inside the runtime as `user`, with /dev and /proc mounted in a private namespace, in
 * the directory `insideCwd` (Synapse resolves relative paths of its generated config against it).
 */
function spawnInRuntime(runtimeDir: string, user: RuntimeUserIds, command: string[], logFile: string, insideCwd = '/tmp'): ChildProcess {
  const script = 'mount --rbind /dev "$1/dev" && mount -t proc proc "$1/proc" && root="$1" && spec="$2" && shift 2 && exec chroot --userspec="$spec" "$root" "$@"';
  const child = spawn(
    'unshare',
    ['--mount', '--propagation', 'private', '--', 'sh', '-c', script, 'sh', runtimeDir, `${user.uid}:${user.gid}`, ...['env', `--chdir=${insideCwd}`, ...command]],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const chunks: Buffer[] = [];
  child.stdout?.on('data', (chunk: Buffer) => chunks.push(chunk));
  child.stderr?.on('data', (chunk: Buffer) => chunks.push(chunk));
  child.on('exit', () => writeFileSync(logFile, Buffer.concat(chunks)));
  return child;
}

async function runInRuntime(runtimeDir: string, user: RuntimeUserIds, command: string[], logFile: string, insideCwd?: string): Promise<void> {
  const timeoutMs = 120_000;
  const child = spawnInRuntime(runtimeDir, user, command, logFile, insideCwd);
  const code = await new Promise<number | null>((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (exitCode) => {
      clearTimeout(timer);
      resolve(exitCode);
    });
  });
  if (code !== 0) throw new Error(`${command[0]} exited with ${code} (log: ${logFile})`);
}

async function stopProcess(child: ChildProcess, timeoutMs = 20_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  await exited;
  clearTimeout(timer);
}

function registrationMac(secret: string, nonce: string, username: string, password: string): string {
  return createHmac('sha1', secret).update(`${nonce}\0${username}\0${password}\0admin`).digest('hex');
}

/** `postgresqlBin` is the runtime's PostgreSQL bin directory as seen inside the chroot. */
export async function startStockSynapse(runtimeDir: string, postgresqlBin: string): Promise<StockSynapse> {
  const name = `mxstack-bench-stock-${process.pid}`;
  const insideDir = `/tmp/${name}`;
  const hostDir = join(runtimeDir, 'tmp', name);
  const postgres = runtimeUserIds(runtimeDir, 'postgres');
  const synapse = runtimeUserIds(runtimeDir, 'matrix-synapse');
  const pgBin = postgresqlBin;
  const serverName = 'stock.bench.test';

  rmSync(hostDir, { recursive: true, force: true });
  for (const [dir, owner] of [['', postgres], ['pg', postgres], ['pgsock', postgres], ['synapse', synapse]] as const) {
    mkdirSync(join(hostDir, dir), { recursive: true });
    chownSync(join(hostDir, dir), owner.uid, owner.gid);
  }
  const children: ChildProcess[] = [];
  const stop = async () => {
    for (const child of [...children].reverse()) await stopProcess(child);
    rmSync(hostDir, { recursive: true, force: true });
  };

  try {
    const pgPort = await freeLoopbackPort();
    await runInRuntime(runtimeDir, postgres, [`${pgBin}/initdb`, '-D', `${insideDir}/pg`, '-U', 'postgres', '--encoding=UTF8', '--locale=C', '--auth=trust'], join(hostDir, 'initdb.log'));
    children.push(
      spawnInRuntime(runtimeDir, postgres, [`${pgBin}/postgres`, '-D', `${insideDir}/pg`, '-h', '127.0.0.1', '-p', String(pgPort), '-k', `${insideDir}/pgsock`], join(hostDir, 'postgres.log')),
    );
    const psql = (sql: string) =>
      runInRuntime(runtimeDir, postgres, ['psql', '-h', '127.0.0.1', '-p', String(pgPort), '-U', 'postgres', '-v', 'ON_ERROR_STOP=1', '-c', sql], join(hostDir, 'psql.log'));
    await waitUntil('stock PostgreSQL to accept connections', 30_000, async () => ((await psql('SELECT 1').then(() => true)) ? true : undefined));
    await psql('CREATE ROLE synapse LOGIN');
    await psql("CREATE DATABASE synapse OWNER synapse ENCODING 'UTF8' LOCALE 'C' TEMPLATE template0");

    await runInRuntime(
      runtimeDir,
      synapse,
      ['python3', '-m', 'synapse.app.homeserver', '--server-name', serverName, '--config-path', `${insideDir}/synapse/homeserver.yaml`, '--generate-config', '--report-stats=no', '--data-directory', `${insideDir}/synapse`],
      join(hostDir, 'generate.log'),
      `${insideDir}/synapse`,
    );
    const configFile = join(hostDir, 'synapse/homeserver.yaml');
    const config = parse(readFileSync(configFile, 'utf8')) as Record<string, unknown> & {
      listeners: Array<Record<string, unknown>>;
      registration_shared_secret: string;
    };
    const synapsePort = await freeLoopbackPort();
    config.listeners = config.listeners.map((listener) => ({ ...listener, port: synapsePort, bind_addresses: ['127.0.0.1'] }));
    config.database = {
      name: 'psycopg2',
      args: { user: 'synapse', dbname: 'synapse', host: '127.0.0.1', port: pgPort, cp_min: 5, cp_max: 10 },
    };
    writeFileSync(configFile, stringify(config));

    children.push(
      spawnInRuntime(runtimeDir, synapse, ['python3', '-m', 'synapse.app.homeserver', '--config-path', `${insideDir}/synapse/homeserver.yaml`], join(hostDir, 'synapse.log'), `${insideDir}/synapse`),
    );
    const synapseProcess = children.at(-1)!;
    const baseUrl = `http://127.0.0.1:${synapsePort}`;
    await waitUntil('stock Synapse /health', 120_000, async () => {
      if (synapseProcess.exitCode !== null) throw new GiveUp(`Synapse exited with ${synapseProcess.exitCode}`);
      return (await fetch(`${baseUrl}/health`)).ok ? true : undefined;
    }, 1000);

    const registerAdmin = async (localpart: string, password: string): Promise<string> => {
      const url = `${baseUrl}/_synapse/admin/v1/register`;
      const { nonce } = (await (await fetch(url, { signal: AbortSignal.timeout(30_000) })).json()) as { nonce: string };
      const mac = registrationMac(config.registration_shared_secret, nonce, localpart, password);
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ nonce, username: localpart, password, admin: true, mac }),
        signal: AbortSignal.timeout(60_000),
      });
      const answer = (await response.json()) as { user_id?: string; errcode?: string };
      if (!response.ok || !answer.user_id) throw new Error(`stock admin registration answered ${response.status} ${answer.errcode ?? ''}`);
      return answer.user_id;
    };
    const [postgresProcess] = children;
    const processRoots = () => Object.fromEntries(([['postgresql', postgresProcess?.pid], ['synapse', synapseProcess.pid]] as const).flatMap(([name, pid]) => (pid !== undefined ? [[name, pid]] : [])));
    return { baseUrl, serverName, registerAdmin, processRoots, stop };
  } catch (error) {
    for (const child of [...children].reverse()) await stopProcess(child);
    throw new Error(`stock Synapse did not start (logs kept in ${hostDir}): ${(error as Error).message}`);
  }
}
