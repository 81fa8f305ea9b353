/**
 * Writing one key of a Secret on a cluster (`secrets rotate`, `restore`, install adding keys) goes through
 * `kubectl patch --patch-file`. Found on a real cluster (issue 17): `--patch-file=/dev/stdin` fails there,
 * "open /dev/stdin: no such device or address", because Node gives a child a socket, not a pipe, as stdin.
 * The stand-in kubectl below reads the patch file the way kubectl does (by opening its path), so it fails
 * the same way; the value must never be on the command line either.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadValues } from '../../src/values/load.js';
import { compileKubernetesStack } from '../../src/targets/kubernetes/render.js';
import { KubernetesTarget } from '../../src/targets/kubernetes/target-adapter.js';

test('writeSecret patches an existing Secret through a file kubectl can open, the value never in argv', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mxstack-patch-test-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const secret = JSON.stringify({ kind: 'Secret', metadata: { name: 'mx-turn-credentials' }, data: { 'shared-secret': Buffer.from('old').toString('base64') } });
  writeFileSync(join(dir, 'secret.json'), secret);
  writeFileSync(
    join(dir, 'kubectl'),
    [
      '#!/bin/sh',
      `echo "$*" >> '${dir}/argv'`,
      'case "$1" in',
      `  get) cat '${dir}/secret.json' ;;`,
      '  patch) for a; do case "$a" in --patch-file=*) cat "${a#--patch-file=}" > ' + `'${dir}/patch' || exit 1 ;; esac; done; echo secret/mx-turn-credentials ;;`,
      'esac',
      '',
    ].join('\n'),
  );
  chmodSync(join(dir, 'kubectl'), 0o755);
  const savedPath = process.env.PATH;
  process.env.PATH = `${dir}:${savedPath}`;
  t.after(() => (process.env.PATH = savedPath));
  const stack = compileKubernetesStack(loadValues({ sets: ['synapse.server.name=chat.example'] }), { release: 'mx', namespace: 'chat' });
  await new KubernetesTarget(stack, { namespace: 'chat' }).writeSecret({ name: 'mx-turn-credentials', key: 'shared-secret' }, 'new-turn-secret');
  const patch = JSON.parse(readFileSync(join(dir, 'patch'), 'utf8')) as { data: Record<string, string> };
  assert.equal(Buffer.from(patch.data['shared-secret']!, 'base64').toString(), 'new-turn-secret');
  assert.ok(!readFileSync(join(dir, 'argv'), 'utf8').includes('new-turn-secret'));
});
