/**
 * The browser support itself (test/support/browser.ts), against a tiny page served on loopback, so a
 * failure of the two-factor test can be told apart from a broken browser setup:
 * - Debian's Chromium starts through playwright-core and renders a page;
 * - the virtual authenticator makes a credential for navigator.credentials.create on `localhost`, signs an
 *   assertion with it in a fresh context after export/import, and (as browsers must) refuses an IP origin;
 * - a context given another source address really connects from it (through the forwarding proxy);
 * - a QR code drawn by the `qrcode` library is read back from a screenshot and its otpauth:// URI parsed;
 *   the codes computed from it match an independent RFC 6238 computation (node:crypto HMAC).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import QRCode from 'qrcode';
import { addVirtualAuthenticator, browserSkipReason, launchBrowser, parseTotpUri, readQrCode, totpCode, totpStep, type TestBrowser } from '../support/browser.js';

const skip = browserSkipReason();
let browser: TestBrowser;
let server: Server;
let port: number;

const enrolmentUri = 'otpauth://totp/Matrix:alice?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Matrix&algorithm=SHA1&digits=6&period=30';

/** What the page's register/authenticate functions answer (they never throw into the test). */
interface Outcome {
  ok: boolean;
  id?: string;
  error?: string;
}

const webauthnPage = `<!doctype html><meta charset="utf-8"><title>webauthn</title><script>
const bytes = (n) => crypto.getRandomValues(new Uint8Array(n));
const b64 = (buffer) => btoa(String.fromCharCode(...new Uint8Array(buffer)));
window.register = async (rpId) => {
  try {
    const credential = await navigator.credentials.create({ publicKey: {
      challenge: bytes(32), rp: { id: rpId, name: 'Test' },
      user: { id: bytes(16), name: 'alice', displayName: 'Alice' },
      pubKeyCredParams: [{ type: 'public-key', alg: -7 }],
      authenticatorSelection: { userVerification: 'required', residentKey: 'required' } } });
    return { ok: true, id: credential.id };
  } catch (error) { return { ok: false, error: error.name + ': ' + error.message }; }
};
window.authenticate = async (rpId, id) => {
  try {
    const raw = Uint8Array.from(atob(id.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((id.length + 3) % 4)), (c) => c.charCodeAt(0));
    const assertion = await navigator.credentials.get({ publicKey: {
      challenge: bytes(32), rpId, userVerification: 'required', allowCredentials: [{ type: 'public-key', id: raw }] } });
    return { ok: true, id: assertion.id, signature: b64(assertion.response.signature) };
  } catch (error) { return { ok: false, error: error.name + ': ' + error.message }; }
};
</script><h1>WebAuthn probe</h1>`;

before(async () => {
  if (skip) return;
  const qrDataUrl = await QRCode.toDataURL(enrolmentUri, { margin: 4, scale: 6 });
  server = createServer((request, response) => {
    response.setHeader('content-type', 'text/html; charset=utf-8');
    if (request.url === '/peer') response.end(`<!doctype html><title>peer</title><p id="peer">${request.socket.remoteAddress}</p>`);
    else if (request.url === '/qr') response.end(`<!doctype html><title>qr</title><p>Scan this</p><img id="qr" alt="QR code" src="${qrDataUrl}">`);
    else response.end(webauthnPage);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as { port: number }).port;
  browser = await launchBrowser();
}, { timeout: 90_000 });

after(async () => {
  await browser?.close();
  server?.close();
}, { timeout: 30_000 });

test('Chromium renders a page served on loopback, in light and dark colour schemes', { skip, timeout: 60_000 }, async () => {
  for (const colorScheme of ['light', 'dark'] as const) {
    const context = await browser.newContext({ colorScheme });
    const page = await context.newPage();
    await page.goto(`http://localhost:${port}/`);
    assert.equal(await page.locator('h1').textContent(), 'WebAuthn probe');
    assert.equal(await page.evaluate("matchMedia('(prefers-color-scheme: dark)').matches"), colorScheme === 'dark');
    await context.close();
  }
});

test('the virtual authenticator registers a credential on localhost and signs with it in another context; an IP origin is refused', { skip, timeout: 60_000 }, async () => {
  const first = await browser.newContext();
  const page = await first.newPage();
  const authenticator = await addVirtualAuthenticator(page);
  await page.goto(`http://localhost:${port}/`);
  const made = await page.evaluate<Outcome>("register('localhost')");
  assert.ok(made.ok, made.error);
  const credentials = await authenticator.credentials();
  assert.equal(credentials.length, 1);
  assert.equal(credentials[0]!.rpId, 'localhost');
  assert.equal(Buffer.from(credentials[0]!.credentialId, 'base64').toString('base64url'), made.id);

  // The same key in a fresh context (no cookies, no authenticator state): export, import, sign.
  const second = await browser.newContext();
  const other = await second.newPage();
  const imported = await addVirtualAuthenticator(other);
  await imported.addCredential(credentials[0]!);
  await other.goto(`http://localhost:${port}/`);
  const signed = await other.evaluate<Outcome>(`authenticate('localhost', ${JSON.stringify(made.id)})`);
  assert.ok(signed.ok, signed.error);
  assert.equal(signed.id, made.id);
  assert.equal((await imported.credentials())[0]!.signCount, credentials[0]!.signCount + 1, 'the assertion counted a use');

  // WebAuthn needs a domain: the same page on 127.0.0.1 cannot use it (why the 2FA test browses localhost).
  await other.goto(`http://127.0.0.1:${port}/`);
  const refused = await other.evaluate<Outcome>("register('127.0.0.1')");
  assert.equal(refused.ok, false);
  assert.match(refused.error!, /SecurityError/);
  await authenticator.remove();
  await imported.remove();
  await first.close();
  await second.close();
});

test('a context with a source address reaches loopback servers from that address (per-address throttling needs it)', { skip, timeout: 60_000 }, async () => {
  const seen: string[] = [];
  for (const sourceAddress of [undefined, '127.0.0.2', '127.0.0.3']) {
    const context = await browser.newContext(sourceAddress ? { sourceAddress } : {});
    const page = await context.newPage();
    await page.goto(`http://localhost:${port}/peer`);
    seen.push((await page.locator('#peer').textContent()) ?? '');
    await context.close();
  }
  assert.deepEqual(seen, ['127.0.0.1', '127.0.0.2', '127.0.0.3']);
});

/** RFC 6238 with SHA-1, written out with node:crypto: an independent check of the otpauth library's codes. */
function referenceTotp(base32Secret: string, step: number, digits: number): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const char of base32Secret.replace(/=+$/, '')) bits += alphabet.indexOf(char).toString(2).padStart(5, '0');
  const key = Buffer.from(bits.match(/.{8}/g)!.map((byte) => parseInt(byte, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac('sha1', key).update(counter).digest();
  const offset = mac[mac.length - 1]! & 0x0f;
  const value = (mac.readUInt32BE(offset) & 0x7fffffff) % 10 ** digits;
  return value.toString().padStart(digits, '0');
}

test('an enrolment QR code is read back from a screenshot; codes for the current and previous-but-one steps match RFC 6238', { skip, timeout: 60_000 }, async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`http://localhost:${port}/qr`);
  const uri = await readQrCode(page.locator('#qr'));
  assert.equal(uri, enrolmentUri);
  const enrolment = parseTotpUri(uri);
  assert.deepEqual([enrolment.secret, enrolment.digits, enrolment.period, enrolment.algorithm, enrolment.issuer], ['JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP', 6, 30, 'SHA1', 'Matrix']);
  const now = Date.now();
  const step = totpStep(enrolment, now);
  assert.equal(totpCode(enrolment, 0, now), referenceTotp(enrolment.secret, step, 6));
  assert.equal(totpCode(enrolment, -2, now), referenceTotp(enrolment.secret, step - 2, 6));
  await context.close();
});
