/**
 * `mxstack backup [--output FILE] [--include-secrets --passphrase-file F]`, `mxstack backup verify FILE`,
 * `mxstack backup secrets FILE --passphrase-file F --output-file OUT`, `mxstack restore FILE --yes`:
 * parsing and printing only; the work is in src/ops/backup/.
 */
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { UsageError } from './main.js';
import { addTargetOptions, allOptions, confirm, openTarget, run, type TargetOptions } from './ops.js';
import { createBackup } from '../ops/backup/backup.js';
import { checkBackupArchiveFile, NotAnArchiveError, verifyArchive } from '../ops/backup/archive-reader.js';
import { restoreBackup, pauseEnvironmentVariable } from '../ops/backup/restore.js';
import { ArchiveIntegrityError, ArchiveMismatchError } from '../ops/backup/manifest.js';
import { decryptSecrets, SecretsDecryptError } from '../ops/backup/secrets-crypto.js';
import { megabytes } from '../ops/backup/progress.js';

const progress = (line: string) => process.stderr.write(`${line}\n`);
const print = (text: string) => void process.stdout.write(`${text}\n`);

/** The passphrase: the file's first line, never the command line. */
function readPassphraseFile(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read the passphrase file ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'}).`);
  }
  const passphrase = text.replace(/\r?\n.*$/s, '');
  if (passphrase.length < 12) throw new UsageError(`the passphrase in ${file} is shorter than 12 characters.`);
  return passphrase;
}

/**
 * A file that is no archive at all is a mistake in the command (exit 2). Refusals of an archive are one
 * sentence and exit 1; only a command that could have changed the stack (restore) says it did not.
 */
async function runArchiveCommand(action: () => Promise<void>, options: { changesStack: boolean } = { changesStack: false }): Promise<void> {
  try {
    await run(action);
  } catch (error) {
    if (error instanceof NotAnArchiveError) throw new UsageError(error.message);
    if (error instanceof ArchiveIntegrityError || error instanceof ArchiveMismatchError || error instanceof SecretsDecryptError) {
      throw new Error(options.changesStack ? `${error.message} Nothing was changed.` : error.message);
    }
    throw error;
  }
}

const defaultOutput = (serverName: string, now: Date) => `mxstack-backup-${serverName}-${now.toISOString().replace(/[:.]/g, '-')}.tar`;

export function registerBackupCommands(program: Command): void {
  const backup = addTargetOptions(
    program
      .command('backup')
      .description('write one archive of the database (and the auth database with built-in 2FA), media store and signing key (optionally the secrets, encrypted)')
      .option('--output <file>', 'archive to write (default mxstack-backup-<server>-<time>.tar)')
      .option('--include-secrets', 'also store every stack secret, encrypted with --passphrase-file')
      .option('--passphrase-file <file>', 'file whose first line is the passphrase for --include-secrets'),
  );
  backup.action((_options, command: Command) =>
    runArchiveCommand(async () => {
      const options = allOptions<TargetOptions & { output?: string; includeSecrets?: boolean; passphraseFile?: string }>(command);
      if (options.includeSecrets && !options.passphraseFile) throw new UsageError('--include-secrets needs --passphrase-file: secrets are never stored unencrypted.');
      if (!options.includeSecrets && options.passphraseFile) throw new UsageError('--passphrase-file is used only with --include-secrets.');
      const passphrase = options.includeSecrets ? readPassphraseFile(options.passphraseFile!) : undefined;
      const target = await openTarget(options);
      const output = options.output ?? defaultOutput(target.stack.serverName, new Date());
      const result = await createBackup(target, { output, progress, ...(passphrase !== undefined ? { passphrase } : {}) });
      const auth = result.manifest.authDatabase !== undefined ? `, auth database ${result.manifest.authDatabase} included` : '';
      print(`${result.file}: ${megabytes(result.bytes)}, ${result.manifest.parts.length} parts, server ${result.manifest.serverName}${auth}`);
    }),
  );

  backup
    .command('verify')
    .description('check an archive\'s structure and every checksum, without touching the stack (exit 0 only when intact)')
    .argument('<file>', 'archive written by `mxstack backup`')
    .option('--passphrase-file <file>', 'also check that this passphrase opens the archive\'s secrets')
    .action((file: string, _options, command: Command) =>
      runArchiveCommand(async () => {
        // The parent `backup` has the same option: whichever parsed it, optsWithGlobals has it.
        const options = allOptions<{ passphraseFile?: string }>(command);
        const contents = await verifyArchive(file, progress);
        const { manifest } = contents;
        let secrets = contents.secrets ? 'secrets: encrypted' : 'secrets: not included';
        if (options.passphraseFile) {
          if (!contents.secrets) throw new ArchiveIntegrityError(`${file} holds no secrets to open.`);
          secrets = `secrets: ${decryptSecrets(contents.secrets, readPassphraseFile(options.passphraseFile)).length}, opened with the passphrase`;
        }
        print(
          [
            `${file}: intact`,
            `server: ${manifest.serverName}`,
            `created: ${manifest.createdAt}`,
            `synapse: ${manifest.versions.synapse}, postgresql: ${manifest.versions.postgresql}`,
            `parts: ${manifest.parts.length}, ${megabytes(contents.bytes)}`,
            manifest.authDatabase !== undefined ? `auth database: ${manifest.authDatabase} (made with built-in 2FA on)` : 'auth database: none (made with built-in 2FA off)',
            secrets,
          ].join('\n'),
        );
      }),
    );

  backup
    .command('secrets')
    .description('decrypt the secrets of an archive into a JSON file (mode 0600): for rebuilding a lost stack')
    .argument('<file>', 'archive written with --include-secrets')
    .option('--passphrase-file <file>', 'file whose first line is the passphrase (required)')
    .requiredOption('--output-file <file>', 'JSON file to write (must not exist)')
    .action((file: string, _options, command: Command) =>
      runArchiveCommand(async () => {
        const options = allOptions<{ passphraseFile?: string; outputFile: string }>(command);
        if (!options.passphraseFile) throw new UsageError('--passphrase-file is required: the secrets are encrypted.');
        const contents = await verifyArchive(file, progress);
        if (!contents.secrets) throw new ArchiveIntegrityError(`${file} holds no secrets.`);
        const secrets = decryptSecrets(contents.secrets, readPassphraseFile(options.passphraseFile));
        await writeFile(options.outputFile, `${JSON.stringify({ secrets }, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
        print(`wrote ${secrets.length} secrets to ${options.outputFile}`);
      }),
    );

  addTargetOptions(
    program
      .command('restore')
      .description('verify an archive completely, then restore it; the previous data stays served if anything fails')
      .argument('<file>', 'archive written by `mxstack backup`')
      .option('-y, --yes', 'do not ask for confirmation'),
  ).action((file: string, _options, command: Command) =>
    runArchiveCommand(async () => {
      const options = allOptions<TargetOptions & { yes?: boolean }>(command);
      // Before the stack is opened or the user asked: a wrong file is told at once.
      await checkBackupArchiveFile(file);
      const target = await openTarget(options);
      await confirm(`Replace the data of ${target.description} with ${file}?`, options.yes);
      const pauseAt = process.env[pauseEnvironmentVariable];
      const result = await restoreBackup(target, { file, progress, ...(pauseAt ? { pauseAt } : {}) });
      print(`restored ${file} (${result.manifest.serverName}, made ${result.manifest.createdAt}) into ${target.description}.`);
    }, { changesStack: true }),
  );
}
