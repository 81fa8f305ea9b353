/** PostgreSQL tuning and initialisation. */
import type { Stack } from '../../stack/model.js';
import { postgresqlMaxConnections } from '../../values/worker-pools.js';

/** PostgreSQL memory units are case-sensitive: `256MB` works, `256Mb` or `256Mi` stop the server. */
const sizePattern = /^[0-9]+(B|kB|MB|GB|TB)?$/;

function checkedSize(path: string, value: string): string {
  if (!sizePattern.test(value)) {
    throw new Error(`postgresql.config.${path}: "${value}" is not a PostgreSQL size; write a number with B, kB, MB, GB or TB (for example 256MB).`);
  }
  return value;
}

/** postgresql.conf parameters from values (listen address and port come from the placement). */
export function postgresqlSettings(stack: Stack): Record<string, string | number> {
  const config = stack.values.postgresql.config;
  return {
    listen_addresses: stack.placement.bindAddress,
    port: stack.placement.ports.postgresql,
    max_connections: postgresqlMaxConnections(stack.values),
    shared_buffers: checkedSize('sharedBuffers', config.sharedBuffers),
    effective_cache_size: checkedSize('effectiveCacheSize', config.effectiveCacheSize),
    maintenance_work_mem: checkedSize('maintenanceWorkMem', config.maintenanceWorkMem),
    work_mem: checkedSize('workMem', config.workMem),
    wal_level: config.walLevel,
    log_min_duration_statement: config.logMinDurationStatement,
    commit_delay: config.commitDelay,
    commit_siblings: config.commitSiblings,
    password_encryption: 'scram-sha-256',
    log_destination: 'stderr',
    logging_collector: 'off',
  };
}

/** A postgresql.conf value: numbers bare, strings single-quoted (quote doubled, backslash escaped). */
export function postgresqlConfValue(value: string | number): string {
  if (typeof value === 'number') return String(value);
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

export function renderPostgresqlConf(stack: Stack): string {
  return Object.entries(postgresqlSettings(stack))
    .map(([name, value]) => `${name} = ${postgresqlConfValue(value)}\n`)
    .join('');
}

/** initdb options that take a value, by every spelling, mapped to their long name. */
const valueOptions: Record<string, string> = {
  '-E': '--encoding',
  '--encoding': '--encoding',
  '--locale': '--locale',
  '--lc-collate': '--lc-collate',
  '--lc-ctype': '--lc-ctype',
  '--locale-provider': '--locale-provider',
  '--icu-locale': '--icu-locale',
  '--builtin-locale': '--builtin-locale',
  '-A': '--auth',
  '--auth': '--auth',
  '--auth-host': '--auth-host',
};

/** Splits the values string into `--name=value` / `--flag` tokens (`-E UTF8`, `--locale C` joined). */
export function initdbTokens(args: string): string[] {
  const words = args.split(/\s+/).filter((word) => word !== '');
  const tokens: string[] = [];
  for (let i = 0; i < words.length; i++) {
    const word = words[i]!;
    const [name = '', inlineValue] = word.startsWith('--') ? word.split(/=(.*)/s) : [word.slice(0, 2), word.slice(2) || undefined];
    const longName = valueOptions[name];
    if (longName === undefined) {
      tokens.push(word);
      continue;
    }
    const value = inlineValue ?? words[++i];
    if (value === undefined) throw new Error(`postgresql.initdbArgs: ${name} needs a value.`);
    tokens.push(`${longName}=${value}`);
  }
  return tokens;
}

/** What Synapse needs (UTF8, collation and ctype exactly C) and what keeps passwords off the wire. */
const requiredInitdbArgs = ['--encoding=UTF8', '--locale=C', '--auth=scram-sha-256'];

function initdbTokenProblem(token: string): string | undefined {
  const [name = '', value = ''] = token.split(/=(.*)/s);
  switch (name) {
    case '--encoding':
      return /^utf-?8$/i.test(value) ? undefined : `${token}: Synapse needs the UTF8 encoding`;
    case '--locale':
    case '--lc-collate':
    case '--lc-ctype':
      return value === 'C' ? undefined : `${token}: Synapse needs collation and ctype exactly C`;
    case '--locale-provider':
      return value === 'libc' ? undefined : `${token}: Synapse needs the libc C locale`;
    case '--icu-locale':
    case '--builtin-locale':
      return `${token}: Synapse needs the libc C locale`;
    case '--auth':
    case '--auth-host':
      return value === 'scram-sha-256' ? undefined : `${token}: connections must authenticate with scram-sha-256`;
    default:
      return undefined;
  }
}

/** `-E UTF-8` and `--encoding=utf8` are the required `--encoding=UTF8` written differently. */
const canonicalToken = (token: string): string => (/^--encoding=utf-?8$/i.test(token) ? '--encoding=UTF8' : token);

/** initdb arguments: UTF8, locale C, scram-sha-256, plus values' initdbArgs (deduplicated). */
export function postgresqlInitdbArgs(stack: Stack): string[] {
  const extra = initdbTokens(stack.values.postgresql.initdbArgs).map(canonicalToken);
  const problems = extra.flatMap((token) => initdbTokenProblem(token) ?? []);
  if (problems.length > 0) throw new Error(`postgresql.initdbArgs: ${problems.join('; ')}.`);
  return [...new Set([...requiredInitdbArgs, ...extra])];
}
