/**
 * Pid files (src/targets/local/pid-file.ts) and their two uses: machine-wide port claims
 * (port-reservations.ts), what keeps two `up`s started together from choosing the same port before either
 * has bound it, and the state directory's lock (state.ts). Everything lives in a temporary directory here.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PortReservations } from '../../src/targets/local/port-reservations.js';
import { createPortChooser } from '../../src/targets/local/ports.js';
import { acquireLock, lockHolder, releaseLock, StateLockedError, stateLayout } from '../../src/targets/local/state.js';

const parent = mkdtempSync(join(tmpdir(), 'mxstack-port-claims-'));
const children: ChildProcess[] = [];
after(() => {
  for (const child of children) child.kill('SIGKILL');
  rmSync(parent, { recursive: true, force: true });
});

let dirs = 0;
const claimsDir = () => join(parent, `claims-${++dirs}`);

/** A live process other than this one, to own claims. */
function otherProcess(): number {
  const child = spawn('sleep', ['600'], { stdio: 'ignore' });
  children.push(child);
  return child.pid!;
}

/** The id of a process that has exited. */
async function exitedProcess(): Promise<number> {
  const child = spawn('true', [], { stdio: 'ignore' });
  await new Promise((resolve) => child.once('exit', resolve));
  return child.pid!;
}

/** Draws the given numbers in turn. */
const drawing = (...numbers: number[]) => () => {
  const next = numbers.shift();
  if (next === undefined) throw new Error('drew more numbers than the test planned');
  return next;
};

test('a port claimed by a live process is refused to another owner until it is released', () => {
  const dir = claimsDir();
  const mine = new PortReservations(dir);
  const theirs = new PortReservations(dir, otherProcess());
  assert.equal(theirs.tryReserve(20001), true);
  assert.equal(mine.tryReserve(20001), false);
  assert.equal(theirs.tryReserve(20001), true, 'the owner may claim its own port again');
  theirs.release(20001);
  assert.equal(mine.tryReserve(20001), true);
  assert.equal(readFileSync(join(dir, '20001'), 'utf8').trim(), String(process.pid));
  mine.releaseAll();
  assert.deepEqual(readdirSync(dir), []);
});

test('a claim of a process that exited is stale and taken over; a claim still being written is respected for a minute', async () => {
  const dir = claimsDir();
  const mine = new PortReservations(dir);
  writeFileSync(join(dir, '20002'), `${await exitedProcess()}\n`);
  assert.equal(mine.tryReserve(20002), true);
  assert.equal(readFileSync(join(dir, '20002'), 'utf8').trim(), String(process.pid));

  writeFileSync(join(dir, '20003'), '');
  assert.equal(mine.tryReserve(20003), false);
  const twoMinutesAgo = new Date(Date.now() - 120_000);
  utimesSync(join(dir, '20003'), twoMinutesAgo, twoMinutesAgo);
  assert.equal(mine.tryReserve(20003), true);
});

test('releasing leaves alone a claim that another owner has taken over since', () => {
  const dir = claimsDir();
  const mine = new PortReservations(dir);
  assert.equal(mine.tryReserve(20004), true);
  const other = otherProcess();
  writeFileSync(join(dir, '20004'), `${other}\n`);
  mine.releaseAll();
  assert.equal(readFileSync(join(dir, '20004'), 'utf8').trim(), String(other));
});

test('the chooser skips a port another process claimed, and a run of ports with one claimed is given back whole', () => {
  const dir = claimsDir();
  const theirs = new PortReservations(dir, otherProcess());
  assert.equal(theirs.tryReserve(21000), true);
  assert.equal(theirs.tryReserve(21105), true);

  const mine = new PortReservations(dir);
  const chooser = createPortChooser(new Set(), mine, drawing(21000, 21001, 21100, 21200));
  assert.equal(chooser.single(['tcp']), 21001);
  // 21100..21109 holds their 21105: none of that run stays claimed, the next run is taken.
  assert.deepEqual(chooser.range(10), [21200, 21209]);
  const claimed = readdirSync(dir).map(Number).sort((a, b) => a - b);
  assert.deepEqual(claimed, [21000, 21001, 21105, ...Array.from({ length: 10 }, (_, i) => 21200 + i)]);
});

/** Starts two processes that choose `count` ports each from one narrow band at the same moment; their choices. */
async function chooseTogether(reservationsDir: string | undefined, count: number): Promise<[number[], number[]]> {
  const signals = mkdtempSync(join(parent, 'signals-'));
  const fixture = join(import.meta.dirname, '../fixtures/ports/choose-ports.ts');
  const started = ['a', 'b'].map((name) => {
    const child = spawn(process.execPath, ['--import', 'tsx', fixture], {
      env: { ...process.env, SIGNAL_DIR: signals, NAME: name, BAND_LOW: '23000', BAND_SIZE: '300', COUNT: String(count), ...(reservationsDir ? { RESERVATIONS_DIR: reservationsDir } : {}) },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    children.push(child);
    return new Promise<void>((resolve, reject) => child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`chooser ${name} exited with ${code}`)))));
  });
  writeFileSync(join(signals, 'go'), '');
  const deadline = Date.now() + 60_000;
  while (!(existsSync(join(signals, 'a.json')) && existsSync(join(signals, 'b.json')))) {
    if (Date.now() > deadline) throw new Error('the choosers did not answer within 60 s');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const chosen = ['a', 'b'].map((name) => JSON.parse(readFileSync(join(signals, `${name}.json`), 'utf8')) as number[]) as [number[], number[]];
  writeFileSync(join(signals, 'done'), '');
  await Promise.all(started);
  return chosen;
}

test('two processes choosing from the same 300 ports at once never choose the same port', { timeout: 120_000 }, async () => {
  const [a, b] = await chooseTogether(claimsDir(), 100);
  assert.equal(new Set(a).size, 100);
  assert.equal(new Set(b).size, 100);
  assert.deepEqual(a.filter((port) => b.includes(port)), []);
});

test('without claims the same two processes do choose shared ports (what the claims prevent)', { timeout: 120_000 }, async () => {
  const [a, b] = await chooseTogether(undefined, 100);
  assert.ok(a.filter((port) => b.includes(port)).length > 0, `no shared port among ${a.length} and ${b.length}`);
});

const stateDir = () => stateLayout(mkdtempSync(join(parent, 'state-')));

test('the state lock is taken once: a second taker is refused naming the live holder; only the holder releases it', () => {
  const state = stateDir();
  acquireLock(state);
  assert.equal(lockHolder(state), process.pid);
  const other = otherProcess();
  releaseLock(state, other);
  assert.equal(lockHolder(state), process.pid, 'another pid does not release this process\'s lock');
  releaseLock(state);
  assert.equal(lockHolder(state), undefined);

  writeFileSync(state.lockFile, `${other}\n`);
  assert.throws(() => acquireLock(state), (error: Error) => error instanceof StateLockedError && error.pid === other && error.message.includes(`process ${other}`));
});

test('a state lock of an exited process is replaced; a lock still being written is respected', async () => {
  const state = stateDir();
  writeFileSync(state.lockFile, `${await exitedProcess()}\n`);
  acquireLock(state);
  assert.equal(readFileSync(state.lockFile, 'utf8').trim(), String(process.pid));
  releaseLock(state);

  writeFileSync(state.lockFile, '');
  assert.throws(() => acquireLock(state), /another process is starting it now/);
});
