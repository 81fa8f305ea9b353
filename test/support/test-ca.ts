/**
 * A certificate authority for tests, made with openssl: it issues server certificates (tls.crt and tls.key
 * in a directory, as a kubernetes.io/tls Secret holds them), and a GET over TLS trusts it alone.
 *
 *   const ca = createTestCa(dir);                                   // dir/ca.crt, dir/ca.key
 *   issueServerCertificate(ca, tlsDir, { dnsName: 'localhost', ipAddress: '127.0.0.1' });
 *   await getOverTls({ host: '127.0.0.1', port, path: '/', servername: 'localhost', ca: ca.pem });
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get as httpsGet } from 'node:https';
import { join } from 'node:path';

export interface TestCa {
  cert: string;
  key: string;
  /** The CA certificate (PEM): what a client trusts. */
  pem: string;
}

function openssl(args: string[]): void {
  const result = spawnSync('openssl', args, { encoding: 'utf8', timeout: 60_000 });
  if (result.status !== 0) throw new Error(`openssl ${args[0]} failed: ${result.stderr}`);
}

const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** A CA valid two days in `dir` (ca.crt, ca.key). */
export function createTestCa(dir: string, commonName = 'mxstack test CA'): TestCa {
  mkdirSync(dir, { recursive: true });
  const cert = join(dir, 'ca.crt');
  const key = join(dir, 'ca.key');
  openssl(['req', '-x509', ...ecKey, '-days', '2', '-subj', `/CN=${commonName}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-keyout', key, '-out', cert]);
  return { cert, key, pem: readFileSync(cert, 'utf8') };
}

/** A server certificate for a name and/or address, signed by the CA: `tlsDir`/tls.crt and tls.key. */
export function issueServerCertificate(ca: TestCa, tlsDir: string, subject: { dnsName?: string; ipAddress?: string }): { cert: string; key: string } {
  mkdirSync(tlsDir, { recursive: true });
  const key = join(tlsDir, 'tls.key');
  const cert = join(tlsDir, 'tls.crt');
  const request = join(tlsDir, 'tls.csr');
  const extensions = join(tlsDir, 'tls.ext');
  const names = [...(subject.dnsName ? [`DNS:${subject.dnsName}`] : []), ...(subject.ipAddress ? [`IP:${subject.ipAddress}`] : [])];
  openssl(['req', '-new', ...ecKey, '-subj', `/CN=${subject.dnsName ?? subject.ipAddress ?? 'server'}`, '-keyout', key, '-out', request]);
  writeFileSync(extensions, `subjectAltName=${names.join(',')}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n`);
  openssl(['x509', '-req', '-in', request, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-days', '2', '-extfile', extensions, '-out', cert]);
  rmSync(request);
  rmSync(extensions);
  return { cert, key };
}

export interface TlsRequest {
  host: string;
  port: number;
  path: string;
  /** The name the certificate is checked for (SNI), when it is not `host`. */
  servername?: string;
  /** The only CA trusted. */
  ca: string;
  timeoutMs?: number;
}

/** GET over TLS trusting `ca` alone (fetch takes no CA): the status and the body as text. */
export function getOverTls(request: TlsRequest): Promise<{ status: number; body: string }> {
  const { host, port, path, servername, ca, timeoutMs = 30_000 } = request;
  return new Promise((resolve, reject) => {
    const outgoing = httpsGet({ host, port, path, ca, timeout: timeoutMs, ...(servername ? { servername } : {}) }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
    });
    outgoing.on('timeout', () => outgoing.destroy(new Error(`GET ${path} at ${host}:${port} timed out`)));
    outgoing.on('error', reject);
  });
}
