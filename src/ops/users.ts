/** `mxstack users ...`: user administration through the Synapse Admin API, the same on every target. */
import { generateAdminPassword } from './secrets/generate.js';
import { toUserId, type SynapseAdminClient, type UserDetails, type UserFilter, type UserListEntry } from './admin-api.js';

/** A user as `users list --output json` prints it: scripts rely on user_id, admin and deactivated. */
export interface UserSummary {
  user_id: string;
  display_name: string | null;
  admin: boolean;
  deactivated: boolean;
  guest: boolean;
  locked: boolean;
  user_type: string | null;
  /** ISO 8601. */
  created: string | null;
}

/** Synapse answers creation_ts in milliseconds in the user list, in seconds for one user: both read as a date. */
export function timestampToIso(value: number | null | undefined): string | null {
  if (!value) return null;
  return new Date(value < 100_000_000_000 ? value * 1000 : value).toISOString();
}

export function summarizeUser(entry: UserListEntry): UserSummary {
  return {
    user_id: entry.name,
    display_name: entry.displayname ?? null,
    admin: Boolean(entry.admin),
    deactivated: Boolean(entry.deactivated),
    guest: Boolean(entry.is_guest),
    locked: Boolean(entry.locked),
    user_type: entry.user_type ?? null,
    created: timestampToIso(entry.creation_ts),
  };
}

export interface CreateUserRequest {
  user: string;
  /** Undefined: a password is generated (and returned once). */
  password?: string;
  admin?: boolean;
  email?: string;
  displayName?: string;
}

export interface CreatedUser {
  userId: string;
  /** Only when it was generated: shown once, stored nowhere. */
  generatedPassword?: string;
}

export async function createUser(admin: SynapseAdminClient, request: CreateUserRequest): Promise<CreatedUser> {
  const userId = toUserId(request.user, admin.serverName);
  const generatedPassword = request.password === undefined ? generateAdminPassword() : undefined;
  await admin.createUser(userId, {
    password: request.password ?? generatedPassword!,
    admin: request.admin ?? false,
    ...(request.displayName !== undefined ? { displayname: request.displayName } : {}),
    ...(request.email !== undefined ? { email: request.email } : {}),
  });
  return { userId, ...(generatedPassword ? { generatedPassword } : {}) };
}

export async function listUsers(admin: SynapseAdminClient, filter: UserFilter, onProgress?: (count: number, total: number) => void): Promise<UserSummary[]> {
  const entries = await admin.listUsers(filter, 1000, onProgress);
  // --admins=false / --guests=false are server-side; `admins` true is filtered server-side as well.
  return entries.map(summarizeUser);
}

export interface UserInfo {
  user_id: string;
  display_name: string | null;
  admin: boolean;
  deactivated: boolean;
  erased: boolean;
  locked: boolean;
  guest: boolean;
  user_type: string | null;
  created: string | null;
  last_seen: string | null;
  emails: string[];
  external_ids: { auth_provider: string; external_id: string }[];
  joined_rooms: string[];
}

export function describeUser(details: UserDetails, joinedRooms: string[]): UserInfo {
  return {
    user_id: details.name,
    display_name: details.displayname ?? null,
    admin: Boolean(details.admin),
    deactivated: Boolean(details.deactivated),
    erased: Boolean(details.erased),
    locked: Boolean(details.locked),
    guest: Boolean(details.is_guest),
    user_type: details.user_type ?? null,
    created: timestampToIso(details.creation_ts),
    last_seen: timestampToIso(details.last_seen_ts),
    emails: (details.threepids ?? []).filter((t) => t.medium === 'email').map((t) => t.address),
    external_ids: details.external_ids ?? [],
    joined_rooms: joinedRooms,
  };
}

export async function userInfo(admin: SynapseAdminClient, user: string): Promise<UserInfo> {
  const userId = toUserId(user, admin.serverName);
  const details = await admin.getUser(userId);
  const { joined_rooms: rooms } = await admin.joinedRooms(userId);
  return describeUser(details, rooms);
}

/** Sets a password (generated when not given, returned once); logs the user's devices out. */
export async function setPassword(admin: SynapseAdminClient, user: string, password: string | undefined): Promise<CreatedUser> {
  const userId = toUserId(user, admin.serverName);
  await admin.getUser(userId);
  const generatedPassword = password === undefined ? generateAdminPassword() : undefined;
  await admin.resetPassword(userId, password ?? generatedPassword!, true);
  return { userId, ...(generatedPassword ? { generatedPassword } : {}) };
}

export async function deactivateUser(admin: SynapseAdminClient, user: string, erase: boolean): Promise<string> {
  const userId = toUserId(user, admin.serverName);
  await admin.deactivate(userId, erase);
  return userId;
}

export async function setUserAdmin(admin: SynapseAdminClient, user: string, isAdmin: boolean): Promise<string> {
  const userId = toUserId(user, admin.serverName);
  if (!isAdmin && userId === admin.adminUserId) {
    throw new Error(`refusing to revoke admin from ${userId}: it is the account this command runs as; use another admin's --access-token-file.`);
  }
  await admin.setAdmin(userId, isAdmin);
  return userId;
}

export async function loginToken(admin: SynapseAdminClient, user: string, validForMs?: number): Promise<{ userId: string; accessToken: string; validUntil?: string }> {
  const userId = toUserId(user, admin.serverName);
  const validUntil = validForMs !== undefined ? Date.now() + validForMs : undefined;
  const accessToken = await admin.loginAs(userId, validUntil);
  return { userId, accessToken, ...(validUntil !== undefined ? { validUntil: new Date(validUntil).toISOString() } : {}) };
}

/** The old chart's `reset-2fa`: there is nothing to reset; one honest sentence. */
export const reset2faAnswer =
  'Synapse has no two-factor authentication, so there is nothing to reset; built-in 2FA will come with mxstack\'s own identity provider (until then, enforce 2FA at your OIDC provider: see docs/operations.md).';
