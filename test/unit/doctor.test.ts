/**
 * The doctor's report and its certificate check, against real TLS servers on 127.0.0.1 with certificates
 * openssl makes here (2 and 60 days of validity; trusted through extraCa, or not at all).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkCertificates, type DoctorEnvironment } from '../../src/ops/doctor/checks.js';
import { doctorExitCode, errorSentence, fail, formatDoctorReport, pass, warn } from '../../src/ops/doctor/report.js';

let dir: string;
const servers: Server[] = [];

interface Served {
  url: string;
  certificate: string;
}

function makeCertificate(name: string, days: number): { key: string; cert: string } {
  const keyFile = join(dir, `${name}.key`);
  const certFile = join(dir, `${name}.crt`);
  const result = spawnSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', String(days), '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', keyFile, '-out', certFile],
    { encoding: 'utf8', timeout: 30_000 },
  );
  assert.equal(result.status, 0, result.stderr);
  return { key: readFileSync(keyFile, 'utf8'), cert: readFileSync(certFile, 'utf8') };
}

async function serveWith(days: number): Promise<Served> {
  const { key, cert } = makeCertificate(`cert-${days}`, days);
  const server = createServer({ key, cert }, (_request, response) => response.end('ok'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  servers.push(server);
  const address = server.address();
  assert.ok(address && typeof address !== 'string');
  return { url: `https://127.0.0.1:${address.port}/`, certificate: cert };
}

const environment = (publicUrls: string[], extraCa?: string) => ({ publicUrls, ...(extraCa ? { extraCa } : {}) }) as unknown as DoctorEnvironment;

let shortLived: Served;
let longLived: Served;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mxstack-doctor-unit-'));
  shortLived = await serveWith(2);
  longLived = await serveWith(60);
});

after(() => {
  for (const server of servers) server.close();
  rmSync(dir, { recursive: true, force: true });
});

test('a trusted certificate valid for 60 days passes', async () => {
  const [check] = await checkCertificates(environment([longLived.url], longLived.certificate));
  assert.equal(check!.status, 'pass', check!.detail);
  assert.match(check!.detail, /trusted, valid until \d{4}-\d\d-\d\d \((59|60) days\)/);
});

test('a certificate expiring within 14 days is a warning with the renewal fix', async () => {
  const [check] = await checkCertificates(environment([shortLived.url], shortLived.certificate));
  assert.equal(check!.status, 'warn', check!.detail);
  assert.match(check!.detail, /expires in [01] days/);
  assert.match(check!.fix, /renew/);
});

test('an expired certificate fails (seen from a later date)', async () => {
  const [check] = await checkCertificates(environment([longLived.url], longLived.certificate), new Date(Date.now() + 90 * 86_400_000));
  assert.equal(check!.status, 'fail');
  assert.match(check!.detail, /expired on/);
});

test('an untrusted certificate fails and says why', async () => {
  const [check] = await checkCertificates(environment([longLived.url]));
  assert.equal(check!.status, 'fail');
  assert.match(check!.detail, /not trusted: .*SELF_SIGNED|not trusted: .*self.signed/i);
});

test('plain http endpoints pass with a note, one line per origin', async () => {
  const checks = await checkCertificates(environment(['http://127.0.0.1:8008/', 'http://127.0.0.1:8008/element/']));
  assert.equal(checks.length, 1);
  assert.equal(checks[0]!.status, 'pass');
  assert.match(checks[0]!.detail, /plain HTTP/);
});

test('nothing listening: a fail naming the error, not an exception', async () => {
  const [check] = await checkCertificates(environment(['https://127.0.0.1:1/']));
  assert.equal(check!.status, 'fail');
  assert.match(check!.detail, /ECONNREFUSED/);
});

test('exit code 1 only with a fail; the text report shows fixes for what is not a pass', () => {
  const report = { checks: [pass('a', 'fine'), warn('b', 'hm', 'do b')] };
  assert.equal(doctorExitCode(report), 0);
  assert.equal(doctorExitCode({ checks: [...report.checks, fail('c', 'broken', 'do c')] }), 1);
  const text = formatDoctorReport({ checks: [...report.checks, fail('c', 'broken', 'do c')] });
  assert.match(text, /^PASS {2}a +fine$/m);
  assert.match(text, /^WARN {2}b +hm\n\s+fix: do b$/m);
  assert.match(text, /^FAIL {2}c +broken\n\s+fix: do c$/m);
  assert.match(text, /1 passed, 1 warnings, 1 failed/);
});

test('a long error keeps what failed and why, within 400 characters', () => {
  const error = new Error(`kubectl get secret/x failed (exit 1): ${'E1127 noise '.repeat(100)}The connection to the server localhost:8080 was refused`);
  const line = errorSentence(error);
  assert.ok(line.length <= 400, String(line.length));
  assert.match(line, /^kubectl get secret\/x failed/);
  assert.match(line, /localhost:8080 was refused$/);
});
