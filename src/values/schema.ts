/**
 * The values schema: every key mxstack understands, with its type, default and a one-line description.
 * The old Helm chart's keys keep their names and meaning (see docs/values.md); keys it did not have are
 * added beside them.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { defaultImages } from '../versions.js';
import { workerPoolNames, workerPools, workerPresetNames } from './worker-pools.js';
import { componentImageSchema, componentWorkloadProperties, globalWorkloadSchema, serviceAccountSchema } from './workload.js';

/** The longest synapse.server.mfa.rememberSignInMinutes accepted: 8 hours, one working day. */
export const maximumRememberSignInMinutes = 480;
import {
  bool,
  formatted,
  formattedList,
  freeform,
  group,
  int,
  item,
  list,
  optFormatted,
  optPort,
  optStr,
  port,
  portList,
  str,
  strEnum,
  stringMap,
  strList,
} from './schema-builders.js';


const resources = (cpuRequest: string, memoryRequest: string, cpuLimit: string, memoryLimit: string) =>
  group('Kubernetes resource requests and limits for the container.', {
    requests: group('What the scheduler reserves.', {
      cpu: Type.Union([formatted('CPU request.', 'kubernetesQuantity'), Type.Number({ minimum: 0 })], { description: 'CPU request.', default: cpuRequest }),
      memory: formatted('Memory request.', 'kubernetesQuantity', memoryRequest),
    }),
    limits: group('Hard ceilings.', {
      cpu: Type.Union([formatted('CPU limit.', 'kubernetesQuantity'), Type.Number({ minimum: 0 })], { description: 'CPU limit.', default: cpuLimit }),
      memory: formatted('Memory limit.', 'kubernetesQuantity', memoryLimit),
    }),
  });

const image = (name: keyof typeof defaultImages) => componentImageSchema(defaultImages[name]);

/** The workload sub-schema (src/values/workload.ts) of a component, with the old chart's spelling of its container context. */
const podSettings = () => ({
  ...componentWorkloadProperties(),
  securityContext: Type.Optional(Type.Unsafe<Record<string, unknown>>({ type: 'object', description: 'The old chart\'s spelling of containerSecurityContext (merged under it).' })),
});

/** A connection field: the value itself, or where it is stored: `{secret, key}` (secret defaults to synapse.database.secret). */
const sourced = (description: string, value: TSchema) =>
  Type.Optional(
    Type.Union([value, item('A key of a Secret in the release namespace.', { secret: optStr('Secret name (default synapse.database.secret).'), key: str('Key inside the Secret.') })], { description }),
  );

const secretKeyRef = (description: string) =>
  Type.Optional(
    item(description, {
      name: str('Secret name.'),
      key: str('Key inside the Secret.'),
    }),
  );

const selectorPair = (description: string) =>
  group(description, {
    namespaceSelector: stringMap('Labels of the namespaces allowed (matchLabels). Empty with an empty podSelector: not configured.'),
    podSelector: stringMap('Labels of the pods allowed inside those namespaces (matchLabels).'),
  });

const ingressHost = (what: string, defaultPaths: string[]) =>
  group(`Ingress for ${what}.`, {
    host: optFormatted(`Public host name of ${what}.`, 'hostName'),
    paths: strList('URL path prefixes routed.', defaultPaths),
    tls: group('TLS for this host.', {
      enabled: bool('Serve this host over TLS.', true),
      secretName: optStr('Secret holding the certificate (cert-manager fills it when annotated). Default: <release>-<host part>-tls.'),
    }),
  });

const workerPoolSchema = (pool: (typeof workerPoolNames)[number]) =>
  Type.Optional(
    item(workerPools[pool].description, {
      replicas: Type.Optional(
        Type.Integer({ description: 'Processes in this pool (default: the preset\'s number).', minimum: 0, ...(workerPools[pool].maxReplicas ? { maximum: workerPools[pool].maxReplicas } : {}) }),
      ),
      ...(workerPools[pool].named
        ? {}
        : {
            autoscaling: Type.Optional(
              item('HorizontalPodAutoscaler of this pool on Kubernetes (its processes need no name, so it may scale); the local target runs minReplicas.', {
                enabled: bool('Scale this pool with CPU.', false),
                minReplicas: int('Fewest processes.', 1, { minimum: 1 }),
                maxReplicas: int('Most processes.', 4, { minimum: 1 }),
                targetCPUUtilizationPercentage: int('Target CPU utilisation.', 70, { minimum: 1, maximum: 100 }),
              }),
            ),
          }),
      resources: Type.Optional(resources('100m', '256Mi', '1', '1Gi')),
    }),
  );

const workersSchema = () =>
  group('Synapse workers: processes beside the main one, each pool taking part of the load (Synapse docs/workers.md). Any worker turns Redis on.', {
    preset: strEnum(
      'none: one Synapse process (the default); sync: the main process and one sync worker (the best on 2 cores, bench/README.md); small: one process of each pool; large: a larger split (2 sync, client readers, event creators, event persisters, federation readers and senders).',
      workerPresetNames,
      'none',
    ),
    pools: group(
      'Per pool settings, over the preset.',
      Object.fromEntries(workerPoolNames.map((pool) => [pool, workerPoolSchema(pool)])) as Record<(typeof workerPoolNames)[number], ReturnType<typeof workerPoolSchema>>,
    ),
    maxConnectionsPerProcess: int('Requests the router has in flight to one worker process at once; more wait in its queue.', 64, { minimum: 1 }),
    maxQueuedPerPool: int('Requests waiting for a pool before the router answers 429 (M_LIMIT_EXCEEDED) at once.', 256, { minimum: 1 }),
  });

export const oidcProviderSchema = item('One OpenID Connect identity provider (Synapse oidc_providers entry).', {
  idp_id: str('Stable identifier: renaming it orphans every user linked to it.', undefined, { pattern: '^[A-Za-z0-9._~-]+$' }),
  idp_name: str('Name on the login button.'),
  idp_icon: optFormatted('mxc:// URI of the button icon.', 'mxcUri'),
  idp_brand: optStr('Brand hint for clients (github, google, ...).'),
  preset: Type.Optional(
    Type.Unsafe<string>({
      type: 'string',
      enum: ['authelia', 'keycloak', 'google', 'github', 'azuread', 'authentik', 'okta'],
      description: 'Fill the provider-specific settings that provider needs (see docs/sso.md).',
    }),
  ),
  discover: Type.Optional(Type.Boolean({ description: 'Use OIDC discovery from the issuer.' })),
  issuer: optFormatted('Issuer URL.', 'httpUrl'),
  client_id: str('OAuth client id.'),
  client_secret: optStr('Client secret written in values: it goes into a Secret, never a ConfigMap. Prefer clientSecretRef.'),
  clientSecretRef: secretKeyRef('Secret holding this provider\'s own client secret. Default: <release>-oidc-<idp_id> (lower case, other characters as -), key client-secret.'),
  client_auth_method: Type.Optional(
    Type.Unsafe<string>({ type: 'string', enum: ['client_secret_basic', 'client_secret_post', 'none'], description: 'How the client authenticates to the token endpoint.' }),
  ),
  scopes: Type.Optional(Type.Array(Type.String(), { description: 'Scopes requested.' })),
  pkce_method: Type.Optional(Type.Unsafe<string>({ type: 'string', enum: ['auto', 'always', 'never'], description: 'PKCE use.' })),
  user_profile_method: Type.Optional(
    Type.Unsafe<string>({ type: 'string', enum: ['auto', 'userinfo_endpoint'], description: 'Where claims come from (Authelia needs userinfo_endpoint).' }),
  ),
  allow_existing_users: Type.Optional(Type.Boolean({ description: 'Link a login to an existing user of the same localpart.' })),
  authorization_endpoint: optFormatted('Authorization endpoint (when discovery is off).', 'httpUrl'),
  token_endpoint: optFormatted('Token endpoint (when discovery is off).', 'httpUrl'),
  userinfo_endpoint: optFormatted('Userinfo endpoint (when discovery is off).', 'httpUrl'),
  jwks_uri: optFormatted('JWKS URI (when discovery is off).', 'httpUrl'),
  skip_verification: Type.Optional(Type.Boolean({ description: 'Skip issuer checks (testing only).' })),
  backchannel_logout_enabled: Type.Optional(Type.Boolean({ description: 'Accept OIDC back-channel logout.' })),
  attribute_requirements: Type.Optional(
    Type.Array(item('A claim the user must have.', { attribute: str('Claim name.'), value: optStr('Required value.'), one_of: Type.Optional(Type.Array(Type.String(), { description: 'Any of these values.' })) }), {
      description: 'Claims a user must have to log in.',
    }),
  ),
  user_mapping_provider: Type.Optional(
    item('How claims become a Matrix user.', {
      config: item('Jinja2 templates over the claims (as `user`).', {
        subject_claim: optStr('Claim holding the stable subject.'),
        subject_template: optStr('Template of the stable subject.'),
        localpart_template: optStr('Template of the Matrix localpart.'),
        display_name_template: optStr('Template of the display name.'),
        email_template: optStr('Template of the email address.'),
        picture_claim: optStr('Claim holding the avatar URL.'),
        confirm_localpart: Type.Optional(Type.Boolean({ description: 'Let the user confirm the localpart.' })),
        extra_attributes: Type.Optional(Type.Record(Type.String(), Type.String(), { description: 'Extra attributes for clients.' })),
      }),
    }),
  ),
});

const customTheme = item('An Element custom theme.', {
  name: str('Theme name; select it with defaultTheme "custom-<name>".'),
  is_dark: bool('Dark theme.', false),
  colors: Type.Record(Type.String(), Type.String(), { description: 'Theme colours (accent-color, primary-color, ...).', default: {} }),
  fonts: Type.Optional(freeform('Theme fonts (faces, general, monospace).')),
});

export const valuesSchema = Type.Object(
  {
    global: group('Settings for the whole release.', {
      environment: str('Free label of the environment (production, staging...).', 'production'),
      commonLabels: stringMap('Labels added to every object.'),
      workload: globalWorkloadSchema(),
    }),
    secrets: group('Where secrets come from.', {
      autoGenerate: bool('`mxstack secrets init` generates every secret the values do not bring.', true),
    }),

    synapse: group('The Synapse homeserver.', {
      image: image('synapse'),
      replicaCount: int('Synapse main process replicas: exactly 1 (the main process cannot be replicated).', 1, { minimum: 0, maximum: 1 }),
      serviceAccount: serviceAccountSchema(true, '<release>-synapse'),
      ...podSettings(),
      service: group('Synapse Service.', {
        type: strEnum('Service type.', ['ClusterIP', 'NodePort', 'LoadBalancer'], 'ClusterIP'),
        port: port('Client/federation HTTP port of the Service.', 8008),
        targetPort: port('Port Synapse listens on in the pod.', 8008),
        federationPort: port('Federation port of the Service (routed to the same listener).', 8448),
      }),
      resources: resources('250m', '512Mi', '2', '2Gi'),
      persistence: group('Media store volume.', {
        enabled: bool('Keep media on a PersistentVolumeClaim (otherwise an emptyDir: media lost on restart).', true),
        existingClaim: optStr('Use this existing claim instead of creating one.'),
        storageClassName: optStr('Storage class of the claim (unset: the cluster default).'),
        accessMode: strEnum('Access mode of the claim.', ['ReadWriteOnce', 'ReadWriteMany', 'ReadWriteOncePod'], 'ReadWriteOnce'),
        size: formatted('Size of the media claim.', 'kubernetesQuantity', '10Gi'),
      }),
      metrics: group('Prometheus metrics listener.', {
        enabled: bool('Expose Synapse metrics.', true),
        port: port('Metrics listener port (path /_synapse/metrics).', 9000),
      }),
      database: group('How Synapse and the auth component reach PostgreSQL. Every connection field of an external database is either a value or a {secret, key} reference; the database must be UTF8 with C collation and ctype (`mxstack doctor` checks it).', {
        external: bool('Use a PostgreSQL server outside the release (implied by synapse.database.secret).', false),
        secret: optStr(
          'Secret the connection fields not written below are read from, with the key names of CloudNativePG\'s `<cluster>-app` Secret (host, port, dbname, user, password): `secret: mydb-app` is all it takes to use an operator\'s database.',
        ),
        host: sourced('Host of the external database (default: the release PostgreSQL).', formatted('Host name or address.', 'host')),
        port: sourced('Database port (default 5432, or the Secret\'s port key). NetworkPolicies allow 5432 when the port comes from a Secret.', Type.Integer({ minimum: 1, maximum: 65535 })),
        name: sourced('Database name (default postgresql.database, or the Secret\'s dbname key).', Type.String()),
        user: sourced('Database user (default postgresql.username, or the Secret\'s user key).', Type.String()),
        password: sourced('Database password: a value (rendered into the Secret <release>-postgresql) or a {secret, key} reference (default: the Secret\'s password key).', Type.String()),
        sslmode: sourced('libpq sslmode: disable, allow, prefer, require, verify-ca or verify-full (default prefer).', Type.Unsafe<string>({ type: 'string', enum: ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] })),
        ca: sourced('CA certificate (PEM) the server\'s certificate is verified against (sslrootcert; with sslmode verify-ca or verify-full).', Type.String()),
        cpMin: int('Minimum connections in the pool.', 5, { minimum: 1 }),
        cpMax: int('Maximum connections in the pool.', 10, { minimum: 1 }),
        passwordSecretRef: secretKeyRef('Secret holding the database password. Default: <release>-postgresql, key postgres-password.'),
        allowUnsafeLocale: bool('Accept a database whose locale is not C (not recommended).', false),
      }),
      signingKey: group('The server\'s federation signing key (its identity: back it up).', {
        existingSecret: optStr('Secret holding the signing key. Default: <release>-signing-key.'),
        secretKey: str('Key inside that Secret.', 'signing.key'),
      }),
      logLevel: strEnum('Root log level.', ['DEBUG', 'INFO', 'WARNING', 'ERROR'], 'INFO'),
      logFormat: strEnum('Log line format: text, or one JSON object per line.', ['text', 'json'], 'text'),
      jemalloc: bool(
        'Preload jemalloc into every Synapse process when the image (Synapse\'s own has it) or the local runtime has it, as the image\'s own entrypoint does for memory (mxstack\'s start step replaces that entrypoint, so without this it is not preloaded). Off by default: bench/README.md measured no CPU difference beyond the noise.',
        false,
      ),
      workers: workersSchema(),
      mas: freeform('The old chart\'s synapse.mas: refused when set (Matrix Authentication Service is not supported).'),
      additionalConfig: freeform(
        'Extra homeserver.yaml keys deep-merged last (no secrets here: it lands in a ConfigMap). The keys mxstack owns are refused, each with the setting to use instead: listeners, database, the secrets and their *_path files, the signing key, worker settings, ip_range_whitelist and ip_range_blacklist (synapse.server.federation.ipRangeWhitelist, ipRangeBlacklist).',
      ),
      extraConfig: Type.Optional(Type.Unsafe<Record<string, unknown>>({ type: 'object', description: 'The old chart\'s spelling of additionalConfig (merged under it).' })),
      server: group('Homeserver behaviour.', {
        name: formatted(
          'The server name: the part after the colon in @user:name. Cannot change later. A port (example.org:8448) makes other servers connect there directly, with no delegation: the router\'s federation listener must serve it (router.federation.port).',
          'serverName',
          'localhost',
        ),
        publicBaseurl: optFormatted('Public URL clients reach Synapse at (default https://<ingress.synapse.host>/).', 'httpUrl'),
        reportStats: bool('Send anonymous usage statistics to matrix.org.', false),
        registration: group('Who may create an account.', {
          enabled: bool('Open public registration.', false),
          allowGuests: bool('Allow guest access.', false),
          requireEmail: bool('Require an email address to register.', false),
          requireToken: bool('Require a registration token (see `mxstack registration-tokens`).', false),
          withoutVerification: bool('Allow open registration without email or token (spam risk; doctor flags it).', false),
        }),
        passwordLogin: group('Password login on Synapse.', {
          enabled: bool('Allow m.login.password; turn off when an identity provider must enforce its own 2FA. Off by default when synapse.server.mfa is on (true is then refused: it would bypass the second factor).', true),
        }),
        adminUser: group('The administrator created at install.', {
          enabled: bool('Create the admin user (idempotent: an existing user counts as success).', true),
          username: str('Localpart of the admin user.', 'admin', { pattern: '^[a-z0-9._=/+-]+$' }),
          password: optStr('Admin password written in values (goes into a Secret). Default: generated by `mxstack secrets init`.'),
          email: optStr('Admin email address.'),
          admin: bool('Grant server admin rights.', true),
          displayName: optStr('Display name of the admin.'),
          registrationSecret: optStr('Registration shared secret written in values (goes into a Secret). Default: generated.'),
        }),
        media: group('Media repository.', {
          maxUploadSize: formatted('Largest upload (K/M/G/T suffix).', 'synapseSize', '50M'),
          maxImagePixels: formatted('Largest image thumbnailed (K/M/G/T suffix).', 'synapseSize', '32M'),
          enableAuthenticatedMedia: bool('Require authentication to download media.', true),
        }),
        urlPreviews: group('Link previews, fetched by Synapse (SSRF-protected).', {
          enabled: bool('Fetch URL previews.', true),
          ipRangeBlacklist: Type.Optional(Type.Array(formatted('Ranges never fetched (default: the full upstream list).', 'addressOrCidr'), { description: 'Ranges never fetched (default: the full upstream list).' })),
          ipRangeWhitelist: formattedList('Ranges fetched even though blacklisted.', 'addressOrCidr'),
          urlBlacklist: list('URL patterns never fetched (Synapse url_preview_url_blacklist entries).', Type.Record(Type.String(), Type.String())),
          maxSpiderSize: formatted('Largest page fetched (K/M/G suffix).', 'synapseSize', '10M'),
        }),
        turn: group('TURN for voice and video calls.', {
          enabled: bool('Hand out TURN credentials (uris derived from coturn when empty).', true),
          uris: formattedList('TURN URIs given to clients (default: derived from coturn settings).', 'turnUri'),
          userLifetime: formatted('How long TURN credentials stay valid.', 'synapseDuration', '1h'),
          allowGuests: bool('Give TURN credentials to guests.', false),
          sharedSecretRef: secretKeyRef('Secret holding the TURN shared secret. Default: <release>-turn-credentials, key shared-secret.'),
        }),
        email: group('Outgoing email (notifications, password resets).', {
          enabled: bool('Send email.', false),
          smtpHost: optFormatted('SMTP server.', 'host'),
          smtpPort: port('SMTP port.', 587),
          smtpUser: optStr('SMTP user.'),
          smtpPass: optStr('SMTP password written in values (goes into a Secret). Prefer smtpPassSecretRef.'),
          smtpPassSecretRef: secretKeyRef('Secret holding the SMTP password. Default: <release>-smtp, key password.'),
          requireTransportSecurity: bool('Require STARTTLS.', true),
          forceTls: bool('Use implicit TLS (port 465).', false),
          notifFrom: str('Sender of the mails.', 'Matrix <noreply@localhost>'),
          appName: str('Application name in the mails.', 'Matrix'),
          enableNotifs: bool('Send notification emails for missed messages.', false),
          clientBaseUrl: optFormatted('Web client linked from mails (default: the Element URL).', 'httpUrl'),
        }),
        mfa: group('Two-factor authentication through mxstack\'s built-in identity provider (the auth component): turning on totp or webauthn sends every login to it, with Synapse\'s own password login and registration off (create users with `mxstack users create`). Providers in synapse.server.sso stay offered next to it; their users sign in there, without mxstack\'s second factor.', {
          totp: group('TOTP codes from an authenticator app.', {
            enabled: bool('Offer TOTP codes as a second factor (turns the auth component on).', false),
            algorithm: strEnum('TOTP hash (authenticator apps expect sha1; any case, SHA1 = sha1).', ['sha1', 'sha256', 'sha512'], 'sha1'),
            digits: int('Digits per code.', 6, { minimum: 6, maximum: 8 }),
            period: int('Seconds per code.', 30, { minimum: 15, maximum: 120 }),
            issuer: str('Issuer shown in authenticator apps.', 'Matrix'),
          }),
          webauthn: group('Security keys and passkeys (WebAuthn).', {
            enabled: bool('Offer security keys and passkeys as a second factor (turns the auth component on).', false),
            rpId: optFormatted('Relying party id: the public host (where the sign-in pages are served under /auth) or a parent domain of it; anything else is refused (default: the host of the public base URL).', 'hostName'),
            rpName: str('Relying party name shown by the browser.', 'Matrix'),
          }),
          required: bool('Every user must enrol a second factor at their next sign-in.', false),
          requiredForAdmins: bool('Server administrators must enrol a second factor at their next sign-in.', true),
          rememberSignInMinutes: int(
            `Minutes a finished sign-in at the identity provider may be reused by the same browser: the next Matrix login or user-interactive confirmation (device removal, key reset) within this time asks for neither the password nor the second factor. 0 (the default): every login and every confirmation asks for both. Reuse also ends at once when the account is reset (users reset-2fa), deactivated, locked out or due to enrol. At most ${maximumRememberSignInMinutes} (8 hours). See docs/2fa.md, threat model.`,
            0,
            { minimum: 0, maximum: maximumRememberSignInMinutes },
          ),
          lockout: group('Brute-force protection: failed guesses (password or code) per account and per client address.', {
            maxFailures: int('Failed guesses before a temporary lockout.', 10, { minimum: 3, maximum: 100 }),
            durationSeconds: int('How long a lockout lasts.', 900, { minimum: 60, maximum: 86_400 }),
            failureWindowSeconds: int('Failures older than this are forgotten.', 900, { minimum: 60, maximum: 86_400 }),
          }),
        }),
        sso: group('Single sign-on.', {
          enabled: bool('Turn SSO on.', false),
          oidc: group('OpenID Connect.', {
            enabled: bool('Use the OIDC providers below.', false),
            providers: list('OIDC providers, each with its own client secret.', oidcProviderSchema),
          }),
          saml2: freeform('SAML2 (refused when enabled: the Synapse image lacks pysaml2 and xmlsec1; use OIDC).'),
          clientWhitelist: formattedList('Client URLs allowed to receive a login token after SSO (default: the Element URL).', 'httpUrl'),
        }),
        rateLimits: group('Rate limits (Synapse rc_*). Defaults are deliberate; see docs/values.md.', {
          loginPerSecond: Type.Number({ description: 'Login attempts per second per address and per account.', default: 0.17 }),
          loginBurst: int('Login attempts allowed in a burst.', 10, { minimum: 1 }),
          messagePerSecond: Type.Number({ description: 'Messages per second per user.', default: 0.5 }),
          messageBurst: int('Messages allowed in a burst.', 30, { minimum: 1 }),
        }),
        federation: group('Federation with other servers.', {
          enabled: bool('Federate with other Matrix servers.', true),
          domainWhitelist: Type.Optional(Type.Array(formatted('Federate only with these server names.', 'serverName'), { description: 'Federate only with these server names.' })),
          trustedKeyServers: formattedList('Servers trusted for other servers\' keys.', 'serverName', ['matrix.org']),
          customCa: optStr(
            'CA certificates (PEM, one or more) that other servers\' federation certificates are verified against (Synapse\'s federation_custom_ca_list). They replace the system\'s trusted CAs for federation: for a private federation of servers with certificates from your own CA.',
          ),
          ipRangeWhitelist: formattedList(
            'Addresses or CIDR ranges Synapse may reach even though ipRangeBlacklist covers them (Synapse\'s ip_range_whitelist): the private addresses of a private federation\'s servers. Like Synapse\'s option it applies to every outgoing request of Synapse\'s own HTTP clients: other servers, push gateways, identity servers. With networkPolicy.enabled the federation egress policy allows these ranges too (on the ports of networkPolicy.egress.federationPorts).',
            'addressOrCidr',
          ),
          ipRangeBlacklist: Type.Optional(
            Type.Array(formatted('Ranges Synapse never sends requests to.', 'addressOrCidr'), {
              description: 'Addresses or CIDR ranges Synapse never sends federation, push or identity-server requests to (Synapse\'s ip_range_blacklist; default: Synapse\'s own list of private, loopback, link-local and other special-purpose ranges, the same list as urlPreviews.ipRangeBlacklist). Synapse always adds 0.0.0.0 and ::. Narrowing it does not open NetworkPolicies: allow private peers with ipRangeWhitelist.',
            }),
          ),
        }),
      }),
    }),

    element: group('Element Web client.', {
      enabled: bool('Deploy Element Web.', true),
      image: image('element'),
      replicaCount: int('Element replicas.', 2, { minimum: 1 }),
      ...podSettings(),
      serviceAccount: serviceAccountSchema(false, '<release>-element'),
      service: group('Element Service.', {
        type: strEnum('Service type.', ['ClusterIP', 'NodePort', 'LoadBalancer'], 'ClusterIP'),
        port: port('Service port.', 80),
      }),
      resources: resources('10m', '32Mi', '500m', '128Mi'),
      webRoot: optStr('Local target: directory of an Element Web build to serve (instead of the release archive).'),
      archive: optStr('Local target: path of a downloaded Element Web release archive (element-vX.Y.Z.tar.gz), verified and served when the machine cannot download it.'),
      archiveSha256: optStr('Local target: SHA-256 (64 hex digits) of the Element Web release archive, the digest published with the release; verifies element.archive or the download.', { pattern: '^[0-9a-f]{64}$' }),
      config: group('Element config.json.', {
        defaultServerName: optFormatted('Server name shown at login (default synapse.server.name).', 'serverName'),
        defaultServerUrl: optFormatted('Homeserver URL (default the public Synapse URL).', 'httpUrl'),
        brand: str('Product name shown in the UI.', 'Element'),
        brandingUrl: optFormatted('Deprecated alias of branding.authHeaderLogoUrl.', 'httpUrlOrPath'),
        defaultTheme: str('light, dark, or custom-<name> of a customThemes entry.', 'light', { pattern: '^(light|dark|custom-.+)$' }),
        customThemes: list('Custom colour themes.', customTheme),
        roomDirectory: group('Room directory.', { servers: formattedList('Servers listed in the room directory (default: this server).', 'serverName') }),
        welcomeUserId: optStr('Not supported by Element Web 1.12 (it dropped welcome_user_id): refused with an explanation.'),
        disableGuests: bool('Hide guest access.', true),
        disableCustomUrls: bool('Forbid changing the homeserver URL at login.', false),
        disable3pidLogin: bool('Hide email/phone login.', false),
        features: group('Feature switches.', {
          showLabsSettings: bool('Show the Labs settings tab.', false),
          enableWidgets: bool('Allow widgets.', true),
        }),
        integrations: group('Integration manager.', {
          uiUrl: optFormatted('Integration manager UI URL.', 'httpUrl'),
          restUrl: optFormatted('Integration manager REST URL.', 'httpUrl'),
          widgetsUrls: formattedList('Widget URLs trusted.', 'httpUrl'),
          jitsiWidgetUrl: optFormatted('Jitsi widget URL.', 'httpUrl'),
        }),
        branding: group('Branding.', {
          authHeaderLogoUrl: optFormatted('Logo on the login pages.', 'httpUrlOrPath'),
          welcomeBackgroundUrl: optFormatted('Background image of the welcome page.', 'httpUrlOrPath'),
          customCssUrl: optStr('Not supported by Element Web: refused with an explanation.'),
          authFooterLinks: list('Links under the login form.', item('A footer link.', { text: str('Link text.'), url: formatted('Link URL.', 'httpUrlOrPath') })),
        }),
        embeddedPages: group('Embedded pages.', { welcomeUrl: optFormatted('Welcome page URL.', 'httpUrlOrPath'), homeUrl: optFormatted('Home page URL.', 'httpUrlOrPath') }),
        extra: freeform('Extra config.json keys merged last.'),
      }),
    }),

    auth: group('The built-in identity provider (sign-in pages and OpenID Connect for Synapse), deployed when synapse.server.mfa.totp or .webauthn is enabled.', {
      image: image('auth'),
      replicaCount: int('Identity provider replicas.', 2, { minimum: 1 }),
      ...podSettings(),
      serviceAccount: serviceAccountSchema(false, '<release>-auth'),
      port: port('Port of the sign-in pages and the OpenID Connect endpoints.', 8090),
      adminPort: port('Port of the administration API used by mxstack (never routed from outside).', 8091),
      trustedProxies: formattedList(
        'Kubernetes: addresses or CIDR ranges whose X-Forwarded-For the auth service believes (throttling and the audit log use the client address). Only the router reaches its port (NetworkPolicy), so the default is the private ranges pod networks use; list your pod network if it is not private. Locally: the router\'s loopback address.',
        'addressOrCidr',
        ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10', 'fd00::/8'],
      ),
      resources: resources('50m', '128Mi', '1', '512Mi'),
    }),

    router: group('The HTTP router (HAProxy): serves well-known, routes to Synapse and Element.', {
      image: image('router'),
      replicaCount: int('Router replicas.', 2, { minimum: 1 }),
      ...podSettings(),
      serviceAccount: serviceAccountSchema(false, '<release>-router'),
      port: port('Port the router listens on.', 8080),
      metricsPort: port('Prometheus exporter port.', 8405),
      exposeAdminApi: bool('Route /_synapse/admin from outside (off: use mxstack, which reaches Synapse directly).', false),
      federation: group('The federation listener: the router terminates TLS for other servers and routes /_matrix/federation and /_matrix/key to Synapse.', {
        enabled: bool('Listen for federation over TLS on router.federation.port (announced in /.well-known/matrix/server).', false),
        port: port('Port of the federation listener.', 8448),
        tls: group('The federation listener\'s certificate.', {
          secretName: optStr('kubernetes.io/tls Secret with tls.crt and tls.key (the local target reads <state>/router/federation-tls/tls.crt and tls.key instead).'),
        }),
      }),
      resources: resources('25m', '32Mi', '500m', '128Mi'),
    }),

    redis: group('Redis: the replication bus between Synapse processes, deployed only when synapse.workers runs any worker.', {
      image: image('redis'),
      ...podSettings(),
      serviceAccount: serviceAccountSchema(false, '<release>-redis'),
      port: port('Port Redis listens on.', 6379),
      maxMemory: str('maxmemory: Synapse uses Redis for pub/sub and a small cache.', '256mb', { pattern: '^[0-9]+(kb|mb|gb)?$' }),
      metrics: group('Prometheus metrics (redis_exporter beside Redis on Kubernetes).', {
        enabled: bool('Export Redis metrics.', true),
        port: port('Exporter port.', 9121),
        image: group('Exporter image.', {
          repository: str('Image repository.', defaultImages.redisExporter.repository),
          tag: str('Image tag.', defaultImages.redisExporter.tag),
          pullPolicy: strEnum('When the kubelet pulls the image.', ['Always', 'IfNotPresent', 'Never'], 'IfNotPresent'),
        }),
      }),
      resources: resources('50m', '64Mi', '500m', '320Mi'),
    }),

    ingress: group('Ingress (any controller; TLS through cert-manager annotations).', {
      enabled: Type.Optional(
        Type.Boolean({
          description:
            'Render Ingress objects. Unset: rendered when ingress.synapse.host or ingress.element.host is given and gatewayApi is off (the old chart\'s quick start sets only the hosts); false: never.',
        }),
      ),
      className: optStr('IngressClass name (traefik, nginx...). Unset: the cluster\'s default IngressClass (the old chart defaulted to traefik).'),
      annotations: stringMap('Annotations, e.g. cert-manager.io/cluster-issuer.'),
      synapse: ingressHost('the Synapse client API', ['/_matrix', '/_synapse/client']),
      element: ingressHost('Element Web', ['/']),
      wellKnown: group('Serve /.well-known/matrix on the server name itself (delegation).', {
        enabled: bool('Route https://<server name>/.well-known/matrix to the router.', true),
      }),
      federation: group('Federation through the ingress.', {
        enabled: bool('Route /_matrix/federation and /_matrix/key, and announce <synapse host>:443 in well-known.', true),
      }),
    }),

    gatewayApi: group('Gateway API HTTPRoutes (instead of or beside Ingress).', {
      enabled: bool('Render HTTPRoutes.', false),
      parentRefs: list(
        'Gateways the routes attach to.',
        item('A Gateway reference.', { name: str('Gateway name.'), namespace: optStr('Gateway namespace.'), sectionName: optStr('Listener name.') }),
      ),
    }),

    autoscaling: group('HorizontalPodAutoscaler for Element Web.', {
      enabled: bool('Scale Element with CPU.', false),
      minReplicas: int('Fewest replicas.', 2, { minimum: 1 }),
      maxReplicas: int('Most replicas.', 5, { minimum: 1 }),
      targetCPUUtilizationPercentage: int('Target CPU utilisation.', 80, { minimum: 1, maximum: 100 }),
    }),

    nodeSelector: Type.Optional(Type.Record(Type.String(), Type.String(), { description: 'The old chart\'s spelling of global.workload.nodeSelector.' })),
    tolerations: Type.Optional(Type.Array(freeform('A toleration.'), { description: 'The old chart\'s spelling of global.workload.tolerations.' })),
    affinity: Type.Optional(Type.Unsafe<Record<string, unknown>>({ type: 'object', description: 'The old chart\'s spelling of global.workload.affinity.' })),

    networkPolicy: group('NetworkPolicies: default deny plus exactly the flows the stack needs.', {
      enabled: bool('Render NetworkPolicies.', false),
      ingress: group('Where inbound HTTP comes from.', {
        traefik: selectorPair('The ingress controller (the old chart called it traefik; any controller works).'),
      }),
      egress: group('Outbound flows beyond the stack.', {
        sso: selectorPair('Identity providers inside the cluster; empty: HTTPS to any public address.'),
        smtpCidr: formatted('Where the SMTP server is (CIDR).', 'cidr', '0.0.0.0/0'),
        federationPorts: portList(
          'TCP ports the federation egress policy lets Synapse reach other homeservers on. With federation on, it opens them to public addresses and to synapse.server.federation.ipRangeWhitelist. The default covers delegation through /.well-known/matrix/server (443) and the default federation port (8448); add the port of a peer named like example.org:8449 or delegated to another port.',
          [443, 8448],
        ),
        dnsNamespace: str('Namespace of the cluster DNS.', 'kube-system'),
      }),
      prometheus: selectorPair('The Prometheus allowed to scrape metrics.'),
    }),

    metrics: group('Prometheus Operator integration.', {
      serviceMonitor: group('ServiceMonitors.', {
        enabled: bool('Render ServiceMonitors for Synapse, coturn and the router.', false),
        interval: formatted('Scrape interval.', 'prometheusDuration', '30s'),
        labels: stringMap('Labels Prometheus selects ServiceMonitors by.'),
      }),
    }),

    postgresql: group('The release PostgreSQL (off with an external database).', {
      enabled: bool('Run PostgreSQL in the release.', true),
      mode: strEnum(
        'How the release runs PostgreSQL on Kubernetes: `statefulset` (mxstack\'s own one-replica StatefulSet) or `cloudnative-pg` (a CloudNativePG Cluster: the operator must be installed; Synapse and the auth component use its -rw Service and -app Secret). The local target always runs the runtime\'s PostgreSQL.',
        ['statefulset', 'cloudnative-pg'],
        'statefulset',
      ),
      cloudnativePg: group('The CloudNativePG Cluster (postgresql.mode cloudnative-pg). Storage, resources and tuning come from postgresql.persistence, postgresql.resources and postgresql.config; database and owner from postgresql.database and postgresql.username.', {
        clusterName: optStr('Name of the Cluster (default <release>-postgresql); its Services are <name>-rw/-ro/-r, its application Secret <name>-app.', { pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', maxLength: 50 }),
        instances: int('PostgreSQL instances: one primary plus replicas.', 1, { minimum: 1, maximum: 9 }),
        imageName: optStr('PostgreSQL operand image (default: the operator\'s own default).'),
        operatorNamespace: str('Namespace of the CloudNativePG operator: NetworkPolicies let it reach the instances.', 'cnpg-system'),
        backup: group('Base backups and the WAL archive to object storage (barmanObjectStore), scheduled by a ScheduledBackup.', {
          schedule: optStr('Cron schedule (5 fields, UTC) of the base backups; unset: no backups to object storage.'),
          destinationPath: optStr('Where backups and WAL go: s3://bucket/path, gs://bucket/path or an Azure blob URL.'),
          endpointURL: optFormatted('Endpoint of an S3-compatible store (MinIO, Ceph...).', 'httpUrl'),
          retentionPolicy: str('How long backups are kept (days d, weeks w or months m).', '30d', { pattern: '^[1-9][0-9]*[dwm]$' }),
          s3Credentials: group('Credentials of the S3 store.', {
            inheritFromIAMRole: bool('Use the pod\'s cloud identity instead of keys.', false),
            accessKeyId: secretKeyRef('Secret key holding the access key id.'),
            secretAccessKey: secretKeyRef('Secret key holding the secret access key.'),
          }),
        }),
      }),
      image: image('postgresql'),
      database: str('Database name.', 'synapse', { pattern: '^[A-Za-z_][A-Za-z0-9_]*$' }),
      username: str('Database user.', 'synapse', { pattern: '^[A-Za-z_][A-Za-z0-9_]*$' }),
      initdbArgs: str('initdb arguments (UTF8 and locale C, as Synapse requires).', '--encoding=UTF8 --locale=C'),
      ...podSettings(),
      serviceAccount: serviceAccountSchema(false, '<release>-postgresql'),
      persistence: group('Data volume.', {
        size: formatted('Size of the data claim.', 'kubernetesQuantity', '8Gi'),
        storageClassName: optStr('Storage class of the data claim (unset: the cluster default).'),
        storageClass: optStr('Deprecated alias of storageClassName (the old chart\'s spelling).'),
      }),
      config: group('postgresql.conf tuning.', {
        maxConnections: Type.Optional(
          Type.Integer({
            description: 'max_connections (default: 100, or more when the Synapse processes\' pools need it: processes × synapse.database.cpMax + 10). Refused when smaller than what the pools need.',
            minimum: 10,
          }),
        ),
        sharedBuffers: formatted('shared_buffers.', 'postgresqlMemory', '256MB'),
        effectiveCacheSize: formatted('effective_cache_size.', 'postgresqlMemory', '768MB'),
        maintenanceWorkMem: formatted('maintenance_work_mem.', 'postgresqlMemory', '64MB'),
        workMem: formatted('work_mem.', 'postgresqlMemory', '8MB'),
        walLevel: strEnum('wal_level (minimal is refused: it rules out replication and point-in-time recovery).', ['replica', 'logical', 'minimal'], 'replica'),
        logMinDurationStatement: int('Log statements slower than this many ms (-1 off).', 1000),
        commitDelay: int(
          'commit_delay in microseconds: group commit. A committing transaction waits this long so commits arriving meanwhile share one WAL flush; durability is unchanged (synchronous_commit stays on). 0: off.',
          0,
          { minimum: 0, maximum: 100000 },
        ),
        commitSiblings: int('commit_siblings: commit_delay applies only while at least this many other transactions are open.', 5, { minimum: 0, maximum: 1000 }),
      }),
      resources: resources('100m', '256Mi', '2', '1Gi'),
    }),

    coturn: group('coturn TURN server for calls.', {
      enabled: bool('Deploy coturn and wire it to Synapse.', true),
      image: image('coturn'),
      ...podSettings(),
      serviceAccount: serviceAccountSchema(false, '<release>-coturn'),
      externalIP: optFormatted('Public address clients reach TURN at (external-ip): an IP address, or public/private behind NAT.', 'externalAddress'),
      realm: optFormatted('TURN realm (default the server name).', 'hostName'),
      hostname: optFormatted('Host name in TURN URIs (default service.externalDns.hostname, realm, or the server name).', 'host'),
      listeningPort: port('TURN port (UDP and TCP).', 3478),
      tlsListeningPort: port('TURNS port (TLS), when tls.enabled.', 5349),
      relayPortRange: group('UDP relay ports.', {
        min: port('First relay port.', 49152),
        max: port('Last relay port.', 49252),
      }),
      userQuota: int('Allocations per user.', 12, { minimum: 0 }),
      totalQuota: int('Allocations in all.', 1200, { minimum: 0 }),
      maxBps: int('Bandwidth per session in bytes/s (0 unlimited).', 0, { minimum: 0 }),
      bpsCapacity: int('Total bandwidth in bytes/s (0 unlimited).', 0, { minimum: 0 }),
      tls: group('TURNS with a certificate.', {
        enabled: bool('Listen for TLS.', false),
        secretName: optStr('kubernetes.io/tls Secret with tls.crt and tls.key.'),
      }),
      prometheusExporter: group('Prometheus metrics.', {
        enabled: bool('Expose coturn metrics.', true),
        port: port('Metrics port.', 9641),
      }),
      hostNetwork: bool('Run on the node network (opt-in; breaks Pod Security restricted; for relay ports without a LoadBalancer).', false),
      service: group('coturn Service.', {
        type: strEnum('Service type.', ['LoadBalancer', 'NodePort', 'ClusterIP'], 'LoadBalancer'),
        loadBalancerIP: optFormatted('Requested LoadBalancer address.', 'ipAddress'),
        externalTrafficPolicy: strEnum('External traffic policy (Local keeps client addresses).', ['Local', 'Cluster'], 'Local'),
        allocateLoadBalancerNodePorts: bool(
          'LoadBalancer type: also allocate a node port per Service port (one per relay port). Off: the load balancer sends to the pods directly (MetalLB, Cilium, kube-vip, cloud load balancers in IP mode); on only for one that needs node ports.',
          false,
        ),
        annotations: stringMap('Service annotations.'),
        nodePorts: group('Node ports (NodePort type).', {
          turnUdp: optPort('Node port for TURN/UDP.'),
          turnTcp: optPort('Node port for TURN/TCP.'),
          turnsUdp: optPort('Node port for TURNS/UDP.'),
          turnsTcp: optPort('Node port for TURNS/TCP.'),
        }),
        externalDns: group('external-dns annotation.', {
          enabled: bool('Annotate for external-dns.', false),
          hostname: optFormatted('DNS name published.', 'hostName'),
        }),
      }),
      resources: resources('100m', '64Mi', '1', '512Mi'),
      extraConfig: strList('Extra turnserver.conf lines (each "key" or "key=value", no comments after values).'),
    }),

    adminBootstrap: group('The Job that registers the admin user.', {
      image: componentImageSchema(undefined),
      ...podSettings(),
      serviceAccount: serviceAccountSchema(false, '<release>-admin-bootstrap'),
      resources: resources('10m', '32Mi', '200m', '128Mi'),
    }),

    backup: group('Scheduled database dumps on Kubernetes (the backup component): a CronJob writing pg_dump files to a claim (`mxstack backup` writes full backup archives on demand).', {
      schedule: optStr('Cron schedule of the backup CronJob, e.g. "0 3 * * *" (UTC); unset: no CronJob.'),
      retention: int('How many dumps the claim keeps; older ones are deleted after each successful dump.', 7, { minimum: 1 }),
      persistence: group('The claim the dumps are written to.', {
        size: formatted('Size of the backup claim.', 'kubernetesQuantity', '20Gi'),
        storageClassName: optStr('Storage class of the backup claim (unset: the cluster default).'),
        storageClass: optStr('Deprecated alias of storageClassName.'),
      }),
      image: componentImageSchema(undefined),
      ...podSettings(),
      serviceAccount: serviceAccountSchema(false, '<release>-backup'),
      resources: resources('100m', '256Mi', '2', '1Gi'),
    }),

    mas: freeform('Matrix Authentication Service: refused when enabled (the old chart had these keys with nothing behind them).'),
  },
  { additionalProperties: false, $id: 'https://mxstack.dev/values.schema.json', title: 'mxstack values' },
);

export type Values = Static<typeof valuesSchema>;
export type OidcProvider = Static<typeof oidcProviderSchema>;

