// What the request handlers share: config, secrets, database pools, the sign-in context, the provider.
import type pg from 'pg';
import type Provider from 'oidc-provider';
import type { AuthServiceConfig } from '../components/auth/service-config.js';
import type { AuthContext } from './sign-in.js';
import type { ServiceSecrets } from './config.js';
import type { SessionStore } from './sessions.js';

export interface Service {
  readonly config: AuthServiceConfig;
  readonly secrets: ServiceSecrets;
  readonly db: pg.Pool;
  readonly synapseDb: pg.Pool;
  readonly auth: AuthContext;
  readonly provider: Provider;
  readonly sessions: SessionStore;
}
