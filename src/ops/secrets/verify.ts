/**
 * `mxstack secrets verify`: proves that the running components agree with the stored secrets. Each check
 * says what it compared, never a value. Consistent only when every check passes.
 */
import { parse as parseYaml } from 'yaml';
import { synapseSecretFiles } from '../../stack/model.js';
import { synapseJoinedConfigFile, synapseJoinedConfigPath } from '../../components/synapse/start.js';
import type { Target } from '../../targets/target.js';
import { signingKeyInfo } from '../../stack/secrets/generate.js';
import { secretInventory } from './inventory.js';

export interface VerifyCheck {
  name: string;
  ok: boolean;
  /** One sentence: what was compared and the verdict. */
  detail: string;
  /** True when the check could not apply here (e.g. an external database). */
  skipped?: boolean;
}

const pass = (name: string, detail: string): VerifyCheck => ({ name, ok: true, detail });
const fail = (name: string, detail: string): VerifyCheck => ({ name, ok: false, detail });

/** A file as a running component sees it; undefined when it cannot be read. */
async function readComponentFile(target: Target, component: 'synapse' | 'coturn', path: string): Promise<string | undefined> {
  const result = await target.exec(component, ['cat', path]);
  return result.exitCode === 0 ? result.stdout : undefined;
}

/** The static-auth-secret of a turnserver.conf (last one wins, as in coturn). */
export function turnSecretOf(conf: string): string | undefined {
  let secret: string | undefined;
  for (const line of conf.split('\n')) {
    const match = /^\s*static-auth-secret\s*=?\s*(\S+)\s*$/.exec(line);
    if (match) secret = match[1];
  }
  return secret;
}

/** The database password in the config Synapse's start step joined (database block with its password). */
export function databasePasswordOf(joinedConfig: string): string | undefined {
  const parsed = parseYaml(joinedConfig) as { database?: { args?: { password?: unknown } } } | null;
  const password = parsed?.database?.args?.password;
  return typeof password === 'string' ? password : undefined;
}

async function checkStoredSecrets(target: Target): Promise<VerifyCheck> {
  const missing: string[] = [];
  for (const entry of secretInventory(target.stack)) {
    const value = await target.readSecret(entry.ref);
    if (value === undefined || value.trim() === '') missing.push(`${entry.ref.name}/${entry.ref.key}`);
  }
  return missing.length === 0
    ? pass('stored secrets', 'every secret the stack reads is stored.')
    : fail('stored secrets', `missing: ${missing.join(', ')} (run \`mxstack secrets init\`).`);
}

async function checkTurn(target: Target): Promise<VerifyCheck[]> {
  const { stack } = target;
  if (!stack.values.coturn.enabled || !stack.values.synapse.server.turn.enabled) {
    return [{ name: 'TURN secret', ok: true, skipped: true, detail: 'not checked: coturn or TURN is not enabled.' }];
  }
  const stored = (await target.readSecret(stack.secrets.turnSharedSecret))?.trim();
  const synapseCopy = (await readComponentFile(target, 'synapse', `${stack.placement.paths.synapseSecretsDir}/${synapseSecretFiles.turnSharedSecret}`))?.trim();
  const coturnConf = await readComponentFile(target, 'coturn', target.files.coturnConfig);
  const coturnCopy = coturnConf === undefined ? undefined : turnSecretOf(coturnConf);
  if (synapseCopy === undefined) return [fail('TURN secret', 'cannot read Synapse\'s turn_shared_secret file (is Synapse running?).')];
  if (coturnCopy === undefined) return [fail('TURN secret', 'cannot read coturn\'s static-auth-secret (is coturn running?).')];
  if (coturnCopy !== synapseCopy) return [fail('TURN secret', 'coturn\'s static-auth-secret differs from Synapse\'s turn_shared_secret: calls through TURN will fail to authenticate.')];
  if (stored !== synapseCopy) return [fail('TURN secret', `coturn and Synapse agree, but not with the stored ${stack.secrets.turnSharedSecret.name}/${stack.secrets.turnSharedSecret.key}.`)];
  return [pass('TURN secret', 'coturn\'s static-auth-secret equals Synapse\'s turn_shared_secret and the stored secret.')];
}

async function checkDatabase(target: Target): Promise<VerifyCheck> {
  const { stack } = target;
  const name = 'database password';
  const stored = await target.readSecret(stack.secrets.postgresPassword);
  if (stored === undefined) return fail(name, `${stack.secrets.postgresPassword.name}/${stack.secrets.postgresPassword.key} is not stored.`);
  const joinedConfig = await readComponentFile(target, 'synapse', synapseJoinedConfigPath(stack));
  if (joinedConfig === undefined) return fail(name, `cannot read the database block Synapse started with (${synapseJoinedConfigFile}; is Synapse running?).`);
  if (databasePasswordOf(joinedConfig) !== stored.trim()) return fail(name, `the database password Synapse started with (${synapseJoinedConfigFile}) differs from the stored one; restart Synapse.`);
  if (!stack.values.postgresql.enabled || stack.values.synapse.database.external) {
    return { name, ok: true, skipped: true, detail: 'Synapse has the stored password; the external database itself was not contacted.' };
  }
  // A TCP login (password authentication, unlike the socket), password read from stdin into PGPASSWORD.
  const { database } = stack;
  const script = `IFS= read -r PGPASSWORD; export PGPASSWORD; exec psql -X -w -tA -h 127.0.0.1 -p ${database.port} -U "$1" -d "$2" -c 'SELECT 1'`;
  const result = await target.exec('postgresql', ['sh', '-c', script, 'sh', database.user, database.name], { stdin: `${stored.trim()}\n` });
  if (result.exitCode !== 0 || result.stdout.trim() !== '1') {
    return fail(name, `the stored password does not open database ${database.name} as ${database.user}: ${result.stderr.trim().split('\n').slice(-1)[0] ?? 'psql failed'}`);
  }
  return pass(name, `the stored password opens database ${database.name} as ${database.user}, and Synapse has the same one.`);
}

async function checkSigningKey(target: Target): Promise<VerifyCheck> {
  const { stack } = target;
  const name = 'signing key';
  const stored = await target.readSecret(stack.secrets.signingKey);
  if (stored === undefined) return fail(name, `${stack.secrets.signingKey.name}/${stack.secrets.signingKey.key} is not stored.`);
  let info;
  try {
    info = signingKeyInfo(stored);
  } catch (error) {
    return fail(name, `the stored signing key does not parse: ${(error as Error).message}.`);
  }
  const served = await target.withSynapse(async (baseUrl) => {
    const response = await fetch(new URL('_matrix/key/v2/server', baseUrl), { signal: AbortSignal.timeout(30_000) });
    if (!response.ok) return undefined;
    return (await response.json()) as { server_name?: string; verify_keys?: Record<string, { key: string }> };
  });
  if (!served?.verify_keys) return fail(name, 'Synapse did not answer /_matrix/key/v2/server.');
  const key = served.verify_keys[info.keyId];
  if (!key) return fail(name, `Synapse serves ${Object.keys(served.verify_keys).join(', ') || 'no key'}, not the stored key ${info.keyId}.`);
  if (key.key !== info.publicKey) return fail(name, `Synapse serves a different public key under ${info.keyId} than the stored key.`);
  return pass(name, `the stored key ${info.keyId} parses and is the one Synapse serves at /_matrix/key/v2/server.`);
}

async function checkOidc(target: Target): Promise<VerifyCheck[]> {
  const { stack } = target;
  const sso = stack.values.synapse.server.sso;
  if (!sso.enabled || !sso.oidc.enabled) return [];
  const checks: VerifyCheck[] = [];
  for (const provider of sso.oidc.providers) {
    const name = `OIDC ${provider.idp_id}`;
    const ref = stack.secrets.oidcClientSecrets[provider.idp_id];
    if (!ref) continue;
    const stored = (await target.readSecret(ref))?.trim();
    if (!stored) {
      checks.push(fail(name, `provider ${provider.idp_id} has no client secret in ${ref.name}/${ref.key}.`));
      continue;
    }
    const copy = (await readComponentFile(target, 'synapse', `${stack.placement.paths.synapseSecretsDir}/${synapseSecretFiles.oidcClientSecret(provider.idp_id)}`))?.trim();
    checks.push(copy === stored ? pass(name, `provider ${provider.idp_id} has its own client secret and Synapse has it.`) : fail(name, `Synapse's client secret file for ${provider.idp_id} differs from ${ref.name}/${ref.key} or is missing.`));
  }
  const stored = new Map<string, string[]>();
  for (const provider of sso.oidc.providers) {
    const ref = stack.secrets.oidcClientSecrets[provider.idp_id];
    const value = ref ? (await target.readSecret(ref))?.trim() : undefined;
    if (value) stored.set(value, [...(stored.get(value) ?? []), provider.idp_id]);
  }
  for (const ids of stored.values()) {
    if (ids.length > 1) checks.push(fail('OIDC secrets distinct', `providers ${ids.join(' and ')} share one client secret: each provider needs its own.`));
  }
  return checks;
}

export async function verifySecrets(target: Target): Promise<VerifyCheck[]> {
  const checks: VerifyCheck[] = [await checkStoredSecrets(target)];
  checks.push(...(await checkTurn(target)));
  checks.push(await checkDatabase(target));
  checks.push(await checkSigningKey(target));
  checks.push(...(await checkOidc(target)));
  return checks;
}

export const consistent = (checks: readonly VerifyCheck[]) => checks.every((c) => c.ok);
