/**
 * The auth service (mxstack's built-in identity provider), one process:
 *
 *   node bin/mxstack-auth.js --config <config.json> [--secrets-dir <dir>]
 *
 * config.json is an `AuthServiceConfig` (src/components/auth/service-config.ts). The secret files
 * (`authSecretFiles`: database-password, client-secret, sealing-keyring, recovery-code-key, cookie-keys,
 * signing-jwks, admin-token) are read from `--secrets-dir`, or else from the config's `secretsDir`; never
 * from the environment or the command line.
 *
 * At start: connects to PostgreSQL (config.database, password from database-password), creates the auth
 * database when missing, applies schema.sql, then serves pages + OpenID Connect on `listen` and the admin
 * API on `adminListen` (/health on both). SIGTERM/SIGINT: stops accepting, finishes requests, exits 0.
 * Logs: one JSON line per event on stdout, never secrets.
 */
import type { Server } from 'node:http';
import pg from 'pg';
import * as repo from '../repository.js';
import type { AuthServiceConfig } from '../service-config.js';
import type { AuthContext } from '../sign-in.js';
import { loadConfig, loadSecrets, parseArguments, secretsDirectory, type ServiceSecrets } from './config.js';
import { pruneExpiredPayloads } from './adapter.js';
import { accountNow } from './account-state.js';
import { createProvider } from './provider.js';
import { adminHandler, listen, publicHandler } from './server.js';
import { SessionStore } from './sessions.js';
import type { Service } from './service.js';
import { log } from './log.js';

type Ssl = pg.PoolConfig['ssl'];

/** node-postgres has no libpq `prefer`: the service tries TLS first and falls back when the server has none. */
function sslFor(sslmode: string): Ssl | 'prefer' {
  if (sslmode === 'disable' || sslmode === 'allow' || sslmode === '') return false;
  if (sslmode === 'require') return { rejectUnauthorized: false };
  if (sslmode === 'verify-ca') return { rejectUnauthorized: true, checkServerIdentity: () => undefined };
  if (sslmode === 'verify-full') return { rejectUnauthorized: true };
  return 'prefer';
}

function poolFor(config: AuthServiceConfig, secrets: ServiceSecrets, database: string, ssl: Ssl): pg.Pool {
  const { host, port, user } = config.database;
  const pool = new pg.Pool({ host, port, user, password: secrets.databasePassword, database, ssl, max: 8, connectionTimeoutMillis: 10_000 });
  pool.on('error', (error) => log('database-connection-error', { database, message: error.message }));
  return pool;
}

async function chooseSsl(config: AuthServiceConfig, secrets: ServiceSecrets): Promise<Ssl> {
  const mode = sslFor(config.database.sslmode);
  if (mode !== 'prefer') return mode;
  const probe = poolFor(config, secrets, config.database.synapseDatabase, { rejectUnauthorized: false });
  try {
    await withStartupRetry(() => probe.query('SELECT 1'));
    return { rejectUnauthorized: false };
  } catch (error) {
    if (/does not support SSL/i.test((error as Error).message)) return false;
    throw new Error(`cannot connect to PostgreSQL on ${config.database.host}:${config.database.port} as ${config.database.user}: ${(error as Error).message}`);
  } finally {
    await probe.end();
  }
}

/** Errors of a server that is not up yet (or restarting): worth waiting for, within a bound. */
const notReadyCodes = new Set(['ECONNREFUSED', 'ENOENT', 'ETIMEDOUT', 'EAI_AGAIN', '57P03']);
const startupWaitMs = 60_000;

async function withStartupRetry<T>(attempt: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + startupWaitMs;
  for (let tries = 1; ; tries++) {
    try {
      return await attempt();
    } catch (error) {
      const code = (error as { code?: string }).code ?? '';
      if (!notReadyCodes.has(code) || Date.now() > deadline) throw error;
      if (tries === 1) log('database-waiting', { reason: code });
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
}

/** Creates the auth database when it does not exist (through the Synapse database, which does). */
async function ensureDatabase(config: AuthServiceConfig, secrets: ServiceSecrets, ssl: Ssl): Promise<void> {
  const probe = poolFor(config, secrets, config.database.database, ssl);
  try {
    await withStartupRetry(() => probe.query('SELECT 1'));
    return;
  } catch (error) {
    if ((error as { code?: string }).code !== '3D000') throw new Error(`cannot connect to the auth database ${config.database.database} on ${config.database.host}:${config.database.port} as ${config.database.user}: ${(error as Error).message}`);
  } finally {
    await probe.end();
  }
  const admin = poolFor(config, secrets, config.database.synapseDatabase, ssl);
  try {
    await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(config.database.database)}`);
    log('database-created', { database: config.database.database });
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === '42P04') return; // created meanwhile by another replica
    if (code === '42501') throw new Error(`the auth database ${config.database.database} does not exist and the role ${config.database.user} may not create it (CREATEDB); create it as a superuser: CREATE DATABASE ${config.database.database} OWNER ${config.database.user}`);
    throw new Error(`cannot create the auth database ${config.database.database}: ${(error as Error).message}`);
  } finally {
    await admin.end();
  }
}

export async function startService(argv: readonly string[]): Promise<{ stop(): Promise<void> }> {
  const args = parseArguments(argv);
  const config = loadConfig(args.configPath);
  const secrets = loadSecrets(secretsDirectory(args, config));
  const ssl = await chooseSsl(config, secrets);
  await ensureDatabase(config, secrets, ssl);
  const db = poolFor(config, secrets, config.database.database, ssl);
  const synapseDb = poolFor(config, secrets, config.database.synapseDatabase, ssl);
  await repo.migrate(db);
  const { policy } = config;
  const auth: AuthContext = {
    db,
    throttlePolicy: { maxFailures: policy.lockout.maxFailures, lockoutMs: policy.lockout.durationSeconds * 1000, failureWindowMs: policy.lockout.failureWindowSeconds * 1000 },
    passwordOptions: {},
    totpPolicy: { issuer: policy.totp.issuer, digits: policy.totp.digits, period: policy.totp.period, algorithm: policy.totp.algorithm },
    sealing: secrets.sealing,
    recoveryCodeKey: secrets.recoveryCodeKey,
    clock: Date.now,
  };
  const accountSources = { db, synapseDb, serverName: config.serverName, clock: auth.clock };
  const provider = createProvider(config, secrets, db, { accountNow: (username) => accountNow(accountSources, username), clock: auth.clock });
  const service: Service = { config, secrets, db, synapseDb, auth, provider, sessions: new SessionStore(db, config.pathPrefix, config.secureCookies) };
  const servers: Server[] = [await listen(publicHandler(service), config.listen), await listen(adminHandler(service), config.adminListen)];
  const pruning = setInterval(() => {
    pruneExpiredPayloads(db).catch((error: unknown) => log('prune-failed', { message: (error as Error).message }));
  }, 10 * 60_000);
  pruning.unref();
  log('started', { issuer: config.issuer, listen: `${config.listen.host}:${config.listen.port}`, admin: `${config.adminListen.host}:${config.adminListen.port}` });
  return {
    async stop() {
      clearInterval(pruning);
      await Promise.all(
        servers.map(
          (server) =>
            new Promise<void>((resolve) => {
              server.close(() => resolve());
              server.closeIdleConnections();
            }),
        ),
      );
      await Promise.all([db.end(), synapseDb.end()]);
    },
  };
}

export async function main(argv: readonly string[]): Promise<number> {
  let running: { stop(): Promise<void> };
  try {
    running = await startService(argv);
  } catch (error) {
    log('start-failed', { message: (error as Error).message });
    process.stderr.write(`mxstack-auth: ${(error as Error).message}\n`);
    return 1;
  }
  await new Promise<void>((resolve) => {
    const stop = (signal: string): void => {
      log('stopping', { signal });
      resolve();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  const forced = setTimeout(() => {
    log('stop-timeout', {});
    process.exit(1);
  }, 20_000);
  forced.unref();
  await running.stop();
  log('stopped', {});
  return 0;
}
