/**
 * The release PostgreSQL on Kubernetes: a one-replica StatefulSet of the official alpine image with
 * its data on a claim template, the password as a file, the tuning as `-c key=value` arguments, and a
 * headless plus a regular Service. Nothing is rendered for an external database.
 */
import { Service } from 'kubernetes-models/v1/Service';
import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { Stack, ComponentName } from '../../stack/model.js';
import type { KubeObject } from '../../kit/objects.js';
import { clusterIpService, objectMeta } from '../../kit/meta.js';
import { emptyDirVolume, execProbe, resourceRequirements, standardProbes } from '../../kit/pod-security.js';
import { configuredPodTemplate, serviceAccountObjects, workloadImage, workloadMeta } from '../../kit/workload.js';
import { postgresqlInitdbArgs, postgresqlSettings } from './config.js';
import { cloudnativePgObjects } from './cloudnative-pg.js';

/** The component's name in the registry (stack/model.ts's componentNames): labels, object names. */
export const postgresqlComponent = 'postgresql' satisfies ComponentName;

/** The alpine image's `postgres` user and group. */
export const postgresqlUid = 70;

/**
 * The claim is mounted at the image's volume root and PGDATA keeps the image's default, a directory
 * below it (`/var/lib/postgresql/data` up to 17, `/var/lib/postgresql/<major>/docker` from 18): the
 * claim's root (lost+found) is never the data directory, and the 18+ entrypoint's check against
 * starting on an old major's data stays active.
 */
export const postgresqlDataMountPath = '/var/lib/postgresql';
const passwordDir = '/secrets/postgresql';
const passwordFile = 'password';

export function postgresqlHeadlessServiceName(stack: Stack): string {
  return `${stack.objectName(postgresqlComponent)}-headless`;
}

/** Settings as server arguments; placement-bound ones (listen address, port) included. */
export function postgresqlServerArgs(stack: Stack): string[] {
  const settings = postgresqlSettings(stack);
  return Object.keys(settings)
    .sort()
    .flatMap((key) => ['-c', `${key}=${settings[key]}`]);
}

/** The entrypoint `eval`s POSTGRES_INITDB_ARGS: quote any argument the shell would split or expand. */
export function shellWord(argument: string): string {
  return /^[A-Za-z0-9_=.,:/+@%-]+$/.test(argument) ? argument : `'${argument.replace(/'/g, `'\\''`)}'`;
}

function readinessCommand(stack: Stack): string[] {
  const { database, placement } = stack;
  return ['pg_isready', '--host=127.0.0.1', `--port=${placement.ports.postgresql}`, `--username=${database.user}`, `--dbname=${database.name}`];
}

function postgresqlContainer(stack: Stack): IContainer {
  const { postgresql } = stack.values;
  const port = stack.placement.ports.postgresql;
  return {
    name: 'postgresql',
    ...workloadImage(stack.values, 'postgresql'),
    args: ['postgres', ...postgresqlServerArgs(stack)],
    env: [
      { name: 'POSTGRES_USER', value: stack.database.user },
      { name: 'POSTGRES_DB', value: stack.database.name },
      // The entrypoint reads the password from this file (never from the environment).
      { name: 'POSTGRES_PASSWORD_FILE', value: `${passwordDir}/${passwordFile}` },
      { name: 'POSTGRES_INITDB_ARGS', value: postgresqlInitdbArgs(stack).map(shellWord).join(' ') },
    ],
    ports: [{ name: 'postgresql', containerPort: port, protocol: 'TCP' as const }],
    resources: resourceRequirements(postgresql.resources),
    // initdb on a slow volume can take a few minutes on the first start.
    ...standardProbes((timing) => execProbe(readinessCommand(stack), timing), 300),
    // SIGTERM is PostgreSQL's "smart" shutdown, which waits for Synapse's pooled connections until the
    // kubelet kills it; a fast shutdown first avoids crash recovery on the next start.
    lifecycle: { preStop: { exec: { command: ['pg_ctl', 'stop', '--mode=fast', '--wait', '--timeout=50'] } } },
    volumeMounts: [
      { name: 'data', mountPath: postgresqlDataMountPath },
      { name: 'password', mountPath: passwordDir, readOnly: true },
      { name: 'run', mountPath: '/var/run/postgresql' },
      { name: 'tmp', mountPath: '/tmp' },
    ],
  };
}

function postgresqlStatefulSet(stack: Stack): StatefulSet {
  const { postgresql } = stack.values;
  const password = stack.secrets.postgresPassword;
  return new StatefulSet({
    metadata: workloadMeta(stack, 'postgresql', postgresqlComponent),
    spec: {
      replicas: 1,
      serviceName: postgresqlHeadlessServiceName(stack),
      selector: { matchLabels: stack.selectorLabels(postgresqlComponent) },
      template: configuredPodTemplate(stack, {
        group: 'postgresql',
        component: postgresqlComponent,
        uid: postgresqlUid,
        terminationGracePeriodSeconds: 60,
        containers: [postgresqlContainer(stack)],
        volumes: [
          { name: 'password', secret: { secretName: password.name, defaultMode: 0o440, items: [{ key: password.key, path: passwordFile }] } },
          emptyDirVolume('run'),
          emptyDirVolume('tmp'),
        ],
      }),
      volumeClaimTemplates: [
        {
          metadata: { name: 'data', labels: stack.labels(postgresqlComponent) },
          spec: {
            accessModes: ['ReadWriteOnce'],
            resources: { requests: { storage: postgresql.persistence.size } },
            ...(postgresql.persistence.storageClassName ? { storageClassName: postgresql.persistence.storageClassName } : {}),
          },
        },
      ],
    },
  });
}

function postgresqlServices(stack: Stack): Service[] {
  const port = stack.placement.ports.postgresql;
  const ports = [{ name: 'postgresql', port, targetPort: 'postgresql', protocol: 'TCP' as const }];
  const selector = stack.selectorLabels(postgresqlComponent);
  return [
    clusterIpService(stack, postgresqlComponent, { postgresql: port }),
    new Service({
      metadata: objectMeta(stack, postgresqlComponent, postgresqlHeadlessServiceName(stack)),
      spec: { clusterIP: 'None', publishNotReadyAddresses: true, selector, ports },
    }),
  ];
}

export function postgresqlObjects(stack: Stack): KubeObject[] {
  if (!stack.values.postgresql.enabled || stack.database.provider === 'external') return [];
  if (stack.database.provider === 'cloudnative-pg') return cloudnativePgObjects(stack);
  return [...serviceAccountObjects(stack, 'postgresql', postgresqlComponent), postgresqlStatefulSet(stack), ...postgresqlServices(stack)];
}
