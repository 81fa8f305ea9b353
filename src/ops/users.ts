/**
 * `mxstack users ...`: user administration through the Synapse Admin API, the same on every target. When
 * the stack has built-in 2FA (the auth component), passwords live at the auth service (Synapse's password
 * login is off), so create / set-password go through its admin API too, and reset-2fa / unlock / the
 * "Second factors" of `info` exist only there. Functions take the auth client as `auth` (undefined: 2FA off).
 */
import { generateAdminPassword } from './secrets/generate.js';
import { AdminApiError, toUserId, type SynapseAdminClient, type UserDetails, type UserFilter, type UserListEntry } from './admin-api.js';
import { localpartOf, type AdminAccountInfo, type AuthAdminClient } from './auth-admin.js';
import { minimumPasswordLength } from '../components/auth/service-config.js';

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


/**
 * Creates a user. With 2FA on, the Synapse user gets no password (Synapse 1.160 would store a hash from the
 * admin API's `password` even with password login off, a second copy nobody could change), and the
 * password is set at the auth service; its admin API is checked first, so a stopped auth service refuses
 * before anything is created.
 */

export async function createUser(admin: SynapseAdminClient, request: CreateUserRequest, auth?: AuthAdminClient): Promise<CreatedUser> {
  const userId = toUserId(request.user, admin.serverName);
  const generatedPassword = request.password === undefined ? generateAdminPassword() : undefined;
  const password = request.password ?? generatedPassword!;
  const isAdmin = request.admin ?? false;
  if (auth) {
    if (password.length < minimumPasswordLength) throw new AdminApiError(`the password is too short: the auth service takes passwords of at least ${minimumPasswordLength} characters; nothing was created.`);
    const problem = await auth.health();
    if (problem) throw new AdminApiError(`the auth service is not healthy (${problem}): nothing was created; start it and try again.`);
  }
  await admin.createUser(userId, {
    ...(auth ? {} : { password }),
    admin: isAdmin,
    ...(request.displayName !== undefined ? { displayname: request.displayName } : {}),
    ...(request.email !== undefined ? { email: request.email } : {}),
  });
  if (auth) {
    try {
      await auth.setPassword(localpartOf(userId), password, isAdmin);
    } catch (error) {
      throw new AdminApiError(
        `created ${userId} in Synapse, but the auth service did not take its password (${error instanceof Error ? error.message : String(error)}): set it with \`mxstack users set-password ${userId} --password-file FILE\`.`,
      );
    }
  }
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
  /** With 2FA on: the user's second factors (never secrets); null when the auth service has no account. */
  second_factors?: SecondFactors | null;
}

/** What `users info` shows of a user's sign-in at the auth service (JSON field names as printed). */
export interface SecondFactors {
  /** Where the password lives: argon2id at the auth service, synapse-bcrypt (imported, not yet re-hashed), none (still only in Synapse). */
  password: AdminAccountInfo['password'];
  authenticator_app: { enrolled: boolean; enrolled_at: string | null };
  security_keys: { name: string; created: string; last_used: string | null }[];
  recovery_codes_left: number;
  must_enrol: boolean;
  locked_until: string | null;
}

export function describeSecondFactors(account: AdminAccountInfo): SecondFactors {
  return {
    password: account.password,
    authenticator_app: { enrolled: account.totp.enrolled, enrolled_at: account.totp.enrolledAt ?? null },
    security_keys: account.webauthn.map((key) => ({ name: key.name, created: key.createdAt, last_used: key.lastUsedAt ?? null })),
    recovery_codes_left: account.recoveryCodesLeft,
    must_enrol: account.mustEnrol,
    locked_until: account.lockedUntil ?? null,
  };
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

export async function userInfo(admin: SynapseAdminClient, user: string, auth?: AuthAdminClient): Promise<UserInfo> {
  const userId = toUserId(user, admin.serverName);
  const details = await admin.getUser(userId);
  const { joined_rooms: rooms } = await admin.joinedRooms(userId);
  const info = describeUser(details, rooms);
  if (!auth) return info;
  const account = await auth.findAccount(localpartOf(userId));
  return { ...info, second_factors: account ? describeSecondFactors(account) : null };
}

export interface PasswordChange extends CreatedUser {
  /** Where the password was set: Synapse, or the auth service when 2FA is on. */
  at: 'synapse' | 'auth service';
  /** Devices logged out (with 2FA on, through the Admin API after the change). */
  loggedOutDevices?: number;
}

/**
 * Sets a password (generated when not given, returned once); logs the user's devices out. With 2FA on the
 * password is set at the auth service (Synapse refuses password changes while its password login is off).
 */
export async function setPassword(admin: SynapseAdminClient, user: string, password: string | undefined, auth?: AuthAdminClient): Promise<PasswordChange> {
  const userId = toUserId(user, admin.serverName);
  const details = await admin.getUser(userId);
  if (details.deactivated) throw new AdminApiError(`user ${userId} is deactivated: a password would not let it sign in.`);
  const generatedPassword = password === undefined ? generateAdminPassword() : undefined;
  const generated = generatedPassword ? { generatedPassword } : {};
  if (!auth) {
    await admin.resetPassword(userId, password ?? generatedPassword!, true);
    return { userId, at: 'synapse', ...generated };
  }
  await auth.setPassword(localpartOf(userId), password ?? generatedPassword!, Boolean(details.admin));
  const loggedOutDevices = await admin.logoutAllDevices(userId);
  return { userId, at: 'auth service', loggedOutDevices, ...generated };
}

export interface SecondFactorReset {
  userId: string;
  /** One phrase per factor removed (names and dates, never secrets); empty when there was none. */
  removed: string[];
  /** The account as it is now. */
  after: AdminAccountInfo;
}

/** What an account's factors are, one phrase each: what reset-2fa removes. */
export function factorPhrases(account: AdminAccountInfo): string[] {
  const day = (iso: string | undefined) => (iso ? iso.slice(0, 10) : 'unknown date');
  return [
    ...(account.totp.enrolled ? [`authenticator app (enrolled ${day(account.totp.enrolledAt)})`] : []),
    ...account.webauthn.map((key) => `security key "${key.name}" (added ${day(key.createdAt)}${key.lastUsedAt ? `, last used ${day(key.lastUsedAt)}` : ', never used'})`),
    ...(account.recoveryCodesLeft > 0 ? [`${account.recoveryCodesLeft} unused recovery code${account.recoveryCodesLeft === 1 ? '' : 's'}`] : []),
  ];
}

/** The full user id of a user Synapse knows; refuses others. */
async function existingUserId(admin: SynapseAdminClient, user: string): Promise<string> {
  const userId = toUserId(user, admin.serverName);
  await admin.getUser(userId);
  return userId;
}

/**
 * Whether the auth service has an account row for this user: it describes a Synapse user it never saw
 * sign in (password still only in Synapse) as `password: 'none'` without factors, and such a user has
 * nothing to reset or unlock (the service answers 404 to those calls).
 */
const hasAuthAccount = (info: AdminAccountInfo) => info.password !== 'none' || factorPhrases(info).length > 0 || info.mustEnrol || info.lockedUntil !== undefined;

/**
 * Removes every second factor and recovery code of the user at the auth service; `confirm` (the CLI's typed
 * confirmation) runs once the user is known to exist, before anything changes.
 */
export async function resetSecondFactors(
  admin: SynapseAdminClient,
  auth: AuthAdminClient,
  user: string,
  confirm: (userId: string) => Promise<void> = async () => undefined,
): Promise<SecondFactorReset> {
  const userId = await existingUserId(admin, user);
  await confirm(userId);
  const before = await auth.account(localpartOf(userId));
  if (!hasAuthAccount(before)) return { userId, removed: [], after: before };
  const after = await auth.resetSecondFactors(localpartOf(userId));
  return { userId, removed: factorPhrases(before).filter((phrase) => !factorPhrases(after).includes(phrase)), after };
}

/** Clears the user's lockout at the auth service; returns when it was locked until (undefined: was not locked). */
export async function unlockUser(admin: SynapseAdminClient, auth: AuthAdminClient, user: string): Promise<{ userId: string; wasLockedUntil?: string }> {
  const userId = await existingUserId(admin, user);
  const before = await auth.account(localpartOf(userId));
  if (!hasAuthAccount(before)) return { userId };
  await auth.unlock(localpartOf(userId));
  return { userId, ...(before.lockedUntil ? { wasLockedUntil: before.lockedUntil } : {}) };
}

/** Deactivates the user in Synapse; with 2FA on, also ends every sign-in the auth service holds for it. */
export async function deactivateUser(admin: SynapseAdminClient, user: string, erase: boolean, auth?: AuthAdminClient): Promise<string> {
  const userId = toUserId(user, admin.serverName);
  await admin.deactivate(userId, erase);
  await auth?.endSessions(localpartOf(userId));
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

