/**
 * The one place that pins component versions. The Kubernetes target's default images and the local
 * target's runtime (Debian packages) are meant to be the same releases.
 */
export const componentVersions = {
  synapse: '1.160.0',
  elementWeb: '1.12.2',
  postgresql: '18',
  coturn: '4.18.0',
  haproxy: '3.2',
  redis: '8',
  redisExporter: '1.67.0',
  /** mxstack's own identity provider: its image is built from this repository (images/auth/Dockerfile). */
  auth: '0.1.0',
} as const;

/**
 * Element Web's release archive, served by the local target (the Kubernetes target uses its image).
 * `sha256` is the digest the download is verified against before anything is cached or unpacked. None is
 * pinned: this build of mxstack was made without network access, and no packaging file it could consult
 * records the digest of element-v1.12.2.tar.gz, so the download fails closed until one is known (set here
 * from the release's published digest, or per stack with element.archiveSha256).
 */
export const elementWebRelease: { version: string; sha256: string | undefined } = {
  version: componentVersions.elementWeb,
  sha256: undefined,
};

export const defaultImages = {
  synapse: { repository: 'ghcr.io/element-hq/synapse', tag: `v${componentVersions.synapse}` },
  element: { repository: 'vectorim/element-web', tag: `v${componentVersions.elementWeb}` },
  postgresql: { repository: 'postgres', tag: `${componentVersions.postgresql}-alpine` },
  coturn: { repository: 'coturn/coturn', tag: `${componentVersions.coturn}-alpine` },
  router: { repository: 'haproxy', tag: `${componentVersions.haproxy}-alpine` },
  redis: { repository: 'redis', tag: `${componentVersions.redis}-alpine` },
  redisExporter: { repository: 'oliver006/redis_exporter', tag: `v${componentVersions.redisExporter}` },
  auth: { repository: 'mxstack/auth', tag: componentVersions.auth },
} as const;

export type ImageName = keyof typeof defaultImages;
