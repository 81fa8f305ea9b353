/**
 * The scheduled dump on Kubernetes, the `backup` component (rendered when backup.schedule is set; the
 * backup archives of `mxstack backup` are src/ops/archive/): a CronJob running the
 * PostgreSQL image's pg_dump against the database Service, writing `<server>-<UTC time>.dump` (custom
 * format) and its `.sha256` to a claim, keeping the newest backup.retention dumps. A dump is written to a
 * hidden temporary name and renamed only when pg_dump succeeded. The password reaches libpq through a
 * 0600 passfile built in a memory volume: never the command line or the environment.
 * Restoring such a dump: docs/backup.md.
 */
import { CronJob } from 'kubernetes-models/batch/v1/CronJob';
import { PersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import type { IEnvVar } from 'kubernetes-models/v1/EnvVar';
import type { IVolume } from 'kubernetes-models/v1/Volume';
import { synapseSecretFiles, type DatabaseField, type Stack } from '../../stack/model.js';
import type { KubeObject } from '../../kit/objects.js';
import { objectMeta } from '../../kit/meta.js';
import { emptyDirVolume, resourceRequirements } from '../../kit/pod-security.js';
import { configuredJobSpec, serviceAccountObjects, workloadImage, workloadMeta } from '../../kit/workload.js';
import { projectedSecretVolume } from '../../kit/secret-volumes.js';
import { postgresqlUid } from '../postgresql/kubernetes.js';

export const backupComponent = 'backup';
export const backupMountPath = '/backups';
const passwordDir = '/secrets/postgresql';
const scratchDir = '/run/backup';
/** A dump may take long on a big database; a hung one must not block the next schedule forever. */
const jobDeadlineSeconds = 6 * 3600;

export function backupScheduled(stack: Stack): boolean {
  return stack.values.backup.schedule !== undefined && stack.values.backup.schedule !== '';
}

export interface BackupScriptPaths {
  backups: string;
  passwordFile: string;
  scratch: string;
}

const podPaths: BackupScriptPaths = { backups: backupMountPath, passwordFile: `${passwordDir}/password`, scratch: scratchDir };

/** The dump script (POSIX sh, BusyBox-compatible): passfile, dump to a temporary name, checksum, rename, prune. */
export function backupScript(paths: BackupScriptPaths = podPaths): string {
  const { backups, scratch } = paths;
  return [
    'set -eu',
    'umask 077',
    // .pgpass fields escape backslash and colon.
    `password=$(sed -e 's/[\\\\:]/\\\\&/g' "${paths.passwordFile}")`,
    `printf '*:*:*:*:%s\\n' "$password" > "${scratch}/pgpass"`,
    'unset password',
    `export PGPASSFILE="${scratch}/pgpass"`,
    'stamp=$(date -u +%Y%m%dT%H%M%SZ)',
    'name="$MXSTACK_SERVER_NAME-$stamp.dump"',
    `partial="${backups}/.$name.partial"`,
    'trap \'rm -f "$partial"\' EXIT',
    'pg_dump --format=custom --no-password --file="$partial"',
    `(cd "${backups}" && sha256sum ".$name.partial" | sed "s/ \\.$name\\.partial\\$/ $name/" > ".$name.sha256.partial")`,
    `mv "${backups}/.$name.sha256.partial" "${backups}/$name.sha256"`,
    `mv "$partial" "${backups}/$name"`,
    'trap - EXIT',
    `echo "wrote $name ($(wc -c < "${backups}/$name") bytes)"`,
    // Newest first by name (the UTC stamp sorts); everything past the retention count goes.
    `ls -1 "${backups}" | grep -E '\\.dump$' | sort -r | tail -n +$((MXSTACK_RETENTION + 1)) | while read -r old; do`,
    `  rm -f "${backups}/$old" "${backups}/$old.sha256"`,
    '  echo "removed $old (retention $MXSTACK_RETENTION)"',
    'done',
    '',
  ].join('\n');
}

/** A libpq variable: the literal, or the database's Secret key when the field comes from one (not a secret: host, port...). */
function connectionVariable(stack: Stack, variable: string, field: Exclude<DatabaseField, 'ca'>): IEnvVar {
  const ref = stack.database.fromSecret[field];
  return ref ? { name: variable, valueFrom: { secretKeyRef: { name: ref.name, key: ref.key } } } : { name: variable, value: String(stack.database[field]) };
}

const caDir = '/database-ca';

function backupEnvironment(stack: Stack): IEnvVar[] {
  const hasCa = stack.database.fromSecret.ca !== undefined || stack.database.ca !== undefined;
  return [
    connectionVariable(stack, 'PGHOST', 'host'),
    connectionVariable(stack, 'PGPORT', 'port'),
    connectionVariable(stack, 'PGDATABASE', 'name'),
    connectionVariable(stack, 'PGUSER', 'user'),
    connectionVariable(stack, 'PGSSLMODE', 'sslmode'),
    ...(hasCa ? [{ name: 'PGSSLROOTCERT', value: `${caDir}/${synapseSecretFiles.databaseCa}` }] : []),
    { name: 'MXSTACK_SERVER_NAME', value: stack.serverName },
    { name: 'MXSTACK_RETENTION', value: String(stack.values.backup.retention) },
  ];
}

/** The database server's CA: from its Secret, or from Synapse's ConfigMap when written in values. */
function databaseCaVolume(stack: Stack): IVolume | undefined {
  const ref = stack.database.fromSecret.ca;
  if (ref) return projectedSecretVolume('database-ca', [{ ref, file: synapseSecretFiles.databaseCa }]);
  if (stack.database.ca === undefined) return undefined;
  return { name: 'database-ca', configMap: { name: stack.objectName('synapse'), items: [{ key: synapseSecretFiles.databaseCa, path: synapseSecretFiles.databaseCa }] } };
}

export function backupClaimName(stack: Stack): string {
  return stack.objectName(backupComponent);
}

function backupCronJob(stack: Stack): CronJob {
  return new CronJob({
    metadata: workloadMeta(stack, 'backup', backupComponent),
    spec: {
      schedule: stack.values.backup.schedule!,
      timeZone: 'Etc/UTC',
      concurrencyPolicy: 'Forbid',
      successfulJobsHistoryLimit: 3,
      failedJobsHistoryLimit: 3,
      jobTemplate: {
        spec: configuredJobSpec(stack, {
          backoffLimit: 2,
          activeDeadlineSeconds: jobDeadlineSeconds,
          group: 'backup',
          component: backupComponent,
          uid: postgresqlUid,
          containers: [
            {
              name: 'pg-dump',
              ...workloadImage(stack.values, 'backup'),
              command: ['sh', '-c', backupScript()],
              env: backupEnvironment(stack),
              resources: resourceRequirements(stack.values.backup.resources),
              volumeMounts: [
                { name: 'backups', mountPath: backupMountPath },
                { name: 'password', mountPath: passwordDir, readOnly: true },
                { name: 'scratch', mountPath: scratchDir },
                ...(databaseCaVolume(stack) ? [{ name: 'database-ca', mountPath: caDir, readOnly: true }] : []),
              ],
            },
          ],
          volumes: [
            { name: 'backups', persistentVolumeClaim: { claimName: backupClaimName(stack) } },
            projectedSecretVolume('password', [{ ref: stack.secrets.postgresPassword, file: 'password' }]),
            emptyDirVolume('scratch', { memory: true, sizeLimit: '1Mi' }),
            ...(databaseCaVolume(stack) ? [databaseCaVolume(stack)!] : []),
          ],
        }),
      },
    },
  });
}

function backupClaim(stack: Stack): PersistentVolumeClaim {
  const { persistence } = stack.values.backup;
  return new PersistentVolumeClaim({
    metadata: objectMeta(stack, backupComponent, backupClaimName(stack)),
    spec: {
      accessModes: ['ReadWriteOnce'],
      resources: { requests: { storage: persistence.size } },
      ...(persistence.storageClassName ? { storageClassName: persistence.storageClassName } : {}),
    },
  });
}

export function backupObjects(stack: Stack): KubeObject[] {
  if (!backupScheduled(stack)) return [];
  return [...serviceAccountObjects(stack, 'backup', backupComponent), backupCronJob(stack), backupClaim(stack)];
}
