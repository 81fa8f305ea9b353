/**
 * The old chart's spellings that differ in shape from ours, rewritten before validation so that old
 * values files keep working unchanged. Keys with the same shape need nothing here: they are the schema.
 */
import { workloadGroups } from './workload.js';

type Tree = Record<string, unknown>;

const isTree = (value: unknown): value is Tree => value !== null && typeof value === 'object' && !Array.isArray(value);

function child(tree: Tree, ...path: string[]): Tree | undefined {
  let node: unknown = tree;
  for (const key of path) {
    if (!isTree(node)) return undefined;
    node = node[key];
  }
  return isTree(node) ? node : undefined;
}

/** `tls: true` and Helm-style `paths: [{path: /x, pathType: Prefix}]` on ingress hosts. */
function normalizeIngressHost(host: Tree | undefined): void {
  if (!host) return;
  if (typeof host.tls === 'boolean') host.tls = { enabled: host.tls };
  if (Array.isArray(host.paths)) {
    host.paths = host.paths.map((entry) => (isTree(entry) && typeof entry.path === 'string' ? entry.path : entry));
  }
}

export function normalizeLegacyValues(raw: Tree): Tree {
  const values = structuredClone(raw);
  for (const name of ['synapse', 'element']) normalizeIngressHost(child(values, 'ingress', name));

  // The old chart's `element.config.brandingUrl` was the login logo.
  const elementConfig = child(values, 'element', 'config');
  if (elementConfig && typeof elementConfig.brandingUrl === 'string') {
    const branding = (elementConfig.branding ??= {}) as Tree;
    branding.authHeaderLogoUrl ??= elementConfig.brandingUrl;
    delete elementConfig.brandingUrl;
  }
  normalizeTwoFactor(values);
  normalizeWorkloadSettings(values);
  normalizeStorageClassNames(values);
  return values;
}

/** Claims whose storage class the old chart (postgresql) or an earlier mxstack (backup) spelled `storageClass`. */
const storageClassAliasGroups = [['postgresql', 'persistence'], ['backup', 'persistence']];

/** One spelling for every claim: `storageClassName`, as Kubernetes names the field (the new key wins when both are written). */
function normalizeStorageClassNames(values: Tree): void {
  for (const path of storageClassAliasGroups) {
    const persistence = child(values, ...path);
    if (!persistence || persistence.storageClass === undefined) continue;
    persistence.storageClassName ??= persistence.storageClass;
    delete persistence.storageClass;
  }
}

/** Groups that carry the workload sub-schema and the old chart's `securityContext` spelling. */
const workloadGroupNames = Object.keys(workloadGroups);
/** Release-wide pod settings the old chart kept at the top level. */
const legacyGlobalWorkloadKeys = ['nodeSelector', 'tolerations', 'affinity'];

/**
 * The old chart's top-level nodeSelector/tolerations/affinity are global.workload's (the new key wins when
 * both are written), and a component's `securityContext` is its containerSecurityContext (merged under it).
 */
function normalizeWorkloadSettings(values: Tree): void {
  const legacy = legacyGlobalWorkloadKeys.filter((key) => values[key] !== undefined && values[key] !== null);
  if (legacy.length > 0) {
    const global = (isTree(values.global) ? values.global : (values.global = {})) as Tree;
    const workload = (isTree(global.workload) ? global.workload : (global.workload = {})) as Tree;
    for (const key of legacy) {
      workload[key] ??= values[key];
      delete values[key];
    }
  }
  const synapse = child(values, 'synapse');
  const database = child(values, 'synapse', 'database');
  if (database && typeof database.secret === 'string') {
    // One line points at an operator's database: it is external, and the release PostgreSQL is not needed.
    database.external ??= true;
    const postgresql = (isTree(values.postgresql) ? values.postgresql : (values.postgresql = {})) as Tree;
    postgresql.enabled ??= false;
  }
  if (synapse && isTree(synapse.extraConfig)) {
    synapse.additionalConfig = { ...synapse.extraConfig, ...(isTree(synapse.additionalConfig) ? synapse.additionalConfig : {}) };
    delete synapse.extraConfig;
  }
  for (const name of workloadGroupNames) {
    const group = child(values, name);
    if (!group || !isTree(group.securityContext)) continue;
    const newer = isTree(group.containerSecurityContext) ? group.containerSecurityContext : {};
    group.containerSecurityContext = { ...group.securityContext, ...newer };
    delete group.securityContext;
  }
}

/**
 * The seed README writes `algorithm: "sha1"`; `SHA1` is the same hash. With 2FA on, Synapse's own password
 * login is off unless the values say otherwise (an explicit `true` is then refused as a contradiction).
 */
function normalizeTwoFactor(values: Tree): void {
  const mfa = child(values, 'synapse', 'server', 'mfa');
  const totp = mfa && child(mfa, 'totp');
  if (totp && typeof totp.algorithm === 'string') totp.algorithm = totp.algorithm.toLowerCase();
  const on = (factor: string) => (mfa && child(mfa, factor)?.enabled) === true;
  if (!on('totp') && !on('webauthn')) return;
  const server = child(values, 'synapse', 'server')!;
  const passwordLogin = (server.passwordLogin ??= {}) as Tree;
  if (isTree(passwordLogin)) passwordLogin.enabled ??= false;
}
