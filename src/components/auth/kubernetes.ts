/**
 * The auth component (the built-in identity provider) on Kubernetes, when 2FA is on: config.json in a
 * ConfigMap (no secrets), the Deployment with its keys and the database password as files, the Service
 * (sign-in port routed by the router, admin port reached only through `kubectl port-forward`), and a
 * disruption budget when it runs more than one replica.
 */
import { posix } from 'node:path';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Service } from 'kubernetes-models/v1/Service';
import type { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { DatabaseField, SecretRef, Stack, ComponentName } from '../../stack/model.js';
import type { KubeObject } from '../../kit/objects.js';
import { clusterIpService, objectMeta } from '../../kit/meta.js';
import { podDisruptionBudgets } from '../../kit/availability.js';
import { emptyDirVolume, httpGetProbe, resourceRequirements, standardProbes } from '../../kit/pod-security.js';
import { configuredDeployment, serviceAccountObjects, workloadImage } from '../../kit/workload.js';
import { projectedSecretVolume, type SecretFile } from '../../kit/secret-volumes.js';
import { authSecretFileOfKey, renderAuthConfigFile } from './config.js';
import { authConfigFile, authDatabaseFieldFiles, authHealthPath, authSecretFiles } from './service-config.js';

/** The component's name in the registry (stack/model.ts's componentNames): labels, object names. */
export const authComponent = 'auth' satisfies ComponentName;

/** The user images/auth/Dockerfile runs as (no name in the image; any unprivileged id would do). */
const authUid = 10001;

/** The files the service reads (authSecretFiles), each from its Secret key. The appservice tokens are Synapse's. */
export function authSecretFileList(stack: Stack): SecretFile[] {
  const auth = stack.secrets.auth;
  if (!auth) return [];
  return [
    { ref: stack.secrets.postgresPassword, file: authSecretFiles.databasePassword, purpose: 'password of the database role (same as Synapse\'s)' },
    ...databaseFieldFiles(stack),
    ...(Object.keys(authSecretFileOfKey) as (keyof typeof authSecretFileOfKey)[]).map((key) => ({ ref: auth[key], ...authSecretFileOfKey[key] })),
  ];
}

/** The database connection fields an external database keeps in Secrets, as the files the service reads them from. */
function databaseFieldFiles(stack: Stack): SecretFile[] {
  const files: Record<DatabaseField, string> = { ...authDatabaseFieldFiles, name: authDatabaseFieldFiles.synapseDatabase };
  return (Object.entries(stack.database.fromSecret) as [DatabaseField, SecretRef][]).map(([field, ref]) => ({ ref, file: files[field], purpose: `database ${field} (from the database's Secret)` }));
}

function authContainer(stack: Stack): IContainer {
  const { auth } = stack.values;
  const { paths, ports } = stack.placement;
  return {
    name: 'auth',
    ...workloadImage(stack.values, 'auth'),
    // The image's ENTRYPOINT is `node bin/mxstack-auth.js`; config.json names the secrets directory.
    args: ['--config', posix.join(paths.authConfigDir, authConfigFile)],
    ports: [
      { name: 'http', containerPort: ports.auth, protocol: 'TCP' as const },
      { name: 'admin', containerPort: ports.authAdmin, protocol: 'TCP' as const },
    ],
    resources: resourceRequirements(auth.resources),
    // /health answers 200 when the database does; the first start creates the database and its schema.
    ...standardProbes((timing) => httpGetProbe(authHealthPath, 'http', timing), 120),
    volumeMounts: [
      { name: 'config', mountPath: paths.authConfigDir, readOnly: true },
      { name: 'secrets', mountPath: paths.authSecretsDir, readOnly: true },
      { name: 'tmp', mountPath: '/tmp' },
    ],
  };
}

function authDeployment(stack: Stack, configFiles: Record<string, string>): Deployment {
  return configuredDeployment(stack, {
    group: 'auth',
    component: authComponent,
    uid: authUid,
    // config.json is read once at start: a changed config needs new pods.
    configFiles,
    replicas: stack.values.auth.replicaCount,
    containers: [authContainer(stack)],
    volumes: [projectedSecretVolume('secrets', authSecretFileList(stack)), emptyDirVolume('tmp')],
  });
}

function authService(stack: Stack): Service {
  const { auth } = stack.values;
  return clusterIpService(stack, authComponent, { http: auth.port, admin: auth.adminPort });
}

export function authObjects(stack: Stack): KubeObject[] {
  if (!stack.auth) return [];
  const configData = { [authConfigFile]: renderAuthConfigFile(stack) };
  return [
    new ConfigMap({ metadata: objectMeta(stack, authComponent), data: configData }),
    ...serviceAccountObjects(stack, 'auth', authComponent),
    authDeployment(stack, configData),
    authService(stack),
    ...podDisruptionBudgets(stack, authComponent, stack.values.auth.replicaCount),
  ];
}
