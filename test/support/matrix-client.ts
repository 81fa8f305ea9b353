/**
 * Helpers for driving a real Synapse from tests and benchmarks: plain client-server and admin API calls
 * with bounded timeouts, and matrix-js-sdk clients for the parts a real client exercises (sync, timelines).
 *
 * Access tokens and passwords stay in memory: they never appear in error messages.
 */
import { readFile } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { ClientEvent, RoomEvent, SyncState, createClient, type MatrixClient, type MatrixEvent } from 'matrix-js-sdk';
import { logger as sdkLogger } from 'matrix-js-sdk/lib/logger.js';

// matrix-js-sdk logs every sync at info level; tests only want its warnings. Its logger is a `loglevel`
// instance at run time, but the published type hides setLevel.
(sdkLogger as unknown as { setLevel(level: 'warn'): void }).setLevel('warn');

export interface AdminCredentials {
  user_id: string;
  password: string;
}

export interface MatrixSession {
  baseUrl: string;
  userId: string;
  accessToken: string;
  deviceId?: string;
}

/** A non-2xx answer from Synapse. The message names method, path (without query) and errcode only. */
export class MatrixHttpError extends Error {
  constructor(
    readonly method: string,
    readonly path: string,
    readonly status: number,
    readonly errcode: string | undefined,
    readonly body: unknown,
  ) {
    super(`${method} ${path.split('?')[0]} answered ${status}${errcode ? ` ${errcode}` : ''}`);
    this.name = 'MatrixHttpError';
  }
}

export interface RequestOptions {
  accessToken?: string;
  body?: unknown;
  /** Default 30 s. */
  timeoutMs?: number;
}

export async function matrixRequest<T = Record<string, unknown>>(
  baseUrl: string,
  method: string,
  path: string,
  options: RequestOptions = {},
): Promise<T> {
  const headers: Record<string, string> = {};
  if (options.accessToken) headers.authorization = `Bearer ${options.accessToken}`;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(new URL(path, baseUrl), {
    method,
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
    signal: AbortSignal.timeout(options.timeoutMs ?? 30_000),
  });
  const text = await response.text();
  let parsed: unknown = undefined;
  try {
    parsed = text ? JSON.parse(text) : {};
  } catch {
    parsed = text;
  }
  if (!response.ok) {
    const errcode = typeof parsed === 'object' && parsed !== null ? (parsed as { errcode?: string }).errcode : undefined;
    throw new MatrixHttpError(method, path, response.status, errcode, parsed);
  }
  return parsed as T;
}

export async function readAdminCredentials(file: string): Promise<AdminCredentials> {
  const parsed = JSON.parse(await readFile(file, 'utf8')) as Partial<AdminCredentials>;
  if (typeof parsed.user_id !== 'string' || typeof parsed.password !== 'string') {
    throw new Error(`${file} lacks user_id or password`);
  }
  return { user_id: parsed.user_id, password: parsed.password };
}

/** Password login (counts against Synapse's rc_login: burst 5 per address by default). */
export async function loginWithPassword(baseUrl: string, userId: string, password: string): Promise<MatrixSession> {
  const answer = await matrixRequest<{ user_id: string; access_token: string; device_id: string }>(
    baseUrl,
    'POST',
    '/_matrix/client/v3/login',
    { body: { type: 'm.login.password', identifier: { type: 'm.id.user', user: userId }, password } },
  );
  return { baseUrl, userId: answer.user_id, accessToken: answer.access_token, deviceId: answer.device_id };
}

export function serverNameOf(userId: string): string {
  return userId.slice(userId.indexOf(':') + 1);
}

/**
 * The Synapse admin API as the admin user. `adminBaseUrl` reaches Synapse's /_synapse/admin (the router
 * does not route it unless router.exposeAdminApi is set); client calls go through `session.baseUrl`.
 */
export class SynapseAdmin {
  constructor(
    readonly session: MatrixSession,
    readonly adminBaseUrl: string = session.baseUrl,
  ) {}

  static async login(clientBaseUrl: string, credentials: AdminCredentials, adminBaseUrl?: string): Promise<SynapseAdmin> {
    const session = await loginWithPassword(clientBaseUrl, credentials.user_id, credentials.password);
    return new SynapseAdmin(session, adminBaseUrl);
  }

  get serverName(): string {
    return serverNameOf(this.session.userId);
  }

  private call<T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<T> {
    return matrixRequest<T>(this.adminBaseUrl, method, path, { accessToken: this.session.accessToken, body });
  }

  /** Creates (or updates) a local user with a password; returns the full user id. */
  async createUser(localpart: string, password: string, options: { admin?: boolean; displayname?: string } = {}): Promise<string> {
    const userId = `@${localpart}:${this.serverName}`;
    await this.call('PUT', `/_synapse/admin/v2/users/${encodeURIComponent(userId)}`, {
      password,
      admin: options.admin ?? false,
      displayname: options.displayname ?? localpart,
    });
    return userId;
  }

  /** Lifts rc_message and friends for one user, as tests and benchmarks need (matrix.md section 8). */
  async liftRateLimits(userId: string): Promise<void> {
    await this.call('POST', `/_synapse/admin/v1/users/${encodeURIComponent(userId)}/override_ratelimit`, {
      messages_per_second: 0,
      burst_count: 0,
    });
  }

  /** An access token for a user without a password login (does not count against rc_login). */
  async loginAs(userId: string): Promise<MatrixSession> {
    const answer = await this.call<{ access_token: string }>(
      'POST',
      `/_synapse/admin/v1/users/${encodeURIComponent(userId)}/login`,
      {},
    );
    return { baseUrl: this.session.baseUrl, userId, accessToken: answer.access_token };
  }

  /** A fresh user with lifted rate limits and a session obtained through admin login-as. */
  async createTestUser(localpart: string): Promise<{ session: MatrixSession; password: string }> {
    const password = randomUUID();
    const userId = await this.createUser(localpart, password);
    await this.liftRateLimits(userId);
    return { session: await this.loginAs(userId), password };
  }
}

/** A private room created by `owner` with `members` invited and joined. */
export async function createPrivateRoom(owner: MatrixSession, members: MatrixSession[], name = 'test room'): Promise<string> {
  const { room_id: roomId } = await matrixRequest<{ room_id: string }>(owner.baseUrl, 'POST', '/_matrix/client/v3/createRoom', {
    accessToken: owner.accessToken,
    body: { preset: 'private_chat', name, invite: members.map((member) => member.userId) },
  });
  for (const member of members) {
    await matrixRequest(member.baseUrl, 'POST', `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, {
      accessToken: member.accessToken,
      body: {},
    });
  }
  return roomId;
}

/** Sends one m.text message with an explicit transaction id (so a retry with the same id is idempotent). */
export async function sendText(session: MatrixSession, roomId: string, body: string, transactionId: string, timeoutMs = 30_000): Promise<string> {
  const path = `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/${encodeURIComponent(transactionId)}`;
  const answer = await matrixRequest<{ event_id: string }>(session.baseUrl, 'PUT', path, {
    accessToken: session.accessToken,
    body: { msgtype: 'm.text', body },
    timeoutMs,
  });
  return answer.event_id;
}

/** Every m.room.message body in a room, oldest first, read back through /messages. */
export async function readAllMessageBodies(session: MatrixSession, roomId: string, maxPages = 100): Promise<string[]> {
  const bodies: string[] = [];
  let from: string | undefined;
  for (let page = 0; page < maxPages; page++) {
    const query = new URLSearchParams({ dir: 'f', limit: '500' });
    if (from) query.set('from', from);
    const answer = await matrixRequest<{ chunk: Array<{ type: string; content: { body?: string } }>; end?: string }>(
      session.baseUrl,
      'GET',
      `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?${query}`,
      { accessToken: session.accessToken },
    );
    for (const event of answer.chunk) {
      if (event.type === 'm.room.message' && typeof event.content.body === 'string') bodies.push(event.content.body);
    }
    if (!answer.end || answer.chunk.length === 0) return bodies;
    from = answer.end;
  }
  throw new Error(`room history longer than ${maxPages} pages`);
}

export interface SyncedClient {
  client: MatrixClient;
  stop(): void;
}

/** A matrix-js-sdk client that has completed its first sync (bounded by `timeoutMs`). */
export async function startSyncedClient(session: MatrixSession, timeoutMs = 60_000): Promise<SyncedClient> {
  const client = createClient({
    baseUrl: session.baseUrl,
    userId: session.userId,
    accessToken: session.accessToken,
    deviceId: session.deviceId,
  });
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`first sync of ${session.userId} took over ${timeoutMs} ms`)), timeoutMs);
    const onSync = (state: SyncState) => {
      if (state === SyncState.Prepared || state === SyncState.Syncing) {
        clearTimeout(timer);
        client.off(ClientEvent.Sync, onSync);
        resolve();
      }
    };
    client.on(ClientEvent.Sync, onSync);
  });
  await client.startClient({ initialSyncLimit: 10, lazyLoadMembers: true });
  try {
    await ready;
  } catch (error) {
    client.stopClient();
    throw error;
  }
  return { client, stop: () => client.stopClient() };
}

/**
 * Collects the bodies of m.room.message events arriving live in one room, in timeline order, and lets a
 * test wait (bounded) until a number of them has arrived.
 */
export function collectLiveMessages(client: MatrixClient, roomId: string) {
  const bodies: string[] = [];
  const waiters: Array<{ count: number; resolve: () => void }> = [];
  const onTimeline = (event: MatrixEvent, room: unknown, toStartOfTimeline: boolean | undefined) => {
    if (toStartOfTimeline || event.getRoomId() !== roomId || event.getType() !== 'm.room.message') return;
    const body = event.getContent().body;
    if (typeof body !== 'string') return;
    bodies.push(body);
    for (const waiter of waiters.filter((candidate) => bodies.length >= candidate.count)) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve();
    }
  };
  client.on(RoomEvent.Timeline, onTimeline);
  return {
    bodies,
    waitFor(count: number, timeoutMs: number): Promise<void> {
      if (bodies.length >= count) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const waiter = { count, resolve: () => (clearTimeout(timer), resolve()) };
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(waiter), 1);
          reject(new Error(`only ${bodies.length} of ${count} messages arrived within ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.push(waiter);
      });
    },
    stop: () => client.off(RoomEvent.Timeline, onTimeline),
  };
}

/** Thrown by a `waitUntil` probe to stop waiting at once (e.g. the awaited process has exited). */
export class GiveUp extends Error {}

/** Polls `probe` until it returns a value or the deadline passes; errors other than GiveUp are retried. */
export async function waitUntil<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>, intervalMs = 500): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      if (error instanceof GiveUp) throw error;
      lastError = error;
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  const cause = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${cause}`);
}
