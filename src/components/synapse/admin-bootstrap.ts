/**
 * The Job that registers the administrator (synapse.server.adminUser) through Synapse's shared-secret
 * registration API. It is idempotent: an existing user counts as success, so it may run on every apply.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Job } from 'kubernetes-models/batch/v1/Job';
import type { IEnvVar } from 'kubernetes-models/v1/EnvVar';
import type { Stack } from '../../stack/model.js';
import type { KubeObject } from '../../kit/objects.js';
import { objectMeta } from '../../kit/meta.js';
import { configChecksum, configChecksumAnnotation, emptyDirVolume, resourceRequirements } from '../../kit/pod-security.js';
import { configuredJobSpec, serviceAccountObjects, workloadImage, workloadMeta } from '../../kit/workload.js';
import { projectedSecretVolume, type SecretFile } from '../../kit/secret-volumes.js';
import { synapseServiceUrl, synapseUid } from './kubernetes.js';

export const adminBootstrapComponent = 'admin-bootstrap';

/** The registration script (Python standard library only), shipped beside this module. */
export const registerAdminScriptPath = fileURLToPath(new URL('./register-admin.py', import.meta.url));
const registerAdminScript = readFileSync(registerAdminScriptPath, 'utf8');

const scriptDir = '/bootstrap';
const scriptName = 'register-admin.py';
const secretsDir = '/secrets';
/** How long the script waits for Synapse, and how long the whole Job may take (retries included). */
const waitForSynapseSeconds = 600;
const jobDeadlineSeconds = 1800;

export function adminBootstrapSecretFiles(stack: Stack): SecretFile[] {
  return [
    { ref: stack.secrets.adminPassword, file: 'admin-password', purpose: 'password of the administrator registered at install' },
    { ref: stack.secrets.registrationSharedSecret, file: 'registration-shared-secret', purpose: 'signs the shared-secret registration request' },
  ];
}

function scriptConfigMapData(): Record<string, string> {
  return { [scriptName]: registerAdminScript };
}

/** Everything the script needs that is not secret; the secrets are file paths only. */
function scriptEnvironment(stack: Stack): IEnvVar[] {
  const admin = stack.values.synapse.server.adminUser;
  const [password, sharedSecret] = adminBootstrapSecretFiles(stack);
  const env: IEnvVar[] = [
    { name: 'MXSTACK_SYNAPSE_URL', value: synapseServiceUrl(stack) },
    { name: 'MXSTACK_ADMIN_USERNAME', value: admin.username },
    { name: 'MXSTACK_ADMIN_IS_ADMIN', value: String(admin.admin) },
    { name: 'MXSTACK_ADMIN_PASSWORD_FILE', value: `${secretsDir}/${password!.file}` },
    { name: 'MXSTACK_REGISTRATION_SECRET_FILE', value: `${secretsDir}/${sharedSecret!.file}` },
    { name: 'MXSTACK_WAIT_SECONDS', value: String(waitForSynapseSeconds) },
  ];
  if (admin.displayName) env.push({ name: 'MXSTACK_ADMIN_DISPLAYNAME', value: admin.displayName });
  if (admin.email) env.push({ name: 'MXSTACK_ADMIN_EMAIL', value: admin.email });
  return env;
}

function adminBootstrapJob(stack: Stack): Job {
  const { adminBootstrap } = stack.values;
  const scriptData = scriptConfigMapData();
  return new Job({
    metadata: workloadMeta(stack, 'adminBootstrap', adminBootstrapComponent),
    spec: configuredJobSpec(stack, {
      backoffLimit: 6,
      activeDeadlineSeconds: jobDeadlineSeconds,
      // Deleted an hour after it ends; the next apply recreates it, and it succeeds at once.
      ttlSecondsAfterFinished: 3600,
      group: 'adminBootstrap',
      component: adminBootstrapComponent,
      uid: synapseUid,
      annotations: { [configChecksumAnnotation]: configChecksum(scriptData) },
      containers: [
        {
          name: 'register-admin',
          ...workloadImage(stack.values, 'adminBootstrap'),
          command: ['python', `${scriptDir}/${scriptName}`],
          env: scriptEnvironment(stack),
          resources: resourceRequirements(adminBootstrap.resources),
          volumeMounts: [
            { name: 'script', mountPath: scriptDir, readOnly: true },
            { name: 'secrets', mountPath: secretsDir, readOnly: true },
            { name: 'tmp', mountPath: '/tmp' },
          ],
        },
      ],
      volumes: [
        { name: 'script', configMap: { name: stack.objectName(adminBootstrapComponent), defaultMode: 0o444 } },
        projectedSecretVolume('secrets', adminBootstrapSecretFiles(stack)),
        emptyDirVolume('tmp'),
      ],
    }),
  });
}

export function adminBootstrapObjects(stack: Stack): KubeObject[] {
  if (!stack.values.synapse.server.adminUser.enabled) return [];
  return [
    new ConfigMap({ metadata: objectMeta(stack, adminBootstrapComponent), data: scriptConfigMapData() }),
    ...serviceAccountObjects(stack, 'adminBootstrap', adminBootstrapComponent),
    adminBootstrapJob(stack),
  ];
}
