/**
 * `mxstack rooms ...`: list, inspect, create, delete (waiting for Synapse's asynchronous delete), and
 * export a room to a JSON file / import it again as a new room (name, topic, settable state, and the
 * messages re-posted with their original sender and time in the body).
 */
import { AdminApiError, isRoomId, toUserId, type MatrixEvent, type RoomDeleteStatus, type RoomListEntry, type SynapseAdminClient } from './admin-api.js';

export interface RoomSummary {
  room_id: string;
  name: string | null;
  canonical_alias: string | null;
  topic: string | null;
  joined_members: number;
  joined_local_members: number;
  creator: string | null;
  version: string | null;
  public: boolean;
  encryption: string | null;
  join_rules: string | null;
}

export function summarizeRoom(room: RoomListEntry): RoomSummary {
  return {
    room_id: room.room_id,
    name: room.name ?? null,
    canonical_alias: room.canonical_alias ?? null,
    topic: room.topic ?? null,
    joined_members: room.joined_members,
    joined_local_members: room.joined_local_members ?? 0,
    creator: room.creator ?? null,
    version: room.version ?? null,
    public: Boolean(room.public),
    encryption: room.encryption ?? null,
    join_rules: room.join_rules ?? null,
  };
}

export const roomOrders = ['name', 'canonical_alias', 'joined_members', 'joined_local_members', 'version', 'creator', 'encryption', 'federatable', 'public', 'join_rules', 'guest_access', 'history_visibility', 'state_events'] as const;

export async function listRooms(admin: SynapseAdminClient, options: { limit?: number; orderBy?: string; search?: string }): Promise<RoomSummary[]> {
  const order = options.orderBy ?? 'name';
  // Counts read best largest first; names alphabetically.
  const dir = ['joined_members', 'joined_local_members', 'state_events'].includes(order) ? 'b' : 'f';
  const rooms = await admin.listRooms({ orderBy: order, dir, ...(options.search ? { search: options.search } : {}), ...(options.limit !== undefined ? { limit: options.limit } : {}) });
  return rooms.map(summarizeRoom);
}

function requireRoomId(room: string): string {
  if (!isRoomId(room)) throw new AdminApiError(`invalid room id ${JSON.stringify(room)}: expected !opaque:server (see \`mxstack rooms list\`).`);
  return room;
}

export interface RoomInfo extends RoomSummary {
  members: string[];
  state_events: number;
  history_visibility: string | null;
  guest_access: string | null;
  federatable: boolean;
}

export async function roomInfo(admin: SynapseAdminClient, room: string): Promise<RoomInfo> {
  const roomId = requireRoomId(room);
  const details = await admin.roomDetails(roomId);
  const members = await admin.roomMembers(roomId);
  const raw = details as RoomListEntry & { guest_access?: string | null };
  return {
    ...summarizeRoom(details),
    members,
    state_events: details.state_events ?? 0,
    history_visibility: details.history_visibility ?? null,
    guest_access: raw.guest_access ?? null,
    federatable: details.federatable ?? true,
  };
}

export interface CreateRoomRequest {
  name: string;
  topic?: string;
  /** Local alias part (`general` → #general:server). */
  alias?: string;
  public?: boolean;
  invite?: string[];
}

export async function createRoom(admin: SynapseAdminClient, request: CreateRoomRequest): Promise<{ roomId: string; alias?: string }> {
  const invite = (request.invite ?? []).map((user) => toUserId(user, admin.serverName));
  const aliasName = request.alias?.replace(/^#/, '').replace(/:.*$/, '');
  const roomId = await admin.createRoom({
    name: request.name,
    ...(request.topic ? { topic: request.topic } : {}),
    ...(aliasName ? { room_alias_name: aliasName } : {}),
    preset: request.public ? 'public_chat' : 'private_chat',
    visibility: request.public ? 'public' : 'private',
    ...(invite.length > 0 ? { invite } : {}),
  });
  return { roomId, ...(aliasName ? { alias: `#${aliasName}:${admin.serverName}` } : {}) };
}

export interface DeleteRoomOptions {
  purge: boolean;
  block: boolean;
  message?: string;
  timeoutMs?: number;
  onStatus?: (status: RoomDeleteStatus['status']) => void;
}

/** Deletes a room and waits for the asynchronous delete to end; the final status is returned. */
export async function deleteRoom(admin: SynapseAdminClient, room: string, options: DeleteRoomOptions): Promise<RoomDeleteStatus> {
  const roomId = requireRoomId(room);
  await admin.roomDetails(roomId);
  const deleteId = await admin.deleteRoom(roomId, { purge: options.purge, block: options.block, ...(options.message ? { message: options.message } : {}) });
  const deadline = Date.now() + (options.timeoutMs ?? 600_000);
  let last: RoomDeleteStatus['status'] | undefined;
  while (Date.now() < deadline) {
    const status = await admin.deleteStatus(deleteId);
    if (status.status !== last) options.onStatus?.(status.status);
    last = status.status;
    if (status.status === 'complete' || status.status === 'failed') return status;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  throw new AdminApiError(`the delete of ${roomId} (id ${deleteId}) had not finished after ${Math.round((options.timeoutMs ?? 600_000) / 1000)} s (last status ${last}); check again with the Admin API.`);
}

// ---- export / import ---------------------------------------------------------------------------------

export const roomExportFormat = 'mxstack-room-export';

export interface ExportedMessage {
  event_id: string;
  type: string;
  sender: string;
  origin_server_ts: number;
  content: Record<string, unknown>;
}

export interface RoomExport {
  format: typeof roomExportFormat;
  version: 1;
  exported_at: string;
  server_name: string;
  room: { room_id: string; name: string | null; topic: string | null; canonical_alias: string | null; version: string | null; creator: string | null };
  /** The room's current state, every event. */
  state: MatrixEvent[];
  /** Timeline events that are not state (messages, reactions ...), oldest first. */
  messages: ExportedMessage[];
}

const stateContent = (state: MatrixEvent[], type: string, stateKey = '') => state.find((e) => e.type === type && (e.state_key ?? '') === stateKey)?.content;

export async function exportRoom(admin: SynapseAdminClient, room: string, options: { includeMessages: boolean }): Promise<RoomExport> {
  const roomId = requireRoomId(room);
  const details = await admin.roomDetails(roomId);
  const state = await admin.roomState(roomId);
  const timeline = options.includeMessages ? await admin.roomMessages(roomId) : [];
  return {
    format: roomExportFormat,
    version: 1,
    exported_at: new Date().toISOString(),
    server_name: admin.serverName,
    room: {
      room_id: roomId,
      name: (stateContent(state, 'm.room.name')?.name as string | undefined) ?? details.name ?? null,
      topic: (stateContent(state, 'm.room.topic')?.topic as string | undefined) ?? details.topic ?? null,
      canonical_alias: details.canonical_alias ?? null,
      version: details.version ?? null,
      creator: details.creator ?? null,
    },
    state,
    messages: timeline
      .filter((event) => event.state_key === undefined)
      .map((event) => ({ event_id: event.event_id, type: event.type, sender: event.sender, origin_server_ts: event.origin_server_ts, content: event.content })),
  };
}

export function parseRoomExport(text: string, file: string): RoomExport {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new AdminApiError(`${file} is not JSON: expected a file written by \`mxstack rooms export\`.`);
  }
  const candidate = parsed as Partial<RoomExport>;
  if (candidate.format !== roomExportFormat || candidate.version !== 1 || !candidate.room || !Array.isArray(candidate.state) || !Array.isArray(candidate.messages)) {
    throw new AdminApiError(`${file} is not a room export (format ${roomExportFormat}, version 1): expected a file written by \`mxstack rooms export\`.`);
  }
  return candidate as RoomExport;
}

/**
 * State types copied to the new room as they were. Left out: the create event and memberships (made by
 * the new room itself), power levels (merged, below), aliases and pins (they point at the old room),
 * encryption (re-posted messages are plain text, and encrypted ones cannot be read by the server).
 */
const stateNotCopied = new Set(['m.room.create', 'm.room.member', 'm.room.power_levels', 'm.room.canonical_alias', 'm.room.aliases', 'm.room.pinned_events', 'm.room.encryption', 'm.room.tombstone']);

export function settableState(state: MatrixEvent[]): MatrixEvent[] {
  return state.filter((event) => !stateNotCopied.has(event.type));
}

/** The body a re-posted message gets: original time and sender first. */
export function importedBody(message: ExportedMessage, body: string): string {
  return `[${new Date(message.origin_server_ts).toISOString()}] ${message.sender}: ${body}`;
}

/** The content re-posted for a message: prefixed body (and formatted body), with where it came from. */
export function importedContent(message: ExportedMessage): Record<string, unknown> {
  const content: Record<string, unknown> = { ...message.content };
  if (typeof content.body === 'string') content.body = importedBody(message, content.body);
  if (typeof content.formatted_body === 'string') content.formatted_body = `${escapeHtml(importedBody(message, ''))}${content.formatted_body}`;
  delete content['m.relates_to'];
  delete content['m.new_content'];
  content['dev.mxstack.imported'] = { sender: message.sender, origin_server_ts: message.origin_server_ts, event_id: message.event_id };
  return content;
}

const escapeHtml = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export interface ImportResult {
  roomId: string;
  stateEvents: number;
  messages: number;
  /** Non-message timeline events (reactions, redactions, encrypted events) that were not re-posted. */
  skipped: number;
}

export async function importRoom(admin: SynapseAdminClient, exported: RoomExport, onProgress?: (posted: number, total: number) => void): Promise<ImportResult> {
  const importer = admin.adminUserId!;
  await admin.overrideRateLimit(importer);
  const oldPowerLevels = stateContent(exported.state, 'm.room.power_levels');
  const createContent = stateContent(exported.state, 'm.room.create');
  const roomId = await admin.createRoom({
    preset: 'private_chat',
    ...(exported.room.version ? { room_version: exported.room.version } : {}),
    ...(createContent?.type ? { creation_content: { type: createContent.type } } : {}),
    ...(oldPowerLevels ? { power_level_content_override: importedPowerLevels(oldPowerLevels, importer) } : {}),
  });
  const state = settableState(exported.state);
  for (const event of state) await admin.sendState(roomId, event.type, event.state_key ?? '', event.content);
  const messages = exported.messages.filter((m) => m.type === 'm.room.message' || m.type === 'm.sticker');
  let posted = 0;
  for (const message of messages) {
    // A stable transaction id per source event: re-running an interrupted import does not post twice.
    await admin.sendEvent(roomId, message.type, importedContent(message), `mxstack-import-${message.event_id.replace(/[^A-Za-z0-9]/g, '')}-${roomId.replace(/[^A-Za-z0-9]/g, '')}`);
    posted++;
    if (posted % 100 === 0) onProgress?.(posted, messages.length);
  }
  return { roomId, stateEvents: state.length, messages: posted, skipped: exported.messages.length - messages.length };
}

/** The old room's power levels with the importer at 100 (it must keep the right to set what follows). */
export function importedPowerLevels(old: Record<string, unknown>, importer: string): Record<string, unknown> {
  const users = { ...((old.users as Record<string, number> | undefined) ?? {}), [importer]: 100 };
  return { ...old, users };
}
