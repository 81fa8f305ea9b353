/**
 * Values that hold an address, a range, a host name, a URL, a size or a duration are checked for their
 * format, by mxstack and by editors reading values.schema.json (the same patterns).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isIP } from 'node:net';
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { goodValuesFixtures } from '../support/fixtures.js';
import AjvModule from 'ajv';
import { valueFormats, type ValueFormatName } from '../../src/values/formats.js';
import { valuesSchema } from '../../src/values/schema.js';
import { loadValues } from '../../src/values/load.js';
import { ValuesError } from '../../src/values/errors.js';

const Ajv = AjvModule.default ?? AjvModule;
// ajv compiles patterns with the u flag: so must the test.
const matches = (format: ValueFormatName, text: string) => new RegExp(valueFormats[format].pattern, 'u').test(text);

const addresses = [
  '0.0.0.0', '203.0.113.50', '255.255.255.255', '10.0.0.1', '::', '::1', 'fd00::', 'fd00::1', '2001:db8::8a2e:370:7334',
  '2001:0db8:0000:0000:0000:ff00:0042:8329', '1::', '1:2:3:4:5:6:7::', '::ffff:192.0.2.1', 'fe80::1:2',
];
const notAddresses = [
  'YOUR_PUBLIC_IP', '256.1.1.1', '1.2.3', '1.2.3.4.5', '01.2.3.4x', '203.0.113.500', ':::', '1:2:3:4:5:6:7:8:9', '2001:db8::g',
  '1::2::3', 'example.com', '', ' 10.0.0.1', '10.0.0.1 ',
];

test('ipAddress agrees with Node\'s own address parser', () => {
  for (const text of [...addresses, ...notAddresses]) {
    assert.equal(matches('ipAddress', text), isIP(text) !== 0, `${JSON.stringify(text)}: pattern and net.isIP disagree`);
  }
});

test('externalAddress: an address or public/private, never a placeholder', () => {
  for (const ok of ['203.0.113.50', '203.0.113.50/10.0.0.5', '2001:db8::1']) assert.ok(matches('externalAddress', ok), ok);
  for (const bad of ['YOUR_PUBLIC_IP', '203.0.113.50/', 'turn.example.com', '203.0.113.50/24x']) assert.ok(!matches('externalAddress', bad), bad);
});

test('cidr and addressOrCidr: prefix lengths within the family', () => {
  for (const ok of ['0.0.0.0/0', '10.0.0.0/8', '192.168.1.0/24', '1.2.3.4/32', '::/0', 'fd00::/8', '2001:db8::/128']) assert.ok(matches('cidr', ok), ok);
  for (const bad of ['10.0.0.0/33', '10.0.0.0', 'fd00::/129', '10.0.0.0/8/8', 'smtp.example.com', '10.0.0.0/-1']) assert.ok(!matches('cidr', bad), bad);
  assert.ok(matches('addressOrCidr', '10.0.0.1') && matches('addressOrCidr', '10.0.0.0/8'));
});

test('host names, server names, URLs, TURN URIs', () => {
  for (const ok of ['matrix.example.com', 'localhost', 'a-b.c', 'x1']) assert.ok(matches('hostName', ok), ok);
  for (const bad of ['https://matrix.example.com/', 'matrix.example.com:443', '-a.com', 'a..b', 'a_b.com', `${'a'.repeat(64)}.com`, 'YOUR_DOMAIN ']) {
    assert.ok(!matches('hostName', bad), bad);
  }
  for (const ok of ['db.example.com', '10.0.0.5', 'fd00::5']) assert.ok(matches('host', ok), ok);
  for (const ok of ['matrix.org', 'example.com:8448', '[2001:db8::1]:8448', '192.0.2.1']) assert.ok(matches('serverName', ok), ok);
  for (const bad of ['https://matrix.org', 'matrix.org/', '2001:db8::1']) assert.ok(!matches('serverName', bad), bad);
  for (const ok of ['https://sso.example.com', 'https://sso.example.com/realms/x', 'http://127.0.0.1:8080/']) assert.ok(matches('httpUrl', ok), ok);
  for (const bad of ['sso.example.com', 'ftp://x', 'https://', 'https://a b', 'https://user@host/']) assert.ok(!matches('httpUrl', bad), bad);
  for (const ok of ['turn:turn.example.com:3478?transport=udp', 'turns:turn.example.com:5349?transport=tcp', 'turn:203.0.113.5']) assert.ok(matches('turnUri', ok), ok);
  for (const bad of ['turn.example.com:3478', 'turn:turn.example.com:3478?transport=sctp', 'stun:x']) assert.ok(!matches('turnUri', bad), bad);
});

test('sizes and durations in each program\'s own units', () => {
  for (const ok of ['10Gi', '512Mi', '500m', '2', '0.5', '1G']) assert.ok(matches('kubernetesQuantity', ok), ok);
  for (const bad of ['10GB', '128 MB', 'two', '1.5.2Gi', '']) assert.ok(!matches('kubernetesQuantity', bad), bad);
  for (const ok of ['256MB', '1GB', '64kB', '8192']) assert.ok(matches('postgresqlMemory', ok), ok);
  for (const bad of ['256mb', '1 GB', '64KB', '1GiB']) assert.ok(!matches('postgresqlMemory', bad), bad);
  for (const ok of ['30s', '1m30s', '500ms']) assert.ok(matches('prometheusDuration', ok), ok);
  for (const bad of ['30', '30 seconds', 's']) assert.ok(!matches('prometheusDuration', bad), bad);
});

type Node = { type?: string; pattern?: string; properties?: Record<string, Node>; items?: Node; anyOf?: Node[] };

/** Every string leaf of the schema by values path (list items as `[]`, union branches by their own path). */
function stringLeaves(node: Node, path: string, out: Map<string, Node[]>): Map<string, Node[]> {
  if (node.type === 'string') out.set(path, [...(out.get(path) ?? []), node]);
  for (const [key, child] of Object.entries(node.properties ?? {})) stringLeaves(child, path ? `${path}.${key}` : key, out);
  if (node.items) stringLeaves(node.items, `${path}[]`, out);
  for (const branch of node.anyOf ?? []) stringLeaves(branch, path, out);
  return out;
}

/** Key names that say the value is an address, a range, a host, a URL, a size or a duration. */
const formatKeyName = /(host|Host|name$|Url|url$|uri|Uri|IP$|Ip$|Cidr|Proxies|Blacklist|Whitelist|issuer|endpoint|realm|rpId|size$|Size$|Mem$|Buffers$|memory$|cpu$|interval$|Lifetime$|servers$|Servers$|Whitelist$)/;
/** Named like a format but free text, an identifier or a Kubernetes object name, with the reason. */
/** Kubernetes object names (pull Secrets, ServiceAccounts, Secret references) of every workload: not addresses. */
const kubernetesObjectName = /(imagePullSecrets\[\]|serviceAccount|s3Credentials\.\w+)\.name$/;
const notFormats = new Map<string, string>([
  ['synapse.serviceAccount.name', 'a Kubernetes object name'],
  ['synapse.server.email.appName', 'a free display name'],
  ['synapse.server.mfa.webauthn.rpName', 'a free display name'],
  ['synapse.server.sso.oidc.providers[].idp_name', 'a free button label'],
  ['synapse.server.sso.oidc.providers[].user_mapping_provider.config.display_name_template', 'a Jinja2 template'],
  ['element.config.customThemes[].name', 'a theme name'],
  ['gatewayApi.parentRefs[].name', 'a Kubernetes object name'],
  ['gatewayApi.parentRefs[].sectionName', 'a Gateway listener name'],
  ['synapse.database.name', 'a database name'],
  ['synapse.database.passwordSecretRef.name', 'a Secret name'],
  ['synapse.server.turn.sharedSecretRef.name', 'a Secret name'],
  ['synapse.server.email.smtpPassSecretRef.name', 'a Secret name'],
  ['synapse.server.sso.oidc.providers[].clientSecretRef.name', 'a Secret name'],
  ['synapse.signingKey.existingSecret', 'a Secret name'],
  ['synapse.persistence.storageClassName', 'a StorageClass name'],
  ['ingress.className', 'an IngressClass name'],
  ['ingress.synapse.tls.secretName', 'a Secret name'],
  ['ingress.element.tls.secretName', 'a Secret name'],
  ['coturn.tls.secretName', 'a Secret name'],
  ['synapse.server.mfa.totp.issuer', 'the free name authenticator apps show'],
  ['element.config.branding.customCssUrl', 'refused whatever its value (Element has no custom CSS)'],
]);

test('every values key named like an address, host, URL, size or duration carries a format pattern', () => {
  const unformatted = [...stringLeaves(valuesSchema as unknown as Node, '', new Map())]
    .filter(([path]) => formatKeyName.test(path.split('.').at(-1)!.replace(/\[\]$/, '')) && !notFormats.has(path) && !/image\.|SecretRef|secretName/.test(path) && !kubernetesObjectName.test(path))
    .filter(([, nodes]) => nodes.every((n) => n.pattern === undefined))
    .map(([path]) => path);
  assert.deepEqual(unformatted, [], 'give these a format from src/values/formats.ts, or list them in notFormats with the reason');
});

test('values.schema.json (for editors) refuses the same values, at the same path', () => {
  const editorSchema = JSON.parse(readFileSync(new URL('../../values.schema.json', import.meta.url), 'utf8')) as object;
  const validate = new Ajv({ strict: false, allErrors: true }).compile(editorSchema);
  const cases: [Record<string, unknown>, string][] = [
    [{ coturn: { externalIP: 'YOUR_PUBLIC_IP' } }, '/coturn/externalIP'],
    [{ auth: { trustedProxies: ['10.0.0.0/33'] } }, '/auth/trustedProxies/0'],
    [{ synapse: { server: { publicBaseurl: 'matrix.example.com' } } }, '/synapse/server/publicBaseurl'],
    [{ postgresql: { config: { sharedBuffers: '256mb' } } }, '/postgresql/config/sharedBuffers'],
  ];
  for (const [values, pointer] of cases) {
    validate(values);
    assert.ok(validate.errors?.some((e) => e.instancePath === pointer && e.keyword === 'pattern'), JSON.stringify(validate.errors));
    assert.throws(() => loadValues({ base: values }), ValuesError, `${pointer} accepted by mxstack`);
  }
  assert.equal(validate({ synapse: { server: { name: 'example.com' } } }), true, `a minimal values file is valid for editors: ${JSON.stringify(validate.errors)}`);
  assert.equal(validate({ coturn: { externalIP: '203.0.113.50', relayPortRange: { min: 49152 } } }), true, JSON.stringify(validate.errors));
  const node = (editorSchema as { properties: { coturn: { properties: { externalIP: { patternErrorMessage?: string } } } } }).properties.coturn.properties.externalIP;
  assert.match(node.patternErrorMessage ?? '', /IPv4 or IPv6/, 'editors show the same sentence');
});

test('values.schema.json (for editors) accepts every good fixture, the old chart\'s spellings included', () => {
  const editorSchema = JSON.parse(readFileSync(new URL('../../values.schema.json', import.meta.url), 'utf8')) as object;
  const validate = new Ajv({ strict: false, allErrors: true }).compile(editorSchema);
  const refused = goodValuesFixtures()
    .filter((file) => !validate(parseYaml(readFileSync(file, 'utf8')) ?? {}))
    .map((file) => `${basename(file)}: ${JSON.stringify(validate.errors)}`);
  assert.deepEqual(refused, []);
});
