/**
 * The workload objects (Synapse, the admin bootstrap Job, Element, PostgreSQL, coturn, the router, the
 * Secrets written from values), rendered through the real render step (schema validation included)
 * over the shared values fixtures and variations of them.
 *
 * The pod checks follow Pod Security "restricted" (no scanner can be installed on these machines, so
 * `restrictedProfileViolations` is the check, and it is itself tested against specs that break it).
 * The shell script of coturn's init container and the admin registration script run for real: the one
 * under /bin/sh, the other under python3 against a loopback server that verifies the registration MAC
 * the way Synapse does.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { loadValues, mergeValueSources } from '../../src/values/load.js';
import { ValuesError } from '../../src/values/errors.js';
import { valuesSchema } from '../../src/values/schema.js';
import { compileKubernetesStack, renderKubernetesObjects, renderKubernetesYaml } from '../../src/targets/kubernetes/render.js';
import { toPlainSorted } from '../../src/kit/sorted-json.js';
import { restrictedProfileViolations } from '../../src/kit/pod-security.js';
import { documentedSecrets } from '../../src/targets/kubernetes/secrets.js';
import { synapseConfigFiles } from '../../src/components/synapse/config.js';
import { renderTurnSecretConf, renderTurnserverConf } from '../../src/components/coturn/config.js';
import { routerConfigFiles } from '../../src/components/router/config.js';
import { postgresqlSettings } from '../../src/components/postgresql/config.js';
import { turnConfigAssemblyScript } from '../../src/components/coturn/kubernetes.js';
import { registerAdminScriptPath } from '../../src/components/synapse/admin-bootstrap.js';
import { goodValuesFixtures } from '../support/fixtures.js';
import type { Stack } from '../../src/stack/model.js';

type Tree = Record<string, unknown>;
// Rendered objects as plain JSON: what kubectl receives.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Plain = any;

const release = 'mxstack';

/** The scheduled dump (the backup component, another part of the project) joins the scenarios once its values exist. */
function valuesSchemaHasBackupSchedule(): boolean {
  const properties = (valuesSchema as unknown as { properties: Record<string, { properties?: Record<string, unknown> }> }).properties;
  return Boolean(properties.backup?.properties?.schedule);
}

function stackOf(base: Tree, files: string[] = []): Stack {
  return compileKubernetesStack(loadValues({ base, files }), { release, namespace: 'matrix' });
}

function render(base: Tree = {}, files: string[] = []): Plain[] {
  return renderKubernetesObjects(stackOf(base, files)).map((object) => toPlainSorted(object));
}

const named = (objects: Plain[], kind: string, name: string): Plain => {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
  assert.ok(found, `${kind}/${name} is rendered (have: ${objects.map((o) => `${o.kind}/${o.metadata.name}`).join(', ')})`);
  return found;
};
const absent = (objects: Plain[], kind: string, name?: string) =>
  assert.equal(objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name)).length, 0, `no ${kind}${name ? `/${name}` : ''} expected`);

/** Every pod template of the release (CronJobs included), with the Job spec for run-to-completion pods. */
const podTemplates = (objects: Plain[]): { owner: string; spec: Plain; metadata: Plain; job?: Plain }[] =>
  objects.flatMap((o) => {
    const owner = `${o.kind}/${o.metadata.name}`;
    if (['Deployment', 'StatefulSet'].includes(o.kind)) return [{ owner, spec: o.spec.template.spec, metadata: o.spec.template.metadata }];
    if (o.kind === 'Job') return [{ owner, spec: o.spec.template.spec, metadata: o.spec.template.metadata, job: o.spec }];
    if (o.kind === 'CronJob') {
      const job = o.spec.jobTemplate.spec;
      return [{ owner, spec: job.template.spec, metadata: job.template.metadata, job }];
    }
    return [];
  });

const container = (objects: Plain[], kind: string, name: string, containerName?: string): Plain => {
  const spec = named(objects, kind, name).spec.template.spec;
  return containerName ? spec.containers.find((c: Plain) => c.name === containerName) : spec.containers[0];
};

const volume = (podSpec: Plain, name: string): Plain => {
  const found = podSpec.volumes.find((v: Plain) => v.name === name);
  assert.ok(found, `volume ${name}`);
  return found;
};

const homeserverYaml = (objects: Plain[]): Plain => parseYaml(named(objects, 'ConfigMap', `${release}-synapse`).data['homeserver.yaml']);

/** Every Secret key a pod spec mounts: secret volumes and projected secret sources. */
function mountedSecretKeys(spec: Plain): { name: string; key: string; path: string; volume: string }[] {
  return (spec.volumes ?? []).flatMap((v: Plain) => {
    if (v.secret) return (v.secret.items ?? []).map((i: Plain) => ({ name: v.secret.secretName, key: i.key, path: i.path, volume: v.name }));
    if (v.projected)
      return v.projected.sources.flatMap((s: Plain) => (s.secret?.items ?? []).map((i: Plain) => ({ name: s.secret.name, key: i.key, path: i.path, volume: v.name })));
    return [];
  });
}

const mountPathOf = (c: Plain, volumeName: string): string => {
  const mount = c.volumeMounts.find((m: Plain) => m.name === volumeName);
  assert.ok(mount, `mount of ${volumeName} in ${c.name}`);
  return mount.mountPath;
};

// Scenarios: every shared values fixture plus variations that switch features on.
const scenarios: [string, Tree, string[]][] = [
  ...goodValuesFixtures().map((file): [string, Tree, string[]] => [basename(file, '.yaml'), {}, [file]]),
  ['autoscaling', { synapse: { server: { name: 'example.com' } }, autoscaling: { enabled: true } }, []],
  ['no-admin-no-element-no-coturn', { synapse: { server: { name: 'example.com', adminUser: { enabled: false }, turn: { enabled: false } } }, element: { enabled: false }, coturn: { enabled: false } }, []],
  ['persistence-off', { synapse: { server: { name: 'example.com' }, persistence: { enabled: false }, metrics: { enabled: false } } }, []],
];
if (valuesSchemaHasBackupSchedule()) scenarios.push(['backup-schedule', { synapse: { server: { name: 'example.com' } }, backup: { schedule: '0 3 * * *' } }, []]);

test('every pod of every scenario passes Pod Security "restricted", with resources and probes', () => {
  for (const [name, base, files] of scenarios) {
    for (const { owner, spec, job } of podTemplates(render(base, files))) {
      assert.deepEqual(restrictedProfileViolations(spec), [], `${name}: ${owner}`);
      assert.equal(spec.automountServiceAccountToken, false, `${name}: ${owner} mounts no API token`);
      for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
        assert.ok(c.resources?.requests?.cpu && c.resources?.requests?.memory, `${name}: ${owner}/${c.name} requests`);
        assert.ok(c.resources?.limits?.cpu && c.resources?.limits?.memory, `${name}: ${owner}/${c.name} limits`);
        assert.equal(c.securityContext.readOnlyRootFilesystem, true, `${name}: ${owner}/${c.name} read-only root`);
      }
      for (const c of spec.initContainers ?? []) assert.equal(c.readinessProbe ?? c.livenessProbe ?? c.startupProbe, undefined, `${owner}/${c.name}: no probes on init containers`);
      if (!job) {
        for (const c of spec.containers) {
          for (const probe of ['readinessProbe', 'livenessProbe', 'startupProbe']) assert.ok(c[probe], `${name}: ${owner}/${c.name} has a ${probe}`);
        }
      } else {
        assert.ok(job.activeDeadlineSeconds > 0, `${name}: ${owner} is bounded in time instead of probed`);
      }
    }
  }
});

test('the restricted-profile check catches each kind of violation', () => {
  const good = podTemplates(render({ synapse: { server: { name: 'example.com' } } })).find((p) => p.owner === `Deployment/${release}-synapse`)!.spec;
  assert.deepEqual(restrictedProfileViolations(good), []);
  const broken = (change: (spec: Plain) => void): string[] => {
    const spec = structuredClone(good);
    change(spec);
    return restrictedProfileViolations(spec);
  };
  const has = (problems: string[], id: string) => assert.ok(problems.some((p) => p.includes(`[${id}]`)), `expected [${id}] in ${JSON.stringify(problems)}`);
  has(broken((s) => (s.hostNetwork = true)), 'host-namespaces');
  has(broken((s) => s.volumes.push({ name: 'host', hostPath: { path: '/' } })), 'restrictedVolumes');
  has(broken((s) => (s.containers[0].securityContext.allowPrivilegeEscalation = true)), 'allowPrivilegeEscalation');
  has(broken((s) => delete s.containers[0].securityContext.allowPrivilegeEscalation), 'allowPrivilegeEscalation');
  has(broken((s) => (s.containers[0].securityContext.privileged = true)), 'privileged');
  has(broken((s) => (s.containers[0].securityContext.capabilities = { drop: ['NET_RAW'] })), 'capabilities_restricted');
  has(broken((s) => (s.containers[0].securityContext.capabilities.add = ['SYS_ADMIN'])), 'capabilities_restricted');
  has(broken((s) => (s.containers[0].securityContext.runAsUser = 0)), 'runAsUser');
  has(
    broken((s) => {
      delete s.securityContext.runAsNonRoot;
      delete s.containers[0].securityContext.runAsNonRoot;
    }),
    'runAsNonRoot',
  );
  has(
    broken((s) => {
      delete s.securityContext.seccompProfile;
      delete s.containers[0].securityContext.seccompProfile;
    }),
    'seccompProfile_restricted',
  );
  has(broken((s) => (s.containers[0].ports[0].hostPort = 8008)), 'hostPorts');
  has(broken((s) => (s.securityContext.sysctls = [{ name: 'kernel.msgmax', value: '1' }])), 'sysctls');
  assert.deepEqual(broken((s) => (s.containers[0].securityContext.capabilities.add = ['NET_BIND_SERVICE'])), [], 'NET_BIND_SERVICE is allowed');
});

test('every object carries the recommended labels and a name of the release', () => {
  for (const [name, base, files] of scenarios) {
    for (const object of render(base, files)) {
      const labels = object.metadata.labels ?? {};
      for (const key of ['name', 'instance', 'version', 'component', 'part-of', 'managed-by']) {
        assert.ok(labels[`app.kubernetes.io/${key}`], `${name}: ${object.kind}/${object.metadata.name} lacks app.kubernetes.io/${key}`);
      }
      if (['ServiceAccount', 'Secret'].includes(object.kind) || object.metadata.labels['app.kubernetes.io/component'] === 'network-policy') continue;
      assert.ok(object.metadata.name.startsWith(`${release}-`), `${name}: ${object.kind}/${object.metadata.name}`);
    }
    for (const { owner, metadata } of podTemplates(render(base, files))) {
      const workload = render(base, files).find((o) => `${o.kind}/${o.metadata.name}` === owner);
      for (const [key, value] of Object.entries(workload.spec.selector?.matchLabels ?? {})) {
        assert.equal(metadata.labels[key], value, `${name}: ${owner} pods carry its selector labels`);
      }
    }
  }
});

test('rendering is deterministic', () => {
  const [, , files] = scenarios.find(([name]) => name === 'production')!;
  const once = renderKubernetesYaml(renderKubernetesObjects(stackOf({}, files)));
  const twice = renderKubernetesYaml(renderKubernetesObjects(stackOf({}, files)));
  assert.equal(once, twice);
});

test('Synapse: ConfigMap holds the generated files, the pod rolls when they change and only then', () => {
  const base = { synapse: { server: { name: 'example.com' } } };
  const objects = render(base);
  assert.deepEqual(named(objects, 'ConfigMap', `${release}-synapse`).data, synapseConfigFiles(stackOf(base)));
  const checksum = (o: Plain[]) => named(o, 'Deployment', `${release}-synapse`).spec.template.metadata.annotations['checksum/config'];
  assert.match(checksum(objects), /^[0-9a-f]{64}$/);
  assert.equal(checksum(render(base)), checksum(objects), 'same values, same checksum');
  const changed = render({ synapse: { server: { name: 'example.com', media: { maxUploadSize: '200M' } } } });
  assert.notEqual(checksum(changed), checksum(objects), 'a homeserver.yaml change changes the checksum');
  assert.notEqual(checksum(render({ synapse: { server: { name: 'example.com' }, logLevel: 'DEBUG' } })), checksum(objects), 'a log.yaml change too');
  assert.equal(
    checksum(render({ ...base, synapse: { ...base.synapse, podAnnotations: { team: 'chat' } } })),
    checksum(objects),
    'a pod annotation does not change the config checksum',
  );
});

test('Synapse: the main process through the start step, one replica, Recreate, uid 991', () => {
  const objects = render({ synapse: { server: { name: 'example.com' } } });
  const deployment = named(objects, 'Deployment', `${release}-synapse`);
  assert.equal(deployment.spec.replicas, 1);
  assert.equal(deployment.spec.strategy.type, 'Recreate');
  const c = deployment.spec.template.spec.containers[0];
  assert.deepEqual(c.command, ['python', '/config/synapse-start.py', '/secrets', '/run/synapse/joined-secrets.yaml', '-m', 'synapse.app.homeserver', '--config-path', '/config/homeserver.yaml']);
  // The joined passwords land in a memory-backed emptyDir, never on a node's disk.
  assert.equal(mountPathOf(c, 'runtime'), '/run/synapse');
  assert.deepEqual(deployment.spec.template.spec.volumes.find((v: Plain) => v.name === 'runtime').emptyDir.medium, 'Memory');
  assert.equal(deployment.spec.template.spec.securityContext.runAsUser, 991);
  assert.equal(c.image, 'ghcr.io/element-hq/synapse:v1.160.0');
  for (const probe of ['readinessProbe', 'livenessProbe', 'startupProbe']) assert.equal(c[probe].httpGet.path, '/health');
  const hs = homeserverYaml(objects);
  assert.equal(mountPathOf(c, 'config'), dirname(hs.log_config), 'log.yaml is where log_config points');
  assert.equal(mountPathOf(c, 'data'), dirname(hs.media_store_path));
  assert.equal(mountPathOf(c, 'data'), dirname(hs.pid_file), 'the pid file is on a writable volume');
  assert.ok(c.volumeMounts.some((m: Plain) => m.mountPath === '/tmp'));
  const listenerPorts = hs.listeners.map((l: Plain) => l.port).sort();
  assert.deepEqual(c.ports.map((p: Plain) => p.containerPort).sort(), listenerPorts, 'container ports are the listeners');
});

test('Synapse: every *_path under the secrets directory is projected from its Secret, and only those', () => {
  for (const [name, base, files] of scenarios) {
    const objects = render(base, files);
    const hs = homeserverYaml(objects);
    const paths: string[] = [];
    const collect = (node: unknown) => {
      if (Array.isArray(node)) node.forEach(collect);
      else if (node && typeof node === 'object') {
        for (const [key, value] of Object.entries(node)) {
          if (key.endsWith('_path') && typeof value === 'string' && value.startsWith('/secrets/')) paths.push(value);
          else collect(value);
        }
      }
    };
    collect(hs);
    // app_service_config_files is a list of paths (the mxstack-cli registration with 2FA), not a *_path key.
    paths.push(...((hs.app_service_config_files ?? []) as string[]));
    const spec = named(objects, 'Deployment', `${release}-synapse`).spec.template.spec;
    const mount = mountPathOf(spec.containers[0], 'secrets');
    const projected = mountedSecretKeys(spec)
      .filter((k) => k.volume === 'secrets')
      .map((k) => `${mount}/${k.path}`);
    // The two passwords Synapse reads only inline: its start step joins them in.
    const joinedAtStart = ['/secrets/database-password', '/secrets/smtp-password'];
    assert.deepEqual(projected.filter((p) => !joinedAtStart.includes(p)).sort(), [...new Set(paths)].sort(), name);
    assert.ok(projected.includes('/secrets/database-password'), name);
  }
});

test('Synapse: each OIDC provider\'s client secret comes from its own Secret', () => {
  const [, , files] = scenarios.find(([name]) => name === 'sso-two-providers')!;
  const objects = render({}, files);
  const hs = homeserverYaml(objects);
  const keys = mountedSecretKeys(named(objects, 'Deployment', `${release}-synapse`).spec.template.spec);
  const byPath = (path: string) => keys.find((k) => `/secrets/${k.path}` === path);
  const [keycloak, github] = hs.oidc_providers;
  assert.deepEqual(byPath(keycloak.client_secret_path), { name: 'keycloak-staff-client', key: 'client-secret', path: basename(keycloak.client_secret_path), volume: 'secrets' });
  assert.deepEqual(byPath(github.client_secret_path), { name: 'github-oauth-app', key: 'client-secret', path: basename(github.client_secret_path), volume: 'secrets' });

  const defaults = render({
    synapse: {
      server: {
        name: 'example.com',
        sso: { enabled: true, oidc: { enabled: true, providers: ['a', 'b'].map((id) => ({ idp_id: id, idp_name: id, issuer: `https://${id}.example.com/`, client_id: id })) } },
      },
    },
  });
  const defaultKeys = mountedSecretKeys(named(defaults, 'Deployment', `${release}-synapse`).spec.template.spec);
  assert.deepEqual(
    defaultKeys.filter((k) => k.path.startsWith('oidc_')).map((k) => [k.name, k.key, k.path]),
    [
      [`${release}-oidc-a`, 'client-secret', 'oidc_a_client_secret'],
      [`${release}-oidc-b`, 'client-secret', 'oidc_b_client_secret'],
    ],
  );
});

test('Synapse: the signing key is mounted where signing_key_path points, from signingKey.existingSecret/secretKey', () => {
  for (const signingKey of [{}, { existingSecret: 'old-chart-signing-key', secretKey: 'example.com.signing.key' }]) {
    const objects = render({ synapse: { server: { name: 'example.com' }, signingKey } });
    const hs = homeserverYaml(objects);
    const spec = named(objects, 'Deployment', `${release}-synapse`).spec.template.spec;
    const key = mountedSecretKeys(spec).find((k) => k.volume === 'signing-key')!;
    assert.equal(`${mountPathOf(spec.containers[0], 'signing-key')}/${key.path}`, hs.signing_key_path);
    if ('existingSecret' in signingKey) assert.deepEqual([key.name, key.key], ['old-chart-signing-key', 'example.com.signing.key']);
    else assert.deepEqual([key.name, key.key], [`${release}-signing-key`, 'signing.key']);
  }
});

test('Synapse: media claim, existing claim, or emptyDir; ServiceAccount per values; Service ports', () => {
  const claim = render({ synapse: { server: { name: 'example.com' }, persistence: { size: '50Gi', storageClassName: 'longhorn', accessMode: 'ReadWriteOncePod' } } });
  const pvc = named(claim, 'PersistentVolumeClaim', `${release}-synapse-media`);
  assert.deepEqual(pvc.spec, { accessModes: ['ReadWriteOncePod'], resources: { requests: { storage: '50Gi' } }, storageClassName: 'longhorn' });
  assert.equal(volume(named(claim, 'Deployment', `${release}-synapse`).spec.template.spec, 'data').persistentVolumeClaim.claimName, `${release}-synapse-media`);

  const existing = render({ synapse: { server: { name: 'example.com' }, persistence: { existingClaim: 'matrix-media' } } });
  absent(existing, 'PersistentVolumeClaim');
  assert.equal(volume(named(existing, 'Deployment', `${release}-synapse`).spec.template.spec, 'data').persistentVolumeClaim.claimName, 'matrix-media');

  const off = render({ synapse: { server: { name: 'example.com' }, persistence: { enabled: false } } });
  absent(off, 'PersistentVolumeClaim');
  assert.deepEqual(volume(named(off, 'Deployment', `${release}-synapse`).spec.template.spec, 'data'), { emptyDir: {}, name: 'data' });

  const account = named(claim, 'ServiceAccount', `${release}-synapse`);
  assert.equal(account.automountServiceAccountToken, false);
  const custom = render({ synapse: { server: { name: 'example.com' }, serviceAccount: { name: 'synapse-sa', annotations: { 'eks.amazonaws.com/role-arn': 'arn:x' } } } });
  assert.equal(named(custom, 'ServiceAccount', 'synapse-sa').metadata.annotations['eks.amazonaws.com/role-arn'], 'arn:x');
  assert.equal(named(custom, 'Deployment', `${release}-synapse`).spec.template.spec.serviceAccountName, 'synapse-sa');
  const none = render({ synapse: { server: { name: 'example.com' }, serviceAccount: { create: false } } });
  absent(none, 'ServiceAccount');
  assert.equal(named(none, 'Deployment', `${release}-synapse`).spec.template.spec.serviceAccountName, 'default');

  const service = named(claim, 'Service', `${release}-synapse`);
  assert.deepEqual(
    service.spec.ports.map((p: Plain) => [p.name, p.port, p.targetPort]),
    [
      ['http', 8008, 'http'],
      ['federation', 8448, 'http'],
      ['metrics', 9000, 'metrics'],
    ],
  );
  assert.deepEqual(service.spec.selector, { 'app.kubernetes.io/instance': release, 'app.kubernetes.io/name': 'synapse' });
  const remapped = named(render({ synapse: { server: { name: 'example.com' }, service: { port: 80, targetPort: 8008 } } }), 'Service', `${release}-synapse`);
  assert.ok(
    remapped.spec.ports.some((p: Plain) => p.port === 8008 && p.targetPort === 'http'),
    'the router reaches Synapse on the listener port even when the Service port differs',
  );
});

test('scheduling, pod annotations and security contexts from values reach every pod', () => {
  const scheduling = {
    nodeSelector: { 'kubernetes.io/arch': 'amd64' },
    tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'matrix', effect: 'NoSchedule' }],
    affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'zone', operator: 'In', values: ['a'] }] }] } } },
  };
  const objects = render({
    synapse: { server: { name: 'example.com' }, podAnnotations: { 'example.com/team': 'chat' }, podSecurityContext: { runAsUser: 10991, fsGroup: 10991 } },
    element: { securityContext: { capabilities: { drop: ['ALL', 'NET_RAW'] } } },
    ...scheduling,
  });
  const pods = podTemplates(objects);
  assert.ok(pods.length >= 5);
  for (const { owner, spec } of pods) {
    assert.deepEqual(spec.nodeSelector, scheduling.nodeSelector, owner);
    assert.deepEqual(spec.tolerations, scheduling.tolerations, owner);
    assert.deepEqual(spec.affinity, scheduling.affinity, owner);
  }
  const synapse = named(objects, 'Deployment', `${release}-synapse`).spec.template;
  assert.equal(synapse.metadata.annotations['example.com/team'], 'chat');
  assert.ok(synapse.metadata.annotations['checksum/config']);
  assert.deepEqual(synapse.spec.securityContext, {
    fsGroup: 10991,
    fsGroupChangePolicy: 'OnRootMismatch',
    runAsGroup: 991,
    runAsNonRoot: true,
    runAsUser: 10991,
    seccompProfile: { type: 'RuntimeDefault' },
  }, 'values merged over the hardened default');
  const element = container(objects, 'Deployment', `${release}-element`);
  assert.deepEqual(element.securityContext.capabilities, { drop: ['ALL', 'NET_RAW'] });
  assert.equal(element.securityContext.allowPrivilegeEscalation, false, 'the rest of the hardened default stays');
});

test('Secrets: none unless a secret value is written in values; then exactly those keys, nowhere else', () => {
  for (const [name, base, files] of scenarios) {
    const secrets = render(base, files).filter((o) => o.kind === 'Secret');
    if (name !== 'sso-okta') {
      assert.deepEqual(secrets, [], `${name} writes no secret value`);
      continue;
    }
    // The one fixture that writes a client secret in values.
    assert.deepEqual(
      secrets.map((s) => [s.metadata.name, s.stringData]),
      [[`${release}-oidc-okta`, { 'client-secret': 'fixture-okta-client-secret-not-real' }]],
    );
    assert.equal(secrets[0].metadata.annotations['mxstack.dev/secret-source'], 'values');
  }

  const written = {
    password: 'Values-Admin-Pass-7781',
    registration: 'Values-Registration-Secret-5512',
    oidc: 'Values-Oidc-Client-Secret-0923',
    smtp: 'Values-Smtp-Pass-3367',
  };
  const base = {
    synapse: {
      server: {
        name: 'example.com',
        adminUser: { password: written.password, registrationSecret: written.registration },
        email: { enabled: true, smtpHost: 'smtp.example.com', smtpPass: written.smtp },
        sso: {
          enabled: true,
          oidc: {
            enabled: true,
            providers: [
              { idp_id: 'corp', idp_name: 'Corp', issuer: 'https://idp.example.com/', client_id: 'matrix', client_secret: written.oidc },
              { idp_id: 'other', idp_name: 'Other', issuer: 'https://other.example.com/', client_id: 'matrix', clientSecretRef: { name: 'other-secret', key: 'cs' } },
            ],
          },
        },
      },
    },
  };
  const objects = render(base);
  const secrets = objects.filter((o) => o.kind === 'Secret');
  assert.deepEqual(
    secrets.map((s) => [s.metadata.name, s.stringData]),
    [
      [`${release}-admin-credentials`, { password: written.password, 'registration-secret': written.registration }],
      [`${release}-oidc-corp`, { 'client-secret': written.oidc }],
      [`${release}-smtp`, { password: written.smtp }],
    ],
  );
  const outsideSecrets = renderKubernetesYaml(renderKubernetesObjects(stackOf(base)).filter((o) => o.kind !== 'Secret'));
  for (const [what, value] of Object.entries(written)) assert.ok(!outsideSecrets.includes(value), `the ${what} appears outside its Secret`);
  // The Secret keys the pods read are the ones rendered.
  const keys = mountedSecretKeys(named(objects, 'Deployment', `${release}-synapse`).spec.template.spec);
  assert.ok(keys.some((k) => k.name === `${release}-oidc-corp` && k.key === 'client-secret'));
  assert.ok(keys.some((k) => k.name === 'other-secret' && k.key === 'cs'));
});

test('documentedSecrets lists every Secret key a pod mounts, with who creates it', () => {
  for (const [name, base, files] of scenarios) {
    const stack = stackOf(base, files);
    const documented = documentedSecrets(stack);
    const ids = documented.map((d) => `${d.name}/${d.key}`);
    assert.equal(new Set(ids).size, ids.length, `${name}: one entry per Secret key`);
    for (const { owner, spec } of podTemplates(render(base, files))) {
      for (const key of mountedSecretKeys(spec)) assert.ok(ids.includes(`${key.name}/${key.key}`), `${name}: ${owner} mounts undocumented ${key.name}/${key.key}`);
    }
    assert.ok(ids.includes(`${stack.secrets.postgresPassword.name}/${stack.secrets.postgresPassword.key}`), `${name}: the database password is documented`);
  }
  const signing = documentedSecrets(stackOf({ synapse: { server: { name: 'example.com' }, signingKey: { existingSecret: 'mine' } } }));
  assert.equal(signing.find((d) => d.name === 'mine')?.createdBy, 'user');
  const generated = documentedSecrets(stackOf({ synapse: { server: { name: 'example.com', adminUser: { password: 'pw-in-values-1' } } } }));
  assert.equal(generated.find((d) => d.name === `${release}-admin-credentials` && d.key === 'password')?.createdBy, 'values');
  assert.equal(generated.find((d) => d.name === `${release}-admin-credentials` && d.key === 'registration-secret')?.createdBy, 'secrets-init');
  assert.deepEqual(generated.find((d) => d.name === `${release}-signing-key`)?.readBy, [`deployment/${release}-synapse`]);
});

test('admin bootstrap Job: present when enabled, secrets as files only, bounded, Synapse Service URL', () => {
  const base = { synapse: { server: { name: 'example.com', adminUser: { username: 'root', displayName: 'Root', email: 'root@example.com', password: 'pw-in-values-2' } } } };
  const objects = render(base);
  const job = named(objects, 'Job', `${release}-admin-bootstrap`);
  assert.ok(job.spec.backoffLimit > 0 && job.spec.ttlSecondsAfterFinished > 0 && job.spec.activeDeadlineSeconds > 0);
  const spec = job.spec.template.spec;
  assert.equal(spec.restartPolicy, 'Never');
  const c = spec.containers[0];
  assert.equal(c.image, container(objects, 'Deployment', `${release}-synapse`).image, 'runs with the Synapse image\'s python');
  const env = Object.fromEntries(c.env.map((e: Plain) => [e.name, e.value]));
  const service = named(objects, 'Service', `${release}-synapse`);
  assert.equal(env.MXSTACK_SYNAPSE_URL, `http://${service.metadata.name}:${service.spec.ports.find((p: Plain) => p.name === 'http').port}`);
  assert.equal(env.MXSTACK_ADMIN_USERNAME, 'root');
  assert.equal(env.MXSTACK_ADMIN_EMAIL, 'root@example.com');
  assert.ok(c.env.every((e: Plain) => e.valueFrom === undefined), 'no secret through the environment');
  const files = mountedSecretKeys(spec).map((k) => [`${mountPathOf(c, k.volume)}/${k.path}`, k.name, k.key]);
  assert.deepEqual(files, [
    [env.MXSTACK_ADMIN_PASSWORD_FILE, `${release}-admin-credentials`, 'password'],
    [env.MXSTACK_REGISTRATION_SECRET_FILE, `${release}-admin-credentials`, 'registration-secret'],
  ]);
  const script = named(objects, 'ConfigMap', `${release}-admin-bootstrap`).data['register-admin.py'];
  assert.equal(script, readFileSync(registerAdminScriptPath, 'utf8'));
  assert.equal(c.command[1], `${mountPathOf(c, 'script')}/register-admin.py`);
  assert.ok(!JSON.stringify(job).includes('pw-in-values-2'));

  const off = render({ synapse: { server: { name: 'example.com', adminUser: { enabled: false } } } });
  absent(off, 'Job');
  absent(off, 'ConfigMap', `${release}-admin-bootstrap`);
});

/** A stand-in for Synapse's shared-secret registration endpoint that checks the MAC as Synapse does. */
async function withRegistrationServer(sharedSecret: string, run: (url: string, state: { users: Map<string, Plain>; threepids: Plain[] }) => Promise<void>) {
  const state = { users: new Map<string, Plain>(), threepids: [] as Plain[] };
  const nonces = new Set<string>();
  const body = (request: IncomingMessage) =>
    new Promise<Plain>((resolve) => {
      let raw = '';
      request.on('data', (chunk) => (raw += chunk));
      request.on('end', () => resolve(raw ? JSON.parse(raw) : {}));
    });
  const server = createServer(async (request, response) => {
    const reply = (status: number, payload: Plain) => response.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(payload));
    if (request.url === '/health') return response.writeHead(200).end('OK');
    if (request.url === '/_synapse/admin/v1/register' && request.method === 'GET') {
      const nonce = randomBytes(8).toString('hex');
      nonces.add(nonce);
      return reply(200, { nonce });
    }
    if (request.url === '/_synapse/admin/v1/register' && request.method === 'POST') {
      const b = await body(request);
      if (!nonces.delete(b.nonce)) return reply(400, { errcode: 'M_UNKNOWN', error: 'unrecognised nonce' });
      const mac = createHmac('sha1', sharedSecret)
        .update([b.nonce, b.username, b.password, b.admin ? 'admin' : 'notadmin'].join('\0'))
        .digest('hex');
      if (mac !== b.mac) return reply(403, { errcode: 'M_UNKNOWN', error: 'HMAC incorrect' });
      if (state.users.has(b.username)) return reply(400, { errcode: 'M_USER_IN_USE', error: 'User ID already taken.' });
      state.users.set(b.username, b);
      return reply(200, { user_id: `@${b.username}:example.com`, access_token: 'token-1' });
    }
    if (request.url?.startsWith('/_synapse/admin/v2/users/') && request.method === 'PUT') {
      if (request.headers.authorization !== 'Bearer token-1') return reply(401, { errcode: 'M_MISSING_TOKEN' });
      state.threepids.push({ user: decodeURIComponent(request.url.split('/').pop()!), ...(await body(request)) });
      return reply(200, {});
    }
    return reply(404, { errcode: 'M_UNRECOGNIZED' });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    await run(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, state);
  } finally {
    server.close();
  }
}

function runScript(env: Record<string, string>): Promise<{ status: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn('python3', [registerAdminScriptPath], { env: { PATH: process.env.PATH ?? '', ...env }, timeout: 30_000 });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.on('close', (status) => resolve({ status, output }));
  });
}

const hasPython = spawnSync('python3', ['--version']).status === 0;

test('the admin registration script registers once, then counts the existing user as success', { skip: !hasPython && 'python3 not installed' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mxstack-register-admin-'));
  try {
    const password = 'Script-Admin-Pass-4410';
    const secret = 'Script-Shared-Secret-9921';
    writeFileSync(join(dir, 'password'), `${password}\n`);
    writeFileSync(join(dir, 'secret'), `${secret}\n`);
    writeFileSync(join(dir, 'wrong'), 'not-the-secret\n');
    await withRegistrationServer(secret, async (url, state) => {
      const env = (secretFile: string) => ({
        MXSTACK_SYNAPSE_URL: url,
        MXSTACK_ADMIN_USERNAME: 'admin',
        MXSTACK_ADMIN_IS_ADMIN: 'true',
        MXSTACK_ADMIN_DISPLAYNAME: 'Admin',
        MXSTACK_ADMIN_EMAIL: 'admin@example.com',
        MXSTACK_ADMIN_PASSWORD_FILE: join(dir, 'password'),
        MXSTACK_REGISTRATION_SECRET_FILE: join(dir, secretFile),
        MXSTACK_WAIT_SECONDS: '10',
      });
      const wrong = await runScript(env('wrong'));
      assert.equal(wrong.status, 1, wrong.output);
      assert.match(wrong.output, /HMAC incorrect/);
      const first = await runScript(env('secret'));
      assert.equal(first.status, 0, first.output);
      assert.equal(state.users.get('admin')?.password, password, 'the trailing newline of the file is not part of the password');
      assert.equal(state.users.get('admin')?.admin, true);
      assert.equal(state.users.get('admin')?.displayname, 'Admin');
      assert.deepEqual(state.threepids, [{ user: '@admin:example.com', threepids: [{ medium: 'email', address: 'admin@example.com' }] }]);
      const second = await runScript(env('secret'));
      assert.equal(second.status, 0, second.output);
      assert.match(second.output, /already exists/);
      for (const run of [wrong, first, second]) {
        assert.ok(!run.output.includes(password) && !run.output.includes(secret), 'no secret in the output');
      }
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('Element: unprivileged port, config.json by subPath, writable nginx dirs, HPA and PDB', () => {
  const base = { synapse: { server: { name: 'example.com' } } };
  const objects = render(base);
  const deployment = named(objects, 'Deployment', `${release}-element`);
  const spec = deployment.spec.template.spec;
  const c = spec.containers[0];
  const env = Object.fromEntries(c.env.map((e: Plain) => [e.name, e.value]));
  assert.equal(Number(env.ELEMENT_WEB_PORT), c.ports[0].containerPort);
  assert.equal(c.ports[0].containerPort, 8080);
  assert.equal(spec.securityContext.runAsUser, 101);
  assert.deepEqual(c.volumeMounts.find((m: Plain) => m.name === 'config'), { mountPath: '/app/config.json', name: 'config', readOnly: true, subPath: 'config.json' });
  for (const dir of ['/etc/nginx/conf.d', '/var/cache/nginx', '/tmp']) {
    const mount = c.volumeMounts.find((m: Plain) => m.mountPath === dir);
    assert.ok(mount && volume(spec, mount.name).emptyDir, `${dir} is a writable emptyDir`);
  }
  assert.equal(deployment.spec.replicas, 2);
  assert.ok(deployment.spec.template.metadata.annotations['checksum/config']);
  assert.equal(named(objects, 'PodDisruptionBudget', `${release}-element`).spec.minAvailable, 1);
  absent(objects, 'HorizontalPodAutoscaler');
  const service = named(objects, 'Service', `${release}-element`);
  assert.deepEqual(service.spec.ports.map((p: Plain) => [p.port, p.targetPort]), [
    [80, 'http'],
    [8080, 'http'],
  ]);

  const scaled = render({ ...base, autoscaling: { enabled: true, minReplicas: 3, maxReplicas: 7, targetCPUUtilizationPercentage: 60 } });
  const hpa = named(scaled, 'HorizontalPodAutoscaler', `${release}-element`);
  assert.equal(hpa.apiVersion, 'autoscaling/v2');
  assert.deepEqual([hpa.spec.minReplicas, hpa.spec.maxReplicas, hpa.spec.metrics[0].resource.target.averageUtilization], [3, 7, 60]);
  assert.deepEqual(hpa.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: `${release}-element` });
  assert.equal(named(scaled, 'Deployment', `${release}-element`).spec.replicas, undefined, 'the HPA owns the replica count');

  const single = render({ ...base, element: { replicaCount: 1 } });
  absent(single, 'PodDisruptionBudget', `${release}-element`);
  const none = render({ ...base, element: { enabled: false } });
  assert.equal(none.filter((o) => o.metadata.labels['app.kubernetes.io/name'] === 'element').length, 0);
});

test('PostgreSQL: StatefulSet with claim template, password file, tuning as -c arguments, two Services', () => {
  const base = { synapse: { server: { name: 'example.com' } }, postgresql: { persistence: { size: '20Gi', storageClassName: 'fast' }, config: { maxConnections: 150 } } };
  const objects = render(base);
  const set = named(objects, 'StatefulSet', `${release}-postgresql`);
  assert.equal(set.spec.serviceName, `${release}-postgresql-headless`);
  assert.deepEqual(set.spec.volumeClaimTemplates[0].spec, { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '20Gi' } }, storageClassName: 'fast' });
  const spec = set.spec.template.spec;
  const c = spec.containers[0];
  assert.equal(spec.securityContext.runAsUser, 70);
  const env = Object.fromEntries(c.env.map((e: Plain) => [e.name, e.value]));
  const stack = stackOf(base);
  assert.equal(env.POSTGRES_USER, stack.database.user);
  assert.equal(env.POSTGRES_DB, stack.database.name);
  assert.equal(env.POSTGRES_PASSWORD, undefined);
  const password = mountedSecretKeys(spec).find((k) => k.volume === 'password')!;
  assert.equal(`${mountPathOf(c, 'password')}/${password.path}`, env.POSTGRES_PASSWORD_FILE);
  assert.deepEqual([password.name, password.key], [stack.secrets.postgresPassword.name, stack.secrets.postgresPassword.key]);
  assert.match(env.POSTGRES_INITDB_ARGS, /--encoding=UTF8/);
  assert.match(env.POSTGRES_INITDB_ARGS, /--locale=C/);
  const settings = postgresqlSettings(stack);
  const args: string[] = c.args.slice(1);
  assert.equal(c.args[0], 'postgres');
  assert.equal(args.length, Object.keys(settings).length * 2);
  for (const [key, value] of Object.entries(settings)) assert.ok(args.includes(`${key}=${value}`), `-c ${key}=${value}`);
  assert.ok(args.includes('max_connections=150'));
  assert.ok(args.every((arg, i) => (i % 2 === 0 ? arg === '-c' : !/password\s*=/.test(arg))), 'only -c pairs, no password');
  assert.deepEqual(c.readinessProbe.exec.command.slice(0, 1), ['pg_isready']);
  // The data directory is below the claim's root (PGDATA keeps the image default inside it).
  assert.equal(mountPathOf(c, 'data'), '/var/lib/postgresql');
  for (const dir of ['/var/run/postgresql', '/tmp']) assert.ok(c.volumeMounts.some((m: Plain) => m.mountPath === dir), dir);
  assert.equal(named(objects, 'Service', `${release}-postgresql-headless`).spec.clusterIP, 'None');
  assert.equal(named(objects, 'Service', `${release}-postgresql`).spec.ports[0].port, stack.database.port);

  const [, , files] = scenarios.find(([name]) => name === 'external-database')!;
  const external = render({}, files);
  absent(external, 'StatefulSet');
  absent(external, 'Service', `${release}-postgresql`);
  absent(external, 'Service', `${release}-postgresql-headless`);
});

test('coturn: the init script assembles exactly renderTurnserverConf + renderTurnSecretConf under /bin/sh', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mxstack-coturn-assemble-'));
  try {
    const stack = stackOf({ synapse: { server: { name: 'example.com' } }, coturn: { externalIP: '203.0.113.9' } });
    const secret = `turn-${randomBytes(12).toString('hex')}`;
    writeFileSync(join(dir, 'turnserver.conf'), renderTurnserverConf(stack));
    writeFileSync(join(dir, 'shared-secret'), `${secret}\n`);
    const script = turnConfigAssemblyScript({ configFile: join(dir, 'turnserver.conf'), secretFile: join(dir, 'shared-secret'), output: join(dir, 'out.conf') });
    assert.ok(!script.includes(secret));
    const result = spawnSync('/bin/sh', ['-c', script], { encoding: 'utf8', timeout: 10_000 });
    assert.equal(result.status, 0, result.stderr);
    assert.equal(readFileSync(join(dir, 'out.conf'), 'utf8'), renderTurnserverConf(stack) + renderTurnSecretConf(secret));

    const objects = render({ synapse: { server: { name: 'example.com' } } });
    const spec = named(objects, 'Deployment', `${release}-coturn`).spec.template.spec;
    const init = spec.initContainers[0];
    assert.deepEqual(init.command.slice(0, 2), ['sh', '-c']);
    const configMount = mountPathOf(init, 'config');
    const secretMount = mountPathOf(init, 'turn-secret');
    const runtime = mountPathOf(init, 'runtime');
    assert.equal(init.command[2], turnConfigAssemblyScript({ configFile: `${configMount}/turnserver.conf`, secretFile: `${secretMount}/shared-secret`, output: `${runtime}/turnserver.conf` }));
    assert.deepEqual(spec.containers[0].command, ['turnserver', '-c', `${mountPathOf(spec.containers[0], 'runtime')}/turnserver.conf`]);
    assert.equal(volume(spec, 'runtime').emptyDir.medium, 'Memory');
    const secretKey = mountedSecretKeys(spec).find((k) => k.volume === 'turn-secret')!;
    const turnRef = stackOf({ synapse: { server: { name: 'example.com' } } }).secrets.turnSharedSecret;
    assert.deepEqual([secretKey.name, secretKey.key], [turnRef.name, turnRef.key]);
    assert.equal(named(objects, 'ConfigMap', `${release}-coturn`).data['turnserver.conf'], renderTurnserverConf(stackOf({ synapse: { server: { name: 'example.com' } } })));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('coturn: NodePort values, relay ports published one by one on their own numbers', () => {
  const [, , files] = scenarios.find(([name]) => name === 'coturn-nodeport')!;
  const objects = render({}, files);
  const service = named(objects, 'Service', `${release}-coturn`);
  assert.equal(service.spec.type, 'NodePort');
  assert.equal(service.spec.externalTrafficPolicy, 'Cluster');
  const port = (name: string) => service.spec.ports.find((p: Plain) => p.name === name);
  assert.deepEqual([port('turn-udp').protocol, port('turn-udp').port, port('turn-udp').nodePort], ['UDP', 3478, 30478]);
  assert.deepEqual([port('turn-tcp').protocol, port('turn-tcp').nodePort], ['TCP', 30478]);
  const relays = service.spec.ports.filter((p: Plain) => p.name.startsWith('relay-'));
  const stack = stackOf({}, files);
  assert.equal(relays.length, stack.placement.ports.relayMax - stack.placement.ports.relayMin + 1);
  assert.ok(relays.every((p: Plain) => p.protocol === 'UDP' && p.port === p.targetPort && p.nodePort === p.port));
  assert.equal(port('metrics'), undefined, 'metrics never on the public TURN Service');
  assert.equal(named(objects, 'Service', `${release}-coturn-metrics`).spec.ports[0].name, 'metrics');
  assert.equal(named(objects, 'Service', `${release}-coturn-metrics`).spec.type, 'ClusterIP');
});

test('coturn: TLS certificate mounted where turnserver.conf points, TURNS ports, LoadBalancer settings', () => {
  const [, , files] = scenarios.find(([name]) => name === 'coturn-tls')!;
  const objects = render({}, files);
  const spec = named(objects, 'Deployment', `${release}-coturn`).spec.template.spec;
  const conf = named(objects, 'ConfigMap', `${release}-coturn`).data['turnserver.conf'] as string;
  const tlsDir = mountPathOf(spec.containers[0], 'tls');
  const tls = mountedSecretKeys(spec).filter((k) => k.volume === 'tls');
  assert.deepEqual(tls.map((k) => [k.name, k.key]), [
    ['coturn-tls', 'tls.crt'],
    ['coturn-tls', 'tls.key'],
  ]);
  for (const key of tls) assert.ok(conf.split('\n').some((line) => line.endsWith(`=${tlsDir}/${key.path}`)), `turnserver.conf reads ${tlsDir}/${key.path}`);
  const service = named(objects, 'Service', `${release}-coturn`);
  assert.deepEqual(
    service.spec.ports.filter((p: Plain) => p.name.startsWith('turns')).map((p: Plain) => [p.name, p.port, p.protocol]),
    [
      ['turns-udp', 5349, 'UDP'],
      ['turns-tcp', 5349, 'TCP'],
    ],
  );
  assert.equal(service.spec.type, 'LoadBalancer');
  assert.equal(service.metadata.annotations['external-dns.alpha.kubernetes.io/hostname'], 'turn.example.com');
  assert.equal(service.spec.externalTrafficPolicy, 'Local');

  const [, , production] = scenarios.find(([name]) => name === 'production')!;
  assert.equal(named(render({}, production), 'Service', `${release}-coturn`).spec.loadBalancerIP, '203.0.113.50');
  const noTls = named(render({ synapse: { server: { name: 'example.com' } } }), 'Deployment', `${release}-coturn`).spec.template.spec;
  assert.equal(noTls.volumes.find((v: Plain) => v.name === 'tls'), undefined);
});

test('coturn: hostNetwork is the one documented exception; an oversized relay range is refused', () => {
  const objects = render({ synapse: { server: { name: 'example.com' } }, coturn: { hostNetwork: true } });
  const spec = named(objects, 'Deployment', `${release}-coturn`).spec.template.spec;
  assert.equal(spec.hostNetwork, true);
  assert.equal(spec.dnsPolicy, 'ClusterFirstWithHostNet');
  assert.deepEqual(restrictedProfileViolations(spec), ['hostNetwork is true [host-namespaces]']);
  assert.equal(named(objects, 'Deployment', `${release}-coturn`).spec.strategy.type, 'Recreate');
  assert.equal(named(objects, 'Service', `${release}-coturn`).spec.ports.filter((p: Plain) => p.name.startsWith('relay-')).length, 0);

  const huge = { synapse: { server: { name: 'example.com' } }, coturn: { relayPortRange: { min: 40000, max: 49999 } } };
  assert.throws(() => renderKubernetesObjects(stackOf(huge)), (error: unknown) => error instanceof ValuesError && /^coturn\.relayPortRange: 10000 relay ports/.test(error.problems[0]!));
  assert.doesNotThrow(() => renderKubernetesObjects(stackOf({ ...huge, coturn: { ...huge.coturn, hostNetwork: true } })));
  absent(render({ synapse: { server: { name: 'example.com', turn: { enabled: false } } }, coturn: { enabled: false } }), 'Deployment', `${release}-coturn`);
});

test('router: generated files in its ConfigMap, health on the metrics frontend, replicas and PDB', () => {
  const base = { synapse: { server: { name: 'example.com' } }, router: { replicaCount: 3 } };
  const objects = render(base);
  const configMap = named(objects, 'ConfigMap', `${release}-router`);
  assert.deepEqual(configMap.data, routerConfigFiles(stackOf(base)));
  const deployment = named(objects, 'Deployment', `${release}-router`);
  assert.equal(deployment.spec.replicas, 3);
  const spec = deployment.spec.template.spec;
  const c = spec.containers[0];
  assert.equal(spec.securityContext.runAsUser, 99);
  assert.deepEqual(c.command.slice(-2), ['-f', `${mountPathOf(c, 'config')}/haproxy.cfg`]);
  assert.deepEqual([c.readinessProbe.httpGet.path, c.readinessProbe.httpGet.port], ['/health', 'metrics']);
  const metricsPort = c.ports.find((p: Plain) => p.name === 'metrics').containerPort;
  assert.ok(configMap.data['haproxy.cfg'].includes(`:${metricsPort}`) && configMap.data['haproxy.cfg'].includes('monitor-uri /health'));
  assert.equal(named(objects, 'PodDisruptionBudget', `${release}-router`).spec.minAvailable, 1);
  assert.deepEqual(
    named(objects, 'Service', `${release}-router`).spec.ports.map((p: Plain) => [p.name, p.port]),
    [
      ['http', 8080],
      ['metrics', 8405],
    ],
  );
  absent(render({ ...base, router: { replicaCount: 1 } }), 'PodDisruptionBudget', `${release}-router`);
});

test('the router reaches every backend through a port its Service exposes', () => {
  for (const [name, base, files] of scenarios) {
    const objects = render(base, files);
    const cfg: string = named(objects, 'ConfigMap', `${release}-router`).data['haproxy.cfg'];
    for (const match of cfg.matchAll(/server \S+ ([a-z0-9-]+)\.matrix\.svc\.cluster\.local:(\d+)/g)) {
      const service = named(objects, 'Service', match[1]!);
      assert.ok(service.spec.ports.some((p: Plain) => p.port === Number(match[2])), `${name}: ${match[1]} exposes port ${match[2]}`);
    }
  }
});

test('raw values never reach the manifests outside Secrets (values files merged as the CLI does)', () => {
  const merged = mergeValueSources({ base: { synapse: { server: { name: 'example.com', adminUser: { password: 'pw-in-values-3', registrationSecret: 'rs-in-values-3' } } } } });
  const yaml = renderKubernetesYaml(renderKubernetesObjects(compileKubernetesStack(loadValues({ base: merged }))).filter((o) => o.kind !== 'Secret'));
  assert.ok(!yaml.includes('pw-in-values-3') && !yaml.includes('rs-in-values-3'));
});
