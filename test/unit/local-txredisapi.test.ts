/**
 * The local target's txredisapi module (src/targets/local/python/txredisapi.py) with the runtime's real
 * Redis and Twisted, used the way Synapse uses it (synapse/replication/tcp/redis.py): a lazy connection
 * with a password for PUBLISH, GET and SET, and a subscriber connection receiving what is published.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freeLoopbackPort, rootfsScratch, rootfsUnavailable, runInRootfs, runtimeRootfs } from '../support/component-stacks.js';

const modules = fileURLToPath(new URL('../../src/targets/local/python/', import.meta.url));

const client = `
import sys
sys.path.insert(0, sys.argv[1])
from twisted.internet import reactor, defer, task
import txredisapi

port, password = int(sys.argv[2]), open(sys.argv[3]).read().strip()
received = []

class Subscriber(txredisapi.SubscriberProtocol):
    def connectionMade(self):
        super().connectionMade()
        self.subscribe(["mxstack/a", "mxstack/b"]).addCallback(lambda _: subscribed.callback(None))
    def messageReceived(self, pattern, channel, message):
        received.append((channel, message))

subscribed = defer.Deferred()

@defer.inlineCallbacks
def main():
    outbound = txredisapi.RedisFactory(uuid="out", dbid=None, poolsize=1, isLazy=True, password=password, replyTimeout=30)
    reactor.connectTCP("127.0.0.1", port, outbound)
    subscriber = txredisapi.RedisFactory(uuid="sub", dbid=None, poolsize=1, password=password, replyTimeout=30)
    subscriber.protocol = Subscriber
    reactor.connectTCP("127.0.0.1", port, subscriber)
    handler = outbound.handler
    yield subscribed
    print("ping", (yield handler.ping()))
    print("subscriber ping", (yield subscriber.pool[0].ping()))
    yield handler.publish("mxstack/a", "POSITION events master 12 13".encode())
    yield handler.publish("mxstack/b", "RDATA typing master 7 {}")
    print("set", (yield handler.set("cache:k", '{"v": 1}', pexpire=60000)))
    print("get", (yield handler.get("cache:k")))
    print("missing", (yield handler.get("cache:none")))
    try:
        yield handler.execute_command("NOSUCHCOMMAND")
    except txredisapi.ResponseError as error:
        print("error", str(error).split()[0])
    yield task.deferLater(reactor, 0.5, lambda: None)
    print("received", sorted(received))
    reactor.stop()

reactor.callWhenRunning(main)
reactor.callLater(20, reactor.stop)
reactor.run()
`;

test('the txredisapi module talks to the real Redis as Synapse uses it: password, publish, subscribe, get, set, errors', { timeout: 60_000 }, async (t) => {
  const unavailable = rootfsUnavailable();
  if (unavailable) return t.skip(unavailable);
  const scratch = rootfsScratch('txredisapi');
  t.after(scratch.remove);
  const port = await freeLoopbackPort();
  cpSync(modules, join(scratch.outside, 'python'), { recursive: true });
  writeFileSync(join(scratch.outside, 'password'), 'test-password-0f9e\n');
  writeFileSync(join(scratch.outside, 'redis.conf'), `bind 127.0.0.1\nport ${port}\nsave ""\nappendonly no\nrequirepass test-password-0f9e\n`);
  writeFileSync(join(scratch.outside, 'client.py'), client);
  const redis = spawn('chroot', [runtimeRootfs, 'redis-server', join(scratch.inside, 'redis.conf')], { stdio: 'ignore' });
  t.after(() => redis.kill('SIGKILL'));
  for (let attempt = 0; attempt < 50 && runInRootfs(['redis-cli', '-p', String(port), 'PING']).status !== 0; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const result = runInRootfs(['python3', join(scratch.inside, 'client.py'), join(scratch.inside, 'python'), String(port), join(scratch.inside, 'password')], 40_000);
  assert.equal(result.status, 0, result.output);
  const lines = result.output.split('\n');
  for (const expected of [
    'ping PONG',
    "subscriber ping ['pong', '']",
    'set OK',
    'get {"v": 1}',
    'missing None',
    'error ERR',
    "received [('mxstack/a', 'POSITION events master 12 13'), ('mxstack/b', 'RDATA typing master 7 {}')]",
  ]) {
    assert.ok(lines.includes(expected), `"${expected}" in:\n${result.output}`);
  }
});
