/**
 * Facts read from the values that the values checks (refusals) and the stack both need: whether the built-in
 * identity provider runs, its reserved idp_id, and how an idp_id becomes part of a Secret name.
 */
import type { Values } from './schema.js';

/**
 * A server name's host and explicit port: `example.org` → host example.org; `127.0.0.1:8448` → port 8448;
 * `[::1]:8448` → host ::1. Other servers connect to a name with a port there directly (no well-known).
 */
export function splitServerName(serverName: string): { host: string; port?: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]+))(?::(\d+))?$/.exec(serverName);
  if (!match) return { host: serverName };
  const host = match[1] ?? match[2]!;
  return match[3] === undefined ? { host } : { host, port: Number(match[3]) };
}

/** Synapse's idp_id of the auth component (StackAuth.idpId): reserved in the values when 2FA is on. */
export const authIdpId = 'mxstack';

/** Whether the stack deploys the built-in identity provider (the auth component). */
export function authEnabled(values: Values): boolean {
  return values.synapse.server.mfa.totp.enabled || values.synapse.server.mfa.webauthn.enabled;
}

/** idp_id allows `_`, `~`, `.` and capitals, which object names do not: `My_Provider` → `my-provider`. */
export function oidcSecretNamePart(idpId: string): string {
  return idpId.toLowerCase().replace(/[^a-z0-9-]/g, '-').replace(/^-+|-+$/g, '') || 'provider';
}
