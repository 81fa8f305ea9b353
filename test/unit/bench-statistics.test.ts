/**
 * The messaging benchmark's arithmetic (bench/statistics.ts, bench/process-usage.ts): what it prints must be
 * what it claims. No timing is measured or asserted here; the inputs are made-up observations.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  counterGrowth,
  cpuPerDeliveredMessage,
  goalChecks,
  messagePlan,
  parsePrometheusText,
  percentile,
  roomMembership,
  sumByLabel,
  summariseDeliveries,
} from '../../bench/statistics.js';
import { cpuSecondsBetween, parseProcStat } from '../../bench/process-usage.js';

test('percentile is nearest-rank over an unsorted sample', () => {
  const sample = [50, 10, 40, 20, 30, 60, 70, 80, 90, 100];
  assert.equal(percentile(sample, 0.5), 50);
  assert.equal(percentile(sample, 0.95), 100);
  assert.equal(percentile(sample, 0.9), 90);
  assert.equal(percentile([7], 0.95), 7);
  assert.ok(Number.isNaN(percentile([], 0.5)));
  assert.deepEqual(sample.slice(0, 2), [50, 10], 'the input is not sorted in place');
});

test('deliveries: msg/s counts messages every receiver saw, from the first send to the last such arrival', () => {
  const summary = summariseDeliveries([
    { sentAt: 1000, acknowledged: true, arrivals: [1100, 1300] },
    { sentAt: 1200, acknowledged: true, arrivals: [1400, 3000] },
    // seen by one receiver of two: its latency counts, the message does not count as delivered
    { sentAt: 1500, acknowledged: true, arrivals: [1600, undefined] },
    // not acknowledged: left out of deliveries and latencies, though a receiver saw it
    { sentAt: 1600, acknowledged: false, arrivals: [1700, 1700] },
  ]);
  assert.equal(summary.attempted, 4);
  assert.equal(summary.acknowledged, 3);
  assert.equal(summary.delivered, 2);
  assert.equal(summary.deliveriesExpected, 6);
  assert.equal(summary.deliveriesSeen, 5);
  // 2 delivered messages between 1000 (first send) and 3000 (last arrival of a delivered message): 2 s
  assert.equal(summary.messagesPerSecond, 1);
  // latencies 100, 300, 200, 1800, 100
  assert.equal(summary.latencyP50Ms, 200);
  assert.equal(summary.latencyP95Ms, 1800);
});

test('deliveries: nothing delivered is 0 msg/s, not a division by zero', () => {
  const summary = summariseDeliveries([{ sentAt: 0, acknowledged: false, arrivals: [undefined] }]);
  assert.equal(summary.messagesPerSecond, 0);
  assert.equal(summary.delivered, 0);
  assert.ok(Number.isNaN(summary.latencyP95Ms));
});

test('room membership: overlapping rooms of consecutive users, every user in the same number of rooms', () => {
  const membership = roomMembership(100, 50, 10);
  assert.equal(membership.length, 50);
  assert.deepEqual(membership[0], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.deepEqual(membership[49], [98, 99, 0, 1, 2, 3, 4, 5, 6, 7]);
  const roomsPerUser = new Array<number>(100).fill(0);
  for (const members of membership) {
    assert.equal(new Set(members).size, 10, 'no user twice in a room');
    for (const member of members) roomsPerUser[member]!++;
  }
  assert.deepEqual(new Set(roomsPerUser), new Set([5]));
  assert.throws(() => roomMembership(5, 2, 6), /cannot hold 6 of 5/);
});

test('message plan: rooms in turn, each room\'s members sending in turn', () => {
  const membership = roomMembership(6, 3, 2);
  const plan = Array.from({ length: 7 }, (_, index) => messagePlan(index, membership));
  assert.deepEqual(
    plan.map(({ room }) => room),
    [0, 1, 2, 0, 1, 2, 0],
  );
  assert.deepEqual(
    plan.map(({ sender }) => sender),
    [0, 2, 4, 1, 3, 5, 0],
  );
  for (const { room, sender } of plan) assert.ok(membership[room]!.includes(sender));
});

test('goals: the best preset against the monolith, the best mxstack configuration against stock', () => {
  const names = { monolith: 'monolith', stock: 'stock', presets: ['small', 'large'] };
  const results = [
    { configuration: 'monolith', messagesPerSecond: 20, latencyP95Ms: 1000 },
    { configuration: 'small', messagesPerSecond: 25, latencyP95Ms: 900 },
    { configuration: 'large', messagesPerSecond: 32, latencyP95Ms: 500 },
    { configuration: 'stock', messagesPerSecond: 24, latencyP95Ms: 800 },
  ];
  const checks = goalChecks(results, names, true);
  assert.deepEqual(
    checks.map(({ goal, ratio, met }) => [goal, Number(ratio.toFixed(3)), met]),
    [
      ['large / monolith msg/s', 1.6, true],
      ['large / monolith p95', 0.5, true],
      ['large / stock msg/s', 1.333, true],
      ['stock / large p95', 1.6, true],
    ],
  );
  const oneRoom = goalChecks(results, names, false);
  assert.deepEqual(
    oneRoom.map(({ goal }) => goal),
    ['large / stock msg/s', 'stock / large p95'],
    'the monolith goals are stated for the multi-room scenario only',
  );
  const slower = goalChecks([{ configuration: 'monolith', messagesPerSecond: 20, latencyP95Ms: 1000 }, { configuration: 'small', messagesPerSecond: 21, latencyP95Ms: 700 }], names, true);
  assert.deepEqual(
    slower.map(({ met }) => met),
    [false, false],
  );
  assert.deepEqual(goalChecks([{ configuration: 'small', messagesPerSecond: 1, latencyP95Ms: 1 }], names, true), [], 'nothing to compare with');
});

test('Prometheus text: samples with labels, counters grown between two scrapes, both counter spellings', () => {
  const before = parsePrometheusText(
    [
      '# HELP synapse_storage_transaction_time_sum_total sec',
      '# TYPE synapse_storage_transaction_time_sum_total counter',
      'synapse_storage_transaction_time_sum_total{desc="persist_events",server_name="a"} 1.5',
      'synapse_storage_transaction_time_sum_total{desc="get_users",server_name="a"} 4.0',
      'synapse_storage_schedule_time_sum{server_name="a"} 2.0',
    ].join('\n'),
  );
  const after = parsePrometheusText(
    [
      'synapse_storage_transaction_time_sum_total{desc="persist_events",server_name="a"} 3.5',
      'synapse_storage_transaction_time_sum{desc="persist_events",server_name="b"} 1.0',
      'synapse_storage_transaction_time_sum_total{desc="get_users",server_name="a"} 4.5',
      'synapse_storage_transaction_time_sum_total{desc="with \\"quote\\"",server_name="a"} 0.25',
      'synapse_storage_schedule_time_sum{server_name="a"} 2.5',
      'not a sample line',
    ].join('\n'),
  );
  assert.deepEqual(after[3]!.labels, { desc: 'with "quote"', server_name: 'a' });
  const name = 'synapse_storage_transaction_time_sum';
  const growth = counterGrowth(sumByLabel(before, name, 'desc', `${name}_total`), sumByLabel(after, name, 'desc', `${name}_total`));
  assert.deepEqual(growth, [
    ['persist_events', 3],
    ['get_users', 0.5],
    ['with "quote"', 0.25],
  ]);
  assert.deepEqual(counterGrowth(sumByLabel(before, 'synapse_storage_schedule_time_sum', 'none'), sumByLabel(after, 'synapse_storage_schedule_time_sum', 'none')), [['', 0.5]]);
});

test('/proc/<pid>/stat: parent and CPU ticks, with a command name holding spaces and parentheses', () => {
  // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime ...
  const stat = parseProcStat('4242 (python3 (x) y) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 50 7 3 20 0 3 0 12345 0 0');
  assert.deepEqual(stat, { pid: 4242, parent: 17, ticks: 310 });
  assert.equal(parseProcStat('garbage'), undefined);
  assert.deepEqual(cpuSecondsBetween({ synapse: 1, postgresql: 2 }, { synapse: 4, postgresql: 2.5, router: 1 }), { synapse: 3, postgresql: 0.5, router: 1 });
});

test('CPU per delivered message: Synapse (main and workers) with PostgreSQL apart from every process tree', () => {
  const spent = { synapse: 2, 'synapse-sync': 1, 'synapse-event-persister': 0.5, postgresql: 1.5, router: 0.4, redis: 0.1 };
  assert.deepEqual(cpuPerDeliveredMessage(spent, 50), { serverMs: 100, allMs: 110 });
  assert.equal(cpuPerDeliveredMessage(spent, 0), undefined);
  // The stock Synapse measures only its two programs.
  assert.deepEqual(cpuPerDeliveredMessage({ synapse: 3, postgresql: 1 }, 40), { serverMs: 100, allMs: 100 });
});
