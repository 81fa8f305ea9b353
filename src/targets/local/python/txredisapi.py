# mxstack's implementation of the part of the `txredisapi` interface that Synapse uses for Redis
# replication (synapse/replication/tcp/redis.py and external_cache.py): RedisFactory, ConnectionHandler,
# UnixConnectionHandler, SubscriberProtocol, with PUBLISH, SUBSCRIBE, PING, GET and SET.
#
# Why it exists: Synapse with workers needs `txredisapi`, which Debian does not package, so the local
# target's runtime (Debian packages only) cannot run workers without it. The supervisor puts this
# directory on the PYTHONPATH of the Synapse processes of a local stack. Kubernetes runs the upstream
# Synapse image, which has the real library; this file is never used there.
#
# Written for mxstack from the Redis protocol (RESP2) and Synapse's calls; not a copy of txredisapi.

from collections import deque

from twisted.internet import defer, protocol
from twisted.python import log as twisted_log

__all__ = ["ConnectionHandler", "UnixConnectionHandler", "RedisFactory", "RedisProtocol", "SubscriberProtocol", "ResponseError"]


class ResponseError(Exception):
    """An error reply (`-ERR ...`) from Redis."""


class ConnectionError(Exception):  # noqa: A001 - the name txredisapi callers expect
    """The connection was lost before the reply arrived."""


def _encode_argument(value, charset):
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode(charset)
    if isinstance(value, (int, float)):
        return str(value).encode("ascii")
    raise TypeError("cannot send %r to Redis" % (value,))


def encode_command(args, charset="utf-8"):
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = _encode_argument(arg, charset)
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class _Incomplete(Exception):
    pass


def parse_reply(buffer, offset, charset):
    """One RESP2 reply from buffer[offset:]: (reply, next offset); raises _Incomplete when more bytes are needed."""
    end = buffer.find(b"\r\n", offset)
    if end < 0:
        raise _Incomplete()
    kind, line = buffer[offset:offset + 1], buffer[offset + 1:end]
    after = end + 2
    if kind == b"+":
        return line.decode(charset), after
    if kind == b"-":
        return ResponseError(line.decode(charset, "replace")), after
    if kind == b":":
        return int(line), after
    if kind == b"$":
        length = int(line)
        if length < 0:
            return None, after
        if len(buffer) < after + length + 2:
            raise _Incomplete()
        data = bytes(buffer[after:after + length])
        try:
            value = data.decode(charset) if charset else data
        except UnicodeDecodeError:
            value = data
        return value, after + length + 2
    if kind == b"*":
        count = int(line)
        if count < 0:
            return None, after
        items = []
        for _ in range(count):
            item, after = parse_reply(buffer, after, charset)
            items.append(item)
        return items, after
    raise ResponseError("unexpected reply type %r from Redis" % (kind,))


class RedisProtocol(protocol.Protocol):
    """One connection: commands are answered in order, each through its Deferred."""

    def __init__(self, charset="utf-8", errors="strict", replyTimeout=None, password=None, dbid=None, convertNumbers=True):
        self.charset = charset
        self.password = password
        self.dbid = dbid
        self.replyTimeout = replyTimeout
        self.factory = None
        self.connected = 0
        self._buffer = bytearray()
        self._pending = deque()

    # Twisted's protocol callbacks.

    def connectionMade(self):
        self.connected = 1
        self._start()

    @defer.inlineCallbacks
    def _start(self):
        try:
            if self.password:
                yield self.execute_command("AUTH", self.password)
            if self.dbid:
                yield self.execute_command("SELECT", self.dbid)
        except Exception as error:
            twisted_log.err(error, "Redis refused the connection set-up")
            self.transport.loseConnection()
            return
        if self.factory is not None:
            self.factory.resetDelay()
            self.factory.addConnection(self)

    def dataReceived(self, data):
        self._buffer.extend(data)
        offset = 0
        while offset < len(self._buffer):
            try:
                reply, offset_after = parse_reply(self._buffer, offset, self.charset)
            except _Incomplete:
                break
            offset = offset_after
            self.replyReceived(reply)
        del self._buffer[:offset]

    def connectionLost(self, reason):
        self.connected = 0
        if self.factory is not None:
            self.factory.delConnection(self)
        pending, self._pending = self._pending, deque()
        for waiter in pending:
            waiter.errback(ConnectionError("lost the connection to Redis"))

    # Commands.

    def replyReceived(self, reply):
        if not self._pending:
            return
        waiter = self._pending.popleft()
        if isinstance(reply, ResponseError):
            waiter.errback(reply)
        else:
            waiter.callback(reply)

    def execute_command(self, *args):
        if not self.connected:
            return defer.fail(ConnectionError("not connected to Redis"))
        waiter = defer.Deferred()
        self._pending.append(waiter)
        self.transport.write(encode_command(args, self.charset))
        return waiter

    def ping(self):
        return self.execute_command("PING")

    def publish(self, channel, message):
        return self.execute_command("PUBLISH", channel, message)

    def get(self, key):
        return self.execute_command("GET", key)

    def set(self, key, value, expire=None, pexpire=None, only_if_not_exists=False, only_if_exists=False):
        args = ["SET", key, value]
        if expire is not None:
            args += ["EX", expire]
        if pexpire is not None:
            args += ["PX", pexpire]
        if only_if_not_exists:
            args.append("NX")
        elif only_if_exists:
            args.append("XX")
        return self.execute_command(*args)


class SubscriberProtocol(RedisProtocol):
    """A connection in subscribe mode: published messages arrive through messageReceived."""

    def messageReceived(self, pattern, channel, message):
        pass

    def replyReceived(self, reply):
        if isinstance(reply, list) and reply and isinstance(reply[0], (str, bytes)):
            kind = reply[0].decode() if isinstance(reply[0], bytes) else reply[0]
            if kind == "message" and len(reply) == 3:
                self.messageReceived(None, reply[1], reply[2])
                return
            if kind == "pmessage" and len(reply) == 4:
                self.messageReceived(reply[1], reply[2], reply[3])
                return
            if kind in ("subscribe", "psubscribe", "unsubscribe", "punsubscribe"):
                self._confirmed(reply)
                return
        RedisProtocol.replyReceived(self, reply)

    def _confirmed(self, reply):
        # A SUBSCRIBE of n channels is confirmed n times: its Deferred fires at the last one.
        if not self._pending:
            return
        waiter = self._pending[0]
        waiter.remaining -= 1
        if waiter.remaining <= 0:
            self._pending.popleft()
            waiter.callback(reply)

    def _subscription(self, command, channels):
        if isinstance(channels, (str, bytes)):
            channels = [channels]
        waiter = self.execute_command(command, *channels)
        waiter.remaining = len(channels)
        return waiter

    def subscribe(self, channels):
        return self._subscription("SUBSCRIBE", channels)

    def psubscribe(self, patterns):
        return self._subscription("PSUBSCRIBE", patterns)


class ConnectionHandler:
    """What callers hold: each command waits for a connection of the factory's pool, then runs on it."""

    def __init__(self, factory):
        self._factory = factory
        self._connected = factory.deferred

    def _on_connection(self, name, *args, **kwargs):
        return self._factory.getConnection().addCallback(lambda connection: getattr(connection, name)(*args, **kwargs))

    def execute_command(self, *args):
        return self._on_connection("execute_command", *args)

    def ping(self):
        return self._on_connection("ping")

    def publish(self, channel, message):
        return self._on_connection("publish", channel, message)

    def get(self, key):
        return self._on_connection("get", key)

    def set(self, key, value, **options):
        return self._on_connection("set", key, value, **options)

    def disconnect(self):
        self._factory.continueTrying = 0
        for connection in list(self._factory.pool):
            connection.transport.loseConnection()
        return defer.succeed(None)

    def __repr__(self):
        return "<mxstack txredisapi ConnectionHandler: %d connection(s)>" % len(self._factory.pool)


class UnixConnectionHandler(ConnectionHandler):
    pass


class RedisFactory(protocol.ReconnectingClientFactory):
    maxDelay = 10
    protocol = RedisProtocol

    def __init__(self, uuid, dbid, poolsize, isLazy=False, handler=ConnectionHandler, charset="utf-8", password=None,
                 replyTimeout=None, convertNumbers=True):
        self.uuid = uuid
        self.dbid = dbid
        self.poolsize = poolsize
        self.isLazy = isLazy
        self.charset = charset
        self.password = password
        self.replyTimeout = replyTimeout
        self.convertNumbers = convertNumbers
        self.pool = []
        self._waiting = deque()
        self.deferred = defer.Deferred()
        self.handler = handler(self)

    def buildProtocol(self, addr):
        built = self.protocol(self.charset, replyTimeout=self.replyTimeout, password=self.password, dbid=self.dbid,
                              convertNumbers=self.convertNumbers)
        built.factory = self
        return built

    def addConnection(self, connection):
        self.pool.append(connection)
        if not self.deferred.called:
            self.deferred.callback(self.handler)
        while self._waiting:
            self._waiting.popleft().callback(connection)

    def delConnection(self, connection):
        if connection in self.pool:
            self.pool.remove(connection)

    def getConnection(self):
        for connection in self.pool:
            if connection.connected:
                return defer.succeed(connection)
        waiter = defer.Deferred()
        self._waiting.append(waiter)
        return waiter
