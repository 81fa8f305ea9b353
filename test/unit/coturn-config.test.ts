import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { BlockList, isIPv4 } from 'node:net';
import { join } from 'node:path';
import { renderTurnSecretConf, renderTurnserverConf } from '../../src/components/coturn/config.js';
import { cidrToRange } from '../../src/components/coturn/peer-ranges.js';
import { freeLoopbackPort, kubernetesStack, localPlacement, localStack, rootfsScratch, rootfsUnavailable, runtimeRootfs, writeFiles } from '../support/component-stacks.js';
import { compileStack } from '../../src/stack/compile.js';
import { loadValues } from '../../src/values/load.js';

const linesOf = (conf: string): string[] => conf.trimEnd().split('\n');
const valuesOf = (conf: string, key: string): string[] =>
  linesOf(conf)
    .filter((line) => line.startsWith(`${key}=`))
    .map((line) => line.slice(key.length + 1));

/**
 * The denied-peer-ip lines as BlockLists (Node's own range matching, independent of the renderer), one
 * per family: Node would match IPv4 addresses against the IPv4-mapped IPv6 range, coturn does not.
 */
function deniedPeers(conf: string): { ipv4: BlockList; ipv6: BlockList } {
  const lists = { ipv4: new BlockList(), ipv6: new BlockList() };
  for (const range of valuesOf(conf, 'denied-peer-ip')) {
    const [first = '', last = first] = range.split(/-(?=[0-9a-f:.]+$)/i);
    const type = isIPv4(first) ? 'ipv4' : 'ipv6';
    if (first === last) lists[type].addAddress(first, type);
    else lists[type].addRange(first, last, type);
  }
  return lists;
}

const denied = (lists: { ipv4: BlockList; ipv6: BlockList }, address: string) => {
  const type = isIPv4(address) ? 'ipv4' : 'ipv6';
  return lists[type].check(address, type);
};

test('turnserver.conf never holds the shared secret; the secret file holds exactly it', () => {
  const conf = renderTurnserverConf(kubernetesStack());
  assert.doesNotMatch(conf, /static-auth-secret|use-auth-secret/);
  assert.equal(renderTurnSecretConf('Zq3xY9'), 'use-auth-secret\nstatic-auth-secret=Zq3xY9\n');
});

test('a secret coturn would misread is refused without being echoed', () => {
  for (const bad of ['two words', 'hash#tag', 'line\nbreak', '']) {
    assert.throws(
      () => renderTurnSecretConf(bad),
      (error: Error) => !(bad !== '' && error.message.includes(bad)) && /TURN shared secret/.test(error.message),
    );
  }
});

test('TLS lines appear exactly when coturn.tls is enabled', () => {
  const plain = renderTurnserverConf(kubernetesStack());
  assert.ok(linesOf(plain).includes('no-tls'));
  assert.doesNotMatch(plain, /^(tls-listening-port|cert|pkey)=/m);

  const tls = renderTurnserverConf(kubernetesStack({ coturn: { tls: { enabled: true, secretName: 'turn-tls' }, tlsListeningPort: 5350 } }));
  assert.equal(linesOf(tls).includes('no-tls'), false);
  assert.deepEqual(valuesOf(tls, 'tls-listening-port'), ['5350']);
  assert.deepEqual(valuesOf(tls, 'cert'), ['/tls/tls.crt']);
  assert.deepEqual(valuesOf(tls, 'pkey'), ['/tls/tls.key']);
  assert.doesNotMatch(tls, /^no-dtls$/m, 'coturn 4.18 rejects no-dtls (DTLS is off unless asked for)');
});

test('every private, loopback, link-local, multicast and reserved peer range is denied, public addresses are not', () => {
  const list = deniedPeers(renderTurnserverConf(kubernetesStack()));
  const inside = [
    '0.1.2.3', '10.0.0.1', '10.255.255.255', '100.64.0.1', '100.127.255.254', '127.0.0.1', '169.254.169.254', '172.16.0.1',
    '172.31.255.255', '192.0.0.8', '192.0.2.1', '192.88.99.1', '192.168.1.1', '198.18.0.1', '198.19.255.255', '198.51.100.7',
    '203.0.113.9', '240.0.0.1', '255.255.255.255', '::1', '64:ff9b::808:808', '::ffff:10.0.0.1', '100::1', '2001::1',
    '2001:1ff::1', '2002::1', 'fc00::1', 'fdff::1', 'fe80::1', 'febf::1',
    // Multicast (SSDP, mDNS, all-nodes), IPv6 documentation and the old site-local block: coturn lacked them once.
    '224.0.0.1', '239.255.255.250', 'ff02::1', 'ff05::c', '2001:db8::1', 'fec0::1',
  ];
  const outside = ['8.8.8.8', '1.1.1.1', '172.32.0.1', '100.128.0.1', '192.169.0.1', '2606:4700::1111', '2001:200::1', 'fe00::1', '223.255.255.255'];
  for (const address of inside) assert.ok(denied(list, address), `${address} must be denied`);
  for (const address of outside) assert.equal(denied(list, address), false, `${address} must stay reachable`);
});

test('CIDR blocks become the first-last ranges coturn accepts', () => {
  assert.equal(cidrToRange('172.16.0.0/12'), '172.16.0.0-172.31.255.255');
  assert.equal(cidrToRange('0.0.0.0/8'), '0.0.0.0-0.255.255.255');
  assert.equal(cidrToRange('::1/128'), '::1');
  assert.equal(cidrToRange('fc00::/7'), 'fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff');
  assert.equal(cidrToRange('2001::/23'), '2001::-2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff');
  assert.throws(() => cidrToRange('10.0.0.0/33'), /prefix length/);
});

test('no line carries a comment, and the fixed hardening lines are present', () => {
  const conf = renderTurnserverConf(kubernetesStack({ coturn: { externalIP: '198.51.100.20' } }));
  assert.doesNotMatch(conf, /#/);
  for (const line of ['fingerprint', 'no-tcp-relay', 'no-multicast-peers', 'log-file=stdout', 'simple-log']) {
    assert.ok(linesOf(conf).includes(line), `${line} present`);
  }
  assert.doesNotMatch(conf, /^no-cli$/m, 'no-cli only logs a deprecation error in 4.18; the CLI is off by default');
});

test('quotas and bandwidth limits are written only when they limit something', () => {
  const defaults = renderTurnserverConf(kubernetesStack());
  assert.deepEqual(valuesOf(defaults, 'user-quota'), ['12']);
  assert.deepEqual(valuesOf(defaults, 'total-quota'), ['1200']);
  assert.deepEqual(valuesOf(defaults, 'max-bps'), []);
  assert.deepEqual(valuesOf(defaults, 'bps-capacity'), []);
  const limited = renderTurnserverConf(kubernetesStack({ coturn: { userQuota: 0, maxBps: 64000, bpsCapacity: 10000000 } }));
  assert.deepEqual(valuesOf(limited, 'user-quota'), []);
  assert.deepEqual(valuesOf(limited, 'max-bps'), ['64000']);
  assert.deepEqual(valuesOf(limited, 'bps-capacity'), ['10000000']);
});

test('addresses: external-ip and its parts allowed as peers; relay and listening address from the placement', () => {
  const k8s = renderTurnserverConf(kubernetesStack({ coturn: { externalIP: '203.0.113.7/10.1.2.3', realm: 'turn.example.org' } }));
  assert.deepEqual(valuesOf(k8s, 'external-ip'), ['203.0.113.7/10.1.2.3']);
  assert.deepEqual(valuesOf(k8s, 'allowed-peer-ip'), ['203.0.113.7', '10.1.2.3']);
  assert.deepEqual(valuesOf(k8s, 'realm'), ['turn.example.org']);
  assert.deepEqual(valuesOf(k8s, 'listening-ip'), [], 'a wildcard bind lets coturn find the pod addresses (0.0.0.0 would be announced as relay)');
  assert.deepEqual(valuesOf(k8s, 'min-port'), ['49152']);
  assert.deepEqual(valuesOf(k8s, 'max-port'), ['49252']);

  const local = renderTurnserverConf(localStack({ synapse: { server: { name: 'example.org' } } }, '/tmp/x', 41000));
  assert.deepEqual(valuesOf(local, 'listening-ip'), ['127.0.0.1']);
  assert.deepEqual(valuesOf(local, 'listening-port'), ['41006']);
  assert.deepEqual(valuesOf(local, 'relay-ip'), ['127.0.0.1']);
  assert.deepEqual(valuesOf(local, 'external-ip'), []);
  assert.deepEqual(valuesOf(local, 'allowed-peer-ip'), [], 'loopback is never opened to peers');
  assert.deepEqual(valuesOf(local, 'realm'), ['example.org']);
});

test('the Prometheus exporter is configured where the coturn build has it', () => {
  const on = renderTurnserverConf(kubernetesStack({ coturn: { prometheusExporter: { port: 9642 } } }));
  assert.ok(linesOf(on).includes('prometheus'));
  assert.deepEqual(valuesOf(on, 'prometheus-port'), ['9642']);
  const off = renderTurnserverConf(kubernetesStack({ coturn: { prometheusExporter: { enabled: false } } }));
  assert.doesNotMatch(off, /prometheus/);
  const local = renderTurnserverConf(localStack());
  assert.doesNotMatch(local, /prometheus/, 'Debian\'s coturn reports the option as bad configuration');
});

test('extraConfig lines are appended last; a comment after a value, a line break or a secret option is refused', () => {
  const conf = renderTurnserverConf(kubernetesStack({ coturn: { extraConfig: ['verbose', 'stale-nonce=600', '# a whole-line comment is fine'] } }));
  assert.deepEqual(linesOf(conf).slice(-3), ['verbose', 'stale-nonce=600', '# a whole-line comment is fine']);

  assert.throws(() => renderTurnserverConf(kubernetesStack({ coturn: { extraConfig: ['verbose', 'max-bps=1000 # per session'] } })), /coturn\.extraConfig\[1\].*"#"/);
  assert.throws(() => renderTurnserverConf(kubernetesStack({ coturn: { extraConfig: ['verbose\nno-auth'] } })), /coturn\.extraConfig\[0\].*line break/);
  assert.throws(() => renderTurnserverConf(kubernetesStack({ coturn: { extraConfig: ['max-bps = 1000'] } })), /key=value/);
  assert.throws(
    () => renderTurnserverConf(kubernetesStack({ coturn: { extraConfig: ['static-auth-secret=hunter2-secret'] } })),
    (error: Error) => /static-auth-secret/.test(error.message) && !error.message.includes('hunter2-secret'),
  );
});

test('the real coturn 4.18 starts with the generated files and reports no bad option', { timeout: 30_000 }, async (t) => {
  const unavailable = rootfsUnavailable();
  if (unavailable) {
    t.skip(unavailable);
    return;
  }
  const scratch = rootfsScratch('coturn-config-test');
  t.after(scratch.remove);
  const values = loadValues({ base: { synapse: { server: { name: 'example.org' } }, coturn: { maxBps: 64000, extraConfig: [`pidfile=${scratch.inside}/turnserver.pid`] } } });
  // Only the TURN port is bound at start (relay ports are opened per allocation).
  const stack = compileStack(values, localPlacement(scratch.inside, undefined, { turn: await freeLoopbackPort(true) }));
  writeFiles(scratch.outside, { 'turnserver.conf': renderTurnserverConf(stack) + renderTurnSecretConf('test-secret-value') });

  const child = spawn('chroot', [runtimeRootfs, 'turnserver', '-c', join(scratch.inside, 'turnserver.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const started = new Promise<void>((resolve) => {
    const onData = (chunk: Buffer) => {
      log += chunk.toString();
      if (log.includes('Total auth threads')) resolve();
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', () => resolve());
  });
  const deadline = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await started;
  const exited = new Promise((resolve) => child.on('exit', resolve));
  child.kill('SIGINT');
  await exited;
  clearTimeout(deadline);

  assert.match(log, /Total auth threads/, `coturn did not come up:\n${log}`);
  assert.doesNotMatch(log, /Bad configuration|unrecognized option|ERROR|Aborting/i);
  assert.match(log, /Listener address to use: 127\.0\.0\.1/);
  assert.match(log, /Black listing: fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/);
  assert.match(log, /64000 bytes per second allowed per session/);
  assert.equal(log.includes('test-secret-value'), false);
});
