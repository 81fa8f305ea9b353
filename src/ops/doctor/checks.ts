/**
 * The doctor's checks, each written once against a DoctorEnvironment (what the target offers: the
 * Target of the operations, plus where clients reach the stack). Every check probes the running programs
 * the way a client or a federating server would; none trusts the configuration alone.
 */
import { isDeepStrictEqual } from 'node:util';
import { connect as connectTls } from 'node:tls';
import { isIP } from 'node:net';
import type { Target } from '../../targets/target.js';
import { renderWellKnownClient, renderWellKnownServer } from '../../components/wellknown/config.js';
import { synapseJoinedConfigPath } from '../../components/synapse/start.js';
import { signingKeyInfo } from '../../stack/secrets/generate.js';
import { withAuthAdmin } from '../auth-admin.js';
import { errorSentence, fail, pass, warn, type DoctorCheck } from './report.js';
import { parseTurnUri, StunErrorResponse, TurnClient } from './turn-client.js';
import { checkRedis, checkReplication } from './workers.js';

export interface ComponentHealth {
  component: string;
  healthy: boolean;
  /** What was seen (state, restarts, the probe's answer). */
  detail: string;
}

export interface MetricsProbe {
  url: string;
  /** HTTP status, undefined when nothing answered. */
  status?: number;
  body?: string;
  error?: string;
}

/** Everything the checks need from where the stack runs. */
export interface DoctorEnvironment {
  target: Target;
  /** Client API base URL (trailing slash) as clients reach it. */
  clientBaseUrl: string;
  /** Base URL (trailing slash) serving /.well-known/matrix/*: the server name's host for a real deployment. */
  wellKnownBaseUrl: string;
  /** Base URL (trailing slash) of the federation API, when federation is on. */
  federationBaseUrl?: string;
  /** Public endpoints whose TLS certificates are checked (plain http ones are reported as such). */
  publicUrls: string[];
  /** Extra CA certificates (PEM) trusted for the public endpoints and turns: URIs. */
  extraCa?: string;
  /** A reason no check can run (the stack is not running at all): then it is the only line. */
  notRunning?(): Promise<DoctorCheck | undefined>;
  componentHealth(): Promise<ComponentHealth[]>;
  probeMetrics(): Promise<MetricsProbe[]>;
  /** An access token of the admin user (Synapse-issued TURN credentials are asked for with it). */
  adminAccessToken(): Promise<string>;
  /** How to see a component's log on this target, for fixes. */
  logsHint(component: string): string;
  /**
   * With workers: runs `use` with a host and port where Redis answers, as the doctor reaches it (locally its
   * loopback address; on a cluster a port-forward to the Redis Service, closed after).
   */
  withRedis?<T>(use: (host: string, port: number) => Promise<T>): Promise<T>;
  /**
   * With workers: runs `use` with each live process of the sync pool, reached on its own HTTP listener
   * (bypassing the router): locally its loopback port; on a cluster a port-forward per Ready pod, closed after.
   */
  withSyncWorkers?<T>(use: (workers: WorkerEndpoint[]) => Promise<T>): Promise<T>;
  /**
   * The stack reached inside the deployment (a cluster: port-forwards), for public endpoints that are not
   * reachable from where the doctor runs: their checks run through it, and "not reachable from here" is
   * reported apart from "broken".
   */
  throughCluster?: ClusterAccess;
}

/** One Synapse worker process as the doctor reaches it. */
export interface WorkerEndpoint {
  /** Its name for messages: the local process (`synapse-sync-1`) or the pod. */
  name: string;
  /** Base URL (trailing slash) of its HTTP listener. */
  baseUrl: string;
}

export interface ClusterAccess {
  /** Runs `use` with a base URL (trailing slash) of the stack's router, reached inside the deployment. */
  withRouter<T>(use: (baseUrl: string) => Promise<T>): Promise<T>;
  /** Runs `use` with a host and port where coturn's plain TURN listener answers over TCP, reached inside the deployment. */
  withTurn?<T>(use: (host: string, port: number) => Promise<T>): Promise<T>;
}

/** Errors that mean "cannot get there from here" (name resolution, routing, no answer to connect), not a broken server. */
const unreachableCodes = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'UND_ERR_CONNECT_TIMEOUT']);

/**
 * The reason an endpoint is not reachable from here, or undefined when the error is something else. A
 * refused connection counts only where the check can then run inside the deployment (`refusedToo`): from
 * outside alone, "nothing listens" may just as well be a broken ingress.
 */
export function unreachableReason(error: unknown, refusedToo = false): string | undefined {
  for (let current: unknown = error; current instanceof Error; current = current.cause) {
    const code = (current as NodeJS.ErrnoException).code;
    if (code && (unreachableCodes.has(code) || (refusedToo && code === 'ECONNREFUSED'))) return current.message;
  }
  return undefined;
}

interface Unreachable {
  reason: string;
  /** What was checked through the cluster instead (paths, TURN transports). */
  checkedInside: Set<string>;
}

/** Per doctor run: the public endpoints found not reachable from here. */
const unreachableByRun = new WeakMap<DoctorEnvironment, Map<string, Unreachable>>();

function noteUnreachable(env: DoctorEnvironment, endpoint: string, reason: string, checkedInside?: string): void {
  let found = unreachableByRun.get(env);
  if (!found) unreachableByRun.set(env, (found = new Map()));
  const entry = found.get(endpoint) ?? { reason, checkedInside: new Set<string>() };
  if (checkedInside) entry.checkedInside.add(checkedInside);
  found.set(endpoint, entry);
}

/** One warning per public endpoint not reachable from here: what was checked inside instead, and what is left to check. */
export function reachabilityChecks(env: DoctorEnvironment): DoctorCheck[] {
  return [...(unreachableByRun.get(env) ?? new Map<string, Unreachable>())].map(([endpoint, entry]) => {
    const inside = [...entry.checkedInside];
    const instead = inside.length > 0 ? `; checked through the cluster instead: ${inside.join(', ')}` : '';
    return warn(
      `reachable ${endpoint}`,
      `not reachable from here (${entry.reason}): this says nothing about clients elsewhere${instead}.`,
      `run the doctor where clients are (or check there that ${endpoint} resolves and answers: DNS, the ingress or load balancer in front of the stack).`,
    );
  });
}

const httpTimeoutMs = 10_000;
export const certificateWarningDays = 14;

interface HttpAnswer {
  status: number;
  headers: Headers;
  text: string;
}

async function httpGet(url: string, headers: Record<string, string> = {}, method = 'GET', body?: string): Promise<HttpAnswer> {
  const response = await fetch(url, {
    method,
    headers: { ...headers, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body } : {}),
    redirect: 'manual',
    signal: AbortSignal.timeout(httpTimeoutMs),
  });
  return { status: response.status, headers: response.headers, text: await response.text() };
}

/**
 * A public URL as clients fetch it; when it is not reachable from here and the stack can be reached inside
 * the deployment, the same path through the router there (noted, so the report tells the two apart).
 */
async function publicGet(env: DoctorEnvironment, url: string, headers: Record<string, string> = {}, method = 'GET', body?: string): Promise<HttpAnswer> {
  try {
    return await httpGet(url, headers, method, body);
  } catch (error) {
    const reason = unreachableReason(error, true);
    if (reason === undefined || !env.throughCluster) throw error;
    const { origin, pathname, search } = new URL(url);
    noteUnreachable(env, origin, reason, pathname);
    return env.throughCluster.withRouter((base) => httpGet(new URL(`${pathname.slice(1)}${search}`, base).href, headers, method, body));
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Runs one check; an unexpected error becomes a fail naming it, so one broken probe never hides the others. */
async function guarded(name: string, fix: string, check: () => Promise<DoctorCheck | DoctorCheck[]>): Promise<DoctorCheck[]> {
  try {
    const result = await check();
    return Array.isArray(result) ? result : [result];
  } catch (error) {
    return [fail(name, errorSentence(error), fix)];
  }
}

// ---------------------------------------------------------------------------------------------------

export async function checkComponents(env: DoctorEnvironment): Promise<DoctorCheck[]> {
  return guarded('components', `see \`mxstack status\` on ${env.target.description}`, async () =>
    (await env.componentHealth()).map((health) => {
      const name = `component ${health.component}`;
      return health.healthy
        ? pass(name, health.detail)
        : fail(name, health.detail, `${health.component} is not healthy: read its log (${env.logsHint(health.component)}) and start it again.`);
    }),
  );
}

export async function checkWellKnown(env: DoctorEnvironment): Promise<DoctorCheck[]> {
  const { stack } = env.target;
  const checks: DoctorCheck[] = [];
  const serverUrl = new URL('.well-known/matrix/server', env.wellKnownBaseUrl).href;
  const expectedServer = renderWellKnownServer(stack);
  checks.push(
    ...(await guarded('well-known server', `make ${serverUrl} reachable (it is served by the router)`, async () => {
      const name = 'well-known server';
      if (expectedServer === undefined) return pass(name, 'federation is off: no server delegation to announce.');
      const answer = await publicGet(env, serverUrl);
      const fix = `serve ${JSON.stringify(expectedServer)} at ${serverUrl} with Content-Type application/json (the router does this; check the router and any proxy in front of it).`;
      if (answer.status !== 200) return fail(name, `${serverUrl} answered HTTP ${answer.status}.`, fix);
      const served = parseJson(answer.text) as Record<string, unknown> | undefined;
      if (!served || served['m.server'] !== expectedServer['m.server']) {
        return fail(name, `${serverUrl} serves ${answer.text.trim().slice(0, 200) || 'an empty body'}, expected m.server ${String(expectedServer['m.server'])}.`, fix);
      }
      return pass(name, `${serverUrl} delegates to ${String(served['m.server'])}.`);
    })),
  );
  const clientUrl = new URL('.well-known/matrix/client', env.wellKnownBaseUrl).href;
  checks.push(
    ...(await guarded('well-known client', `make ${clientUrl} reachable (it is served by the router)`, async () => {
      const name = 'well-known client';
      const expected = renderWellKnownClient(stack);
      const expectedBase = (expected['m.homeserver'] as { base_url: string }).base_url;
      const fix = `serve ${JSON.stringify(expected)} at ${clientUrl} with Content-Type application/json and Access-Control-Allow-Origin * (the router does this; check the router and any proxy in front of it).`;
      const answer = await publicGet(env, clientUrl, { origin: 'https://app.element.io' });
      if (answer.status !== 200) return fail(name, `${clientUrl} answered HTTP ${answer.status}.`, fix);
      const served = parseJson(answer.text) as Record<string, unknown> | undefined;
      if (!served) return fail(name, `${clientUrl} is not JSON: ${answer.text.trim().slice(0, 200) || 'an empty body'}.`, fix);
      const homeserver = served['m.homeserver'] as { base_url?: unknown } | undefined;
      if (!isDeepStrictEqual(homeserver?.base_url, expectedBase)) {
        return fail(name, `${clientUrl} names m.homeserver base_url ${JSON.stringify(homeserver?.base_url)}, expected ${expectedBase}.`, fix);
      }
      const cors = answer.headers.get('access-control-allow-origin');
      if (cors !== '*') return fail(name, `${clientUrl} is correct but has no Access-Control-Allow-Origin: * (got ${cors ?? 'none'}): web clients cannot read it.`, fix);
      const contentType = answer.headers.get('content-type') ?? '';
      if (!contentType.startsWith('application/json')) return warn(name, `${clientUrl} is correct and CORS-enabled but served as ${contentType || 'no content type'}.`, fix);
      return pass(name, `${clientUrl} names ${expectedBase}, JSON, CORS-enabled.`);
    })),
  );
  return checks;
}

export async function checkClientVersions(env: DoctorEnvironment): Promise<DoctorCheck[]> {
  const name = 'client versions';
  const url = new URL('_matrix/client/versions', env.clientBaseUrl).href;
  const fix = `make ${url} reach Synapse (router backend, ingress paths /_matrix and /_synapse/client); ${env.logsHint('router')}`;
  return guarded(name, fix, async () => {
    const answer = await publicGet(env, url);
    const versions = (parseJson(answer.text) as { versions?: unknown } | undefined)?.versions;
    if (answer.status !== 200 || !Array.isArray(versions)) return fail(name, `${url} answered HTTP ${answer.status} without a versions list.`, fix);
    return pass(name, `${url} lists ${versions.length} spec versions (newest ${String(versions[versions.length - 1])}).`);
  });
}

export async function checkSigningKey(env: DoctorEnvironment): Promise<DoctorCheck[]> {
  const name = 'federation signing key';
  const { stack } = env.target;
  const ref = stack.secrets.signingKey;
  if (!env.federationBaseUrl) return [pass(name, 'federation is off: no signing key is served to other servers.')];
  const url = new URL('_matrix/key/v2/server', env.federationBaseUrl).href;
  const fix = `Synapse must serve the key stored in ${ref.name}/${ref.key}: check that its signing_key_path file is that Secret and restart Synapse; other servers pin the key, so never replace a served key without an old_signing_keys entry.`;
  return guarded(name, fix, async () => {
    const stored = await env.target.readSecret(ref);
    if (stored === undefined) return fail(name, `no signing key is stored in ${ref.name}/${ref.key}.`, `run \`mxstack secrets init\` on ${env.target.description}.`);
    const key = signingKeyInfo(stored);
    const answer = await publicGet(env, url);
    const served = parseJson(answer.text) as { server_name?: string; verify_keys?: Record<string, { key?: string }> } | undefined;
    if (answer.status !== 200 || !served?.verify_keys) return fail(name, `${url} answered HTTP ${answer.status} without verify_keys.`, fix);
    if (served.server_name !== stack.serverName) return fail(name, `${url} is the key server of ${String(served.server_name)}, not ${stack.serverName}.`, fix);
    const servedKey = served.verify_keys[key.keyId]?.key;
    if (servedKey === undefined) return fail(name, `${url} serves ${Object.keys(served.verify_keys).join(', ') || 'no key'}, not the stored ${key.keyId}.`, fix);
    if (servedKey !== key.publicKey) return fail(name, `${url} serves a different public key under ${key.keyId} than the stored key.`, fix);
    return pass(name, `${url} serves ${key.keyId}, the stored key.`);
  });
}

interface TurnServerAnswer {
  uris?: string[];
  username?: string;
  password?: string;
  ttl?: number;
}

type TurnConnection = Parameters<typeof TurnClient.connect>[0];

interface AllocationOutcome {
  check: DoctorCheck;
  /** Set when nothing could be reached at all (then the cluster route may still check coturn). */
  unreachable?: string;
}

/** Allocate through one connection with the given credentials, then release; a check line with the fix for each failure mode. */
async function allocateWith(env: DoctorEnvironment, name: string, connection: TurnConnection, credentials: { username: string; password: string }, route: string): Promise<AllocationOutcome> {
  const secretRef = env.target.stack.secrets.turnSharedSecret;
  let client: TurnClient | undefined;
  try {
    client = await TurnClient.connect(connection);
    const allocation = await client.allocate(credentials);
    await client.release().catch(() => undefined);
    const relayed = `${allocation.relayedAddress.address}:${allocation.relayedAddress.port}`;
    if (client.tlsPeer && !client.tlsPeer.authorized) {
      return {
        check: warn(
          name,
          `Synapse's credentials allocated relay ${relayed}, but the TLS certificate is not trusted (${client.tlsPeer.authorizationError ?? 'unknown reason'}).`,
          'give coturn a certificate from a CA clients trust, for the host name in the turns: URI (coturn.tls.secretName).',
        ),
      };
    }
    return { check: pass(name, `Synapse's credentials allocated relay ${relayed} (lifetime ${allocation.lifetimeSeconds} s)${route} and released it.`) };
  } catch (error) {
    if (error instanceof StunErrorResponse && error.code === 401) {
      return {
        check: fail(
          name,
          `coturn refused the credentials Synapse handed out (401 Unauthorized)${route}: coturn's static-auth-secret is not Synapse's turn_shared_secret.`,
          `make both read the same secret ${secretRef.name}/${secretRef.key}: \`mxstack secrets verify\` shows which copy differs; restart coturn after fixing its configuration (locally \`mxstack down\` then \`mxstack up\` rewrites it).`,
        ),
      };
    }
    if (error instanceof StunErrorResponse) {
      return { check: fail(name, `coturn refused the allocation${route}: ${error.message}.`, `read coturn's log (${env.logsHint('coturn')}); 486 means the user quota (coturn.userQuota) is used up, 508 no free relay port.`) };
    }
    const reason = unreachableReason(error, true);
    return {
      check: fail(
        name,
        `no TURN answer${route}: ${errorSentence(error)}.`,
        `start coturn and make ${connection.host}:${connection.port}/${connection.transport} reachable from clients (firewall, Service or LoadBalancer ports); ${env.logsHint('coturn')}.`,
      ),
      ...(reason !== undefined ? { unreachable: reason } : {}),
    };
  } finally {
    client?.close();
  }
}

/**
 * Allocate against one URI; when its host is not reachable from here and coturn can be reached inside the
 * deployment, allocate there (over TCP) instead, and note the endpoint as not reachable from here.
 */
async function allocateThrough(env: DoctorEnvironment, uri: string, credentials: { username: string; password: string }): Promise<DoctorCheck> {
  const name = `TURN ${uri}`;
  let target: ReturnType<typeof parseTurnUri>;
  try {
    target = parseTurnUri(uri);
  } catch {
    return fail(name, `not a TURN URI.`, 'fix synapse.server.turn.uris (turn:host:port?transport=udp|tcp, turns:host:port?transport=tcp).');
  }
  const direct: TurnConnection = {
    host: target.host,
    port: target.port,
    transport: target.transport,
    timeoutMs: 5000,
    ...(target.secure ? { tls: { rejectUnauthorized: false, ...(env.extraCa ? { ca: env.extraCa } : {}) } } : {}),
  };
  const outcome = await allocateWith(env, name, direct, credentials, '');
  const inside = env.throughCluster?.withTurn;
  if (outcome.unreachable === undefined || !inside) return outcome.check;
  noteUnreachable(env, `${target.host}:${target.port}`, outcome.unreachable, `TURN allocation for ${uri}`);
  return (await inside((host, port) => allocateWith(env, name, { host, port, transport: 'tcp', timeoutMs: 5000 }, credentials, ' through the cluster (coturn Service, TCP)'))).check;
}

export async function checkTurn(env: DoctorEnvironment): Promise<DoctorCheck[]> {
  const { stack } = env.target;
  if (!stack.values.synapse.server.turn.enabled) return [pass('TURN', 'TURN is off (synapse.server.turn.enabled false): calls use direct connections only.')];
  const url = new URL('_matrix/client/v3/voip/turnServer', env.clientBaseUrl).href;
  const name = 'TURN credentials';
  let answer: TurnServerAnswer | undefined;
  const early = await guarded(name, `check that Synapse answers ${url}`, async () => {
    const token = await env.adminAccessToken();
    const response = await publicGet(env, url, { authorization: `Bearer ${token}` });
    if (response.status !== 200) return fail(name, `${url} answered HTTP ${response.status}.`, `read Synapse's log (${env.logsHint('synapse')}).`);
    answer = parseJson(response.text) as TurnServerAnswer | undefined;
    return [];
  });
  if (early.length > 0) return early;
  if (!answer?.username || !answer.password || !answer.uris?.length) {
    return [
      fail(name, 'Synapse hands out no TURN credentials (turn_uris or turn_shared_secret missing).', 'set synapse.server.turn.uris or enable coturn, and store the TURN shared secret.'),
    ];
  }
  const credentials = { username: answer.username, password: answer.password };
  const checks: DoctorCheck[] = [];
  for (const uri of answer.uris) checks.push(await allocateThrough(env, uri, credentials));
  return checks;
}

/**
 * Python run in the Synapse container with the path of its secret config: connects with Synapse's own
 * database settings (whatever their source: values, Secrets, an operator) and prints
 * `encoding|collate|ctype|database` of the database it uses. Nothing secret is printed.
 */
export const synapseDatabaseProbeScript = [
  'import sys, yaml, psycopg2',
  "args = yaml.safe_load(open(sys.argv[1]))['database']['args']",
  "keys = ('user', 'password', 'dbname', 'host', 'port', 'sslmode', 'sslrootcert')",
  'connection = psycopg2.connect(**{key: args[key] for key in keys if key in args})',
  'cursor = connection.cursor()',
  "cursor.execute('SELECT pg_encoding_to_char(encoding), datcollate, datctype, datname FROM pg_database WHERE datname = current_database()')",
  "print('|'.join(cursor.fetchone()))",
].join('\n');

/** The verdict on `encoding|collate|ctype` of a database (an empty line: it does not exist). */
export function databaseLocaleVerdict(name: string, database: string, line: string, recreate: string): DoctorCheck {
  if (!line) return fail(name, `database ${database} does not exist.`, recreate);
  const [encoding, collate, ctype] = line.split('|');
  const seen = `encoding ${encoding}, LC_COLLATE ${collate}, LC_CTYPE ${ctype}`;
  if (encoding !== 'UTF8' || collate !== 'C' || ctype !== 'C') return fail(name, `database ${database} has ${seen}; Synapse needs UTF8 and C.`, recreate);
  return pass(name, `database ${database}: ${seen}.`);
}

/** An external database (its fields may come from Secrets): asked through Synapse's own connection. */
async function checkExternalDatabase(env: DoctorEnvironment, name: string): Promise<DoctorCheck[]> {
  const { stack } = env.target;
  const recreate = 'Synapse needs its database created with `createdb --encoding=UTF8 --locale=C --template=template0 --owner=<user> <name>` (CloudNativePG: bootstrap.initdb with encoding UTF8, localeCollate C, localeCType C): dump it, create it again that way, restore the dump.';
  // The config Synapse's start step joined: the database block with the fields and password from Secrets.
  const configPath = synapseJoinedConfigPath(stack);
  return guarded(name, `is Synapse running, and does it reach its database? Read its log (${env.logsHint('synapse')}).`, async () => {
    const result = await env.target.exec('synapse', ['python3', '-c', synapseDatabaseProbeScript, configPath], { timeoutMs: 60_000 });
    if (result.exitCode !== 0) {
      return fail(name, `Synapse's database connection failed: ${result.stderr.trim().split('\n').pop() ?? 'no message'}.`, `check synapse.database (and its Secrets); ${env.logsHint('synapse')}`);
    }
    const line = result.stdout.trim();
    const database = line.split('|')[3] ?? stack.database.name;
    return databaseLocaleVerdict(name, database, line, recreate);
  });
}

/** Encoding and locale of the database as PostgreSQL reports them (the role's own view: pg_database). */
export async function checkDatabase(env: DoctorEnvironment): Promise<DoctorCheck[]> {
  const name = 'database encoding and locale';
  const { stack } = env.target;
  if (stack.database.provider === 'external' || !stack.values.postgresql.enabled) return checkExternalDatabase(env, name);
  const recreate = `Synapse needs the database created with \`createdb --encoding=UTF8 --locale=C --template=template0 --owner=${stack.database.user} ${stack.database.name}\`: dump it (pg_dump), create it again that way, restore the dump.`;
  return guarded(name, `is PostgreSQL running? Read its log (${env.logsHint('postgresql')}).`, async () => {
    const query = `SELECT pg_encoding_to_char(encoding) || '|' || datcollate || '|' || datctype FROM pg_database WHERE datname = '${stack.database.name.replace(/'/g, "''")}'`;
    // psql as the database's superuser on the component's own socket (the target knows where).
    const result = await env.target.exec('postgresql', [...env.target.postgresqlTool('psql'), '-X', '-tA', '-d', 'postgres', '-c', query], {
      user: 'postgres',
      timeoutMs: 30_000,
    });
    if (result.exitCode !== 0) return fail(name, `psql failed: ${result.stderr.trim().split('\n').pop() ?? 'no message'}.`, `is PostgreSQL running? ${env.logsHint('postgresql')}`);
    return databaseLocaleVerdict(name, stack.database.name, result.stdout.trim(), recreate);
  });
}

/** Asks Synapse itself which registration flows it offers (a POST without auth creates nothing). */
export async function checkRegistration(env: DoctorEnvironment): Promise<DoctorCheck[]> {
  const name = 'registration';
  const url = new URL('_matrix/client/v3/register', env.clientBaseUrl).href;
  return guarded(name, `check that Synapse answers ${url}`, async () => {
    const answer = await publicGet(env, url, {}, 'POST', '{}');
    const body = parseJson(answer.text) as { flows?: { stages?: string[] }[]; errcode?: string } | undefined;
    if (answer.status === 403) return pass(name, 'registration is closed (accounts are created by an admin or through SSO).');
    if (answer.status !== 401 || !Array.isArray(body?.flows)) return fail(name, `${url} answered HTTP ${answer.status} unexpectedly.`, `read Synapse's log (${env.logsHint('synapse')}).`);
    const verification = new Set(['m.login.email.identity', 'm.login.msisdn', 'm.login.registration_token', 'm.login.recaptcha']);
    const unverified = body.flows.filter((flow) => !(flow.stages ?? []).some((stage) => verification.has(stage)));
    const offered = body.flows.map((flow) => (flow.stages ?? []).join('+') || '(none)').join(', ');
    if (unverified.length > 0) {
      return warn(
        name,
        `registration is open without verification (flows: ${offered}): anyone can create accounts, spammers included.`,
        'require a token (synapse.server.registration.requireToken, `mxstack registration-tokens create`) or email (requireEmail), or close registration.',
      );
    }
    return pass(name, `registration is open with verification (flows: ${offered}).`);
  });
}

interface CertificateInfo {
  authorized: boolean;
  authorizationError?: string;
  validTo: Date;
}

function fetchCertificate(host: string, port: number, extraCa: string | undefined): Promise<CertificateInfo> {
  return new Promise((resolve, reject) => {
    const socket = connectTls({ host, port, rejectUnauthorized: false, ...(isIP(host) ? {} : { servername: host }), ...(extraCa ? { ca: extraCa } : {}) }, () => {
      const certificate = socket.getPeerCertificate();
      socket.end();
      clearTimeout(timer);
      if (!certificate?.valid_to) {
        reject(new Error('the server sent no certificate'));
        return;
      }
      resolve({
        authorized: socket.authorized,
        ...(socket.authorizationError ? { authorizationError: String(socket.authorizationError) } : {}),
        validTo: new Date(certificate.valid_to),
      });
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`TLS handshake with ${host}:${port} timed out after ${httpTimeoutMs / 1000} s`));
    }, httpTimeoutMs);
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

export async function checkCertificates(env: DoctorEnvironment, now: Date = new Date()): Promise<DoctorCheck[]> {
  const origins = [...new Set(env.publicUrls.map((url) => new URL(url).origin))];
  const checks: DoctorCheck[] = [];
  for (const origin of origins) {
    const url = new URL(origin);
    const name = `certificate ${url.host}`;
    if (url.protocol !== 'https:') {
      checks.push(pass(name, `${origin} is plain HTTP (a local stack): no certificate to check.`));
      continue;
    }
    const fix = `renew the certificate of ${url.hostname} (cert-manager: check the Certificate and its issuer; otherwise replace the TLS Secret).`;
    checks.push(
      ...(await guarded(name, fix, async () => {
        let info: CertificateInfo;
        try {
          info = await fetchCertificate(url.hostname, Number(url.port || 443), env.extraCa);
        } catch (error) {
          const reason = unreachableReason(error);
          if (reason === undefined) throw error;
          noteUnreachable(env, origin, reason);
          return warn(name, `not checked: ${url.host} is not reachable from here (${reason}).`, `check the certificate where clients are (\`openssl s_client -connect ${url.hostname}:${url.port || 443} -servername ${url.hostname}\`).`);
        }
        const daysLeft = Math.floor((info.validTo.getTime() - now.getTime()) / 86_400_000);
        const until = info.validTo.toISOString().slice(0, 10);
        if (daysLeft < 0) return fail(name, `the certificate expired on ${until}.`, fix);
        if (!info.authorized) return fail(name, `the certificate is not trusted: ${info.authorizationError ?? 'unknown reason'} (valid until ${until}).`, `serve a certificate for ${url.hostname} from a CA clients trust.`);
        if (daysLeft < certificateWarningDays) return warn(name, `the certificate expires in ${daysLeft} days (${until}).`, fix);
        return pass(name, `trusted, valid until ${until} (${daysLeft} days).`);
      })),
    );
  }
  return checks;
}

export async function checkMetrics(env: DoctorEnvironment): Promise<DoctorCheck[]> {
  return guarded('metrics', 'check that the metrics listeners run', async () => {
    const probes = await env.probeMetrics();
    if (probes.length === 0) return [pass('metrics', 'no metrics endpoints are enabled.')];
    return probes.map((probe) => {
      const name = `metrics ${probe.url}`;
      const fix = `the scrape target must answer with Prometheus text: check the component's metrics listener (synapse.metrics, coturn.prometheusExporter) and any NetworkPolicy from Prometheus.`;
      if (probe.status === undefined) return fail(name, `no answer: ${probe.error ?? 'unknown error'}.`, fix);
      if (probe.status !== 200) return fail(name, `HTTP ${probe.status}.`, fix);
      if (!/^# (HELP|TYPE) /m.test(probe.body ?? '')) return fail(name, 'HTTP 200 but not Prometheus text.', fix);
      return pass(name, 'Prometheus text served.');
    });
  });
}

/**
 * Built-in 2FA (the auth component): its admin API answers /health (it reaches the database), its issuer
 * answers the OpenID discovery document through the router with its own URL as issuer, and Synapse offers
 * sign-in through it (SSO provider oidc-<idpId>) and no password login (which would bypass the second factor).
 */
export async function checkAuth(env: DoctorEnvironment): Promise<DoctorCheck[]> {
  const { stack } = env.target;
  const auth = stack.auth;
  if (!auth) return [pass('auth', '2FA is off (synapse.server.mfa.totp and .webauthn disabled): no identity provider to check.')];
  const checks: DoctorCheck[] = [];

  const adminName = 'auth admin API';
  const adminFix = `start the auth component and check that it reaches PostgreSQL (its database ${stack.database.name}_auth): read its log (${env.logsHint('auth')}).`;
  checks.push(
    ...(await guarded(adminName, adminFix, async () => {
      const problem = await withAuthAdmin(env.target, (client) => client.health());
      return problem ? fail(adminName, `its /health answered ${problem}.`, adminFix) : pass(adminName, 'healthy (the auth service reaches its database).');
    })),
  );

  const discovery = `${auth.issuer}/.well-known/openid-configuration`;
  const issuerName = 'auth issuer';
  const issuerFix = `the router must forward ${new URL(auth.issuer).pathname}/ on ${new URL(auth.issuer).host} to the auth component unchanged (check the router and any proxy in front of it; ${env.logsHint('router')}).`;
  checks.push(
    ...(await guarded(issuerName, issuerFix, async () => {
      const answer = await publicGet(env, discovery);
      const served = parseJson(answer.text) as { issuer?: unknown; authorization_endpoint?: unknown } | undefined;
      if (answer.status !== 200 || !served) return fail(issuerName, `${discovery} answered HTTP ${answer.status}${served ? '' : ' without JSON'}.`, issuerFix);
      if (served.issuer !== auth.issuer) {
        return fail(issuerName, `${discovery} names issuer ${JSON.stringify(served.issuer)}, expected ${auth.issuer}: Synapse would refuse its tokens.`, `the auth component's issuer must be the public URL ${auth.issuer} (it comes from synapse.server.publicBaseUrl); restart it after changing the values.`);
      }
      return pass(issuerName, `${discovery} answers as ${auth.issuer}.`);
    })),
  );

  const loginUrl = new URL('_matrix/client/v3/login', env.clientBaseUrl).href;
  const flowsName = 'auth sign-in through Synapse';
  const providerId = `oidc-${auth.idpId}`;
  const flowsFix = `Synapse must run with the configuration mxstack generates for 2FA (oidc_providers with idp_id ${auth.idpId}, password_config.enabled false): restart it so it reads its files again (${env.logsHint('synapse')}).`;
  checks.push(
    ...(await guarded(flowsName, flowsFix, async () => {
      const answer = await publicGet(env, loginUrl);
      const flows = (parseJson(answer.text) as { flows?: { type?: string; identity_providers?: { id?: string }[] }[] } | undefined)?.flows;
      if (answer.status !== 200 || !Array.isArray(flows)) return fail(flowsName, `${loginUrl} answered HTTP ${answer.status} without login flows.`, flowsFix);
      const types = flows.map((flow) => flow.type ?? '?');
      if (types.includes('m.login.password')) {
        return fail(flowsName, `Synapse still offers m.login.password (flows: ${types.join(', ')}): a password alone signs in, bypassing the second factor.`, flowsFix);
      }
      const providers = flows.filter((flow) => flow.type === 'm.login.sso').flatMap((flow) => (flow.identity_providers ?? []).map((idp) => idp.id ?? '?'));
      if (!providers.includes(providerId)) {
        return fail(flowsName, `Synapse does not list the identity provider ${providerId} (SSO providers: ${providers.join(', ') || 'none'}).`, flowsFix);
      }
      return pass(flowsName, `Synapse offers sign-in through ${providerId} and no password login (flows: ${types.join(', ')}).`);
    })),
  );
  return checks;
}

/** Every check, in checklist order. */
export async function runDoctorChecks(env: DoctorEnvironment): Promise<DoctorCheck[]> {
  const stopped = await env.notRunning?.();
  if (stopped) return [stopped];
  const groups = [checkComponents, checkRedis, checkReplication, checkWellKnown, checkClientVersions, checkAuth, checkSigningKey, checkTurn, checkDatabase, checkRegistration, checkCertificates, checkMetrics];
  const checks: DoctorCheck[] = [];
  for (const group of groups) checks.push(...(await group(env)));
  checks.push(...reachabilityChecks(env));
  return checks;
}
