/**
 * Special-purpose address ranges (the RFC 6890 registries): the addresses that are not the public Internet.
 * One module for every consumer; each list below states how and why it differs from the first.
 */

/**
 * Every range that is not the public Internet. NetworkPolicy egress "to the Internet" excepts them all, so
 * a pod allowed to federate or fetch previews still cannot reach the cluster, the node or the cloud
 * metadata API. (::ffff:0:0/96, IPv4-mapped addresses, is issue 17's to revisit.)
 */
export const nonPublicIpv4Ranges = [
  '0.0.0.0/8',
  '10.0.0.0/8',
  '100.64.0.0/10',
  '127.0.0.0/8',
  '169.254.0.0/16',
  '172.16.0.0/12',
  '192.0.0.0/24',
  '192.0.2.0/24',
  '192.88.99.0/24',
  '192.168.0.0/16',
  '198.18.0.0/15',
  '198.51.100.0/24',
  '203.0.113.0/24',
  '224.0.0.0/4',
  '240.0.0.0/4',
] as const;

export const nonPublicIpv6Ranges = [
  '::1/128',
  '::ffff:0:0/96',
  '64:ff9b::/96',
  '100::/64',
  '2001::/23',
  '2001:db8::/32',
  '2002::/16',
  'fc00::/7',
  'fe80::/10',
  'fec0::/10',
  'ff00::/8',
] as const;

/**
 * coturn's denied-peer-ip: every range above (private, loopback, link-local, documentation, benchmarking,
 * multicast, reserved and translation; Synapse's TURN how-to and the project's matrix.md, section 6). It is
 * the full list on purpose: should the NetworkPolicy excepts ever need to leave a block out, coturn must
 * still never relay to it.
 */
export const deniedPeerCidrs: readonly string[] = [...nonPublicIpv4Ranges, ...nonPublicIpv6Ranges];

/**
 * url_preview_ip_range_blacklist's default: Synapse's own list of private, unroutable and special-purpose
 * ranges (DEFAULT_IP_RANGE_BLOCKLIST in synapse/config/server.py of Synapse 1.160, identical to the example of url_preview_ip_range_blacklist in
 * its config schema). Synapse has no default for url_preview_ip_range_blacklist and refuses to start
 * previews without one, so the list is written out in full: without it, anyone in a room could make
 * Synapse fetch internal services (SSRF). Synapse always adds 0.0.0.0 and :: itself.
 */
/*
 * Deliberately Synapse's list to the letter, not the list above: it is what Synapse documents as its
 * default (values may replace it), and Synapse itself adds 0.0.0.0 and :: to it.
 */
export const upstreamUrlPreviewIpRangeBlacklist: readonly string[] = Object.freeze([
  '127.0.0.0/8',
  '10.0.0.0/8',
  '172.16.0.0/12',
  '192.168.0.0/16',
  '100.64.0.0/10',
  '192.0.0.0/24',
  '169.254.0.0/16',
  '192.88.99.0/24',
  '198.18.0.0/15',
  '192.0.2.0/24',
  '198.51.100.0/24',
  '203.0.113.0/24',
  '224.0.0.0/4',
  '::1/128',
  'fe80::/10',
  'fc00::/7',
  '2001:db8::/32',
  'ff00::/8',
  'fec0::/10',
]);
