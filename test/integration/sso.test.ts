/**
 * SSO end to end with a real OpenID Provider (the certified `oidc-provider` library) on 127.0.0.1 and a
 * real local stack whose values list it three times: two providers with different client secrets (one
 * through the keycloak preset, one through the authelia preset, which reads claims from the userinfo
 * endpoint) and one whose stored secret is wrong. A user logs in as a browser would, through the router
 * (Synapse builds its redirects from the public Host and X-Forwarded-Proto the router passes):
 * Synapse's SSO redirect, the provider's login and consent forms, Synapse's callback, then m.login.token.
 *
 * The issuer is plain http on loopback, so every provider sets `skip_verification: true` (Synapse refuses
 * a non-https issuer otherwise); everything else is what a production provider entry would say.
 * Password login is off in this stack (synapse.server.passwordLogin.enabled false), as docs/sso.md
 * recommends when the IdP enforces 2FA; the test proves it is refused.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { startLocalStack, testPresetRuns, testWorkersPreset, workersPresetSets, type LocalStackHandle } from '../support/local-stack.js';
import { matrixRequest, MatrixHttpError } from '../support/matrix-client.js';
import { ssoLogin, startOidcProvider, type OidcProviderHandle } from '../support/oidc-provider.js';
import { freeLoopbackPort } from '../support/component-stacks.js';

let stack: LocalStackHandle;
let idp: OidcProviderHandle;
let clientBaseUrl: string;
let valuesDir: string;
/** Where Synapse sends the browser back with a loginToken; never fetched (the walk stops at the redirect). */
let redirectUrl: string;
/** A session obtained through SSO, for looking things up afterwards. */
let signedIn: { user_id: string; access_token: string } | undefined;

const accounts = {
  alice: { preferred_username: 'alice.sso', name: 'Alice Example', email: 'alice@example.org' },
  bob: { preferred_username: 'bob.sso', name: 'Bob Example', email: 'bob@example.org' },
  carol: { preferred_username: 'carol.sso', name: 'Carol Example', email: 'carol@example.org' },
};

before(async () => {
  const routerPort = await freeLoopbackPort();
  clientBaseUrl = `http://127.0.0.1:${routerPort}/`;
  redirectUrl = `${clientBaseUrl}sso-complete`;
  const callback = `${clientBaseUrl}_synapse/client/oidc/callback`;
  idp = await startOidcProvider({
    clients: [
      { client_id: 'synapse-one', client_secret: 'secret-of-client-one', redirect_uris: [callback] },
      { client_id: 'synapse-two', client_secret: 'another-secret-of-client-two', redirect_uris: [callback] },
      { client_id: 'synapse-three', client_secret: 'the-real-secret-of-client-three', redirect_uris: [callback] },
    ],
    accounts,
  });
  const provider = (idpId: string, clientId: string, secret: string, preset: string) => ({
    idp_id: idpId,
    idp_name: `Test IdP ${idpId}`,
    preset,
    issuer: idp.issuer,
    // Plain http issuer on loopback: Synapse needs this to accept it (never in production).
    skip_verification: true,
    client_id: clientId,
    client_secret: secret,
    user_mapping_provider: {
      config: { localpart_template: '{{ user.preferred_username }}', display_name_template: '{{ user.name }}', email_template: '{{ user.email }}' },
    },
  });
  const values = {
    router: { port: routerPort },
    synapse: {
      server: {
        passwordLogin: { enabled: false },
        sso: {
          enabled: true,
          clientWhitelist: [redirectUrl],
          oidc: {
            enabled: true,
            providers: [
              provider('one', 'synapse-one', 'secret-of-client-one', 'keycloak'),
              provider('two', 'synapse-two', 'another-secret-of-client-two', 'authelia'),
              provider('wrongsecret', 'synapse-three', 'not-the-secret-the-provider-has', 'keycloak'),
            ],
          },
        },
      },
    },
  };
  valuesDir = mkdtempSync(join(tmpdir(), 'mxstack-sso-'));
  const valuesFile = join(valuesDir, 'values.yaml');
  writeFileSync(valuesFile, stringify(values));
  stack = await startLocalStack({ valuesFiles: [valuesFile], sets: workersPresetSets(), timeoutMs: 1_200_000 });
  assert.equal(stack.status.endpoints!.client, clientBaseUrl);
}, { timeout: 1_300_000 });

after(async () => {
  await stack?.dispose();
  await idp?.close();
  if (valuesDir) rmSync(valuesDir, { recursive: true, force: true });
}, { timeout: 300_000 });

async function loginWithToken(token: string): Promise<{ user_id: string; access_token: string }> {
  return matrixRequest<{ user_id: string; access_token: string }>(clientBaseUrl, 'POST', '/_matrix/client/v3/login', {
    body: { type: 'm.login.token', token },
  });
}

async function assertProfileFromTemplates(session: { user_id: string; access_token: string }, account: (typeof accounts)[keyof typeof accounts]) {
  assert.equal(session.user_id, `@${account.preferred_username}:${stack.status.serverName}`, 'localpart from localpart_template');
  const profile = await matrixRequest<{ displayname?: string }>(clientBaseUrl, 'GET', `/_matrix/client/v3/profile/${encodeURIComponent(session.user_id)}`, {
    accessToken: session.access_token,
  });
  assert.equal(profile.displayname, account.name, 'display name from display_name_template');
  const threepids = await matrixRequest<{ threepids: { medium: string; address: string }[] }>(clientBaseUrl, 'GET', '/_matrix/client/v3/account/3pid', {
    accessToken: session.access_token,
  });
  assert.deepEqual(threepids.threepids.map((t) => [t.medium, t.address]), [['email', account.email]], 'email from email_template');
}

test('with a workers preset its workers run, so the sign-ins below take the routing table\'s paths (SSO steps on the main process, the token login on a client reader where the preset runs one)', {
  timeout: 60_000,
  skip: testWorkersPreset === 'none' ? 'the single-process stack has no workers' : false,
}, async () => {
  const { components } = await stack.readStatus();
  const workers = ['synapse-sync-1', ...(testPresetRuns('clientReader') ? ['synapse-client-reader-1'] : [])];
  for (const worker of workers) assert.equal(components[worker]?.healthy, true, `${worker}: ${JSON.stringify(components[worker])}`);
});

test('the login flows offer SSO with every provider and no password login', { timeout: 60_000 }, async () => {
  const flows = await matrixRequest<{ flows: { type: string; identity_providers?: { id: string }[] }[] }>(clientBaseUrl, 'GET', '/_matrix/client/v3/login');
  const types = flows.flows.map((flow) => flow.type);
  assert.ok(types.includes('m.login.sso'), types.join(', '));
  assert.ok(types.includes('m.login.token'));
  assert.ok(!types.includes('m.login.password'), 'password login is off');
  const sso = flows.flows.find((flow) => flow.type === 'm.login.sso')!;
  assert.deepEqual(sso.identity_providers!.map((p) => p.id).sort(), ['oidc-one', 'oidc-two', 'oidc-wrongsecret']);
  // Even the right admin password gets nowhere: an IdP's 2FA cannot be bypassed.
  const admin = stack.adminCredentials();
  await assert.rejects(
    matrixRequest(clientBaseUrl, 'POST', '/_matrix/client/v3/login', { body: { type: 'm.login.password', identifier: { type: 'm.id.user', user: admin.user_id }, password: admin.password } }),
    (error: unknown) => error instanceof MatrixHttpError && error.status >= 400 && error.status < 500,
  );
});

test('provider one (keycloak preset, claims from the ID token): login ends with a Matrix access token; localpart, name and email from the templates', { timeout: 120_000 }, async () => {
  const outcome = await ssoLogin(clientBaseUrl, 'one', redirectUrl, 'alice');
  assert.ok(outcome.loginToken, `no loginToken; last page HTTP ${outcome.last.status} at ${outcome.last.url.href}: ${outcome.last.body.slice(0, 500)}`);
  const session = await loginWithToken(outcome.loginToken);
  signedIn = session;
  await assertProfileFromTemplates(session, accounts.alice);
  const whoami = await matrixRequest<{ user_id: string }>(clientBaseUrl, 'GET', '/_matrix/client/v3/account/whoami', { accessToken: session.access_token });
  assert.equal(whoami.user_id, session.user_id);
  // A login token is single-use.
  await assert.rejects(loginWithToken(outcome.loginToken), (error: unknown) => error instanceof MatrixHttpError && error.status === 403);
});

test('provider two (authelia preset, claims from the userinfo endpoint, its own secret) works too', { timeout: 120_000 }, async () => {
  const outcome = await ssoLogin(clientBaseUrl, 'two', redirectUrl, 'bob');
  assert.ok(outcome.loginToken, `no loginToken; last page HTTP ${outcome.last.status}: ${outcome.last.body.slice(0, 500)}`);
  await assertProfileFromTemplates(await loginWithToken(outcome.loginToken), accounts.bob);
});

test('a second login through the same provider maps to the same user', { timeout: 120_000 }, async () => {
  const outcome = await ssoLogin(clientBaseUrl, 'one', redirectUrl, 'alice');
  assert.ok(outcome.loginToken);
  assert.equal((await loginWithToken(outcome.loginToken)).user_id, `@${accounts.alice.preferred_username}:${stack.status.serverName}`);
});

test('a wrong client secret: the callback fails quickly with a clear error page and no login token', { timeout: 120_000 }, async () => {
  const started = Date.now();
  const outcome = await ssoLogin(clientBaseUrl, 'wrongsecret', redirectUrl, 'carol');
  const elapsedMs = Date.now() - started;
  assert.equal(outcome.loginToken, undefined);
  assert.ok(outcome.last.url.pathname.endsWith('/_synapse/client/oidc/callback'), `ended at ${outcome.last.url.href}`);
  assert.ok(outcome.last.status >= 400, `callback HTTP ${outcome.last.status}`);
  // Synapse's error page names the token endpoint's OAuth error.
  assert.match(outcome.last.body, /invalid_client/);
  assert.ok(elapsedMs < 30_000, `took ${elapsedMs} ms`);
  // No account was created for the user: her profile does not exist.
  assert.ok(signedIn, 'an earlier test signed a user in');
  const carol = `@${accounts.carol.preferred_username}:${stack.status.serverName}`;
  await assert.rejects(
    matrixRequest(clientBaseUrl, 'GET', `/_matrix/client/v3/profile/${encodeURIComponent(carol)}`, { accessToken: signedIn.access_token }),
    (error: unknown) => error instanceof MatrixHttpError && error.status === 404,
  );
});
