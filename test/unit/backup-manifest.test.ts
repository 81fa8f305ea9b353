import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ArchiveIntegrityError,
  ArchiveMismatchError,
  backupFormat,
  backupFormatVersion,
  authDatabasePlan,
  compareVersions,
  compareWithManifest,
  incompatibility,
  type ManifestPart,
  parseManifest,
  versionNumbers,
  type BackupManifest,
} from '../../src/ops/archive/manifest.js';
import { decryptSecrets, encryptSecrets, SecretsDecryptError, type SecretsEnvelope } from '../../src/ops/archive/secrets-crypto.js';

const manifest = (edit: Partial<BackupManifest> = {}): BackupManifest => ({
  format: backupFormat,
  formatVersion: backupFormatVersion,
  serverName: 'example.org',
  createdAt: '2026-01-01T00:00:00.000Z',
  versions: { synapse: '1.160.0', postgresql: '18.6 (Debian 18.6-3)' },
  database: 'synapse',
  parts: [{ name: 'signing.key', kind: 'signing-key', size: 3, sha256: 'a'.repeat(64) }],
  ...edit,
});

const live = { serverName: 'example.org', synapseVersion: '1.160.0', postgresqlVersion: '18.6 (Debian 18.6-3)' };

test('versions: Debian suffixes ignored, numeric comparison', () => {
  assert.deepEqual(versionNumbers('18.6 (Debian 18.6-3)'), [18, 6]);
  assert.equal(compareVersions('1.160.0', '1.99.0'), 1);
  assert.equal(compareVersions('1.160', '1.160.0'), 0);
  assert.equal(compareVersions('17.2', '18.0'), -1);
});

test('a stack takes an archive of its own server name and versions not newer than its own', () => {
  assert.equal(incompatibility(manifest(), live), undefined);
  assert.equal(incompatibility(manifest({ versions: { synapse: '1.150.0', postgresql: '17.4' } }), live), undefined);
});

test('another server name, a newer Synapse or a newer PostgreSQL major is refused in one sentence', () => {
  assert.match(incompatibility(manifest({ serverName: 'other.org' }), live)!, /^the archive is from server other\.org, but this stack is example\.org/);
  assert.match(incompatibility(manifest({ versions: { synapse: '1.161.0', postgresql: '18.6' } }), live)!, /Synapse 1\.161\.0, newer than this stack's 1\.160\.0/);
  assert.match(incompatibility(manifest({ versions: { synapse: '1.160.0', postgresql: '19.0' } }), live)!, /PostgreSQL 19\.0, newer/);
  // A newer minor of the same major is fine for pg_restore.
  assert.equal(incompatibility(manifest({ versions: { synapse: '1.160.0', postgresql: '18.9' } }), live), undefined);
});

test('parseManifest refuses other files, other format versions and malformed fields', () => {
  assert.deepEqual(parseManifest(JSON.stringify(manifest())), manifest());
  assert.throws(() => parseManifest('{'), ArchiveIntegrityError);
  assert.throws(() => parseManifest(JSON.stringify({ hello: 1 })), /not an mxstack backup/);
  assert.throws(() => parseManifest(JSON.stringify(manifest({ formatVersion: 2 }))), ArchiveMismatchError);
  assert.throws(() => parseManifest(JSON.stringify(manifest({ serverName: '' }))), /malformed \(serverName\)/);
  const wrongKind = manifest({ parts: [{ name: 'signing.key', kind: 'media', size: 3, sha256: 'a'.repeat(64) }] });
  assert.throws(() => parseManifest(JSON.stringify(wrongKind)), /parts\[0\]/);
});

const fastScrypt = { N: 2 ** 10, r: 8, p: 1 };
const secrets = [
  { name: 'mx-signing-key', key: 'signing.key', value: 'ed25519 a_x AAAA' },
  { name: 'mx-postgresql', key: 'postgres-password', value: 'p@ss w0rd' },
];

test('secrets: encrypted with scrypt + AES-256-GCM, parameters recorded, opened with the passphrase', () => {
  const part = encryptSecrets(secrets, 'a long enough passphrase', fastScrypt);
  const envelope = JSON.parse(part.toString()) as SecretsEnvelope;
  assert.equal(envelope.kdf.name, 'scrypt');
  assert.equal(envelope.kdf.N, 1024);
  assert.equal(envelope.cipher.name, 'aes-256-gcm');
  assert.equal(Buffer.from(envelope.kdf.salt, 'base64').length, 16);
  assert.equal(Buffer.from(envelope.cipher.iv, 'base64').length, 12);
  assert.equal(part.indexOf('p@ss w0rd'), -1, 'no secret in clear');
  assert.deepEqual(decryptSecrets(part, 'a long enough passphrase'), secrets);
});

test('secrets: a wrong passphrase or a flipped ciphertext byte cannot be read', () => {
  const part = encryptSecrets(secrets, 'a long enough passphrase', fastScrypt);
  assert.throws(() => decryptSecrets(part, 'a long enough passphrasE'), SecretsDecryptError);
  const envelope = JSON.parse(part.toString()) as SecretsEnvelope;
  const ciphertext = Buffer.from(envelope.ciphertext, 'base64');
  ciphertext[0]! ^= 0x01;
  const tampered = Buffer.from(JSON.stringify({ ...envelope, ciphertext: ciphertext.toString('base64') }));
  assert.throws(() => decryptSecrets(tampered, 'a long enough passphrase'), /wrong passphrase or damaged/);
  assert.throws(() => decryptSecrets(Buffer.from('{}'), 'x'), /unknown format/);
});

test('secrets: the default parameters are OWASP\'s scrypt minimum', () => {
  const envelope = JSON.parse(encryptSecrets(secrets, 'a long enough passphrase').toString()) as SecretsEnvelope;
  assert.deepEqual([envelope.kdf.N, envelope.kdf.r, envelope.kdf.p, envelope.kdf.keyLength], [2 ** 17, 8, 1, 32]);
});

test('the auth database part: listed when the manifest names an auth database, chunks numbered, required then, refused otherwise', () => {
  const part = (name: string, kind: ManifestPart['kind']): ManifestPart => ({ name, kind, size: 1, sha256: 'b'.repeat(64) });
  const base = [part('database.dump.000000', 'database'), part('media.tar.000000', 'media'), part('signing.key', 'signing-key')];
  const withAuth = [base[0]!, part('auth-database.dump.000000', 'auth-database'), part('auth-database.dump.000001', 'auth-database'), base[1]!, base[2]!];
  assert.deepEqual(compareWithManifest(manifest({ authDatabase: 'synapse_auth', parts: withAuth }), withAuth), []);
  assert.deepEqual(compareWithManifest(manifest({ authDatabase: 'synapse_auth', parts: base }), base), ['the archive has no dump of the auth database.']);
  assert.deepEqual(compareWithManifest(manifest({ parts: withAuth }), withAuth), [
    'the archive holds auth-database.dump chunks but its manifest names no auth database.',
  ]);
  const gap = [base[0]!, part('auth-database.dump.000001', 'auth-database'), base[1]!, base[2]!];
  assert.deepEqual(compareWithManifest(manifest({ authDatabase: 'synapse_auth', parts: gap }), gap), ['auth-database.dump chunks are not numbered consecutively (auth-database.dump.000001).']);
  const parsed = parseManifest(JSON.stringify(manifest({ authDatabase: 'synapse_auth', parts: withAuth })));
  assert.equal(parsed.authDatabase, 'synapse_auth');
  assert.throws(() => parseManifest(JSON.stringify(manifest({ authDatabase: 7 as unknown as string }))), /malformed \(authDatabase\)/);
});

test('2FA on one side only: an archive with the auth database needs a stack with 2FA; one without keeps the stack\'s', () => {
  const authArchive = manifest({ authDatabase: 'synapse_auth' });
  assert.match(incompatibility(authArchive, { ...live, auth: false }) ?? '', /made with built-in 2FA on .*this stack has it off/);
  assert.equal(incompatibility(authArchive, { ...live, auth: true }), undefined);
  assert.equal(incompatibility(manifest(), { ...live, auth: true }), undefined);
  assert.equal(authDatabasePlan(authArchive, true), 'replace');
  assert.equal(authDatabasePlan(manifest(), true), 'keep');
  assert.equal(authDatabasePlan(manifest(), false), 'none');
});
