/**
 * The one routing table of Synapse's HTTP endpoints to worker pools, after Synapse's docs/workers.md
 * (1.157–1.160). The router compiles it (src/components/router/config.ts); tests read it. Rules are tried in
 * order: the first whose pool has a live process wins, so a pool that is off or down falls through to the
 * next rule for the same path and, at the end, to the main process.
 */
import type { WorkerPoolName } from '../../values/worker-pools.js';

/**
 * How requests of a rule are spread over the pool's processes:
 * accessToken (per device: sync state lives in the process), room (the room id in the path: event
 * ordering and pagination caches), source (per remote server: its transactions in order), leastConnections.
 */
export type Balance = 'accessToken' | 'room' | 'source' | 'leastConnections';

export interface Route {
  /** PCRE (HAProxy `path_reg`) over the path, without the query string. */
  path: string;
  /** Only these methods (all when absent). */
  methods?: ('GET' | 'HEAD')[];
  /** Only requests without this query parameter (initial syncs have no `since`). */
  withoutQueryParameter?: string;
  /** The pool that takes the request, or `main` for the main process only (SSO: one process). */
  pool: WorkerPoolName | 'main';
  balance: Balance;
}

const client = (versions: string, rest: string) => `^/_matrix/client/(${versions})/${rest}`;
const allVersions = 'api/v1|r0|v3|unstable';
const modern = 'r0|v3|unstable';

const sync = (pool: 'sync' | 'initialSync', extra: Partial<Route> = {}): Route[] =>
  [client('r0|v3', 'sync$'), client('api/v1|r0|v3', 'events$')].map((path) => ({ path, pool, balance: 'accessToken' as const, ...extra }));

const initialSyncOnly: Route[] = [client('api/v1|r0|v3', 'initialSync$'), client('api/v1|r0|v3', 'rooms/[^/]+/initialSync$')].map((path) => ({
  path,
  pool: 'initialSync' as const,
  balance: 'accessToken' as const,
}));

/** Endpoints of the single-writer streams, for the streamWriter pool (typing, to_device, account data, receipts, presence, push rules, device lists). */
const streamWriterPaths = [
  client(allVersions, 'rooms/.*/typing'),
  client(modern, 'sendToDevice/'),
  client(modern, '.*/tags'),
  client(modern, '.*/account_data'),
  client(modern, 'rooms/.*/receipt'),
  client(modern, 'rooms/.*/read_markers'),
  client(allVersions, 'presence/'),
  client(allVersions, 'pushrules/'),
  client('r0|v3', 'delete_devices$'),
  client(allVersions, 'devices(/|$)'),
  client(modern, 'keys/upload'),
  client(allVersions, 'keys/device_signing/upload$'),
  client(allVersions, 'keys/signatures/upload$'),
];

/** Without a stream writer, these reads may go to any client worker (docs/workers.md: "for GET requests"). */
const streamReadsAnyWorker = [client(modern, '.*/tags'), client(modern, '.*/account_data'), client(allVersions, 'presence/'), client(allVersions, 'pushrules/')];

/** Device list writes any worker can take (they forward to the device lists writer). */
const deviceListPaths = streamWriterPaths.slice(8);

const ssoPaths = [
  client(allVersions, 'login/sso/redirect'),
  '^/_synapse/client/pick_idp$',
  '^/_synapse/client/pick_username',
  '^/_synapse/client/new_user_consent$',
  '^/_synapse/client/sso_register$',
  '^/_synapse/client/oidc/callback$',
  '^/_synapse/client/saml2/authn_response$',
  client(allVersions, 'login/cas/ticket$'),
];

const eventSendPaths = [
  client(allVersions, 'rooms/.*/redact'),
  client(allVersions, 'rooms/.*/send'),
  client(allVersions, 'rooms/.*/state/'),
  client(allVersions, 'rooms/.*/(join|invite|leave|ban|unban|kick)$'),
  client(allVersions, 'join/'),
  client(allVersions, 'knock/'),
  client(allVersions, 'profile/'),
];

const clientReaderPaths = [
  client(allVersions, 'createRoom$'),
  client(allVersions, 'publicRooms$'),
  client(allVersions, 'rooms/.*/joined_members$'),
  client(allVersions, 'rooms/.*/context/.*$'),
  client(allVersions, 'rooms/.*/members$'),
  client(allVersions, 'rooms/.*/state$'),
  '^/_matrix/client/v1/rooms/.*/hierarchy$',
  client('v1|unstable', 'rooms/.*/relations/'),
  '^/_matrix/client/v1/rooms/.*/threads$',
  '^/_matrix/client/unstable/im.nheko.summary/summary/.*$',
  '^/_matrix/client/v1/room_summary/.*$',
  client(modern, 'account/3pid$'),
  client(modern, 'account/whoami$'),
  client(modern, 'account/deactivate$'),
  '^/_matrix/client/versions$',
  client(allVersions, 'voip/turnServer$'),
  client(allVersions, 'rooms/.*/event/'),
  client(allVersions, 'joined_rooms$'),
  '^/_matrix/client/v1/rooms/.*/timestamp_to_event$',
  client('api/v1|r0|v3|unstable/.*', 'rooms/.*/aliases'),
  client(allVersions, 'search$'),
  client(modern, 'user/.*/filter(/|$)'),
  client(allVersions, 'directory/room/.*$'),
  client(modern, 'capabilities$'),
  client(modern, 'notifications$'),
  client(modern, 'keys/query$'),
  client(modern, 'keys/changes$'),
  client(modern, 'keys/claim$'),
  client(modern, 'room_keys/'),
  client(allVersions, 'login$'),
  client(modern, 'register$'),
  client(modern, 'register/available$'),
  '^/_matrix/client/v1/register/m.login.registration_token/validity$',
  client(modern, 'password_policy$'),
  '^/_matrix/client/unstable/org.matrix.msc4140/delayed_events(/.*/restart)?$',
  '^/_synapse/admin/v1/rooms/[^/]+$',
];

const userDirectoryPaths = [client(modern, 'user_directory/search$')];

const federationReaderPaths = [
  '^/_matrix/federation/v1/version$',
  '^/_matrix/federation/v1/event/',
  '^/_matrix/federation/v1/state/',
  '^/_matrix/federation/v1/state_ids/',
  '^/_matrix/federation/v1/backfill/',
  '^/_matrix/federation/v1/get_missing_events/',
  '^/_matrix/federation/v1/publicRooms',
  '^/_matrix/federation/v1/query/',
  '^/_matrix/federation/v1/make_join/',
  '^/_matrix/federation/v1/make_leave/',
  '^/_matrix/federation/(v1|v2)/send_join/',
  '^/_matrix/federation/(v1|v2)/send_leave/',
  '^/_matrix/federation/v1/make_knock/',
  '^/_matrix/federation/v1/send_knock/',
  '^/_matrix/federation/(v1|v2)/invite/',
  '^/_matrix/federation/v1/event_auth/',
  '^/_matrix/federation/v1/timestamp_to_event/',
  '^/_matrix/federation/v1/exchange_third_party_invite/',
  '^/_matrix/federation/v1/user/devices/',
  '^/_matrix/key/v2/query',
  '^/_matrix/federation/v1/hierarchy/',
];

const mediaPaths = [
  '^/_matrix/media/',
  '^/_matrix/client/v1/media/',
  '^/_matrix/federation/v1/media/',
  '^/_synapse/admin/v1/purge_media_cache$',
  '^/_synapse/admin/v1/room/.*/media.*$',
  '^/_synapse/admin/v1/user/.*/media.*$',
  '^/_synapse/admin/v1/media/.*$',
  '^/_synapse/admin/v1/quarantine_media/.*$',
  '^/_synapse/admin/v1/users/.*/media$',
];

const to = (pool: Route['pool'], balance: Balance, paths: string[], extra: Partial<Route> = {}): Route[] => paths.map((path) => ({ path, pool, balance, ...extra }));

/** The table, in the order the router tries it. */
export const synapseRoutes: readonly Route[] = [
  // SSO logins keep state in the process that started them: the main process takes every step.
  ...to('main', 'leastConnections', ssoPaths),
  ...to('mediaRepository', 'leastConnections', mediaPaths),
  ...to('streamWriter', 'leastConnections', streamWriterPaths),
  ...to('clientReader', 'leastConnections', streamReadsAnyWorker, { methods: ['GET', 'HEAD'] }),
  ...to('clientReader', 'leastConnections', deviceListPaths),
  ...sync('initialSync', { withoutQueryParameter: 'since' }),
  ...initialSyncOnly,
  ...sync('sync'),
  ...initialSyncOnly.map((route) => ({ ...route, pool: 'sync' as const })),
  ...to('eventCreator', 'room', eventSendPaths),
  // History is paginated from a per-room cache: one process per room.
  ...to('clientReader', 'room', [client(allVersions, 'rooms/.*/messages$')]),
  ...to('userDirectory', 'leastConnections', userDirectoryPaths),
  ...to('clientReader', 'leastConnections', [...clientReaderPaths, ...userDirectoryPaths]),
  ...to('clientReader', 'leastConnections', ['^/_synapse/admin/v2/users/[^/]+$'], { methods: ['GET', 'HEAD'] }),
  // Transactions of one remote server stay in order on one process.
  ...to('federationInbound', 'source', ['^/_matrix/federation/v1/send/']),
  ...to('federationReader', 'leastConnections', federationReaderPaths),
];

/** The pool that takes a request when the given pools are up, or `main`: the router's choice, in plain code. */
export function routeRequest(path: string, method: string, query: URLSearchParams, poolIsUp: (pool: WorkerPoolName) => boolean): Route['pool'] {
  for (const route of synapseRoutes) {
    if (!new RegExp(route.path).test(path)) continue;
    if (route.methods && !route.methods.includes(method as 'GET')) continue;
    if (route.withoutQueryParameter && query.has(route.withoutQueryParameter)) continue;
    if (route.pool === 'main') return 'main';
    if (poolIsUp(route.pool)) return route.pool;
  }
  return 'main';
}
