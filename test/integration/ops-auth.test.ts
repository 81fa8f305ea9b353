/**
 * The operations with built-in 2FA, on ONE real local stack with `synapse.server.mfa.totp.enabled: true`
 * (real PostgreSQL, Synapse, router and auth service): the CLI's admin session while Synapse refuses
 * m.login.password; `users create | info | set-password | reset-2fa`; the passwords checked by signing in
 * at the auth service's own account page through the router (HTML forms over fetch, cookies kept), and an
 * authenticator app enrolled there with codes computed here; the doctor's auth lines; backup, changes, then
 * restore: the auth database of the archive comes back (its password and factor), the later changes go.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TOTP } from 'otpauth';
import { LocalTarget } from '../../src/targets/local/target-adapter.js';
import { withAuthAdmin } from '../../src/ops/auth-admin.js';
import type { SecondFactors, UserInfo } from '../../src/ops/users.js';
import { stackFramePattern, type CliResult } from '../support/cli.js';
import { runCliAsync, startLocalStack, type LocalStackHandle } from '../support/local-stack.js';

const minutes = (n: number) => n * 60_000;
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

// ---- a small browser: cookies, redirects followed by hand, forms by id (the ids of src/auth-service/pages.ts)

interface Page {
  url: URL;
  status: number;
  body: string;
}

const unescapeHtml = (text: string) => text.replace(/&#(\d+);/g, (_, code: string) => String.fromCharCode(Number(code))).replace(/&amp;/g, '&').replace(/&quot;/g, '"');

class FormBrowser {
  private readonly cookies = new Map<string, string>();

  async open(url: URL | string, form?: Record<string, string>): Promise<Page> {
    let target = new URL(url);
    let method = form ? 'POST' : 'GET';
    let body = form ? new URLSearchParams(form).toString() : undefined;
    for (let hop = 0; hop < 10; hop++) {
      const cookie = [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
      const response = await fetch(target, {
        method,
        redirect: 'manual',
        headers: { accept: 'text/html', ...(cookie ? { cookie } : {}), ...(body ? { 'content-type': 'application/x-www-form-urlencoded' } : {}) },
        ...(body ? { body } : {}),
        signal: AbortSignal.timeout(30_000),
      });
      for (const line of response.headers.getSetCookie()) {
        const [pair] = line.split(';');
        const eq = pair!.indexOf('=');
        this.cookies.set(pair!.slice(0, eq).trim(), pair!.slice(eq + 1).trim());
      }
      const location = response.headers.get('location');
      const text = await response.text();
      if (response.status < 300 || response.status >= 400 || !location) return { url: target, status: response.status, body: text };
      target = new URL(location, target);
      method = 'GET';
      body = undefined;
    }
    throw new Error(`too many redirects from ${String(url)}`);
  }

  /** Submits the form with this id, or the form posting to a path ending in `id` when it has none. */
  submit(page: Page, formIdOrAction: string, fields: Record<string, string> = {}): Promise<Page> {
    const byId = new RegExp(`<form id="${formIdOrAction}"[^>]*action="([^"]+)"`).exec(page.body);
    const byAction = new RegExp(`<form[^>]*action="([^"]*${formIdOrAction.replace(/\//g, '\\/')})"`).exec(page.body);
    const action = (byId ?? byAction)?.[1];
    assert.ok(action, `no form ${formIdOrAction} on ${page.url.pathname} (HTTP ${page.status}): ${page.body.slice(0, 600)}`);
    const csrf = /name="csrf" value="([^"]+)"/.exec(page.body)?.[1];
    assert.ok(csrf, `no CSRF token on ${page.url.pathname}`);
    return this.open(new URL(unescapeHtml(action), page.url), { csrf: unescapeHtml(csrf), ...fields });
  }
}

const textOf = (page: Page, id: string) => {
  const match = new RegExp(`id="${id}"[^>]*>([^<]*)<`).exec(page.body);
  return match ? unescapeHtml(match[1]!).trim() : undefined;
};

/** Signs in at the account page: the page after the password (account page, or the second-factor form). */
async function signIn(issuer: string, username: string, password: string): Promise<{ browser: FormBrowser; page: Page }> {
  const browser = new FormBrowser();
  const form = await browser.open(`${issuer}/account`);
  const page = await browser.submit(form, 'sign-in-form', { username, password });
  return { browser, page };
}

/** Adds an authenticator app from the account page; returns its secret and the account page after the codes. */
async function enrolTotp(browser: FormBrowser, accountPage: Page): Promise<{ secret: string; after: Page }> {
  const qr = await browser.submit(accountPage, '/enrol/totp/start');
  const secret = textOf(qr, 'totp-secret');
  assert.ok(secret && /^[A-Z2-7]+=*$/.test(secret), `an enrolment secret on ${qr.url.pathname}: ${qr.body.slice(0, 600)}`);
  const code = new TOTP({ secret, algorithm: 'SHA1', digits: 6, period: 30 }).generate();
  const codes = await browser.submit(qr, 'totp-confirm-form', { code });
  assert.match(codes.body, /id="recovery-codes"/, codes.body.slice(0, 600));
  const after = await browser.submit(codes, '/continue');
  return { secret, after };
}

describe('operations with built-in 2FA on a real local stack', { timeout: minutes(30), skip: isRoot ? false : 'the local target needs root' }, () => {
  let stack: LocalStackHandle;
  let target: LocalTarget;
  let issuer: string;
  const work = mkdtempSync(join(tmpdir(), 'mxstack-ops-auth-'));
  chmodSync(work, 0o755);
  const passwordFile = (name: string, password: string) => {
    const file = join(work, name);
    writeFileSync(file, `${password}\n`, { mode: 0o600 });
    return file;
  };

  const cli = (args: string[], env: NodeJS.ProcessEnv = {}) => runCliAsync([...args, '--state-dir', stack.stateDir], { timeoutMs: minutes(10), env });
  const ok = async (args: string[]): Promise<CliResult> => {
    const result = await cli(args);
    assert.equal(result.status, 0, `mxstack ${args.join(' ')} exited ${result.status}\n${result.stderr}`);
    return result;
  };
  const info = async (user: string) => JSON.parse((await ok(['users', 'info', user, '--output', 'json'])).stdout) as UserInfo;
  const factors = async (user: string): Promise<SecondFactors> => {
    const described = (await info(user)).second_factors;
    assert.ok(described, `users info ${user} has a second_factors block`);
    return described;
  };

  before(async () => {
    stack = await startLocalStack({ sets: ['synapse.server.mfa.totp.enabled=true'], stateDir: join(work, 'state') });
    target = new LocalTarget({ stateDir: stack.stateDir });
    assert.ok(target.stack.auth, 'the stack has the auth component');
    issuer = target.stack.auth.issuer;
  });
  after(async () => {
    await stack?.dispose();
    rmSync(work, { recursive: true, force: true });
  });

  test('the admin session works while Synapse refuses m.login.password', async () => {
    const { user_id: adminId, password } = stack.adminCredentials();
    const response = await fetch(new URL('_matrix/client/v3/login', stack.status.endpoints!.synapse), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'm.login.password', identifier: { type: 'm.id.user', user: adminId }, password }),
      signal: AbortSignal.timeout(30_000),
    });
    assert.ok(response.status === 400 || response.status === 403, `password login answered HTTP ${response.status}`);
    const listed = JSON.parse((await ok(['users', 'list', '--output', 'json'])).stdout) as { user_id: string; admin: boolean }[];
    assert.ok(listed.some((u) => u.user_id === adminId && u.admin), 'the admin lists users through its application-service login');
  });

  test('users create: the password is set at the auth service (argon2id) and not in Synapse; info shows no factors', async () => {
    const created = await ok(['users', 'create', 'carol', '--password-file', passwordFile('p1', 'carol password one')]);
    assert.match(created.stdout, /^created @carol:\S+ \(2FA is on: its password is set at the auth service, not in Synapse\)/);
    assert.deepEqual(await factors('carol'), {
      password: 'argon2id',
      authenticator_app: { enrolled: false, enrolled_at: null },
      security_keys: [],
      recovery_codes_left: 0,
      must_enrol: false,
      locked_until: null,
    });
    const account = await withAuthAdmin(target, (auth) => auth.account('carol'));
    assert.equal(account.password, 'argon2id');
    const hash = await target.exec(
      'postgresql',
      [...target.postgresqlTool('psql'), '-X', '-tA', '-d', target.stack.database.name, '-c', "SELECT coalesce(password_hash, 'NULL') FROM users WHERE name LIKE '@carol:%'"],
      { user: 'postgres', timeoutMs: 30_000 },
    );
    assert.equal(hash.stdout.trim(), 'NULL', `Synapse holds no password for carol: ${hash.stderr}`);
    const table = (await ok(['users', 'info', 'carol'])).stdout;
    assert.match(table, /second factors:\n {2}password: {10}set at the auth service\n {2}authenticator app: no\n {2}security keys: {5}0\n {2}recovery codes: {4}0 left/);

    assert.equal(textOf((await signIn(issuer, 'carol', 'carol password one')).page, 'account-username'), 'carol');
    assert.equal(textOf((await signIn(issuer, 'carol', 'not her password')).page, 'error'), 'Wrong username or password.');
  });

  test('users set-password goes through the auth service and says so', async () => {
    const changed = await ok(['users', 'set-password', 'carol', '--password-file', passwordFile('p2', 'carol password two')]);
    assert.match(changed.stdout, /^password of @carol:\S+ changed at the auth service \(2FA is on: Synapse has no password login\); \d+ devices logged out\./);
    assert.equal(textOf((await signIn(issuer, 'carol', 'carol password two')).page, 'account-username'), 'carol');
    assert.equal(textOf((await signIn(issuer, 'carol', 'carol password one')).page, 'error'), 'Wrong username or password.');
  });

  test('users reset-2fa: refused without --yes and without a terminal; with --yes removes the enrolled factor and says what', async () => {
    const { browser, page } = await signIn(issuer, 'carol', 'carol password two');
    const { after } = await enrolTotp(browser, page);
    assert.equal(textOf(after, 'totp-status'), 'On');
    const enrolled = await factors('carol');
    assert.equal(enrolled.authenticator_app.enrolled, true);
    assert.equal(enrolled.recovery_codes_left, 10);

    const refused = await cli(['users', 'reset-2fa', 'carol']);
    assert.equal(refused.status, 2, refused.stderr);
    assert.match(refused.stderr, /refusing to remove every second factor and recovery code of @carol:\S+ .*without confirmation: there is no terminal to type @carol:\S+ at; pass --yes/);
    assert.doesNotMatch(refused.stderr, stackFramePattern);
    assert.equal((await factors('carol')).authenticator_app.enrolled, true, 'nothing changed');

    const reset = await ok(['users', 'reset-2fa', 'carol', '--yes']);
    assert.match(reset.stdout, /^second factors of @carol:\S+ reset at the auth service\.\nremoved: authenticator app \(enrolled \d{4}-\d\d-\d\d\); 10 unused recovery codes\.\nthe user signs in with the password alone/);
    const now = await factors('carol');
    assert.deepEqual([now.authenticator_app.enrolled, now.recovery_codes_left, now.security_keys.length], [false, 0, 0]);
    assert.equal(textOf((await signIn(issuer, 'carol', 'carol password two')).page, 'totp-status'), 'Off', 'signs in with the password alone (the policy does not require a factor)');
  });

  test('users reset-2fa and unlock of an unknown user: one sentence', async () => {
    const result = await cli(['users', 'reset-2fa', 'nobody', '--yes']);
    assert.equal(result.status, 1);
    assert.match(result.stderr, /user @nobody:\S+ not found\./);
  });

  test('doctor: the auth lines pass', async () => {
    const result = await cli(['doctor', '--output', 'json']);
    const checks = (JSON.parse(result.stdout) as { checks: { name: string; status: string; detail: string }[] }).checks;
    const auth = checks.filter((check) => check.name.startsWith('auth'));
    assert.deepEqual(
      auth.map((check) => [check.name, check.status]),
      [
        ['auth admin API', 'pass'],
        ['auth issuer', 'pass'],
        ['auth sign-in through Synapse', 'pass'],
      ],
      JSON.stringify(auth, null, 2),
    );
  });

  test('backup holds the auth database; restore brings its passwords and factors back and drops later changes', async () => {
    const { browser, page } = await signIn(issuer, 'carol', 'carol password two');
    await enrolTotp(browser, page);
    const archive = join(work, 'backup.tar');
    const made = await ok(['backup', '--output', archive]);
    assert.match(made.stdout, /auth database \S+_auth included/);
    const verified = await ok(['backup', 'verify', archive]);
    assert.match(verified.stdout, /auth database: \S+_auth \(made with built-in 2FA on\)/);

    await ok(['users', 'set-password', 'carol', '--password-file', passwordFile('p3', 'carol password three')]);
    await ok(['users', 'reset-2fa', 'carol', '--yes']);
    await ok(['users', 'create', 'dora', '--password-file', passwordFile('p4', 'dora password one')]);
    assert.equal((await factors('carol')).authenticator_app.enrolled, false);

    const restored = await ok(['restore', archive, '--yes']);
    assert.match(restored.stderr, /databases swapped/);
    assert.match(restored.stderr, /Synapse and the auth component are healthy on the restored data/);
    const back = await factors('carol');
    assert.deepEqual([back.password, back.authenticator_app.enrolled, back.recovery_codes_left], ['argon2id', true, 10]);
    const withArchivedPassword = await signIn(issuer, 'carol', 'carol password two');
    assert.match(withArchivedPassword.page.body, /id="totp-form"/, 'the archived password is accepted and the archived factor asked for');
    assert.equal(textOf((await signIn(issuer, 'carol', 'carol password three')).page, 'error'), 'Wrong username or password.');
    const dora = await cli(['users', 'info', 'dora']);
    assert.equal(dora.status, 1, 'dora was created after the backup');
    assert.match(dora.stderr, /user @dora:\S+ not found/);
    await ok(['users', 'list']);
  });
});
