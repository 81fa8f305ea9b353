/**
 * The conversion of CIDR blocks into the `first-last` ranges coturn wants (the ranges themselves are in
 * kit/address-ranges.ts): `denied-peer-ip` takes an address or a range, and coturn 4.18
 * aborts at start on a CIDR ("CIDR is not supported").
 */
import { isIPv4, isIPv6 } from 'node:net';

function ipv4ToBigInt(address: string): bigint {
  return address.split('.').reduce((value, octet) => (value << 8n) | BigInt(Number(octet)), 0n);
}

function bigIntToIpv4(value: bigint): string {
  return [24n, 16n, 8n, 0n].map((shift) => String((value >> shift) & 0xffn)).join('.');
}

function ipv6ToBigInt(address: string): bigint {
  const [head = '', tail] = address.split('::');
  const groups = (part: string | undefined) => (part ? part.split(':') : []);
  const missing = 8 - groups(head).length - groups(tail).length;
  const all = tail === undefined ? groups(head) : [...groups(head), ...Array<string>(missing).fill('0'), ...groups(tail)];
  return all.reduce((value, group) => (value << 16n) | BigInt(parseInt(group, 16)), 0n);
}

/** Lower-case, zero groups shortened per group (`fc00:0:0:...`), the longest zero run written `::`. */
function bigIntToIpv6(value: bigint): string {
  const groups = Array.from({ length: 8 }, (_, i) => ((value >> BigInt((7 - i) * 16)) & 0xffffn).toString(16));
  let bestStart = -1;
  let bestLength = 0;
  for (let start = 0; start < 8; start++) {
    let length = 0;
    while (start + length < 8 && groups[start + length] === '0') length++;
    if (length > bestLength && length > 1) [bestStart, bestLength] = [start, length];
  }
  if (bestStart < 0) return groups.join(':');
  return `${groups.slice(0, bestStart).join(':')}::${groups.slice(bestStart + bestLength).join(':')}`;
}

/** `10.0.0.0/8` → `10.0.0.0-10.255.255.255`; a single address (/32, /128) stays one address. */
export function cidrToRange(cidr: string): string {
  const [address = '', prefixText] = cidr.split('/');
  const v4 = isIPv4(address);
  if (!v4 && !isIPv6(address)) throw new Error(`${cidr}: not an IPv4 or IPv6 address block.`);
  const bits = v4 ? 32 : 128;
  const prefix = prefixText === undefined ? bits : Number(prefixText);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > bits) throw new Error(`${cidr}: prefix length must be 0 to ${bits}.`);
  const hostBits = BigInt(bits - prefix);
  const hostMask = (1n << hostBits) - 1n;
  const value = v4 ? ipv4ToBigInt(address) : ipv6ToBigInt(address);
  const first = value & ~hostMask;
  const last = first | hostMask;
  const format = v4 ? bigIntToIpv4 : bigIntToIpv6;
  return first === last ? format(first) : `${format(first)}-${format(last)}`;
}
