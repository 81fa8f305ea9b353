/**
 * The old chart's spellings that differ in shape from ours, rewritten before validation so that old
 * values files keep working unchanged. Keys with the same shape need nothing here: they are the schema.
 */
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
  return values;
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
