/**
 * Runs many command lines through the real entry point (`main`, what bin/mxstack.js calls) in ONE
 * process, so tests that need dozens of invocations (help on every command) do not start dozens of
 * Node processes. Reads a JSON list of argv arrays on stdin; prints a JSON list of {status, stdout, stderr}.
 */
import { readFileSync } from 'node:fs';
import { main } from '../../src/cli/main.js';

type Write = typeof process.stdout.write;

async function runCaptured(argv: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  const captured = { stdout: '', stderr: '' };
  const originals = { stdout: process.stdout.write, stderr: process.stderr.write };
  const capture = (stream: 'stdout' | 'stderr'): Write =>
    ((chunk: string | Uint8Array) => {
      captured[stream] += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
      return true;
    }) as Write;
  process.stdout.write = capture('stdout');
  process.stderr.write = capture('stderr');
  try {
    const status = await main(argv);
    return { status, ...captured };
  } finally {
    process.stdout.write = originals.stdout;
    process.stderr.write = originals.stderr;
  }
}

const invocations = JSON.parse(readFileSync(0, 'utf8')) as string[][];
const results = [];
for (const argv of invocations) results.push(await runCaptured(argv));
process.stdout.write(JSON.stringify(results));
