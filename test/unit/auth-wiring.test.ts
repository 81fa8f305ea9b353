/**
 * The auth component wired into the stack: values (2FA keys accepted, contradictions refused), its
 * config.json, Synapse's side (the `mxstack` OIDC provider, password login off, the CLI's application
 * service) checked with Synapse's JSON Schema and Synapse's own config loader, the router's /auth
 * route checked with the real HAProxy (config check and a running instance), the Kubernetes objects
 * and the secrets `mxstack secrets init` generates and assembles.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, sign, verify, type JsonWebKey } from 'node:crypto';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import Provider from 'oidc-provider';
import AjvModule from 'ajv';
import { parse as parseYaml } from 'yaml';
import { resolveValues } from '../../src/values/load.js';
import { ValuesError } from '../../src/values/errors.js';
import { isValidRpId } from '../../src/values/refusals.js';
import { authEnabled } from '../../src/values/derived.js';
import { synapseSecretFiles, type AuthSecrets, type Stack } from '../../src/stack/model.js';
import { authSecretFileList } from '../../src/components/auth/kubernetes.js';
import { loadConfig, loadSecrets } from '../../src/auth-service/config.js';
import { clientAddress } from '../../src/auth-service/http.js';
import { authServiceConfig, renderAuthConfigFile } from '../../src/components/auth/config.js';
import { renderHomeserverConfig, synapseConfigFiles } from '../../src/components/synapse/config.js';
import { homeserverConfigPath, synapseStartArgv } from '../../src/components/synapse/start.js';
import { cliAppserviceRegistration, cliAppserviceRegistrationConfig } from '../../src/components/synapse/auth.js';
import { routerConfigFiles, renderRouterConfig } from '../../src/components/router/config.js';
import { authSecretGenerators, generateSigningKey, rsaJwkThumbprint } from '../../src/stack/secrets/generate.js';
import { secretInventory } from '../../src/ops/secrets/inventory.js';
import { parseRecoveryCodeKey, parseSealingKeyring } from '../../src/stack/secrets/auth-keys.js';
import { authSecretFiles } from '../../src/components/auth/service-config.js';
import { renderKubernetesObjects } from '../../src/targets/kubernetes/render.js';
import { toPlainSorted } from '../../src/kit/sorted-json.js';
import { assembleSecretConfigData, planSecrets, secretConfigDigest, secretConfigUpToDate } from '../../src/targets/kubernetes/secrets-store.js';
import {
  freeLoopbackPort,
  kubernetesStack,
  localStack,
  rootfsScratch,
  rootfsUnavailable,
  runInRootfs,
  runRuntimeRouter,
  fetchUntilUp,
  runtimeRootfs,
  withRouterConfigDir,
  writeFiles,
} from '../support/component-stacks.js';

type Tree = Record<string, unknown>;
type Plain = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const totpOn: Tree = {
  synapse: { server: { name: 'example.com', mfa: { totp: { enabled: true, issuer: 'My Matrix' } } } },
  ingress: { synapse: { host: 'matrix.example.com' }, element: { host: 'element.example.com' } },
};

const refusalOf = (raw: Tree): string[] => {
  try {
    resolveValues(raw);
  } catch (error) {
    if (error instanceof ValuesError) return error.problems;
    throw error;
  }
  return [];
};

const withMfa = (server: Tree, extra: Tree = {}): Tree => ({ ...extra, synapse: { server: { name: 'example.com', ...server } } });

test('values: the seed README 2FA block, algorithm in any case, turns the auth component on with password login off', () => {
  for (const algorithm of ['sha1', 'SHA1', 'Sha1']) {
    const values = resolveValues(withMfa({ mfa: { totp: { enabled: true, algorithm, digits: 6, period: 30, issuer: 'My Matrix' } } }));
    assert.equal(values.synapse.server.mfa.totp.algorithm, 'sha1');
    assert.equal(authEnabled(values), true);
    assert.equal(values.synapse.server.passwordLogin.enabled, false, 'turned off by itself');
  }
  assert.equal(resolveValues({}).synapse.server.passwordLogin.enabled, true, 'without 2FA password login stays on');
  assert.equal(resolveValues(withMfa({ mfa: { webauthn: { enabled: true } } })).synapse.server.passwordLogin.enabled, false);
  assert.equal(resolveValues(withMfa({ mfa: { totp: { enabled: true } }, passwordLogin: { enabled: false } })).synapse.server.passwordLogin.enabled, false);
});

test('values: contradictions with 2FA are refused, one sentence each naming the key', () => {
  const cases: [string, Tree, string][] = [
    ['registration', withMfa({ mfa: { totp: { enabled: true } }, registration: { enabled: true, requireToken: true } }), 'synapse.server.registration.enabled: with two-factor authentication on'],
    ['explicit password login', withMfa({ mfa: { totp: { enabled: true } }, passwordLogin: { enabled: true } }), 'synapse.server.passwordLogin.enabled: true contradicts two-factor authentication'],
    ['foreign rpId', withMfa({ mfa: { webauthn: { enabled: true, rpId: 'example.org' } } }), 'synapse.server.mfa.webauthn.rpId: "example.org" is neither the public host "example.com"'],
    ['top-level rpId', withMfa({ mfa: { webauthn: { enabled: true, rpId: 'com' } } }, { ingress: { synapse: { host: 'matrix.example.com' } } }), 'synapse.server.mfa.webauthn.rpId: "com" is neither'],
    [
      'reserved idp_id',
      withMfa({ mfa: { totp: { enabled: true } }, sso: { enabled: true, oidc: { enabled: true, providers: [{ idp_id: 'mxstack', idp_name: 'X', issuer: 'https://x.example', client_id: 'c' }] } } }),
      'synapse.server.sso.oidc.providers: idp_id "mxstack" is reserved',
    ],
  ];
  for (const [name, raw, sentence] of cases) {
    const problems = refusalOf(raw);
    assert.equal(problems.length, 1, `${name}: ${problems.join(' | ')}`);
    assert.ok(problems[0]!.startsWith(sentence), `${name}: ${problems[0]}`);
  }
  // Without 2FA the same settings are fine (an mxstack idp_id included).
  assert.deepEqual(refusalOf(withMfa({ passwordLogin: { enabled: true }, registration: { enabled: true, requireToken: true } })), []);
});

test('values: rpId is the public host or a parent domain of it', () => {
  assert.equal(isValidRpId('matrix.example.com', 'matrix.example.com'), true);
  assert.equal(isValidRpId('example.com', 'matrix.example.com'), true);
  assert.equal(isValidRpId('Example.COM', 'matrix.example.com'), true);
  assert.equal(isValidRpId('com', 'matrix.example.com'), false);
  assert.equal(isValidRpId('ample.com', 'matrix.example.com'), false);
  assert.equal(isValidRpId('chat.example.com', 'matrix.example.com'), false);
  assert.deepEqual(refusalOf(withMfa({ publicBaseurl: 'https://chat.example.net/', mfa: { webauthn: { enabled: true, rpId: 'example.net' } } })), []);
});

test('values: user SSO providers stay next to the built-in one (their users bypass mxstack 2FA, documented)', () => {
  const stack = kubernetesStack({
    ...totpOn,
    synapse: {
      server: {
        name: 'example.com',
        mfa: { totp: { enabled: true } },
        sso: { enabled: true, oidc: { enabled: true, providers: [{ idp_id: 'github', idp_name: 'GitHub', preset: 'github', client_id: 'c' }] } },
      },
    },
  });
  const ids = (renderHomeserverConfig(stack).oidc_providers as Plain[]).map((p) => p.idp_id);
  assert.deepEqual(ids, ['mxstack', 'github']);
});

test('auth config.json on Kubernetes: public issuer under /auth, pod listeners, own database, policy from values', () => {
  const stack = kubernetesStack({
    ...totpOn,
    synapse: {
      server: {
        name: 'example.com',
        mfa: { totp: { enabled: true, algorithm: 'sha512', digits: 8, period: 60, issuer: 'My Matrix' }, webauthn: { enabled: true }, required: true, lockout: { maxFailures: 4 } },
      },
    },
    element: { config: { brand: 'Example Chat' } },
  });
  const config = authServiceConfig(stack);
  assert.equal(config.issuer, 'https://matrix.example.com/auth');
  assert.equal(config.pathPrefix, '/auth');
  assert.deepEqual(config.listen, { host: '0.0.0.0', port: 8090 });
  assert.deepEqual(config.adminListen, { host: '0.0.0.0', port: 8091 });
  assert.deepEqual(config.database, { host: 'mxstack-postgresql', port: 5432, user: 'synapse', database: 'synapse_auth', synapseDatabase: 'synapse', sslmode: 'disable' });
  assert.equal(config.serverName, 'example.com');
  assert.deepEqual(config.client, { clientId: 'synapse', redirectUris: ['https://matrix.example.com/_synapse/client/oidc/callback'] });
  assert.equal(config.elementUrl, 'https://element.example.com/');
  assert.equal(config.brand, 'Example Chat');
  assert.deepEqual(config.policy.totp, { enabled: true, issuer: 'My Matrix', digits: 8, period: 60, algorithm: 'SHA512' });
  assert.deepEqual(config.policy.webauthn, { enabled: true, rpId: 'matrix.example.com', rpName: 'Matrix', origin: 'https://matrix.example.com' });
  assert.equal(config.policy.required, true);
  assert.equal(config.policy.requiredForAdmins, true);
  assert.deepEqual(config.policy.lockout, { maxFailures: 4, durationSeconds: 900, failureWindowSeconds: 900 });
  assert.ok(config.trustedProxies.includes('10.0.0.0/8'));
  assert.equal(config.secureCookies, true);
  assert.deepEqual(JSON.parse(renderAuthConfigFile(stack)), JSON.parse(JSON.stringify(config)));
  assert.equal(renderAuthConfigFile(stack), renderAuthConfigFile(stack), 'deterministic');
});

test('auth config.json locally: loopback issuer through the router, plain cookies, only the router trusted', () => {
  const stack = localStack({ synapse: { server: { name: 'example.com', mfa: { totp: { enabled: true } } } } }, '/srv/s', 42000);
  const config = authServiceConfig(stack);
  const router = `127.0.0.1:${stack.placement.ports.router}`;
  assert.equal(config.issuer, `http://${router}/auth`);
  assert.deepEqual(config.listen, { host: '127.0.0.1', port: stack.placement.ports.auth });
  assert.deepEqual(config.client.redirectUris, [`http://${router}/_synapse/client/oidc/callback`]);
  assert.equal(config.policy.webauthn.origin, `http://${router}`);
  assert.deepEqual(config.trustedProxies, ['127.0.0.1']);
  assert.equal(config.secureCookies, false);
  assert.equal(config.database.database, 'synapse_auth');
  assert.equal('elementUrl' in config, false, 'no Element without element.webRoot');
});

test('one name for the sign-in: Element\'s SSO button (idp_name), the auth pages and Synapse\'s SSO pages show Element\'s brand, else the server name', () => {
  const branded = kubernetesStack({ ...totpOn, element: { config: { brand: 'Acme <Chat> {{ x }}' } } });
  const provider = (renderHomeserverConfig(branded).oidc_providers as Plain[])[0]!;
  assert.equal(provider.idp_name, 'Acme <Chat> {{ x }}');
  assert.equal(authServiceConfig(branded).brand, 'Acme <Chat> {{ x }}');
  const files = synapseConfigFiles(branded);
  assert.equal((renderHomeserverConfig(branded).templates as Plain).custom_template_directory, branded.placement.paths.synapseConfigDir, 'the templates are read from beside homeserver.yaml');
  for (const name of ['_base.html', 'sso_footer.html']) {
    assert.match(files[name]!, /Acme &lt;Chat&gt; &#123;&#123; x &#125;&#125;/, `${name}: the brand, escaped for HTML and Jinja`);
    assert.doesNotMatch(files[name]!, /Matrix\.org|© 20|\[matrix\]/, `${name}: no Matrix.org footer or logo`);
  }
  const synapseConfigMap = renderKubernetesObjects(branded).find((object) => object.kind === 'ConfigMap' && object.metadata?.name === branded.objectName('synapse')) as { data?: Record<string, string> } | undefined;
  assert.deepEqual(Object.keys(synapseConfigMap?.data ?? {}).sort(), ['_base.html', 'homeserver.yaml', 'log.yaml', 'sso_footer.html', 'synapse-start.py'], 'on Kubernetes the templates are in the ConfigMap mounted as the config directory');
  const withoutElement = kubernetesStack({ ...totpOn, element: { enabled: false } });
  assert.equal((renderHomeserverConfig(withoutElement).oidc_providers as Plain[])[0]!.idp_name, 'example.com');
  assert.equal(authServiceConfig(withoutElement).brand, 'example.com');
  assert.match(synapseConfigFiles(withoutElement)['sso_footer.html']!, /<p>example\.com<\/p>/);
});

test('authServiceConfig refuses a stack without the auth component', () => {
  assert.throws(() => authServiceConfig(kubernetesStack()), /no auth component/);
});

test('Synapse with 2FA: the mxstack provider as the briefing fixes it, password login off, the CLI application service', () => {
  const stack = kubernetesStack(totpOn);
  const config = renderHomeserverConfig(stack);
  assert.deepEqual(config.password_config, { enabled: false });
  assert.equal(config.enable_registration, false);
  assert.deepEqual(config.app_service_config_files, ['/secrets/mxstack-cli-appservice.yaml']);
  assert.deepEqual((config.sso as Plain).client_whitelist, ['https://element.example.com/']);
  const [provider, ...others] = config.oidc_providers as Plain[];
  assert.equal(others.length, 0);
  assert.deepEqual(provider, {
    idp_id: 'mxstack',
    idp_name: 'Element',
    issuer: 'https://matrix.example.com/auth',
    discover: false,
    authorization_endpoint: 'https://matrix.example.com/auth/authorize',
    token_endpoint: 'http://mxstack-auth:8090/auth/token',
    userinfo_endpoint: 'http://mxstack-auth:8090/auth/userinfo',
    jwks_uri: 'http://mxstack-auth:8090/auth/jwks',
    skip_verification: true,
    client_id: 'synapse',
    client_auth_method: 'client_secret_basic',
    client_secret_path: '/secrets/oidc_mxstack_client_secret',
    scopes: ['openid', 'profile'],
    pkce_method: 'always',
    user_profile_method: 'userinfo_endpoint',
    allow_existing_users: true,
    enable_registration: false,
    user_mapping_provider: { config: { subject_claim: 'sub', localpart_template: '{{ user.preferred_username }}' } },
  });
  // Without 2FA none of it.
  const plain = renderHomeserverConfig(kubernetesStack());
  assert.equal('oidc_providers' in plain, false);
  assert.equal('app_service_config_files' in plain, false);
  assert.deepEqual(plain.password_config, { enabled: true });
});

test('the CLI application service: only the admin user, exactly, no URL, not rate limited; tokens only in that file', () => {
  const stack = kubernetesStack({ ...totpOn, synapse: { server: { name: 'example.com', mfa: { totp: { enabled: true } }, adminUser: { username: 'root.admin' } } } });
  const registration = cliAppserviceRegistrationConfig(stack, 'as-token-1', 'hs-token-2') as Plain;
  assert.equal(registration.id, 'mxstack-cli');
  assert.equal(registration.url, null);
  assert.equal(registration.rate_limited, false);
  assert.equal(registration.as_token, 'as-token-1');
  assert.equal(registration.hs_token, 'hs-token-2');
  const [users] = registration.namespaces.users as Plain[];
  assert.equal(users!.exclusive, false);
  const pattern = new RegExp(users!.regex as string);
  assert.ok(pattern.test('@root.admin:example.com'));
  for (const other of ['@rootXadmin:example.com', '@root.admin:example.com.evil', '@xroot.admin:example.com', '@bob:example.com']) assert.ok(!pattern.test(other), other);
  assert.deepEqual(parseYaml(cliAppserviceRegistration(stack, 'as-token-1', 'hs-token-2')), registration);
  const homeserverYaml = synapseConfigFiles(stack)['homeserver.yaml']!;
  assert.ok(!homeserverYaml.includes('as-token-1') && !homeserverYaml.includes('hs-token-2'));
});

const Ajv = AjvModule.default ?? AjvModule;

test('homeserver.yaml with 2FA passes Synapse\'s JSON Schema (Kubernetes and local placements)', () => {
  const schema = parseYaml(readFileSync('/work/shared/vendor/synapse-config.schema.yaml', 'utf8')) as Tree;
  delete schema.$schema;
  const validate = new Ajv({ strict: false, allErrors: true, formats: { uri: (value: string) => URL.canParse(value) } }).compile(schema);
  const stacks = [
    kubernetesStack(totpOn),
    kubernetesStack({ ...totpOn, synapse: { server: { name: 'example.com', mfa: { webauthn: { enabled: true, rpId: 'example.com' } } } } }),
    localStack({ synapse: { server: { name: 'example.com', mfa: { totp: { enabled: true } } } } }),
  ];
  for (const stack of stacks) {
    const config = renderHomeserverConfig(stack) as Tree & { database: Tree & { args: Tree } };
    const merged = { ...config, database: { ...config.database, args: { ...config.database.args, password: 'x' } } };
    assert.equal(validate(merged), true, JSON.stringify(validate.errors, null, 2));
  }
});

/**
 * Started through Synapse's start step in place of `-m synapse.app.homeserver`: loads the config paths it is
 * given with Synapse's own config classes and its application service loader; prints what it understood.
 */
const synapseLoaderScript = `
import json, sys
from synapse.config.homeserver import HomeServerConfig
from synapse.config.appservice import load_appservices
config = HomeServerConfig.load_config("mxstack-check", sys.argv[1:])
providers = config.oidc.oidc_providers
services = load_appservices(config.server.server_name, config.appservice.app_service_config_files)
print("understood: " + json.dumps({
  "password_login": config.auth.password_enabled_for_login,
  "database": config.database.databases[0].config["args"],
  "providers": [{"idp_id": p.idp_id, "discover": p.discover, "pkce": p.pkce_method, "secret": p.client_secret,
                 "userinfo": p.user_profile_method, "token": p.token_endpoint, "registration": p.enable_registration,
                 "allow_existing": p.allow_existing_users} for p in providers],
  "services": [{"id": s.id, "token": s.token, "sender": s.sender.to_string(), "rate_limited": s.is_rate_limited(),
                "admin": s.is_interested_in_user("@admin:example.com"), "other": s.is_interested_in_user("@bob:example.com")}
               for s in services],
}))
`;

test('Synapse 1.160\'s own config loader accepts homeserver.yaml with 2FA and the CLI application service', { timeout: 120_000 }, (t) => {
  const unavailable = rootfsUnavailable();
  if (unavailable) {
    t.skip(unavailable);
    return;
  }
  const scratch = rootfsScratch('auth-synapse-config');
  t.after(scratch.remove);
  const stack = localStack({ synapse: { server: { name: 'example.com', mfa: { totp: { enabled: true } } } } }, scratch.inside, 43000);
  const { paths } = stack.placement;
  const outside = (path: string) => join(runtimeRootfs, path);
  writeFiles(outside(paths.synapseConfigDir), synapseConfigFiles(stack));
  writeFiles(outside(paths.synapseSecretsDir), {
    [synapseSecretFiles.databasePassword]: 'db-secret',
    [synapseSecretFiles.registrationSharedSecret]: 'reg-secret',
    [synapseSecretFiles.macaroonSecretKey]: 'macaroon-secret',
    [synapseSecretFiles.formSecret]: 'form-secret',
    [synapseSecretFiles.turnSharedSecret]: 'turn-secret',
    [synapseSecretFiles.oidcClientSecret('mxstack')]: 'client-secret-123',
    [synapseSecretFiles.cliAppserviceRegistration]: cliAppserviceRegistration(stack, 'as-token-abc', 'hs-token-def'),
  });
  writeFiles(outside(posix.dirname(paths.signingKey)), { [posix.basename(paths.signingKey)]: generateSigningKey() });
  writeFiles(outside(scratch.inside), { 'check.py': synapseLoaderScript });
  mkdirSync(outside(paths.synapseRuntimeDir), { recursive: true });
  // The start step's argv with the module swapped for the checker (`-m synapse.app.homeserver` → the file).
  const argv = synapseStartArgv(stack, 'python3', 'synapse.app.homeserver', [homeserverConfigPath(stack)]);
  const moduleAt = argv.indexOf('-m');
  argv.splice(moduleAt, 2, join(scratch.inside, 'check.py'));
  const result = runInRootfs(argv, 100_000);
  assert.equal(result.status, 0, result.output);
  const line = result.output.split('\n').find((l) => l.startsWith('understood: '));
  assert.ok(line, result.output);
  const understood = JSON.parse(line.slice('understood: '.length)) as Plain;
  assert.equal(understood.password_login, false);
  // The database block from homeserver.yaml, its password joined in by the start step.
  assert.equal(understood.database.password, 'db-secret');
  assert.equal(understood.database.dbname, stack.database.name);
  assert.deepEqual(understood.providers, [
    {
      idp_id: 'oidc-mxstack',
      discover: false,
      pkce: 'always',
      secret: 'client-secret-123',
      userinfo: 'userinfo_endpoint',
      token: `http://127.0.0.1:${stack.placement.ports.auth}/auth/token`,
      registration: false,
      allow_existing: true,
    },
  ]);
  assert.deepEqual(understood.services, [
    { id: 'mxstack-cli', token: 'as-token-abc', sender: '@mxstack-cli:example.com', rate_limited: false, admin: true, other: false },
  ]);
});

test('router with 2FA: /auth and /auth/... to the auth component, nothing else; none without 2FA', () => {
  const cfg = renderRouterConfig(kubernetesStack(totpOn));
  assert.match(cfg, /^ {2}acl auth_component path \/auth$/m);
  assert.match(cfg, /^ {2}acl auth_component path_beg \/auth\/$/m);
  assert.match(cfg, /^ {2}use_backend auth if auth_component$/m);
  assert.match(cfg, /^ {2}server auth mxstack-auth\.matrix\.svc\.cluster\.local:8090 resolvers kubernetes/m);
  assert.match(cfg, /^backend auth\n(?: {2}.*\n)* {2}retries \d+\n/m, 'retried while the auth Service has no Ready pod');
  assert.doesNotMatch(renderRouterConfig(kubernetesStack()), /auth/);
});

test('the real HAProxy 3.2 accepts the router configuration with 2FA (Kubernetes, local, local without Element)', (t) => {
  const unavailable = rootfsUnavailable();
  if (unavailable) {
    t.skip(unavailable);
    return;
  }
  const scratch = rootfsScratch('auth-router-check');
  t.after(scratch.remove);
  const stacks: [string, Stack][] = [
    ['kubernetes', withRouterConfigDir(kubernetesStack(totpOn), join(scratch.inside, 'kubernetes'))],
    ['kubernetes, no element', withRouterConfigDir(kubernetesStack({ ...totpOn, element: { enabled: false } }), join(scratch.inside, 'kubernetes-no-element'))],
    ['local', localStack({ synapse: { server: { mfa: { totp: { enabled: true } } } } }, join(scratch.inside, 'local'), 41000)],
  ];
  for (const [name, stack] of stacks) {
    const dir = stack.placement.paths.routerConfigDir;
    writeFiles(join(runtimeRootfs, dir), routerConfigFiles(stack));
    const result = runInRootfs(['haproxy', '-c', '-f', join(dir, 'haproxy.cfg')]);
    assert.equal(result.status, 0, `${name}: haproxy -c failed:\n${result.output}`);
    assert.doesNotMatch(result.output, /\[WARNING\]|\[ALERT\]/, `${name}: ${result.output}`);
  }
});

interface Seen {
  url: string;
  headers: IncomingHttpHeaders;
}

test('a running HAProxy forwards /auth paths unchanged to the auth component with forwarding headers', { timeout: 40_000 }, async (t) => {
  const unavailable = rootfsUnavailable();
  if (unavailable) {
    t.skip(unavailable);
    return;
  }
  const scratch = rootfsScratch('auth-router-run');
  t.after(scratch.remove);
  const stack = localStack({ synapse: { server: { name: 'example.org', mfa: { totp: { enabled: true } } } } }, scratch.inside, undefined, {
    synapseHttp: await freeLoopbackPort(),
    router: await freeLoopbackPort(),
    routerMetrics: await freeLoopbackPort(),
    auth: await freeLoopbackPort(),
  });
  writeFiles(join(runtimeRootfs, stack.placement.paths.routerConfigDir), routerConfigFiles(stack));

  const upstream = (seen: Seen[]) =>
    createServer((request, response) => {
      if (request.url !== '/health') seen.push({ url: request.url!, headers: request.headers });
      response.end(request.url === '/health' ? 'OK' : '{}');
    });
  const atAuth: Seen[] = [];
  const atSynapse: Seen[] = [];
  const auth = upstream(atAuth);
  const synapse = upstream(atSynapse);
  await new Promise<void>((resolve) => auth.listen(stack.placement.ports.auth, '127.0.0.1', resolve));
  await new Promise<void>((resolve) => synapse.listen(stack.placement.ports.synapseHttp, '127.0.0.1', resolve));
  t.after(() => {
    auth.close();
    synapse.close();
  });

  const base = runRuntimeRouter(t, stack);

  const paths = ['/auth', '/auth/.well-known/openid-configuration', '/auth/interaction/abc?x=1', '/auth/static/app.css'];
  for (const path of paths) {
    const response = await fetchUntilUp(`${base}${path}`, { headers: { 'X-Forwarded-For': '203.0.113.66', 'X-Forwarded-Host': 'evil.example' } });
    assert.equal(response.status, 200, path);
  }
  assert.deepEqual(atAuth.map((s) => s.url), paths, 'forwarded unchanged');
  for (const { headers } of atAuth) {
    assert.equal(headers['x-forwarded-for'], '127.0.0.1', 'a client-supplied X-Forwarded-For is replaced at the edge');
    assert.equal(headers['x-forwarded-proto'], 'http');
    assert.equal(headers['x-forwarded-host'], `127.0.0.1:${stack.placement.ports.router}`);
  }
  const notAuth = await fetchUntilUp(`${base}/authx`);
  assert.equal(notAuth.status, 404, '/authx is not the auth component');
  assert.equal(atAuth.length, paths.length);
  assert.equal((await fetchUntilUp(`${base}/_matrix/client/versions`)).status, 200);
  assert.deepEqual(atSynapse.map((s) => s.url), ['/_matrix/client/versions']);
});

// ---------------------------------------------------------------- Kubernetes and secrets

const k8sObjects = (stack: Stack): Plain[] => renderKubernetesObjects(stack).map((o) => toPlainSorted(o) as Plain);
const ofKind = (objects: Plain[], kind: string, name: string): Plain => {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
  assert.ok(found, `${kind}/${name}`);
  return found;
};

test('Kubernetes: the auth Deployment runs the image with config.json from a ConfigMap and every secret file projected', () => {
  const stack = kubernetesStack({ ...totpOn, auth: { replicaCount: 3, resources: { limits: { memory: '384Mi' } } } });
  const objects = k8sObjects(stack);
  const configMap = ofKind(objects, 'ConfigMap', 'mxstack-auth');
  assert.deepEqual(Object.keys(configMap.data), ['config.json']);
  assert.deepEqual(JSON.parse(configMap.data['config.json'] as string), JSON.parse(renderAuthConfigFile(stack)));
  const deployment = ofKind(objects, 'Deployment', 'mxstack-auth');
  assert.equal(deployment.spec.replicas, 3);
  const pod = deployment.spec.template.spec;
  const [container] = pod.containers as Plain[];
  assert.equal(container!.image, 'mxstack/auth:0.1.0');
  assert.deepEqual(container!.args, ['--config', '/config/config.json']);
  assert.equal(container!.securityContext.readOnlyRootFilesystem, true);
  assert.equal(pod.securityContext.runAsUser, 10001);
  assert.equal(container!.resources.limits.memory, '384Mi');
  for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) assert.deepEqual(container![probe].httpGet, { path: '/health', port: 'http' }, probe);
  assert.match(deployment.spec.template.metadata.annotations['checksum/config'], /^[0-9a-f]{64}$/);
  const secretsVolume = (pod.volumes as Plain[]).find((v) => v.name === 'secrets')!;
  const projected = (secretsVolume.projected.sources as Plain[]).flatMap((source) => (source.secret.items as Plain[]).map((item) => `${source.secret.name}/${item.key}>${item.path}`));
  assert.deepEqual(projected.sort(), [
    'mxstack-auth/admin-token>admin-token',
    'mxstack-auth/client-secret>client-secret',
    'mxstack-auth/cookie-keys>cookie-keys',
    'mxstack-auth/recovery-code-key>recovery-code-key',
    'mxstack-auth/sealing-keyring>sealing-keyring',
    'mxstack-auth/signing-jwks>signing-jwks',
    'mxstack-postgresql/postgres-password>database-password',
  ]);
  assert.deepEqual(new Set(projected.map((p) => p.split('>')[1])), new Set(Object.values(authSecretFiles)), 'exactly the files the service reads');
  assert.deepEqual((container!.volumeMounts as Plain[]).map((m) => m.mountPath).sort(), ['/config', '/secrets', '/tmp']);
  const service = ofKind(objects, 'Service', 'mxstack-auth');
  assert.deepEqual((service.spec.ports as Plain[]).map((p) => `${p.name}:${p.port}>${p.targetPort}`), ['http:8090>http', 'admin:8091>admin']);
  assert.equal(ofKind(objects, 'PodDisruptionBudget', 'mxstack-auth').spec.minAvailable, 1);
  // A config change rolls the pods.
  const other = ofKind(k8sObjects(kubernetesStack({ ...totpOn, synapse: { server: { name: 'example.com', mfa: { totp: { enabled: true, digits: 8 } } } } })), 'Deployment', 'mxstack-auth');
  assert.notEqual(other.spec.template.metadata.annotations['checksum/config'], deployment.spec.template.metadata.annotations['checksum/config']);
  // One replica: no budget (it would block every drain); no 2FA: no auth objects at all.
  assert.ok(!k8sObjects(kubernetesStack({ ...totpOn, auth: { replicaCount: 1 } })).some((o) => o.kind === 'PodDisruptionBudget' && o.metadata.name === 'mxstack-auth'));
  assert.ok(!k8sObjects(kubernetesStack()).some((o) => o.metadata.name === 'mxstack-auth'));
});

test('Kubernetes: Synapse gets the client secret and the CLI registration among its secret files', () => {
  const objects = k8sObjects(kubernetesStack(totpOn));
  const pod = ofKind(objects, 'Deployment', 'mxstack-synapse').spec.template.spec;
  const secretsVolume = (pod.volumes as Plain[]).find((v) => v.name === 'secrets')!;
  const projected = (secretsVolume.projected.sources as Plain[]).flatMap((source) => (source.secret.items as Plain[]).map((item) => `${source.secret.name}/${item.key}>${item.path}`));
  assert.ok(projected.includes('mxstack-auth/client-secret>oidc_mxstack_client_secret'), projected.join(', '));
  assert.ok(projected.includes('mxstack-synapse-secret-config/mxstack-cli-appservice.yaml>mxstack-cli-appservice.yaml'), projected.join(', '));
});

test('secrets init plan (Kubernetes): every auth key generated in <release>-auth, the registration assembled from its tokens', () => {
  const stack = kubernetesStack(totpOn);
  const plan = planSecrets(stack, new Map());
  assert.deepEqual(plan.problems, []);
  const auth = plan.create.find((c) => c.name === 'mxstack-auth');
  assert.ok(auth, plan.create.map((c) => c.name).join(', '));
  assert.deepEqual(Object.keys(auth.data).sort(), ['admin-token', 'cli-appservice-hs-token', 'cli-appservice-token', 'client-secret', 'cookie-keys', 'recovery-code-key', 'sealing-keyring', 'signing-jwks']);
  assert.ok(!plan.generated.some((g) => g.endsWith('mxstack-cli-appservice.yaml')), 'the registration is assembled, never generated');
  const data = assembleSecretConfigData(stack, new Map(), plan);
  assert.deepEqual(Object.keys(data).sort(), ['mxstack-cli-appservice.yaml']);
  const registration = parseYaml(data['mxstack-cli-appservice.yaml']!) as Plain;
  assert.equal(registration.as_token, auth.data['cli-appservice-token']);
  assert.equal(registration.hs_token, auth.data['cli-appservice-hs-token']);
  // Existing values are kept: nothing to create when everything is there.
  const live = new Map(plan.create.map((c) => [c.name, c.data]));
  const again = planSecrets(stack, live);
  assert.deepEqual([again.create, again.addKeys, again.generated], [[], [], []]);
  assert.ok(secretConfigUpToDate(stack, new Map([...live, ['mxstack-synapse-secret-config', data]]), data));
  assert.ok(!secretConfigUpToDate(stack, live, data));
  // Without 2FA nothing is assembled: the database and email settings travel in homeserver.yaml.
  const plain = kubernetesStack();
  const plainData = assembleSecretConfigData(plain, new Map(), planSecrets(plain, new Map()));
  assert.deepEqual(plainData, {});
  assert.ok(secretConfigUpToDate(plain, new Map(), plainData), 'nothing to write without 2FA');
  assert.notEqual(secretConfigDigest({ a: 'x' }), secretConfigDigest({ a: 'y' }));
});

test('secret inventory (`secrets list/verify/init`): every auth key, generated, with a purpose', () => {
  const entries = secretInventory(kubernetesStack(totpOn)).filter((e) => e.ref.name === 'mxstack-auth');
  assert.deepEqual(entries.map((e) => e.id).sort(), [
    'auth-admin-token',
    'auth-cli-appservice-hs-token',
    'auth-cli-appservice-token',
    'auth-client-secret',
    'auth-cookie-keys',
    'auth-recovery-code-key',
    'auth-sealing-keyring',
    'auth-signing-jwks',
  ]);
  for (const entry of entries) {
    assert.equal(entry.origin, 'generated');
    assert.ok(entry.purpose.length > 10);
    const [a, b] = [entry.value!(), entry.value!()];
    assert.notEqual(a, b, `${entry.id} is random`);
  }
  assert.equal(secretInventory(kubernetesStack()).some((e) => e.ref.name === 'mxstack-auth'), false);
});

test('generated auth keys have the formats the service reads', () => {
  const keyring = parseSealingKeyring(authSecretGenerators.sealingKeyring());
  assert.equal(keyring.keyring.length, 1);
  assert.equal(parseRecoveryCodeKey(authSecretGenerators.recoveryCodeKey()).length, 32);
  const cookies = authSecretGenerators.cookieKeys().split(',');
  assert.equal(cookies.length, 2);
  for (const key of cookies) assert.match(key, /^[A-Za-z0-9_-]{43}$/);
  const jwks = JSON.parse(authSecretGenerators.signingJwks()) as { keys: Plain[] };
  assert.equal(jwks.keys.length, 1);
  const [jwk] = jwks.keys;
  assert.equal(jwk!.kty, 'RSA');
  assert.equal(jwk!.alg, 'RS256');
  assert.equal(jwk!.use, 'sig');
  assert.equal(typeof jwk!.d, 'string');
  assert.equal(jwk!.kid, rsaJwkThumbprint(jwk as JsonWebKey));
  // A real RSA 2048 private key that signs what its public half verifies (RS256).
  const privateKey = createPrivateKey({ key: jwk as JsonWebKey, format: 'jwk' });
  assert.equal(privateKey.asymmetricKeyDetails?.modulusLength, 2048);
  const signature = sign('sha256', Buffer.from('id token'), privateKey);
  assert.ok(verify('sha256', Buffer.from('id token'), createPublicKey(privateKey), signature));
  for (const key of ['clientSecret', 'adminToken', 'cliAppserviceToken', 'cliAppserviceHsToken'] as const) assert.match(authSecretGenerators[key](), /^[A-Za-z0-9_-]{43}$/);
});

test('what the stack writes is what the auth service reads: its own config and secret loaders, and oidc-provider, accept them', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mxstack-auth-wiring-'));
  try {
    const stack = kubernetesStack(totpOn);
    const configMap = ofKind(k8sObjects(stack), 'ConfigMap', 'mxstack-auth');
    writeFileSync(join(dir, 'config.json'), configMap.data['config.json'] as string);
    const config = loadConfig(join(dir, 'config.json'));
    assert.deepEqual(config, authServiceConfig(stack));
    assert.equal(config.secretsDir, '/secrets');
    // The files as the pod sees them: one per authSecretFiles name, generated as `secrets init` does.
    const generatedByFile: Record<string, string> = { [authSecretFiles.databasePassword]: 'db-password' };
    for (const file of authSecretFileList(stack).filter((f) => f.file !== authSecretFiles.databasePassword)) {
      const key = (Object.keys(stack.secrets.auth!) as (keyof AuthSecrets)[]).find((k) => stack.secrets.auth![k] === file.ref)!;
      generatedByFile[file.file] = authSecretGenerators[key]();
    }
    writeFiles(join(dir, 'secrets'), generatedByFile);
    const secrets = loadSecrets(join(dir, 'secrets'));
    assert.equal(secrets.cookieKeys.length, 2);
    assert.equal(secrets.clientSecret, generatedByFile[authSecretFiles.clientSecret]);
    const provider = new Provider(config.issuer, { jwks: secrets.signingJwks as never, cookies: { keys: [...secrets.cookieKeys] } });
    assert.equal(provider.issuer, 'https://matrix.example.com/auth');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('Kubernetes trusted proxies are CIDR ranges the service honours: the client behind ingress controller and router, never a direct caller\'s claim', () => {
  const { trustedProxies } = authServiceConfig(kubernetesStack(totpOn));
  // Browser → ingress controller (10.244.2.3, adds the client) → router (10.244.1.7, adds the controller) → auth.
  assert.equal(clientAddress('10.244.1.7', '203.0.113.9, 10.244.2.3', trustedProxies), '203.0.113.9');
  assert.equal(clientAddress('::ffff:10.244.1.7', '203.0.113.9', trustedProxies), '203.0.113.9');
  assert.equal(clientAddress('203.0.113.5', '198.51.100.1', trustedProxies), '203.0.113.5', 'a peer outside the ranges cannot claim an address');
  const local = authServiceConfig(localStack({ synapse: { server: { mfa: { totp: { enabled: true } } } } })).trustedProxies;
  assert.equal(clientAddress('127.0.0.1', '198.51.100.1', local), '198.51.100.1');
  assert.equal(clientAddress('127.0.0.2', '198.51.100.1', local), '127.0.0.2', 'locally only the router\'s address is trusted');
});
