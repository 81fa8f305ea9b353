/**
 * The doctor's auth lines against stand-ins on loopback (the auth admin API, the issuer's discovery
 * document as the router would serve it, Synapse's login flows): a healthy setup passes, and each way it
 * breaks fails its own line with a fix. The real service is checked by test/integration/ops-auth.test.ts.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { checkAuth, type DoctorEnvironment } from '../../src/ops/doctor/checks.js';
import { FakeAuthService, FakeHttp, FakeTarget, stackWith } from './ops-auth-fakes.js';

const authToken = 'auth-admin-token';
let auth: FakeAuthService;
let issuerServer: FakeHttp;
let synapse: FakeHttp;
let servedIssuer = '';
let flows: unknown[] = [];

before(async () => {
  auth = await new FakeAuthService(authToken).start();
  issuerServer = await new FakeHttp((_request, url) =>
    url.pathname === '/auth/.well-known/openid-configuration' ? { status: 200, body: { issuer: servedIssuer, authorization_endpoint: `${servedIssuer}/authorize` } } : undefined,
  ).start();
  synapse = await new FakeHttp((_request, url) => (url.pathname === '/_matrix/client/v3/login' ? { status: 200, body: { flows } } : undefined)).start();
});
after(async () => {
  await auth.stop();
  await issuerServer.stop();
  await synapse.stop();
});

const goodFlows = [{ type: 'm.login.sso', identity_providers: [{ id: 'oidc-mxstack', name: 'mxstack' }] }, { type: 'm.login.token' }, { type: 'm.login.application_service' }];

function environment(options: { auth?: boolean } = {}): DoctorEnvironment {
  const compiled = stackWith({ auth: options.auth ?? true });
  const issuer = `${issuerServer.url}auth`;
  const stack = compiled.auth ? { ...compiled, auth: { ...compiled.auth, issuer } } : compiled;
  const target = new FakeTarget(stack, synapse.url, auth.url);
  if (stack.secrets.auth) target.setSecret(stack.secrets.auth.adminToken, authToken);
  return { target, clientBaseUrl: synapse.url, logsHint: (component: string) => `mxstack logs ${component}` } as unknown as DoctorEnvironment;
}

const byName = (checks: Awaited<ReturnType<typeof checkAuth>>) => Object.fromEntries(checks.map((check) => [check.name, check]));

test('a healthy auth component: three passing lines', async () => {
  auth.healthy = true;
  servedIssuer = `${issuerServer.url}auth`;
  flows = goodFlows;
  const checks = await checkAuth(environment());
  assert.deepEqual(
    checks.map((check) => [check.name, check.status]),
    [
      ['auth admin API', 'pass'],
      ['auth issuer', 'pass'],
      ['auth sign-in through Synapse', 'pass'],
    ],
    JSON.stringify(checks, null, 2),
  );
  assert.match(byName(checks)['auth sign-in through Synapse']!.detail, /through oidc-mxstack and no password login/);
});

test('each failure fails its own line with a fix', async () => {
  auth.healthy = false;
  servedIssuer = 'https://wrong.example/auth';
  flows = [{ type: 'm.login.password' }, ...goodFlows];
  let checks = byName(await checkAuth(environment()));
  assert.equal(checks['auth admin API']!.status, 'fail');
  assert.match(checks['auth admin API']!.detail, /its \/health answered HTTP 503/);
  assert.match(checks['auth admin API']!.fix, /start the auth component .*\(mxstack logs auth\)/);
  assert.equal(checks['auth issuer']!.status, 'fail');
  assert.match(checks['auth issuer']!.detail, /names issuer "https:\/\/wrong.example\/auth", expected http:\/\/127\.0\.0\.1:\d+\/auth/);
  assert.equal(checks['auth sign-in through Synapse']!.status, 'fail');
  assert.match(checks['auth sign-in through Synapse']!.detail, /still offers m\.login\.password .* bypassing the second factor/);
  assert.match(checks['auth sign-in through Synapse']!.fix, /password_config\.enabled false/);

  flows = [{ type: 'm.login.sso', identity_providers: [{ id: 'oidc-other' }] }];
  checks = byName(await checkAuth(environment()));
  assert.match(checks['auth sign-in through Synapse']!.detail, /does not list the identity provider oidc-mxstack \(SSO providers: oidc-other\)/);
});

test('an issuer the router does not serve fails with the routing fix', async () => {
  auth.healthy = true;
  flows = goodFlows;
  const base = environment();
  const stack = base.target.stack;
  const target = new FakeTarget({ ...stack, auth: { ...stack.auth!, issuer: `${issuerServer.url}elsewhere` } }, synapse.url, auth.url);
  target.setSecret(stack.secrets.auth!.adminToken, authToken);
  const checks = byName(await checkAuth({ ...base, target }));
  assert.equal(checks['auth issuer']!.status, 'fail');
  assert.match(checks['auth issuer']!.detail, /elsewhere\/\.well-known\/openid-configuration answered HTTP 404/);
  assert.match(checks['auth issuer']!.fix, /the router must forward \/elsewhere\//);
});

test('2FA off: one passing line saying so', async () => {
  const checks = await checkAuth(environment({ auth: false }));
  assert.deepEqual(checks.map((check) => [check.name, check.status]), [['auth', 'pass']]);
  assert.match(checks[0]!.detail, /2FA is off/);
});
