/**
 * Synapse on Kubernetes: its ConfigMap (homeserver.yaml, log.yaml, the start step), the main-process
 * Deployment with every secret as a file, the media claim, the ServiceAccount and the Service. The start
 * step joins the database and SMTP passwords in at start, in a memory-backed emptyDir.
 */
import { posix } from 'node:path';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { PersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import { Service } from 'kubernetes-models/v1/Service';
import type { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IServicePort } from 'kubernetes-models/v1/ServicePort';
import type { IVolume } from 'kubernetes-models/v1/Volume';
import type { SecretRef, Stack, ComponentName } from '../../stack/model.js';
import { synapseSecretFiles } from '../../stack/model.js';
import type { KubeObject } from '../../kit/objects.js';
import { objectMeta } from '../../kit/meta.js';
import { emptyDirVolume, httpGetProbe, resourceRequirements, serviceType, standardProbes } from '../../kit/pod-security.js';
import { configMapVolume, configuredDeployment, serviceAccountNameOf, serviceAccountObjects, workloadImage } from '../../kit/workload.js';
import { synapseConfigFiles, synapseSendsSmtpPassword } from './config.js';
import { databaseConnectionFields, homeserverConfigPath, synapseContainerEnvironment, synapseDatabaseFieldFiles, synapseStartArgv } from './start.js';
import { synapseWorkerObjects } from './worker-kubernetes.js';
import { workersEnabled } from '../../values/worker-pools.js';
import { renderOidcProvider } from './oidc.js';
import { projectedSecretVolume, secretFileMode, type SecretFile } from '../../kit/secret-volumes.js';

/** The component's name in the registry (stack/model.ts's componentNames): labels, object names. */
export const synapseComponent = 'synapse' satisfies ComponentName;

/** The Synapse image runs as this user (docker/start.py's default UID/GID). */
export const synapseUid = 991;

/**
 * The files of placement.paths.synapseSecretsDir, each from its own Secret key. The list follows the
 * *_path settings homeserver.yaml actually contains, so a file is mounted exactly when Synapse reads it.
 */
export function synapseSecretFileList(stack: Stack): SecretFile[] {
  const { secrets } = stack;
  const server = stack.values.synapse.server;
  const files: SecretFile[] = [
    { ref: secrets.postgresPassword, file: synapseSecretFiles.databasePassword, purpose: 'the database password, joined into homeserver.yaml\'s database block at start' },
    { ref: secrets.registrationSharedSecret, file: synapseSecretFiles.registrationSharedSecret, purpose: 'registration_shared_secret_path' },
    { ref: secrets.macaroonSecretKey, file: synapseSecretFiles.macaroonSecretKey, purpose: 'macaroon_secret_key_path' },
    { ref: secrets.formSecret, file: synapseSecretFiles.formSecret, purpose: 'form_secret_path' },
  ];
  for (const field of databaseConnectionFields) {
    const ref = stack.database.fromSecret[field];
    if (ref) files.push({ ref, file: synapseDatabaseFieldFiles[field].file, purpose: `the database ${field}, joined into homeserver.yaml's database block at start` });
  }
  if (stack.database.fromSecret.ca) {
    files.push({ ref: stack.database.fromSecret.ca, file: synapseSecretFiles.databaseCa, purpose: 'sslrootcert: the database server\'s CA certificate' });
  }
  if (synapseSendsSmtpPassword(stack) && secrets.smtpPassword) {
    files.push({ ref: secrets.smtpPassword, file: synapseSecretFiles.smtpPassword, purpose: 'the SMTP password, joined into homeserver.yaml\'s email block at start' });
  }
  if (server.turn.enabled) {
    files.push({ ref: secrets.turnSharedSecret, file: synapseSecretFiles.turnSharedSecret, purpose: 'turn_shared_secret_path' });
  }
  if (server.sso.enabled && server.sso.oidc.enabled) {
    for (const provider of server.sso.oidc.providers) {
      const rendered = renderOidcProvider(provider, stack.placement.paths.synapseSecretsDir);
      const ref = secrets.oidcClientSecrets[provider.idp_id];
      if (ref && 'client_secret_path' in rendered) {
        files.push({ ref, file: synapseSecretFiles.oidcClientSecret(provider.idp_id), purpose: `client_secret_path of OIDC provider ${provider.idp_id}` });
      }
    }
  }
  if (secrets.workers) {
    files.push(
      { ref: secrets.workers.replicationSecret, file: synapseSecretFiles.replicationSecret, purpose: 'worker_replication_secret_path' },
      { ref: secrets.workers.redisPassword, file: synapseSecretFiles.redisPassword, purpose: 'redis.password_path' },
    );
  }
  if (stack.auth && secrets.auth) {
    files.push(
      { ref: secrets.auth.clientSecret, file: synapseSecretFiles.oidcClientSecret(stack.auth.idpId), purpose: 'client_secret_path of the built-in identity provider (2FA)' },
      { ref: cliAppserviceRegistrationRef(stack), file: synapseSecretFiles.cliAppserviceRegistration, purpose: 'app_service_config_files: the mxstack-cli application service (its tokens)' },
    );
  }
  return files;
}

/**
 * The mxstack-cli application service registration: assembled by `mxstack secrets init` from the tokens in
 * `<release>-auth` into the Secret of assembled files.
 */
export function cliAppserviceRegistrationRef(stack: Stack): SecretRef {
  return stack.secrets.synapseSecretConfig;
}

export function synapseServiceAccountName(stack: Stack): string {
  return serviceAccountNameOf(stack, 'synapse', synapseComponent);
}

export function synapseMediaClaimName(stack: Stack): string {
  return stack.values.synapse.persistence.existingClaim ?? `${stack.objectName(synapseComponent)}-media`;
}

/** The URL other pods reach the Synapse client API at, through its Service. */
export function synapseServiceUrl(stack: Stack): string {
  return `http://${stack.placement.hosts.synapse}:${stack.values.synapse.service.port}`;
}


function mediaVolume(stack: Stack): IVolume {
  const { persistence } = stack.values.synapse;
  if (!persistence.enabled) return emptyDirVolume('data');
  return { name: 'data', persistentVolumeClaim: { claimName: synapseMediaClaimName(stack) } };
}

function mediaClaim(stack: Stack): PersistentVolumeClaim[] {
  const { persistence } = stack.values.synapse;
  if (!persistence.enabled || persistence.existingClaim) return [];
  return [
    new PersistentVolumeClaim({
      metadata: objectMeta(stack, synapseComponent, synapseMediaClaimName(stack)),
      spec: {
        accessModes: [persistence.accessMode as 'ReadWriteOnce' | 'ReadWriteMany' | 'ReadWriteOncePod'],
        resources: { requests: { storage: persistence.size } },
        ...(persistence.storageClassName ? { storageClassName: persistence.storageClassName } : {}),
      },
    }),
  ];
}

/** The signing key Secret under the file name signing_key_path points at. */
function signingKeyVolume(stack: Stack): IVolume {
  const ref = stack.secrets.signingKey;
  return {
    name: 'signing-key',
    secret: { secretName: ref.name, defaultMode: secretFileMode, items: [{ key: ref.key, path: posix.basename(stack.placement.paths.signingKey) }] },
  };
}

function synapseContainer(stack: Stack): IContainer {
  const { synapse } = stack.values;
  const { paths, ports } = stack.placement;
  return {
    name: 'synapse',
    ...workloadImage(stack.values, 'synapse'),
    command: synapseStartArgv(stack, 'python', 'synapse.app.homeserver', [homeserverConfigPath(stack)]),
    ...synapseContainerEnvironment(stack),
    ports: [
      { name: 'http', containerPort: ports.synapseHttp, protocol: 'TCP' as const },
      ...(synapse.metrics.enabled ? [{ name: 'metrics', containerPort: ports.synapseMetrics, protocol: 'TCP' as const }] : []),
      ...(workersEnabled(stack.values) ? [{ name: 'replication', containerPort: ports.synapseReplication, protocol: 'TCP' as const }] : []),
    ],
    resources: resourceRequirements(synapse.resources),
    // The first start runs every database migration: give it ten minutes before liveness takes over.
    ...standardProbes((timing) => httpGetProbe('/health', 'http', timing), 600),
    volumeMounts: [
      { name: 'config', mountPath: paths.synapseConfigDir, readOnly: true },
      { name: 'secrets', mountPath: paths.synapseSecretsDir, readOnly: true },
      { name: 'signing-key', mountPath: posix.dirname(paths.signingKey), readOnly: true },
      { name: 'data', mountPath: paths.synapseDataDir },
      { name: 'runtime', mountPath: paths.synapseRuntimeDir },
      { name: 'tmp', mountPath: '/tmp' },
    ],
  };
}

/**
 * The volumes every Synapse process mounts besides its ConfigMap: its secrets, the signing key, the media
 * store, and the runtime directory its start step writes the joined database and email blocks to.
 */
function sharedVolumes(stack: Stack): IVolume[] {
  return [
    projectedSecretVolume('secrets', synapseSecretFileList(stack)),
    signingKeyVolume(stack),
    mediaVolume(stack),
    // Memory-backed: the joined blocks hold passwords and must never reach a node's disk.
    emptyDirVolume('runtime', { memory: true, sizeLimit: '1Mi' }),
  ];
}

function synapseDeployment(stack: Stack, configFiles: Record<string, string>): Deployment {
  return configuredDeployment(stack, {
    group: 'synapse',
    component: synapseComponent,
    uid: synapseUid,
    configFiles,
    replicas: stack.values.synapse.replicaCount,
    // One main process only, and the media claim is usually ReadWriteOnce: stop the old pod first.
    strategy: { type: 'Recreate' },
    containers: [synapseContainer(stack)],
    volumes: [...sharedVolumes(stack), emptyDirVolume('tmp')],
  });
}

function synapseService(stack: Stack): Service {
  const { synapse } = stack.values;
  const ports: IServicePort[] = [{ name: 'http', port: synapse.service.port, targetPort: 'http', protocol: 'TCP' as const }];
  if (synapse.service.federationPort !== synapse.service.port) {
    // Federation is served by the same listener as the client API.
    ports.push({ name: 'federation', port: synapse.service.federationPort, targetPort: 'http', protocol: 'TCP' as const });
  }
  const stackPort = stack.placement.ports.synapseHttp;
  if (stackPort !== synapse.service.port && stackPort !== synapse.service.federationPort) {
    // The stack's own files (the router's backend) address Synapse's Service on the listener's port.
    ports.push({ name: 'internal', port: stackPort, targetPort: 'http', protocol: 'TCP' as const });
  }
  if (synapse.metrics.enabled) ports.push({ name: 'metrics', port: synapse.metrics.port, targetPort: 'metrics', protocol: 'TCP' as const });
  // The workers reach the main process's replication listener through this Service (instance_map.main).
  if (workersEnabled(stack.values)) ports.push({ name: 'replication', port: stack.placement.ports.synapseReplication, targetPort: 'replication', protocol: 'TCP' as const });
  return new Service({
    metadata: objectMeta(stack, synapseComponent),
    spec: { type: serviceType(synapse.service.type), selector: stack.selectorLabels(synapseComponent), ports },
  });
}

export function synapseObjects(stack: Stack): KubeObject[] {
  const configMapData = synapseConfigFiles(stack);
  return [
    new ConfigMap({ metadata: objectMeta(stack, synapseComponent), data: configMapData }),
    ...serviceAccountObjects(stack, 'synapse', synapseComponent),
    ...mediaClaim(stack),
    synapseDeployment(stack, configMapData),
    synapseService(stack),
    ...synapseWorkerObjects(stack, { uid: synapseUid, serviceAccountName: synapseServiceAccountName(stack), volumes: [configMapVolume(stack, synapseComponent), ...sharedVolumes(stack)], configMapData }),
  ];
}
