import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import AjvModule from 'ajv';
import { parse as parseYaml } from 'yaml';
import { renderHomeserverConfig, synapseConfigFiles } from '../../src/components/synapse/config.js';
import { renderWorkerConfig } from '../../src/components/synapse/workers.js';
import { renderPostgresqlConf } from '../../src/components/postgresql/config.js';
import { renderRouterConfig } from '../../src/components/router/config.js';
import { loadValues } from '../../src/values/load.js';
import { ValuesError } from '../../src/values/errors.js';
import { workerPresetNames, workerProcesses } from '../../src/values/worker-pools.js';
import type { Stack } from '../../src/stack/model.js';
import { kubernetesStack, localStack } from '../support/component-stacks.js';

type Tree = Record<string, unknown>;
const Ajv = AjvModule.default ?? AjvModule;

const withWorkers = (workers: Tree, extra: Tree = {}): Tree => ({ ...extra, synapse: { ...(extra.synapse as Tree | undefined), workers } });

function validator() {
  const schema = parseYaml(readFileSync('/work/shared/vendor/synapse-config.schema.yaml', 'utf8')) as Tree;
  delete schema.$schema;
  return new Ajv({ strict: false, allErrors: true, formats: { uri: (value: string) => URL.canParse(value) } }).compile(schema);
}

test('preset none (the default) renders the monolith: no worker keys, no replication listener, no worker files', () => {
  const stack = kubernetesStack();
  const config = renderHomeserverConfig(stack);
  for (const key of ['instance_map', 'redis', 'stream_writers', 'worker_replication_secret_path', 'enable_media_repo']) assert.equal(key in config, false, key);
  assert.equal((config.listeners as Tree[]).length, 2);
  assert.deepEqual(Object.keys(synapseConfigFiles(stack)).filter((name) => name.startsWith('worker-')), []);
  assert.equal(stack.secrets.workers, undefined);
});

test('preset sync: the main process keeps every duty but incremental sync; one sync worker, Redis, and no named pool', () => {
  const stack = kubernetesStack(withWorkers({ preset: 'sync' }));
  assert.deepEqual(workerProcesses(stack.values).map((w) => w.name), ['sync-1']);
  const config = renderHomeserverConfig(stack);
  assert.deepEqual(config.instance_map, { main: { host: 'mxstack-synapse', port: 9093 } });
  assert.deepEqual(config.redis, { enabled: true, host: 'mxstack-redis', port: 6379, password_path: '/secrets/redis_password' });
  for (const key of ['stream_writers', 'federation_sender_instances', 'pusher_instances', 'run_background_tasks_on', 'enable_media_repo', 'update_user_directory_from_worker']) {
    assert.equal(key in config, false, `${key}: the main process keeps it`);
  }
  const router = renderRouterConfig(stack);
  assert.match(router, /^backend synapse_sync_access_token$/m);
  assert.doesNotMatch(router, /^backend synapse_(?!sync_)/m, 'no other pool backend');
});

test('preset small: one process of each pool, every shared key generated from the pools', () => {
  const stack = kubernetesStack(withWorkers({ preset: 'small' }));
  const names = workerProcesses(stack.values).map((w) => w.name);
  assert.equal(names.length, 14);
  const config = renderHomeserverConfig(stack);
  const replication = (config.listeners as Tree[]).find((l) => JSON.stringify(l.resources ?? []).includes('replication'));
  assert.deepEqual(replication, { port: 9093, type: 'http', tls: false, bind_addresses: ['0.0.0.0'], resources: [{ names: ['replication'], compress: false }] });
  assert.equal(config.worker_replication_secret_path, '/secrets/worker_replication_secret');
  assert.deepEqual(config.redis, { enabled: true, host: 'mxstack-redis', port: 6379, password_path: '/secrets/redis_password' });
  assert.deepEqual(config.instance_map, {
    main: { host: 'mxstack-synapse', port: 9093 },
    'event-persister-1': { host: 'mxstack-synapse-event-persister-0.mxstack-synapse-event-persister.matrix.svc.cluster.local', port: 9093 },
    'stream-writer-1': { host: 'mxstack-synapse-stream-writer-0.mxstack-synapse-stream-writer.matrix.svc.cluster.local', port: 9093 },
  });
  assert.deepEqual(config.stream_writers, {
    events: 'event-persister-1',
    typing: 'stream-writer-1',
    to_device: 'stream-writer-1',
    account_data: 'stream-writer-1',
    receipts: 'stream-writer-1',
    presence: 'stream-writer-1',
    push_rules: 'stream-writer-1',
    device_lists: 'stream-writer-1',
  });
  assert.deepEqual(config.federation_sender_instances, ['federation-sender-1']);
  assert.deepEqual(config.pusher_instances, ['pusher-1']);
  assert.equal(config.run_background_tasks_on, 'background-1');
  assert.equal(config.update_user_directory_from_worker, 'user-directory-1');
  assert.equal(config.notify_appservices_from_worker, 'appservice-notifier-1');
  assert.equal(config.enable_media_repo, false);
  assert.equal(config.media_instance_running_background_jobs, 'media-repository-1');
  assert.deepEqual(stack.secrets.workers, {
    replicationSecret: { name: 'mxstack-synapse-keys', key: 'worker-replication-secret', userProvided: false },
    redisPassword: { name: 'mxstack-redis', key: 'password', userProvided: false },
  });
});

test('preset large: events sharded over two persisters; replicas and autoscaling floors from values win over the preset', () => {
  const large = renderHomeserverConfig(kubernetesStack(withWorkers({ preset: 'large' })));
  assert.deepEqual((large.stream_writers as Tree).events, ['event-persister-1', 'event-persister-2']);
  assert.equal((large.stream_writers as Tree).typing, 'stream-writer-1');
  assert.deepEqual(large.federation_sender_instances, ['federation-sender-1', 'federation-sender-2']);
  const custom = kubernetesStack(
    withWorkers({ preset: 'none', pools: { eventPersister: { replicas: 3 }, sync: { autoscaling: { enabled: true, minReplicas: 2, maxReplicas: 6 } } } }),
  );
  assert.deepEqual(workerProcesses(custom.values).map((w) => w.name), ['sync-1', 'sync-2', 'event-persister-1', 'event-persister-2', 'event-persister-3']);
  const config = renderHomeserverConfig(custom);
  assert.deepEqual((config.stream_writers as Tree).events, ['event-persister-1', 'event-persister-2', 'event-persister-3']);
  assert.equal('federation_sender_instances' in config, false, 'pools that do not run leave their key out (the main process keeps the work)');
});

test('a worker file: generic worker, its name, an HTTP listener with its resources, replication only for stream writers, the shared log config', () => {
  const stack = localStack(withWorkers({ preset: 'small' }), '/srv/stack', 30000);
  const workers = workerProcesses(stack.values);
  const sync = renderWorkerConfig(stack, workers.find((w) => w.name === 'sync-1')!);
  assert.deepEqual(sync, {
    worker_app: 'synapse.app.generic_worker',
    worker_name: 'sync-1',
    worker_listeners: [
      { port: 30040, type: 'http', tls: false, x_forwarded: true, bind_addresses: ['127.0.0.1'], resources: [{ names: ['client'], compress: false }] },
      { port: 30042, type: 'metrics', bind_addresses: ['127.0.0.1'] },
    ],
    worker_log_config: '/srv/stack/synapse/config/log.yaml',
  });
  const persister = workers.find((w) => w.name === 'event-persister-1')!;
  const persisterListeners = renderWorkerConfig(stack, persister).worker_listeners as Tree[];
  assert.deepEqual(persisterListeners.map((l) => [l.type, l.port, (l.resources as Tree[] | undefined)?.[0]?.names]), [
    ['http', 30040 + 3 * persister.index, []],
    ['http', 30041 + 3 * persister.index, ['replication']],
    ['metrics', 30042 + 3 * persister.index, undefined],
  ]);
  const media = renderWorkerConfig(stack, workers.find((w) => w.pool === 'mediaRepository')!);
  assert.equal(media.worker_app, 'synapse.app.media_repository', 'with enable_media_repo off, only this app loads the media repository');
  // Every port of every process differs.
  const ports = [stack.placement.ports.synapseHttp, stack.placement.ports.synapseReplication, ...workers.flatMap((w) => (renderWorkerConfig(stack, w).worker_listeners as Tree[]).map((l) => l.port))];
  assert.equal(new Set(ports).size, ports.length);
});

test('homeserver.yaml with workers and every worker file pass Synapse\'s JSON Schema', () => {
  const validate = validator();
  for (const preset of workerPresetNames.filter((name) => name !== 'none')) {
    const stack: Stack = kubernetesStack(withWorkers({ preset }));
    // As the start step joins it: the database block of homeserver.yaml with its password.
    const homeserver = renderHomeserverConfig(stack) as Tree & { database: Tree & { args: Tree } };
    const merged: Tree = { ...homeserver, database: { ...homeserver.database, args: { ...homeserver.database.args, password: 'p' } } };
    for (const config of [merged, ...workerProcesses(stack.values).map((worker) => ({ ...merged, ...renderWorkerConfig(stack, worker) }))]) {
      validate(config);
      // The schema types each stream writer as one name; Synapse's loader takes a list for the sharded events stream.
      const errors = (validate.errors ?? []).filter((e) => !(e.instancePath === '/stream_writers/events' && Array.isArray((config.stream_writers as Tree).events)));
      assert.deepEqual(errors, [], `${String(config.worker_name ?? 'main')} (${preset})`);
    }
  }
});

test('PostgreSQL max_connections follows the pools by default, and a value too small is refused with the numbers', () => {
  assert.match(renderPostgresqlConf(kubernetesStack()), /^max_connections = 100$/m);
  // small: 15 processes × cp_max 10 + 10 reserved.
  assert.match(renderPostgresqlConf(kubernetesStack(withWorkers({ preset: 'small' }))), /^max_connections = 160$/m);
  assert.throws(
    () => loadValues({ base: withWorkers({ preset: 'small' }, { postgresql: { config: { maxConnections: 100 } } }) }),
    (error: unknown) =>
      error instanceof ValuesError &&
      /postgresql\.config\.maxConnections: 100 cannot hold the Synapse connection pools: 15 processes × synapse\.database\.cpMax 10 = 150, plus 10 kept for superusers and tools, needs 160/.test(error.message),
  );
  // Autoscaling counts at its ceiling.
  assert.throws(
    () => loadValues({ base: withWorkers({ pools: { sync: { autoscaling: { enabled: true, minReplicas: 1, maxReplicas: 10 } } } }, { postgresql: { config: { maxConnections: 110 } } }) }),
    /11 processes × synapse\.database\.cpMax 10 = 110/,
  );
  assert.doesNotThrow(() => loadValues({ base: withWorkers({ preset: 'small' }, { postgresql: { config: { maxConnections: 160 } } }) }));
});

test('bad worker values: unknown pool, unknown preset, a second stream writer, a pool that cannot autoscale', () => {
  assert.throws(() => loadValues({ base: withWorkers({ pools: { synchrotron: { replicas: 1 } } }) }), /synapse\.workers\.pools/);
  assert.throws(() => loadValues({ base: withWorkers({ preset: 'huge' }) }), /synapse\.workers\.preset/);
  assert.throws(() => loadValues({ base: withWorkers({ pools: { streamWriter: { replicas: 2 } } }) }), /synapse\.workers\.pools\.streamWriter\.replicas/);
  assert.throws(() => loadValues({ base: withWorkers({ pools: { eventPersister: { autoscaling: { enabled: true } } } }) }), /synapse\.workers\.pools\.eventPersister/);
  assert.throws(
    () => loadValues({ base: withWorkers({ pools: { sync: { autoscaling: { enabled: true, minReplicas: 5, maxReplicas: 2 } } } }) }),
    /synapse\.workers\.pools\.sync\.autoscaling\.minReplicas: 5 is larger than maxReplicas 2/,
  );
});
