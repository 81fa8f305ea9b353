/** Options shared by every command that reads values. */
import type { Command } from 'commander';
import { loadValues } from '../values/load.js';
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

export function valuesFromOptions(options: ValuesOptions): Values {
  return loadValues({ files: options.values, sets: options.set });
}
