/**
 * Facts read from the values that the values checks (refusals) and the stack both need: whether the built-in
 * identity provider runs, its reserved idp_id, and how an idp_id becomes part of a Secret name.
 */
import type { Values } from './schema.js';

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
