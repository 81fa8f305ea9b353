/**
 * The built-in identity provider's sign-in cost (the auth service, src/auth-service). Prints
 * numbers; never passes or fails.
 *
 *   npm run bench:auth -- [--sign-ins 20] [--concurrency 4] [--hash-runs 20] [--bcrypt-runs 5] [--budget-seconds 110]
 *
 * Needs root and the runtime (a throwaway PostgreSQL from it, test/support/auth-postgres.ts); the real
 * service runs as a child process (test/support/auth-service.ts). In one run:
 * 1. argon2id alone, in this process: `hashPassword` and `checkPassword` on an argon2id hash, and the
 *    one-time import check of a Synapse bcrypt hash (bcryptjs, cost 12) for comparison;
 * 2. full OpenID Connect sign-ins driven with fetch (authorize with PKCE S256 -> password form -> TOTP form
 *    -> code at the client's redirect URI -> /token), sequential and then with C in flight. Every sign-in
 *    uses its own account, enrolled before timing (password through the admin API, a confirmed TOTP secret
 *    through the repository functions), so no TOTP code is ever a replay;
 * 3. the service's resident memory (VmRSS, and the peak VmHWM, of its process): idle after start, after the
 *    enrolment (the admin API hashed every password), after each run.
 * Everything is bounded by --budget-seconds; PostgreSQL and the service are stopped at the end, even on error.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import bcrypt from 'bcryptjs';
import * as OTPAuth from 'otpauth';
import { checkPassword, defaultArgon2idParameters, hashPassword } from '../src/auth-service/password.js';
import { findAccount, saveTotp, useTotpStep } from '../src/auth-service/repository.js';
import { seal } from '../src/stack/secrets/secret-box.js';
import { parseSealingKeyring } from '../src/stack/secrets/auth-keys.js';
import { generateTotpSecret } from '../src/auth-service/totp.js';
import { authAdminRoutes, authSecretFiles } from '../src/components/auth/service-config.js';
import { authPostgresSkipReason, startAuthPostgres, type AuthPostgres } from '../test/support/auth-postgres.js';
import { startAuthService, TestBrowser, type AuthServiceHandle, type Page } from '../test/support/auth-service.js';

const { values: args } = parseArgs({
  options: {
    'sign-ins': { type: 'string', default: '20' },
    concurrency: { type: 'string', default: '4' },
    'hash-runs': { type: 'string', default: '20' },
    'bcrypt-runs': { type: 'string', default: '5' },
    'budget-seconds': { type: 'string', default: '110' },
  },
});
const signIns = positiveInteger('sign-ins');
const concurrency = positiveInteger('concurrency');
const hashRuns = positiveInteger('hash-runs');
const bcryptRuns = positiveInteger('bcrypt-runs');
const budgetMs = positiveInteger('budget-seconds') * 1000;

const redirectUri = 'http://127.0.0.1:9/_synapse/client/oidc/callback';
const serverName = 'example.test';
const totpShape = { digits: 6, period: 30, algorithm: 'SHA1' } as const;
const progress = (line: string): void => void process.stderr.write(`${line}\n`);
const load = (): string => loadavg().map((value) => value.toFixed(2)).join(' ');

function positiveInteger(name: string): number {
  const value = Number(args[name as keyof typeof args]);
  if (!Number.isInteger(value) || value < 1) {
    process.stderr.write(`--${name} must be a positive integer, got ${String(args[name as keyof typeof args])}\n`);
    process.exit(2);
  }
  return value;
}

/** Nearest-rank percentile. */
function percentile(samples: readonly number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

async function timeEach(runs: number, work: () => Promise<unknown>): Promise<number[]> {
  const samples: number[] = [];
  for (let run = 0; run < runs; run++) {
    const t0 = performance.now();
    await work();
    samples.push(performance.now() - t0);
  }
  return samples;
}

interface Row {
  readonly what: string;
  readonly n: number;
  readonly p50: string;
  readonly p95: string;
  readonly extra: string;
}

const ms = (value: number): string => value.toFixed(1);
const row = (what: string, samples: readonly number[], extra = ''): Row => ({ what, n: samples.length, p50: ms(percentile(samples, 50)), p95: ms(percentile(samples, 95)), extra });

function table(rows: readonly Row[]): string {
  const header = ['measure', 'n', 'p50 ms', 'p95 ms', ''];
  const cells = [header, ...rows.map((r) => [r.what, String(r.n), r.p50, r.p95, r.extra])];
  const widths = header.map((_, column) => Math.max(...cells.map((line) => line[column]!.length)));
  return cells.map((line) => line.map((cell, column) => (column === 0 || column === 4 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join('  ').trimEnd()).join('\n');
}

/** The service's process: this process's child running bin/mxstack-auth.js (the handle does not expose it). */
function servicePid(): number {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (parent === process.pid && readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes('mxstack-auth.js')) return Number(entry);
    } catch {
      // the process ended while we looked
    }
  }
  throw new Error('the auth service process (a child running bin/mxstack-auth.js) was not found in /proc');
}

function memoryOf(pid: number): { rssMiB: number; peakMiB: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rssMiB: kib('VmRSS') / 1024, peakMiB: kib('VmHWM') / 1024 };
}

interface BenchAccount {
  readonly username: string;
  readonly password: string;
  readonly totp: OTPAuth.TOTP;
}

async function admin(service: AuthServiceHandle, path: string, method: string, body: unknown): Promise<void> {
  const response = await fetch(service.adminUrl + path, {
    method,
    headers: { authorization: `Bearer ${service.adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
  if (!response.ok) throw new Error(`admin ${method} ${path}: HTTP ${response.status} ${await response.text()}`);
}

/**
 * Accounts as they are after a user enrolled TOTP: the Synapse user (the service reads it at every sign-in),
 * the password set through the admin API (argon2id, hashed by the service), a confirmed TOTP secret sealed
 * with the service's own keyring.
 */
async function enrolAccounts(postgres: AuthPostgres, service: AuthServiceHandle, prefix: string, count: number): Promise<BenchAccount[]> {
  const synapse = postgres.poolFor('synapse');
  const auth = postgres.poolFor(service.config.database.database);
  const { current } = parseSealingKeyring(readFileSync(join(service.secretsDir, authSecretFiles.sealingKeyring), 'utf8'));
  const accounts: BenchAccount[] = [];
  for (let index = 0; index < count; index++) {
    const username = `${prefix}${String(index).padStart(3, '0')}`;
    const password = `bench-${randomBytes(9).toString('base64url')}`;
    await synapse.query('INSERT INTO users (name, password_hash, admin, deactivated) VALUES ($1, NULL, 0, 0)', [`@${username}:${serverName}`]);
    await admin(service, authAdminRoutes.password(username), 'PUT', { password });
    const account = await findAccount(auth, username);
    if (!account) throw new Error(`the admin API did not create the account ${username}`);
    const secret = generateTotpSecret(totpShape.algorithm);
    await saveTotp(auth, account.id, { sealedSecret: seal(secret, current, account.id), ...totpShape });
    if (!(await useTotpStep(auth, account.id, 0, true))) throw new Error(`could not confirm the TOTP secret of ${username}`);
    accounts.push({ username, password, totp: new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(secret), ...totpShape }) });
  }
  return accounts;
}

interface FlowTiming {
  readonly totalMs: number;
  readonly passwordMs: number;
}

let addressCounter = 1;

function expectPage(page: Page, formId: string): void {
  if (page.status !== 200 || !page.body.includes(`<form id="${formId}"`)) throw new Error(`expected the form #${formId}, got HTTP ${page.status} ${page.url.href}: ${page.body.slice(0, 300)}`);
}

/** One full sign-in as Synapse and a browser do it; throws on any unexpected answer. */
async function signIn(service: AuthServiceHandle, account: BenchAccount): Promise<FlowTiming> {
  const browser = new TestBrowser(`198.51.${Math.floor(addressCounter / 250)}.${(addressCounter++ % 250) + 1}`);
  const atCallback = (url: URL): boolean => url.href.startsWith(redirectUri);
  const verifier = randomBytes(32).toString('base64url');
  const state = randomBytes(8).toString('hex');
  const t0 = performance.now();
  const authorize = new URL(`${service.issuer}/authorize`);
  authorize.search = new URLSearchParams({
    client_id: 'synapse',
    response_type: 'code',
    scope: 'openid profile',
    redirect_uri: redirectUri,
    state,
    nonce: randomBytes(8).toString('hex'),
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
  }).toString();
  const signInPage = await browser.follow(await browser.request(authorize));
  expectPage(signInPage, 'sign-in-form');
  const p0 = performance.now();
  const totpPage = await browser.submit(signInPage, 'sign-in-form', { username: account.username, password: account.password });
  const passwordMs = performance.now() - p0;
  expectPage(totpPage, 'totp-form');
  const done = await browser.submit(totpPage, 'totp-form', { code: account.totp.generate() }, atCallback);
  if (!done.location || !atCallback(done.location) || done.location.searchParams.get('state') !== state) {
    throw new Error(`expected the redirect to the client after the TOTP code, got HTTP ${done.status} ${done.url.href}: ${done.body.slice(0, 300)}`);
  }
  const response = await fetch(`${service.issuer}/token`, {
    method: 'POST',
    headers: { authorization: `Basic ${Buffer.from(`synapse:${service.clientSecret}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'authorization_code', code: done.location.searchParams.get('code') ?? '', redirect_uri: redirectUri, code_verifier: verifier }).toString(),
    signal: AbortSignal.timeout(30_000),
  });
  const tokens = (await response.json()) as Record<string, unknown>;
  if (response.status !== 200 || typeof tokens.id_token !== 'string') throw new Error(`/token answered HTTP ${response.status}: ${JSON.stringify(tokens).slice(0, 300)}`);
  return { totalMs: performance.now() - t0, passwordMs };
}

interface BatchResult {
  readonly timings: FlowTiming[];
  readonly errors: string[];
  readonly wallMs: number;
}

/** Runs one sign-in per account with `inFlight` at a time; failures are counted, not retried. */
async function runBatch(service: AuthServiceHandle, accounts: readonly BenchAccount[], inFlight: number): Promise<BatchResult> {
  const timings: FlowTiming[] = [];
  const errors: string[] = [];
  let next = 0;
  const t0 = performance.now();
  const worker = async (): Promise<void> => {
    while (next < accounts.length) {
      const account = accounts[next++]!;
      await signIn(service, account).then(
        (timing) => void timings.push(timing),
        (error: unknown) => void errors.push(`${account.username}: ${(error as Error).message}`),
      );
    }
  };
  await Promise.all(Array.from({ length: Math.min(inFlight, accounts.length) }, worker));
  return { timings, errors, wallMs: performance.now() - t0 };
}

async function bench(resources: { postgres?: AuthPostgres; service?: AuthServiceHandle }): Promise<string> {
  const loadBefore = load();
  progress('starting PostgreSQL (runtime) and the auth service');
  const postgres = (resources.postgres = await startAuthPostgres());
  await postgres.createDatabase('synapse');
  // The columns of Synapse's `users` table the service reads (as in test/integration/auth-service.test.ts).
  await postgres.poolFor('synapse').query('CREATE TABLE users (name text NOT NULL UNIQUE, password_hash text, creation_ts bigint, admin smallint DEFAULT 0 NOT NULL, deactivated smallint DEFAULT 0 NOT NULL)');
  const service = (resources.service = await startAuthService({ postgres, redirectUri, serverName }));
  const pid = servicePid();
  await new Promise((resolve) => setTimeout(resolve, 2000));
  const idle = memoryOf(pid);

  progress(`argon2id in this process: ${hashRuns} hashPassword, ${hashRuns} checkPassword`);
  const password = `bench-${randomBytes(9).toString('base64url')}`;
  const hashSamples = await timeEach(hashRuns, () => hashPassword(password));
  const argonHash = await hashPassword(password);
  const checkSamples = await timeEach(hashRuns, async () => {
    if (!(await checkPassword(argonHash, password)).ok) throw new Error('checkPassword refused the right password');
  });
  progress(`Synapse bcrypt (bcryptjs cost 12): ${bcryptRuns} compare, ${bcryptRuns} checkPassword (compare + argon2id re-hash)`);
  const bcryptHash = await bcrypt.hash(password, 12);
  const bcryptCompareSamples = await timeEach(bcryptRuns, async () => {
    if (!(await bcrypt.compare(password, bcryptHash))) throw new Error('bcrypt refused the right password');
  });
  const importSamples = await timeEach(bcryptRuns, async () => {
    const check = await checkPassword(bcryptHash, password);
    if (!check.ok || !check.replacementHash) throw new Error('the bcrypt import check did not re-hash');
  });

  progress(`enrolling ${2 * signIns} accounts (admin API password + confirmed TOTP)`);
  const sequentialAccounts = await enrolAccounts(postgres, service, 'seq', signIns);
  const concurrentAccounts = await enrolAccounts(postgres, service, 'con', signIns);
  const afterEnrolment = memoryOf(pid);

  progress(`${signIns} sign-ins, sequential`);
  const sequential = await runBatch(service, sequentialAccounts, 1);
  const afterSequential = memoryOf(pid);
  progress(`${signIns} sign-ins, ${concurrency} in flight`);
  const concurrent = await runBatch(service, concurrentAccounts, concurrency);
  const afterConcurrent = memoryOf(pid);

  const batchRows = (label: string, batch: BatchResult): Row[] => {
    const rate = `${((batch.timings.length / batch.wallMs) * 1000).toFixed(2)} flows/s, ${batch.errors.length} errors, wall ${(batch.wallMs / 1000).toFixed(1)} s`;
    return [row(`${label}: whole flow`, batch.timings.map((t) => t.totalMs), rate), row(`${label}: password step`, batch.timings.map((t) => t.passwordMs))];
  };
  const mib = (value: number): string => `${value.toFixed(1)} MiB`;
  const { memoryCost, timeCost, parallelism } = defaultArgon2idParameters;
  const lines = [
    `auth service sign-in benchmark, ${new Date().toISOString()}, load ${loadBefore} -> ${load()}`,
    `argon2id m=${memoryCost} KiB t=${timeCost} p=${parallelism}; TOTP ${totpShape.algorithm} ${totpShape.digits} digits / ${totpShape.period} s`,
    '',
    table([
      row('hashPassword (argon2id)', hashSamples),
      row('checkPassword (argon2id hash)', checkSamples),
      row('bcrypt.compare (cost 12, bcryptjs)', bcryptCompareSamples),
      row('checkPassword (Synapse bcrypt import)', importSamples, 'compare + argon2id re-hash'),
      ...batchRows('sign-in sequential', sequential),
      ...batchRows(`sign-in ${concurrency} in flight`, concurrent),
    ]),
    '',
    `service memory (pid ${pid}): idle ${mib(idle.rssMiB)}, after enrolment ${mib(afterEnrolment.rssMiB)}, after sequential ${mib(afterSequential.rssMiB)}, after concurrent ${mib(afterConcurrent.rssMiB)}; peak (VmHWM) ${mib(afterConcurrent.peakMiB)}`,
    ...[...sequential.errors, ...concurrent.errors].slice(0, 5).map((error) => `error: ${error}`),
    '',
  ];
  return lines.join('\n');
}

const resources: { postgres?: AuthPostgres; service?: AuthServiceHandle } = {};
let cleaning: Promise<void> | undefined;
const cleanUp = (): Promise<void> =>
  (cleaning ??= (async () => {
    progress('stopping the auth service and PostgreSQL');
    await resources.service?.stop().catch((error: unknown) => progress(`stopping the service: ${(error as Error).message}`));
    await resources.postgres?.stop().catch((error: unknown) => progress(`stopping PostgreSQL: ${(error as Error).message}`));
  })());

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void cleanUp().finally(() => process.exit(130)));
}

const skip = authPostgresSkipReason();
if (skip) {
  process.stderr.write(`cannot run: ${skip}\n`);
  process.exit(2);
}
let budgetTimer: NodeJS.Timeout | undefined;
const overBudget = new Promise<never>((_, reject) => {
  budgetTimer = setTimeout(() => reject(new Error(`over the budget of ${budgetMs / 1000} s (--budget-seconds)`)), budgetMs);
});
let exitCode = 0;
try {
  process.stdout.write(await Promise.race([bench(resources), overBudget]));
} catch (error) {
  process.stderr.write(`benchmark failed: ${(error as Error).message}\n${resources.service ? resources.service.output().slice(-2000) : ''}\n`);
  exitCode = 1;
} finally {
  clearTimeout(budgetTimer);
  await cleanUp();
}
// Requests still in flight after a budget overrun would keep the event loop alive.
process.exit(exitCode);
