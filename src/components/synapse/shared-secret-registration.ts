/**
 * Shared-secret registration through Synapse's admin API (`/_synapse/admin/v1/register`): how the admin
 * user is created at install, idempotently (a user that already exists counts as success).
 */
import { createHmac } from 'node:crypto';

export interface SharedSecretRegistration {
  username: string;
  password: string;
  admin: boolean;
  displayname?: string;
}

/** hex(HMAC-SHA1(secret, nonce \0 username \0 password \0 admin|notadmin)). */
export function registrationMac(sharedSecret: string, nonce: string, registration: SharedSecretRegistration): string {
  const hmac = createHmac('sha1', sharedSecret);
  hmac.update(nonce);
  hmac.update('\0');
  hmac.update(registration.username);
  hmac.update('\0');
  hmac.update(registration.password);
  hmac.update('\0');
  hmac.update(registration.admin ? 'admin' : 'notadmin');
  return hmac.digest('hex');
}

export interface RegistrationResult {
  userId: string;
  /** false when the user already existed. */
  created: boolean;
}

/** Registers a user with the registration shared secret; `baseUrl` reaches Synapse itself (not the router). */
export async function registerWithSharedSecret(
  baseUrl: string,
  sharedSecret: string,
  registration: SharedSecretRegistration,
  serverName: string,
): Promise<RegistrationResult> {
  const url = new URL('_synapse/admin/v1/register', baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`);
  const nonceResponse = await fetch(url, { signal: AbortSignal.timeout(30_000) });
  if (!nonceResponse.ok) throw new Error(`GET ${url.pathname} answered HTTP ${nonceResponse.status}`);
  const { nonce } = (await nonceResponse.json()) as { nonce: string };
  const body = {
    nonce,
    username: registration.username,
    password: registration.password,
    admin: registration.admin,
    ...(registration.displayname ? { displayname: registration.displayname } : {}),
    mac: registrationMac(sharedSecret, nonce, registration),
  };
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(60_000),
  });
  const answer = (await response.json().catch(() => ({}))) as { user_id?: string; errcode?: string; error?: string };
  if (response.ok && answer.user_id) return { userId: answer.user_id, created: true };
  if (answer.errcode === 'M_USER_IN_USE') return { userId: `@${registration.username}:${serverName}`, created: false };
  throw new Error(`registering @${registration.username} failed: HTTP ${response.status} ${answer.errcode ?? ''} ${answer.error ?? ''}`.trim());
}
