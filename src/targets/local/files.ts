/**
 * Writes the stack's generated files into the state directory: the very files the Kubernetes target
 * mounts (same generators), secrets mode 0600 owned by the runtime user that reads them.
 */
import { chmodSync, chownSync, cpSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Stack } from '../../stack/model.js';
import { redisSecretFiles, synapseSecretFiles } from '../../stack/model.js';
import { renderRedisConf, renderRedisPasswordConf } from '../../components/redis/config.js';
import { renderSynapseSecretConfig, synapseConfigFiles, toSynapseYaml } from '../../components/synapse/config.js';
import { routerConfigFiles } from '../../components/router/config.js';
import { renderTurnSecretConf, renderTurnserverConf } from '../../components/coturn/config.js';
import { renderPostgresqlConf } from '../../components/postgresql/config.js';
import { elementConfigFiles } from '../../components/element/config.js';
import { renderElementNginxConfig } from '../../components/element/nginx.js';
import { elementServedLocally } from '../../components/element/local.js';
import { renderAuthConfigFile } from '../../components/auth/config.js';
import { cliAppserviceRegistration } from '../../components/synapse/auth.js';
import { authSecretFileContents } from './auth.js';
import { authConfigPath, localAuthUser } from '../../components/auth/local.js';
import { runtimeUser } from './runtime.js';
import type { RuntimeUser, RuntimeUsers } from '../../kit/local-process.js';
import type { LocalSecretValues } from './secrets.js';
import type { StateLayout } from './state.js';

/** The users of the runtime's own /etc/passwd that run or own something. */
export function runtimeUsers(rootfs: string): RuntimeUsers {
  return {
    nobody: runtimeUser(rootfs, 'nobody'),
    postgres: runtimeUser(rootfs, 'postgres'),
    synapse: runtimeUser(rootfs, 'matrix-synapse'),
    turnserver: runtimeUser(rootfs, 'turnserver'),
    haproxy: runtimeUser(rootfs, 'haproxy'),
    redis: runtimeUser(rootfs, 'redis'),
  };
}

const root: RuntimeUser = { uid: 0, gid: 0, home: '/root' };

function ensureDir(path: string, owner: RuntimeUser, mode: number): void {
  mkdirSync(path, { recursive: true, mode });
  chownSync(path, owner.uid, owner.gid);
  chmodSync(path, mode);
}

/** Written with its final mode and owner before any content lands in a wider-open file. */
function writeOwnedFile(path: string, content: string, owner: RuntimeUser, mode: number): void {
  writeFileSync(path, content, { mode });
  chmodSync(path, mode);
  chownSync(path, owner.uid, owner.gid);
}

/** Public files: readable by every runtime user, written by root. */
const writePublicFile = (path: string, content: string) => writeOwnedFile(path, content, root, 0o644);

/** The Synapse secret files by name (one per *_path of homeserver.yaml, plus the secret config). */
export function synapseSecretFileContents(stack: Stack, secrets: LocalSecretValues): Record<string, string> {
  const files: Record<string, string> = {
    [synapseSecretFiles.secretConfig]: toSynapseYaml(
      renderSynapseSecretConfig(stack, {
        databasePassword: secrets.postgresPassword,
        ...(secrets.smtpPassword !== undefined ? { smtpPassword: secrets.smtpPassword } : {}),
      }),
    ),
    [synapseSecretFiles.registrationSharedSecret]: secrets.registrationSharedSecret,
    [synapseSecretFiles.macaroonSecretKey]: secrets.macaroonSecretKey,
    [synapseSecretFiles.formSecret]: secrets.formSecret,
    [synapseSecretFiles.turnSharedSecret]: secrets.turnSharedSecret,
  };
  for (const [idpId, secret] of Object.entries(secrets.oidcClientSecrets)) files[synapseSecretFiles.oidcClientSecret(idpId)] = secret;
  if (secrets.workers) {
    files[synapseSecretFiles.replicationSecret] = secrets.workers.replicationSecret;
    files[synapseSecretFiles.redisPassword] = secrets.workers.redisPassword;
  }
  if (stack.auth && secrets.auth) {
    // Synapse's client secret at the auth component, and the CLI's application service (its two tokens).
    files[synapseSecretFiles.oidcClientSecret(stack.auth.idpId)] = secrets.auth.clientSecret;
    files[synapseSecretFiles.cliAppserviceRegistration] = cliAppserviceRegistration(stack, secrets.auth.cliAppserviceToken, secrets.auth.cliAppserviceHsToken);
  }
  return files;
}

/** Writes every generated file of the stack. Idempotent: the same stack and secrets give the same files. */
export function writeStackFiles(stack: Stack, secrets: LocalSecretValues, layout: StateLayout, users: RuntimeUsers): void {
  ensureDir(layout.root, root, 0o711);
  ensureDir(layout.logsDir, root, 0o755);
  ensureDir(layout.secretsDir, root, 0o700);

  // PostgreSQL: the data directory is created by initdb (as postgres) on first start.
  ensureDir(layout.postgresqlDir, users.postgres, 0o755);
  writePublicFile(layout.postgresqlConfFile, renderPostgresqlConf(stack));

  // Synapse
  ensureDir(join(layout.root, 'synapse'), root, 0o755);
  ensureDir(layout.synapseConfigDir, root, 0o755);
  for (const [name, content] of Object.entries(synapseConfigFiles(stack))) writePublicFile(join(layout.synapseConfigDir, name), content);
  ensureDir(layout.synapseSecretsDir, users.synapse, 0o700);
  for (const [name, content] of Object.entries(synapseSecretFileContents(stack, secrets))) {
    writeOwnedFile(join(layout.synapseSecretsDir, name), content, users.synapse, 0o600);
  }
  ensureDir(join(layout.root, 'synapse', 'keys'), users.synapse, 0o700);
  writeOwnedFile(layout.signingKey, secrets.signingKey, users.synapse, 0o600);
  ensureDir(layout.mediaStore, users.synapse, 0o750);
  ensureDir(layout.synapseDataDir, users.synapse, 0o750);

  if (secrets.workers) writeRedisFiles(stack, secrets.workers.redisPassword, layout, users);

  // Router
  ensureDir(layout.routerConfigDir, root, 0o755);
  for (const [name, content] of Object.entries(routerConfigFiles(stack))) writePublicFile(join(layout.routerConfigDir, name), content);

  // Element Web (only with a build to serve): our config.json replaces the build's own; nginx serves it.
  if (elementServedLocally(stack)) {
    ensureDir(layout.elementConfigDir, root, 0o755);
    ensureDir(layout.elementRootDir, root, 0o755);
    for (const [name, content] of Object.entries(elementConfigFiles(stack))) writePublicFile(join(layout.elementConfigDir, name), content);
    ensureDir(layout.elementRunDir, users.nobody, 0o700);
    writePublicFile(
      layout.elementNginxConfFile,
      renderElementNginxConfig({ rootDir: layout.elementRootDir, port: stack.placement.ports.element, writableDir: layout.elementRunDir }),
    );
  }

  // The auth service (2FA) runs on the host as its own user: it reads the public config.json and owns its secrets.
  if (stack.auth && secrets.auth) {
    ensureDir(join(layout.root, 'auth'), root, 0o755);
    ensureDir(layout.authConfigDir, root, 0o755);
    writePublicFile(authConfigPath(layout), renderAuthConfigFile(stack));
    ensureDir(layout.authSecretsDir, localAuthUser, 0o700);
    ensureDir(layout.authTmpDir, localAuthUser, 0o700);
    for (const [name, content] of Object.entries(authSecretFileContents(secrets.auth, secrets.postgresPassword))) {
      writeOwnedFile(join(layout.authSecretsDir, name), content, localAuthUser, 0o600);
    }
  }

  // coturn reads one file: the public part followed by the secret lines.
  if (stack.values.coturn.enabled) {
    ensureDir(layout.coturnDir, root, 0o755);
    const publicConf = renderTurnserverConf(stack);
    writePublicFile(layout.coturnConfFile, publicConf);
    const joined = `${publicConf.endsWith('\n') ? publicConf : `${publicConf}\n`}${renderTurnSecretConf(secrets.turnSharedSecret)}`;
    writeOwnedFile(layout.coturnRuntimeConfFile, joined, users.turnserver, 0o600);
  }
}

/** The directory of python/ beside this file: Python modules the runtime lacks (txredisapi, for workers). */
const localPythonModules = fileURLToPath(new URL('./python/', import.meta.url));

/** Redis's config (public), its password include (Redis's user only), its data directory; the Python modules Synapse needs for it. */
function writeRedisFiles(stack: Stack, password: string, layout: StateLayout, users: RuntimeUsers): void {
  ensureDir(join(layout.root, 'redis'), root, 0o755);
  ensureDir(layout.redisConfigDir, root, 0o755);
  writePublicFile(join(layout.redisConfigDir, 'redis.conf'), renderRedisConf(stack));
  ensureDir(layout.redisSecretsDir, users.redis, 0o700);
  writeOwnedFile(join(layout.redisSecretsDir, redisSecretFiles.passwordConf), renderRedisPasswordConf(password), users.redis, 0o600);
  ensureDir(layout.redisDataDir, users.redis, 0o700);
  ensureDir(layout.pythonDir, root, 0o755);
  cpSync(localPythonModules, layout.pythonDir, { recursive: true });
}

/** Written after the admin exists: the only place its password is shown, root-only. */
export function writeAdminCredentials(layout: StateLayout, userId: string, password: string, homeserverUrl: string): void {
  writeOwnedFile(layout.adminCredentialsFile, `${JSON.stringify({ user_id: userId, password, homeserver: homeserverUrl }, null, 2)}\n`, root, 0o600);
}
