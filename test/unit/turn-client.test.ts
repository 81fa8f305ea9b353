/** STUN message encoding and decoding against the RFC 5769 test vectors. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  StunAttr,
  StunClass,
  StunMethod,
  decodeErrorCode,
  decodeMessageType,
  decodeStunMessage,
  decodeXorAddress,
  encodeErrorCode,
  encodeMessageType,
  encodeStunMessage,
  encodeXorAddress,
  findAttribute,
  longTermKey,
  parseTurnUri,
  verifyMessageIntegrity,
} from '../support/turn-client.js';

function hex(text: string): Buffer {
  return Buffer.from(text.replace(/\s+/g, ''), 'hex');
}

// RFC 5769 section 2.1: short-term credential, password "VOkJxbRl1RmTxUk/WvJxBt".
const sampleRequest = hex(`
  00 01 00 58 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
  80 22 00 10 53 54 55 4e 20 74 65 73 74 20 63 6c 69 65 6e 74
  00 24 00 04 6e 00 01 ff
  80 29 00 08 93 2f f9 b1 51 26 3b 36
  00 06 00 09 65 76 74 6a 3a 68 36 76 59 20 20 20
  00 08 00 14 9a ea a7 0c bf d8 cb 56 78 1e f2 b5 b2 d3 f2 49 c1 b5 71 a2
  80 28 00 04 e5 7a 3b cf`);

// RFC 5769 section 2.2: IPv4 response, mapped address 192.0.2.1 port 32853.
const sampleIpv4Response = hex(`
  01 01 00 3c 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
  80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
  00 20 00 08 00 01 a1 47 e1 12 a6 43
  00 08 00 14 2b 91 f5 99 fd 9e 90 c3 8c 74 89 f9 2a f9 ba 53 f0 6b e7 d7
  80 28 00 04 c0 7d 4c 96`);

// RFC 5769 section 2.3: IPv6 response, mapped address 2001:db8:1234:5678:11:2233:4455:6677 port 32853.
const sampleIpv6Response = hex(`
  01 01 00 48 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
  80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
  00 20 00 14 00 02 a1 47 01 13 a9 fa a5 d3 f1 79 bc 25 f4 b5 be d2 b9 d9
  00 08 00 14 a3 82 95 4e 4b e6 7b f1 17 84 c9 7c 82 92 c2 75 bf e3 ed 41
  80 28 00 04 c8 fb 0b 4c`);

// RFC 5769 section 2.4: long-term credential. Username "マトリックス", realm "example.org",
// password "TheMatrIX" (after SASLprep), nonce "f//499k954d6OL34oL9FSTvy64sA".
const sampleLongTermRequest = hex(`
  00 01 00 60 21 12 a4 42 78 ad 34 33 c6 ad 72 c0 29 da 41 2e
  00 06 00 12 e3 83 9e e3 83 88 e3 83 aa e3 83 83 e3 82 af e3 82 b9 00 00
  00 15 00 1c 66 2f 2f 34 39 39 6b 39 35 34 64 36 4f 4c 33 34 6f 4c 39 46 53 54 76 79 36 34 73 41
  00 14 00 0b 65 78 61 6d 70 6c 65 2e 6f 72 67 00
  00 08 00 14 f6 70 24 65 6d d6 4a 3e 02 b8 e0 71 2e 85 c9 a2 8c a8 96 66`);

const shortTermPassword = Buffer.from('VOkJxbRl1RmTxUk/WvJxBt', 'utf8');
const sampleTransactionId = hex('b7 e7 a7 01 bc 34 d6 86 fa 87 df ae');

test('message type interleaves class bits with method bits (RFC 8489 section 5)', () => {
  assert.equal(encodeMessageType(StunMethod.binding, StunClass.request), 0x0001);
  assert.equal(encodeMessageType(StunMethod.binding, StunClass.successResponse), 0x0101);
  assert.equal(encodeMessageType(StunMethod.binding, StunClass.errorResponse), 0x0111);
  assert.equal(encodeMessageType(StunMethod.allocate, StunClass.request), 0x0003);
  assert.equal(encodeMessageType(StunMethod.allocate, StunClass.errorResponse), 0x0113);
  assert.equal(encodeMessageType(StunMethod.createPermission, StunClass.successResponse), 0x0108);
  for (const method of [0x001, 0x003, 0x004, 0x008, 0x009, 0x00a, 0xfff]) {
    for (const messageClass of Object.values(StunClass)) {
      assert.deepEqual(decodeMessageType(encodeMessageType(method, messageClass)), { method, messageClass });
    }
  }
});

test('RFC 5769 2.1 sample request: decodes, fingerprint and short-term MESSAGE-INTEGRITY verify', () => {
  const message = decodeStunMessage(sampleRequest);
  assert.equal(message.method, StunMethod.binding);
  assert.equal(message.messageClass, StunClass.request);
  assert.deepEqual(message.transactionId, sampleTransactionId);
  assert.equal(findAttribute(message, StunAttr.username)?.toString('utf8'), 'evtj:h6vY');
  assert.equal(findAttribute(message, StunAttr.software)?.toString('utf8'), 'STUN test client');
  assert.ok(verifyMessageIntegrity(sampleRequest, shortTermPassword));
  assert.equal(verifyMessageIntegrity(sampleRequest, Buffer.from('wrong password')), false);
});

test('RFC 5769 2.2 IPv4 response: XOR-MAPPED-ADDRESS is 192.0.2.1:32853, integrity verifies', () => {
  const message = decodeStunMessage(sampleIpv4Response);
  assert.equal(message.messageClass, StunClass.successResponse);
  const mapped = decodeXorAddress(findAttribute(message, StunAttr.xorMappedAddress)!, message.transactionId);
  assert.deepEqual(mapped, { family: 'IPv4', address: '192.0.2.1', port: 32853 });
  assert.ok(verifyMessageIntegrity(sampleIpv4Response, shortTermPassword));
  assert.deepEqual(
    encodeXorAddress({ address: '192.0.2.1', port: 32853 }, sampleTransactionId),
    hex('00 01 a1 47 e1 12 a6 43'),
  );
});

test('RFC 5769 2.3 IPv6 response: XOR-MAPPED-ADDRESS decodes and re-encodes, integrity verifies', () => {
  const message = decodeStunMessage(sampleIpv6Response);
  const mapped = decodeXorAddress(findAttribute(message, StunAttr.xorMappedAddress)!, message.transactionId);
  assert.deepEqual(mapped, { family: 'IPv6', address: '2001:db8:1234:5678:11:2233:4455:6677', port: 32853 });
  assert.ok(verifyMessageIntegrity(sampleIpv6Response, shortTermPassword));
  assert.deepEqual(
    encodeXorAddress({ address: '2001:db8:1234:5678:11:2233:4455:6677', port: 32853 }, sampleTransactionId),
    hex('00 02 a1 47 01 13 a9 fa a5 d3 f1 79 bc 25 f4 b5 be d2 b9 d9'),
  );
  assert.deepEqual(
    encodeXorAddress({ address: '2001:db8::1', port: 1 }, sampleTransactionId).subarray(4),
    encodeXorAddress({ address: '2001:0db8:0:0:0:0:0:1', port: 1 }, sampleTransactionId).subarray(4),
  );
});

test('RFC 5769 2.4 long-term request is reproduced byte for byte with key MD5(username:realm:password)', () => {
  const message = decodeStunMessage(sampleLongTermRequest);
  const username = findAttribute(message, StunAttr.username)!.toString('utf8');
  const realm = findAttribute(message, StunAttr.realm)!.toString('utf8');
  assert.equal(username, '\u30de\u30c8\u30ea\u30c3\u30af\u30b9');
  assert.equal(realm, 'example.org');
  assert.equal(findAttribute(message, StunAttr.nonce)!.toString('utf8'), 'f//499k954d6OL34oL9FSTvy64sA');

  const key = longTermKey(username, realm, 'TheMatrIX');
  assert.ok(verifyMessageIntegrity(sampleLongTermRequest, key));
  assert.equal(verifyMessageIntegrity(sampleLongTermRequest, longTermKey(username, realm, 'TheMatrix')), false);

  const withoutIntegrity = message.attributes.filter((attribute) => attribute.type !== StunAttr.messageIntegrity);
  const encoded = encodeStunMessage({ ...message, attributes: withoutIntegrity }, { integrityKey: key });
  assert.deepEqual(encoded, sampleLongTermRequest);
});

test('encoder output passes its own FINGERPRINT and MESSAGE-INTEGRITY checks; a flipped bit fails both', () => {
  const key = longTermKey('1700000000:@alice:example.com', 'turn.example.com', 'secret');
  const encoded = encodeStunMessage(
    {
      method: StunMethod.allocate,
      messageClass: StunClass.request,
      transactionId: sampleTransactionId,
      attributes: [
        { type: StunAttr.requestedTransport, value: Buffer.from([17, 0, 0, 0]) },
        { type: StunAttr.username, value: Buffer.from('1700000000:@alice:example.com') },
      ],
    },
    { integrityKey: key, fingerprint: true },
  );
  assert.equal(encoded.length % 4, 0);
  const decoded = decodeStunMessage(encoded);
  assert.deepEqual(
    decoded.attributes.map((attribute) => attribute.type),
    [StunAttr.requestedTransport, StunAttr.username, StunAttr.messageIntegrity, StunAttr.fingerprint],
  );
  assert.ok(verifyMessageIntegrity(encoded, key));

  const corrupted = Buffer.from(encoded);
  corrupted[24] = corrupted[24]! ^ 0x01;
  assert.throws(() => decodeStunMessage(corrupted), /FINGERPRINT/);
  assert.equal(verifyMessageIntegrity(corrupted, key), false);
});

test('malformed messages are refused with a reason', () => {
  assert.throws(() => decodeStunMessage(Buffer.alloc(8)), /shorter than its header/);
  const wrongCookie = Buffer.from(sampleIpv4Response);
  wrongCookie.writeUInt32BE(0x01020304, 4);
  assert.throws(() => decodeStunMessage(wrongCookie), /magic cookie/);
  assert.throws(() => decodeStunMessage(sampleIpv4Response.subarray(0, 60)), /length field/);
});

test('ERROR-CODE round-trips, including coturn 4.18 style codes without a reason phrase', () => {
  assert.deepEqual(decodeErrorCode(encodeErrorCode(401, 'Unauthorized')), { code: 401, reason: 'Unauthorized' });
  assert.deepEqual(decodeErrorCode(encodeErrorCode(403, '')), { code: 403, reason: '' });
  assert.deepEqual(decodeErrorCode(hex('00 00 04 56')), { code: 486, reason: '' });
  assert.throws(() => decodeErrorCode(hex('00 00 04')), /shorter/);
});

test('TURN URIs as Synapse hands them out (RFC 7065)', () => {
  assert.deepEqual(parseTurnUri('turn:127.0.0.1:3478?transport=udp'), {
    secure: false,
    host: '127.0.0.1',
    port: 3478,
    transport: 'udp',
  });
  assert.deepEqual(parseTurnUri('turns:turn.example.com?transport=tcp'), {
    secure: true,
    host: 'turn.example.com',
    port: 5349,
    transport: 'tcp',
  });
  assert.deepEqual(parseTurnUri('turn:[::1]:3479'), { secure: false, host: '::1', port: 3479, transport: 'udp' });
  assert.throws(() => parseTurnUri('stun:127.0.0.1'), /not a TURN URI/);
});
