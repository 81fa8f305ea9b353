/**
 * The formats of values that hold an address, a range, a host name, a URL, a size or a duration. Each is a
 * JSON Schema `pattern` (every editor's schema support checks patterns; `format` names are optional there)
 * with `patternErrorMessage`, the sentence editors (VS Code, yaml-language-server) and `mxstack` print
 * when the pattern does not match.
 */

const ipv4 = '(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])';
const h16 = '[0-9A-Fa-f]{1,4}';
const ipv6 = `(?:${[
  `(?:${h16}:){7}${h16}`,
  `(?:${h16}:){1,7}:`,
  `(?:${h16}:){1,6}:${h16}`,
  `(?:${h16}:){1,5}(?::${h16}){1,2}`,
  `(?:${h16}:){1,4}(?::${h16}){1,3}`,
  `(?:${h16}:){1,3}(?::${h16}){1,4}`,
  `(?:${h16}:){1,2}(?::${h16}){1,5}`,
  `${h16}:(?::${h16}){1,6}`,
  `:(?:(?::${h16}){1,7}|:)`,
  `::(?:[Ff]{4}:)?${ipv4}`,
].join('|')})`;
const ipAddress = `(?:${ipv4}|${ipv6})`;
const ipv4Prefix = '(?:3[0-2]|[12]?[0-9])';
const ipv6Prefix = '(?:12[0-8]|1[01][0-9]|[1-9]?[0-9])';
const cidr = `(?:${ipv4}/${ipv4Prefix}|${ipv6}/${ipv6Prefix})`;
/** RFC 1123 labels: letters, digits and inner hyphens, at most 63 characters each, 253 in all. */
const hostName = '(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*';
/** A host without the length lookahead, for use inside a longer pattern. */
const hostLabelName = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*';
const httpUrl = 'https?://[^\\s/?#@]+(?:[/?#]\\S*)?';

export interface ValueFormat {
  pattern: string;
  patternErrorMessage: string;
}

const anchored = (body: string, patternErrorMessage: string): ValueFormat => ({ pattern: `^(?:${body})$`, patternErrorMessage });

export const valueFormats = {
  ipAddress: anchored(ipAddress, 'must be an IPv4 or IPv6 address'),
  /** coturn's external-ip: an address, or `public/private` when the server sits behind NAT. */
  externalAddress: anchored(`${ipAddress}(?:/${ipAddress})?`, 'must be an IPv4 or IPv6 address, or public/private addresses'),
  cidr: anchored(cidr, 'must be a CIDR range like 10.0.0.0/8 or fd00::/8'),
  addressOrCidr: anchored(`${ipAddress}|${cidr}`, 'must be an IPv4 or IPv6 address or a CIDR range like 10.0.0.0/8'),
  hostName: anchored(hostName, 'must be a host name like matrix.example.com (no scheme, port or path)'),
  host: anchored(`${hostName}|${ipv6}`, 'must be a host name or an IP address (no scheme, port or path)'),
  /** A Matrix server name: host name, IPv4 or [IPv6], optionally with a port. */
  serverName: anchored(`(?:${hostLabelName}|\\[${ipv6}\\])(?::[0-9]{1,5})?`, 'must be a server name like example.com or example.com:8448'),
  httpUrl: anchored(httpUrl, 'must be an http:// or https:// URL'),
  /** Element resolves a relative URL against its own location. */
  httpUrlOrPath: anchored(`${httpUrl}|[^\\s:]+`, 'must be an http:// or https:// URL, or a path on Element\'s host'),
  mxcUri: anchored('mxc://[^/\\s]+/[^/\\s]+', 'must be an mxc:// URI (mxc://<server>/<media id>)'),
  turnUri: anchored(`turns?:(?:${hostLabelName}|\\[${ipv6}\\])(?::[0-9]{1,5})?(?:\\?transport=(?:udp|tcp))?`, 'must be a TURN URI like turn:turn.example.com:3478?transport=udp'),
  /** Synapse sizes (max_upload_size, ...): bytes or a K/M/G/T suffix. */
  synapseSize: anchored('[0-9]+[KMGT]?', 'must be a number of bytes with an optional K, M, G or T suffix, like 50M'),
  /** Synapse durations: a number with ms, s, m, h, d, w or y (plain: milliseconds). */
  synapseDuration: anchored('[0-9]+(?:ms|s|m|h|d|w|y)?', 'must be a duration like 1h, 30m or 3600s'),
  /** Prometheus durations (scrape intervals): units in decreasing order, like 1m30s. */
  prometheusDuration: anchored('(?:[0-9]+(?:ms|s|m|h|d|w|y))+', 'must be a duration like 30s or 1m'),
  /** Kubernetes resource quantities (storage, memory). */
  kubernetesQuantity: anchored('[0-9]+(?:\\.[0-9]+)?(?:[KMGTPE]i|[mkMGTPE])?', 'must be a Kubernetes quantity like 10Gi, 512Mi or 500m'),
  /** PostgreSQL memory settings: a number with B, kB, MB, GB or TB (plain: the setting's own unit). */
  postgresqlMemory: anchored('[0-9]+(?:B|kB|MB|GB|TB)?', 'must be a PostgreSQL memory size like 256MB or 1GB (units B, kB, MB, GB, TB, case-sensitive)'),
} satisfies Record<string, ValueFormat>;

export type ValueFormatName = keyof typeof valueFormats;
