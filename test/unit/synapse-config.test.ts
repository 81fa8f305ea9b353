import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import AjvModule, { type ErrorObject, type ValidateFunction } from 'ajv';
import { parse as parseYaml, parseDocument, visit } from 'yaml';
import { loadValues } from '../../src/values/load.js';
import { compileStack } from '../../src/stack/compile.js';
import type { Stack } from '../../src/stack/model.js';
import { kubernetesPlacement } from '../../src/targets/kubernetes/placement.js';
import {
  renderHomeserverConfig,
  renderSynapseLogConfig,
  synapseConfigFiles,
  toSynapseYaml,
} from '../../src/components/synapse/config.js';

type Tree = Record<string, unknown>;

const Ajv = AjvModule.default ?? AjvModule;

const synapseSchemaPath = '/work/shared/vendor/synapse-config.schema.yaml';
const databasePassword = 'db-password-7f3a9c';
const smtpPassword = 'smtp-password-51be02';
const githubSecret = 'github-client-secret-c0ffee';

function stackFor(base: Tree): Stack {
  const values = loadValues({ base });
  return compileStack(values, kubernetesPlacement(values, 'mxstack'));
}

const ssoBase: Tree = {
  ingress: { element: { host: 'chat.example.org' } },
  synapse: {
    server: {
      name: 'example.org',
      passwordLogin: { enabled: false },
      sso: {
        enabled: true,
        oidc: {
          enabled: true,
          providers: [
            { idp_id: 'github', idp_name: 'GitHub', preset: 'github', client_id: 'gh-client', client_secret: githubSecret },
            {
              idp_id: 'authelia',
              idp_name: 'Authelia',
              preset: 'authelia',
              issuer: 'https://auth.example.org',
              client_id: 'synapse',
              clientSecretRef: { name: 'my-authelia', key: 'secret' },
            },
          ],
        },
      },
    },
  },
};

const emailBase: Tree = {
  ingress: { element: { host: 'chat.example.org' } },
  synapse: {
    server: {
      name: 'example.org',
      registration: { enabled: true, requireEmail: true },
      email: { enabled: true, smtpHost: 'smtp.example.org', smtpUser: 'mailer', notifFrom: 'Example <noreply@example.org>' },
    },
  },
};

const scenarios: Record<string, Tree> = {
  defaults: {},
  sso: ssoBase,
  previewsOff: { synapse: { server: { urlPreviews: { enabled: false } } } },
  email: emailBase,
  federationOff: { synapse: { server: { federation: { enabled: false } } } },
  extraConfig: {
    synapse: {
      extraConfig: {
        presence: { enabled: false },
        rc_login: { address: { burst_count: 3 } },
        url_preview_accept_language: ['de', 'en'],
      },
    },
  },
  tokensJsonLogsNoMetrics: {
    postgresql: { enabled: false },
    synapse: {
      logFormat: 'json',
      logLevel: 'DEBUG',
      metrics: { enabled: false },
      database: { external: true, host: 'db.example.org', sslmode: 'verify-full', allowUnsafeLocale: true },
      server: { registration: { enabled: true, requireToken: true }, turn: { enabled: false } },
    },
  },
};

const stacks = Object.fromEntries(Object.entries(scenarios).map(([name, base]) => [name, stackFor(base)]));
const stack = (name: keyof typeof scenarios & string): Stack => stacks[name]!;

let synapseSchema: { validate: ValidateFunction; properties: Set<string> } | undefined;
function loadSynapseSchema() {
  if (synapseSchema) return synapseSchema;
  const schema = parseYaml(readFileSync(synapseSchemaPath, 'utf8')) as Tree;
  // Its $schema is Synapse's own meta-schema, which ajv does not know.
  delete schema.$schema;
  const ajv = new Ajv({ strict: false, allErrors: true, formats: { uri: (value: string) => URL.canParse(value) } });
  synapseSchema = { validate: ajv.compile(schema), properties: new Set(Object.keys(schema.properties as Tree)) };
  return synapseSchema;
}

/**
 * The config Synapse runs with: homeserver.yaml with the two passwords its start step joins in (the
 * script itself runs for real in synapse-start.test.ts).
 */
function mergedConfig(s: Stack): Tree {
  const config = renderHomeserverConfig(s) as Tree & { database: Tree & { args: Tree }; email?: Tree };
  return {
    ...config,
    database: { ...config.database, args: { ...config.database.args, password: databasePassword } },
    ...(config.email ? { email: { ...config.email, smtp_pass: smtpPassword } } : {}),
  };
}

const secretStrings = [databasePassword, smtpPassword, githubSecret];
const inlineSecretKeys = new Set(['password', 'smtp_pass', 'client_secret', 'registration_shared_secret', 'macaroon_secret_key', 'form_secret', 'turn_shared_secret']);

function keysDeep(value: unknown): string[] {
  if (Array.isArray(value)) return value.flatMap(keysDeep);
  if (value !== null && typeof value === 'object') return Object.entries(value).flatMap(([key, child]) => [key, ...keysDeep(child)]);
  return [];
}

/**
 * Where the schema contradicts Synapse itself:
 * - it types email.smtp_port as a string, but its own example is 587 and Synapse hands the port to Twisted's
 *   HostnameEndpoint, which wants an integer;
 * - it types each stream_writers entry as one worker name, but Synapse's docs/workers.md ("An example
 *   stream_writers configuration with multiple writers", test/fixtures/synapse/workers-v1.157.1.md) shards
 *   a stream over a list of writers, as the large preset's event persisters do.
 */
const isKnownSchemaDefect = (error: ErrorObject, config: Tree) =>
  (error.instancePath === '/email/smtp_port' && error.keyword === 'type' && Number.isInteger((config.email as Tree).smtp_port)) ||
  (error.instancePath.startsWith('/stream_writers/') && error.keyword === 'type' && isListOfNames(streamWriterEntry(config, error.instancePath)));

function streamWriterEntry(config: Tree, instancePath: string): unknown {
  return (config.stream_writers as Tree | undefined)?.[instancePath.slice('/stream_writers/'.length)];
}

function isListOfNames(value: unknown): boolean {
  return Array.isArray(value) && value.length > 0 && value.every((name) => typeof name === 'string');
}

function schemaErrors(config: Tree): ErrorObject[] {
  const { validate } = loadSynapseSchema();
  validate(config);
  return (validate.errors ?? []).filter((error) => !isKnownSchemaDefect(error, config));
}

test('the schema check catches a wrongly typed key', () => {
  const broken = { ...mergedConfig(stack('defaults')), max_upload_size: ['50M'], listeners: [{ port: '8008' }] };
  assert.deepEqual(schemaErrors(broken).map((e) => e.instancePath).sort(), ['/listeners/0/port', '/max_upload_size']);
});

for (const name of Object.keys(scenarios)) {
  test(`${name}: homeserver.yaml merged with the secret config passes Synapse's JSON Schema`, () => {
    const errors = schemaErrors(mergedConfig(stack(name)));
    assert.deepEqual(errors, [], JSON.stringify(errors, null, 2));
  });

  test(`${name}: every top-level key is one Synapse documents`, () => {
    const { properties } = loadSynapseSchema();
    const unknown = Object.keys(mergedConfig(stack(name))).filter((key) => !properties.has(key));
    assert.deepEqual(unknown, []);
  });

  test(`${name}: homeserver.yaml holds no secret, only *_path references`, () => {
    const text = synapseConfigFiles(stack(name))['homeserver.yaml']!;
    for (const secret of secretStrings) assert.ok(!text.includes(secret), `a secret value leaked into homeserver.yaml`);
    const inline = keysDeep(renderHomeserverConfig(stack(name))).filter((key) => inlineSecretKeys.has(key));
    assert.deepEqual(inline, []);
  });

  test(`${name}: homeserver.yaml carries the database block, and the email block when email is on`, () => {
    const config = renderHomeserverConfig(stack(name));
    assert.equal('database' in config, true);
    assert.equal('email' in config, stack(name).values.synapse.server.email.enabled);
  });
}

test('defaults: server identity, paths and listener follow the stack and its placement', () => {
  const s = stack('defaults');
  const config = renderHomeserverConfig(s);
  const { paths, ports, bindAddress } = s.placement;
  assert.equal(config.server_name, s.serverName);
  assert.equal(config.public_baseurl, s.publicBaseUrl);
  assert.equal(config.report_stats, false);
  assert.equal(posix.dirname(config.pid_file as string), paths.synapseDataDir);
  assert.equal(config.log_config, posix.join(paths.synapseConfigDir, 'log.yaml'));
  assert.equal(config.media_store_path, paths.mediaStore);
  assert.equal(config.signing_key_path, paths.signingKey);
  assert.deepEqual(config.listeners, [
    {
      port: ports.synapseHttp,
      type: 'http',
      tls: false,
      x_forwarded: true,
      bind_addresses: [bindAddress],
      resources: [{ names: ['client', 'federation'], compress: false }],
    },
    { port: ports.synapseMetrics, type: 'metrics', bind_addresses: [bindAddress] },
  ]);
  assert.equal(config.enable_metrics, true);
  assert.deepEqual(config.trusted_key_servers, [{ server_name: 'matrix.org' }]);
  assert.equal('federation_domain_whitelist' in config, false);
});

test('defaults: every key secret is read from its own file in the secrets directory', () => {
  const s = stack('defaults');
  const config = renderHomeserverConfig(s);
  const dir = s.placement.paths.synapseSecretsDir;
  const paths = ['registration_shared_secret_path', 'macaroon_secret_key_path', 'form_secret_path', 'turn_shared_secret_path'].map(
    (key) => config[key] as string,
  );
  for (const path of paths) assert.equal(posix.dirname(path), dir);
  assert.equal(new Set(paths).size, paths.length);
});

test('defaults: media limits, registration closed, password login on', () => {
  const config = renderHomeserverConfig(stack('defaults'));
  assert.equal(config.max_upload_size, '50M');
  assert.equal(config.max_image_pixels, '32M');
  assert.equal(config.enable_authenticated_media, true);
  assert.equal(config.enable_registration, false);
  assert.equal(config.enable_registration_without_verification, false);
  assert.equal(config.registration_requires_token, false);
  assert.equal(config.allow_guest_access, false);
  assert.equal('registrations_require_3pid' in config, false);
  assert.deepEqual(config.password_config, { enabled: true });
});

test('URL previews: on with the full upstream blacklist (the example list of Synapse\'s own schema)', () => {
  const schema = parseYaml(readFileSync(synapseSchemaPath, 'utf8')) as { properties: Record<string, { examples: string[][] }> };
  const upstreamList = schema.properties.url_preview_ip_range_blacklist!.examples[0]!;
  assert.ok(upstreamList.length >= 19, 'the schema example list looks truncated');
  const config = renderHomeserverConfig(stack('defaults'));
  assert.equal(config.url_preview_enabled, true);
  const blacklist = config.url_preview_ip_range_blacklist as string[];
  for (const range of upstreamList) assert.ok(blacklist.includes(range), `${range} missing from the blacklist`);
  assert.deepEqual(config.url_preview_ip_range_whitelist, []);
  assert.equal(config.max_spider_size, '10M');
});

test('URL previews: a blacklist from values replaces the default; off means no spider keys', () => {
  const custom = renderHomeserverConfig(
    stackFor({ synapse: { server: { urlPreviews: { ipRangeBlacklist: ['10.0.0.0/8'], ipRangeWhitelist: ['10.1.2.3'], urlBlacklist: [{ netloc: 'evil.example' }] } } } }),
  );
  assert.deepEqual(custom.url_preview_ip_range_blacklist, ['10.0.0.0/8']);
  assert.deepEqual(custom.url_preview_ip_range_whitelist, ['10.1.2.3']);
  assert.deepEqual(custom.url_preview_url_blacklist, [{ netloc: 'evil.example' }]);
  const off = renderHomeserverConfig(stack('previewsOff'));
  assert.equal(off.url_preview_enabled, false);
  assert.equal('url_preview_ip_range_blacklist' in off, false);
});

test('TURN: URIs from the stack, secret by path, no credentials for guests', () => {
  const s = stack('defaults');
  const config = renderHomeserverConfig(s);
  assert.ok(s.turnUris.length > 0);
  assert.deepEqual(config.turn_uris, s.turnUris);
  assert.equal(config.turn_user_lifetime, '1h');
  assert.equal(config.turn_allow_guests, false);
  const off = renderHomeserverConfig(stack('tokensJsonLogsNoMetrics'));
  assert.equal(off.turn_allow_guests, false);
  assert.equal('turn_uris' in off, false);
  assert.equal('turn_shared_secret_path' in off, false);
});

test('SSO: each OIDC provider reads its own client secret file', () => {
  const s = stack('sso');
  const providers = renderHomeserverConfig(s).oidc_providers as Tree[];
  assert.equal(providers.length, 2);
  const paths = providers.map((p) => p.client_secret_path as string);
  assert.equal(new Set(paths).size, 2);
  for (const [i, path] of paths.entries()) {
    assert.equal(posix.dirname(path), s.placement.paths.synapseSecretsDir);
    assert.ok(posix.basename(path).includes(providers[i]!.idp_id as string));
  }
});

test('SSO: presets fill what the provider needs; mxstack-only keys are not passed to Synapse', () => {
  const [github, authelia] = renderHomeserverConfig(stack('sso')).oidc_providers as Tree[];
  assert.equal(github!.discover, false);
  assert.equal(github!.authorization_endpoint, 'https://github.com/login/oauth/authorize');
  assert.equal(github!.token_endpoint, 'https://github.com/login/oauth/access_token');
  assert.equal(github!.userinfo_endpoint, 'https://api.github.com/user');
  assert.deepEqual(github!.scopes, ['read:user']);
  const mapping = (github!.user_mapping_provider as { config: Tree }).config;
  assert.equal(mapping.subject_claim, 'id');
  assert.match(mapping.localpart_template as string, /user\.login/);
  assert.equal(github!.client_id, 'gh-client');
  assert.equal(authelia!.user_profile_method, 'userinfo_endpoint');
  assert.equal(authelia!.issuer, 'https://auth.example.org');
  for (const provider of [github!, authelia!]) {
    for (const key of ['preset', 'clientSecretRef', 'client_secret']) assert.equal(key in provider, false, `${key} passed through`);
  }
});

test('SSO: explicit provider values win over the preset', () => {
  const config = renderHomeserverConfig(
    stackFor({
      synapse: {
        server: {
          sso: {
            enabled: true,
            oidc: {
              enabled: true,
              providers: [
                {
                  idp_id: 'gh',
                  idp_name: 'GitHub',
                  preset: 'github',
                  client_id: 'c',
                  scopes: ['read:user', 'user:email'],
                  user_mapping_provider: { config: { localpart_template: '{{ user.email }}' } },
                },
                { idp_id: 'google', idp_name: 'Google', preset: 'google', client_id: 'g' },
                { idp_id: 'kc', idp_name: 'Keycloak', preset: 'keycloak', issuer: 'https://kc.example.org/realms/r', client_id: 'k', pkce_method: 'always' },
              ],
            },
          },
        },
      },
    }),
  );
  const [github, google, keycloak] = config.oidc_providers as Tree[];
  assert.deepEqual(github!.scopes, ['read:user', 'user:email']);
  const mapping = (github!.user_mapping_provider as { config: Tree }).config;
  assert.equal(mapping.localpart_template, '{{ user.email }}');
  assert.equal(mapping.subject_claim, 'id', 'a nested preset value not overridden is kept');
  assert.equal(google!.issuer, 'https://accounts.google.com');
  assert.equal(keycloak!.discover, true);
  assert.equal(keycloak!.pkce_method, 'always');
});

test('SSO: password login off, login tokens only for the Element URL', () => {
  const s = stack('sso');
  const config = renderHomeserverConfig(s);
  assert.deepEqual(config.password_config, { enabled: false });
  assert.ok(s.elementUrl);
  assert.deepEqual(config.sso, { client_whitelist: [s.elementUrl] });
});

test('federation off: no federation resource and no outbound federation', () => {
  const config = renderHomeserverConfig(stack('federationOff'));
  const [http] = config.listeners as { resources: { names: string[] }[] }[];
  assert.deepEqual(http!.resources[0]!.names, ['client']);
  assert.deepEqual(config.federation_domain_whitelist, []);
});

test('federation whitelist from values', () => {
  const config = renderHomeserverConfig(stackFor({ synapse: { server: { federation: { domainWhitelist: ['friends.example'] } } } }));
  assert.deepEqual(config.federation_domain_whitelist, ['friends.example']);
});

test('metrics off: one listener and enable_metrics false', () => {
  const config = renderHomeserverConfig(stack('tokensJsonLogsNoMetrics'));
  assert.equal((config.listeners as unknown[]).length, 1);
  assert.equal(config.enable_metrics, false);
});

test('registration by token; by email with email configured', () => {
  const tokens = renderHomeserverConfig(stack('tokensJsonLogsNoMetrics'));
  assert.equal(tokens.enable_registration, true);
  assert.equal(tokens.registration_requires_token, true);
  assert.equal(tokens.enable_registration_without_verification, false);
  const email = renderHomeserverConfig(stack('email'));
  assert.deepEqual(email.registrations_require_3pid, ['email']);
});

test('rate limits come from values, for login per address, per account and failed attempts', () => {
  const config = renderHomeserverConfig(
    stackFor({ synapse: { server: { rateLimits: { loginPerSecond: 1.5, loginBurst: 7, messagePerSecond: 3, messageBurst: 40 } } } }),
  );
  const login = { per_second: 1.5, burst_count: 7 };
  assert.deepEqual(config.rc_login, { address: login, account: login, failed_attempts: login });
  assert.deepEqual(config.rc_message, { per_second: 3, burst_count: 40 });
});

test('extraConfig is deep-merged last', () => {
  const config = renderHomeserverConfig(stack('extraConfig'));
  assert.deepEqual(config.presence, { enabled: false });
  assert.deepEqual(config.url_preview_accept_language, ['de', 'en']);
  const rcLogin = config.rc_login as Record<string, Tree>;
  assert.equal(rcLogin.address!.burst_count, 3);
  assert.equal(rcLogin.address!.per_second, stack('extraConfig').values.synapse.server.rateLimits.loginPerSecond);
  assert.equal(rcLogin.account!.burst_count, stack('extraConfig').values.synapse.server.rateLimits.loginBurst);
});

test('homeserver.yaml: the database block from the stack and values, without its password', () => {
  const s = stack('defaults');
  const { database } = renderHomeserverConfig(s) as { database: Tree };
  assert.deepEqual(database, {
    name: 'psycopg2',
    args: {
      user: s.database.user,
      dbname: s.database.name,
      host: s.database.host,
      port: s.database.port,
      cp_min: 5,
      cp_max: 10,
      sslmode: 'disable',
    },
  });
  const external = renderHomeserverConfig(stack('tokensJsonLogsNoMetrics')) as { database: { allow_unsafe_locale?: boolean; args: Tree } };
  assert.equal(external.database.allow_unsafe_locale, true);
  assert.equal(external.database.args.host, 'db.example.org');
  assert.equal(external.database.args.sslmode, 'verify-full');
});

test('homeserver.yaml: the email block without smtp_pass, linking to Element by default', () => {
  const s = stack('email');
  const { email } = renderHomeserverConfig(s) as { email: Tree };
  assert.equal(email.smtp_host, 'smtp.example.org');
  assert.equal(email.smtp_port, 587);
  assert.equal(email.smtp_user, 'mailer');
  assert.equal('smtp_pass' in email, false);
  assert.equal(email.require_transport_security, true);
  assert.equal(email.force_tls, false);
  assert.equal(email.notif_from, 'Example <noreply@example.org>');
  assert.ok(s.elementUrl);
  assert.equal(email.client_base_url, s.elementUrl);
  assert.equal('email' in renderHomeserverConfig(stack('defaults')), false);
});

test('log config: console on stderr, root level from values, SQL logger never at DEBUG', () => {
  const text = renderSynapseLogConfig(stack('defaults')) as Tree & { root: Tree; handlers: Record<string, Tree>; formatters: Record<string, Tree>; loggers: Record<string, Tree> };
  assert.equal(text.version, 1);
  assert.equal(text.disable_existing_loggers, false);
  assert.deepEqual(text.root, { level: 'INFO', handlers: ['console'] });
  assert.equal(text.handlers.console!.class, 'logging.StreamHandler');
  assert.equal(text.handlers.console!.stream, 'ext://sys.stderr');
  assert.equal(typeof text.formatters[text.handlers.console!.formatter as string]!.format, 'string');

  const json = renderSynapseLogConfig(stack('tokensJsonLogsNoMetrics')) as typeof text;
  assert.equal(json.root.level, 'DEBUG');
  assert.equal(json.loggers['synapse.storage.SQL']!.level, 'INFO');
  assert.equal(json.formatters[json.handlers.console!.formatter as string]!['()'], 'synapse.logging.TerseJsonFormatter');
});

test('files: YAML that reads back to the rendered objects, deterministic whatever the values key order', () => {
  const files = synapseConfigFiles(stack('sso'));
  assert.deepEqual(Object.keys(files).sort(), ['_base.html', 'homeserver.yaml', 'log.yaml', 'sso_footer.html', 'synapse-start.py']);
  assert.deepEqual(parseYaml(files['homeserver.yaml']!, { version: '1.1' }), renderHomeserverConfig(stack('sso')));
  assert.deepEqual(parseYaml(files['log.yaml']!, { version: '1.1' }), renderSynapseLogConfig(stack('sso')));
  const reordered = Object.fromEntries(Object.entries(ssoBase).reverse());
  assert.equal(synapseConfigFiles(stackFor(reordered))['homeserver.yaml'], files['homeserver.yaml']);
  assert.equal(synapseConfigFiles(stack('sso'))['homeserver.yaml'], files['homeserver.yaml']);
  let aliases = 0;
  visit(parseDocument(files['homeserver.yaml']!), { Alias: () => void aliases++ });
  assert.equal(aliases, 0, 'no YAML anchors or aliases');
});

test('files: strings that YAML 1.1 (PyYAML, which Synapse uses) would read as numbers or booleans stay strings', () => {
  const tricky = ['12:30', 'yes', 'off', '017', '1_000'];
  for (const name of tricky) {
    const text = toSynapseYaml({ database: { args: { dbname: name } } });
    const parsed = parseYaml(text, { version: '1.1' }) as { database: { args: Tree } };
    assert.equal(parsed.database.args.dbname, name);
  }
});

test('values checks count what a preset fills: github needs no endpoints, a bare provider needs an issuer', () => {
  const withProvider = (provider: Tree) => ({ synapse: { server: { sso: { enabled: true, oidc: { enabled: true, providers: [provider] } } } } });
  assert.doesNotThrow(() => stackFor(withProvider({ idp_id: 'gh', idp_name: 'GitHub', preset: 'github', client_id: 'c' })));
  assert.doesNotThrow(() => stackFor(withProvider({ idp_id: 'g', idp_name: 'Google', preset: 'google', client_id: 'c' })));
  assert.throws(() => stackFor(withProvider({ idp_id: 'x', idp_name: 'X', client_id: 'c', discover: false })), /issuer: required/);
  assert.throws(
    () => stackFor(withProvider({ idp_id: 'x', idp_name: 'X', client_id: 'c', discover: false, issuer: 'https://x.example' })),
    /authorization_endpoint and token_endpoint are required/,
  );
});

const fixturesDir = join(import.meta.dirname, '..', 'fixtures', 'values');

test('every values fixture renders a schema-valid Synapse config without the secrets its values carry', () => {
  const fixtures = readdirSync(fixturesDir).filter((name) => name.endsWith('.yaml'));
  assert.ok(fixtures.length > 0);
  for (const fixture of fixtures) {
    const values = loadValues({ files: [join(fixturesDir, fixture)] });
    const s = compileStack(values, kubernetesPlacement(values, 'mxstack'));
    const errors = schemaErrors(mergedConfig(s));
    assert.deepEqual(errors, [], `${fixture}: ${JSON.stringify(errors)}`);
    const text = synapseConfigFiles(s)['homeserver.yaml']!;
    const valueSecrets = [
      ...values.synapse.server.sso.oidc.providers.map((p) => p.client_secret),
      values.synapse.server.email.smtpPass,
      values.synapse.server.adminUser.password,
      values.synapse.server.adminUser.registrationSecret,
    ].filter((secret): secret is string => secret !== undefined);
    for (const secret of valueSecrets) assert.ok(!text.includes(secret), `${fixture}: a secret from values leaked into homeserver.yaml`);
  }
});
