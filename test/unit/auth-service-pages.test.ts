import { test } from 'node:test';
import assert from 'node:assert/strict';
import { escapeHtml, html, trustedHtml } from '../../src/components/auth/service/html.js';
import * as pages from '../../src/components/auth/service/pages.js';

const evil = `"><script>alert('x')</script>`;
const ctx = { brand: evil, prefix: '/auth', csrf: 'tok"en', flow: '/auth/interaction/abc' };

test('escaping: every markup character of an interpolated value is escaped; nested templates are not escaped twice', () => {
  assert.equal(escapeHtml(`<a href="x" onclick='y'>&\``), '&#60;a href&#61;&#34;x&#34; onclick&#61;&#39;y&#39;&#62;&#38;&#96;');
  assert.equal(html`<p>${'<b>'}</p>`.text, '<p>&#60;b&#62;</p>');
  assert.equal(html`<div>${html`<b>${'&'}</b>`}</div>`.text, '<div><b>&#38;</b></div>');
  assert.equal(html`${['<i>', html`<u>`]}`.text, '&#60;i&#62;<u>');
  assert.equal(html`${undefined}${false}${null}${0}`.text, '0');
  assert.equal(html`${trustedHtml('<svg/>')}`.text, '<svg/>');
});

test('pages: values (brand, username, errors, CSRF token) never become markup', () => {
  const rendered = [
    pages.signInPage({ ...ctx, username: evil, error: evil }),
    pages.secondFactorPage({ ...ctx, username: evil, totp: true, securityKey: true, digits: 6 }),
    pages.recoveryPage({ ...ctx, username: evil }),
    pages.enrolPage({ ...ctx, username: evil, totp: true, webauthn: true }),
    pages.recoveryCodesPage({ ...ctx, codes: [evil] }),
    pages.messagePage(ctx, evil, evil),
  ];
  for (const page of rendered) {
    assert.doesNotMatch(page, /<script>alert/);
    assert.doesNotMatch(page, /tok"en/);
    assert.match(page, /<html lang="en">/);
    assert.match(page, /<link rel="icon" type="image\/svg\+xml" href="\/auth\/static\/favicon\.svg">/, 'every page has the favicon');
  }
});

test('sign-in page: labelled fields with the autocomplete hints password managers need, CSRF field, error region', () => {
  const page = pages.signInPage({ ...ctx, brand: 'Element' });
  assert.match(page, /<label for="username">Username<\/label>\s*<input id="username" name="username" type="text" autocomplete="username"/);
  assert.match(page, /<label for="password">Password<\/label>\s*<input id="password" name="password" type="password" autocomplete="current-password"/);
  assert.match(page, /<input type="hidden" name="csrf" value="tok&#34;en">/);
  assert.match(page, /id="error" class="error" role="alert" aria-live="assertive"/);
  assert.match(page, /<form id="sign-in-form" method="post" action="\/auth\/interaction\/abc\/password">/);
  assert.doesNotMatch(page, /<script/, 'no script where none is needed');
  assert.doesNotMatch(page, /style=/, 'no inline styles');
});

test('second-factor page: numeric one-time-code input; the security key button only with keys, served script not inline', () => {
  const withKey = pages.secondFactorPage({ ...ctx, username: 'alice', totp: true, securityKey: true, digits: 6 });
  assert.match(withKey, /id="code" name="code" type="text" inputmode="numeric"[^>]*autocomplete="one-time-code"/);
  assert.match(withKey, /<button id="use-security-key"[^>]*>Use a security key<\/button>/);
  assert.match(withKey, /<script src="\/auth\/static\/auth.js" defer><\/script>/);
  assert.match(withKey, /<a id="use-recovery-code" href="\/auth\/interaction\/abc\/recovery">Use a recovery code<\/a>/);
  const withoutKey = pages.secondFactorPage({ ...ctx, username: 'alice', totp: true, securityKey: false, digits: 6 });
  assert.doesNotMatch(withoutKey, /use-security-key/);
  assert.doesNotMatch(withoutKey, /<script/);
});
