/**
 * coturn on Kubernetes. turnserver.conf (no secret) sits in a ConfigMap; an init container of the same
 * image appends `use-auth-secret` and `static-auth-secret=` read from the mounted TURN Secret into a
 * memory-backed emptyDir, so the secret never appears in a ConfigMap, an argument or the environment.
 */
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Service } from 'kubernetes-models/v1/Service';
import type { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IServicePort } from 'kubernetes-models/v1/ServicePort';
import type { IVolume } from 'kubernetes-models/v1/Volume';
import type { IVolumeMount } from 'kubernetes-models/v1/VolumeMount';
import type { Stack, ComponentName } from '../../stack/model.js';
import { ValuesError } from '../../values/errors.js';
import type { KubeObject } from '../../kit/objects.js';
import { clusterIpService, objectMeta } from '../../kit/meta.js';
import {
  emptyDirVolume,
  resourceRequirements,
  serviceType,
  restrictedContainerSecurityContext,
  standardProbes,
} from '../../kit/pod-security.js';
import { configuredDeployment, serviceAccountObjects, workloadImage } from '../../kit/workload.js';
import { tlsSecretVolume } from '../../kit/secret-volumes.js';
import { renderTurnserverConf } from './config.js';

/** The component's name in the registry (stack/model.ts's componentNames): labels, object names. */
export const coturnComponent = 'coturn' satisfies ComponentName;

/** The coturn image runs as `nobody`. */
export const coturnUid = 65534;

/**
 * A Service lists relay ports one by one (there are no port ranges). Beyond this many the object and
 * most load balancers give up; use a narrower range, or coturn.hostNetwork.
 */
export const maxRelayServicePorts = 1000;

export const coturnConfigFile = 'turnserver.conf';
const configDir = '/config';
const secretDir = '/turn-secret';
const secretFile = 'shared-secret';
const runtimeDir = '/run/coturn';

export interface TurnConfigAssemblyPaths {
  configFile: string;
  secretFile: string;
  output: string;
}

/**
 * The init container's shell script: the ConfigMap file, then the secret lines. The secret only
 * travels through a file descriptor (`tr` reads it from the mounted file), never through an argument.
 * The result is byte for byte renderTurnserverConf + renderTurnSecretConf.
 */
export function turnConfigAssemblyScript(paths: TurnConfigAssemblyPaths): string {
  return [
    'set -eu',
    'umask 077',
    `{ cat '${paths.configFile}'; printf 'use-auth-secret\\nstatic-auth-secret='; tr -d '\\r\\n' < '${paths.secretFile}'; printf '\\n'; } > '${paths.output}'`,
  ].join('\n');
}

export function coturnMetricsServiceName(stack: Stack): string {
  return `${stack.objectName(coturnComponent)}-metrics`;
}

function relayPortCount(stack: Stack): number {
  return stack.placement.ports.relayMax - stack.placement.ports.relayMin + 1;
}

function checkRelayRange(stack: Stack): void {
  const { coturn } = stack.values;
  if (coturn.hostNetwork || relayPortCount(stack) <= maxRelayServicePorts) return;
  throw new ValuesError([
    `coturn.relayPortRange: ${relayPortCount(stack)} relay ports cannot be published through a Service (at most ${maxRelayServicePorts}, one entry per port). Narrow the range, or set coturn.hostNetwork: true.`,
  ]);
}

function assembleContainer(stack: Stack): IContainer {
  return {
    name: 'assemble-config',
    ...workloadImage(stack.values, 'coturn'),
    command: ['sh', '-c', turnConfigAssemblyScript({ configFile: `${configDir}/${coturnConfigFile}`, secretFile: `${secretDir}/${secretFile}`, output: `${runtimeDir}/${coturnConfigFile}` })],
    resources: resourceRequirements({ requests: { cpu: '10m', memory: '16Mi' }, limits: { cpu: '100m', memory: '32Mi' } }),
    volumeMounts: [
      { name: 'config', mountPath: configDir, readOnly: true },
      { name: 'turn-secret', mountPath: secretDir, readOnly: true },
      { name: 'runtime', mountPath: runtimeDir },
    ],
  };
}

/** A TCP connection to the TURN port: coturn has no HTTP health endpoint of its own. */
function turnPortProbe(stack: Stack) {
  return (timing: object) => ({ tcpSocket: { port: stack.placement.ports.turn }, periodSeconds: 10, timeoutSeconds: 5, failureThreshold: 3, ...timing });
}

function turnserverContainer(stack: Stack): IContainer {
  const { coturn } = stack.values;
  const { ports, paths } = stack.placement;
  const mounts: IVolumeMount[] = [
    { name: 'runtime', mountPath: runtimeDir, readOnly: true },
    { name: 'state', mountPath: '/var/lib/coturn' },
    { name: 'tmp', mountPath: '/var/tmp' },
  ];
  if (coturn.tls.enabled) mounts.push({ name: 'tls', mountPath: paths.coturnTlsDir, readOnly: true });
  return {
    name: 'coturn',
    ...workloadImage(stack.values, 'coturn'),
    command: ['turnserver', '-c', `${runtimeDir}/${coturnConfigFile}`],
    ports: [
      { name: 'turn-udp', containerPort: ports.turn, protocol: 'UDP' as const },
      { name: 'turn-tcp', containerPort: ports.turn, protocol: 'TCP' as const },
      ...(coturn.tls.enabled
        ? [
            { name: 'turns-udp', containerPort: ports.turns, protocol: 'UDP' as const },
            { name: 'turns-tcp', containerPort: ports.turns, protocol: 'TCP' as const },
          ]
        : []),
      ...(coturn.prometheusExporter.enabled ? [{ name: 'metrics', containerPort: ports.turnMetrics, protocol: 'TCP' as const }] : []),
    ],
    resources: resourceRequirements(coturn.resources),
    ...standardProbes(turnPortProbe(stack), 60),
    // The image gives /usr/bin/turnserver the file capability cap_net_bind_service+ep. Under
    // "drop ALL" that capability is outside the bounding set and the kernel refuses to exec the binary
    // (EPERM). Keeping it in the bounding set (the one capability "restricted" allows) lets it start;
    // no_new_privs still keeps the process from gaining it, and the ports need no privilege.
    securityContext: restrictedContainerSecurityContext(['NET_BIND_SERVICE']),
    volumeMounts: mounts,
  };
}

function coturnVolumes(stack: Stack): IVolume[] {
  const { coturn } = stack.values;
  const turnSecret = stack.secrets.turnSharedSecret;
  const volumes: IVolume[] = [
    { name: 'turn-secret', secret: { secretName: turnSecret.name, defaultMode: 0o440, items: [{ key: turnSecret.key, path: secretFile }] } },
    // Memory-backed: the assembled file holds the secret and must never reach a node's disk.
    emptyDirVolume('runtime', { memory: true, sizeLimit: '1Mi' }),
    emptyDirVolume('state'),
    emptyDirVolume('tmp'),
  ];
  if (coturn.tls.enabled && coturn.tls.secretName) {
    volumes.push(tlsSecretVolume('tls', coturn.tls.secretName));
  }
  return volumes;
}

function coturnDeployment(stack: Stack, configFiles: Record<string, string>): Deployment {
  const { coturn } = stack.values;
  return configuredDeployment(stack, {
    group: 'coturn',
    component: coturnComponent,
    uid: coturnUid,
    configFiles,
    replicas: 1,
    // With hostNetwork two pods cannot hold the same node ports during a rolling update.
    strategy: coturn.hostNetwork ? { type: 'Recreate' } : { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
    // Opt-in exception to Pod Security "restricted": relays on the node's own ports and address.
    hostNetwork: coturn.hostNetwork,
    initContainers: [assembleContainer(stack)],
    containers: [turnserverContainer(stack)],
    volumes: coturnVolumes(stack),
  });
}

function externalDnsHostname(stack: Stack): string | undefined {
  const { coturn } = stack.values;
  if (!coturn.service.externalDns.enabled) return undefined;
  return coturn.service.externalDns.hostname ?? coturn.hostname ?? stack.turnRealm;
}

function nodePort(stack: Stack, port: number | undefined): { nodePort?: number } {
  return stack.values.coturn.service.type === 'NodePort' && port !== undefined ? { nodePort: port } : {};
}

function coturnServicePorts(stack: Stack): IServicePort[] {
  const { coturn } = stack.values;
  const { ports } = stack.placement;
  const { nodePorts } = coturn.service;
  const servicePorts: IServicePort[] = [
    { name: 'turn-udp', port: ports.turn, targetPort: ports.turn, protocol: 'UDP', ...nodePort(stack, nodePorts.turnUdp) },
    { name: 'turn-tcp', port: ports.turn, targetPort: ports.turn, protocol: 'TCP', ...nodePort(stack, nodePorts.turnTcp) },
  ];
  if (coturn.tls.enabled) {
    servicePorts.push(
      { name: 'turns-udp', port: ports.turns, targetPort: ports.turns, protocol: 'UDP', ...nodePort(stack, nodePorts.turnsUdp) },
      { name: 'turns-tcp', port: ports.turns, targetPort: ports.turns, protocol: 'TCP', ...nodePort(stack, nodePorts.turnsTcp) },
    );
  }
  if (!coturn.hostNetwork) {
    // coturn tells clients the relay port it allocated: it must be reachable under that same number,
    // so with NodePort each relay port is also its node port (the range must lie in the cluster's
    // service-node-port-range).
    for (let relay = ports.relayMin; relay <= ports.relayMax; relay++) {
      servicePorts.push({ name: `relay-${relay}`, port: relay, targetPort: relay, protocol: 'UDP', ...nodePort(stack, relay) });
    }
  }
  return servicePorts;
}

function coturnService(stack: Stack): Service {
  const { service } = stack.values.coturn;
  const hostname = externalDnsHostname(stack);
  const annotations = { ...service.annotations, ...(hostname ? { 'external-dns.alpha.kubernetes.io/hostname': hostname } : {}) };
  const external = service.type !== 'ClusterIP';
  return new Service({
    metadata: objectMeta(stack, coturnComponent, stack.objectName(coturnComponent), annotations),
    spec: {
      type: serviceType(service.type),
      selector: stack.selectorLabels(coturnComponent),
      ports: coturnServicePorts(stack),
      ...(external ? { externalTrafficPolicy: service.externalTrafficPolicy as 'Local' | 'Cluster' } : {}),
      ...(service.type === 'LoadBalancer' && service.loadBalancerIP ? { loadBalancerIP: service.loadBalancerIP } : {}),
      // Each Service port of a LoadBalancer would otherwise take a node port too: 101 of the cluster's
      // 2768 for the default relay range (docs/networking.md, "coturn's relay ports").
      ...(service.type === 'LoadBalancer' ? { allocateLoadBalancerNodePorts: service.allocateLoadBalancerNodePorts } : {}),
    },
  });
}

/** Metrics stay inside the cluster: a Service of their own, never on the public TURN Service. */
function coturnMetricsService(stack: Stack): Service[] {
  if (!stack.values.coturn.prometheusExporter.enabled) return [];
  return [
    clusterIpService(stack, coturnComponent, { metrics: stack.placement.ports.turnMetrics }, coturnMetricsServiceName(stack)),
  ];
}

export function coturnObjects(stack: Stack): KubeObject[] {
  if (!stack.values.coturn.enabled) return [];
  checkRelayRange(stack);
  const configData = { [coturnConfigFile]: renderTurnserverConf(stack) };
  return [
    new ConfigMap({ metadata: objectMeta(stack, coturnComponent), data: configData }),
    ...serviceAccountObjects(stack, 'coturn', coturnComponent),
    coturnDeployment(stack, configData),
    coturnService(stack),
    ...coturnMetricsService(stack),
  ];
}
