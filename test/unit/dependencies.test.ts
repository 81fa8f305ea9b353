/**
 * `npm ci` on a supported Node prints no warning: every locked package supports every Node version the
 * project's `engines` allows (npm warns EBADENGINE otherwise), and every package with an install script
 * has been reviewed in `allowScripts` (npm 11 prints a notice for the others). Checked on the lockfile,
 * which is exactly what `npm ci` installs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import semver from 'semver';
import { projectRoot } from '../support/cli.js';

interface LockedPackage {
  version?: string;
  engines?: { node?: string };
  hasInstallScript?: boolean;
}

const manifest = JSON.parse(readFileSync(join(projectRoot, 'package.json'), 'utf8')) as { engines: { node: string }; allowScripts?: Record<string, boolean> };
const lock = JSON.parse(readFileSync(join(projectRoot, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockedPackage> };
const locked = Object.entries(lock.packages).filter(([path]) => path !== '');
const packageName = (path: string) => path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length);

test('every locked package supports every Node version engines allows (no EBADENGINE warning)', () => {
  const supported = manifest.engines.node;
  const narrower = locked
    .filter(([, p]) => p.engines?.node !== undefined && !semver.subset(supported, p.engines.node))
    .map(([path, p]) => `${packageName(path)}@${p.version} needs Node ${p.engines!.node}`);
  assert.deepEqual(narrower, [], `package.json engines.node is ${supported}`);
});

test('the Node running the tests is one engines allows', () => {
  assert.ok(semver.satisfies(process.versions.node, manifest.engines.node), `${process.versions.node} against ${manifest.engines.node}`);
});

test('every locked package with an install script is reviewed in allowScripts (no install-scripts notice)', () => {
  const reviewed = new Set(Object.keys(manifest.allowScripts ?? {}).map((entry) => entry.replace(/(.)@.*$/, '$1')));
  const unreviewed = locked.filter(([, p]) => p.hasInstallScript).map(([path]) => packageName(path)).filter((name) => !reviewed.has(name));
  assert.deepEqual(unreviewed, []);
});
