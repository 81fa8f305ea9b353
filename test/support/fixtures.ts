/** The shared values fixtures: one file per scenario under test/fixtures/values (bad inputs in bad/). */
import { readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const valuesFixturesDir = fileURLToPath(new URL('../fixtures/values/', import.meta.url));
export const badValuesFixturesDir = join(valuesFixturesDir, 'bad');

const yamlFilesIn = (dir: string) =>
  readdirSync(dir)
    .filter((name) => name.endsWith('.yaml'))
    .sort()
    .map((name) => join(dir, name));

/** Every good scenario: each must load and render. */
export function goodValuesFixtures(): string[] {
  return yamlFilesIn(valuesFixturesDir);
}

export interface BadValuesFixture {
  file: string;
  name: string;
  /** Substring the error must contain (first line `# expect: ...`). */
  expect: string;
  /** The values path (or file name) the error must name (second line `# path: ...`). */
  path: string;
}

/** Every bad input with what its error must say, read from its two header comments. */
export function badValuesFixtures(): BadValuesFixture[] {
  return yamlFilesIn(badValuesFixturesDir).map((file) => {
    const [first = '', second = ''] = readFileSync(file, 'utf8').split('\n');
    const expect = /^# expect: (.+)$/.exec(first)?.[1];
    const path = /^# path: (.+)$/.exec(second)?.[1];
    if (!expect || !path) throw new Error(`${file}: the first two lines must be "# expect: ..." and "# path: ..."`);
    return { file, name: basename(file, '.yaml'), expect, path };
  });
}
