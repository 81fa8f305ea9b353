import { test } from 'node:test';
import assert from 'node:assert/strict';
import { localStack } from '../support/component-stacks.js';

const webauthnOn = { synapse: { server: { mfa: { webauthn: { enabled: true } } } } };

test('the local stack is reached at its loopback address while security keys are off', () => {
  const stack = localStack({}, '/tmp/mxstack-host', 40000);
  assert.equal(stack.publicBaseUrl, 'http://127.0.0.1:40004/');
});

test('with security keys on, the local stack is reached at localhost (WebAuthn refuses IP addresses)', () => {
  const stack = localStack(webauthnOn, '/tmp/mxstack-host', 40000);
  assert.equal(stack.publicBaseUrl, 'http://localhost:40004/');
  assert.equal(stack.auth?.issuer, 'http://localhost:40004/auth');
});

test('an explicit public base URL wins over the local default', () => {
  const stack = localStack({ synapse: { server: { ...webauthnOn.synapse.server, publicBaseurl: 'http://localhost:9999' } } }, '/tmp/mxstack-host', 40000);
  assert.equal(stack.publicBaseUrl, 'http://localhost:9999/');
});
