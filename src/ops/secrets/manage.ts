/**
 * `mxstack secrets init | list | export | rotate`, written once against the Target interface. Values
 * never leave this module except into the target's secret store, an export file (mode 0600), or the
 * running components through `applySecrets`.
 */
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { ComponentName, Stack } from '../../stack/model.js';
import type { Target } from '../../targets/target.js';
import { withAdmin, type AdminSessionOptions } from '../admin-session.js';
import { localpartOf, withAuthAdmin } from '../auth-admin.js';
import { generateSealingKey, rotateSealingKeyring } from '../../stack/secrets/auth-keys.js';
import { generateRandomSecret, generateSigningJwks } from '../../stack/secrets/generate.js';
import { secretInventory, inventorySecretNames, type SecretEntry, type SecretOrigin } from './inventory.js';

/** A problem with the stored secrets the user must fix (exit 2). */
export class SecretsUsageError extends Error {}

export interface InitResult {
  created: string[];
  replaced: string[];
  kept: string[];
  /** One sentence per secret the user must create. */
  problems: string[];
}

const label = (entry: SecretEntry) => `${entry.ref.name}/${entry.ref.key}`;

/** Creates what is missing; with `force`, replaces what mxstack manages (never what the user brings). */
export async function initSecrets(target: Target, options: { force: boolean }): Promise<InitResult> {
  const result: InitResult = { created: [], replaced: [], kept: [], problems: [] };
  for (const entry of secretInventory(target.stack)) {
    const stored = await target.readSecret(entry.ref);
    if (entry.origin === 'user') {
      if (stored === undefined || stored.trim() === '') {
        result.problems.push(`${label(entry)} (${entry.purpose}) is missing and is yours to create${entry.ref.userProvided ? ' (the values name it)' : ''}.`);
      } else result.kept.push(label(entry));
      continue;
    }
    if (stored !== undefined && !options.force) {
      result.kept.push(label(entry));
      continue;
    }
    await target.writeSecret(entry.ref, entry.value!());
    (stored === undefined ? result.created : result.replaced).push(label(entry));
  }
  if (result.created.length > 0 || result.replaced.length > 0) await target.applySecrets([]);
  return result;
}

export interface ListedSecret {
  name: string;
  key: string;
  purpose: string;
  origin: SecretOrigin;
  present: boolean;
  /** ISO 8601 of the last write, when present. */
  updated: string | null;
  /** Age in whole days, when present. */
  age_days: number | null;
}

export async function listSecrets(target: Target, now: Date = new Date()): Promise<ListedSecret[]> {
  const entries = secretInventory(target.stack);
  const stored = await target.listSecrets(inventorySecretNames(entries));
  return entries.map((entry) => {
    const found = stored.find((s) => s.name === entry.ref.name && s.key === entry.ref.key);
    return {
      name: entry.ref.name,
      key: entry.ref.key,
      purpose: entry.purpose,
      origin: entry.origin,
      present: found !== undefined,
      updated: found ? found.updatedAt.toISOString() : null,
      age_days: found ? Math.floor((now.getTime() - found.updatedAt.getTime()) / 86_400_000) : null,
    };
  });
}

export const exportWarning =
  'These files hold the stack\'s secrets in clear text: keep them out of version control and backups you do not control, and delete them once copied to a password manager.';

/** Writes `.secrets/<Secret name>/<key>` files (directories 0700, files 0600). */
export async function exportSecrets(target: Target, directory: string): Promise<string[]> {
  const root = resolve(directory);
  mkdirSync(root, { recursive: true, mode: 0o700 });
  chmodSync(root, 0o700);
  const written: string[] = [];
  for (const entry of secretInventory(target.stack)) {
    const value = await target.readSecret(entry.ref);
    if (value === undefined) continue;
    const dir = join(root, entry.ref.name);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const file = join(dir, entry.ref.key);
    writeFileSync(file, value, { mode: 0o600 });
    chmodSync(file, 0o600);
    written.push(file);
  }
  writeFileSync(join(root, 'README.txt'), `${exportWarning}\n`, { mode: 0o600 });
  return written;
}

/** What a rotation touches: which components re-read the secret. */
const baseRotationRestarts: Record<string, ComponentName[]> = {
  'turn-shared-secret': ['synapse', 'coturn'],
  'registration-shared-secret': ['synapse'],
  'macaroon-secret-key': ['synapse'],
  'form-secret': ['synapse'],
  'postgres-password': ['synapse'],
  'admin-password': [],
};

const authRotationRestarts: Record<string, ComponentName[]> = {
  'auth-client-secret': ['synapse', 'auth'],
  'auth-sealing-keyring': ['auth'],
  'auth-cookie-keys': ['auth'],
  'auth-signing-jwks': ['auth'],
  'auth-admin-token': ['auth'],
  'auth-cli-appservice-token': ['synapse'],
  'auth-cli-appservice-hs-token': ['synapse'],
};

/** The rotations this stack offers; with 2FA on, the auth keys too, and the auth component reads the database password. */
export function rotationRestarts(stack: Stack): Record<string, ComponentName[]> {
  if (!stack.auth) return baseRotationRestarts;
  return { ...baseRotationRestarts, 'postgres-password': ['synapse', 'auth'], ...authRotationRestarts };
}

export const rotatableSecrets = [...Object.keys(baseRotationRestarts), ...Object.keys(authRotationRestarts)];

/** Keys kept next to the new one, so what the old keys signed or sealed stays readable. */
const keptPreviousKeys = 2;

/**
 * The new value of a key set that must keep its predecessors: TOTP secrets sealed under the old key must
 * still open, cookies and ID tokens signed with it must still verify until they expire. Other secrets are
 * simply replaced.
 */
function rotatedKeySet(id: string, stored: string | undefined, fresh: () => string): string {
  if (stored === undefined) return fresh();
  if (id === 'auth-sealing-keyring') return rotateSealingKeyring(stored, generateSealingKey(`k${Date.now().toString(36)}`));
  if (id === 'auth-cookie-keys') return [generateRandomSecret(), ...stored.split(',').filter(Boolean).slice(0, keptPreviousKeys)].join(',');
  if (id === 'auth-signing-jwks') {
    const previous = (JSON.parse(stored) as { keys: unknown[] }).keys.slice(0, keptPreviousKeys);
    const [next] = (JSON.parse(generateSigningJwks()) as { keys: unknown[] }).keys;
    return JSON.stringify({ keys: [next, ...previous] });
  }
  return fresh();
}

export interface RotateResult {
  id: string;
  ref: string;
  restarted: ComponentName[];
  note?: string;
}

/** psql's \set quoting: backslash and quote escaped inside single quotes. */
const psqlQuoted = (value: string) => `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

/**
 * Replaces one mxstack-managed secret with a new value everywhere it is used: the database role, the
 * admin account, the components' files; then restarts what reads it.
 */
export async function rotateSecret(target: Target, id: string, adminOptions: AdminSessionOptions): Promise<RotateResult> {
  const entry = secretInventory(target.stack).find((e) => e.id === id);
  if (id === 'signing-key') {
    throw new SecretsUsageError('the signing key is the server\'s identity for federation: replacing it makes other servers distrust old events; it is not rotated by mxstack.');
  }
  if (id === 'auth-recovery-code-key') {
    throw new SecretsUsageError('the recovery-code key is not rotated: every recovery code users saved would stop working. Users regenerate their codes on the account page.');
  }
  const restarts = rotationRestarts(target.stack);
  if (!entry || !(id in restarts)) {
    const available = Object.keys(restarts);
    const hint = !target.stack.auth && id in authRotationRestarts ? ' (2FA is off on this stack, so it has no auth keys)' : '';
    throw new SecretsUsageError(`cannot rotate ${id}${hint}: choose one of ${available.join(', ')}.`);
  }
  if (entry.origin !== 'generated') {
    throw new SecretsUsageError(`${label(entry)} comes from ${entry.origin === 'values' ? 'the values file' : 'you'}: change it there, then apply.`);
  }
  const value = rotatedKeySet(id, await target.readSecret(entry.ref), entry.value!);
  if (id === 'admin-password') {
    // The account first: if that fails, the stored password still opens it. With 2FA on, passwords live
    // in the identity provider (Synapse refuses password changes while its password login is off).
    await withAdmin(target, adminOptions, async (admin) => {
      if (target.stack.auth) await withAuthAdmin(target, (auth) => auth.setPassword(localpartOf(admin.adminUserId!), value, true));
      else await admin.resetPassword(admin.adminUserId!, value, false);
    });
    await target.writeSecret(entry.ref, value);
    await target.applySecrets([]);
    return { id, ref: label(entry), restarted: [] };
  }
  if (id === 'postgres-password') {
    const { database } = target.stack;
    const script = [`\\set ON_ERROR_STOP on`, `\\set role ${psqlQuoted(database.user)}`, `\\set password ${psqlQuoted(value)}`, "SELECT format('ALTER ROLE %I WITH PASSWORD %L', :'role', :'password')\\gexec", ''].join('\n');
    // As the database's superuser over the component's local socket (the password travels on stdin).
    const result = await target.exec('postgresql', [...target.postgresqlTool('psql'), '-X', '-q', '-d', 'postgres'], { stdin: script, user: 'postgres' });
    if (result.exitCode !== 0) throw new Error(`changing the database role's password failed: ${result.stderr.trim().split('\n').slice(-1)[0] ?? 'psql failed'}`);
  }
  await target.writeSecret(entry.ref, value);
  const restarted = restarts[id]!.filter((c) => c !== 'coturn' || target.stack.values.coturn.enabled);
  await target.applySecrets(restarted);
  return {
    id,
    ref: label(entry),
    restarted,
    ...(id === 'macaroon-secret-key' ? { note: 'every access token signed with the old key is now invalid: users log in again.' } : {}),
  };
}
