/**
 * The e2e test images (test/support/test-images.ts) stand in for upstream images: the auth image must
 * follow images/auth/Dockerfile (the image users pull), every image must carry the name the rendered
 * manifests use, and the runtime's users get the upstream ids the manifests run as.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { defaultImages } from '../../src/versions.js';
import { imageName, normalizedImageName, testImages, withUpstreamIds } from '../support/test-images.js';

/** WORKDIR, USER, ENTRYPOINT and CMD of a Dockerfile's last stage (exec form only, as ours uses). */
function finalStage(dockerfile: string): { workdir?: string; user?: string; entrypoint?: string[]; cmd?: string[] } {
  const lines = dockerfile.split('\n').map((line) => line.trim());
  const last = lines.slice(lines.map((line) => /^FROM\s/i.test(line)).lastIndexOf(true));
  const value = (instruction: string) => last.filter((line) => line.toUpperCase().startsWith(`${instruction} `)).pop()?.slice(instruction.length + 1).trim();
  const json = (text: string | undefined) => (text === undefined ? undefined : (JSON.parse(text) as string[]));
  return { workdir: value('WORKDIR'), user: value('USER'), entrypoint: json(value('ENTRYPOINT')), cmd: json(value('CMD')) };
}

test('the auth test image follows images/auth/Dockerfile and carries the default image name', () => {
  const auth = testImages(18).find((image) => image.name === imageName('auth'))!;
  assert.equal(auth.name, `${defaultImages.auth.repository}:${defaultImages.auth.tag}`);
  const stage = finalStage(readFileSync(new URL('../../images/auth/Dockerfile', import.meta.url), 'utf8'));
  assert.equal(auth.config.WorkingDir, stage.workdir);
  assert.equal(auth.config.User, stage.user);
  assert.deepEqual(auth.config.Entrypoint, stage.entrypoint);
  assert.deepEqual(auth.config.Cmd, stage.cmd);
});

test('every image the manifests name has a test image, each with its contract stated', () => {
  const names = testImages(18).map((image) => image.name);
  for (const image of ['synapse', 'postgresql', 'coturn', 'router', 'redis', 'auth'] as const) assert.ok(names.includes(imageName(image)), image);
  for (const image of testImages(18)) assert.ok(image.contract.length > 20, image.name);
});

test("the runtime's users get the upstream images' ids; missing ones are added", () => {
  const passwd = 'root:x:0:0:root:/root:/bin/bash\npostgres:x:103:103:PostgreSQL administrator:/var/lib/postgresql:/bin/bash\n';
  assert.equal(
    withUpstreamIds(passwd, { postgres: 70, haproxy: 99 }, 'passwd'),
    'root:x:0:0:root:/root:/bin/bash\npostgres:x:70:70:PostgreSQL administrator:/var/lib/postgresql:/bin/bash\nhaproxy:x:99:99::/nonexistent:/usr/sbin/nologin\n',
  );
  assert.equal(withUpstreamIds('postgres:x:103:\n', { postgres: 70 }, 'group'), 'postgres:x:70:\n');
});

test("containerd's names for the manifests' short image references", () => {
  assert.equal(normalizedImageName('postgres:18-alpine'), 'docker.io/library/postgres:18-alpine');
  assert.equal(normalizedImageName('coturn/coturn:4.18.0-alpine'), 'docker.io/coturn/coturn:4.18.0-alpine');
  assert.equal(normalizedImageName('ghcr.io/element-hq/synapse:v1.160.0'), 'ghcr.io/element-hq/synapse:v1.160.0');
});
