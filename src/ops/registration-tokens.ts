/** `mxstack registration-tokens create | list | delete`: tokens that let people register when registration requires one. */
import { AdminApiError, type RegistrationToken, type SynapseAdminClient } from './admin-api.js';

export interface TokenSummary {
  token: string;
  uses_allowed: number | null;
  pending: number;
  completed: number;
  /** ISO 8601, null when it never expires. */
  expires: string | null;
  valid: boolean;
}

export function summarizeToken(token: RegistrationToken, now: number = Date.now()): TokenSummary {
  const usedUp = token.uses_allowed !== null && token.completed + token.pending >= token.uses_allowed;
  const expired = token.expiry_time !== null && token.expiry_time <= now;
  return {
    token: token.token,
    uses_allowed: token.uses_allowed,
    pending: token.pending,
    completed: token.completed,
    expires: token.expiry_time !== null ? new Date(token.expiry_time).toISOString() : null,
    valid: !usedUp && !expired,
  };
}

/** Synapse's token grammar: up to 64 characters of A-Z a-z 0-9 . _ ~ -. */
const tokenPattern = /^[A-Za-z0-9._~-]{1,64}$/;

export interface CreateTokenRequest {
  token?: string;
  usesAllowed?: number;
  /** Milliseconds from now. */
  validForMs?: number;
  length?: number;
}

export async function createRegistrationToken(admin: SynapseAdminClient, request: CreateTokenRequest): Promise<TokenSummary> {
  if (request.token !== undefined && !tokenPattern.test(request.token)) {
    throw new AdminApiError(`invalid registration token ${JSON.stringify(request.token)}: up to 64 characters of A-Z, a-z, 0-9 and . _ ~ -.`);
  }
  const created = await admin.createRegistrationToken({
    ...(request.token !== undefined ? { token: request.token } : {}),
    ...(request.usesAllowed !== undefined ? { usesAllowed: request.usesAllowed } : {}),
    ...(request.validForMs !== undefined ? { expiryTime: Date.now() + request.validForMs } : {}),
    ...(request.length !== undefined ? { length: request.length } : {}),
  });
  return summarizeToken(created);
}

export async function listRegistrationTokens(admin: SynapseAdminClient, valid?: boolean): Promise<TokenSummary[]> {
  return (await admin.listRegistrationTokens(valid)).map((token) => summarizeToken(token));
}

export function deleteRegistrationToken(admin: SynapseAdminClient, token: string): Promise<void> {
  return admin.deleteRegistrationToken(token);
}
