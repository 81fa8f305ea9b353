/** coturn's turnserver.conf. The shared secret is a separate one-line file appended at start. */
import type { Stack } from '../../stack/model.js';

/** turnserver.conf without the secret (safe for a ConfigMap). */
export function renderTurnserverConf(_stack: Stack): string {
  throw new Error('not implemented');
}

/** The secret part: `use-auth-secret` + `static-auth-secret=...`, written 0600 / kept in a Secret. */
export function renderTurnSecretConf(_sharedSecret: string): string {
  throw new Error('not implemented');
}
