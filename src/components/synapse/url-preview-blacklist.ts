/**
 * Synapse's own list of private, unroutable and special-purpose ranges (DEFAULT_IP_RANGE_BLOCKLIST in
 * synapse/config/server.py of Synapse 1.160, identical to the example of url_preview_ip_range_blacklist in
 * its config schema). Synapse has no default for url_preview_ip_range_blacklist and refuses to start
 * previews without one, so the list is written out in full: without it, anyone in a room could make
 * Synapse fetch internal services (SSRF). Synapse always adds 0.0.0.0 and :: itself.
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
