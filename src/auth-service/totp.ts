// TOTP (RFC 6238) second factor. Code generation and the otpauth:// URI come from the `otpauth` library;
// acceptance is decided here because it carries the security rules: a window of exactly ±1 step (clock
// drift), refusal of any step not after the last accepted one (a code cannot be replayed, nor an older
// code used after a newer one), and constant-time comparison of codes.
import { timingSafeEqual } from 'node:crypto';
import { Secret, TOTP } from 'otpauth';

import type { TotpAlgorithm } from '../components/auth/service-config.js';

/** The policy: `synapse.server.mfa.totp.{issuer, digits, period, algorithm}`. */
export interface TotpPolicy {
  readonly issuer: string;
  readonly digits: number;
  /** Seconds per step. */
  readonly period: number;
  readonly algorithm: TotpAlgorithm;
}

/** Steps either side of the current one that are still accepted. */
const driftSteps = 1;

/** A new random secret in base32 (what authenticator apps read). 20 bytes = the HMAC-SHA1 block RFC 4226 recommends; longer for the SHA-2 variants. */
export function generateTotpSecret(algorithm: TotpAlgorithm = 'SHA1'): string {
  const size = algorithm === 'SHA512' ? 64 : algorithm === 'SHA256' ? 32 : 20;
  return new Secret({ size }).base32;
}

/** The otpauth:// URI an authenticator app enrols from (shown as a QR code). */
export function totpEnrolmentUri(policy: TotpPolicy, account: string, secretBase32: string): string {
  return totpFor(policy, secretBase32, account).toString();
}

/** The step number (RFC 6238's T) at `nowMs`. */
export function totpStepAt(policy: TotpPolicy, nowMs: number): number {
  return Math.floor(nowMs / 1000 / policy.period);
}

/** The code for the step containing `nowMs` (for tests and the enrolment check). */
export function totpCodeAt(policy: TotpPolicy, secretBase32: string, nowMs: number): string {
  return totpFor(policy, secretBase32).generate({ timestamp: nowMs });
}

export type TotpCheck =
  | { readonly ok: true; /** Store this as the account's last used step. */ readonly step: number }
  | { readonly ok: false; readonly reason: 'malformed' | 'wrong' | 'replayed' };

/**
 * Checks `code` at `nowMs`. `lastUsedStep` is the step of the last accepted code (undefined if none):
 * a code whose step is not after it is refused as 'replayed', even if it is otherwise correct.
 */
export function checkTotpCode(policy: TotpPolicy, secretBase32: string, code: string, nowMs: number, lastUsedStep: number | undefined): TotpCheck {
  const submitted = code.replace(/\s+/g, '');
  if (!new RegExp(`^\\d{${policy.digits}}$`).test(submitted)) return { ok: false, reason: 'malformed' };
  const totp = totpFor(policy, secretBase32);
  const currentStep = totpStepAt(policy, nowMs);
  let matchedStep: number | undefined;
  // Every candidate is compared (no early exit), so timing does not reveal which step matched.
  for (let step = currentStep - driftSteps; step <= currentStep + driftSteps; step++) {
    const expected = totp.generate({ timestamp: step * policy.period * 1000 });
    if (constantTimeEqual(expected, submitted)) matchedStep = step;
  }
  if (matchedStep === undefined) return { ok: false, reason: 'wrong' };
  if (lastUsedStep !== undefined && matchedStep <= lastUsedStep) return { ok: false, reason: 'replayed' };
  return { ok: true, step: matchedStep };
}

export function constantTimeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a, 'utf8');
  const right = Buffer.from(b, 'utf8');
  if (left.length !== right.length) return false;
  return timingSafeEqual(left, right);
}

function totpFor(policy: TotpPolicy, secretBase32: string, account = ''): TOTP {
  return new TOTP({
    issuer: policy.issuer,
    label: account,
    algorithm: policy.algorithm,
    digits: policy.digits,
    period: policy.period,
    secret: Secret.fromBase32(secretBase32),
  });
}
