import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPairSync } from 'node:crypto';
import { loadConfig, loadSecrets, parseArguments, secretsDirectory } from '../../src/components/auth/service/config.js';
import { logLine } from '../../src/components/auth/service/log.js';
import { authSecretFiles, type AuthServiceConfig } from '../../src/components/auth/service-config.js';
import { formatSealingKeyring, generateRecoveryCodeKey, generateSealingKey } from '../../src/components/auth/keys.js';

test('arguments: --config required, --secrets-dir optional, nothing else', () => {
  assert.deepEqual(parseArguments(['--config', '/c.json']), { configPath: '/c.json', secretsDir: undefined });
  assert.deepEqual(parseArguments(['--secrets-dir', '/s', '--config', '/c.json']), { configPath: '/c.json', secretsDir: '/s' });
  assert.throws(() => parseArguments([]), /--config is required/);
  assert.throws(() => parseArguments(['--config']), /unexpected argument "--config"/);
  assert.throws(() => parseArguments(['--config', '/c.json', '--password', 'x']), /unexpected argument "--password"/);
});

function withDir<T>(work: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'auth-service-config-'));
  try {
    return work(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const config: AuthServiceConfig = {
  issuer: 'https://matrix.example.org/auth',
  pathPrefix: '/auth',
  listen: { host: '0.0.0.0', port: 8090 },
  adminListen: { host: '0.0.0.0', port: 8091 },
  database: { host: 'db', port: 5432, user: 'synapse', database: 'synapse_auth', synapseDatabase: 'synapse', sslmode: 'disable' },
  serverName: 'example.org',
  client: { clientId: 'synapse', redirectUris: ['https://matrix.example.org/_synapse/client/oidc/callback'] },
  brand: 'Element',
  policy: {
    totp: { enabled: true, issuer: 'Matrix', digits: 6, period: 30, algorithm: 'SHA1' },
    webauthn: { enabled: false, rpId: 'matrix.example.org', rpName: 'Matrix', origin: 'https://matrix.example.org' },
    required: false,
    requiredForAdmins: true,
    rememberSignInMinutes: 0,
    lockout: { maxFailures: 10, durationSeconds: 900, failureWindowSeconds: 900 },
  },
  trustedProxies: [],
  secureCookies: true,
};

test('config: read and checked; the issuer path must be the path prefix; a factor must be on', () => {
  withDir((dir) => {
    const path = join(dir, 'config.json');
    writeFileSync(path, JSON.stringify(config));
    assert.deepEqual(loadConfig(path), config);
    writeFileSync(path, JSON.stringify({ ...config, issuer: 'https://matrix.example.org/auth/' }));
    assert.throws(() => loadConfig(path), /issuer must be an http\(s\) URL without a trailing slash/);
    writeFileSync(path, JSON.stringify({ ...config, pathPrefix: '/login' }));
    assert.throws(() => loadConfig(path), /issuer's path \(\/auth\) must equal pathPrefix \(\/login\)/);
    writeFileSync(path, JSON.stringify({ ...config, policy: { ...config.policy, totp: { ...config.policy.totp, enabled: false } } }));
    assert.throws(() => loadConfig(path), /neither totp nor webauthn/);
    const { brand: _brand, ...withoutBrand } = config;
    writeFileSync(path, JSON.stringify(withoutBrand));
    assert.throws(() => loadConfig(path), /missing field\(s\) brand/);
    writeFileSync(path, '{');
    assert.throws(() => loadConfig(path), /cannot read the auth service config/);
  });
  assert.equal(secretsDirectory({ configPath: 'c', secretsDir: '/arg' }, { ...config, secretsDir: '/cfg' }), '/arg');
  assert.equal(secretsDirectory({ configPath: 'c', secretsDir: undefined }, { ...config, secretsDir: '/cfg' }), '/cfg');
  assert.throws(() => secretsDirectory({ configPath: 'c', secretsDir: undefined }, config), /no secrets directory/);
});

test('secrets: read from their files; a missing or malformed one is named, its content never shown', () => {
  withDir((dir) => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const values: Record<string, string> = {
      [authSecretFiles.databasePassword]: 'db-pass-1234',
      [authSecretFiles.clientSecret]: 'client-secret-5678',
      [authSecretFiles.sealingKeyring]: formatSealingKeyring([generateSealingKey('k2')]),
      [authSecretFiles.recoveryCodeKey]: generateRecoveryCodeKey(),
      [authSecretFiles.cookieKeys]: `${'a'.repeat(32)},${'b'.repeat(40)}`,
      [authSecretFiles.signingJwks]: JSON.stringify({ keys: [{ ...privateKey.export({ format: 'jwk' }), kid: 'k', alg: 'RS256' }] }),
      [authSecretFiles.adminToken]: 'admin-token-9999',
    };
    for (const [name, value] of Object.entries(values)) writeFileSync(join(dir, name), `${value}\n`);
    const secrets = loadSecrets(dir);
    assert.equal(secrets.databasePassword, 'db-pass-1234');
    assert.equal(secrets.sealing.current.id, 'k2');
    assert.deepEqual(secrets.cookieKeys, ['a'.repeat(32), 'b'.repeat(40)]);
    assert.equal(secrets.signingJwks.keys.length, 1);
    writeFileSync(join(dir, authSecretFiles.cookieKeys), 'short-key-1234');
    assert.throws(() => loadSecrets(dir), (error: Error) => /cookie-keys must hold comma-separated keys/.test(error.message) && !error.message.includes('short-key-1234'));
    writeFileSync(join(dir, authSecretFiles.cookieKeys), values[authSecretFiles.cookieKeys]!);
    writeFileSync(join(dir, authSecretFiles.signingJwks), JSON.stringify({ keys: [{ kty: 'RSA', n: 'x', e: 'AQAB' }] }));
    assert.throws(() => loadSecrets(dir), /signing-jwks must be a JWKS with at least one private RSA key/);
    rmSync(join(dir, authSecretFiles.adminToken));
    writeFileSync(join(dir, authSecretFiles.signingJwks), values[authSecretFiles.signingJwks]!);
    assert.throws(() => loadSecrets(dir), /cannot read the secret file .*admin-token \(ENOENT\)/);
  });
});

test('log lines: one JSON object per line; fields named like secrets are redacted', () => {
  const line = logLine('sign-in', { username: 'alice', password: 'hunter2', sessionCookie: 'abc', code: '123456', address: '192.0.2.1' }, 0);
  assert.doesNotMatch(line, /\n/);
  assert.deepEqual(JSON.parse(line), { time: '1970-01-01T00:00:00.000Z', event: 'sign-in', username: 'alice', password: '[redacted]', sessionCookie: '[redacted]', code: '[redacted]', address: '192.0.2.1' });
});
