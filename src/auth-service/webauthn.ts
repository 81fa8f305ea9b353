// WebAuthn ceremonies through @simplewebauthn/server; the challenge lives in the server-side session.
import {
  generateAuthenticationOptions,
  generateRegistrationOptions,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
  type AuthenticationResponseJSON,
  type AuthenticatorTransport,
  type RegistrationResponseJSON,
} from '@simplewebauthn/server';
import type { AuthPolicy } from '../components/auth/service-config.js';
import * as repo from './repository.js';
import type { Database } from './repository.js';

export async function registrationOptions(db: Database, policy: AuthPolicy['webauthn'], account: repo.Account) {
  const existing = await repo.listWebAuthnCredentials(db, account.id);
  return generateRegistrationOptions({
    rpName: policy.rpName,
    rpID: policy.rpId,
    userName: account.username,
    userID: new TextEncoder().encode(`mxstack-auth:${account.id}`),
    attestationType: 'none',
    excludeCredentials: existing.map((credential) => ({ id: credential.credentialId.toString('base64url'), transports: [...credential.transports] })),
    authenticatorSelection: { residentKey: 'discouraged', userVerification: 'preferred' },
  });
}

/** The verified new credential, or undefined when the response does not verify. */
export async function verifyRegistration(policy: AuthPolicy['webauthn'], expectedChallenge: string, response: unknown, name: string): Promise<repo.WebAuthnCredential | undefined> {
  try {
    const result = await verifyRegistrationResponse({
      response: response as RegistrationResponseJSON,
      expectedChallenge,
      expectedOrigin: policy.origin,
      expectedRPID: policy.rpId,
      requireUserVerification: false,
    });
    if (!result.verified) return undefined;
    const { credential } = result.registrationInfo;
    return {
      credentialId: Buffer.from(credential.id, 'base64url'),
      publicKey: Buffer.from(credential.publicKey),
      signCount: credential.counter,
      transports: credential.transports ?? [],
      name: name.trim().slice(0, 64) || 'Security key',
    };
  } catch {
    return undefined;
  }
}

export async function authenticationOptions(db: Database, policy: AuthPolicy['webauthn'], account: repo.Account) {
  const credentials = await repo.listWebAuthnCredentials(db, account.id);
  return generateAuthenticationOptions({
    rpID: policy.rpId,
    allowCredentials: credentials.map((credential) => ({ id: credential.credentialId.toString('base64url'), transports: credential.transports as AuthenticatorTransport[] })),
    userVerification: 'preferred',
  });
}

/** True when the assertion verifies against one of the account's keys and its counter update wins. */
export async function verifyAuthentication(db: Database, policy: AuthPolicy['webauthn'], account: repo.Account, expectedChallenge: string, response: unknown): Promise<boolean> {
  const assertion = response as AuthenticationResponseJSON;
  if (typeof assertion?.id !== 'string') return false;
  const credentials = await repo.listWebAuthnCredentials(db, account.id);
  const stored = credentials.find((credential) => credential.credentialId.toString('base64url') === assertion.id);
  if (!stored) return false;
  try {
    const result = await verifyAuthenticationResponse({
      response: assertion,
      expectedChallenge,
      expectedOrigin: policy.origin,
      expectedRPID: policy.rpId,
      credential: { id: assertion.id, publicKey: new Uint8Array(stored.publicKey), counter: stored.signCount, transports: stored.transports as AuthenticatorTransport[] },
      requireUserVerification: false,
    });
    return result.verified && (await repo.updateWebAuthnSignCount(db, account.id, stored.credentialId, result.authenticationInfo.newCounter));
  } catch {
    return false;
  }
}
