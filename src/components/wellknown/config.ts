/** /.well-known/matrix/server and /.well-known/matrix/client. */
import type { Stack } from '../../stack/model.js';

export function renderWellKnownServer(_stack: Stack): Record<string, unknown> | undefined {
  throw new Error('not implemented');
}

export function renderWellKnownClient(_stack: Stack): Record<string, unknown> {
  throw new Error('not implemented');
}
