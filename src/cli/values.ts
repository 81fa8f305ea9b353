/** `mxstack schema` and `mxstack values`. */
import type { Command } from 'commander';
import { addValuesOptions, valuesFromOptions, type ValuesOptions } from './options.js';

export function registerValuesCommands(program: Command): void {
  program
    .command('schema')
    .description('print the values JSON Schema (also shipped as values.schema.json)')
    .action(async () => {
      const { editorSchema } = await import('../values/document.js');
      process.stdout.write(`${JSON.stringify(editorSchema(), null, 2)}\n`);
    });

  addValuesOptions(
    program.command('values').description('print the full values, defaults filled in, with a comment per key'),
  ).action(async (options: ValuesOptions) => {
    const { renderDefaultedValuesYaml } = await import('../values/document.js');
    process.stdout.write(renderDefaultedValuesYaml(await valuesFromOptions(options)));
  });
}
