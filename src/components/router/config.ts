/**
 * The HAProxy router: serves /.well-known/matrix, routes the Matrix APIs to Synapse, /auth to the
 * auth component (when 2FA is on) and everything else to Element Web, keeps the Synapse admin API off the public port, and exposes its own metrics.
 * With router.federation.enabled it also terminates TLS for other servers on its federation listener.
 * Checked against HAProxy 3.2 (`haproxy -c`).
 */
import { authPathPrefix, kubernetesClusterDomain, type Stack } from '../../stack/model.js';
import { authHealthPath } from '../auth/service-config.js';
import { renderWellKnownClient, renderWellKnownServer } from '../wellknown/config.js';
import { toSortedJson } from '../../kit/sorted-json.js';
import { synapseRoutes, type Balance, type Route } from '../synapse/routes.js';
import { workerAddress, workerPoolObjectName } from '../synapse/workers.js';
import { kebabCase, processesOf, workerPools, workerProcesses, type WorkerPoolName } from '../../values/worker-pools.js';

export const wellKnownServerFile = 'well-known-server.json';
export const wellKnownClientFile = 'well-known-client.json';

export { kubernetesClusterDomain };

const corsHeaders: [string, string][] = [
  ['Access-Control-Allow-Origin', '*'],
  ['Access-Control-Allow-Methods', 'GET, HEAD, OPTIONS'],
  ['Access-Control-Allow-Headers', 'X-Requested-With, Content-Type, Authorization'],
];

interface Section {
  header: string;
  lines: string[];
}

/**
 * A literal argument. Single quotes: HAProxy expands `$VAR` and backslash escapes inside double quotes,
 * never inside single ones (which therefore cannot hold a single quote).
 */
export function haproxyLiteral(text: string): string {
  if (text.includes("'") || /[\r\n]/.test(text)) throw new Error(`Cannot write ${JSON.stringify(text)} as an HAProxy argument.`);
  return `'${text}'`;
}

const hdrArguments = (headers: [string, string][]): string => headers.map(([name, value]) => `hdr ${name} ${haproxyLiteral(value)}`).join(' ');

/** How the router reaches a component: Service DNS names in Kubernetes, addresses locally. */
export function upstreamAddress(stack: Stack, host: string, port: number): string {
  const qualified =
    stack.placement.target === 'kubernetes' && !host.includes('.') ? `${host}.${stack.namespace}.svc.${kubernetesClusterDomain}` : host;
  return `${qualified}:${port}`;
}

/**
 * Locally the hosts are addresses and HAProxy health-checks each program. In Kubernetes the server is a
 * component's Service: the router may start before its name resolves (start without an address and keep
 * resolving), and Kubernetes already sends the Service's traffic only to Ready pods, so an HAProxy check
 * of the Service only lags behind it both ways: after a rollout the server stayed DOWN (503 at once) until
 * `rise` checks passed, and checks that timed out against the pod going away marked it DOWN again seconds
 * after the new pod served (the 503 blip after `mxstack upgrade`). Instead the server is always eligible and
 * a refused connection (no Ready pod behind the Service, as while Synapse's single main process is
 * recreated) is retried once a second for `serviceRetries`, so requests wait for the pod rather than fail.
 */
function serverOptions(stack: Stack): string {
  return stack.placement.target === 'kubernetes' ? 'resolvers kubernetes init-addr last,libc,none' : 'check';
}

/**
 * Connection attempts to a Kubernetes Service with no Ready pod, about a second apart (HAProxy waits
 * min(timeout connect, 1 s) before retrying the same server): long enough to bridge the recreation of
 * Synapse's main process on an upgrade, short of the clients' own timeouts.
 */
export const serviceRetries = 60;

/** Lines of a backend whose one server is a Kubernetes Service, or a local program checked on its health path. */
function serviceBackendLines(stack: Stack, healthPath: string): string[] {
  if (stack.placement.target === 'kubernetes') return [`retries ${serviceRetries}`, 'retry-on conn-failure'];
  return ['option httpchk', `http-check send meth GET uri ${healthPath}`, 'http-check expect status 200'];
}

/**
 * Locally the router is the edge: what a client claims in forwarding headers is dropped. In Kubernetes
 * an ingress controller in front sets them and the router keeps them.
 */
function routerIsEdge(stack: Stack): boolean {
  return stack.placement.target === 'local';
}

/** Element Web is reached through the router, or why not (the text of the 404 answered instead). */
export function elementUnavailableReason(stack: Stack): string | undefined {
  if (!stack.values.element.enabled) return 'Element Web is not deployed by this stack (element.enabled is false).';
  if (stack.placement.target === 'local' && stack.elementUrl === undefined) {
    return 'Element Web is not served by this local stack (mxstack up said why): set element.archive to a downloaded Element Web release, or element.webRoot to a build.';
  }
  return undefined;
}

function globalSection(): Section {
  return {
    header: 'global',
    lines: [
      'log stdout format raw local0',
      // Without a ceiling HAProxy sizes itself from the file descriptor limit, which is huge in some containers.
      'maxconn 4096',
    ],
  };
}

function defaultsSection(): Section {
  return {
    header: 'defaults',
    lines: [
      'mode http',
      'log global',
      'option dontlognull',
      'option forwardfor',
      'timeout connect 5s',
      'timeout http-request 10s',
      'timeout http-keep-alive 10s',
      'timeout queue 30s',
      'timeout check 5s',
      // Above Synapse's long-polls (/sync waits up to 30 s by default; clients may ask for more).
      'timeout client 120s',
      'timeout server 120s',
    ],
  };
}

function resolversSection(): Section {
  return { header: 'resolvers kubernetes', lines: ['parse-resolv-conf', 'hold valid 10s'] };
}

function forwardingLines(stack: Stack): string[] {
  const scheme = new URL(stack.publicBaseUrl).protocol.replace(/:$/, '');
  if (routerIsEdge(stack)) {
    return ['http-request del-header X-Forwarded-For', `http-request set-header X-Forwarded-Proto ${scheme}`];
  }
  return [`http-request set-header X-Forwarded-Proto ${scheme} unless { req.hdr(X-Forwarded-Proto) -m found }`];
}

function wellKnownLines(stack: Stack): string[] {
  const dir = stack.placement.paths.routerConfigDir;
  const json = 'content-type application/json';
  const lines = [
    'acl well_known_server path /.well-known/matrix/server',
    'acl well_known_client path /.well-known/matrix/client',
    `http-request return status 204 ${hdrArguments(corsHeaders)} if well_known_client METH_OPTIONS`,
    // METH_GET matches GET and HEAD.
    `http-request return status 200 ${json} file ${haproxyLiteral(`${dir}/${wellKnownClientFile}`)} ${hdrArguments(corsHeaders)} if well_known_client METH_GET`,
  ];
  if (renderWellKnownServer(stack) === undefined) {
    lines.push(`http-request return status 404 content-type text/plain string ${haproxyLiteral('Federation is off on this server.')} if well_known_server`);
  } else {
    lines.push(`http-request return status 200 ${json} file ${haproxyLiteral(`${dir}/${wellKnownServerFile}`)} if well_known_server METH_GET`);
  }
  lines.push(`http-request return status 405 hdr Allow ${haproxyLiteral('GET, HEAD, OPTIONS')} if well_known_server || well_known_client`);
  return lines;
}

/**
 * The admin API is matched on the decoded path anywhere a `/_synapse/admin` segment appears, so that
 * `//_synapse/admin`, `/x/../_synapse/admin` or `/_synapse/%61dmin` are refused too. Every
 * `http-request` rule runs before any `use_backend`, hence the `unless` on the Element 404.
 */
function routingLines(stack: Stack): string[] {
  const exposeAdmin = stack.values.router.exposeAdminApi;
  const toSynapse = exposeAdmin ? 'synapse_api || synapse_admin' : 'synapse_api';
  const unavailable = elementUnavailableReason(stack);
  const routed = stack.auth ? `${toSynapse} || auth_component` : toSynapse;
  return [
    'acl synapse_admin path,url_dec -m reg /_synapse/+admin(/|$)',
    'acl synapse_api path_beg /_matrix/ /_synapse/client/',
    ...(stack.auth ? authAclLines() : []),
    ...(exposeAdmin ? [] : ['http-request deny deny_status 403 if synapse_admin']),
    ...(unavailable === undefined
      ? []
      : [`http-request return status 404 content-type text/plain string ${haproxyLiteral(unavailable)} unless ${routed}`]),
    ...(stack.auth ? [`use_backend ${authBackendName} if auth_component`] : []),
    ...workerRoutingLines(stack),
    `use_backend synapse if ${toSynapse}`,
    ...(unavailable === undefined ? ['default_backend element'] : []),
  ];
}

const authBackendName = 'auth';

/** The request header a pool backend hashes on (set by the router itself, whatever the client sent). */
const balanceHeader = 'X-Mxstack-Balance';

/** One backend per pool and way of balancing it: `synapse_<pool>_<balance>`. */
const poolBackendName = (pool: WorkerPoolName, balance: Balance): string => `synapse_${kebabCase(pool).replace(/-/g, '_')}_${kebabCase(balance).replace(/-/g, '_')}`;

/** Routes whose pool runs in this stack (the main process's routes need no rule: it is the default). */
function activeRoutes(stack: Stack): (Route & { pool: WorkerPoolName })[] {
  const running = new Set(workerProcesses(stack.values).map((worker) => worker.pool));
  return synapseRoutes.filter((route): route is Route & { pool: WorkerPoolName } => route.pool !== 'main' && running.has(route.pool));
}

/**
 * The routing table as `use_backend` rules, in the table's order; each applies only while its backend has
 * a live server, so a pool that is down falls through to the next rule and finally to the main process.
 * Routes to the main process before a worker rule (SSO) are kept in place by sending them to it explicitly.
 */
function workerRoutingLines(stack: Stack): string[] {
  const active = activeRoutes(stack);
  if (active.length === 0) return [];
  const lines = [
    `http-request del-header ${balanceHeader}`,
    `http-request set-header ${balanceHeader} %[req.fhdr(Authorization)] if { req.fhdr(Authorization) -m found }`,
    `http-request set-header ${balanceHeader} %[urlp(access_token)] if { urlp(access_token) -m found }`,
  ];
  const firstWorkerRoute = synapseRoutes.findIndex((route) => route.pool !== 'main');
  for (const route of synapseRoutes.slice(0, firstWorkerRoute)) {
    lines.push(`use_backend synapse if { path_reg ${haproxyLiteral(route.path)} }`);
  }
  for (const route of active) {
    const backendName = poolBackendName(route.pool, route.balance);
    const conditions = [
      `{ path_reg ${haproxyLiteral(route.path)} }`,
      ...(route.methods ? ['METH_GET'] : []),
      ...(route.withoutQueryParameter ? [`!{ urlp(${route.withoutQueryParameter}) -m found }`] : []),
      // A pool the main process cannot stand in for keeps its requests (they wait for a process of it).
      ...(workerPools[route.pool].withoutFallback ? [] : [`{ nbsrv(${backendName}) gt 0 }`]),
    ];
    lines.push(`use_backend ${backendName} if ${conditions.join(' ')}`);
  }
  return lines;
}

const balanceLines: Record<Balance, string[]> = {
  accessToken: [`balance hdr(${balanceHeader})`, 'hash-type consistent'],
  room: [
    `http-request set-header ${balanceHeader} %[path]`,
    `http-request replace-header ${balanceHeader} ^.*/(rooms|join|knock|profile)/([^/]+).*$ \\2`,
    `balance hdr(${balanceHeader})`,
    'hash-type consistent',
  ],
  source: ['balance source', 'hash-type consistent'],
  leastConnections: ['balance leastconn'],
};

const queueFullBody = JSON.stringify({ errcode: 'M_LIMIT_EXCEEDED', error: 'Too many requests are waiting for this server; retry shortly.', retry_after_ms: 1000 });

/** The servers of a pool: one per process locally and for named pools; a DNS-filled template for the others. */
function poolServerLines(stack: Stack, pool: WorkerPoolName): string[] {
  const processes = processesOf(workerProcesses(stack.values), pool);
  const autoscaling = stack.values.synapse.workers.pools[pool]?.autoscaling;
  if (stack.placement.target === 'kubernetes' && !workerPools[pool].named) {
    const slots = autoscaling?.enabled ? autoscaling.maxReplicas : processes.length;
    const service = workerPoolObjectName(stack, pool);
    const port = stack.placement.synapseWorkers.kind === 'kubernetes' ? stack.placement.synapseWorkers.http : 8008;
    return [`server-template ${kebabCase(pool)}- ${slots} ${upstreamAddress(stack, service, port)} check resolvers kubernetes init-addr none`];
  }
  return processes.map((worker) => {
    const address = workerAddress(stack, worker);
    // One pod each (not a Service): checked, so that a pool without a live process falls back to the main one.
    const options = [
      ...(workerPools[pool].withoutFallback ? [] : ['check']),
      ...(stack.placement.target === 'kubernetes' ? ['resolvers kubernetes init-addr last,libc,none'] : []),
    ];
    return [`server ${worker.name}`, upstreamAddress(stack, address.host, address.http), ...options].join(' ');
  });
}

/** A pool with a fallback: a refused connection takes the process out at once (the next request falls back), a passing check brings it back. */
function checkedPoolLines(maxConnectionsPerProcess: number): string[] {
  return [
    'option httpchk',
    'http-check send meth GET uri /health',
    'http-check expect status 200',
    `default-server maxconn ${maxConnectionsPerProcess} inter 2s fall 2 rise 1 observe layer4 error-limit 1 on-error mark-down`,
  ];
}

/**
 * A pool without a fallback: no check that could leave it with no eligible process (a request would then
 * get the main process's 404 or HAProxy's 503 while the process is up again); a refused connection, as
 * while the process restarts, is retried on another process or once a second for `serviceRetries`.
 */
function heldPoolLines(maxConnectionsPerProcess: number): string[] {
  return [`retries ${serviceRetries}`, 'retry-on conn-failure', 'option redispatch 1', `default-server maxconn ${maxConnectionsPerProcess}`];
}

function poolBackends(stack: Stack): Section[] {
  const { maxConnectionsPerProcess, maxQueuedPerPool } = stack.values.synapse.workers;
  const seen = new Set<string>();
  const sections: Section[] = [];
  for (const route of activeRoutes(stack)) {
    const name = poolBackendName(route.pool, route.balance);
    if (seen.has(name)) continue;
    seen.add(name);
    sections.push({
      header: `backend ${name}`,
      lines: [
        // A full queue is answered at once, in Matrix's words, rather than after the queue timeout.
        `http-request return status 429 content-type application/json string ${haproxyLiteral(queueFullBody)} hdr Retry-After 1 if { queue() ge ${maxQueuedPerPool} }`,
        ...balanceLines[route.balance],
        ...(workerPools[route.pool].withoutFallback ? heldPoolLines(maxConnectionsPerProcess) : checkedPoolLines(maxConnectionsPerProcess)),
        ...poolServerLines(stack, route.pool),
      ],
    });
  }
  return sections;
}

/** `/auth` and everything under `/auth/` (not `/authx`): the auth component serves its prefix itself. */
function authAclLines(): string[] {
  return [`acl auth_component path ${authPathPrefix}`, `acl auth_component path_beg ${authPathPrefix}/`];
}

/**
 * The auth component builds no URL from the request (its issuer is configured), but logs and throttles
 * by client address and needs the original host and scheme: X-Forwarded-For comes from `option
 * forwardfor`, X-Forwarded-Proto from the frontend, X-Forwarded-Host here (kept when an ingress in
 * front set it, except locally, where the router is the edge).
 */
function authForwardingLines(stack: Stack): string[] {
  return routerIsEdge(stack)
    ? ['http-request set-header X-Forwarded-Host %[req.hdr(host)]']
    : ['http-request set-header X-Forwarded-Host %[req.hdr(host)] unless { req.hdr(X-Forwarded-Host) -m found }'];
}

function publicFrontend(stack: Stack): Section {
  const { bindAddress, ports } = stack.placement;
  return {
    header: 'frontend matrix',
    lines: [`bind ${bindAddress}:${ports.router}`, 'option httplog', ...forwardingLines(stack), ...wellKnownLines(stack), ...routingLines(stack)],
  };
}

/** The name under which the federation certificate is loaded (crt-store `federation`, alias `listener`). */
const federationCertificate = '@federation/listener';

/** HAProxy loads the certificate and its key from the two files of a kubernetes.io/tls Secret. */
function federationCertificateStore(stack: Stack): Section {
  const dir = stack.placement.paths.routerFederationTlsDir;
  return {
    header: 'crt-store federation',
    lines: [`load crt ${haproxyLiteral(`${dir}/tls.crt`)} key ${haproxyLiteral(`${dir}/tls.key`)} alias listener`],
  };
}

/**
 * Other servers' requests, over TLS: only the federation and key APIs, through the same routing table as the
 * public frontend (its federation routes reach the federation pools), else to the main process.
 */
function federationFrontend(stack: Stack): Section {
  const { bindAddress, ports } = stack.placement;
  return {
    header: 'frontend federation',
    lines: [
      `bind ${bindAddress}:${ports.routerFederation} ssl crt ${haproxyLiteral(federationCertificate)} alpn http/1.1`,
      'option httplog',
      // Other servers reach this listener directly (no ingress in front sets forwarding headers): drop theirs.
      'http-request del-header X-Forwarded-For',
      'http-request set-header X-Forwarded-Proto https',
      'acl federation_api path_beg /_matrix/federation/ /_matrix/key/',
      `http-request return status 404 content-type application/json string ${haproxyLiteral(federationNotFoundBody)} unless federation_api`,
      ...workerRoutingLines(stack),
      'default_backend synapse',
    ],
  };
}

const federationNotFoundBody = JSON.stringify({ errcode: 'M_UNRECOGNIZED', error: 'This port serves only the federation API.' });

function metricsFrontend(stack: Stack): Section {
  const { bindAddress, ports } = stack.placement;
  return {
    header: 'frontend metrics',
    lines: [
      `bind ${bindAddress}:${ports.routerMetrics}`,
      'no log',
      'monitor-uri /health',
      'http-request use-service prometheus-exporter if { path /metrics }',
      `http-request return status 404 content-type text/plain string ${haproxyLiteral('This port serves /metrics and /health.')}`,
    ],
  };
}

function backend(stack: Stack, name: string, address: string, healthPath: string, extraLines: string[] = []): Section {
  return {
    header: `backend ${name}`,
    lines: [
      ...extraLines,
      ...serviceBackendLines(stack, healthPath),
      `server ${name} ${address} ${serverOptions(stack)}`,
    ],
  };
}

function sections(stack: Stack): Section[] {
  const { hosts, ports } = stack.placement;
  const list = [globalSection(), defaultsSection()];
  if (stack.placement.target === 'kubernetes') list.push(resolversSection());
  if (stack.values.router.federation.enabled) list.push(federationCertificateStore(stack));
  list.push(publicFrontend(stack));
  if (stack.values.router.federation.enabled) list.push(federationFrontend(stack));
  list.push(metricsFrontend(stack));
  list.push(backend(stack, 'synapse', upstreamAddress(stack, hosts.synapse, ports.synapseHttp), '/health'));
  list.push(...poolBackends(stack));
  if (stack.auth) {
    list.push(backend(stack, authBackendName, upstreamAddress(stack, hosts.auth, ports.auth), authHealthPath, authForwardingLines(stack)));
  }
  if (elementUnavailableReason(stack) === undefined) {
    list.push(backend(stack, 'element', upstreamAddress(stack, hosts.element, ports.element), '/'));
  }
  return list;
}

export function renderRouterConfig(stack: Stack): string {
  return sections(stack)
    .map(({ header, lines }) => [header, ...lines.map((line) => `  ${line}`)].join('\n'))
    .join('\n\n')
    .concat('\n');
}

/** { 'haproxy.cfg', 'well-known-server.json' (only with federation), 'well-known-client.json' } */
export function routerConfigFiles(stack: Stack): Record<string, string> {
  const server = renderWellKnownServer(stack);
  return {
    'haproxy.cfg': renderRouterConfig(stack),
    ...(server === undefined ? {} : { [wellKnownServerFile]: toSortedJson(server) }),
    [wellKnownClientFile]: toSortedJson(renderWellKnownClient(stack)),
  };
}
