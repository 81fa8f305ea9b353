/** The mxstack command line: parsing and printing only; the work is in src/. */
import { Command, CommanderError } from 'commander';
import { ValuesError } from '../values/errors.js';
import { registerValuesCommands } from './values.js';
import { registerRenderCommand } from './render.js';
import { registerLocalCommands } from './local.js';
import { registerKubernetesCommands } from './kubernetes.js';
import { registerOpsCommands } from './ops.js';
import { registerBackupCommands } from './backup.js';
import { registerDoctorCommand } from './doctor.js';

/** A failure the user caused by how the command was called: exit 2. */
export class UsageError extends Error {}

/**
 * Ends the command with this exit status: `message` (when not empty) is printed as an error. For commands
 * whose status carries an answer, like `diff` (kubectl's convention: 0 no differences, 1 differences,
 * above 1 an error).
 */
export class ExitStatus extends Error {
  constructor(
    readonly status: number,
    message = '',
  ) {
    super(message);
  }
}

export function buildProgram(): Command {
  const program = new Command('mxstack')
    .description('A complete, secure Matrix deployment from one values file.')
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  registerValuesCommands(program);
  registerRenderCommand(program);
  registerLocalCommands(program);
  registerKubernetesCommands(program);
  registerOpsCommands(program);
  registerBackupCommands(program);
  registerDoctorCommand(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  program.commands.forEach((c) => c.exitOverride());
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (error) {
    return reportError(error);
  }
}

function reportError(error: unknown): number {
  if (error instanceof CommanderError) {
    if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.exitCode === 0) return 0;
    return 2;
  }
  if (error instanceof ValuesError) {
    for (const problem of error.problems) process.stderr.write(`error: ${problem}\n`);
    return 2;
  }
  if (error instanceof ExitStatus) {
    if (error.message) process.stderr.write(`error: ${error.message}\n`);
    return error.status;
  }
  if (error instanceof UsageError) {
    process.stderr.write(`error: ${error.message}\n`);
    return 2;
  }
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`error: ${message}\n`);
  if (process.env.MXSTACK_DEBUG && error instanceof Error) process.stderr.write(`${error.stack}\n`);
  return 1;
}
