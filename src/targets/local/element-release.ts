/**
 * The Element Web build a local stack serves: element.webRoot as given, else the pinned release archive,
 * from element.archive or downloaded from its official release URL. An archive is verified against its
 * SHA-256 (pinned in versions.ts, or element.archiveSha256) before anything is cached or unpacked, and
 * checked entry by entry before it is unpacked into the state directory. Offline, `up` says in one
 * sentence what to do and starts the rest of the stack.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { Values } from '../../values/schema.js';
import { elementWebRelease } from '../../versions.js';
import { isUnpackingDirectory, readReleaseArchive, ReleaseArchiveError, writeRelease, type ReleaseEntry } from './release-archive.js';
import type { StateLayout } from './state.js';

/**
 * For tests only: where the release archive is downloaded from instead of its official URL (a server on
 * 127.0.0.1 serving an archive the test built). Never set it to serve a real stack.
 */
export const elementReleaseUrlVariable = 'MXSTACK_ELEMENT_WEB_RELEASE_URL';

/** A release is far smaller (about 30 MB): anything larger is not downloaded whole into memory. */
const maxDownloadBytes = 512 * 1024 ** 2;
const downloadTimeoutMs = 10 * 60_000;

/** Element Web's bad input, to be reported as a usage error (exit 2) naming the values path. */
export class ElementReleaseError extends Error {}

export const elementArchiveName = (version: string) => `element-v${version}.tar.gz`;

export function officialElementReleaseUrl(version: string): string {
  return `https://github.com/element-hq/element-web/releases/download/v${version}/${elementArchiveName(version)}`;
}

export function elementReleaseUrl(version: string, env: NodeJS.ProcessEnv = process.env): string {
  return env[elementReleaseUrlVariable] || officialElementReleaseUrl(version);
}

export const sha256Hex = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** Where a verified archive is kept: named by its digest, so a changed release is a different file. */
export function cachedElementArchive(cacheDir: string, version: string, sha256: string): string {
  return join(cacheDir, 'element-web', `element-v${version}-${sha256}.tar.gz`);
}

/** What `up` serves: a build directory, a verified release to unpack, or nothing and why. */
export type ElementWebSource =
  | { kind: 'none' }
  | { kind: 'build'; webRoot: string }
  | { kind: 'release'; sha256: string; entries: ReleaseEntry[] }
  | { kind: 'unavailable'; notice: string };

export interface ElementReleaseContext {
  /** mxstack's cache directory (the runtime's): verified archives are kept in its element-web/. */
  cacheDir: string;
  progress: (line: string) => void;
  env?: NodeJS.ProcessEnv;
  /** The digest pinned for the release (versions.ts); a parameter so tests can leave it out. */
  pinnedSha256?: string | undefined;
  version?: string;
}

/** The sentence `up` prints when the release cannot be fetched: what the user does instead. */
export function elementOfflineNotice(archiveName: string, url: string, cause: string): string {
  return `Element Web is not served: ${archiveName} could not be downloaded from ${url} (${cause}); download it on a machine with Internet access and set element.archive to its path (with element.archiveSha256), or set element.webRoot to an Element Web build.`;
}

export function elementUnpinnedNotice(archiveName: string): string {
  return `Element Web is not served: this mxstack pins no SHA-256 for ${archiveName} and downloads nothing it cannot verify; set element.archiveSha256 to the digest published with the release (it is then downloaded and verified), or set element.archive or element.webRoot.`;
}

async function checkedEntries(archive: Buffer, described: string): Promise<ReleaseEntry[]> {
  try {
    return await readReleaseArchive(archive);
  } catch (error) {
    if (error instanceof ReleaseArchiveError) throw new ElementReleaseError(`${described} is not a usable Element Web release archive: ${error.message}.`);
    throw error;
  }
}

/** element.archive: read, verified against its digest, checked; every failure names the file. */
async function archiveFromFile(path: string, sha256: string | undefined): Promise<ElementWebSource> {
  const described = `element.archive: ${path}`;
  if (sha256 === undefined) {
    throw new ElementReleaseError(`${described} cannot be verified: this mxstack pins no SHA-256 for it, so set element.archiveSha256 to the digest published with the release.`);
  }
  let archive: Buffer;
  try {
    if (statSync(path).isDirectory()) throw new ElementReleaseError(`${described} is a directory, not a release archive (a directory holding a build is element.webRoot).`);
    archive = readFileSync(path);
  } catch (error) {
    if (error instanceof ElementReleaseError) throw error;
    throw new ElementReleaseError(`${described} cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); give the path of a downloaded element-vX.Y.Z.tar.gz.`);
  }
  const actual = sha256Hex(archive);
  if (actual !== sha256) throw new ElementReleaseError(`${described} has SHA-256 ${actual}, not ${sha256}: it is not the release expected, and nothing of it is used.`);
  return { kind: 'release', sha256, entries: await checkedEntries(archive, described) };
}

/** The response body, refused beyond maxDownloadBytes. */
async function boundedBody(response: Response): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
    total += chunk.byteLength;
    if (total > maxDownloadBytes) throw new Error(`the answer is larger than ${maxDownloadBytes} bytes`);
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}

function describeFetchFailure(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (error as Error).message;
}

/** Written beside its final name and renamed, so a reader never sees half an archive. */
function cacheArchive(path: string, archive: Buffer): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  const temporary = `${path}.tmp-${process.pid}`;
  writeFileSync(temporary, archive, { mode: 0o644 });
  renameSync(temporary, path);
}

/** The pinned release: from the cache when a verified copy is there, else downloaded, verified, then cached. */
async function downloadedRelease(sha256: string, context: Required<Pick<ElementReleaseContext, 'cacheDir' | 'progress' | 'version'>> & { env: NodeJS.ProcessEnv }): Promise<ElementWebSource> {
  const { cacheDir, progress, version, env } = context;
  const name = elementArchiveName(version);
  const cached = cachedElementArchive(cacheDir, version, sha256);
  if (existsSync(cached)) {
    const archive = readFileSync(cached);
    if (sha256Hex(archive) === sha256) {
      progress(`Element Web ${version}: using the verified archive ${cached}`);
      return { kind: 'release', sha256, entries: await checkedEntries(archive, `the cached archive ${cached}`) };
    }
    rmSync(cached, { force: true });
  }
  const url = elementReleaseUrl(version, env);
  progress(`Element Web ${version}: downloading ${url}`);
  let archive: Buffer;
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(downloadTimeoutMs) });
    if (!response.ok) return { kind: 'unavailable', notice: elementOfflineNotice(name, url, `HTTP ${response.status}`) };
    archive = await boundedBody(response);
  } catch (error) {
    return { kind: 'unavailable', notice: elementOfflineNotice(name, url, describeFetchFailure(error)) };
  }
  const actual = sha256Hex(archive);
  if (actual !== sha256) {
    throw new ElementReleaseError(
      `Element Web: ${url} sent an archive with SHA-256 ${actual}, not the expected ${sha256} (element.archiveSha256 or the pinned digest); it was neither cached nor unpacked.`,
    );
  }
  const entries = await checkedEntries(archive, `the archive downloaded from ${url}`);
  cacheArchive(cached, archive);
  progress(`Element Web ${version}: verified (SHA-256 ${sha256}) and cached at ${cached}`);
  return { kind: 'release', sha256, entries };
}

/**
 * Decides (and fetches) what Element Web build the stack serves. Throws ElementReleaseError for input the
 * user must fix; returns `unavailable` with one sentence when the release cannot be fetched.
 */
export async function elementWebSource(values: Values, context: ElementReleaseContext): Promise<ElementWebSource> {
  const { element } = values;
  if (!element.enabled) return { kind: 'none' };
  if (element.webRoot !== undefined) return { kind: 'build', webRoot: element.webRoot };
  const sha256 = element.archiveSha256 ?? ('pinnedSha256' in context ? context.pinnedSha256 : elementWebRelease.sha256);
  if (element.archive !== undefined) return archiveFromFile(resolve(element.archive), sha256);
  const version = context.version ?? elementWebRelease.version;
  if (sha256 === undefined) return { kind: 'unavailable', notice: elementUnpinnedNotice(elementArchiveName(version)) };
  return downloadedRelease(sha256, { cacheDir: context.cacheDir, progress: context.progress, version, env: context.env ?? process.env });
}

/** The directory `up` serves for this source (a release's is in the state directory, unpacked or about to be). */
export function elementWebRootOf(source: ElementWebSource, layout: StateLayout): string | undefined {
  if (source.kind === 'build') return source.webRoot;
  if (source.kind === 'release') return layout.elementReleaseDir(source.sha256);
  return undefined;
}

/**
 * Removes the release-* entries under <state>/element/ that `unused` selects: releases no longer served,
 * unpacks a crashed run left behind. They are derived data (a verified archive stays in the cache).
 */
function removeReleases(layout: StateLayout, unused: (name: string) => boolean): void {
  if (!existsSync(layout.elementDir)) return;
  for (const name of readdirSync(layout.elementDir)) {
    if (name.startsWith('release-') && unused(name)) rmSync(join(layout.elementDir, name), { recursive: true, force: true });
  }
}

/** Unpacks a verified release into the state directory once; every other release-* there is removed. */
export function installElementRelease(source: Extract<ElementWebSource, { kind: 'release' }>, layout: StateLayout, progress: (line: string) => void): string {
  const directory = layout.elementReleaseDir(source.sha256);
  removeReleases(layout, isUnpackingDirectory);
  if (!existsSync(directory)) {
    mkdirSync(dirname(directory), { recursive: true, mode: 0o755 });
    writeRelease(source.entries, directory);
    progress(`Element Web: unpacked into ${directory}`);
  }
  // Only now: until the new release is in place, the one before is kept.
  removeReleases(layout, (name) => name !== basename(directory));
  return directory;
}

/**
 * Makes <state>/element/ hold the release `up` serves and no other: the release unpacked (once), or, when
 * element.webRoot is served or Element is off, no release at all. An unavailable release (offline) removes
 * nothing: what is unpacked may be the machine's only copy.
 */
export function placeElementRelease(source: ElementWebSource, layout: StateLayout, progress: (line: string) => void): void {
  if (source.kind === 'release') installElementRelease(source, layout, progress);
  else if (source.kind !== 'unavailable') removeReleases(layout, () => true);
}
