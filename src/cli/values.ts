/** `mxstack schema` and `mxstack values`. */
import type { Command } from 'commander';
import { editorSchema, renderDefaultedValuesYaml } from '../values/document.js';
import { addValuesOptions, valuesFromOptions, type ValuesOptions } from './options.js';

export function registerValuesCommands(program: Command): void {
  program
    .command('schema')
    .description('print the values JSON Schema (also shipped as values.schema.json)')
    .action(() => {
      process.stdout.write(`${JSON.stringify(editorSchema(), null, 2)}\n`);
    });

  addValuesOptions(
    program.command('values').description('print the full values, defaults filled in, with a comment per key'),
  ).action((options: ValuesOptions) => {
    process.stdout.write(renderDefaultedValuesYaml(valuesFromOptions(options)));
  });
}
