/**
 * Semantic checks after schema validation: settings that are well-typed but that Synapse (or the
 * stack) cannot honour are refused with a sentence saying why, never silently rendered.
 */
import { ValuesError } from './errors.js';
import type { Values } from './schema.js';
import { oidcPresets } from './oidc-presets.js';
import { authEnabled, authIdpId, oidcSecretNamePart, splitServerName } from './derived.js';
import { reservedDatabaseConnections, synapseDatabaseConnections, workerPoolNames } from './worker-pools.js';
import { additionalConfigProblems } from './additional-config.js';
import { databaseReferenceProblems } from './database.js';

type Check = (values: Values) => string | undefined;

/**
 * The host Synapse's public URL names on a cluster (publicBaseurl, else the Ingress host, else the server
 * name): the sign-in pages are served on it under /auth. Locally, without publicBaseurl, it is the router's
 * loopback address, which the values cannot know.
 */
function publicHost(v: Values): string {
  const explicit = v.synapse.server.publicBaseurl;
  if (explicit) {
    try {
      return new URL(explicit).hostname;
    } catch {
      return explicit;
    }
  }
  return v.ingress.synapse.host ?? splitServerName(v.synapse.server.name).host;
}

/** A WebAuthn rpId must be the page's host or a parent domain of it (never a bare top-level domain). */
export function isValidRpId(rpId: string, host: string): boolean {
  const id = rpId.toLowerCase().replace(/\.$/, '');
  const h = host.toLowerCase().replace(/\.$/, '');
  return id === h || (id.includes('.') && h.endsWith(`.${id}`));
}

/** Settings that contradict the built-in identity provider (2FA on). */
const twoFactorChecks: Check[] = [
  (v) =>
    authEnabled(v) && v.synapse.server.registration.enabled
      ? 'synapse.server.registration.enabled: with two-factor authentication on (synapse.server.mfa), every login goes through mxstack\'s identity provider, which offers no self-service sign-up. Turn registration off and create users with `mxstack users create`.'
      : undefined,
  (v) =>
    authEnabled(v) && v.synapse.server.passwordLogin.enabled
      ? 'synapse.server.passwordLogin.enabled: true contradicts two-factor authentication (synapse.server.mfa): Synapse\'s own password login would bypass the second factor. Remove the key (it is turned off automatically when 2FA is on).'
      : undefined,
  (v) => {
    const { webauthn } = v.synapse.server.mfa;
    if (!webauthn.enabled || webauthn.rpId === undefined) return undefined;
    const host = publicHost(v);
    return isValidRpId(webauthn.rpId, host)
      ? undefined
      : `synapse.server.mfa.webauthn.rpId: "${webauthn.rpId}" is neither the public host "${host}" (where the sign-in pages are served) nor a parent domain of it; browsers refuse such a relying party id. Remove it (default: the public host) or give a parent domain of it.`;
  },
  (v) =>
    authEnabled(v) && v.synapse.server.sso.oidc.providers.some((p) => p.idp_id === authIdpId)
      ? `synapse.server.sso.oidc.providers: idp_id "${authIdpId}" is reserved for the built-in identity provider when two-factor authentication (synapse.server.mfa) is on. Give your provider another idp_id.`
      : undefined,
];

const checks: Check[] = [
  ...twoFactorChecks,
  (v) => additionalConfigProblems(v.synapse.additionalConfig).join('\n') || undefined,
  (v) => {
    const mas = v.mas as Record<string, unknown>;
    const onlyDisabled = Object.keys(mas).every((key) => key === 'enabled') && mas.enabled !== true;
    return onlyDisabled
      ? undefined
      : 'mas: Matrix Authentication Service is not supported by mxstack (the old chart had mas.* keys with nothing behind them, and MAS has no 2FA either). Remove the mas block; use synapse.server.sso for OIDC login.';
  },
  (v) =>
    Object.keys(v.synapse.mas as Record<string, unknown>).length > 0 && (v.synapse.mas as Record<string, unknown>).enabled !== false
      ? 'synapse.mas: Matrix Authentication Service is not supported by mxstack (the old chart had these keys with nothing behind them, and MAS has no 2FA either). Remove the block; use synapse.server.sso for OIDC login.'
      : undefined,
  (v) =>
    v.element.config.welcomeUserId !== undefined
      ? 'element.config.welcomeUserId: Element Web 1.12 no longer reads welcome_user_id, so this setting would do nothing. Remove it; greet new users with a server notice or a bot that invites them.'
      : undefined,
  (v) =>
    (v.synapse.server.sso.saml2 as Record<string, unknown>).enabled === true
      ? 'synapse.server.sso.saml2.enabled: SAML2 needs pysaml2 and xmlsec1, which the Synapse image does not ship. Use an OIDC provider (synapse.server.sso.oidc.providers); most SAML identity providers also speak OIDC.'
      : undefined,
  (v) =>
    v.postgresql.config.walLevel === 'minimal'
      ? 'postgresql.config.walLevel: minimal rules out replication and point-in-time recovery (a defect of the old chart). Allowed: replica (default) or logical.'
      : undefined,
  (v) =>
    v.element.config.branding.customCssUrl !== undefined
      ? 'element.config.branding.customCssUrl: Element Web has no custom CSS option. Use element.config.customThemes for colours and element.config.branding for logos and backgrounds.'
      : undefined,
  (v) => {
    const { sso } = v.synapse.server;
    if (sso.enabled && sso.oidc.enabled && sso.oidc.providers.length === 0)
      return 'synapse.server.sso.oidc.providers: SSO with OIDC is enabled but no provider is listed. Add at least one provider (idp_id, idp_name, issuer, client_id).';
    return undefined;
  },
  (v) => {
    const ids = v.synapse.server.sso.oidc.providers.map((p) => p.idp_id);
    const duplicate = ids.find((id, index) => ids.indexOf(id) !== index);
    return duplicate ? `synapse.server.sso.oidc.providers: idp_id "${duplicate}" is used twice; each provider needs its own stable idp_id.` : undefined;
  },
  (v) => {
    // Distinct idp_ids can still share a default client-secret Secret name (My_Provider, my-provider).
    const ids = [...new Set(v.synapse.server.sso.oidc.providers.map((p) => p.idp_id))];
    const first = ids.find((id) => ids.some((other) => other !== id && oidcSecretNamePart(other) === oidcSecretNamePart(id)));
    if (!first) return undefined;
    const other = ids.find((id) => id !== first && oidcSecretNamePart(id) === oidcSecretNamePart(first))!;
    return `synapse.server.sso.oidc.providers: idp_id "${first}" and "${other}" differ only in case or punctuation, and would share the client-secret Secret "<release>-oidc-${oidcSecretNamePart(first)}". Pick clearly different idp_ids.`;
  },
  (v) => {
    const problems = v.synapse.server.sso.oidc.providers.flatMap((p, i) => {
      const at = `synapse.server.sso.oidc.providers[${i}]`;
      const out: string[] = [];
      if (p.client_secret !== undefined && p.clientSecretRef !== undefined)
        out.push(`${at}: give either client_secret or clientSecretRef, not both.`);
      // What the preset fills counts as given (the github preset brings its endpoints, google its issuer).
      const preset: Record<string, unknown> = (p.preset ? oidcPresets[p.preset] : undefined) ?? {};
      const given = (key: 'discover' | 'issuer' | 'authorization_endpoint' | 'token_endpoint') => p[key] ?? preset[key];
      const discovers = given('discover') ?? true;
      // Synapse needs the issuer even without discovery.
      if (!given('issuer')) out.push(`${at}.issuer: required (the provider's issuer URL).`);
      if (!discovers && !(given('authorization_endpoint') && given('token_endpoint')))
        out.push(`${at}: with discover: false, authorization_endpoint and token_endpoint are required.`);
      return out;
    });
    return problems.length > 0 ? problems.join('\n') : undefined;
  },
  (v) =>
    !v.synapse.server.passwordLogin.enabled && !authEnabled(v) && !(v.synapse.server.sso.enabled && v.synapse.server.sso.oidc.enabled)
      ? 'synapse.server.passwordLogin.enabled: password login is off and no SSO provider is on, so nobody could sign in. Enable synapse.server.sso with a provider, or keep password login.'
      : undefined,
  (v) => {
    const r = v.synapse.server.registration;
    if (r.enabled && !r.requireEmail && !r.requireToken && !r.withoutVerification)
      return 'synapse.server.registration.enabled: open registration needs a verification (Synapse refuses to start otherwise). Set registration.requireEmail or registration.requireToken, or registration.withoutVerification: true if you accept spam sign-ups.';
    return undefined;
  },
  // Only open registration sends verification mails: with registration closed (as in the old chart's
  // documented server settings) requireEmail is harmless without email, and Synapse starts.
  (v) =>
    v.synapse.server.registration.enabled && v.synapse.server.registration.requireEmail && !v.synapse.server.email.enabled
      ? 'synapse.server.registration.requireEmail: open registration with an email requirement needs outgoing email; set synapse.server.email.enabled with smtpHost.'
      : undefined,
  (v) =>
    v.synapse.server.email.enabled && !v.synapse.server.email.smtpHost
      ? 'synapse.server.email.smtpHost: required when synapse.server.email.enabled is true.'
      : undefined,
  (v) => {
    const { smtpPass, smtpPassSecretRef } = v.synapse.server.email;
    return smtpPass !== undefined && smtpPassSecretRef !== undefined
      ? 'synapse.server.email: give either smtpPass or smtpPassSecretRef, not both.'
      : undefined;
  },
  (v) =>
    !v.postgresql.enabled && !v.synapse.database.external
      ? 'postgresql.enabled: the release PostgreSQL is off but synapse.database.external is false. Set synapse.database.external: true with synapse.database.host, or keep postgresql.enabled.'
      : undefined,
  (v) =>
    v.synapse.database.external && v.synapse.database.host === undefined && v.synapse.database.secret === undefined
      ? 'synapse.database.host: required when synapse.database.external is true (a value, a {secret, key} reference, or synapse.database.secret).'
      : undefined,
  (v) => databaseReferenceProblems(v).join('\n') || undefined,
  (v) =>
    v.postgresql.mode === 'cloudnative-pg' && v.synapse.database.external
      ? 'postgresql.mode: cloudnative-pg runs the database in the release; it contradicts synapse.database.external (and synapse.database.secret). To use an existing CloudNativePG Cluster, set only synapse.database.secret: <cluster>-app.'
      : undefined,
  (v) => {
    const backup = v.postgresql.cloudnativePg.backup;
    if (v.postgresql.mode !== 'cloudnative-pg' || backup.schedule === undefined) return undefined;
    if (!backup.destinationPath) return 'postgresql.cloudnativePg.backup.destinationPath: required with a backup schedule (s3://bucket/path, gs://bucket/path or an Azure blob URL).';
    const keys = backup.s3Credentials;
    if (backup.destinationPath.startsWith('s3://') && !keys.inheritFromIAMRole && !(keys.accessKeyId && keys.secretAccessKey))
      return 'postgresql.cloudnativePg.backup.s3Credentials: give accessKeyId and secretAccessKey (Secret references), or inheritFromIAMRole: true.';
    return undefined;
  },
  (v) =>
    v.synapse.database.external && v.postgresql.enabled
      ? 'postgresql.enabled: set it to false when synapse.database.external is true (the release PostgreSQL would run unused).'
      : undefined,
  (v) =>
    v.synapse.database.cpMin > v.synapse.database.cpMax
      ? `synapse.database.cpMin: ${v.synapse.database.cpMin} is larger than cpMax ${v.synapse.database.cpMax}.`
      : undefined,
  (v) =>
    v.coturn.relayPortRange.min > v.coturn.relayPortRange.max
      ? `coturn.relayPortRange: min ${v.coturn.relayPortRange.min} is larger than max ${v.coturn.relayPortRange.max}.`
      : undefined,
  (v) => {
    const { port } = splitServerName(v.synapse.server.name);
    if (port === undefined || !v.synapse.server.federation.enabled) return undefined;
    if (v.router.federation.enabled && v.router.federation.port === port) return undefined;
    return `synapse.server.name: other servers connect to ${v.synapse.server.name} directly (a server name with a port has no delegation); serve federation there with router.federation.enabled: true and router.federation.port: ${port}, or name the server without a port.`;
  },
  (v) =>
    v.router.federation.enabled && !v.router.federation.tls.secretName
      ? 'router.federation.tls.secretName: required when router.federation.enabled is true (a kubernetes.io/tls Secret with tls.crt and tls.key).'
      : undefined,
  (v) =>
    v.router.federation.enabled && !v.synapse.server.federation.enabled
      ? 'router.federation.enabled: the federation listener needs synapse.server.federation.enabled: true (Synapse serves no federation API without it).'
      : undefined,
  (v) =>
    v.coturn.tls.enabled && !v.coturn.tls.secretName
      ? 'coturn.tls.secretName: required when coturn.tls.enabled is true (a kubernetes.io/tls Secret with tls.crt and tls.key).'
      : undefined,
  (v) =>
    v.synapse.server.turn.enabled && !v.coturn.enabled && v.synapse.server.turn.uris.length === 0
      ? 'synapse.server.turn.uris: TURN is enabled but coturn is off and no URIs are given. List your TURN server\'s URIs, or enable coturn, or set synapse.server.turn.enabled: false.'
      : undefined,
  (v) => {
    const theme = v.element.config.defaultTheme;
    if (!theme.startsWith('custom-')) return undefined;
    const names = v.element.config.customThemes.map((t) => t.name);
    return names.includes(theme.slice('custom-'.length))
      ? undefined
      : `element.config.defaultTheme: "${theme}" names no entry of element.config.customThemes (have: ${names.length > 0 ? names.join(', ') : 'none'}).`;
  },
  // Only an explicit `enabled: true` demands both hosts; an Ingress switched on by one host routes what is given.
  (v) =>
    v.ingress.enabled === true && !v.ingress.synapse.host
      ? 'ingress.synapse.host: required when ingress.enabled is true (the public host of the Synapse client API).'
      : undefined,
  (v) =>
    v.ingress.enabled === true && v.element.enabled && !v.ingress.element.host
      ? 'ingress.element.host: required when ingress and element are enabled (the public host of Element Web).'
      : undefined,
  (v) =>
    v.autoscaling.minReplicas > v.autoscaling.maxReplicas
      ? `autoscaling.minReplicas: ${v.autoscaling.minReplicas} is larger than maxReplicas ${v.autoscaling.maxReplicas}.`
      : undefined,
  (v) => {
    const configured = v.postgresql.config.maxConnections;
    if (!v.postgresql.enabled || configured === undefined) return undefined;
    const { processes, perProcess, total } = synapseDatabaseConnections(v);
    const needed = total + reservedDatabaseConnections;
    return configured >= needed
      ? undefined
      : `postgresql.config.maxConnections: ${configured} cannot hold the Synapse connection pools: ${processes} processes × synapse.database.cpMax ${perProcess} = ${total}, plus ${reservedDatabaseConnections} kept for superusers and tools, needs ${needed}. Raise it to at least ${needed}, remove it (the default follows the pools), lower synapse.database.cpMax, or run fewer workers.`;
  },
  ...workerPoolNames.map((pool) => (v: Values) => {
    const autoscaling = v.synapse.workers.pools[pool]?.autoscaling;
    if (!autoscaling?.enabled) return undefined;
    return autoscaling.minReplicas > autoscaling.maxReplicas
      ? `synapse.workers.pools.${pool}.autoscaling.minReplicas: ${autoscaling.minReplicas} is larger than maxReplicas ${autoscaling.maxReplicas}.`
      : undefined;
  }),
  (v) =>
    v.gatewayApi.enabled && v.gatewayApi.parentRefs.length === 0
      ? 'gatewayApi.parentRefs: at least one Gateway is needed when gatewayApi.enabled is true.'
      : undefined,
];

/** Throws a ValuesError listing every refusal; returns when the values can be honoured. */
export function checkValues(values: Values): void {
  const problems = checks.flatMap((check) => check(values)?.split('\n') ?? []);
  if (problems.length > 0) throw new ValuesError(problems);
}
