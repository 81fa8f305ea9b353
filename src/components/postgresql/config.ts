/** PostgreSQL tuning and initialisation. */
import type { Stack } from '../../stack/model.js';

/** postgresql.conf parameters from values (listen address and port come from the placement). */
export function postgresqlSettings(_stack: Stack): Record<string, string | number> {
  throw new Error('not implemented');
}

export function renderPostgresqlConf(_stack: Stack): string {
  throw new Error('not implemented');
}

/** initdb arguments: UTF8, locale C, plus values' initdbArgs. */
export function postgresqlInitdbArgs(_stack: Stack): string[] {
  throw new Error('not implemented');
}
