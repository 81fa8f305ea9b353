/**
 * Backup and restore against real local stacks (one at a time): users, rooms, 200 messages and media on
 * stack A → backup → a fresh stack B of the same server name → restore → everything there, media
 * byte-identical, A's signing key served. Damaged, truncated and foreign archives are refused with the
 * stack untouched; restores killed at three points leave the previous data served after `down` + `up`;
 * the secrets part opens only with the right passphrase.
 *
 * MXSTACK_TEST_WORKERS_PRESET=small|large (the workers stage of scripts/test.sh): both stacks run that
 * synapse.workers preset, and the happy path runs (seed, backup, restore on a fresh stack, everything served
 * through the router's pools), and the restore must have stopped and restarted every worker process, not only
 * the main one. The damaged-archive, passphrase and killed-restore cases run with the single process only
 * (default, none): they test the archive and the swap, which workers do not change.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliEntry, projectRoot } from '../support/cli.js';
import { runCliAsync, startLocalStack, testWorkersPreset, workersPresetSets, type LocalStackHandle, type LocalStackStatus } from '../support/local-stack.js';
import { createPrivateRoom, loginWithPassword, matrixRequest, readAllMessageBodies, sendText, SynapseAdmin, type MatrixSession } from '../support/matrix-client.js';
import { TarReader, TarWriter } from '../../src/ops/archive/tar.js';
import { createHash } from 'node:crypto';

const serverName = 'backup.test';
const withWorkers = testWorkersPreset !== 'none';
/** Cases that do not depend on the Synapse processes: run with the single process only. */
const singleProcessOnly = withWorkers ? `runs with the single process only (this run: synapse.workers.preset=${testWorkersPreset})` : false;
const stackSets = [`synapse.server.name=${serverName}`, ...workersPresetSets()];
const work = mkdtempSync(join(tmpdir(), 'mxstack-backup-test-'));
// The stacks' state directories live below it: their own users must be able to enter it.
chmodSync(work, 0o755);
const archive = join(work, 'backup.tar');
const passphraseFile = join(work, 'passphrase');
const wrongPassphraseFile = join(work, 'wrong-passphrase');

interface Seeded {
  users: { userId: string; password: string }[];
  roomId: string;
  messages: string[];
  media: { mxc: string; bytes: Buffer }[];
  serverKey: ServerKeys;
}

interface ServerKeys {
  verify_keys: Record<string, { key: string }>;
}

const endpointsOf = (stack: LocalStackHandle) => {
  const endpoints = stack.status.endpoints;
  assert.ok(endpoints, 'a running stack reports its endpoints');
  return endpoints;
};

const serverKeys = (stack: LocalStackHandle) => matrixRequest<ServerKeys>(endpointsOf(stack).synapse, 'GET', '/_matrix/key/v2/server');

async function uploadMedia(session: MatrixSession, bytes: Buffer, name: string): Promise<string> {
  const response = await fetch(new URL(`/_matrix/media/v3/upload?filename=${name}`, session.baseUrl), {
    method: 'POST',
    headers: { authorization: `Bearer ${session.accessToken}`, 'content-type': 'application/octet-stream' },
    body: bytes,
    signal: AbortSignal.timeout(60_000),
  });
  assert.equal(response.status, 200, await response.clone().text());
  return ((await response.json()) as { content_uri: string }).content_uri;
}

async function downloadMedia(session: MatrixSession, mxc: string): Promise<Buffer> {
  const [, server, id] = /^mxc:\/\/([^/]+)\/(.+)$/.exec(mxc)!;
  const response = await fetch(new URL(`/_matrix/client/v1/media/download/${server}/${id}`, session.baseUrl), {
    headers: { authorization: `Bearer ${session.accessToken}` },
    signal: AbortSignal.timeout(60_000),
  });
  assert.equal(response.status, 200, `download of ${mxc}`);
  return Buffer.from(await response.arrayBuffer());
}

async function seed(stack: LocalStackHandle): Promise<Seeded> {
  const admin = await SynapseAdmin.login(endpointsOf(stack).client, stack.adminCredentials(), endpointsOf(stack).synapse);
  const alice = await admin.createTestUser('alice');
  const bob = await admin.createTestUser('bob');
  const roomId = await createPrivateRoom(alice.session, [bob.session], 'backed up');
  const messages: string[] = [];
  for (let i = 0; i < 200; i++) {
    const sender = i % 2 === 0 ? alice.session : bob.session;
    const body = `message ${i} ${randomBytes(6).toString('hex')}`;
    await sendText(sender, roomId, body, `seed-${i}`);
    messages.push(body);
  }
  const media = [];
  for (const [name, bytes] of [['random.bin', randomBytes(1024 * 1024)], ['note.txt', Buffer.from('a small text file\n')], ['picture.bin', randomBytes(200_000)]] as const) {
    media.push({ mxc: await uploadMedia(alice.session, bytes, name), bytes });
  }
  return {
    users: [
      { userId: alice.session.userId, password: alice.password },
      { userId: bob.session.userId, password: bob.password },
    ],
    roomId,
    messages,
    media,
    serverKey: await serverKeys(stack),
  };
}

/** Checks that the stack serves the seeded data: logins, the 200 messages in order, media byte-identical. */
async function assertServesSeed(stack: LocalStackHandle, seeded: Seeded, extraMessages: string[] = []): Promise<void> {
  const alice = await loginWithPassword(endpointsOf(stack).client, seeded.users[0]!.userId, seeded.users[0]!.password);
  const bob = await loginWithPassword(endpointsOf(stack).client, seeded.users[1]!.userId, seeded.users[1]!.password);
  assert.deepEqual(await readAllMessageBodies(bob, seeded.roomId), [...seeded.messages, ...extraMessages]);
  for (const { mxc, bytes } of seeded.media) assert.ok((await downloadMedia(alice, mxc)).equals(bytes), `media ${mxc} differs`);
  assert.deepEqual((await serverKeys(stack)).verify_keys, seeded.serverKey.verify_keys);
}

const cli = (args: string[], env?: NodeJS.ProcessEnv) => runCliAsync(args, { timeoutMs: 900_000, ...(env ? { env } : {}) });

/**
 * With workers: the restore stopped and started the main process and every worker (a new pid each, healthy),
 * and the supervisor counted no crash (a stop held by the restore is not a restart).
 */
function assertEverySynapseProcessRestarted(before: LocalStackStatus, after: LocalStackStatus): void {
  const synapseProcesses = Object.keys(before.components).filter((name) => name === 'synapse' || name.startsWith('synapse-'));
  assert.ok(synapseProcesses.length > 1, `the preset's workers run: ${synapseProcesses.join(', ')}`);
  for (const name of synapseProcesses) {
    const was = before.components[name]!;
    const now = after.components[name];
    assert.ok(was.pid !== undefined && now?.pid !== undefined, `${name}: pid before ${was.pid}, after ${now?.pid}`);
    assert.notEqual(now.pid, was.pid, `${name} was not restarted by the restore (still pid ${was.pid})`);
    assert.equal(now.healthy, true, `${name} is not healthy after the restore: ${JSON.stringify(now)}`);
    assert.equal(now.restarts, was.restarts, `${name}: the supervisor counted a crash during the restore`);
  }
}

/** Byte offsets of each entry's content in a ustar file. */
function entryOffsets(data: Buffer): { name: string; start: number; size: number }[] {
  const entries = [];
  let offset = 0;
  while (offset + 512 <= data.length && !data.subarray(offset, offset + 512).every((b) => b === 0)) {
    const header = data.subarray(offset, offset + 512);
    const name = header.subarray(0, 100).toString('latin1').replace(/\0.*$/s, '');
    const size = Number.parseInt(header.subarray(124, 136).toString('latin1').replace(/\0.*$/s, '').trim(), 8);
    entries.push({ name, start: offset + 512, size });
    offset += 512 + Math.ceil(size / 512) * 512;
  }
  return entries;
}

/** Copies the archive with another server name in its manifest (checksums recomputed: an intact foreign archive). */
async function withOtherServerName(source: string, target: string, otherName: string): Promise<void> {
  const { createReadStream } = await import('node:fs');
  const reader = new TarReader(createReadStream(source));
  const file = await open(target, 'w', 0o600);
  const writer = new TarWriter(file, Math.floor(Date.now() / 1000));
  for (;;) {
    const entry = await reader.next();
    if (!entry) break;
    const chunks: Buffer[] = [];
    for await (const chunk of reader.body(entry.size)) chunks.push(Buffer.from(chunk));
    let data = Buffer.concat(chunks);
    if (entry.name === 'manifest.json') {
      const manifest = JSON.parse(data.toString('utf8')) as { serverName: string };
      manifest.serverName = otherName;
      data = Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`);
      await writer.addEntry(entry.name, data);
      await writer.addEntry('manifest.json.sha256', Buffer.from(`${createHash('sha256').update(data).digest('hex')}\n`));
      continue;
    }
    if (entry.name === 'manifest.json.sha256') continue;
    await writer.addEntry(entry.name, data);
  }
  await writer.finish();
  await file.close();
}

/** Starts a restore that pauses at a point (test hook), waits for the pause, then kills it with SIGKILL. */
async function killRestoreAt(stack: LocalStackHandle, point: string): Promise<void> {
  const child = spawn(process.execPath, [cliEntry, 'restore', archive, '--yes', '--state-dir', stack.stateDir], {
    cwd: projectRoot,
    env: { ...process.env, MXSTACK_RESTORE_TEST_PAUSE_AT: point },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`restore never paused at ${point}:\n${stderr}`));
    }, 600_000);
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      if (stderr.includes(`paused at ${point}`)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      reject(new Error(`restore exited (${code}) before pausing at ${point}:\n${stderr}`));
    });
  });
  child.kill('SIGKILL');
  await new Promise((resolve) => child.once('close', resolve));
}

test('backup, damaged archives refused, restore on a fresh stack, killed restores keep the previous data', { timeout: 3_600_000 }, async (t) => {
  writeFileSync(passphraseFile, 'correct horse battery staple\n', { mode: 0o600 });
  writeFileSync(wrongPassphraseFile, 'not the passphrase at all\n', { mode: 0o600 });
  t.after(() => rmSync(work, { recursive: true, force: true }));

  let seeded: Seeded | undefined;
  const stackA = await startLocalStack({ sets: stackSets, stateDir: join(work, 'stack-a'), timeoutMs: 1_200_000 });
  try {
    await t.test('seed stack A and back it up (with encrypted secrets)', async () => {
      seeded = await seed(stackA);
      const result = await cli(['backup', '--state-dir', stackA.stateDir, '--output', archive, '--include-secrets', '--passphrase-file', passphraseFile]);
      assert.equal(result.status, 0, result.stderr);
      assert.match(result.stderr, /backup: wrote/);
      assert.ok(existsSync(archive));
      const verify = await cli(['backup', 'verify', archive, '--passphrase-file', passphraseFile]);
      assert.equal(verify.status, 0, verify.stderr);
      assert.match(verify.stdout, /intact/);
      assert.match(verify.stdout, new RegExp(`server: ${serverName.replace('.', '\\.')}`));
    });

    await t.test('the secrets open only with the right passphrase', { skip: singleProcessOnly }, async () => {
      const wrong = await cli(['backup', 'verify', archive, '--passphrase-file', wrongPassphraseFile]);
      assert.equal(wrong.status, 1);
      assert.match(wrong.stderr, /passphrase does not open/);
      const out = join(work, 'secrets.json');
      const wrongExport = await cli(['backup', 'secrets', archive, '--passphrase-file', wrongPassphraseFile, '--output-file', out]);
      assert.equal(wrongExport.status, 1);
      assert.ok(!existsSync(out));
      const right = await cli(['backup', 'secrets', archive, '--passphrase-file', passphraseFile, '--output-file', out]);
      assert.equal(right.status, 0, right.stderr);
      const secrets = (JSON.parse(readFileSync(out, 'utf8')) as { secrets: { name: string; key: string; value: string }[] }).secrets;
      const signing = secrets.find((s) => s.name.endsWith('signing-key'));
      assert.ok(signing, 'the signing key is among the secrets');
      // The plain archive bytes do not contain a secret value.
      const raw = readFileSync(archive);
      const password = secrets.find((s) => s.key === 'postgres-password' || s.key === 'password');
      if (password) assert.equal(raw.indexOf(Buffer.from(password.value)), -1);
    });

    await t.test('every part damaged (one byte flipped), a truncated archive and a foreign archive are refused; A still serves', { skip: singleProcessOnly }, async () => {
      const original = readFileSync(archive);
      const damaged = join(work, 'damaged.tar');
      const entries = entryOffsets(original);
      assert.ok(entries.length >= 6, `entries: ${entries.map((e) => e.name).join(', ')}`);
      for (const entry of entries) {
        const copy = Buffer.from(original);
        copy[entry.start + Math.floor(entry.size / 2)]! ^= 0x01;
        writeFileSync(damaged, copy);
        const verify = await cli(['backup', 'verify', damaged]);
        assert.equal(verify.status, 1, `${entry.name} flipped: verify said ${verify.stdout}`);
        const restore = await cli(['restore', damaged, '--yes', '--state-dir', stackA.stateDir]);
        assert.equal(restore.status, 1, `${entry.name} flipped: restore exited ${restore.status}`);
        assert.match(restore.stderr, /Nothing was changed\./);
        assert.equal(restore.stderr.trim().split('\n').filter((l) => l.startsWith('error:')).length, 1);
      }
      const truncated = join(work, 'truncated.tar');
      writeFileSync(truncated, original.subarray(0, Math.floor(original.length / 2)));
      const cut = await cli(['restore', truncated, '--yes', '--state-dir', stackA.stateDir]);
      assert.equal(cut.status, 1);
      assert.match(cut.stderr, /truncated/);
      const foreign = join(work, 'foreign.tar');
      await withOtherServerName(archive, foreign, 'other.test');
      assert.equal((await cli(['backup', 'verify', foreign])).status, 0, 'the foreign archive itself is intact');
      const refused = await cli(['restore', foreign, '--yes', '--state-dir', stackA.stateDir]);
      assert.equal(refused.status, 1);
      assert.match(refused.stderr, /from server other\.test, but this stack is backup\.test/);
      await assertServesSeed(stackA, seeded!);
    });
  } finally {
    await stackA.dispose();
  }

  const stackB = await startLocalStack({ sets: stackSets, stateDir: join(work, 'stack-b'), timeoutMs: 1_200_000 });
  try {
    await t.test('a fresh stack B restores the archive: users, 200 messages, media byte-identical, A\'s signing key', async () => {
      assert.notDeepEqual((await serverKeys(stackB)).verify_keys, seeded!.serverKey.verify_keys, 'B starts with its own key');
      const before = await stackB.readStatus();
      const result = await cli(['restore', archive, '--yes', '--state-dir', stackB.stateDir]);
      assert.equal(result.status, 0, result.stderr);
      if (withWorkers) assertEverySynapseProcessRestarted(before, await stackB.readStatus());
      await assertServesSeed(stackB, seeded!);
    });

    // Data written after the restore: what a later, interrupted restore must not lose.
    const marker = `written after the restore ${randomBytes(4).toString('hex')}`;
    if (!withWorkers) {
      const alice = await loginWithPassword(endpointsOf(stackB).client, seeded!.users[0]!.userId, seeded!.users[0]!.password);
      await sendText(alice, seeded!.roomId, marker, 'marker');
    }

    for (const point of ['database-load', 'media-staged', 'synapse-stopped']) {
      await t.test(`a restore killed at ${point} leaves the previous data served after down + up`, { skip: singleProcessOnly }, async () => {
        await killRestoreAt(stackB, point);
        await stackB.down();
        await stackB.up();
        await assertServesSeed(stackB, seeded!, [marker]);
      });
    }

    await t.test('after the interrupted attempts a restore still succeeds', { skip: singleProcessOnly }, async () => {
      const result = await cli(['restore', archive, '--yes', '--state-dir', stackB.stateDir]);
      assert.equal(result.status, 0, result.stderr);
      await assertServesSeed(stackB, seeded!);
    });
  } finally {
    await stackB.dispose();
  }
});
