/**
 * The release workflow (.github/workflows/release.yml) cannot run here (no container engine, no network):
 * these checks keep it consistent with the repository: the Dockerfile it builds exists, the image it
 * pushes is the one the values default to, both platforms are built, and Trivy gates the release.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { defaultImages } from '../../src/versions.js';
import { loadValues } from '../../src/values/load.js';
import { projectRoot } from '../support/cli.js';

interface Step {
  uses?: string;
  run?: string;
  with?: Record<string, string | boolean>;
}
interface Workflow {
  on: { push: { tags: string[] } };
  env: Record<string, string>;
  jobs: Record<string, { needs?: string | string[]; steps: Step[] }>;
}

const workflow = parse(readFileSync(join(projectRoot, '.github/workflows/release.yml'), 'utf8')) as Workflow;
const steps = Object.values(workflow.jobs).flatMap((job) => job.steps);
const expand = (text: string) => text.replace(/\$\{\{ env\.(\w+) \}\}/g, (_, name: string) => workflow.env[name] ?? `<${name}>`);

test('the release workflow builds images/auth/Dockerfile for amd64 and arm64 and pushes the image the values default to', () => {
  assert.deepEqual(workflow.on.push.tags, ['v*']);
  assert.ok(existsSync(join(projectRoot, workflow.env.AUTH_DOCKERFILE!)), workflow.env.AUTH_DOCKERFILE);
  assert.equal(workflow.env.AUTH_IMAGE, defaultImages.auth.repository);
  assert.equal(loadValues({ base: { synapse: { server: { name: 'example.com' } } } }).auth.image.repository, workflow.env.AUTH_IMAGE);
  const push = steps.find((step) => step.uses?.startsWith('docker/build-push-action@') && step.with?.push === true);
  assert.ok(push, 'a build-push step that pushes');
  assert.equal(expand(String(push.with!.file)), 'images/auth/Dockerfile');
  assert.deepEqual(expand(String(push.with!.platforms)).split(','), ['linux/amd64', 'linux/arm64']);
  assert.equal(expand(String(push.with!.tags)), `${defaultImages.auth.repository}:<TAG>`, 'tagged with the auth version (job env TAG)');
});

test('Trivy scans the rendered manifests and the images, failing on HIGH and CRITICAL, before anything is pushed', () => {
  const trivy = steps.filter((step) => step.uses?.startsWith('aquasecurity/trivy-action@'));
  assert.ok(trivy.some((step) => step.with?.['scan-type'] === 'config'), 'a config scan of the manifests');
  assert.ok(trivy.filter((step) => step.with?.['image-ref']).length >= 2, 'the auth image and the upstream images');
  for (const step of trivy) {
    assert.equal(step.with?.severity, 'HIGH,CRITICAL');
    assert.equal(step.with?.['exit-code'], '1');
  }
  assert.ok(steps.some((step) => step.run?.includes('bin/mxstack.js render')), 'the manifests scanned are mxstack render output');
  const authJob = workflow.jobs['auth-image']!;
  assert.deepEqual(authJob.needs, ['versions', 'scan-manifests', 'scan-upstream-images']);
  const order = authJob.steps.map((step) => step.uses ?? step.run ?? '');
  assert.ok(order.findIndex((s) => s.startsWith('aquasecurity/')) < order.findIndex((s) => s.startsWith('docker/login-action')), 'scanned before login and push');
});
