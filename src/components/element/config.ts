/** Element Web's config.json. */
import type { Stack } from '../../stack/model.js';

export function renderElementConfig(_stack: Stack): Record<string, unknown> {
  throw new Error('not implemented');
}

/** { 'config.json': ... } */
export function elementConfigFiles(_stack: Stack): Record<string, string> {
  throw new Error('not implemented');
}
