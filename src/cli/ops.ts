/**
 * `mxstack secrets | users | rooms | registration-tokens`: parsing and printing only. Every command works
 * on the local stack (`--state-dir`) or on a release in a cluster (`--kubernetes`), through one Target.
 */
import { readFileSync } from 'node:fs';
import { writeFile, readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline/promises';
import { Command, Option } from 'commander';
import { UsageError } from './main.js';
import { addValuesOptions, type ValuesOptions } from './options.js';
import { defaultStateDir } from '../targets/local/state.js';
import { TargetUsageError, type Target } from '../ops/target.js';
import { AdminApiError, type SynapseAdminClient } from '../ops/admin-api.js';
import { withAdmin } from '../ops/admin-session.js';
import {
  createUser,
  deactivateUser,
  listUsers,
  loginToken,
  resetSecondFactors,
  setPassword,
  setUserAdmin,
  unlockUser,
  userInfo,
  type SecondFactors,
  type UserSummary,
} from '../ops/users.js';
import { authOffSentence, withAuthAdmin, type AuthAdminClient } from '../ops/auth-admin.js';
import { createRoom, deleteRoom, exportRoom, importRoom, listRooms, parseRoomExport, roomInfo, roomOrders, type RoomSummary } from '../ops/rooms.js';
import { createRegistrationToken, deleteRegistrationToken, listRegistrationTokens, type TokenSummary } from '../ops/registration-tokens.js';
import { exportSecrets, exportWarning, initSecrets, listSecrets, rotatableSecrets, rotateSecret, SecretsUsageError } from '../ops/secrets/manage.js';

export interface TargetOptions extends ValuesOptions {
  stateDir: string;
  kubernetes?: boolean;
  kubeconfig?: string;
  context?: string;
  namespace: string;
  release: string;
  accessTokenFile?: string;
}

interface OutputOptions {
  output: 'table' | 'json';
}

const progress = (line: string) => process.stderr.write(`${line}\n`);
const print = (text: string): void => void process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
const printJson = (value: unknown): void => print(JSON.stringify(value, null, 2));

/** The options every operation takes: which target, which values, which admin token. */
export function addTargetOptions(command: Command): Command {
  return addValuesOptions(command)
    .addOption(new Option('--state-dir <dir>', 'state directory of the local stack').default(defaultStateDir(), '/var/lib/mxstack/default, or $MXSTACK_STATE_DIR'))
    .option('--kubernetes', 'the release on a cluster (via kubectl) instead of the local stack')
    .option('--kubeconfig <file>', 'kubeconfig file (with --kubernetes)')
    .option('--context <name>', 'kubeconfig context (with --kubernetes)')
    .option('-n, --namespace <name>', 'Kubernetes namespace (with --kubernetes)', 'matrix')
    .option('--release <name>', 'release name (with --kubernetes)', 'mxstack')
    .option('--access-token-file <file>', 'an admin access token to use instead of the stored admin credentials');
}

const outputOption = () => new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table');

/** The targets (values, compiler, Kubernetes objects) are loaded here, when a command runs (see src/cli/main.ts). */
export async function openTarget(options: TargetOptions): Promise<Target> {
  const { mergeValueSources, resolveValues } = await import('../values/load.js');
  if (options.kubernetes) {
    const [{ compileKubernetesStack }, { KubernetesTarget }] = await Promise.all([import('../targets/kubernetes/render.js'), import('../targets/kubernetes/target-adapter.js')]);
    const values = resolveValues(mergeValueSources({ files: options.values, sets: options.set }));
    const stack = compileKubernetesStack(values, { release: options.release, namespace: options.namespace });
    return new KubernetesTarget(stack, {
      namespace: options.namespace,
      ...(options.kubeconfig ? { kubeconfig: options.kubeconfig } : {}),
      ...(options.context ? { context: options.context } : {}),
    });
  }
  const { LocalTarget } = await import('../targets/local/target-adapter.js');
  const given = options.values.length > 0 || options.set.length > 0;
  return new LocalTarget({ stateDir: options.stateDir, ...(given ? { rawValues: mergeValueSources({ files: options.values, sets: options.set }) } : {}) });
}

/** Errors a user fixes by calling differently become UsageError (exit 2); the rest stay one sentence (exit 1). */
export async function run(action: () => Promise<void>): Promise<void> {
  try {
    await action();
  } catch (error) {
    if (error instanceof TargetUsageError || error instanceof SecretsUsageError) throw new UsageError(error.message);
    const { KubectlError, KubectlNotFoundError } = await import('../targets/kubernetes/kubectl.js');
    if (error instanceof KubectlError || error instanceof KubectlNotFoundError || error instanceof AdminApiError) throw new Error(error.message);
    throw error;
  }
}

/** The command's options merged with its parents' (target options are declared on the group). */
export function allOptions<T>(command: Command): T {
  return command.optsWithGlobals() as T;
}

async function admin<T>(options: TargetOptions, use: (client: SynapseAdminClient) => Promise<T>): Promise<T> {
  return withAdmin(await openTarget(options), options.accessTokenFile ? { accessTokenFile: options.accessTokenFile } : {}, use);
}

/** An admin session plus, when the stack has built-in 2FA, a client of the auth service's admin API. */
function adminWithAuth<T>(target: Target, options: TargetOptions, use: (client: SynapseAdminClient, auth: AuthAdminClient | undefined) => Promise<T>): Promise<T> {
  return withAdmin(target, options.accessTokenFile ? { accessTokenFile: options.accessTokenFile } : {}, (client) =>
    target.stack.auth ? withAuthAdmin(target, (auth) => use(client, auth)) : use(client, undefined),
  );
}

/** A target whose stack has built-in 2FA; else the usage error saying 2FA is off (exit 2). */
async function targetWithAuth(options: TargetOptions): Promise<Target> {
  const target = await openTarget(options);
  if (!target.stack.auth) throw new UsageError(authOffSentence(target.description));
  return target;
}

/**
 * A confirmation for an action on one user: the user id typed at the prompt, or --yes. Without a terminal
 * and without --yes: refused (usage error).
 */
export async function confirmByTyping(action: string, userId: string, yes: boolean | undefined): Promise<void> {
  if (yes) return;
  if (!process.stdin.isTTY || !process.stderr.isTTY) {
    throw new UsageError(`refusing to ${action} without confirmation: there is no terminal to type ${userId} at; pass --yes to confirm from a script.`);
  }
  const prompt = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = (await prompt.question(`This will ${action}. Type the user id (${userId}) to confirm: `)).trim();
    if (answer !== userId) throw new UsageError(`not confirmed (typed ${JSON.stringify(answer)}, expected ${userId}): nothing was changed.`);
  } finally {
    prompt.close();
  }
}

/** A password from a file (first line); never from the command line. */
function readPasswordFile(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read the password file ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'}).`);
  }
  const password = text.replace(/\r?\n.*$/s, '');
  if (password === '') throw new UsageError(`the password file ${file} is empty.`);
  return password;
}

/** Asks on a terminal; without one, only --yes answers (and the refusal is a usage error). */
export async function confirm(question: string, yes: boolean | undefined): Promise<void> {
  if (yes) return;
  if (!process.stdin.isTTY || !process.stderr.isTTY) throw new UsageError(`${question.replace(/\?$/, '')}: refused without --yes (no terminal to ask on).`);
  const prompt = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = (await prompt.question(`${question} [y/N] `)).trim();
    if (!/^(y|yes)$/i.test(answer)) throw new UsageError('not confirmed: nothing was changed.');
  } finally {
    prompt.close();
  }
}

/** Durations like 30m, 12h, 7d. */
export function parseDurationMs(text: string, option: string): number {
  const match = /^(\d+)\s*(s|m|h|d)$/.exec(text.trim());
  if (!match) throw new UsageError(`${option} ${text}: expected a duration like 30m, 12h or 7d.`);
  const unit = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] as 's' | 'm' | 'h' | 'd'];
  return Number(match[1]) * unit;
}

function positiveInteger(text: string, option: string): number {
  if (!/^\d+$/.test(text) || Number(text) < 1) throw new UsageError(`${option} ${text}: expected a whole number of at least 1.`);
  return Number(text);
}

/** A plain text table: a header and aligned columns. */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

const yesNo = (value: boolean) => (value ? 'yes' : 'no');

/** The "Second factors" block of `users info` (names and dates, never secrets). */
export function secondFactorLines(factors: SecondFactors | null): string[] {
  if (factors === null) return ['second factors: no account at the auth service yet'];
  const app = factors.authenticator_app;
  return [
    'second factors:',
    `  password:          ${{ argon2id: 'set at the auth service', 'synapse-bcrypt': 'imported from Synapse (re-hashed at next sign-in)', none: 'still only in Synapse (imported at first sign-in)' }[factors.password]}`,
    `  authenticator app: ${app.enrolled ? `yes (enrolled ${app.enrolled_at ?? 'unknown date'})` : 'no'}`,
    `  security keys:     ${factors.security_keys.length}`,
    ...factors.security_keys.map((key) => `    ${key.name}: added ${key.created}, last used ${key.last_used ?? 'never'}`),
    `  recovery codes:    ${factors.recovery_codes_left} left`,
    `  must enrol:        ${yesNo(factors.must_enrol)}`,
    `  locked until:      ${factors.locked_until ?? 'not locked'}`,
  ];
}

function usersTable(users: UserSummary[]): string {
  return formatTable(
    ['USER', 'ADMIN', 'DEACTIVATED', 'GUEST', 'DISPLAY NAME'],
    users.map((u) => [u.user_id, yesNo(u.admin), yesNo(u.deactivated), yesNo(u.guest), u.display_name ?? '']),
  );
}

function roomsTable(rooms: RoomSummary[]): string {
  return formatTable(
    ['ROOM', 'MEMBERS', 'LOCAL', 'PUBLIC', 'NAME'],
    rooms.map((r) => [r.room_id, String(r.joined_members), String(r.joined_local_members), yesNo(r.public), r.name ?? r.canonical_alias ?? '']),
  );
}

function tokensTable(tokens: TokenSummary[]): string {
  return formatTable(
    ['TOKEN', 'VALID', 'USES', 'PENDING', 'COMPLETED', 'EXPIRES'],
    tokens.map((t) => [t.token, yesNo(t.valid), t.uses_allowed === null ? 'unlimited' : String(t.uses_allowed), String(t.pending), String(t.completed), t.expires ?? 'never']),
  );
}

// ---- secrets ------------------------------------------------------------------------------------------

function registerSecretsCommands(program: Command): void {
  const secrets = addTargetOptions(program.command('secrets').description('the stack\'s secrets: create the missing ones, list, verify, export, rotate'));

  secrets
    .command('init')
    .description('create every missing secret (existing ones are kept; Secrets the values name are never generated)')
    .option('--force', 'replace the secrets mxstack manages with new values (breaks a running stack until it restarts)')
    .option('-y, --yes', 'do not ask before --force replaces secrets')
    .action((_options, command: Command) =>
      run(async () => {
        const options = allOptions<TargetOptions & { force?: boolean; yes?: boolean }>(command);
        const target = await openTarget(options);
        if (options.force) await confirm(`Replace every secret mxstack manages on ${target.description} with new values?`, options.yes);
        const result = await initSecrets(target, { force: options.force ?? false });
        for (const ref of result.created) progress(`created ${ref}`);
        for (const ref of result.replaced) progress(`replaced ${ref}`);
        print(`${result.created.length} created, ${result.replaced.length} replaced, ${result.kept.length} kept on ${target.description}.`);
        if (result.problems.length > 0) throw new SecretsUsageError(result.problems.join('\n'));
      }),
    );

  secrets
    .command('list')
    .description('names, keys and ages of the stored secrets (never their values)')
    .addOption(outputOption())
    .action((_options, command: Command) =>
      run(async () => {
        const options = allOptions<TargetOptions & OutputOptions>(command);
        const listed = await listSecrets(await openTarget(options));
        if (options.output === 'json') return printJson(listed);
        print(
          formatTable(
            ['SECRET', 'KEY', 'ORIGIN', 'AGE', 'PURPOSE'],
            listed.map((s) => [s.name, s.key, s.origin, s.present ? `${s.age_days}d` : 'MISSING', s.purpose]),
          ),
        );
      }),
    );

  secrets
    .command('verify')
    .description('prove the running components agree with the stored secrets (exit 0 only when consistent)')
    .addOption(outputOption())
    .action((_options, command: Command) =>
      run(async () => {
        const options = allOptions<TargetOptions & OutputOptions>(command);
        const { consistent, verifySecrets } = await import('../ops/secrets/verify.js');
        const checks = await verifySecrets(await openTarget(options));
        if (options.output === 'json') printJson({ consistent: consistent(checks), checks });
        else for (const c of checks) print(`${c.ok ? (c.skipped ? 'skip' : 'ok  ') : 'FAIL'}  ${c.name}: ${c.detail}`);
        if (!consistent(checks)) {
          const failed = checks.filter((c) => !c.ok).map((c) => c.name);
          throw new Error(`the secrets are not consistent (${failed.join(', ')}).`);
        }
      }),
    );

  secrets
    .command('export')
    .description('write every stored secret to files (mode 0600) in a directory')
    .option('--dir <dir>', 'directory to write', '.secrets')
    .action((_options, command: Command) =>
      run(async () => {
        const options = allOptions<TargetOptions & { dir: string }>(command);
        const files = await exportSecrets(await openTarget(options), options.dir);
        progress(`warning: ${exportWarning}`);
        print(`${files.length} secrets written to ${options.dir} (files mode 0600).`);
      }),
    );

  secrets
    .command('rotate')
    .description(`replace one secret everywhere it is used, then restart what reads it (${rotatableSecrets.join(', ')})`)
    .argument('<name>', rotatableSecrets.join(' | '))
    .option('-y, --yes', 'do not ask for confirmation')
    .action((name: string, _options, command: Command) =>
      run(async () => {
        const options = allOptions<TargetOptions & { yes?: boolean }>(command);
        const target = await openTarget(options);
        await confirm(`Rotate ${name} on ${target.description} (the components reading it restart)?`, options.yes);
        const result = await rotateSecret(target, name, options.accessTokenFile ? { accessTokenFile: options.accessTokenFile } : {});
        print(`rotated ${result.ref}${result.restarted.length > 0 ? `; restarted ${result.restarted.join(', ')}` : ''}.`);
        if (result.note) progress(`note: ${result.note}`);
      }),
    );
}

// ---- users --------------------------------------------------------------------------------------------

function registerUsersCommands(program: Command): void {
  const users = addTargetOptions(program.command('users').description('user accounts, through the Synapse Admin API'));

  users
    .command('create')
    .description('create a user (a password is generated and shown once when no --password-file is given)')
    .argument('<localpart>', 'localpart or full user id')
    .option('--password-file <file>', 'file whose first line is the password')
    .option('--admin', 'make the user a server admin')
    .option('--email <address>', 'e-mail address')
    .option('--display-name <name>', 'display name')
    .addOption(outputOption())
    .action((user: string, _options, command: Command) =>
      run(async () => {
        const options = allOptions<TargetOptions & OutputOptions & { passwordFile?: string; admin?: boolean; email?: string; displayName?: string }>(command);
        const password = options.passwordFile ? readPasswordFile(options.passwordFile) : undefined;
        const target = await openTarget(options);
        const created = await adminWithAuth(target, options, (client, auth) =>
          createUser(
            client,
            {
              user,
              ...(password !== undefined ? { password } : {}),
              admin: options.admin ?? false,
              ...(options.email ? { email: options.email } : {}),
              ...(options.displayName ? { displayName: options.displayName } : {}),
            },
            auth,
          ),
        );
        const passwordAt = target.stack.auth ? 'auth service' : 'synapse';
        if (options.output === 'json') {
          return printJson({ user_id: created.userId, password_at: passwordAt, ...(created.generatedPassword ? { password: created.generatedPassword } : {}) });
        }
        print(`created ${created.userId}${target.stack.auth ? ' (2FA is on: its password is set at the auth service, not in Synapse)' : ''}`);
        if (created.generatedPassword) print(`password (shown once, store it now): ${created.generatedPassword}`);
      }),
    );

  users
    .command('list')
    .description('every user, page after page')
    .option('--admins', 'only server admins')
    .option('--deactivated', 'include deactivated users')
    .option('--guests', 'include guests')
    .option('--name <text>', 'only users whose id or display name contains this')
    .addOption(outputOption())
    .action((_options, command: Command) =>
      run(async () => {
        const options = allOptions<TargetOptions & OutputOptions & { admins?: boolean; deactivated?: boolean; guests?: boolean; name?: string }>(command);
        const listed = await admin(options, (client) =>
          listUsers(client, {
            ...(options.admins ? { admins: true } : {}),
            deactivated: options.deactivated ?? false,
            guests: options.guests ?? false,
            ...(options.name ? { name: options.name } : {}),
          }),
        );
        print(options.output === 'json' ? JSON.stringify(listed, null, 2) : usersTable(listed));
      }),
    );

  users
    .command('info')
    .description('one user: flags, e-mail, external ids and joined rooms')
    .argument('<user>', 'localpart or full user id')
    .addOption(outputOption())
    .action((user: string, _options, command: Command) =>
      run(async () => {
        const options = allOptions<TargetOptions & OutputOptions>(command);
        const info = await adminWithAuth(await openTarget(options), options, (client, auth) => userInfo(client, user, auth));
        if (options.output === 'json') return printJson(info);
        const lines = [
          `user:         ${info.user_id}`,
          `display name: ${info.display_name ?? ''}`,
          `admin:        ${yesNo(info.admin)}`,
          `deactivated:  ${yesNo(info.deactivated)}${info.erased ? ' (erased)' : ''}`,
          `locked:       ${yesNo(info.locked)}`,
          `created:      ${info.created ?? ''}`,
          `last seen:    ${info.last_seen ?? 'never'}`,
          `e-mail:       ${info.emails.join(', ')}`,
          ...info.external_ids.map((e) => `external id:  ${e.auth_provider} ${e.external_id}`),
          `joined rooms: ${info.joined_rooms.length}`,
          ...info.joined_rooms.map((r) => `  ${r}`),
          ...(info.second_factors !== undefined ? secondFactorLines(info.second_factors) : []),
        ];
        print(lines.join('\n'));
      }),
    );

  users
    .command('set-password')
    .description('set a new password (generated and shown once without --password-file); logs the user\'s devices out')
    .argument('<user>', 'localpart or full user id')
    .option('--password-file <file>', 'file whose first line is the password')
    .action((user: string, _options, command: Command) =>
      run(async () => {
        const options = allOptions<TargetOptions & { passwordFile?: string }>(command);
        const password = options.passwordFile ? readPasswordFile(options.passwordFile) : undefined;
        const result = await adminWithAuth(await openTarget(options), options, (client, auth) => setPassword(client, user, password, auth));
        if (result.at === 'auth service') {
          print(`password of ${result.userId} changed at the auth service (2FA is on: Synapse has no password login); ${result.loggedOutDevices ?? 0} devices logged out.`);
        } else {
          print(`password of ${result.userId} changed; its devices were logged out.`);
        }
        if (result.generatedPassword) print(`password (shown once, store it now): ${result.generatedPassword}`);
      }),
    );

  const deactivate = (erase: boolean) => (user: string, _options: unknown, command: Command) =>
    run(async () => {
      const options = allOptions<TargetOptions & { yes?: boolean; erase?: boolean }>(command);
      const withErase = erase || (options.erase ?? false);
      const target = await openTarget(options);
      await confirm(`${withErase ? 'Deactivate and erase' : 'Deactivate'} ${user} on ${target.description}? This cannot be undone`, options.yes);
      const userId = await adminWithAuth(target, options, (client, auth) => deactivateUser(client, user, withErase, auth));
      print(`${withErase ? 'deactivated and erased' : 'deactivated'} ${userId}.`);
    });

  users
    .command('deactivate')
    .description('deactivate a user (Synapse keeps the account id forever; there is no hard delete)')
    .argument('<user>', 'localpart or full user id')
    .option('--erase', 'also erase: messages hidden from new readers, profile removed (GDPR)')
    .option('-y, --yes', 'do not ask for confirmation')
    .action(deactivate(false));

  users
    .command('erase')
    .description('deactivate and erase a user (the old chart\'s `delete`)')
    .argument('<user>', 'localpart or full user id')
    .option('-y, --yes', 'do not ask for confirmation')
    .action(deactivate(true));

  const adminCommand = users.command('admin').description('grant or revoke server admin rights');
  for (const [verb, value] of [['grant', true], ['revoke', false]] as const) {
    adminCommand
      .command(verb)
      .argument('<user>', 'localpart or full user id')
      .option('-y, --yes', 'do not ask for confirmation')
      .description(`${verb} server admin rights`)
      .action((user: string, _options, command: Command) =>
        run(async () => {
          const options = allOptions<TargetOptions & { yes?: boolean }>(command);
          if (!value) await confirm(`Revoke admin rights of ${user}?`, options.yes);
          const userId = await admin(options, (client) => setUserAdmin(client, user, value));
          print(`${userId} is ${value ? 'now' : 'no longer'} a server admin.`);
        }),
      );
  }

  users
    .command('login-token')
    .description('an access token to act as the user (admin "login as"; it is a password: handle it as one)')
    .argument('<user>', 'localpart or full user id')
    .option('--valid-for <duration>', 'expiry, like 30m, 12h or 7d (default: until logged out)')
    .addOption(outputOption())
    .action((user: string, _options, command: Command) =>
      run(async () => {
        const options = allOptions<TargetOptions & OutputOptions & { validFor?: string }>(command);
        const validFor = options.validFor ? parseDurationMs(options.validFor, '--valid-for') : undefined;
        const result = await admin(options, (client) => loginToken(client, user, validFor));
        if (options.output === 'json') return printJson({ user_id: result.userId, access_token: result.accessToken, valid_until: result.validUntil ?? null });
        print(result.accessToken);
      }),
    );

  users
    .command('reset-2fa')
    .description('remove every second factor and recovery code of a user at the auth service (built-in 2FA); asks to type the user id')
    .argument('<user>', 'localpart or full user id')
    .option('-y, --yes', 'do not ask for confirmation (scripts)')
    .addOption(outputOption())
    .action((user: string, _options, command: Command) =>
      run(async () => {
        const options = allOptions<TargetOptions & OutputOptions & { yes?: boolean }>(command);
        const target = await targetWithAuth(options);
        const result = await adminWithAuth(target, options, (client, auth) =>
          resetSecondFactors(client, auth!, user, (userId) =>
            confirmByTyping(`remove every second factor and recovery code of ${userId} on ${target.description}`, userId, options.yes),
          ),
        );
        const enrol = result.after.mustEnrol;
        if (options.output === 'json') return printJson({ user_id: result.userId, removed: result.removed, must_enrol: enrol });
        print(
          [
            `second factors of ${result.userId} reset at the auth service.`,
            result.removed.length > 0 ? `removed: ${result.removed.join('; ')}.` : 'removed: nothing (the user had no second factor).',
            enrol
              ? 'the user must enrol a second factor at the next sign-in (the policy requires one).'
              : 'the user signs in with the password alone until enrolling a factor again (the policy does not require one).',
          ].join('\n'),
        );
      }),
    );

  users
    .command('unlock')
    .description('end a user\'s lockout after too many failed sign-ins at the auth service (built-in 2FA)')
    .argument('<user>', 'localpart or full user id')
    .action((user: string, _options, command: Command) =>
      run(async () => {
        const options = allOptions<TargetOptions>(command);
        const target = await targetWithAuth(options);
        const result = await adminWithAuth(target, options, (client, auth) => unlockUser(client, auth!, user));
        print(result.wasLockedUntil ? `${result.userId} unlocked (it was locked until ${result.wasLockedUntil}).` : `${result.userId} was not locked; nothing to do.`);
      }),
    );
}

// ---- rooms --------------------------------------------------------------------------------------------

function registerRoomsCommands(program: Command): void {
  const rooms = addTargetOptions(program.command('rooms').description('rooms, through the Synapse Admin API'));

  rooms
    .command('list')
    .description('every room (or the first --limit)')
    .option('--limit <n>', 'at most this many rooms')
    .addOption(new Option('--order-by <field>', 'sort order').choices([...roomOrders]).default('name'))
    .option('--search <text>', 'only rooms whose name, alias or id contains this')
    .addOption(outputOption())
    .action((_options, command: Command) =>
      run(async () => {
        const options = allOptions<TargetOptions & OutputOptions & { limit?: string; orderBy: string; search?: string }>(command);
        const limit = options.limit !== undefined ? positiveInteger(options.limit, '--limit') : undefined;
        const listed = await admin(options, (client) =>
          listRooms(client, { orderBy: options.orderBy, ...(limit !== undefined ? { limit } : {}), ...(options.search ? { search: options.search } : {}) }),
        );
        print(options.output === 'json' ? JSON.stringify(listed, null, 2) : roomsTable(listed));
      }),
    );

  rooms
    .command('info')
    .description('one room: settings and members')
    .argument('<room>', 'room id (!...)')
    .addOption(outputOption())
    .action((room: string, _options, command: Command) =>
      run(async () => {
        const options = allOptions<TargetOptions & OutputOptions>(command);
        const info = await admin(options, (client) => roomInfo(client, room));
        if (options.output === 'json') return printJson(info);
        print(
          [
            `room:        ${info.room_id}`,
            `name:        ${info.name ?? ''}`,
            `topic:       ${info.topic ?? ''}`,
            `alias:       ${info.canonical_alias ?? ''}`,
            `creator:     ${info.creator ?? ''}`,
            `version:     ${info.version ?? ''}`,
            `public:      ${yesNo(info.public)} (join rule ${info.join_rules ?? 'unknown'})`,
            `encryption:  ${info.encryption ?? 'none'}`,
            `members:     ${info.joined_members} (${info.joined_local_members} local)`,
            ...info.members.map((m) => `  ${m}`),
          ].join('\n'),
        );
      }),
    );

  rooms
    .command('create')
    .description('create a room, owned by the admin')
    .argument('<name>', 'room name')
    .option('--topic <text>', 'room topic')
    .option('--alias <localpart>', 'local alias, e.g. general for #general:server')
    .option('--public', 'public: listed in the room directory, anyone may join')
    .option('--invite <user...>', 'users to invite')
    .addOption(outputOption())
    .action((name: string, _options, command: Command) =>
      run(async () => {
        const options = allOptions<TargetOptions & OutputOptions & { topic?: string; alias?: string; public?: boolean; invite?: string[] }>(command);
        const created = await admin(options, (client) =>
          createRoom(client, {
            name,
            ...(options.topic ? { topic: options.topic } : {}),
            ...(options.alias ? { alias: options.alias } : {}),
            public: options.public ?? false,
            ...(options.invite ? { invite: options.invite } : {}),
          }),
        );
        if (options.output === 'json') return printJson({ room_id: created.roomId, alias: created.alias ?? null });
        print(`created ${created.roomId}${created.alias ? ` (${created.alias})` : ''}`);
      }),
    );

  rooms
    .command('delete')
    .description('delete a room: members are removed, and it waits for Synapse\'s asynchronous delete to finish')
    .argument('<room>', 'room id (!...)')
    .option('--purge', 'also remove the room\'s history from the database')
    .option('--block', 'block the room id: nobody on this server can join it again')
    .option('--message <text>', 'message shown to the removed members')
    .option('-y, --yes', 'do not ask for confirmation')
    .action((room: string, _options, command: Command) =>
      run(async () => {
        const options = allOptions<TargetOptions & { purge?: boolean; block?: boolean; message?: string; yes?: boolean }>(command);
        const target = await openTarget(options);
        await confirm(`Delete room ${room}${options.purge ? ' and purge its history' : ''} on ${target.description}?`, options.yes);
        const status = await withAdmin(target, options.accessTokenFile ? { accessTokenFile: options.accessTokenFile } : {}, (client) =>
          deleteRoom(client, room, {
            purge: options.purge ?? false,
            block: options.block ?? false,
            ...(options.message ? { message: options.message } : {}),
            onStatus: (s) => progress(`delete: ${s}`),
          }),
        );
        if (status.status === 'failed') throw new AdminApiError(`the delete of ${room} failed: ${status.error ?? 'no reason given'}.`);
        const kicked = status.shutdown_room?.kicked_users?.length ?? 0;
        print(`deleted ${room}: ${status.status}; ${kicked} members removed${options.purge ? ', history purged' : ''}${options.block ? ', room blocked' : ''}.`);
      }),
    );

  rooms
    .command('export')
    .description('write a room\'s state and messages to a JSON file')
    .argument('<room>', 'room id (!...)')
    .requiredOption('--output-file <file>', 'JSON file to write')
    .option('--no-messages', 'state only, without the messages')
    .action((room: string, _options, command: Command) =>
      run(async () => {
        const options = allOptions<TargetOptions & { outputFile: string; messages: boolean }>(command);
        const exported = await admin(options, (client) => exportRoom(client, room, { includeMessages: options.messages }));
        await writeFile(options.outputFile, `${JSON.stringify(exported, null, 2)}\n`, { mode: 0o600 });
        print(`exported ${room} to ${options.outputFile}: ${exported.state.length} state events, ${exported.messages.length} messages.`);
      }),
    );

  rooms
    .command('import')
    .description('recreate a room from an export: name, topic, settable state, messages (original sender and time in the body)')
    .argument('<file>', 'a file written by `mxstack rooms export`')
    .action((file: string, _options, command: Command) =>
      run(async () => {
        const options = allOptions<TargetOptions>(command);
        let text: string;
        try {
          text = await readFile(file, 'utf8');
        } catch (error) {
          throw new UsageError(`cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'}).`);
        }
        const exported = parseRoomExport(text, file);
        const result = await admin(options, (client) => importRoom(client, exported, (posted, total) => progress(`posted ${posted} of ${total} messages`)));
        print(
          `imported ${exported.room.room_id} as ${result.roomId}: ${result.stateEvents} state events, ${result.messages} messages` +
            `${result.skipped > 0 ? ` (${result.skipped} other events not re-posted)` : ''}.`,
        );
      }),
    );
}

// ---- registration tokens ------------------------------------------------------------------------------

function registerRegistrationTokenCommands(program: Command): void {
  const tokens = addTargetOptions(program.command('registration-tokens').description('tokens that allow registration when it requires one'));

  tokens
    .command('create')
    .description('create a token (random unless --token)')
    .option('--token <text>', 'the token itself')
    .option('--uses <n>', 'how many registrations it allows (default unlimited)')
    .option('--valid-for <duration>', 'expiry, like 12h or 7d (default never)')
    .option('--length <n>', 'length of a random token (default 16)')
    .addOption(outputOption())
    .action((_options, command: Command) =>
      run(async () => {
        const options = allOptions<TargetOptions & OutputOptions & { token?: string; uses?: string; validFor?: string; length?: string }>(command);
        const request = {
          ...(options.token ? { token: options.token } : {}),
          ...(options.uses ? { usesAllowed: positiveInteger(options.uses, '--uses') } : {}),
          ...(options.validFor ? { validForMs: parseDurationMs(options.validFor, '--valid-for') } : {}),
          ...(options.length ? { length: positiveInteger(options.length, '--length') } : {}),
        };
        const created = await admin(options, (client) => createRegistrationToken(client, request));
        print(options.output === 'json' ? JSON.stringify(created, null, 2) : created.token);
      }),
    );

  tokens
    .command('list')
    .description('every token with its uses and expiry')
    .option('--valid', 'only tokens that can still be used')
    .addOption(outputOption())
    .action((_options, command: Command) =>
      run(async () => {
        const options = allOptions<TargetOptions & OutputOptions & { valid?: boolean }>(command);
        const listed = await admin(options, (client) => listRegistrationTokens(client, options.valid ? true : undefined));
        print(options.output === 'json' ? JSON.stringify(listed, null, 2) : tokensTable(listed));
      }),
    );

  tokens
    .command('delete')
    .description('delete a token')
    .argument('<token>')
    .option('-y, --yes', 'do not ask for confirmation')
    .action((token: string, _options, command: Command) =>
      run(async () => {
        const options = allOptions<TargetOptions & { yes?: boolean }>(command);
        await confirm(`Delete registration token ${token}?`, options.yes);
        await admin(options, (client) => deleteRegistrationToken(client, token));
        print(`deleted registration token ${token}.`);
      }),
    );
}

export function registerOpsCommands(program: Command): void {
  registerSecretsCommands(program);
  registerUsersCommands(program);
  registerRoomsCommands(program);
  registerRegistrationTokenCommands(program);
}
