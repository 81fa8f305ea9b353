/** Options shared by every command that reads values. */
import type { Command } from 'commander';
import type { Values } from '../values/schema.js';

const collect = (value: string, previous: string[]) => [...previous, value];

export function addValuesOptions(command: Command): Command {
  return command
    .option('-f, --values <file>', 'values file (repeatable; later files win, deep merge)', collect, [])
    .option('--set <key=value>', 'set one value, e.g. synapse.server.name=example.com (repeatable, applied after files)', collect, []);
}

export function addReleaseOptions(command: Command): Command {
  return command
    .option('--release <name>', 'release name: prefix of every object name', 'mxstack')
    .option('-n, --namespace <name>', 'Kubernetes namespace', 'matrix');
}

export interface ValuesOptions {
  values: string[];
  set: string[];
}

/** Loaded on use: the values schema and its validator are the slowest modules to load (see src/cli/main.ts). */
export async function valuesFromOptions(options: ValuesOptions): Promise<Values> {
  const { loadValues } = await import('../values/load.js');
  return loadValues({ files: options.values, sets: options.set });
}
