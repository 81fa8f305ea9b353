/**
 * Backup and restore throughput of `mxstack backup` / `mxstack restore` against a raw `pg_dump -Fc` + `tar`
 * (and raw `pg_restore` + `tar -x`) of the same data in the same run. Prints numbers, asserts nothing.
 *
 *   node --import tsx bench/backup.ts [--rows 1600000] [--media-mb 64]
 *
 * 1. `mxstack up` in a fresh temporary state directory.
 * 2. A table of --rows rows of hex text (≈ 180 bytes a row on disk: 1.6 M rows ≈ 290 MB) in Synapse's database
 *    and --media-mb of random files in the media store: bounded by the arguments, not by time.
 * 3. Raw: `pg_dump -Fc` to a file and `tar -c` of the media store, inside the runtime (same programs, same disk).
 *    mxstack: `mxstack backup` of the same stack. Throughput = bytes of database on disk + media / seconds.
 * 4. Raw: `createdb` + `pg_restore` of the raw dump and `tar -x` of the raw media tar.
 *    mxstack: `mxstack restore` (verification pass, load into a new database, media staging, swap, Synapse
 *    restart to healthy: the whole command), with its phases timed from its progress lines.
 * Peak resident memory of the two commands is sampled from /proc (it must not grow with the data).
 */
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { startLocalStack } from '../test/support/local-stack.js';
import { cliEntry, projectRoot } from '../test/support/cli.js';
import { LocalTarget } from '../src/targets/local/target-adapter.js';
import { runSql } from '../src/ops/archive/live.js';

const { values: args } = parseArgs({ options: { rows: { type: 'string', default: '1600000' }, 'media-mb': { type: 'string', default: '64' } } });
const rows = Number(args.rows);
const mediaMb = Number(args['media-mb']);
const log = (line: string) => process.stderr.write(`${new Date().toISOString()} ${line}\n`);
const load = () => loadavg().map((l) => l.toFixed(1)).join(' ');

async function timed<T>(what: string, run: () => Promise<T>): Promise<{ seconds: number; value: T }> {
  log(`${what} (load ${load()})`);
  const start = performance.now();
  const value = await run();
  const seconds = (performance.now() - start) / 1000;
  log(`${what}: ${seconds.toFixed(1)} s`);
  return { seconds, value };
}

interface CliRun {
  /** Seconds from the start at which each stderr line arrived. */
  lines: { at: number; text: string }[];
  peakRssMb: number;
}

/** Runs the CLI, timestamping its progress lines and sampling its resident memory (VmRSS) every 100 ms. */
function runCliMeasured(argv: string[]): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const child = spawn(process.execPath, [cliEntry, ...argv], { cwd: projectRoot, stdio: ['ignore', 'ignore', 'pipe'] });
    const lines: CliRun['lines'] = [];
    let peakKb = 0;
    const sample = setInterval(() => {
      try {
        const rss = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
        if (rss) peakKb = Math.max(peakKb, Number(rss[1]));
      } catch {
        // exited between samples
      }
    }, 100);
    let buffered = '';
    child.stderr.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const parts = buffered.split('\n');
      buffered = parts.pop()!;
      for (const text of parts) lines.push({ at: (performance.now() - start) / 1000, text });
    });
    child.on('error', reject);
    child.on('close', (code) => {
      clearInterval(sample);
      if (code !== 0) reject(new Error(`mxstack ${argv[0]} exited ${code}: ${lines.map((l) => l.text).join('\n')}`));
      else resolve({ lines, peakRssMb: peakKb / 1024 });
    });
  });
}

const lineAt = (run: CliRun, pattern: RegExp) => run.lines.find((l) => pattern.test(l.text))?.at ?? Number.NaN;

async function mustExec(target: LocalTarget, component: 'postgresql' | 'synapse', argv: string[], user?: string): Promise<void> {
  const result = await target.exec(component, argv, { timeoutMs: 3_600_000, ...(user ? { user } : {}) });
  if (result.exitCode !== 0) throw new Error(`${argv.join(' ')}: ${result.stderr}`);
}

const work = mkdtempSync(join(tmpdir(), 'mxstack-bench-backup-'));
// The stack's own users must be able to enter the state directory's parents.
chmodSync(work, 0o755);
const stack = await startLocalStack({ sets: ['synapse.server.name=bench.test'], stateDir: join(work, 'state') });
try {
  const target = new LocalTarget({ stateDir: stack.stateDir });
  const database = target.stack.database.name;

  await timed(`generating ${rows} rows`, () =>
    runSql(
      target,
      [
        `\\c ${database}`,
        'CREATE TABLE bench_filler (id bigint PRIMARY KEY, payload text NOT NULL);',
        `INSERT INTO bench_filler SELECT g, md5(g::text) || md5(random()::text) || md5(random()::text) || md5(random()::text) FROM generate_series(1, ${rows}) g;`,
        `ALTER TABLE bench_filler OWNER TO ${target.stack.database.user};`,
        // The first full read of fresh rows writes their hint bits: do it now, not in whichever dump runs first.
        'VACUUM (ANALYZE) bench_filler;',
        'CHECKPOINT;',
      ].join('\n'),
      'generating the benchmark table',
    ),
  );
  const databaseBytes = Number(await runSql(target, `SELECT pg_database_size('${database}');`, 'measuring the database'));

  const mediaStore = target.stack.placement.paths.mediaStore;
  const owner = statSync(mediaStore);
  const mediaDir = join(mediaStore, 'local_content', 'be', 'nc');
  mkdirSync(mediaDir, { recursive: true });
  for (let i = 0; i < mediaMb; i++) writeFileSync(join(mediaDir, `h${String(i).padStart(4, '0')}`), randomBytes(1024 * 1024));
  for (const dir of [join(mediaStore, 'local_content'), join(mediaStore, 'local_content', 'be'), mediaDir]) chownSync(dir, owner.uid, owner.gid);
  for (let i = 0; i < mediaMb; i++) chownSync(join(mediaDir, `h${String(i).padStart(4, '0')}`), owner.uid, owner.gid);
  const dataBytes = databaseBytes + mediaMb * 1024 * 1024;
  log(`data: database ${(databaseBytes / 1e6).toFixed(0)} MB on disk, media ${mediaMb} MiB`);

  // Raw, in the runtime, writing to the state directory's disk like the archive does.
  const rawDir = join(stack.stateDir, 'bench-raw');
  // Written by postgres and root inside the runtime (mkdir's mode is cut by the umask).
  mkdirSync(rawDir);
  chmodSync(rawDir, 0o777);
  const rawDump = join(rawDir, 'raw.dump');
  const rawTar = join(rawDir, 'raw-media.tar');
  const rawBackup = await timed('raw pg_dump -Fc + tar', async () => {
    await mustExec(target, 'postgresql', [...target.postgresqlTool('pg_dump'), '--format=custom', `--file=${rawDump}`, '-d', database]);
    await mustExec(target, 'synapse', ['tar', '--create', `--file=${rawTar}`, `--directory=${mediaStore}`, '.'], 'root');
  });
  const rawBytes = statSync(rawDump).size + statSync(rawTar).size;

  const archive = join(work, 'bench.tar');
  const ours = await timed('mxstack backup', () => runCliMeasured(['backup', '--state-dir', stack.stateDir, '--output', archive]));
  const archiveBytes = statSync(archive).size;

  const rawRestore = await timed('raw createdb + pg_restore + tar -x', async () => {
    await runSql(target, `CREATE DATABASE bench_raw OWNER ${target.stack.database.user} TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C';`, 'createdb');
    await mustExec(target, 'postgresql', [...target.postgresqlTool('pg_restore'), '--exit-on-error', '--no-owner', '-d', 'bench_raw', rawDump]);
    mkdirSync(join(rawDir, 'media-x'));
    await mustExec(target, 'synapse', ['tar', '--extract', `--file=${rawTar}`, `--directory=${join(rawDir, 'media-x')}`], 'root');
  });
  await runSql(target, 'DROP DATABASE bench_raw;', 'dropping bench_raw');
  rmSync(rawDir, { recursive: true, force: true });

  const restore = await timed('mxstack restore', () => runCliMeasured(['restore', archive, '--yes', '--state-dir', stack.stateDir]));
  const verified = lineAt(restore.value, /nothing changed so far/);
  const loaded = lineAt(restore.value, /stopping Synapse/);

  const mbps = (seconds: number) => (dataBytes / 1e6 / seconds).toFixed(1);
  const table = [
    ['', 'seconds', 'MB/s of data', 'output MB', 'vs raw'],
    ['raw pg_dump -Fc + tar', rawBackup.seconds.toFixed(1), mbps(rawBackup.seconds), (rawBytes / 1e6).toFixed(0), '1.00'],
    ['mxstack backup', ours.seconds.toFixed(1), mbps(ours.seconds), (archiveBytes / 1e6).toFixed(0), (rawBackup.seconds / ours.seconds).toFixed(2)],
    ['raw pg_restore + tar -x', rawRestore.seconds.toFixed(1), mbps(rawRestore.seconds), '', '1.00'],
    ['mxstack restore (whole command)', restore.seconds.toFixed(1), mbps(restore.seconds), '', (rawRestore.seconds / restore.seconds).toFixed(2)],
    ['  of which: verification pass', verified.toFixed(1), mbps(verified), '', ''],
    ['  of which: load db + stage media', (loaded - verified).toFixed(1), mbps(loaded - verified), '', (rawRestore.seconds / (loaded - verified)).toFixed(2)],
    ['  of which: stop, swap, start', (restore.seconds - loaded).toFixed(1), '', '', ''],
  ];
  const widths = table[0]!.map((_, i) => Math.max(...table.map((r) => r[i]!.length)));
  process.stdout.write(`data: database ${(databaseBytes / 1e6).toFixed(0)} MB on disk + media ${(mediaMb * 1.048576).toFixed(0)} MB = ${(dataBytes / 1e6).toFixed(0)} MB; load ${load()}\n`);
  for (const row of table) process.stdout.write(`${row.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')}\n`);
  process.stdout.write(`peak resident memory: mxstack backup ${ours.value.peakRssMb.toFixed(0)} MB, mxstack restore ${restore.value.peakRssMb.toFixed(0)} MB\n`);
} finally {
  await stack.dispose();
  rmSync(work, { recursive: true, force: true });
}
