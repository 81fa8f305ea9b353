/**
 * The time to list 10 000 users: `mxstack users list --output json` end to end (a new process, admin
 * session, every page), and the listing alone inside one process. Prints numbers; never passes or fails.
 *
 *   node --import tsx bench/list-users.ts [--state-dir DIR] [--users 10000] [--runs 3]
 *
 * With --state-dir it uses that running local stack; without, it starts one in a temporary state
 * directory and stops it after. Missing bulk users (@bulkNNNNN) are created first through the Admin API.
 */
import { parseArgs } from 'node:util';
import { runCliAsync, startLocalStack, type LocalStackHandle } from '../test/support/local-stack.js';
import { createUsersInBulk } from '../test/support/bulk-users.js';
import { LocalTarget } from '../src/targets/local/target-adapter.js';
import { withAdmin } from '../src/ops/admin-session.js';
import { listUsers } from '../src/ops/users.js';

const { values: args } = parseArgs({
  options: { 'state-dir': { type: 'string' }, users: { type: 'string', default: '10000' }, runs: { type: 'string', default: '3' } },
});
const userCount = Number(args.users);
const runs = Number(args.runs);
const progress = (line: string) => process.stderr.write(`${line}\n`);
const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

let started: LocalStackHandle | undefined;
try {
  let stateDir = args['state-dir'];
  if (!stateDir) {
    progress('starting a local stack in a temporary state directory');
    started = await startLocalStack();
    stateDir = started.stateDir;
  }
  const target = new LocalTarget({ stateDir });
  const bulk = await withAdmin(target, {}, (admin) => createUsersInBulk(admin, 'bulk', userCount, 8, (n) => progress(`created ${n} users`)));
  progress(`bulk users: ${bulk.created} created in ${seconds(bulk.milliseconds)} (Admin API, 8 in flight)`);

  const inProcess: number[] = [];
  let listed = 0;
  for (let run = 0; run < runs; run++) {
    const t0 = performance.now();
    listed = (await withAdmin(target, {}, (admin) => listUsers(admin, {}))).length;
    inProcess.push(performance.now() - t0);
  }
  const cli: number[] = [];
  let printed = 0;
  for (let run = 0; run < runs; run++) {
    const t0 = performance.now();
    const result = await runCliAsync(['users', 'list', '--output', 'json', '--state-dir', stateDir], { timeoutMs: 600_000 });
    cli.push(performance.now() - t0);
    if (result.status !== 0) throw new Error(`users list exited ${result.status}: ${result.stderr}`);
    printed = (JSON.parse(result.stdout) as unknown[]).length;
  }
  process.stdout.write(
    [
      `users on the server: ${listed} (the CLI printed ${printed})`,
      `list in one process (admin session + pages of 1000), median of ${runs}: ${seconds(median(inProcess))}  [${inProcess.map(seconds).join(', ')}]`,
      `mxstack users list --output json (new process), median of ${runs}: ${seconds(median(cli))}  [${cli.map(seconds).join(', ')}]`,
      '',
    ].join('\n'),
  );
} finally {
  await started?.dispose();
}
