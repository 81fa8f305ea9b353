/**
 * How long the CLI takes to start and answer: `mxstack --help`, `mxstack status` (a local state directory
 * where no stack runs) and `node -e 0` (Node's own start, the floor) in the same run, interleaved so a
 * change in the machine's load hits all three alike. Prints numbers; never passes or fails.
 *
 *   npm run bench:cli -- [--runs 15]
 *
 * Builds dist/ first when it is not current (bin/mxstack.js would otherwise run the sources through tsx,
 * which is what this benchmark is not about).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildIsCurrent } from '../bin/launch.js';
import { cliEntry, projectRoot } from '../test/support/cli.js';

const { values: args } = parseArgs({ options: { runs: { type: 'string', default: '15' } } });
const runs = Number(args.runs);

if (!buildIsCurrent()) {
  process.stderr.write('dist/ is not current: building it (npm run build)\n');
  const build = spawnSync('npm', ['run', 'build', '--silent'], { cwd: projectRoot, stdio: 'inherit' });
  if (build.status !== 0) process.exit(1);
}

const stateDir = mkdtempSync(join(tmpdir(), 'mxstack-bench-cli-'));
const commands: [string, string[]][] = [
  ['node -e 0', ['-e', '0']],
  ['mxstack --help', [cliEntry, '--help']],
  ['mxstack status', [cliEntry, 'status', '--state-dir', stateDir]],
];

function timeOnce(argv: string[]): number {
  const started = process.hrtime.bigint();
  const result = spawnSync(process.execPath, argv, { cwd: projectRoot, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  const elapsed = Number(process.hrtime.bigint() - started) / 1e6;
  if (result.status !== 0) throw new Error(`${argv.join(' ')} exited with ${result.status}: ${result.stderr}`);
  return elapsed;
}

const sorted = (values: number[]) => [...values].sort((a, b) => a - b);
const percentile = (values: number[], p: number) => sorted(values)[Math.min(values.length - 1, Math.floor(values.length * p))]!;
const seconds = (ms: number) => `${(ms / 1000).toFixed(3)} s`;

try {
  const load = loadavg()[0]!.toFixed(2);
  const times = new Map(commands.map(([name]) => [name, [] as number[]]));
  for (const [, argv] of commands) timeOnce(argv); // warm the file cache
  for (let run = 0; run < runs; run++) for (const [name, argv] of commands) times.get(name)!.push(timeOnce(argv));
  process.stdout.write(`${'command'.padEnd(16)} ${'min'.padStart(8)} ${'median'.padStart(8)} ${'p90'.padStart(8)}   (${runs} runs each, Node ${process.version}, load ${load} -> ${loadavg()[0]!.toFixed(2)})\n`);
  for (const [name, values] of times) {
    process.stdout.write(`${name.padEnd(16)} ${seconds(sorted(values)[0]!).padStart(8)} ${seconds(percentile(values, 0.5)).padStart(8)} ${seconds(percentile(values, 0.9)).padStart(8)}\n`);
  }
} finally {
  rmSync(stateDir, { recursive: true, force: true });
}
