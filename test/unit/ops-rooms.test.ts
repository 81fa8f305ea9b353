/** Room export/import transformations and the operations' CLI helpers (pure functions). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { importedContent, importedPowerLevels, parseRoomExport, settableState, type ExportedMessage } from '../../src/ops/rooms.js';
import type { MatrixEvent } from '../../src/ops/admin-api.js';
import { formatTable, parseDurationMs } from '../../src/cli/ops.js';
import { timestampToIso } from '../../src/ops/users.js';
import { authOffSentence } from '../../src/ops/auth-admin.js';

const message: ExportedMessage = {
  event_id: '$abc',
  type: 'm.room.message',
  sender: '@carol:example.org',
  origin_server_ts: Date.UTC(2026, 0, 2, 3, 4, 5),
  content: { msgtype: 'm.text', body: 'hi <there>', format: 'org.matrix.custom.html', formatted_body: '<b>hi</b>', 'm.relates_to': { rel_type: 'm.thread', event_id: '$old' } },
};

test('a re-posted message carries the original time and sender in its body, and where it came from', () => {
  const content = importedContent(message);
  assert.equal(content.body, '[2026-01-02T03:04:05.000Z] @carol:example.org: hi <there>');
  assert.equal(content.formatted_body, '[2026-01-02T03:04:05.000Z] @carol:example.org: <b>hi</b>');
  assert.equal(content['m.relates_to'], undefined, 'relations point at events of the old room');
  assert.deepEqual(content['dev.mxstack.imported'], { sender: '@carol:example.org', origin_server_ts: message.origin_server_ts, event_id: '$abc' });
  assert.equal(message.content.body, 'hi <there>', 'the export is not modified');
});

test('only state a new room can take is copied; the importer keeps power level 100', () => {
  const event = (type: string, stateKey = ''): MatrixEvent => ({ type, state_key: stateKey, sender: '@a:x', content: {}, origin_server_ts: 0, event_id: `$${type}` });
  const state = ['m.room.create', 'm.room.member', 'm.room.power_levels', 'm.room.name', 'm.room.topic', 'm.room.canonical_alias', 'm.room.encryption', 'm.room.join_rules', 'm.room.history_visibility', 'org.example.custom'].map((t) => event(t));
  assert.deepEqual(settableState(state).map((e) => e.type), ['m.room.name', 'm.room.topic', 'm.room.join_rules', 'm.room.history_visibility', 'org.example.custom']);
  assert.deepEqual(importedPowerLevels({ users: { '@old:x': 100, '@mod:x': 50 }, events_default: 0 }, '@admin:y'), { users: { '@old:x': 100, '@mod:x': 50, '@admin:y': 100 }, events_default: 0 });
});

test('an import file that is not an export is refused in one sentence', () => {
  assert.throws(() => parseRoomExport('not json', 'f.json'), /^AdminApiError: f.json is not JSON/);
  assert.throws(() => parseRoomExport('{"format":"other"}', 'f.json'), /f.json is not a room export \(format mxstack-room-export, version 1\)/);
  const valid = { format: 'mxstack-room-export', version: 1, room: { room_id: '!a:x' }, state: [], messages: [] };
  assert.equal(parseRoomExport(JSON.stringify(valid), 'f.json').room.room_id, '!a:x');
});

test('CLI helpers: durations, tables, timestamps in seconds or milliseconds, the 2FA-off sentence', () => {
  assert.equal(parseDurationMs('90s', '--x'), 90_000);
  assert.equal(parseDurationMs('7d', '--x'), 7 * 86_400_000);
  assert.throws(() => parseDurationMs('7 weeks', '--valid-for'), /--valid-for 7 weeks: expected a duration like 30m, 12h or 7d\./);
  assert.equal(formatTable(['A', 'LONG HEADER', 'C'], [['xxxx', 'y', 'last column']]), 'A     LONG HEADER  C\nxxxx  y            last column');
  assert.equal(timestampToIso(1_700_000_000), '2023-11-14T22:13:20.000Z');
  assert.equal(timestampToIso(1_700_000_000_000), '2023-11-14T22:13:20.000Z');
  assert.equal(timestampToIso(null), null);
  assert.match(authOffSentence('the local stack in /x'), /^two-factor authentication is off on the local stack in \/x \(synapse\.server\.mfa\.totp\.enabled and synapse\.server\.mfa\.webauthn\.enabled are false\)/);
});
