/**
 * The backup manifest: what an archive holds and how to check it. Pure: building, parsing, comparing with
 * what was read, and deciding whether a stack can take the archive.
 *
 * Archive layout (ustar, in this order):
 *   database.dump.NNNNNN   pg_dump -Fc output, cut in chunks (concatenated in order: the dump)
 *   auth-database.dump.NNNNNN  only when the stack has built-in 2FA: pg_dump -Fc of the auth component's
 *                          database (<db>_auth: accounts, password hashes, sealed factors), chunked alike
 *   media.tar.NNNNNN       a tar of the media store, cut in chunks the same way
 *   signing.key            Synapse's signing key
 *   secrets.enc            optional: every stack secret, encrypted (src/ops/archive/secrets-crypto.ts)
 *   manifest.json          this manifest
 *   manifest.json.sha256   SHA-256 of manifest.json (hex), so a damaged manifest is detected too
 */
export const backupFormat = 'mxstack-backup';
export const backupFormatVersion = 1;
export const manifestName = 'manifest.json';
export const manifestChecksumName = 'manifest.json.sha256';

export type PartKind = 'database' | 'auth-database' | 'media' | 'signing-key' | 'secrets';

/** Parts cut in numbered chunks. */
export type ChunkedBase = 'database.dump' | 'auth-database.dump' | 'media.tar';

export interface ManifestPart {
  name: string;
  kind: PartKind;
  size: number;
  sha256: string;
}

export interface BackupManifest {
  format: typeof backupFormat;
  formatVersion: number;
  serverName: string;
  createdAt: string;
  versions: {
    synapse: string;
    /** PostgreSQL server version the dump was taken from (server_version, e.g. "18.1"). */
    postgresql: string;
  };
  /** The database the dump was taken from (informational: restore uses the stack's). */
  database: string;
  /** The auth component's database, when the archive holds its dump (made with built-in 2FA on). */
  authDatabase?: string;
  parts: ManifestPart[];
}

/** The archive does not hold what it claims, or is not an mxstack backup (one sentence, for the user). */
export class ArchiveIntegrityError extends Error {}

/** The archive is intact but this stack cannot take it (server name, versions). */
export class ArchiveMismatchError extends Error {}

const partPatterns: [RegExp, PartKind][] = [
  [/^database\.dump\.\d{6}$/, 'database'],
  [/^auth-database\.dump\.\d{6}$/, 'auth-database'],
  [/^media\.tar\.\d{6}$/, 'media'],
  [/^signing\.key$/, 'signing-key'],
  [/^secrets\.enc$/, 'secrets'],
];

export function partKindOf(name: string): PartKind | undefined {
  return partPatterns.find(([pattern]) => pattern.test(name))?.[1];
}

/** Name of the n-th chunk of a chunked part. */
export const chunkName = (base: ChunkedBase, index: number) => `${base}.${String(index).padStart(6, '0')}`;

const isHex64 = (value: unknown) => typeof value === 'string' && /^[0-9a-f]{64}$/.test(value);

/** Parses and shape-checks manifest.json. */
export function parseManifest(text: string): BackupManifest {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new ArchiveIntegrityError('the archive manifest is not valid JSON.');
  }
  const m = parsed as Partial<BackupManifest>;
  if (typeof m !== 'object' || m === null || m.format !== backupFormat) throw new ArchiveIntegrityError('the file is not an mxstack backup (no mxstack manifest).');
  if (m.formatVersion !== backupFormatVersion) {
    throw new ArchiveMismatchError(`the archive has backup format version ${String(m.formatVersion)}, this mxstack reads version ${backupFormatVersion}.`);
  }
  const problems: string[] = [];
  if (typeof m.serverName !== 'string' || m.serverName === '') problems.push('serverName');
  if (typeof m.createdAt !== 'string' || Number.isNaN(Date.parse(m.createdAt))) problems.push('createdAt');
  if (typeof m.versions?.synapse !== 'string' || typeof m.versions.postgresql !== 'string') problems.push('versions');
  if (typeof m.database !== 'string') problems.push('database');
  if (m.authDatabase !== undefined && typeof m.authDatabase !== 'string') problems.push('authDatabase');
  if (!Array.isArray(m.parts)) problems.push('parts');
  else {
    m.parts.forEach((part, i) => {
      const ok =
        typeof part === 'object' &&
        part !== null &&
        typeof part.name === 'string' &&
        partKindOf(part.name) === part.kind &&
        Number.isSafeInteger(part.size) &&
        part.size >= 0 &&
        isHex64(part.sha256);
      if (!ok) problems.push(`parts[${i}]`);
    });
  }
  if (problems.length > 0) throw new ArchiveIntegrityError(`the archive manifest is malformed (${problems.join(', ')}).`);
  return m as BackupManifest;
}

/**
 * Compares the parts read from the archive with the manifest: same names, same order, same sizes and
 * digests; and the parts a restore needs are there. Returns one sentence per problem (empty: intact).
 */
export function compareWithManifest(manifest: BackupManifest, read: readonly ManifestPart[]): string[] {
  const problems: string[] = [];
  const listed = new Map(manifest.parts.map((p) => [p.name, p]));
  const seen = new Set<string>();
  for (const part of read) {
    seen.add(part.name);
    const expected = listed.get(part.name);
    if (!expected) problems.push(`${part.name} is in the archive but not in its manifest.`);
    else if (expected.size !== part.size) problems.push(`${part.name} has ${part.size} bytes, the manifest says ${expected.size}.`);
    else if (expected.sha256 !== part.sha256) problems.push(`${part.name} does not match its SHA-256 in the manifest (damaged).`);
  }
  for (const name of listed.keys()) if (!seen.has(name)) problems.push(`${name} is missing from the archive.`);
  if (problems.length === 0 && read.map((p) => p.name).join('\n') !== manifest.parts.map((p) => p.name).join('\n')) {
    problems.push('the archive parts are not in the manifest order.');
  }
  const wanted: Record<ChunkedBase, string | undefined> = {
    'database.dump': 'database dump',
    'auth-database.dump': manifest.authDatabase !== undefined ? 'dump of the auth database' : undefined,
    'media.tar': 'media store',
  };
  for (const base of ['database.dump', 'auth-database.dump', 'media.tar'] as const) {
    const chunks = manifest.parts.filter((p) => p.name.startsWith(`${base}.`));
    const what = wanted[base];
    if (chunks.length === 0 && what !== undefined) problems.push(`the archive has no ${what}.`);
    if (chunks.length > 0 && what === undefined) problems.push(`the archive holds ${base} chunks but its manifest names no auth database.`);
    chunks.forEach((chunk, i) => {
      if (chunk.name !== chunkName(base, i)) problems.push(`${base} chunks are not numbered consecutively (${chunk.name}).`);
    });
  }
  if (!manifest.parts.some((p) => p.kind === 'signing-key')) problems.push('the archive has no signing key.');
  return problems;
}

/** Numeric parts of a version like 1.160.0 or 18.1 (Debian suffixes like "18.1 (Debian 18.1-1)" ignored). */
export function versionNumbers(version: string): number[] {
  const match = /^\s*(\d+(?:\.\d+)*)/.exec(version);
  return match ? match[1]!.split('.').map(Number) : [];
}

export function compareVersions(a: string, b: string): number {
  const x = versionNumbers(a);
  const y = versionNumbers(b);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return Math.sign(d);
  }
  return 0;
}

export interface LiveStack {
  serverName: string;
  synapseVersion: string;
  postgresqlVersion: string;
  /** Whether the stack runs the auth component (built-in 2FA). */
  auth?: boolean;
}

/**
 * Whether a stack can take the archive. Synapse migrates a database forward only, so the stack's Synapse
 * must be at least the archive's; pg_restore reads dumps of its own and older majors, so the stack's
 * PostgreSQL major must be at least the archive's. Returns the refusal sentence, or undefined.
 */
export function incompatibility(manifest: BackupManifest, live: LiveStack): string | undefined {
  if (manifest.serverName !== live.serverName) {
    return `the archive is from server ${manifest.serverName}, but this stack is ${live.serverName}: a homeserver's data belongs to its server name.`;
  }
  if (versionNumbers(manifest.versions.synapse).length === 0 || compareVersions(live.synapseVersion, manifest.versions.synapse) < 0) {
    return `the archive was made by Synapse ${manifest.versions.synapse}, newer than this stack's ${live.synapseVersion}: Synapse cannot run on a newer schema.`;
  }
  const archiveMajor = versionNumbers(manifest.versions.postgresql)[0];
  const liveMajor = versionNumbers(live.postgresqlVersion)[0];
  if (archiveMajor === undefined || liveMajor === undefined || liveMajor < archiveMajor) {
    return `the archive's database comes from PostgreSQL ${manifest.versions.postgresql}, newer than this stack's ${live.postgresqlVersion}.`;
  }
  // Users created while 2FA was on have no password in Synapse: without the auth database nobody could sign in.
  if (manifest.authDatabase !== undefined && !live.auth) {
    return 'the archive was made with built-in 2FA on (it holds the auth database: passwords and second factors), but this stack has it off: enable synapse.server.mfa.totp.enabled (or .webauthn.enabled) as when the archive was made, then restore.';
  }
  return undefined;
}

/**
 * What happens to the stack's auth database: replaced by the archive's, kept (the archive was made with
 * 2FA off: accounts not yet at the auth service import their Synapse password at the first sign-in), or
 * nothing to do (2FA off on both).
 */
export function authDatabasePlan(manifest: BackupManifest, stackHasAuth: boolean): 'replace' | 'keep' | 'none' {
  if (manifest.authDatabase !== undefined) return 'replace';
  return stackHasAuth ? 'keep' : 'none';
}
