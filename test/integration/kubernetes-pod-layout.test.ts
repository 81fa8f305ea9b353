/**
 * The Kubernetes pods of PostgreSQL, Synapse, the admin bootstrap Job, the router and coturn, replayed
 * with the real programs of the runtime root filesystem. No cluster can run here, so each container
 * becomes a private overlay of the rootfs (upper layer in a scratch directory, the rootfs untouched)
 * whose volumes are bind-mounted exactly where the rendered pod spec mounts them (ConfigMap files,
 * projected Secret items under their file names, emptyDirs), with the root remounted read-only, the
 * pod's user, no_new_privs and only the capabilities the container keeps. All share one private network
 * namespace with a pod address, in which the Service names resolve to loopback.
 *
 * What this proves: Synapse starts from the rendered command, ConfigMap and secret files under a
 * read-only root as uid 991; the StatefulSet's arguments and initdb arguments run a PostgreSQL Synapse
 * accepts; the Job registers the administrator with its mounted files and is idempotent; the router is
 * healthy on its probe and reaches Synapse through the Service port; coturn's init container assembles
 * the configuration coturn starts from, and coturn answers its TCP probe on the pod address.
 *
 * Differences from the images: Debian's `postgres` user (103) replaces the image's uid 70 (initdb needs a
 * passwd entry) and the image entrypoint's initdb/CREATE DATABASE steps are replayed from the
 * StatefulSet's POSTGRES_* variables; Debian's interpreter is `python3`; Debian's Synapse lacks authlib
 * and its coturn the Prometheus exporter, so SSO and coturn metrics are off here.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadValues } from '../../src/values/load.js';
import { compileKubernetesStack, renderKubernetesObjects } from '../../src/targets/kubernetes/render.js';
import { toPlainSorted } from '../../src/kit/sorted-json.js';
import { documentedSecrets } from '../../src/targets/kubernetes/secrets.js';
import { renderTurnSecretConf, renderTurnserverConf } from '../../src/components/coturn/config.js';
import { rootfsUnavailable, runtimeRootfs } from '../support/component-stacks.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Plain = any;

const debianPostgresUid = 103;
const podAddress = '10.244.0.10';
const postgresBin = '/usr/lib/postgresql/18/bin';

const quote = (text: string) => `'${text.replace(/'/g, `'\\''`)}'`;

interface PodMount {
  source: string;
  target: string;
  readOnly: boolean;
}

/** Materialises the volumes one container mounts, as the kubelet would, under `dir`. */
function materialise(
  dir: string,
  spec: Plain,
  container: Plain,
  objects: Plain[],
  secretValue: (name: string, key: string) => string,
  owner: { uid: number; gid: number } = { uid: spec.securityContext.runAsUser, gid: spec.securityContext.fsGroup },
): PodMount[] {
  const { uid, gid } = owner;
  return container.volumeMounts.map((mount: Plain): PodMount => {
    const volume = (spec.volumes ?? []).find((v: Plain) => v.name === mount.name);
    const source = join(dir, mount.name);
    mkdirSync(source, { recursive: true });
    const files: [string, string, number][] = [];
    if (volume?.configMap) {
      const data = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === volume.configMap.name).data;
      for (const [name, content] of Object.entries(data)) files.push([name, content as string, volume.configMap.defaultMode ?? 0o644]);
    } else if (volume?.secret) {
      for (const item of volume.secret.items) files.push([item.path, secretValue(volume.secret.secretName, item.key), volume.secret.defaultMode ?? 0o644]);
    } else if (volume?.projected) {
      for (const s of volume.projected.sources) for (const item of s.secret.items) files.push([item.path, secretValue(s.secret.name, item.key), volume.projected.defaultMode ?? 0o644]);
    } else {
      // emptyDir, a claim or a StatefulSet claim template: an empty directory the pod's group may write.
      chownSync(source, uid, gid);
      chmodSync(source, 0o2775);
    }
    for (const [name, content, mode] of files) {
      writeFileSync(join(source, name), content);
      // fsGroup: files belong to the pod's group, with the volume's defaultMode.
      chownSync(join(source, name), 0, gid);
      chmodSync(join(source, name), mode);
    }
    assert.equal(mount.subPath, undefined, 'directory mounts only in these pods');
    return { source, target: mount.mountPath, readOnly: Boolean(mount.readOnly) };
  });
}

/** Shell lines that build a pod's root: overlay of the rootfs, its mounts, hosts, then a read-only root. */
function podRootLines(podDir: string, mounts: PodMount[], hostNames: string[]): string[] {
  const root = join(podDir, 'root');
  for (const part of ['upper', 'work', 'root']) mkdirSync(join(podDir, part), { recursive: true });
  return [
    `mount -t overlay overlay -o lowerdir=${runtimeRootfs},upperdir=${podDir}/upper,workdir=${podDir}/work ${root}`,
    `mount --bind /dev ${root}/dev`,
    `mount -t proc proc ${root}/proc`,
    `echo ${quote(`127.0.0.1 ${hostNames.join(' ')}`)} >> ${root}/etc/hosts`,
    // Mount points are resolved inside the pod's root (its /var/run is an absolute symlink to /run).
    ...mounts.flatMap((m) => [
      `target=${root}$(chroot ${root} sh -c 'mkdir -p "$1" && realpath "$1"' _ ${quote(m.target)})`,
      `mount --bind ${m.source} "$target"`,
      ...(m.readOnly ? ['mount -o remount,bind,ro "$target"'] : []),
    ]),
    `mount -o remount,ro ${root}`,
  ];
}

/** The container's user, no_new_privs (allowPrivilegeEscalation: false), and only the capabilities it adds. */
const asUser = (uid: number, gid: number, container?: Plain) => {
  const added: string[] = container?.securityContext?.capabilities?.add ?? [];
  const bounding = ['-all', ...added.map((c) => `+${c.toLowerCase()}`)].join(',');
  return `setpriv --reuid=${uid} --regid=${gid} --clear-groups --no-new-privs --bounding-set=${bounding}`;
};

const envWords = (env: Plain[]) => env.map((e: Plain) => quote(`${e.name}=${e.value}`)).join(' ');

test('PostgreSQL, Synapse, the admin Job, the router and coturn run from their rendered pod specs under a read-only root', { skip: rootfsUnavailable(), timeout: 420_000 }, () => {
  const values = loadValues({
    base: {
      synapse: {
        server: {
          name: 'example.com',
          // No SSO here: Debian's Synapse lacks authlib (the image has it); OIDC mounts are unit-tested.
          adminUser: { displayName: 'Admin', email: 'admin@example.com' },
        },
      },
      // Debian's coturn is built without the Prometheus exporter (the image has it).
      coturn: { externalIP: '203.0.113.7', prometheusExporter: { enabled: false } },
    },
  });
  const stack = compileKubernetesStack(values, { release: 'mxstack', namespace: 'matrix' });
  const objects: Plain[] = renderKubernetesObjects(stack).map((o) => toPlainSorted(o));
  const pod = (kind: string, name: string) => objects.find((o) => o.kind === kind && o.metadata.name === name).spec.template.spec;
  const pg = pod('StatefulSet', 'mxstack-postgresql');
  const synapse = pod('Deployment', 'mxstack-synapse');
  const job = pod('Job', 'mxstack-admin-bootstrap');
  const router = pod('Deployment', 'mxstack-router');
  const coturn = pod('Deployment', 'mxstack-coturn');

  // Every Secret key the pods read gets a fresh random value, as `mxstack secrets init` would.
  const store = new Map<string, string>();
  for (const entry of documentedSecrets(stack)) store.set(`${entry.name}/${entry.key}`, randomBytes(18).toString('base64url'));
  const password = store.get(`${stack.secrets.postgresPassword.name}/${stack.secrets.postgresPassword.key}`)!;

  const dir = mkdtempSync(join(tmpdir(), 'mxstack-pod-layout-'));
  try {
    const generated = spawnSync(
      'unshare',
      ['-m', '--propagation', 'private', 'sh', '-c', `mount --bind /dev ${runtimeRootfs}/dev && chroot ${runtimeRootfs} python3 -c ${quote('import sys; from signedjson.key import generate_signing_key, write_signing_keys; write_signing_keys(sys.stdout, [generate_signing_key("a_test")])')}`],
      { encoding: 'utf8', timeout: 60_000 },
    );
    assert.equal(generated.status, 0, generated.stderr);
    store.set(`${stack.secrets.signingKey.name}/${stack.secrets.signingKey.key}`, generated.stdout);
    const secretValue = (name: string, key: string) => {
      const value = store.get(`${name}/${key}`);
      assert.ok(value !== undefined, `a pod mounts ${name}/${key}, which documentedSecrets does not list`);
      return value;
    };

    // Service names, short and fully qualified (the router writes them qualified), resolve to loopback.
    const services = [stack.placement.hosts.postgresql, stack.placement.hosts.synapse, stack.placement.hosts.element];
    const hosts = [...services, ...services.map((name) => `${name}.${stack.namespace}.svc.cluster.local`)];
    const pgDir = join(dir, 'pg');
    const synapseDir = join(dir, 'synapse');
    const jobDir = join(dir, 'job');
    const pgContainer = pg.containers[0];
    const synapseContainer = synapse.containers[0];
    const jobContainer = job.containers[0];
    const routerDir = join(dir, 'router');
    const routerContainer = router.containers[0];
    const coturnInitDir = join(dir, 'coturn-init');
    const coturnDir = join(dir, 'coturn');
    const coturnVolumes = join(dir, 'coturn-volumes');
    const [coturnInit] = coturn.initContainers;
    const turnserver = coturn.containers[0];
    const httpGet = (url: string) => `chroot ${jobDir}/root python3 -c "import urllib.request,sys; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())" ${quote(url)}`;
    const containerPort = (c: Plain, name: string) => c.ports.find((p: Plain) => p.name === name).containerPort;
    const lines = [
      'set -eu',
      'ip link set lo up',
      // A pod address besides loopback: coturn refuses to run with loopback listeners only, and the
      // kubelet probes the pod address.
      `ip link add eth0 type veth peer name eth1 && ip addr add ${podAddress}/24 dev eth0 && ip link set eth1 up && ip link set eth0 up`,
      ...podRootLines(pgDir, materialise(join(pgDir, 'volumes'), pg, pgContainer, objects, secretValue, { uid: debianPostgresUid, gid: debianPostgresUid }), hosts),
      ...podRootLines(synapseDir, materialise(join(synapseDir, 'volumes'), synapse, synapseContainer, objects, secretValue), hosts),
      ...podRootLines(jobDir, materialise(join(jobDir, 'volumes'), job, jobContainer, objects, secretValue), hosts),
      ...podRootLines(routerDir, materialise(join(routerDir, 'volumes'), router, routerContainer, objects, secretValue), hosts),
      // The init container and coturn share the pod's volumes (the runtime emptyDir above all).
      ...podRootLines(coturnInitDir, materialise(coturnVolumes, coturn, coturnInit, objects, secretValue), hosts),
      ...podRootLines(coturnDir, materialise(coturnVolumes, coturn, turnserver, objects, secretValue), hosts),
      'SYNAPSE_PID=; PG_PID=; ROUTER_PID=; COTURN_PID=',
      'cleanup() { kill $SYNAPSE_PID $PG_PID $ROUTER_PID $COTURN_PID 2>/dev/null || true; wait 2>/dev/null || true; }',
      'trap cleanup EXIT',
      // PostgreSQL: the image entrypoint's first start (initdb from POSTGRES_*, then the server with the
      // StatefulSet's arguments), as Debian's postgres user.
      `chroot ${pgDir}/root ${asUser(debianPostgresUid, debianPostgresUid)} env PATH=${postgresBin}:/usr/bin:/bin PGDATA=/var/lib/postgresql/18/docker ${envWords(pgContainer.env)} sh -c ${quote(
        'mkdir -p "$PGDATA" && chmod 700 "$PGDATA" && eval "initdb --username=\\"$POSTGRES_USER\\" --pwfile=\\"$POSTGRES_PASSWORD_FILE\\" $POSTGRES_INITDB_ARGS" >/dev/null && exec "$@"',
      )} postgres ${pgContainer.args.map(quote).join(' ')} > ${dir}/postgresql.log 2>&1 &`,
      'PG_PID=$!',
      `for i in $(seq 1 60); do chroot ${pgDir}/root env PATH=${postgresBin}:/usr/bin ${pgContainer.readinessProbe.exec.command.map(quote).join(' ')} >/dev/null 2>&1 && break; sleep 1; done`,
      `chroot ${pgDir}/root env PATH=${postgresBin}:/usr/bin ${pgContainer.readinessProbe.exec.command.map(quote).join(' ')}`,
      `chroot ${pgDir}/root ${asUser(debianPostgresUid, debianPostgresUid)} env PATH=${postgresBin}:/usr/bin ${envWords(pgContainer.env)} sh -c ${quote(
        'PGPASSWORD="$(cat "$POSTGRES_PASSWORD_FILE")" psql -q -h 127.0.0.1 -U "$POSTGRES_USER" -d postgres -c "CREATE DATABASE \\"$POSTGRES_DB\\""',
      )}`,
      // Synapse: the Deployment's command, as uid 991 (no passwd entry, as in the image).
      `chroot ${synapseDir}/root ${asUser(synapse.securityContext.runAsUser, synapse.securityContext.runAsGroup)} python3 ${synapseContainer.command.slice(1).map(quote).join(' ')} > ${dir}/synapse.log 2>&1 &`,
      'SYNAPSE_PID=$!',
      `HEALTH=http://127.0.0.1:${synapseContainer.ports.find((p: Plain) => p.name === 'http').containerPort}${synapseContainer.startupProbe.httpGet.path}`,
      `for i in $(seq 1 120); do chroot ${jobDir}/root python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=2)" "$HEALTH" 2>/dev/null && break; kill -0 $SYNAPSE_PID || { echo SYNAPSE-EXITED; exit 3; }; sleep 1; done`,
      // The Job, twice: registered, then already there.
      ...[1, 2].map(
        (run) =>
          `chroot ${jobDir}/root ${asUser(job.securityContext.runAsUser, job.securityContext.runAsGroup)} env ${envWords(jobContainer.env)} MXSTACK_WAIT_SECONDS=30 python3 ${quote(jobContainer.command[1])} && echo JOB-${run}-OK`,
      ),
      // The administrator can log in with the mounted password and is a server admin with the email set.
      `env ${envWords(jobContainer.env)} chroot ${jobDir}/root python3 -c ${quote(
        [
          'import json, os, urllib.request',
          'base = os.environ["MXSTACK_SYNAPSE_URL"]',
          'password = open(os.environ["MXSTACK_ADMIN_PASSWORD_FILE"]).read().strip()',
          'req = urllib.request.Request(base + "/_matrix/client/v3/login", data=json.dumps({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": os.environ["MXSTACK_ADMIN_USERNAME"]}, "password": password}).encode(), headers={"Content-Type": "application/json"})',
          'login = json.load(urllib.request.urlopen(req))',
          'req = urllib.request.Request(base + "/_synapse/admin/v2/users/" + login["user_id"], headers={"Authorization": "Bearer " + login["access_token"]})',
          'user = json.load(urllib.request.urlopen(req))',
          'print("ADMIN", user["name"], user["admin"], user["displayname"], ",".join(t["address"] for t in user["threepids"]))',
        ].join('\n'),
      )}`,
      // The router: its command as uid 99, healthy on the metrics frontend, and routing to Synapse's Service.
      `chroot ${routerDir}/root ${asUser(router.securityContext.runAsUser, router.securityContext.runAsGroup, routerContainer)} ${routerContainer.command.map(quote).join(' ')} > ${dir}/router.log 2>&1 &`,
      'ROUTER_PID=$!',
      `for i in $(seq 1 30); do ${httpGet(`http://127.0.0.1:${containerPort(routerContainer, routerContainer.readinessProbe.httpGet.port)}${routerContainer.readinessProbe.httpGet.path}`)} >/dev/null 2>&1 && break; kill -0 $ROUTER_PID || { echo ROUTER-EXITED; exit 4; }; sleep 1; done`,
      `echo ROUTER-HEALTH $(${httpGet(`http://127.0.0.1:${containerPort(routerContainer, routerContainer.readinessProbe.httpGet.port)}${routerContainer.readinessProbe.httpGet.path}`)} >/dev/null && echo ok)`,
      `for i in $(seq 1 30); do ${httpGet(`http://127.0.0.1:${containerPort(routerContainer, 'http')}/_matrix/client/versions`)} 2>/dev/null | grep -q '"versions"' && break; sleep 1; done`,
      `echo ROUTER-VERSIONS $(${httpGet(`http://127.0.0.1:${containerPort(routerContainer, 'http')}/_matrix/client/versions`)} | grep -c '"versions"')`,
      // coturn: the init container assembles the file, then turnserver reads it; probed like the kubelet does.
      `chroot ${coturnInitDir}/root ${asUser(coturn.securityContext.runAsUser, coturn.securityContext.runAsGroup, coturnInit)} ${coturnInit.command.map(quote).join(' ')}`,
      `chroot ${coturnDir}/root ${asUser(coturn.securityContext.runAsUser, coturn.securityContext.runAsGroup, turnserver)} ${turnserver.command.map(quote).join(' ')} > ${dir}/coturn.log 2>&1 &`,
      'COTURN_PID=$!',
      `for i in $(seq 1 30); do chroot ${jobDir}/root python3 -c "import socket; socket.create_connection(('${podAddress}', ${turnserver.readinessProbe.tcpSocket.port}), timeout=2)" 2>/dev/null && break; kill -0 $COTURN_PID || { echo COTURN-EXITED; exit 5; }; sleep 1; done`,
      `chroot ${jobDir}/root python3 -c "import socket; socket.create_connection(('${podAddress}', ${turnserver.readinessProbe.tcpSocket.port}), timeout=2)" && echo COTURN-LISTENING`,
      // PostgreSQL's preStop hook (a fast shutdown) stops the server while Synapse still holds connections.
      `chroot ${pgDir}/root ${asUser(debianPostgresUid, debianPostgresUid)} env PATH=${postgresBin}:/usr/bin PGDATA=/var/lib/postgresql/18/docker ${pgContainer.lifecycle.preStop.exec.command.map(quote).join(' ')} && echo PG-PRESTOP-OK`,
      'wait $PG_PID || true',
    ];
    const script = lines.join('\n');
    const result = spawnSync('timeout', ['360', 'unshare', '-m', '-n', '--propagation', 'private', 'bash', '-c', script], { encoding: 'utf8', timeout: 400_000 });
    const logs = () =>
      ['postgresql.log', 'synapse.log', 'router.log', 'coturn.log']
        .map((file) => {
          const head = spawnSync('head', ['-n', '5', join(dir, file)], { encoding: 'utf8' }).stdout;
          const tail = spawnSync('tail', ['-n', '25', join(dir, file)], { encoding: 'utf8' }).stdout;
          return `--- ${file}\n${head}...\n${tail}`;
        })
        .join('\n');
    assert.equal(result.status, 0, `${result.stdout}\n${result.stderr}\n${logs()}`);
    assert.match(result.stdout, /JOB-1-OK/);
    assert.match(result.stdout, /JOB-2-OK/);
    assert.match(result.stdout, /already exists/);
    assert.match(result.stdout, /ADMIN @admin:example\.com True Admin admin@example\.com/);
    assert.match(result.stdout, /ROUTER-HEALTH ok/);
    assert.match(result.stdout, /ROUTER-VERSIONS 1/);
    assert.match(result.stdout, /COTURN-LISTENING/);
    assert.match(result.stdout, /PG-PRESTOP-OK/);
    assert.match(readFileSync(join(dir, 'postgresql.log'), 'utf8'), /received fast shutdown request/);
    const turnSecret = store.get(`${stack.secrets.turnSharedSecret.name}/${stack.secrets.turnSharedSecret.key}`)!;
    const runtimeVolume = coturn.volumes.find((v: Plain) => v.emptyDir?.medium === 'Memory').name;
    assert.equal(readFileSync(join(coturnVolumes, runtimeVolume, 'turnserver.conf'), 'utf8'), renderTurnserverConf(stack) + renderTurnSecretConf(turnSecret));
    // Synapse's start step joined the database password into its memory-backed emptyDir, readable by uid 991 only.
    const synapseRuntime = synapse.volumes.find((v: Plain) => v.emptyDir?.medium === 'Memory').name;
    const joined = join(synapseDir, 'volumes', synapseRuntime, 'joined-secrets.yaml');
    assert.ok(readFileSync(joined, 'utf8').includes(password));
    assert.equal(statSync(joined).mode & 0o777, 0o600);
    if (process.env.MXSTACK_TEST_VERBOSE) process.stderr.write(result.stdout);
    for (const value of store.values()) {
      if (value.length < 40) assert.ok(!`${result.stdout}${result.stderr}`.includes(value), 'no secret value in the output');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const hasSetcap = spawnSync('setcap', ['-v', 'cap_net_bind_service+ep', '/bin/true']).error === undefined;

test('coturn keeps NET_BIND_SERVICE: the image\'s turnserver carries that file capability, and drop ALL alone makes exec fail', { skip: process.getuid?.() !== 0 ? 'needs root' : !hasSetcap && 'setcap not installed' }, () => {
  const stack = compileKubernetesStack(loadValues({ base: { synapse: { server: { name: 'example.com' } } } }));
  const objects: Plain[] = renderKubernetesObjects(stack).map((o) => toPlainSorted(o));
  const coturn = objects.find((o) => o.kind === 'Deployment' && o.metadata.name === 'mxstack-coturn').spec.template.spec;
  const dir = mkdtempSync(join(tmpdir(), 'mxstack-filecap-'));
  try {
    // A stand-in for /usr/bin/turnserver of coturn/coturn:alpine (`setcap CAP_NET_BIND_SERVICE=+ep`).
    const binary = join(dir, 'turnserver');
    writeFileSync(binary, readFileSync('/bin/true'));
    chmodSync(binary, 0o755);
    assert.equal(spawnSync('setcap', ['cap_net_bind_service+ep', binary]).status, 0);
    const exec = (container: Plain) => spawnSync('sh', ['-c', `${asUser(coturn.securityContext.runAsUser, coturn.securityContext.runAsGroup, container)} ${binary}`], { encoding: 'utf8' });
    const dropAll = exec({ securityContext: { capabilities: { drop: ['ALL'] } } });
    assert.notEqual(dropAll.status, 0, 'drop ALL alone: the kernel refuses the binary');
    assert.match(dropAll.stderr, /Operation not permitted/);
    const rendered = exec(coturn.containers[0]);
    assert.equal(rendered.status, 0, `the rendered coturn container can exec it: ${rendered.stderr}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
