/** Synapse's native files: homeserver.yaml (no secrets), the secret config, the log config. */
import type { Stack } from '../../stack/model.js';

export interface SynapseSecretValues {
  databasePassword: string;
  smtpPassword?: string;
}

/** homeserver.yaml as an object; every secret is a *_path into placement.paths.synapseSecretsDir. */
export function renderHomeserverConfig(_stack: Stack): Record<string, unknown> {
  throw new Error('not implemented');
}

/** The second config file, holding only the `database` and `email` blocks (mounted from a Secret). */
export function renderSynapseSecretConfig(_stack: Stack, _secrets: SynapseSecretValues): Record<string, unknown> {
  throw new Error('not implemented');
}

/** Python logging dictConfig. */
export function renderSynapseLogConfig(_stack: Stack): Record<string, unknown> {
  throw new Error('not implemented');
}

/** The non-secret files by name: homeserver.yaml and log.yaml, serialised. */
export function synapseConfigFiles(_stack: Stack): Record<string, string> {
  throw new Error('not implemented');
}
