/**
 * Special-purpose address ranges (the RFC 6890 registries): the addresses that are not the public Internet.
 * One module for every consumer; each list below states how and why it differs from the first.
 */

/**
 * Every IPv4 range that is not the public Internet. NetworkPolicy egress "to the Internet" (0.0.0.0/0)
 * excepts them all, so a pod allowed to federate or fetch previews still cannot reach the cluster, the node
 * or the cloud metadata API.
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

/**
 * The IPv6 Internet is the global unicast block 2000::/3, the only block IANA allocates addresses from
 * (RFC 4291 section 2.4, RFC 3587): loopback, IPv4-mapped, NAT64 (64:ff9b::/96), discard-only (100::/64),
 * unique-local, link-local, site-local and multicast lie outside it and are never allowed.
 *
 * Why NetworkPolicies do not use `::/0` minus the special-purpose blocks: the API server parses an
 * IPv4-mapped block such as `::ffff:0:0/96` as IPv4 (Go's net package does), so under `::/0` it is rejected
 * ("must be a strict subset of cidr") and under `0.0.0.0/0` it would mean every IPv4 address. IPv4-mapped
 * addresses never appear in packets anyway: a socket connected to `::ffff:10.0.0.1` sends IPv4 packets to
 * 10.0.0.1, which the IPv4 block judges. So the IPv6 block only has to leave them out, and 2000::/3 does.
 */
export const publicIpv6Block = '2000::/3';

/** The special-purpose blocks inside 2000::/3 (TEREDO and the other IETF protocol assignments, documentation, 6to4): the NetworkPolicies' IPv6 excepts. */
export const nonPublicIpv6Ranges = ['2001::/23', '2001:db8::/32', '2002::/16', '3fff::/20'] as const;

/**
 * Every special-purpose IPv6 block, inside 2000::/3 and outside it: for consumers that take a deny list
 * rather than an allowed block (coturn). IPv4-mapped (::ffff:0:0/96) belongs here: coturn reads it as IPv6.
 */
export const specialPurposeIpv6Ranges = [
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
 * coturn's denied-peer-ip: every special-purpose range of both families (private, loopback, link-local,
 * documentation, benchmarking, multicast, reserved and translation; Synapse's TURN how-to and the project's
 * matrix.md, section 6). A deny list, unlike the NetworkPolicies' allowed 2000::/3, so it names every block.
 */
export const deniedPeerCidrs: readonly string[] = [...nonPublicIpv4Ranges, ...specialPurposeIpv6Ranges];

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
