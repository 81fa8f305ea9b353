/**
 * coturn's turnserver.conf. The shared secret is a separate file (`renderTurnSecretConf`) kept in a
 * Secret and given to coturn beside this one, so this file can live in a ConfigMap.
 *
 * coturn reads `key` or `key=value` lines and treats only lines STARTING with `#` as comments: a `#`
 * after a value is part of the value. This file therefore carries no comments at all.
 */
import type { Stack } from '../../stack/model.js';
import { cidrToRange } from './peer-ranges.js';
import { deniedPeerCidrs } from '../../kit/address-ranges.js';

/** Options that would put a secret into the ConfigMap, or fight the secret file. */
const secretOptions = new Set(['static-auth-secret', 'use-auth-secret', 'cli-password', 'pkey-pwd', 'secret-key-file']);

const extraConfigLine = /^[A-Za-z0-9][A-Za-z0-9_-]*(=\S(.*\S)?)?$/;

/** The option name of a `key` / `key=value` line (never the value: it may be a secret). */
const optionName = (line: string): string => line.trim().split(/[=\s#]/, 1)[0] ?? '';

/** Why an extraConfig line cannot be written to turnserver.conf, or undefined when it can. */
export function extraConfigLineProblem(line: string): string | undefined {
  if (/[\r\n]/.test(line)) return 'holds a line break; give one option per list entry';
  if (line.trim() === '') return 'is empty';
  if (line.startsWith('#')) return undefined;
  if (line.includes('#')) return 'has a "#" after the option; coturn only treats lines starting with "#" as comments, so it would become part of the value';
  if (!extraConfigLine.test(line)) return 'must be "key" or "key=value" (no spaces around "=", no leading or trailing spaces)';
  if (secretOptions.has(optionName(line))) return `sets ${optionName(line)}, which must not be in turnserver.conf (it is kept in a ConfigMap); the TURN secret comes from synapse.server.turn.sharedSecretRef`;
  return undefined;
}

function checkedExtraConfig(lines: string[]): string[] {
  const problems = lines.flatMap((line, index) => {
    const problem = extraConfigLineProblem(line);
    return problem === undefined ? [] : [`coturn.extraConfig[${index}] (${optionName(line).slice(0, 40) || 'empty'}) ${problem}.`];
  });
  if (problems.length > 0) throw new Error(problems.join('\n'));
  return lines;
}

/**
 * Debian's coturn (the local target's runtime) is built without the Prometheus exporter and reports
 * `prometheus` as "Bad configuration format"; the upstream image used on Kubernetes has it.
 */
export function coturnHasPrometheusExporter(stack: Stack): boolean {
  return stack.placement.target === 'kubernetes';
}

const isWildcardAddress = (address: string): boolean => address === '0.0.0.0' || address === '::';

/**
 * With `listening-ip=0.0.0.0` coturn also relays from 0.0.0.0 and announces that useless address;
 * without a listening-ip it discovers the pod's own addresses and relays from them. So a wildcard
 * bind address is expressed by leaving the line out.
 */
function listenerLines(stack: Stack): string[] {
  const { placement } = stack;
  const lines = [
    ...(isWildcardAddress(placement.bindAddress) ? [] : [`listening-ip=${placement.bindAddress}`]),
    `listening-port=${placement.ports.turn}`,
  ];
  if (!stack.values.coturn.tls.enabled) return [...lines, 'no-tls'];
  // DTLS is off unless `dtls` is given (coturn 4.18 no longer knows `no-dtls`).
  return [
    ...lines,
    `tls-listening-port=${placement.ports.turns}`,
    `cert=${placement.paths.coturnTlsDir}/tls.crt`,
    `pkey=${placement.paths.coturnTlsDir}/tls.key`,
  ];
}

/** The addresses coturn announces and relays from. */
function relayLines(stack: Stack): string[] {
  const { coturn } = stack.values;
  const { placement } = stack;
  return [
    `min-port=${placement.ports.relayMin}`,
    `max-port=${placement.ports.relayMax}`,
    ...(coturn.externalIP === undefined ? [] : [`external-ip=${coturn.externalIP}`]),
    ...(placement.coturnRelayAddress === undefined ? [] : [`relay-ip=${placement.coturnRelayAddress}`]),
  ];
}

function limitLines(stack: Stack): string[] {
  const { userQuota, totalQuota, maxBps, bpsCapacity } = stack.values.coturn;
  const limits: [string, number][] = [
    ['user-quota', userQuota],
    ['total-quota', totalQuota],
    ['max-bps', maxBps],
    ['bps-capacity', bpsCapacity],
  ];
  // 0 is coturn's own "unlimited": leaving the line out says the same thing.
  return limits.filter(([, value]) => value !== 0).map(([key, value]) => `${key}=${value}`);
}

const isLoopback = (address: string): boolean => address.startsWith('127.') || address === '::1';

/**
 * The server's own addresses, allowed as peers so that two clients relayed by this server reach each
 * other although its private address is denied. `external-ip` may be `public/private`: both count.
 * Loopback is left out: coturn ignores it unless `allow-loopback-peers`, which would expose every
 * local service.
 */
export function ownPeerAddresses(stack: Stack): string[] {
  const external = stack.values.coturn.externalIP?.split('/') ?? [];
  const relay = stack.placement.coturnRelayAddress === undefined ? [] : [stack.placement.coturnRelayAddress];
  return [...new Set([...external, ...relay])].filter((address) => address !== '' && !isLoopback(address));
}

function peerLines(stack: Stack): string[] {
  return [
    'no-multicast-peers',
    ...deniedPeerCidrs.map((cidr) => `denied-peer-ip=${cidrToRange(cidr)}`),
    ...ownPeerAddresses(stack).map((address) => `allowed-peer-ip=${address}`),
  ];
}

function metricsLines(stack: Stack): string[] {
  if (!stack.values.coturn.prometheusExporter.enabled || !coturnHasPrometheusExporter(stack)) return [];
  return ['prometheus', `prometheus-port=${stack.placement.ports.turnMetrics}`];
}

/**
 * turnserver.conf without the secret (safe for a ConfigMap). The telnet CLI is off by default since
 * coturn 4.10 and `no-cli` only logs an error that it is deprecated, so it is not written.
 */
export function renderTurnserverConf(stack: Stack): string {
  const lines = [
    ...listenerLines(stack),
    `realm=${stack.turnRealm}`,
    ...relayLines(stack),
    ...limitLines(stack),
    'fingerprint',
    'no-tcp-relay',
    ...peerLines(stack),
    'log-file=stdout',
    'simple-log',
    ...metricsLines(stack),
    ...checkedExtraConfig(stack.values.coturn.extraConfig),
  ];
  return `${lines.join('\n')}\n`;
}

/** The secret part: `use-auth-secret` + `static-auth-secret=...`, written 0600 / kept in a Secret. */
export function renderTurnSecretConf(sharedSecret: string): string {
  if (sharedSecret === '' || /[\s#]/.test(sharedSecret)) {
    throw new Error('The TURN shared secret must be non-empty, without whitespace or "#" (coturn would cut or misread it).');
  }
  return `use-auth-secret\nstatic-auth-secret=${sharedSecret}\n`;
}
