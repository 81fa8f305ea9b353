/**
 * Synapse's native files: homeserver.yaml (no secret value: the database and email blocks without their
 * passwords), the log config, the page templates, and the start step that joins those two passwords in.
 */
import { posix } from 'node:path';
import { stringify } from 'yaml';
import { deepMerge } from '../../values/load.js';
import type { Stack } from '../../stack/model.js';
import { synapseSecretFiles } from '../../stack/model.js';
import { renderOidcProvider } from './oidc.js';
import { cliAppserviceRegistrationPath, mxstackOidcProvider } from './auth.js';
import { upstreamUrlPreviewIpRangeBlacklist } from '../../kit/address-ranges.js';
import { synapseDatabaseFieldFiles, synapseStartScript, synapseStartScriptFile } from './start.js';
import { mainReplicationListener, renderWorkerConfig, sharedWorkerConfig, workerConfigFile } from './workers.js';
import { workerProcesses, workersEnabled } from '../../values/worker-pools.js';
import { synapseTemplateFiles } from './templates.js';

/** Where Synapse reads the database CA: from its secret files when it comes from a Secret, else from its config directory. */
export function synapseDatabaseCaPath(stack: Stack): string | undefined {
  if (stack.database.fromSecret.ca) return secretPath(stack, synapseSecretFiles.databaseCa);
  return stack.database.ca !== undefined ? posix.join(stack.placement.paths.synapseConfigDir, synapseSecretFiles.databaseCa) : undefined;
}

type Config = Record<string, unknown>;

/** synapse.server.federation.customCa, beside homeserver.yaml (a CA certificate is public). */
export const federationCaFile = 'federation-ca.pem';

const secretPath = (stack: Stack, file: string) => posix.join(stack.placement.paths.synapseSecretsDir, file);

function listenerConfig(stack: Stack): Config {
  const { placement } = stack;
  const { synapse } = stack.values;
  const httpListener = {
    port: placement.ports.synapseHttp,
    type: 'http',
    tls: false,
    // The router sits in front: client addresses come from X-Forwarded-For.
    x_forwarded: true,
    bind_addresses: [placement.bindAddress],
    resources: [{ names: synapse.server.federation.enabled ? ['client', 'federation'] : ['client'], compress: false }],
  };
  const metricsListener = { port: placement.ports.synapseMetrics, type: 'metrics', bind_addresses: [placement.bindAddress] };
  return {
    listeners: [
      httpListener,
      ...(synapse.metrics.enabled ? [metricsListener] : []),
      ...(workersEnabled(stack.values) ? [mainReplicationListener(stack)] : []),
    ],
    enable_metrics: synapse.metrics.enabled,
  };
}

function mediaConfig(stack: Stack): Config {
  const { media } = stack.values.synapse.server;
  return {
    media_store_path: stack.placement.paths.mediaStore,
    max_upload_size: media.maxUploadSize,
    max_image_pixels: media.maxImagePixels,
    enable_authenticated_media: media.enableAuthenticatedMedia,
  };
}

function federationConfig(stack: Stack): Config {
  const { federation } = stack.values.synapse.server;
  // Dropping the listener resource only stops inbound federation; an empty whitelist also stops outbound.
  const whitelist = federation.enabled ? federation.domainWhitelist : [];
  return {
    signing_key_path: stack.placement.paths.signingKey,
    trusted_key_servers: federation.trustedKeyServers.map((serverName) => ({ server_name: serverName })),
    suppress_key_server_warning: true,
    ...(whitelist !== undefined ? { federation_domain_whitelist: whitelist } : {}),
    ...(federation.customCa !== undefined ? { federation_custom_ca_list: [posix.join(stack.placement.paths.synapseConfigDir, federationCaFile)] } : {}),
    // Unset, Synapse's own default list applies (the same ranges as upstreamUrlPreviewIpRangeBlacklist).
    ...(federation.ipRangeBlacklist !== undefined ? { ip_range_blacklist: [...federation.ipRangeBlacklist] } : {}),
    ...(federation.ipRangeWhitelist.length > 0 ? { ip_range_whitelist: [...federation.ipRangeWhitelist] } : {}),
  };
}

function keyFileConfig(stack: Stack): Config {
  return {
    registration_shared_secret_path: secretPath(stack, synapseSecretFiles.registrationSharedSecret),
    macaroon_secret_key_path: secretPath(stack, synapseSecretFiles.macaroonSecretKey),
    form_secret_path: secretPath(stack, synapseSecretFiles.formSecret),
  };
}

function registrationConfig(stack: Stack): Config {
  const { registration, passwordLogin } = stack.values.synapse.server;
  return {
    enable_registration: registration.enabled,
    enable_registration_without_verification: registration.enabled && registration.withoutVerification,
    ...(registration.requireEmail ? { registrations_require_3pid: ['email'] } : {}),
    registration_requires_token: registration.requireToken,
    allow_guest_access: registration.allowGuests,
    // With the identity provider, a password accepted by Synapse itself would skip the second factor.
    password_config: { enabled: passwordLogin.enabled && !stack.auth },
  };
}

function urlPreviewConfig(stack: Stack): Config {
  const previews = stack.values.synapse.server.urlPreviews;
  if (!previews.enabled) return { url_preview_enabled: false };
  return {
    url_preview_enabled: true,
    url_preview_ip_range_blacklist: [...(previews.ipRangeBlacklist ?? upstreamUrlPreviewIpRangeBlacklist)],
    url_preview_ip_range_whitelist: previews.ipRangeWhitelist,
    url_preview_url_blacklist: previews.urlBlacklist,
    max_spider_size: previews.maxSpiderSize,
  };
}

function turnConfig(stack: Stack): Config {
  const { turn } = stack.values.synapse.server;
  // Synapse hands TURN credentials to guests unless told otherwise.
  if (!turn.enabled) return { turn_allow_guests: false };
  return {
    turn_uris: stack.turnUris,
    turn_shared_secret_path: secretPath(stack, synapseSecretFiles.turnSharedSecret),
    turn_user_lifetime: turn.userLifetime,
    turn_allow_guests: turn.allowGuests,
  };
}

/**
 * oidc_providers: the built-in identity provider first (when 2FA is on), then the user's providers, which
 * stay offered next to it (their users sign in there, without mxstack's second factor).
 */
function ssoConfig(stack: Stack): Config {
  const { sso } = stack.values.synapse.server;
  if (!sso.enabled && !stack.auth) return {};
  const secretsDir = stack.placement.paths.synapseSecretsDir;
  const clientWhitelist = sso.clientWhitelist.length > 0 ? sso.clientWhitelist : stack.elementUrl ? [stack.elementUrl] : [];
  const providers = [
    ...(stack.auth ? [mxstackOidcProvider(stack, stack.auth)] : []),
    ...(sso.enabled && sso.oidc.enabled ? sso.oidc.providers.map((provider) => renderOidcProvider(provider, secretsDir)) : []),
  ];
  return {
    ...(providers.length > 0 ? { oidc_providers: providers } : {}),
    ...(clientWhitelist.length > 0 ? { sso: { client_whitelist: clientWhitelist } } : {}),
  };
}

/** The CLI's application service (its registration holds tokens, so it lives among the secret files). */
function appserviceConfig(stack: Stack): Config {
  return stack.auth ? { app_service_config_files: [cliAppserviceRegistrationPath(stack)] } : {};
}

function rateLimitConfig(stack: Stack): Config {
  const limits = stack.values.synapse.server.rateLimits;
  const login = () => ({ per_second: limits.loginPerSecond, burst_count: limits.loginBurst });
  return {
    rc_login: { address: login(), account: login(), failed_attempts: login() },
    rc_message: { per_second: limits.messagePerSecond, burst_count: limits.messageBurst },
  };
}

/**
 * homeserver.yaml as an object; every secret is a *_path into placement.paths.synapseSecretsDir, except the
 * database and SMTP passwords, which Synapse only reads inline: synapseStartScript joins those in at start.
 */
export function renderHomeserverConfig(stack: Stack): Record<string, unknown> {
  const { synapse } = stack.values;
  const { paths } = stack.placement;
  const generated: Config = {
    server_name: stack.serverName,
    public_baseurl: stack.publicBaseUrl,
    report_stats: synapse.server.reportStats,
    pid_file: posix.join(paths.synapseDataDir, 'homeserver.pid'),
    log_config: posix.join(paths.synapseConfigDir, 'log.yaml'),
    ...listenerConfig(stack),
    ...mediaConfig(stack),
    ...federationConfig(stack),
    ...keyFileConfig(stack),
    ...registrationConfig(stack),
    ...urlPreviewConfig(stack),
    ...turnConfig(stack),
    ...ssoConfig(stack),
    ...appserviceConfig(stack),
    ...rateLimitConfig(stack),
    database: databaseConfig(stack),
    ...emailConfig(stack),
    ...sharedWorkerConfig(stack),
    // The branded templates (./templates.ts) are written beside this file.
    templates: { custom_template_directory: paths.synapseConfigDir },
  };
  return deepMerge(generated, synapse.additionalConfig) as Config;
}

/**
 * The database block without its password, and without the connection fields that come from Secrets: the
 * start step joins those in from their files (synapseSecretFiles.databasePassword, synapseDatabaseFieldFiles).
 */
function databaseConfig(stack: Stack): Config {
  const { database } = stack.values.synapse;
  const literal = (name: keyof typeof synapseDatabaseFieldFiles): Config => {
    if (stack.database.fromSecret[name]) return {};
    return { [synapseDatabaseFieldFiles[name].arg]: stack.database[name] };
  };
  const caPath = synapseDatabaseCaPath(stack);
  return {
    name: 'psycopg2',
    ...(database.allowUnsafeLocale ? { allow_unsafe_locale: true } : {}),
    args: {
      ...literal('user'),
      ...literal('name'),
      ...literal('host'),
      ...literal('port'),
      cp_min: database.cpMin,
      cp_max: database.cpMax,
      ...literal('sslmode'),
      ...(caPath ? { sslrootcert: caPath } : {}),
    },
  };
}

/** The email block without smtp_pass (joined in at start from synapseSecretFiles.smtpPassword). */
function emailConfig(stack: Stack): Config {
  const { email } = stack.values.synapse.server;
  if (!email.enabled) return {};
  const clientBaseUrl = email.clientBaseUrl ?? stack.elementUrl;
  return {
    email: {
      smtp_host: email.smtpHost,
      smtp_port: email.smtpPort,
      ...(email.smtpUser !== undefined ? { smtp_user: email.smtpUser } : {}),
      require_transport_security: email.requireTransportSecurity,
      force_tls: email.forceTls,
      notif_from: email.notifFrom,
      app_name: email.appName,
      enable_notifs: email.enableNotifs,
      ...(clientBaseUrl !== undefined ? { client_base_url: clientBaseUrl } : {}),
    },
  };
}

const textLogFormat = '%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(request)s - %(message)s';

/** Python logging dictConfig. */
export function renderSynapseLogConfig(stack: Stack): Record<string, unknown> {
  const { logLevel, logFormat } = stack.values.synapse;
  const formatter = logFormat === 'json' ? { '()': 'synapse.logging.TerseJsonFormatter' } : { format: textLogFormat };
  return {
    version: 1,
    formatters: { [logFormat]: formatter },
    handlers: {
      console: { class: 'logging.StreamHandler', formatter: logFormat, stream: 'ext://sys.stderr' },
    },
    loggers: {
      // At DEBUG this logger prints SQL values, access tokens included.
      'synapse.storage.SQL': { level: 'INFO' },
    },
    root: { level: logLevel, handlers: ['console'] },
    disable_existing_loggers: false,
  };
}

/**
 * YAML as Synapse reads it: sorted keys and no anchors (the same stack always gives the same bytes), and
 * YAML 1.1 quoting, because Synapse parses with PyYAML (1.1), where plain `12:30`, `yes` or `017` are
 * numbers or booleans, not the strings (a password, a name) they were.
 */
export function toSynapseYaml(config: Record<string, unknown>): string {
  return stringify(config, { version: '1.1', sortMapEntries: true, lineWidth: 0, aliasDuplicateObjects: false });
}

/** The non-secret files by name: homeserver.yaml, log.yaml, one file per worker, the start step and the branded page templates. */
export function synapseConfigFiles(stack: Stack): Record<string, string> {
  const workers = workerProcesses(stack.values);
  return {
    'homeserver.yaml': toSynapseYaml(renderHomeserverConfig(stack)),
    'log.yaml': toSynapseYaml(renderSynapseLogConfig(stack)),
    [synapseStartScriptFile]: synapseStartScript,
    ...Object.fromEntries(workers.map((worker) => [workerConfigFile(worker), toSynapseYaml(renderWorkerConfig(stack, worker))])),
    ...synapseTemplateFiles(stack),
    // A CA certificate is public: written in values it sits beside homeserver.yaml.
    ...(stack.database.ca !== undefined ? { [synapseSecretFiles.databaseCa]: stack.database.ca } : {}),
    ...(stack.values.synapse.server.federation.customCa !== undefined ? { [federationCaFile]: stack.values.synapse.server.federation.customCa } : {}),
  };
}

/** Whether Synapse logs in to the SMTP server, and so reads synapseSecretFiles.smtpPassword. */
export function synapseSendsSmtpPassword(stack: Stack): boolean {
  const { email } = stack.values.synapse.server;
  return email.enabled && email.smtpUser !== undefined && stack.secrets.smtpPassword !== undefined;
}
