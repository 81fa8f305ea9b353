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
