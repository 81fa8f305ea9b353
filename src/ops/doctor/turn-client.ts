/**
 * A small STUN/TURN client (RFC 8489 STUN, RFC 8656 TURN) over UDP or TCP, enough to prove that a running
 * coturn hands out relays to holders of valid Synapse-issued credentials and refuses everyone else:
 * Binding, Allocate with the long-term credential mechanism, CreatePermission, Refresh.
 *
 * Message encoding and decoding are pure functions (tested against the RFC 5769 vectors); `TurnClient`
 * adds the transport (UDP, TCP, TLS for turns: URIs), transaction matching, retransmission and bounded
 * timeouts. `mxstack doctor` uses it to prove that Synapse-issued credentials open a relay.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { isIPv4, isIPv6, connect as connectTcp, type Socket as TcpSocket } from 'node:net';
import { connect as connectTls, type TLSSocket } from 'node:tls';
import { crc32 } from 'node:zlib';

export const MAGIC_COOKIE = 0x2112a442;
const HEADER_LENGTH = 20;
const FINGERPRINT_XOR = 0x5354554e;

export const StunMethod = {
  binding: 0x001,
  allocate: 0x003,
  refresh: 0x004,
  createPermission: 0x008,
} as const;

export const StunClass = {
  request: 0b00,
  indication: 0b01,
  successResponse: 0b10,
  errorResponse: 0b11,
} as const;
export type StunClassValue = (typeof StunClass)[keyof typeof StunClass];

export const StunAttr = {
  mappedAddress: 0x0001,
  username: 0x0006,
  messageIntegrity: 0x0008,
  errorCode: 0x0009,
  lifetime: 0x000d,
  xorPeerAddress: 0x0012,
  realm: 0x0014,
  nonce: 0x0015,
  xorRelayedAddress: 0x0016,
  requestedTransport: 0x0019,
  xorMappedAddress: 0x0020,
  software: 0x8022,
  fingerprint: 0x8028,
} as const;

/** IANA protocol number carried in REQUESTED-TRANSPORT: TURN relays UDP (RFC 8656 section 18.7). */
const PROTOCOL_UDP = 17;

export interface StunAttribute {
  type: number;
  value: Buffer;
}

export interface StunMessage {
  method: number;
  messageClass: StunClassValue;
  transactionId: Buffer;
  attributes: StunAttribute[];
}

export interface TransportAddress {
  family: 'IPv4' | 'IPv6';
  address: string;
  port: number;
}

// ---------------------------------------------------------------------------------------------------
// Pure encoding and decoding

/** The 14-bit message type interleaves the class bits C0 (bit 4) and C1 (bit 8) with the method bits. */
export function encodeMessageType(method: number, messageClass: StunClassValue): number {
  return (
    (method & 0x000f) |
    ((method & 0x0070) << 1) |
    ((method & 0x0f80) << 2) |
    ((messageClass & 0b01) << 4) |
    ((messageClass & 0b10) << 7)
  );
}

export function decodeMessageType(type: number): { method: number; messageClass: StunClassValue } {
  const method = (type & 0x000f) | ((type & 0x00e0) >> 1) | ((type & 0x3e00) >> 2);
  const messageClass = (((type & 0x0010) >> 4) | ((type & 0x0100) >> 7)) as StunClassValue;
  return { method, messageClass };
}

function paddedLength(length: number): number {
  return (length + 3) & ~3;
}

function encodeAttribute(attribute: StunAttribute): Buffer {
  const out = Buffer.alloc(4 + paddedLength(attribute.value.length));
  out.writeUInt16BE(attribute.type, 0);
  out.writeUInt16BE(attribute.value.length, 2);
  attribute.value.copy(out, 4);
  return out;
}

function encodeHeader(type: number, bodyLength: number, transactionId: Buffer): Buffer {
  const header = Buffer.alloc(HEADER_LENGTH);
  header.writeUInt16BE(type, 0);
  header.writeUInt16BE(bodyLength, 2);
  header.writeUInt32BE(MAGIC_COOKIE, 4);
  transactionId.copy(header, 8);
  return header;
}

/** Long-term credential key (RFC 8489 section 9.2.2): MD5(username ":" realm ":" password). */
export function longTermKey(username: string, realm: string, password: string): Buffer {
  return createHash('md5').update(`${username}:${realm}:${password}`, 'utf8').digest();
}

/** CRC-32 of the message up to the FINGERPRINT attribute, XORed with 0x5354554e (RFC 8489 section 14.7). */
function fingerprintOf(messageBeforeFingerprint: Buffer): number {
  return (crc32(messageBeforeFingerprint) ^ FINGERPRINT_XOR) >>> 0;
}

export interface EncodeOptions {
  /** Adds MESSAGE-INTEGRITY (HMAC-SHA1) with this key: the password (short-term) or `longTermKey(...)`. */
  integrityKey?: Buffer;
  /** Adds FINGERPRINT as the last attribute. */
  fingerprint?: boolean;
}

/**
 * Serialises a message. MESSAGE-INTEGRITY and FINGERPRINT are computed over the message as it stands
 * before them, with the header length already counting them, as RFC 8489 sections 14.5 and 14.7 require.
 */
export function encodeStunMessage(message: StunMessage, options: EncodeOptions = {}): Buffer {
  if (message.transactionId.length !== 12) throw new Error('a STUN transaction id is 12 bytes');
  const type = encodeMessageType(message.method, message.messageClass);
  let body = Buffer.concat(message.attributes.map(encodeAttribute));

  if (options.integrityKey) {
    const lengthWithIntegrity = body.length + 24;
    const covered = Buffer.concat([encodeHeader(type, lengthWithIntegrity, message.transactionId), body]);
    const hmac = createHmac('sha1', options.integrityKey).update(covered).digest();
    body = Buffer.concat([body, encodeAttribute({ type: StunAttr.messageIntegrity, value: hmac })]);
  }
  if (options.fingerprint) {
    const lengthWithFingerprint = body.length + 8;
    const covered = Buffer.concat([encodeHeader(type, lengthWithFingerprint, message.transactionId), body]);
    const value = Buffer.alloc(4);
    value.writeUInt32BE(fingerprintOf(covered), 0);
    body = Buffer.concat([body, encodeAttribute({ type: StunAttr.fingerprint, value })]);
  }
  return Buffer.concat([encodeHeader(type, body.length, message.transactionId), body]);
}

/** Total length of the STUN message at the start of `data`, or undefined if the header is incomplete. */
export function stunMessageLength(data: Buffer): number | undefined {
  if (data.length < HEADER_LENGTH) return undefined;
  return HEADER_LENGTH + data.readUInt16BE(2);
}

/** Parses one STUN message; throws on anything malformed, including a FINGERPRINT that does not match. */
export function decodeStunMessage(data: Buffer): StunMessage {
  if (data.length < HEADER_LENGTH) throw new Error('STUN message shorter than its header');
  const type = data.readUInt16BE(0);
  if ((type & 0xc000) !== 0) throw new Error('not a STUN message (first two bits are not zero)');
  if (data.readUInt32BE(4) !== MAGIC_COOKIE) throw new Error('not a STUN message (wrong magic cookie)');
  const length = data.readUInt16BE(2);
  if (length % 4 !== 0 || HEADER_LENGTH + length !== data.length) {
    throw new Error(`STUN length field ${length} does not match the ${data.length - HEADER_LENGTH} body bytes`);
  }

  const attributes: StunAttribute[] = [];
  let offset = HEADER_LENGTH;
  while (offset < data.length) {
    if (offset + 4 > data.length) throw new Error('truncated STUN attribute header');
    const attrType = data.readUInt16BE(offset);
    const attrLength = data.readUInt16BE(offset + 2);
    const valueStart = offset + 4;
    if (valueStart + attrLength > data.length) throw new Error(`truncated STUN attribute 0x${attrType.toString(16)}`);
    if (attrType === StunAttr.fingerprint) {
      const expected = fingerprintOf(data.subarray(0, offset));
      if (data.readUInt32BE(valueStart) !== expected) throw new Error('STUN FINGERPRINT does not match');
    }
    attributes.push({ type: attrType, value: Buffer.from(data.subarray(valueStart, valueStart + attrLength)) });
    offset = valueStart + paddedLength(attrLength);
  }
  const { method, messageClass } = decodeMessageType(type);
  return { method, messageClass, transactionId: Buffer.from(data.subarray(8, 20)), attributes };
}

/**
 * Checks MESSAGE-INTEGRITY of a raw message with `key`. The HMAC covers everything before the attribute,
 * with the header length rewritten to end just after it (attributes after it, e.g. FINGERPRINT, excluded).
 */
export function verifyMessageIntegrity(raw: Buffer, key: Buffer): boolean {
  let offset = HEADER_LENGTH;
  while (offset + 4 <= raw.length) {
    const attrType = raw.readUInt16BE(offset);
    const attrLength = raw.readUInt16BE(offset + 2);
    if (attrType === StunAttr.messageIntegrity) {
      const covered = Buffer.from(raw.subarray(0, offset));
      covered.writeUInt16BE(offset - HEADER_LENGTH + 24, 2);
      const expected = createHmac('sha1', key).update(covered).digest();
      const actual = raw.subarray(offset + 4, offset + 4 + attrLength);
      return actual.length === expected.length && timingSafeEqual(actual, expected);
    }
    offset += 4 + paddedLength(attrLength);
  }
  return false;
}

export function findAttribute(message: StunMessage, type: number): Buffer | undefined {
  return message.attributes.find((attribute) => attribute.type === type)?.value;
}

/** XOR-MAPPED-ADDRESS / XOR-RELAYED-ADDRESS / XOR-PEER-ADDRESS value (RFC 8489 section 14.2). */
export function encodeXorAddress(target: Omit<TransportAddress, 'family'>, transactionId: Buffer): Buffer {
  const xorKey = Buffer.concat([u32(MAGIC_COOKIE), transactionId]);
  const addressBytes = ipToBytes(target.address);
  const value = Buffer.alloc(4 + addressBytes.length);
  value.writeUInt8(addressBytes.length === 4 ? 0x01 : 0x02, 1);
  value.writeUInt16BE(target.port ^ (MAGIC_COOKIE >>> 16), 2);
  addressBytes.forEach((byte, index) => value.writeUInt8(byte ^ xorKey[index]!, 4 + index));
  return value;
}

export function decodeXorAddress(value: Buffer, transactionId: Buffer): TransportAddress {
  const familyCode = value.readUInt8(1);
  const addressLength = familyCode === 0x01 ? 4 : familyCode === 0x02 ? 16 : 0;
  if (addressLength === 0 || value.length < 4 + addressLength) throw new Error(`bad XOR address family ${familyCode}`);
  const xorKey = Buffer.concat([u32(MAGIC_COOKIE), transactionId]);
  const bytes = Buffer.alloc(addressLength);
  for (let index = 0; index < addressLength; index++) bytes[index] = value[4 + index]! ^ xorKey[index]!;
  return {
    family: addressLength === 4 ? 'IPv4' : 'IPv6',
    address: bytesToIp(bytes),
    port: value.readUInt16BE(2) ^ (MAGIC_COOKIE >>> 16),
  };
}

/** ERROR-CODE value (RFC 8489 section 14.8): class (hundreds) and number, then an optional UTF-8 reason. */
export function encodeErrorCode(code: number, reason: string): Buffer {
  const value = Buffer.alloc(4);
  value.writeUInt8(Math.floor(code / 100), 2);
  value.writeUInt8(code % 100, 3);
  return Buffer.concat([value, Buffer.from(reason, 'utf8')]);
}

export function decodeErrorCode(value: Buffer): { code: number; reason: string } {
  if (value.length < 4) throw new Error('ERROR-CODE shorter than 4 bytes');
  const code = (value.readUInt8(2) & 0x07) * 100 + value.readUInt8(3);
  return { code, reason: value.subarray(4).toString('utf8') };
}

function u32(value: number): Buffer {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(value >>> 0, 0);
  return out;
}

function ipToBytes(address: string): Buffer {
  if (isIPv4(address)) return Buffer.from(address.split('.').map(Number));
  if (!isIPv6(address)) throw new Error(`not an IP address: ${address}`);
  if (address.includes('.')) throw new Error(`IPv4-embedded IPv6 addresses are not supported: ${address}`);
  const [head = '', tail] = address.split('::');
  const groups = (part: string) => (part === '' ? [] : part.split(':'));
  const headGroups = groups(head);
  const tailGroups = tail === undefined ? [] : groups(tail);
  const missing = 8 - headGroups.length - tailGroups.length;
  const all = [...headGroups, ...Array<string>(tail === undefined ? 0 : missing).fill('0'), ...tailGroups];
  const out = Buffer.alloc(16);
  all.forEach((group, index) => out.writeUInt16BE(parseInt(group, 16), index * 2));
  return out;
}

function bytesToIp(bytes: Buffer): string {
  if (bytes.length === 4) return [...bytes].join('.');
  const groups: string[] = [];
  for (let index = 0; index < 16; index += 2) groups.push(bytes.readUInt16BE(index).toString(16));
  return groups.join(':');
}

// ---------------------------------------------------------------------------------------------------
// Client

/** A STUN error response, e.g. 401 Unauthorized or 403 Forbidden. The reason may be empty (coturn 4.18). */
export class StunErrorResponse extends Error {
  constructor(
    readonly method: number,
    readonly code: number,
    readonly reason: string,
  ) {
    super(`STUN ${methodName(method)} failed with ${code}${reason ? ` ${reason}` : ''}`);
    this.name = 'StunErrorResponse';
  }
}

function methodName(method: number): string {
  return Object.entries(StunMethod).find(([, value]) => value === method)?.[0] ?? `method 0x${method.toString(16)}`;
}

export interface TurnClientOptions {
  host: string;
  port: number;
  transport: 'udp' | 'tcp';
  /** Upper bound for one transaction, retransmissions included (default 5000 ms). */
  timeoutMs?: number;
  /** TLS over TCP (a turns: URI). The certificate is checked against the system CAs unless told otherwise. */
  tls?: TurnTlsOptions;
}

export interface TurnTlsOptions {
  /** Name checked against the certificate and sent as SNI (default: the host when it is a name). */
  servername?: string;
  /** Refuse an untrusted certificate (default true). With false the handshake completes and `tlsPeer` says why it is untrusted. */
  rejectUnauthorized?: boolean;
  /** Extra trusted CA certificates (PEM). */
  ca?: string;
}

/** What a TLS handshake showed about the server's certificate. */
export interface TlsPeer {
  authorized: boolean;
  authorizationError?: string;
  /** The certificate's notAfter, e.g. `Jan  1 00:00:00 2030 GMT`. */
  validTo?: string;
}

export interface TurnCredentials {
  username: string;
  password: string;
}

export interface Allocation {
  relayedAddress: TransportAddress;
  mappedAddress: TransportAddress | undefined;
  lifetimeSeconds: number;
}

interface PendingTransaction {
  resolve: (response: { message: StunMessage; raw: Buffer }) => void;
  reject: (error: Error) => void;
}

interface Challenge {
  realm: string;
  nonce: string;
}

/** Parses `turn:host:port?transport=udp` (RFC 7065), the form Synapse's voip/turnServer returns. */
export function parseTurnUri(uri: string): { secure: boolean; host: string; port: number; transport: 'udp' | 'tcp' } {
  const match = /^(turns?):(\[[^\]]+\]|[^:?]+)(?::(\d+))?(?:\?transport=(udp|tcp))?$/.exec(uri);
  if (!match) throw new Error(`not a TURN URI: ${uri}`);
  const secure = match[1] === 'turns';
  return {
    secure,
    host: match[2]!.replace(/^\[|\]$/g, ''),
    port: match[3] ? Number(match[3]) : secure ? 5349 : 3478,
    transport: (match[4] as 'udp' | 'tcp' | undefined) ?? (secure ? 'tcp' : 'udp'),
  };
}

export class TurnClient {
  private readonly pending = new Map<string, PendingTransaction>();
  private credentials: TurnCredentials | undefined;
  private challenge: Challenge | undefined;
  private tcpBuffer = Buffer.alloc(0);
  private closed = false;

  /** Set for a TLS connection: whether the certificate was trusted, and until when it is valid. */
  tlsPeer: TlsPeer | undefined;

  private constructor(
    private readonly options: Required<Omit<TurnClientOptions, 'tls'>>,
    private readonly udp: UdpSocket | undefined,
    private readonly tcp: TcpSocket | undefined,
  ) {}

  static async connect(options: TurnClientOptions): Promise<TurnClient> {
    const full = { timeoutMs: 5000, ...options };
    if (full.tls && full.transport !== 'tcp') throw new Error('TURN over TLS needs transport tcp');
    if (full.transport === 'udp') {
      const socket = createSocket(isIPv6(full.host) ? 'udp6' : 'udp4');
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject);
        socket.bind(0, () => {
          socket.off('error', reject);
          resolve();
        });
      });
      const client = new TurnClient(full, socket, undefined);
      socket.on('message', (data) => client.onDatagram(data));
      socket.on('error', (error) => client.failAll(error));
      return client;
    }
    const socket = full.tls ? await openTls(full, full.tls) : await openTcp(full);
    const client = new TurnClient(full, undefined, socket);
    if (full.tls) {
      const tlsSocket = socket as TLSSocket;
      const certificate = tlsSocket.getPeerCertificate();
      client.tlsPeer = {
        authorized: tlsSocket.authorized,
        ...(tlsSocket.authorizationError ? { authorizationError: String(tlsSocket.authorizationError) } : {}),
        ...(certificate?.valid_to ? { validTo: certificate.valid_to } : {}),
      };
    }
    socket.on('data', (chunk) => client.onTcpData(chunk));
    socket.on('error', (error) => client.failAll(error));
    socket.on('close', () => {
      client.closed = true;
      client.failAll(new Error('TCP connection closed by the server'));
    });
    return client;
  }

  /** Binding request: the server-reflexive address the server sees (XOR-MAPPED-ADDRESS). */
  async binding(): Promise<TransportAddress> {
    const { message } = await this.transact(StunMethod.binding, []);
    return this.requireAddress(message, StunAttr.xorMappedAddress);
  }

  /**
   * Allocate with the long-term credential mechanism: an unauthenticated first request draws a 401 with
   * REALM and NONCE; the second carries USERNAME, REALM, NONCE, MESSAGE-INTEGRITY and FINGERPRINT.
   * Throws StunErrorResponse (401 for wrong credentials) on refusal.
   */
  async allocate(credentials: TurnCredentials): Promise<Allocation> {
    const requestedTransport = () => [
      { type: StunAttr.requestedTransport, value: Buffer.from([PROTOCOL_UDP, 0, 0, 0]) },
    ];
    try {
      await this.transact(StunMethod.allocate, requestedTransport());
      throw new Error('the TURN server allocated a relay without asking for credentials');
    } catch (error) {
      if (!(error instanceof StunErrorResponse) || error.code !== 401 || !this.challenge) throw error;
    }
    this.credentials = credentials;
    const { message } = await this.authenticatedTransact(StunMethod.allocate, requestedTransport);
    const lifetime = findAttribute(message, StunAttr.lifetime);
    const mapped = findAttribute(message, StunAttr.xorMappedAddress);
    return {
      relayedAddress: this.requireAddress(message, StunAttr.xorRelayedAddress),
      mappedAddress: mapped ? decodeXorAddress(mapped, message.transactionId) : undefined,
      lifetimeSeconds: lifetime ? lifetime.readUInt32BE(0) : 0,
    };
  }

  /** Installs a permission for a peer IP (TURN ignores the port). Throws StunErrorResponse 403 for a denied peer. */
  async createPermission(peerAddress: string): Promise<void> {
    // The XOR key includes the transaction id, so the attribute is built for each transaction.
    await this.authenticatedTransact(StunMethod.createPermission, (transactionId) => [
      { type: StunAttr.xorPeerAddress, value: encodeXorAddress({ address: peerAddress, port: 0 }, transactionId) },
    ]);
  }

  /** Refresh with a lifetime; 0 releases the allocation. Returns the lifetime the server granted. */
  async refresh(lifetimeSeconds: number): Promise<number> {
    const { message } = await this.authenticatedTransact(StunMethod.refresh, () => [
      { type: StunAttr.lifetime, value: u32(lifetimeSeconds) },
    ]);
    const lifetime = findAttribute(message, StunAttr.lifetime);
    return lifetime ? lifetime.readUInt32BE(0) : 0;
  }

  async release(): Promise<void> {
    await this.refresh(0);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.failAll(new Error('TURN client closed'));
    this.udp?.close();
    this.tcp?.destroy();
  }

  private requireAddress(message: StunMessage, type: number): TransportAddress {
    const value = findAttribute(message, type);
    if (!value) throw new Error(`STUN ${methodName(message.method)} response lacks attribute 0x${type.toString(16)}`);
    return decodeXorAddress(value, message.transactionId);
  }

  /**
   * A request under the long-term credentials: USERNAME, REALM, NONCE, then MESSAGE-INTEGRITY; the
   * response's own MESSAGE-INTEGRITY is verified. A 438 Stale Nonce is retried once with the fresh nonce.
   */
  private async authenticatedTransact(
    method: number,
    attributesFor: (transactionId: Buffer) => StunAttribute[],
  ): Promise<{ message: StunMessage; raw: Buffer }> {
    for (let attempt = 0; ; attempt++) {
      const { credentials, challenge } = this;
      if (!credentials || !challenge) throw new Error(`STUN ${methodName(method)} needs an allocation first`);
      const key = longTermKey(credentials.username, challenge.realm, credentials.password);
      const transactionId = randomBytes(12);
      const attributes = [
        ...attributesFor(transactionId),
        { type: StunAttr.username, value: Buffer.from(credentials.username, 'utf8') },
        { type: StunAttr.realm, value: Buffer.from(challenge.realm, 'utf8') },
        { type: StunAttr.nonce, value: Buffer.from(challenge.nonce, 'utf8') },
      ];
      try {
        const response = await this.transact(method, attributes, key, transactionId);
        if (!verifyMessageIntegrity(response.raw, key)) {
          throw new Error(`STUN ${methodName(method)} response failed MESSAGE-INTEGRITY verification`);
        }
        return response;
      } catch (error) {
        if (error instanceof StunErrorResponse && error.code === 438 && attempt === 0) continue;
        throw error;
      }
    }
  }

  /** One request/response transaction. UDP retransmits with doubling intervals (RFC 8489 section 6.2.1). */
  private transact(
    method: number,
    attributes: StunAttribute[],
    integrityKey?: Buffer,
    transactionId: Buffer = randomBytes(12),
  ): Promise<{ message: StunMessage; raw: Buffer }> {
    if (this.closed) return Promise.reject(new Error('TURN client closed (or the server closed the TCP connection)'));
    const request = encodeStunMessage(
      { method, messageClass: StunClass.request, transactionId, attributes },
      { integrityKey, fingerprint: true },
    );
    const key = transactionId.toString('hex');
    const deadline = Date.now() + this.options.timeoutMs;

    return new Promise((resolve, reject) => {
      let retransmitTimer: ReturnType<typeof setTimeout> | undefined;
      const finish = () => {
        clearTimeout(overallTimer);
        clearTimeout(retransmitTimer);
        this.pending.delete(key);
      };
      const overallTimer = setTimeout(() => {
        finish();
        reject(new Error(`STUN ${methodName(method)} to ${this.options.host}:${this.options.port}/${this.options.transport} timed out after ${this.options.timeoutMs} ms`));
      }, this.options.timeoutMs);

      this.pending.set(key, {
        resolve: (response) => {
          finish();
          const { message } = response;
          if (message.messageClass === StunClass.errorResponse) {
            this.rememberChallenge(message);
            const errorCode = findAttribute(message, StunAttr.errorCode);
            const { code, reason } = errorCode ? decodeErrorCode(errorCode) : { code: 0, reason: 'no ERROR-CODE' };
            reject(new StunErrorResponse(method, code, reason));
          } else {
            resolve(response);
          }
        },
        reject: (error) => {
          finish();
          reject(error);
        },
      });

      if (this.tcp) {
        this.tcp.write(request);
        return;
      }
      let interval = 500;
      const send = () => {
        this.udp!.send(request, this.options.port, this.options.host);
        if (Date.now() + interval < deadline) {
          retransmitTimer = setTimeout(send, interval);
          interval *= 2;
        }
      };
      send();
    });
  }

  /** 401 and 438 carry the REALM and NONCE to use from now on. */
  private rememberChallenge(message: StunMessage): void {
    const realm = findAttribute(message, StunAttr.realm);
    const nonce = findAttribute(message, StunAttr.nonce);
    if (realm && nonce) this.challenge = { realm: realm.toString('utf8'), nonce: nonce.toString('utf8') };
  }

  private onDatagram(data: Buffer): void {
    this.dispatch(data);
  }

  /** STUN over TCP is a byte stream; each message's own length field delimits it. */
  private onTcpData(chunk: Buffer): void {
    this.tcpBuffer = Buffer.concat([this.tcpBuffer, chunk]);
    for (;;) {
      const length = stunMessageLength(this.tcpBuffer);
      if (length === undefined || this.tcpBuffer.length < length) return;
      this.dispatch(this.tcpBuffer.subarray(0, length));
      this.tcpBuffer = this.tcpBuffer.subarray(length);
    }
  }

  private dispatch(raw: Buffer): void {
    let message: StunMessage;
    try {
      message = decodeStunMessage(raw);
    } catch {
      return; // Not ours or corrupted: a retransmission or the timeout will settle the transaction.
    }
    this.pending.get(message.transactionId.toString('hex'))?.resolve({ message, raw: Buffer.from(raw) });
  }

  private failAll(error: Error): void {
    for (const transaction of [...this.pending.values()]) transaction.reject(error);
  }
}

type ConnectTarget = Required<Pick<TurnClientOptions, 'host' | 'port' | 'timeoutMs'>>;

/** Settles with the connected socket, or rejects on error or after the timeout (destroying the socket). */
function whenConnected<S extends TcpSocket>(target: ConnectTarget, what: string, open: (onConnect: () => void) => S): Promise<S> {
  return new Promise<S>((resolve, reject) => {
    const timer = setTimeout(() => {
      candidate.destroy();
      reject(new Error(`${what} to ${target.host}:${target.port} timed out after ${target.timeoutMs} ms`));
    }, target.timeoutMs);
    const candidate = open(() => {
      clearTimeout(timer);
      candidate.off('error', onError);
      resolve(candidate);
    });
    const onError = (error: Error) => {
      clearTimeout(timer);
      candidate.destroy();
      reject(error);
    };
    candidate.once('error', onError);
  });
}

function openTcp(target: ConnectTarget): Promise<TcpSocket> {
  return whenConnected(target, 'TCP connect', (onConnect) => connectTcp({ host: target.host, port: target.port }, onConnect));
}

function openTls(target: ConnectTarget, tls: TurnTlsOptions): Promise<TLSSocket> {
  const servername = tls.servername ?? (isIPv4(target.host) || isIPv6(target.host) ? undefined : target.host);
  return whenConnected(target, 'TLS connect', (onConnect) =>
    connectTls(
      {
        host: target.host,
        port: target.port,
        rejectUnauthorized: tls.rejectUnauthorized ?? true,
        ...(servername ? { servername } : {}),
        ...(tls.ca ? { ca: tls.ca } : {}),
      },
      onConnect,
    ),
  );
}
