/** Pure parts of the local target: host apt configuration, runtime key, ports, placement, restart delays. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { debianArchitecture, hostAptOptionsFrom, hostMirrorFrom, mmdebstrapArguments, runtimeKey, runtimePackages } from '../../src/targets/local/runtime.js';
import { explicitPorts, localPlacement, localRelayPortCount, resolveLocalPorts, type LocalPorts } from '../../src/targets/local/placement.js';
import { parseProcNetTable, type PortChooser } from '../../src/targets/local/ports.js';
import { defaultStateDir, stateLayout, untraversableAncestor } from '../../src/targets/local/state.js';
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { restartDelayMs } from '../../src/targets/local/supervisor.js';
import { buildSupervisorPlan } from '../../src/targets/local/plan.js';
import { compileStack } from '../../src/stack/compile.js';
import { loadValues } from '../../src/values/load.js';

const mirror = 'http://mirror.invalid/debian';

test('the mirror comes from the first URIs: line of debian.sources', () => {
  const sources = `Types: deb\nURIs: ${mirror}\nSuites: bookworm\n\nTypes: deb\nURIs: http://other.invalid/debian-security\n`;
  assert.equal(hostMirrorFrom(sources, `deb http://third.invalid/debian bookworm main`), mirror);
});

test('without debian.sources the first deb line of sources.list is used, options skipped', () => {
  const list = `# comment\ndeb-src http://src.invalid/debian sid main\ndeb [arch=amd64 signed-by=/k.gpg] ${mirror} bookworm main\ndeb http://later.invalid/debian sid main\n`;
  assert.equal(hostMirrorFrom(undefined, list), mirror);
  assert.equal(hostMirrorFrom(undefined, undefined), undefined);
});

test('every Check-Valid-Until and Check-Date option of apt.conf.d is carried, once', () => {
  const files = [
    'Acquire::Check-Valid-Until "false";\nAcquire::Check-Date "false";\n',
    'Acquire::IndexTargets::deb::DEP-11 { DefaultEnabled "false"; };\n',
    'Acquire::Check-Valid-Until "false";\n',
  ];
  assert.deepEqual(hostAptOptionsFrom(files), ['Acquire::Check-Valid-Until "false"', 'Acquire::Check-Date "false"']);
  assert.deepEqual(hostAptOptionsFrom(['APT::Install-Recommends "0";']), []);
});

test('mmdebstrap is called with the apt variant, the packages, the host options, the suite, the target and the mirror', () => {
  const args = mmdebstrapArguments('/cache/runtime.building-1', mirror, ['Acquire::Check-Valid-Until "false"']);
  assert.deepEqual(args, [
    '--variant=apt',
    `--include=${runtimePackages.join(',')}`,
    '--aptopt=Acquire::Check-Valid-Until "false"',
    'sid',
    '/cache/runtime.building-1',
    mirror,
  ]);
  assert.ok(runtimePackages.includes('matrix-synapse') && runtimePackages.includes('coturn') && runtimePackages.includes('postgresql'));
});

test('the runtime key changes with the suite, the package list and the architecture', () => {
  const base = runtimeKey('sid', ['a', 'b'], 'amd64');
  assert.match(base, /^[0-9a-f]{12}$/);
  assert.equal(runtimeKey('sid', ['a', 'b'], 'amd64'), base);
  assert.notEqual(runtimeKey('trixie', ['a', 'b'], 'amd64'), base);
  assert.notEqual(runtimeKey('sid', ['a', 'b', 'c'], 'amd64'), base);
  assert.notEqual(runtimeKey('sid', ['a', 'b'], 'arm64'), base);
  assert.equal(debianArchitecture('x64'), 'amd64');
});

test('/proc/net tables: listening TCP sockets and bound UDP sockets with their inodes', () => {
  const tcp = [
    '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
    '   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0',
    '   1: 0100007F:A1B2 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 22222 1 0000000000000000 20 4 30 10 -1',
  ].join('\n');
  assert.deepEqual(parseProcNetTable(tcp, 'tcp'), [{ port: 8080, inode: '12345' }]);
  const udp = [
    '   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops',
    ' 1: 0100007F:0D96 00000000:0000 07 00000000:00000000 00:00000000 00000000   995        0 33333 2 0000000000000000 0',
  ].join('\n');
  assert.deepEqual(parseProcNetTable(udp, 'udp'), [{ port: 3478, inode: '33333' }]);
});

/** A chooser handing out predictable ports, to see which ports were chosen rather than kept. */
function countingChooser(): PortChooser & { chosen: number[] } {
  let next = 20000;
  const chosen: number[] = [];
  return {
    chosen,
    single() {
      chosen.push(next);
      return next++;
    },
    range(length) {
      const first = 40000;
      chosen.push(first);
      return [first, first + length - 1];
    },
  };
}

test('ports: values first, then the persisted ones, then new free ones; the relay range moves as a whole', () => {
  const first = resolveLocalPorts({ router: 8081 }, undefined, countingChooser());
  assert.equal(first.router, 8081);
  assert.equal(first.relayMax - first.relayMin + 1, localRelayPortCount);
  const values = Object.values(first);
  assert.equal(new Set(values.filter((_, i) => i < 9)).size, 9, 'no port is handed out twice');

  const chooser = countingChooser();
  const again = resolveLocalPorts({}, first, chooser);
  assert.deepEqual(again, first);
  assert.deepEqual(chooser.chosen, [], 'persisted ports are reused, nothing new is chosen');

  const relay = resolveLocalPorts({ relayMin: 50000, relayMax: 50010 }, first, countingChooser());
  assert.deepEqual([relay.relayMin, relay.relayMax], [50000, 50010]);
});

test('explicit ports are only those written in values', () => {
  const raw = { router: { port: 9999 }, coturn: { listeningPort: 3479, relayPortRange: { min: 50000 } }, synapse: { server: { name: 'x' } } };
  assert.deepEqual(explicitPorts(raw), { router: 9999, turn: 3479, relayMin: 50000 });
  assert.deepEqual(explicitPorts({}), {});
});

test('the local placement binds loopback and keeps every path inside the state directory', () => {
  const layout = stateLayout('/srv/stacks/a');
  const ports = resolveLocalPorts({}, undefined, countingChooser()) as LocalPorts;
  const placement = localPlacement(layout, ports);
  assert.equal(placement.target, 'local');
  assert.equal(placement.bindAddress, '127.0.0.1');
  assert.ok(Object.values(placement.hosts).every((host) => host === '127.0.0.1'));
  for (const path of Object.values(placement.paths)) assert.ok(path.startsWith('/srv/stacks/a/'), path);
});

test('restart delays double from one second and stop growing at thirty', () => {
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 20].map(restartDelayMs), [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
});

const users = {
  nobody: { uid: 65534, gid: 65534, home: '/nonexistent' },
  postgres: { uid: 103, gid: 103, home: '/var/lib/postgresql' },
  synapse: { uid: 100, gid: 65534, home: '/var/lib/matrix-synapse' },
  turnserver: { uid: 995, gid: 995, home: '/' },
  haproxy: { uid: 102, gid: 102, home: '/var/lib/haproxy' },
  redis: { uid: 103, gid: 103, home: '/var/lib/redis' },
};

function planFor(sets: string[]) {
  const layout = stateLayout('/srv/stacks/a');
  const ports = resolveLocalPorts({}, undefined, countingChooser());
  const stack = compileStack(loadValues({ sets }), localPlacement(layout, ports));
  return {
    ports,
    stack,
    plan: buildSupervisorPlan({
      stack,
      layout,
      rootfs: '/cache/runtime',
      postgresqlBinDir: '/usr/lib/postgresql/18/bin',
      users,
      versions: {},
      postgresPasswordFile: '/srv/stacks/a/secrets/mxstack-postgresql/postgres-password',
    }),
  };
}

test('the plan starts PostgreSQL, Synapse, coturn, then the router, each with its own user and health check', () => {
  const { plan, ports } = planFor([]);
  assert.deepEqual(plan.components.map((c) => c.name), ['postgresql', 'synapse', 'coturn', 'router']);
  const [postgresql, synapse, coturn, router] = plan.components;
  assert.equal(postgresql!.package, 'postgresql-18');
  assert.equal(postgresql!.user.uid, 103);
  assert.deepEqual(postgresql!.health, { kind: 'pg_isready', binDir: '/usr/lib/postgresql/18/bin', host: '127.0.0.1', port: ports.postgresql });
  assert.deepEqual(synapse!.argv, [
    'python3',
    '/srv/stacks/a/synapse/config/synapse-start.py',
    '/srv/stacks/a/synapse/secrets',
    '/srv/stacks/a/synapse/run/joined-secrets.yaml',
    '-m',
    'synapse.app.homeserver',
    '--config-path',
    '/srv/stacks/a/synapse/config/homeserver.yaml',
  ]);
  assert.deepEqual(synapse!.health, { kind: 'http', url: `http://127.0.0.1:${ports.synapseHttp}/health` });
  assert.equal(coturn!.user.uid, 995);
  assert.deepEqual(coturn!.health, { kind: 'tcp', host: '127.0.0.1', port: ports.turn });
  assert.deepEqual(router!.health, { kind: 'http', url: `http://127.0.0.1:${ports.routerMetrics}/health` });
  assert.deepEqual(plan.postgresql?.initdbArgs.filter((arg) => /encoding|locale|auth-local/.test(arg)), ['--encoding=UTF8', '--locale=C', '--auth-local=peer']);
});

test('synapse.jemalloc: every Synapse process asks the start step for jemalloc; by default none does', () => {
  const synapseProcesses = (sets: string[]) => planFor(sets).plan.components.filter((component) => component.name.startsWith('synapse'));
  const on = synapseProcesses(['synapse.jemalloc=true', 'synapse.workers.preset=small']);
  assert.ok(on.length > 2);
  for (const component of on) assert.equal(component.environment?.MXSTACK_SYNAPSE_JEMALLOC, '1');
  for (const component of synapseProcesses(['synapse.workers.preset=small'])) assert.equal(component.environment?.MXSTACK_SYNAPSE_JEMALLOC, undefined);
});

test('the endpoints: client and well-known through the router, metrics of what has an exporter, TURN URIs', () => {
  const { plan, ports } = planFor([]);
  const router = `http://127.0.0.1:${ports.router}/`;
  assert.equal(plan.endpoints.client, router);
  assert.equal(plan.endpoints.wellKnown, router);
  assert.equal(plan.endpoints.synapse, `http://127.0.0.1:${ports.synapseHttp}/`);
  assert.deepEqual(plan.endpoints.metrics, [`http://127.0.0.1:${ports.synapseMetrics}/_synapse/metrics`, `http://127.0.0.1:${ports.routerMetrics}/metrics`]);
  assert.deepEqual(plan.endpoints.turn, [`turn:127.0.0.1:${ports.turn}?transport=udp`, `turn:127.0.0.1:${ports.turn}?transport=tcp`]);
});

test('components the values turn off are not run', () => {
  const { plan } = planFor(['coturn.enabled=false', 'synapse.server.turn.enabled=false']);
  assert.deepEqual(plan.components.map((c) => c.name), ['postgresql', 'synapse', 'router']);
  const external = planFor(['postgresql.enabled=false', 'synapse.database.external=true', 'synapse.database.host=db.internal']);
  assert.deepEqual(external.plan.components.map((c) => c.name), ['synapse', 'coturn', 'router']);
  assert.equal(external.plan.postgresql, undefined);
});

test('the default state directory is outside /root, which the components\' users could not enter', () => {
  assert.equal(defaultStateDir({}), '/var/lib/mxstack/default');
  assert.equal(defaultStateDir({ MXSTACK_STATE_DIR: '/srv/matrix' }), '/srv/matrix');
});

test('a state directory under a directory the runtime keeps closed (like its /root) is found before anything starts', () => {
  const rootfs = mkdtempSync(join(tmpdir(), 'mxstack-traverse-'));
  try {
    chmodSync(rootfs, 0o755);
    mkdirSync(join(rootfs, 'root'), { mode: 0o700 });
    chmodSync(join(rootfs, 'root'), 0o700);
    mkdirSync(join(rootfs, 'var', 'lib'), { recursive: true, mode: 0o755 });
    assert.equal(untraversableAncestor('/root/.local/state/mxstack/default', rootfs), '/root');
    assert.equal(untraversableAncestor('/var/lib/mxstack/default', rootfs), undefined);
    // Host directories missing from the runtime (a 0700 mkdtemp parent) are created open there.
    assert.equal(untraversableAncestor('/tmp/mxstack-stack-abc/state', rootfs), undefined);
  } finally {
    rmSync(rootfs, { recursive: true, force: true });
  }
});
