/**
 * Checks made against the live cluster before anything is applied: a server name that would change
 * (refused: Synapse cannot rename a server), a PostgreSQL major version change (the new server cannot
 * open the old data directory: confirm, after a backup), and a Helm release of the old chart (explained,
 * taken over only when asked). Pure: they read objects already fetched.
 */
import { parse as parseYaml } from 'yaml';
import type { Stack } from '../../stack/model.js';
import type { PlainObject } from './applyset.js';

/** The server name Synapse runs with now, from a live ConfigMap holding homeserver.yaml. */
export function liveServerName(configMaps: readonly PlainObject[]): { serverName: string; configMap: string } | undefined {
  for (const configMap of [...configMaps].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name))) {
    const text = (configMap.data as Record<string, string> | undefined)?.['homeserver.yaml'];
    if (typeof text !== 'string') continue;
    let parsed: unknown;
    try {
      parsed = parseYaml(text);
    } catch {
      continue;
    }
    const serverName = (parsed as { server_name?: unknown } | null)?.server_name;
    if (typeof serverName === 'string' && serverName !== '') return { serverName, configMap: configMap.metadata.name };
  }
  return undefined;
}

/** The live homeserver.yaml's keys that decide which processes write what. */
function liveWriterKeys(configMaps: readonly PlainObject[], configMapName: string): Record<string, unknown> | undefined {
  const text = (configMaps.find((c) => c.metadata.name === configMapName)?.data as Record<string, string> | undefined)?.['homeserver.yaml'];
  if (typeof text !== 'string') return undefined;
  try {
    const parsed = (parseYaml(text) ?? {}) as Record<string, unknown>;
    return { stream_writers: parsed.stream_writers ?? {}, instance_map: Object.keys((parsed.instance_map ?? {}) as object).sort() };
  } catch {
    return undefined;
  }
}

/**
 * What `upgrade` says when the stream writers (or the instance map) change: Synapse needs every process
 * restarted then (events are sharded by room over the persisters). The pods of every Synapse process carry
 * the checksum of the shared files, so applying restarts them all; this sentence says so beforehand.
 */
export function streamWritersChange(configMaps: readonly PlainObject[], configMapName: string, desiredHomeserver: Record<string, unknown>): string | undefined {
  const live = liveWriterKeys(configMaps, configMapName);
  if (!live) return undefined;
  const desired = { stream_writers: desiredHomeserver.stream_writers ?? {}, instance_map: Object.keys((desiredHomeserver.instance_map ?? {}) as object).sort() };
  if (JSON.stringify(live) === JSON.stringify(desired)) return undefined;
  return `the Synapse stream writers change (stream_writers ${JSON.stringify(live.stream_writers)} → ${JSON.stringify(desired.stream_writers)}): every Synapse process restarts with the new configuration, as Synapse requires.`;
}

/** A refusal sentence when the values would rename the server. */
export function serverNameChange(live: { serverName: string; configMap: string } | undefined, desired: string): string | undefined {
  if (!live || live.serverName === desired) return undefined;
  return (
    `refusing to change the server name from ${live.serverName} to ${desired} (read from ConfigMap ${live.configMap}): ` +
    `Synapse cannot rename a server, every user id, room and signing key is bound to it. ` +
    `Keep synapse.server.name: ${live.serverName}, or install a new release in another namespace.`
  );
}

/** The major version in a PostgreSQL image reference (`postgres:16-alpine` → 16), when it shows one. */
export function postgresMajorOfImage(image: string): number | undefined {
  const withoutDigest = image.split('@')[0]!;
  const lastSlash = withoutDigest.lastIndexOf('/');
  const colon = withoutDigest.indexOf(':', lastSlash + 1);
  if (colon < 0) return undefined;
  const match = /^(\d+)(?:[.\-_]|$)/.exec(withoutDigest.slice(colon + 1));
  return match ? Number(match[1]) : undefined;
}

interface Container {
  name?: string;
  image?: string;
}

const containersOf = (object: PlainObject): Container[] =>
  ((object.spec as { template?: { spec?: { containers?: Container[] } } } | undefined)?.template?.spec?.containers ?? []);

const isPostgresContainer = (container: Container) =>
  /postgres/i.test(container.name ?? '') || /(^|\/)postgres(ql)?(:|@|$)/i.test(container.image ?? '');

/** The PostgreSQL image of a live StatefulSet of the release, with its major version. */
export function livePostgres(statefulSets: readonly PlainObject[]): { statefulSet: string; image: string; major: number } | undefined {
  for (const statefulSet of statefulSets) {
    for (const container of containersOf(statefulSet)) {
      if (!isPostgresContainer(container) || !container.image) continue;
      const major = postgresMajorOfImage(container.image);
      if (major !== undefined) return { statefulSet: statefulSet.metadata.name, image: container.image, major };
    }
  }
  return undefined;
}

export function desiredPostgres(stack: Stack): { image: string; major: number } | undefined {
  const { postgresql } = stack.values;
  if (!postgresql.enabled || stack.values.synapse.database.external) return undefined;
  const image = `${postgresql.image.repository}:${postgresql.image.tag}`;
  const major = postgresMajorOfImage(image);
  return major === undefined ? undefined : { image, major };
}

/** A warning when PostgreSQL would change major version (undefined when it would not). */
export function postgresMajorChange(
  live: { statefulSet: string; image: string; major: number } | undefined,
  desired: { image: string; major: number } | undefined,
  release: { release: string; namespace: string },
): string | undefined {
  if (!live || !desired || live.major === desired.major) return undefined;
  return (
    `PostgreSQL would change from major version ${live.major} (${live.image}) to ${desired.major} (${desired.image}). ` +
    `A PostgreSQL ${desired.major} server cannot open a data directory written by ${live.major}: the database pod will not start. ` +
    `Take a backup first (mxstack backup --kubernetes --namespace ${release.namespace} --release ${release.release}), ` +
    `or keep the current version with --set postgresql.image.tag=${live.image.split(':').pop()}.`
  );
}

export interface HelmReleaseSecret {
  name: string;
  release: string;
  status: string;
  version: string;
}

/** Reads the tab-separated listing of Helm release Secrets (name, release, status, version). */
export function parseHelmReleaseListing(text: string): HelmReleaseSecret[] {
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const [name = '', release = '', status = '', version = ''] = line.split('\t');
      return { name, release, status, version };
    })
    .filter((secret) => secret.name.startsWith('sh.helm.release.v1.'));
}

/** The kubectl output format that lists Helm release Secrets without reading their payload. */
export const helmReleaseListingFormat =
  'jsonpath={range .items[*]}{.metadata.name}{"\\t"}{.metadata.labels.name}{"\\t"}{.metadata.labels.status}{"\\t"}{.metadata.labels.version}{"\\n"}{end}';

export interface HelmTakeover {
  releases: string[];
  secrets: HelmReleaseSecret[];
  /** Objects labelled managed-by Helm, as `Kind/name`. */
  helmObjects: string[];
}

/**
 * A Helm release exists while its release Secrets do; objects still labelled managed-by Helm after
 * those are gone are leftovers Helm no longer tracks (listed by the migration guide, not a takeover).
 */
export function helmTakeover(secrets: readonly HelmReleaseSecret[], helmObjects: readonly string[]): HelmTakeover | undefined {
  if (secrets.length === 0) return undefined;
  return {
    releases: [...new Set(secrets.map((s) => s.release).filter((r) => r !== ''))].sort(),
    secrets: [...secrets],
    helmObjects: [...helmObjects].sort(),
  };
}

/** What the user reads when a Helm release is found and --take-over-helm-release was not given. */
export function explainHelmTakeover(found: HelmTakeover, target: { release: string; namespace: string }): string[] {
  const lines = [
    `namespace ${target.namespace} holds a Helm release (${found.releases.join(', ') || 'unnamed'}) with ${found.helmObjects.length} objects managed by Helm.`,
    'mxstack can take it over: it applies its objects with --force-conflicts (taking the fields Helm owns),',
    `then deletes the Helm release Secrets (${found.secrets.length}: sh.helm.release.v1.*) so Helm stops tracking the release.`,
    'Workloads, volumes and the Secrets made by generate-secrets.sh are kept.',
  ];
  const other = found.releases.filter((r) => r !== target.release);
  if (found.releases.length > 0 && other.length === found.releases.length) {
    lines.push(`The Helm release is named ${other.join(', ')} but --release is ${target.release}: use --release ${other[0]} to keep the old object, Secret and volume names.`);
  }
  lines.push('Read docs/migrating-from-helm.md first (the signing key and the database volume), check with `mxstack diff`, then run again with --take-over-helm-release.');
  return lines;
}
