/**
 * Where the local target puts each component: everything on 127.0.0.1, ports chosen once per state
 * directory (or taken from values when given there), every path inside the state directory.
 */
import { compileStack } from '../../stack/compile.js';
import type { Placement, Stack } from '../../stack/model.js';
import type { Values } from '../../values/schema.js';
import { loopback } from '../../kit/local-process.js';
import type { Protocol, PortChooser } from './ports.js';
import type { StateLayout } from './state.js';

/** The first port of the block of the Synapse workers' ports (three per worker). */
export type LocalPorts = Placement['ports'] & { synapseWorkers: number };
export type PortName = keyof Placement['ports'];

/** Workers a local stack can run: its port block holds three ports for each. */
export const localMaxWorkers = 32;
export const localWorkerPortBlock = 3 * localMaxWorkers;


/** The values key of each port a user may set; the others are always chosen by mxstack. */
export const portValuePaths: Partial<Record<PortName, string[]>> = {
  synapseHttp: ['synapse', 'service', 'targetPort'],
  synapseMetrics: ['synapse', 'metrics', 'port'],
  redis: ['redis', 'port'],
  router: ['router', 'port'],
  routerMetrics: ['router', 'metricsPort'],
  turn: ['coturn', 'listeningPort'],
  turns: ['coturn', 'tlsListeningPort'],
  turnMetrics: ['coturn', 'prometheusExporter', 'port'],
  relayMin: ['coturn', 'relayPortRange', 'min'],
  relayMax: ['coturn', 'relayPortRange', 'max'],
  auth: ['auth', 'port'],
  authAdmin: ['auth', 'adminPort'],
};

/** Protocols each port is used with (TURN listens on both). */
export const portProtocols: Record<Exclude<PortName, 'relayMin' | 'relayMax'>, Protocol[]> = {
  synapseHttp: ['tcp'],
  synapseMetrics: ['tcp'],
  synapseReplication: ['tcp'],
  postgresql: ['tcp'],
  redis: ['tcp'],
  element: ['tcp'],
  router: ['tcp'],
  routerMetrics: ['tcp'],
  turn: ['tcp', 'udp'],
  turns: ['tcp', 'udp'],
  turnMetrics: ['tcp'],
  auth: ['tcp'],
  authAdmin: ['tcp'],
};

/** Relay ports per local stack: enough for tests and a few calls, small enough for many stacks side by side. */
export const localRelayPortCount = 64;

type Tree = Record<string, unknown>;

export function valueAt(tree: Tree, path: string[]): unknown {
  let node: unknown = tree;
  for (const key of path) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Tree)[key];
  }
  return node;
}

/** The ports written explicitly in the (raw, not defaulted) values. */
export function explicitPorts(rawValues: Tree): Partial<LocalPorts> {
  const ports: Partial<LocalPorts> = {};
  for (const [name, path] of Object.entries(portValuePaths) as [PortName, string[]][]) {
    const value = valueAt(rawValues, path);
    if (typeof value === 'number') ports[name] = value;
  }
  return ports;
}

/**
 * Ports for this `up`: explicit values first, then the ports persisted by an earlier `up`, then new free
 * ones. The relay range moves as a whole.
 */
export function resolveLocalPorts(explicit: Partial<LocalPorts>, persisted: LocalPorts | undefined, chooser: PortChooser): LocalPorts {
  const single = Object.keys(portProtocols) as (keyof typeof portProtocols)[];
  const ports = {} as LocalPorts;
  for (const name of single) ports[name] = explicit[name] ?? persisted?.[name] ?? chooser.single(portProtocols[name]);
  ports.synapseWorkers = persisted?.synapseWorkers ?? chooser.range(localWorkerPortBlock)[0];
  if (explicit.relayMin !== undefined || explicit.relayMax !== undefined) {
    ports.relayMin = explicit.relayMin ?? persisted?.relayMin ?? 49152;
    ports.relayMax = explicit.relayMax ?? Math.max(ports.relayMin, persisted?.relayMax ?? ports.relayMin + localRelayPortCount - 1);
  } else if (persisted) {
    ports.relayMin = persisted.relayMin;
    ports.relayMax = persisted.relayMax;
  } else {
    [ports.relayMin, ports.relayMax] = chooser.range(localRelayPortCount);
  }
  return ports;
}

function withoutWorkerBlock(ports: LocalPorts): Placement['ports'] {
  const { synapseWorkers: _block, ...single } = ports;
  return single;
}

/** elementWebRoot: the Element Web build served, if any (see targets/local/element-release.ts). */
export function localPlacement(layout: StateLayout, ports: LocalPorts, elementWebRoot?: string): Placement {
  return {
    target: 'local',
    bindAddress: loopback,
    hosts: { synapse: loopback, postgresql: loopback, element: loopback, router: loopback, coturn: loopback, auth: loopback, redis: loopback },
    ports: withoutWorkerBlock(ports),
    paths: {
      synapseConfigDir: layout.synapseConfigDir,
      synapseSecretsDir: layout.synapseSecretsDir,
      signingKey: layout.signingKey,
      mediaStore: layout.mediaStore,
      synapseDataDir: layout.synapseDataDir,
      routerConfigDir: layout.routerConfigDir,
      coturnTlsDir: layout.coturnTlsDir,
      authConfigDir: layout.authConfigDir,
      authSecretsDir: layout.authSecretsDir,
      redisConfigDir: layout.redisConfigDir,
      redisSecretsDir: layout.redisSecretsDir,
      redisDataDir: layout.redisDataDir,
      ...(elementWebRoot === undefined ? {} : { elementWebRoot }),
    },
    synapseWorkers: { kind: 'local', firstPort: ports.synapseWorkers, host: loopback },
    coturnRelayAddress: loopback,
  };
}

/**
 * The local target's one way to compile the stack: these values, placed in this state directory on these
 * ports, serving this Element Web build (by default element.webRoot's: `up` passes the one it provided).
 */
export function compileLocalStack(values: Values, layout: StateLayout, ports: LocalPorts, elementWebRoot: string | undefined = values.element.webRoot): Stack {
  return compileStack(values, localPlacement(layout, ports, elementWebRoot));
}
