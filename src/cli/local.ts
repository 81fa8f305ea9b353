/** The local target's commands: `runtime setup|info`, `up`, `down`, `status`, `logs` (and the hidden `supervise`). */
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { Command, Option } from 'commander';
import { UsageError } from './main.js';
import { addValuesOptions, stackInputFromOptions, type ValuesOptions } from './options.js';
import { addKubernetesStatusOptions, printKubernetesStatus } from './kubernetes.js';
import { defaultStateDir, stateLayout } from '../targets/local/state.js';
import { localStackStatus, stackComponentNames, type LocalStackStatus } from '../targets/local/status.js';
import { componentNames } from '../stack/model.js';

// The target's modules are imported by the command that uses them: `--help` and `status` load none of the
// values, compiler or supervisor code (see src/cli/main.ts).
const lifecycle = () => import('../targets/local/lifecycle.js');
const runtimeModule = () => import('../targets/local/runtime.js');

const progress = (line: string) => process.stderr.write(`${line}\n`);

/** Errors the user fixes become UsageError (exit 2). */
async function asUsage<T>(action: () => Promise<T> | T): Promise<T> {
  try {
    return await action();
  } catch (error) {
    const [{ LocalStackUsageError }, { MissingSecretError }, { RuntimeSetupError }] = await Promise.all([lifecycle(), import('../targets/local/secrets.js'), runtimeModule()]);
    if (error instanceof LocalStackUsageError || error instanceof MissingSecretError || error instanceof RuntimeSetupError) throw new UsageError(error.message);
    throw error;
  }
}

const stateDirOption = () => new Option('--state-dir <dir>', 'state directory of the stack').default(defaultStateDir(), '/var/lib/mxstack/default, or $MXSTACK_STATE_DIR');
const outputOption = () => new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text');

function registerRuntimeCommands(program: Command): void {
  const runtime = program.command('runtime').description('the runtime root filesystem holding the real programs (Debian sid)');
  runtime
    .command('setup')
    .description('build the runtime with mmdebstrap (about 600 MB, about two minutes), or reuse it when present')
    .action(() =>
      asUsage(async () => {
        const [{ requireRoot }, { setupRuntime }] = await Promise.all([lifecycle(), runtimeModule()]);
        requireRoot('runtime setup');
        const result = await setupRuntime((line) => progress(line));
        process.stdout.write(`${result.dir}\n`);
      }),
    );
  runtime
    .command('info')
    .description('the runtime directory and the component versions inside it')
    .addOption(outputOption())
    .action((options: { output: string }) =>
      asUsage(async () => {
        const [{ requireRoot, LocalStackUsageError }, { runtimeDir, runtimeIsPresent, runtimeVersions }] = await Promise.all([lifecycle(), runtimeModule()]);
        const dir = runtimeDir();
        const present = runtimeIsPresent(dir);
        if (present) requireRoot('runtime info');
        const packages = present ? runtimeVersions(dir) : [];
        if (options.output === 'json') {
          process.stdout.write(`${JSON.stringify({ dir, present, packages }, null, 2)}\n`);
          return;
        }
        if (!present) throw new LocalStackUsageError(`the runtime root filesystem is missing (${dir}); build it with \`mxstack runtime setup\`.`);
        process.stdout.write(`runtime: ${dir}\n`);
        for (const p of packages) process.stdout.write(`${p.package.padEnd(16)} ${p.version}\n`);
      }),
    );
}

function printStatus(status: LocalStackStatus): void {
  const lines = [`stack: ${status.stateDir} (${status.serverName ?? 'never started'})`];
  lines.push(status.running ? `supervisor: pid ${status.supervisorPid}, ${status.phase}${status.healthy ? ', healthy' : ''}` : 'not running');
  const width = Math.max(11, ...Object.keys(status.components).map((name) => name.length));
  for (const [name, c] of Object.entries(status.components)) {
    const ports = Object.entries(c.ports)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
    lines.push(
      `  ${name.padEnd(width)} ${c.state.padEnd(10)} ${c.healthy ? 'healthy  ' : 'unhealthy'} pid ${String(c.pid ?? '-').padEnd(8)} restarts ${c.restarts}  ${c.version ?? ''}  (${ports})`,
    );
  }
  if (status.endpoints) {
    lines.push(`client URL:     ${status.endpoints.client}`, `well-known URL: ${status.endpoints.wellKnown}.well-known/matrix/client`);
    if (status.endpoints.turn.length > 0) lines.push(`TURN:           ${status.endpoints.turn.join(' ')}`);
    if (status.endpoints.auth) lines.push(`2FA sign-in:    ${status.endpoints.auth} (account page: ${status.endpoints.auth}account)`);
    lines.push(`metrics:        ${status.endpoints.metrics.join(' ')}`);
  }
  if (status.adminCredentialsFile) lines.push(`admin credentials: ${status.adminCredentialsFile}`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

/** Prints a log file and, with follow, what is appended to it until interrupted. */
async function showLog(path: string, follow: boolean): Promise<void> {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    const { LocalStackUsageError } = await lifecycle();
    throw new LocalStackUsageError(`no log at ${path} yet: the component has not been started in this state directory.`);
  }
  let position = 0;
  const buffer = Buffer.alloc(64 * 1024);
  const drain = () => {
    for (;;) {
      const read = readSync(fd, buffer, 0, buffer.length, position);
      if (read <= 0) return;
      position += read;
      process.stdout.write(buffer.subarray(0, read));
    }
  };
  drain();
  if (!follow) {
    closeSync(fd);
    return;
  }
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      if (statSync(path).size < position) position = 0;
      drain();
    }, 500);
    process.once('SIGINT', () => {
      clearInterval(timer);
      closeSync(fd);
      resolve();
    });
  });
}

export function registerLocalCommands(program: Command): void {
  registerRuntimeCommands(program);

  addValuesOptions(program.command('up').description('run the stack on this machine with the real programs; returns when healthy'))
    .addOption(stateDirOption())
    .action((options: ValuesOptions & { stateDir: string }) =>
      asUsage(async () => {
        const { upLocalStack } = await lifecycle();
        const result = await upLocalStack({ stateDir: options.stateDir, input: await stackInputFromOptions(options), progress });
        const { endpoints } = result.plan;
        const lines = [`client URL:     ${endpoints.client}`, `well-known URL: ${endpoints.wellKnown}.well-known/matrix/client`];
        if (endpoints.auth) lines.push(`2FA sign-in:    ${endpoints.auth} (account page: ${endpoints.auth}account)`);
        if (result.adminCredentialsFile) lines.push(`admin credentials (${result.adminUserId}): ${result.adminCredentialsFile}`);
        if (result.stack.elementUrl) lines.push(`Element Web:    ${result.stack.elementUrl}`);
        else if (result.elementNotice) lines.push(result.elementNotice);
        process.stdout.write(`${lines.join('\n')}\n`);
      }),
    );

  program
    .command('down')
    .description('stop the stack (data, ports and secrets are kept for the next `up`)')
    .addOption(stateDirOption())
    .action((options: { stateDir: string }) =>
      asUsage(async () => {
        const { downLocalStack } = await lifecycle();
        await downLocalStack(options.stateDir, progress);
      }),
    );

  addKubernetesStatusOptions(program.command('status'))
    .description('components of the local stack: pid, ports, health, version, restarts; endpoints (--kubernetes: the release on a cluster)')
    .addOption(stateDirOption())
    .addOption(outputOption())
    .action((options: { stateDir: string; output: string; kubernetes?: boolean }) =>
      options.kubernetes ? printKubernetesStatus(options) : asUsage(async () => {
        const status = await localStackStatus(options.stateDir);
        if (options.output === 'json') process.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
        else printStatus(status);
      }),
    );

  program
    .command('logs')
    .description('the log of one component of the local stack')
    .argument('<component>', `one of ${[...componentNames, 'supervisor'].join(', ')}, or a worker (synapse-<worker>, see status)`)
    .option('-f, --follow', 'keep printing what is appended')
    .addOption(stateDirOption())
    .action((component: string, options: { stateDir: string; follow?: boolean }) =>
      asUsage(async () => {
        const { LocalStackUsageError } = await lifecycle();
        const names: string[] = [...stackComponentNames(options.stateDir), 'supervisor'];
        if (!names.includes(component)) throw new LocalStackUsageError(`unknown component ${component}; choose one of ${names.join(', ')}.`);
        await showLog(stateLayout(options.stateDir).logFile(component), options.follow ?? false);
      }),
    );

  program
    .command('supervise', { hidden: true })
    .description('internal: the supervisor process started by `up`')
    .requiredOption('--state-dir <dir>')
    .action(async (options: { stateDir: string }) => {
      // Exits explicitly: the supervisor's timers must not keep it alive once everything stopped.
      const { runSupervisor } = await import('../targets/local/supervisor.js');
      process.exit(await runSupervisor(options.stateDir));
    });
}
