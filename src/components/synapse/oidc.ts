/**
 * One values entry of synapse.server.sso.oidc.providers → one Synapse `oidc_providers` entry.
 * Presets fill what a well-known provider needs; whatever the values spell out wins over the preset.
 * Synapse imports authlib for any oidc_providers entry and exits at start without it: Debian's
 * matrix-synapse only Suggests python3-authlib, so a runtime root filesystem must include it.
 */
import { posix } from 'node:path';
import { deepMerge } from '../../values/load.js';
import type { OidcProvider } from '../../values/schema.js';
import { oidcPresets, type SynapseOidcProvider } from '../../values/oidc-presets.js';
import { synapseSecretFiles } from '../../stack/model.js';

/** The file Synapse reads this provider's client secret from. */
export function oidcClientSecretPath(secretsDir: string, idpId: string): string {
  return posix.join(secretsDir, synapseSecretFiles.oidcClientSecret(idpId));
}

/** Drops keys whose value is undefined, at every depth, so they cannot blank out a preset's value. */
function withoutUndefined(tree: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(tree)
      .filter(([, value]) => value !== undefined)
      .map(([key, value]) => [key, isMapping(value) ? withoutUndefined(value) : value]),
  );
}

const isMapping = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === 'object' && !Array.isArray(value);

export function renderOidcProvider(provider: OidcProvider, secretsDir: string): SynapseOidcProvider {
  // preset and clientSecretRef are mxstack's own keys; client_secret is a secret and lives in its own file.
  const { preset, clientSecretRef: _clientSecretRef, client_secret: _clientSecret, ...explicit } = provider;
  const rendered = deepMerge((preset ? oidcPresets[preset] : undefined) ?? {}, withoutUndefined(explicit)) as SynapseOidcProvider;
  // A public client (client_auth_method none) has no secret; Synapse would still insist on reading the file.
  if (rendered.client_auth_method === 'none') return rendered;
  return { ...rendered, client_secret_path: oidcClientSecretPath(secretsDir, provider.idp_id) };
}
