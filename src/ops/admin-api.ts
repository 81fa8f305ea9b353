/**
 * A typed client of Synapse's Admin API (reference: matrix.md section 3). Every failure becomes an
 * AdminApiError with one sentence a user understands (server unreachable, token not admin, user exists,
 * user not found, invalid user id ...). The access token never appears in a message.
 */

/** A failure of an admin call, in one sentence (exit 1). */
export class AdminApiError extends Error {
  constructor(
    message: string,
    readonly status?: number,
    readonly errcode?: string,
  ) {
    super(message);
    this.name = 'AdminApiError';
  }
}

/** Localparts Synapse accepts for new users (the historical grammar, lower case). */
const localpartPattern = /^[a-z0-9._=\-/+]+$/;

/**
 * A full user id from a localpart or a full id; refuses what Synapse would refuse, and users of another
 * server (the Admin API only manages local users).
 */
export function toUserId(user: string, serverName: string): string {
  const trimmed = user.trim();
  if (trimmed.startsWith('@')) {
    const colon = trimmed.indexOf(':');
    const localpart = colon > 0 ? trimmed.slice(1, colon) : '';
    const server = colon > 0 ? trimmed.slice(colon + 1) : '';
    if (!localpart || !server || !localpartPattern.test(localpart)) {
      throw new AdminApiError(`invalid user id ${JSON.stringify(user)}: expected @localpart:${serverName} with a localpart of a-z, 0-9 and . _ = - / +.`);
    }
    if (server !== serverName) throw new AdminApiError(`invalid user id ${user}: this server (${serverName}) only manages its own users (@localpart:${serverName}).`);
    return trimmed;
  }
  if (!localpartPattern.test(trimmed)) {
    throw new AdminApiError(`invalid user id ${JSON.stringify(user)}: a localpart may only contain a-z, 0-9 and . _ = - / +.`);
  }
  return `@${trimmed}:${serverName}`;
}

export function isRoomId(room: string): boolean {
  return /^![^:]+:.+$/.test(room);
}

export interface UserDetails {
  name: string;
  displayname?: string | null;
  avatar_url?: string | null;
  admin: boolean;
  deactivated: boolean;
  erased?: boolean;
  locked?: boolean;
  shadow_banned?: boolean;
  is_guest?: boolean | number;
  user_type?: string | null;
  creation_ts?: number;
  last_seen_ts?: number | null;
  threepids?: { medium: string; address: string }[];
  external_ids?: { auth_provider: string; external_id: string }[];
}

export interface UserListEntry {
  name: string;
  displayname?: string | null;
  admin: boolean | number;
  deactivated: boolean | number;
  is_guest: boolean | number;
  locked?: boolean;
  user_type?: string | null;
  creation_ts?: number;
  last_seen_ts?: number | null;
}

export interface UserFilter {
  admins?: boolean;
  deactivated?: boolean;
  guests?: boolean;
  /** Substring of the user id or display name. */
  name?: string;
}

export interface RoomListEntry {
  room_id: string;
  name?: string | null;
  canonical_alias?: string | null;
  joined_members: number;
  joined_local_members?: number;
  version?: string;
  creator?: string;
  encryption?: string | null;
  federatable?: boolean;
  public?: boolean;
  join_rules?: string | null;
  history_visibility?: string | null;
  state_events?: number;
  topic?: string | null;
}

export interface RoomDeleteStatus {
  delete_id: string;
  status: 'scheduled' | 'active' | 'complete' | 'failed' | 'purging' | 'shutting_down';
  error?: string;
  shutdown_room?: { kicked_users?: string[]; failed_to_kick_users?: string[]; local_aliases?: string[]; new_room_id?: string | null };
}

export interface RegistrationToken {
  token: string;
  uses_allowed: number | null;
  pending: number;
  completed: number;
  expiry_time: number | null;
}

export interface MatrixEvent {
  type: string;
  sender: string;
  state_key?: string;
  content: Record<string, unknown>;
  origin_server_ts: number;
  event_id: string;
}

interface RequestOptions {
  body?: unknown;
  query?: Record<string, string | number | boolean | undefined>;
  timeoutMs?: number;
}

/** Errors of the HTTP exchange, before any meaning is attached. */
class HttpFailure extends Error {
  constructor(
    readonly method: string,
    readonly path: string,
    readonly status: number,
    readonly errcode: string | undefined,
    readonly error: string | undefined,
  ) {
    super(`${method} ${path} answered HTTP ${status}${errcode ? ` ${errcode}` : ''}${error ? `: ${error}` : ''}`);
  }
}

const encode = encodeURIComponent;

/** Runs `task` over `items` with at most `limit` in flight; results in input order. */
export async function mapWithConcurrency<I, O>(items: readonly I[], limit: number, task: (item: I, index: number) => Promise<O>): Promise<O[]> {
  const results = new Array<O>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await task(items[index]!, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

export class SynapseAdminClient {
  /** The admin user the token belongs to, once `checkAdmin` ran. */
  adminUserId?: string;

  constructor(
    /** Synapse's own listener, with a trailing slash. */
    readonly baseUrl: string,
    private readonly accessToken: string,
    /** Replaced by the admin's own server name once `checkAdmin` ran (the values may not name it). */
    public serverName: string,
  ) {}

  private async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const url = new URL(path.replace(/^\//, ''), this.baseUrl);
    for (const [key, value] of Object.entries(options.query ?? {})) if (value !== undefined) url.searchParams.set(key, String(value));
    let response: Response;
    try {
      response = await fetch(url, {
        method,
        headers: { authorization: `Bearer ${this.accessToken}`, ...(options.body !== undefined ? { 'content-type': 'application/json' } : {}) },
        ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
        signal: AbortSignal.timeout(options.timeoutMs ?? 60_000),
      });
    } catch (error) {
      throw unreachable(this.baseUrl, error);
    }
    const text = await response.text();
    let parsed: unknown = {};
    try {
      parsed = text ? JSON.parse(text) : {};
    } catch {
      parsed = {};
    }
    if (!response.ok) {
      const { errcode, error } = parsed as { errcode?: string; error?: string };
      const failure = new HttpFailure(method, url.pathname, response.status, errcode, error);
      if (response.status === 401) throw new AdminApiError('the access token was refused by Synapse (expired or logged out); log in again.', 401, errcode);
      if (response.status === 403 && path.startsWith('/_synapse/admin')) {
        throw new AdminApiError(`the access token belongs to ${this.adminUserId ?? 'a user'}, who is not a server admin.`, 403, errcode);
      }
      throw failure;
    }
    return parsed as T;
  }

  /** Rewrites a failure about one user into the sentences users expect. */
  private async aboutUser<T>(userId: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      if (error instanceof HttpFailure) {
        if (error.status === 404) throw new AdminApiError(`user ${userId} not found.`, 404, error.errcode);
        if (error.status === 400 && /local users/i.test(error.error ?? '')) throw new AdminApiError(`invalid user id ${userId}: not a user of ${this.serverName}.`, 400, error.errcode);
        throw new AdminApiError(`${error.message} (user ${userId}).`, error.status, error.errcode);
      }
      throw error;
    }
  }

  private async aboutRoom<T>(roomId: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      if (error instanceof HttpFailure) {
        if (error.status === 404) throw new AdminApiError(`room ${roomId} not found.`, 404, error.errcode);
        if (error.status === 400 && error.errcode === 'M_INVALID_PARAM') throw new AdminApiError(`invalid room id ${roomId}: expected !opaque:${this.serverName}.`, 400, error.errcode);
        throw new AdminApiError(`${error.message} (room ${roomId}).`, error.status, error.errcode);
      }
      throw error;
    }
  }

  private async plain<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      if (error instanceof HttpFailure) throw new AdminApiError(`${error.message}.`, error.status, error.errcode);
      throw error;
    }
  }

  /** The token's user; refuses a token that is not an admin's. */
  async checkAdmin(): Promise<string> {
    const { user_id: userId } = await this.plain(() => this.request<{ user_id: string }>('GET', '/_matrix/client/v3/account/whoami'));
    this.adminUserId = userId;
    this.serverName = userId.slice(userId.indexOf(':') + 1);
    const { admin } = await this.plain(() => this.request<{ admin: boolean }>('GET', `/_synapse/admin/v1/users/${encode(userId)}/admin`));
    if (!admin) throw new AdminApiError(`the access token belongs to ${userId}, who is not a server admin.`, 403);
    return userId;
  }

  serverVersion(): Promise<{ server_version: string }> {
    return this.plain(() => this.request('GET', '/_synapse/admin/v1/server_version'));
  }

  // ---- users ------------------------------------------------------------------------------------------

  /** The user, or undefined when there is none. */
  async findUser(userId: string): Promise<UserDetails | undefined> {
    try {
      return await this.aboutUser(userId, () => this.request<UserDetails>('GET', `/_synapse/admin/v2/users/${encode(userId)}`));
    } catch (error) {
      if (error instanceof AdminApiError && error.status === 404) return undefined;
      throw error;
    }
  }

  async getUser(userId: string): Promise<UserDetails> {
    const user = await this.findUser(userId);
    if (!user) throw new AdminApiError(`user ${userId} not found.`, 404);
    return user;
  }

  /** Creates a user; refuses when it exists (the PUT would silently modify it). */
  /** Without a password the user has none in Synapse (built-in 2FA: the auth service holds it). */
  async createUser(userId: string, fields: { password?: string; admin?: boolean; displayname?: string; email?: string }): Promise<UserDetails> {
    if (await this.findUser(userId)) throw new AdminApiError(`user ${userId} already exists.`, 409);
    return this.putUser(userId, {
      ...(fields.password !== undefined ? { password: fields.password } : {}),
      admin: fields.admin ?? false,
      ...(fields.displayname !== undefined ? { displayname: fields.displayname } : {}),
      ...(fields.email !== undefined ? { threepids: [{ medium: 'email', address: fields.email }] } : {}),
    });
  }

  /** Creates or modifies without the existence check (bulk creation where the caller knows). */
  putUser(userId: string, body: Record<string, unknown>): Promise<UserDetails> {
    return this.aboutUser(userId, () => this.request<UserDetails>('PUT', `/_synapse/admin/v2/users/${encode(userId)}`, { body }));
  }

  /** One page of users. */
  listUsersPage(filter: UserFilter, from: string | undefined, limit: number): Promise<{ users: UserListEntry[]; next_token?: string; total: number }> {
    return this.plain(() =>
      this.request('GET', '/_synapse/admin/v2/users', {
        query: {
          from,
          limit,
          guests: filter.guests ?? false,
          deactivated: filter.deactivated ?? false,
          ...(filter.admins !== undefined ? { admins: filter.admins } : {}),
          ...(filter.name ? { name: filter.name } : {}),
          order_by: 'name',
        },
      }),
    );
  }

  /** Every user matching the filter, page after page (next_token until there is none). */
  async listUsers(filter: UserFilter, pageSize = 1000, onPage?: (count: number, total: number) => void): Promise<UserListEntry[]> {
    const users: UserListEntry[] = [];
    let from: string | undefined;
    // Bounded: a server answering a next_token forever must not keep us looping.
    for (let page = 0; page < 100_000; page++) {
      const answer = await this.listUsersPage(filter, from, pageSize);
      users.push(...answer.users);
      onPage?.(users.length, answer.total);
      if (answer.next_token === undefined || answer.next_token === null || answer.users.length === 0) return users;
      from = String(answer.next_token);
    }
    throw new AdminApiError('the user list did not end after 100 000 pages.');
  }

  resetPassword(userId: string, newPassword: string, logoutDevices = true): Promise<void> {
    return this.aboutUser(userId, () =>
      this.request('POST', `/_synapse/admin/v1/reset_password/${encode(userId)}`, { body: { new_password: newPassword, logout_devices: logoutDevices } }),
    );
  }

  /** Deactivates (and with erase, forgets the user's messages for new readers); Synapse has no hard delete. */
  async deactivate(userId: string, erase: boolean): Promise<void> {
    await this.getUser(userId);
    await this.aboutUser(userId, () => this.request('POST', `/_synapse/admin/v1/deactivate/${encode(userId)}`, { body: { erase }, timeoutMs: 300_000 }));
  }

  async setAdmin(userId: string, admin: boolean): Promise<void> {
    await this.getUser(userId);
    await this.aboutUser(userId, () => this.request('PUT', `/_synapse/admin/v1/users/${encode(userId)}/admin`, { body: { admin } }));
  }

  /** An access token for the user (admin "login as"); valid until `validUntilMs` when given. */
  async loginAs(userId: string, validUntilMs?: number): Promise<string> {
    await this.getUser(userId);
    const answer = await this.aboutUser(userId, () =>
      this.request<{ access_token: string }>('POST', `/_synapse/admin/v1/users/${encode(userId)}/login`, {
        body: validUntilMs !== undefined ? { valid_until_ms: validUntilMs } : {},
      }),
    );
    return answer.access_token;
  }

  /** Logs every device of the user out (deletes them and their access tokens); returns how many. */
  async logoutAllDevices(userId: string): Promise<number> {
    const { devices } = await this.aboutUser(userId, () => this.request<{ devices: { device_id: string }[] }>('GET', `/_synapse/admin/v2/users/${encode(userId)}/devices`));
    if (devices.length === 0) return 0;
    await this.aboutUser(userId, () =>
      this.request('POST', `/_synapse/admin/v2/users/${encode(userId)}/delete_devices`, { body: { devices: devices.map((d) => d.device_id) } }),
    );
    return devices.length;
  }

  joinedRooms(userId: string): Promise<{ joined_rooms: string[]; total: number }> {
    return this.aboutUser(userId, () => this.request('GET', `/_synapse/admin/v1/users/${encode(userId)}/joined_rooms`));
  }

  /** Lifts rc_message for one user (room import posts many messages as the importer). */
  overrideRateLimit(userId: string): Promise<void> {
    return this.aboutUser(userId, () =>
      this.request('POST', `/_synapse/admin/v1/users/${encode(userId)}/override_ratelimit`, { body: { messages_per_second: 0, burst_count: 0 } }),
    );
  }

  // ---- rooms ------------------------------------------------------------------------------------------

  async listRooms(options: { orderBy?: string; dir?: 'f' | 'b'; search?: string; limit?: number }): Promise<RoomListEntry[]> {
    const rooms: RoomListEntry[] = [];
    let from: number | undefined = 0;
    const wanted = options.limit ?? Number.POSITIVE_INFINITY;
    for (let page = 0; page < 100_000 && from !== undefined && rooms.length < wanted; page++) {
      const answer = await this.plain(() =>
        this.request<{ rooms: RoomListEntry[]; next_batch?: number; total_rooms: number }>('GET', '/_synapse/admin/v1/rooms', {
          query: { from, limit: Math.min(500, wanted - rooms.length), order_by: options.orderBy, dir: options.dir, search_term: options.search },
        }),
      );
      rooms.push(...answer.rooms);
      from = answer.rooms.length === 0 ? undefined : answer.next_batch;
    }
    return rooms.slice(0, wanted);
  }

  roomDetails(roomId: string): Promise<RoomListEntry & { avatar?: string | null; room_type?: string | null }> {
    return this.aboutRoom(roomId, () => this.request('GET', `/_synapse/admin/v1/rooms/${encode(roomId)}`));
  }

  async roomState(roomId: string): Promise<MatrixEvent[]> {
    const answer = await this.aboutRoom(roomId, () => this.request<{ state: MatrixEvent[] }>('GET', `/_synapse/admin/v1/rooms/${encode(roomId)}/state`));
    return answer.state;
  }

  async roomMembers(roomId: string): Promise<string[]> {
    const answer = await this.aboutRoom(roomId, () => this.request<{ members: string[] }>('GET', `/_synapse/admin/v1/rooms/${encode(roomId)}/members`));
    return answer.members;
  }

  /** Events of a room oldest first, through the admin messages endpoint (no membership needed). */
  async roomMessages(roomId: string, maxEvents = 1_000_000): Promise<MatrixEvent[]> {
    const events: MatrixEvent[] = [];
    let from: string | undefined;
    for (let page = 0; page < 10_000 && events.length < maxEvents; page++) {
      const answer = await this.aboutRoom(roomId, () =>
        this.request<{ chunk: MatrixEvent[]; end?: string }>('GET', `/_synapse/admin/v1/rooms/${encode(roomId)}/messages`, {
          query: { dir: 'f', limit: 1000, ...(from ? { from } : {}) },
        }),
      );
      events.push(...answer.chunk);
      if (!answer.end || answer.chunk.length === 0 || answer.end === from) break;
      from = answer.end;
    }
    return events.slice(0, maxEvents);
  }

  /** Starts the asynchronous delete; returns its id. */
  async deleteRoom(roomId: string, options: { purge: boolean; block: boolean; message?: string }): Promise<string> {
    const answer = await this.aboutRoom(roomId, () =>
      this.request<{ delete_id: string }>('DELETE', `/_synapse/admin/v2/rooms/${encode(roomId)}`, {
        body: { purge: options.purge, block: options.block, ...(options.message ? { message: options.message } : {}) },
      }),
    );
    return answer.delete_id;
  }

  deleteStatus(deleteId: string): Promise<RoomDeleteStatus> {
    return this.plain(() => this.request('GET', `/_synapse/admin/v2/rooms/delete_status/${encode(deleteId)}`));
  }

  // ---- client API as the admin (room creation and import) ---------------------------------------------

  async createRoom(body: Record<string, unknown>): Promise<string> {
    const answer = await this.plain(() => this.request<{ room_id: string }>('POST', '/_matrix/client/v3/createRoom', { body }));
    return answer.room_id;
  }

  async sendEvent(roomId: string, type: string, content: Record<string, unknown>, transactionId: string): Promise<string> {
    const answer = await this.aboutRoom(roomId, () =>
      this.request<{ event_id: string }>('PUT', `/_matrix/client/v3/rooms/${encode(roomId)}/send/${encode(type)}/${encode(transactionId)}`, { body: content }),
    );
    return answer.event_id;
  }

  async sendState(roomId: string, type: string, stateKey: string, content: Record<string, unknown>): Promise<string> {
    const answer = await this.aboutRoom(roomId, () =>
      this.request<{ event_id: string }>('PUT', `/_matrix/client/v3/rooms/${encode(roomId)}/state/${encode(type)}/${encode(stateKey)}`, { body: content }),
    );
    return answer.event_id;
  }

  // ---- registration tokens ------------------------------------------------------------------------------

  async listRegistrationTokens(valid?: boolean): Promise<RegistrationToken[]> {
    const answer = await this.plain(() =>
      this.request<{ registration_tokens: RegistrationToken[] }>('GET', '/_synapse/admin/v1/registration_tokens', { query: { valid } }),
    );
    return answer.registration_tokens;
  }

  createRegistrationToken(options: { token?: string; usesAllowed?: number; expiryTime?: number; length?: number }): Promise<RegistrationToken> {
    return this.plain(() =>
      this.request('POST', '/_synapse/admin/v1/registration_tokens/new', {
        body: {
          ...(options.token !== undefined ? { token: options.token } : {}),
          ...(options.usesAllowed !== undefined ? { uses_allowed: options.usesAllowed } : {}),
          ...(options.expiryTime !== undefined ? { expiry_time: options.expiryTime } : {}),
          ...(options.length !== undefined ? { length: options.length } : {}),
        },
      }),
    );
  }

  async deleteRegistrationToken(token: string): Promise<void> {
    try {
      await this.request('DELETE', `/_synapse/admin/v1/registration_tokens/${encode(token)}`);
    } catch (error) {
      if (error instanceof HttpFailure && error.status === 404) throw new AdminApiError(`registration token ${token} not found.`, 404);
      if (error instanceof HttpFailure) throw new AdminApiError(`${error.message}.`, error.status);
      throw error;
    }
  }
}

/** What a failed fetch ran into: the socket error code (ECONNREFUSED, ...), else the error's name (TimeoutError). */
export const connectionCause = (error: unknown): string =>
  (error as { cause?: { code?: string } })?.cause?.code ?? (error as { name?: string })?.name ?? 'error';

/** One sentence for a connection failure (refused, timed out, no route). */
export function unreachable(baseUrl: string, error: unknown): AdminApiError {
  return new AdminApiError(`cannot reach Synapse at ${baseUrl} (${connectionCause(error)}): is the stack running?`);
}

type LoginAnswer = { user_id?: string; access_token?: string; errcode?: string; error?: string; retry_after_ms?: number };

/** POST /login with `body` (and any extra headers); the caller turns a refusal into its own sentence. */
async function postLogin(baseUrl: string, body: Record<string, unknown>, deviceId: string, headers: Record<string, string> = {}): Promise<{ response: Response; answer: LoginAnswer }> {
  let response: Response;
  try {
    response = await fetch(new URL('_matrix/client/v3/login', baseUrl), {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify({ ...body, device_id: deviceId, initial_device_display_name: 'mxstack CLI' }),
      signal: AbortSignal.timeout(60_000),
    });
  } catch (error) {
    throw unreachable(baseUrl, error);
  }
  return { response, answer: (await response.json().catch(() => ({}))) as LoginAnswer };
}

/** Password login for the admin; the password travels in the body only. */
export async function loginWithPassword(baseUrl: string, user: string, password: string, deviceId: string): Promise<{ userId: string; accessToken: string }> {
  const { response, answer } = await postLogin(baseUrl, { type: 'm.login.password', identifier: { type: 'm.id.user', user }, password }, deviceId);
  if (response.ok && answer.user_id && answer.access_token) return { userId: answer.user_id, accessToken: answer.access_token };
  if (answer.errcode === 'M_FORBIDDEN') throw new AdminApiError(`Synapse refused the stored admin password of ${user} (M_FORBIDDEN); reset it with \`mxstack secrets rotate admin-password\` or pass --access-token-file.`);
  if (answer.errcode === 'M_LIMIT_EXCEEDED') {
    throw new AdminApiError(`Synapse rate-limited the admin login; retry in ${Math.ceil((answer.retry_after_ms ?? 60_000) / 1000)} s.`);
  }
  throw new AdminApiError(`admin login as ${user} failed: HTTP ${response.status} ${answer.errcode ?? ''}`.trim() + '.');
}

/**
 * Login as a user of an application service's namespace (`m.login.application_service`): the as_token
 * travels in the Authorization header only. How the CLI logs in as the admin while Synapse's password login
 * is off (built-in 2FA; the `mxstack-cli` application service).
 */
export async function loginWithAppservice(baseUrl: string, user: string, asToken: string, deviceId: string): Promise<{ userId: string; accessToken: string }> {
  const { response, answer } = await postLogin(baseUrl, { type: 'm.login.application_service', identifier: { type: 'm.id.user', user } }, deviceId, { authorization: `Bearer ${asToken}` });
  if (response.ok && answer.user_id && answer.access_token) return { userId: answer.user_id, accessToken: answer.access_token };
  if (answer.errcode === 'M_UNKNOWN_TOKEN' || response.status === 401) {
    throw new AdminApiError('Synapse refused the stored token of the mxstack-cli application service (M_UNKNOWN_TOKEN): restart Synapse so it reads its application service file again (locally `mxstack down` then `mxstack up`).');
  }
  if (response.status === 403) {
    throw new AdminApiError(`Synapse refused the admin login of ${user} through the mxstack-cli application service (${answer.errcode ?? `HTTP ${response.status}`}): the admin user is not in its namespace; restart the stack after changing synapse.server.adminUser.`);
  }
  throw new AdminApiError(`admin login as ${user} through the mxstack-cli application service failed: HTTP ${response.status} ${answer.errcode ?? ''}`.trim() + '.');
}

/** The user id a token belongs to, or undefined when Synapse no longer accepts the token. */
export async function tokenOwner(baseUrl: string, accessToken: string): Promise<string | undefined> {
  let response: Response;
  try {
    response = await fetch(new URL('_matrix/client/v3/account/whoami', baseUrl), {
      headers: { authorization: `Bearer ${accessToken}` },
      signal: AbortSignal.timeout(30_000),
    });
  } catch (error) {
    throw unreachable(baseUrl, error);
  }
  if (response.status === 401) return undefined;
  const answer = (await response.json().catch(() => ({}))) as { user_id?: string };
  return response.ok ? answer.user_id : undefined;
}
