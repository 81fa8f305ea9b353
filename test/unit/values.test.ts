/** Values loading: defaults, merging of several files, --set, the old chart's spellings, suggestions. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applySet, deepMerge, loadValues, mergeValueSources, parseSetPath, parseValuesFile } from '../../src/values/load.js';
import { defaultValues, closestKey, validateValues } from '../../src/values/validate.js';
import { normalizeLegacyValues } from '../../src/values/compat.js';
import { ValuesError } from '../../src/values/errors.js';
import { goodValuesFixtures } from '../support/fixtures.js';
import { compileKubernetesStack, renderKubernetesObjects } from '../../src/targets/kubernetes/render.js';
import { renderHomeserverConfig } from '../../src/components/synapse/config.js';

const workDir = mkdtempSync(join(tmpdir(), 'mxstack-values-'));
test.after(() => rmSync(workDir, { recursive: true, force: true }));

function valuesFile(name: string, text: string): string {
  const path = join(workDir, name);
  writeFileSync(path, text);
  return path;
}

/** The problems a load reports, or a failure when it loads. */
function problemsOf(load: () => unknown): string[] {
  try {
    load();
  } catch (error) {
    if (error instanceof ValuesError) return error.problems;
    throw error;
  }
  assert.fail('expected a ValuesError');
}

test('an empty values file gives the documented defaults', () => {
  const values = loadValues({ files: [valuesFile('empty.yaml', '')] });
  assert.equal(values.synapse.server.name, 'localhost');
  assert.equal(values.synapse.server.registration.enabled, false);
  assert.equal(values.synapse.server.registration.allowGuests, false);
  assert.equal(values.synapse.server.urlPreviews.enabled, true);
  assert.equal(values.synapse.server.turn.enabled, true);
  assert.equal(values.synapse.server.turn.allowGuests, false);
  assert.equal(values.synapse.server.passwordLogin.enabled, true);
  assert.equal(values.synapse.server.sso.enabled, false);
  assert.equal(values.synapse.server.media.maxUploadSize, '50M');
  assert.equal(values.synapse.replicaCount, 1);
  assert.equal(values.coturn.enabled, true);
  assert.deepEqual(values.coturn.relayPortRange, { min: 49152, max: 49252 });
  assert.equal(values.postgresql.enabled, true);
  assert.equal(values.postgresql.config.walLevel, 'replica');
  assert.equal(values.synapse.database.external, false);
  assert.equal(values.element.enabled, true);
  assert.equal(values.element.config.defaultTheme, 'light');
  assert.equal(values.ingress.enabled, undefined, 'unset: decided by the hosts (see ingressEnabled)');
  assert.equal(values.networkPolicy.enabled, false);
  assert.equal(values.synapse.server.mfa.totp.enabled, false);
  assert.deepEqual(values.mas, {});
});

test('the defaults reach homeserver.yaml: localhost, registration closed, previews on, TURN from coturn, no TURN for guests', () => {
  const config = renderHomeserverConfig(compileKubernetesStack(loadValues({ files: [valuesFile('empty-rendered.yaml', '')] })));
  assert.equal(config.server_name, 'localhost');
  assert.equal(config.enable_registration, false);
  assert.equal(config.allow_guest_access, false);
  assert.equal(config.url_preview_enabled, true);
  assert.equal(config.turn_allow_guests, false);
  assert.ok((config.turn_uris as string[]).length > 0, 'coturn is on, so clients get TURN URIs');
});

test('a file holding only comments, and no file at all, give the same defaults as an empty file', () => {
  const fromEmpty = loadValues({ files: [valuesFile('empty-again.yaml', '')] });
  assert.deepEqual(loadValues({ files: [valuesFile('comments.yaml', '# nothing yet\n')] }), fromEmpty);
  assert.deepEqual(loadValues({}), fromEmpty);
  assert.deepEqual(defaultValues(), fromEmpty);
});

test('defaults fill around what the file gives, at every depth', () => {
  const values = loadValues({ files: [valuesFile('partial.yaml', 'synapse:\n  server:\n    media:\n      maxUploadSize: 100M\n')] });
  assert.equal(values.synapse.server.media.maxUploadSize, '100M');
  assert.equal(values.synapse.server.media.maxImagePixels, '32M');
  assert.equal(values.synapse.server.name, 'localhost');
});

test('validation does not modify the raw values it is given', () => {
  const raw = { synapse: { server: { name: 'example.com' } } };
  validateValues(raw);
  assert.deepEqual(raw, { synapse: { server: { name: 'example.com' } } });
});

test('several -f files merge deeply; the later file wins', () => {
  const base = valuesFile('base.yaml', 'synapse:\n  server:\n    name: example.com\n    reportStats: true\ncoturn:\n  realm: turn.example.com\n');
  const override = valuesFile('override.yaml', 'synapse:\n  server:\n    reportStats: false\n    media:\n      maxUploadSize: 1G\n');
  const values = loadValues({ files: [base, override] });
  assert.equal(values.synapse.server.name, 'example.com', 'kept from the first file');
  assert.equal(values.synapse.server.reportStats, false, 'the later file wins');
  assert.equal(values.synapse.server.media.maxUploadSize, '1G', 'added by the later file');
  assert.equal(values.coturn.realm, 'turn.example.com');
  const reversed = loadValues({ files: [override, base] });
  assert.equal(reversed.synapse.server.reportStats, true, 'order matters');
});

test('lists are replaced by a later file, never concatenated or merged by index', () => {
  const first = valuesFile('lists-1.yaml', 'synapse:\n  server:\n    federation:\n      trustedKeyServers: [matrix.org, example.org]\n');
  const second = valuesFile('lists-2.yaml', 'synapse:\n  server:\n    federation:\n      trustedKeyServers: [example.net]\n');
  assert.deepEqual(loadValues({ files: [first, second] }).synapse.server.federation.trustedKeyServers, ['example.net']);
  assert.deepEqual(deepMerge({ a: [1, 2, 3], b: { c: 1 } }, { a: [9], b: { d: 2 } }), { a: [9], b: { c: 1, d: 2 } });
});

test('a later file can set a value back to null or replace a mapping by a scalar', () => {
  assert.deepEqual(deepMerge({ a: { b: 1 } }, { a: 'x' }), { a: 'x' });
  assert.deepEqual(deepMerge({ a: 'x' }, { a: { b: 1 } }), { a: { b: 1 } });
});

test('deepMerge leaves both inputs untouched', () => {
  const base = { a: { b: [1] } };
  const override = { a: { c: { d: 1 } } };
  const merged = deepMerge(base, override) as { a: { c: { d: number } } };
  merged.a.c.d = 2;
  assert.deepEqual(base, { a: { b: [1] } });
  assert.deepEqual(override, { a: { c: { d: 1 } } });
});

test('--set is applied after every file', () => {
  const file = valuesFile('set-base.yaml', 'synapse:\n  server:\n    name: example.com\n');
  const values = loadValues({ files: [file], sets: ['synapse.server.name=matrix.example.org'] });
  assert.equal(values.synapse.server.name, 'matrix.example.org');
});

test('--set builds nested mappings and reads booleans, numbers and strings as YAML scalars', () => {
  const raw = mergeValueSources({
    sets: ['coturn.enabled=false', 'coturn.userQuota=20', 'coturn.realm=turn.example.com', 'synapse.server.turn.userLifetime=1h', 'element.config.brand='],
  });
  assert.deepEqual(raw, {
    coturn: { enabled: false, userQuota: 20, realm: 'turn.example.com' },
    synapse: { server: { turn: { userLifetime: '1h' } } },
    element: { config: { brand: '' } },
  });
  const quoted = mergeValueSources({ sets: ['synapse.image.tag="1.160"'] });
  assert.deepEqual(quoted, { synapse: { image: { tag: '1.160' } } }, 'quotes keep a number-like value a string');
});

test('--set keeps the text as typed where the schema wants a string', () => {
  const values = loadValues({ sets: ['synapse.image.tag=1.160', 'ingress.annotations.traefik\\.ingress\\.kubernetes\\.io/router\\.tls=true', 'coturn.realm="turn.example.com"'] });
  assert.equal(values.synapse.image.tag, '1.160', 'not the number 1.16');
  assert.equal(values.ingress.annotations['traefik.ingress.kubernetes.io/router.tls'], 'true');
  assert.equal(values.coturn.realm, 'turn.example.com', 'explicit quotes are YAML quotes');
  assert.equal(loadValues({ sets: ['coturn.userQuota=7'] }).coturn.userQuota, 7, 'numbers stay numbers where numbers are wanted');
});

test('--set accepts flow lists and values containing "="', () => {
  const raw = mergeValueSources({ sets: ['synapse.server.federation.trustedKeyServers=[matrix.org, example.org]', 'element.config.embeddedPages.homeUrl=https://example.com/?a=b'] });
  assert.deepEqual(raw, {
    synapse: { server: { federation: { trustedKeyServers: ['matrix.org', 'example.org'] } } },
    element: { config: { embeddedPages: { homeUrl: 'https://example.com/?a=b' } } },
  });
});

test('--set addresses list entries by index, creating them as needed', () => {
  const values = loadValues({
    sets: [
      'synapse.server.sso.enabled=true',
      'synapse.server.sso.oidc.enabled=true',
      'synapse.server.sso.oidc.providers[0].idp_id=keycloak',
      'synapse.server.sso.oidc.providers[0].idp_name=Keycloak',
      'synapse.server.sso.oidc.providers[0].issuer=https://keycloak.example.com/realms/matrix',
      'synapse.server.sso.oidc.providers[0].client_id=matrix',
      'synapse.server.sso.oidc.providers[0].scopes[1]=profile',
      'synapse.server.sso.oidc.providers[0].scopes[0]=openid',
    ],
  });
  const [provider] = values.synapse.server.sso.oidc.providers;
  assert.equal(provider?.idp_id, 'keycloak');
  assert.deepEqual(provider?.scopes, ['openid', 'profile']);
});

test('--set changes one entry of a list that came from a file, keeping the others', () => {
  const file = valuesFile('set-list.yaml', 'synapse:\n  server:\n    federation:\n      trustedKeyServers: [matrix.org, example.org]\n');
  const values = loadValues({ files: [file], sets: ['synapse.server.federation.trustedKeyServers[1]=example.net'] });
  assert.deepEqual(values.synapse.server.federation.trustedKeyServers, ['matrix.org', 'example.net']);
});

test('--set with escaped dots keeps an annotation key whole', () => {
  assert.deepEqual(parseSetPath('ingress.annotations.cert-manager\\.io/cluster-issuer'), ['ingress', 'annotations', 'cert-manager.io/cluster-issuer']);
  const values = loadValues({ sets: ['ingress.annotations.cert-manager\\.io/cluster-issuer=letsencrypt-prod', 'ingress.annotations.traefik\\.ingress\\.kubernetes\\.io/router\\.tls=true'] });
  assert.deepEqual(values.ingress.annotations, { 'cert-manager.io/cluster-issuer': 'letsencrypt-prod', 'traefik.ingress.kubernetes.io/router.tls': 'true' });
});

test('parseSetPath splits keys and indexes', () => {
  assert.deepEqual(parseSetPath('a.b[0].c'), ['a', 'b', 0, 'c']);
  assert.deepEqual(parseSetPath('a[2][3]'), ['a', 2, 3]);
  assert.throws(() => parseSetPath('a..b'), ValuesError);
  assert.throws(() => parseSetPath('a[x]'), ValuesError);
  assert.throws(() => parseSetPath(''), ValuesError);
});

test('applySet does not modify the values it is given', () => {
  const before = { a: { b: 1 } };
  const after = applySet(before, 'a.c=2');
  assert.deepEqual(before, { a: { b: 1 } });
  assert.deepEqual(after, { a: { b: 1, c: 2 } });
});

test('ingress tls: true / false from the old chart become tls.enabled', () => {
  const raw = { ingress: { synapse: { host: 'matrix.example.com', tls: true }, element: { host: 'element.example.com', tls: false } } };
  const normalized = normalizeLegacyValues(raw) as { ingress: { synapse: { tls: unknown }; element: { tls: unknown } } };
  assert.deepEqual(normalized.ingress.synapse.tls, { enabled: true });
  assert.deepEqual(normalized.ingress.element.tls, { enabled: false });
  assert.equal(raw.ingress.synapse.tls, true, 'the input is not modified');
  const values = loadValues({ files: [valuesFile('legacy-tls.yaml', 'ingress:\n  element:\n    tls: false\n')] });
  assert.equal(values.ingress.element.tls.enabled, false);
  assert.equal(values.ingress.synapse.tls.enabled, true);
});

test('the old chart tls: {secretName} form is accepted as it is', () => {
  const values = loadValues({ files: [valuesFile('legacy-tls-secret.yaml', 'ingress:\n  synapse:\n    tls:\n      secretName: matrix-synapse-tls\n')] });
  assert.deepEqual(values.ingress.synapse.tls, { enabled: true, secretName: 'matrix-synapse-tls' });
});

test('Helm-style ingress paths [{path, pathType}] become plain path prefixes', () => {
  const file = valuesFile(
    'legacy-paths.yaml',
    'ingress:\n  synapse:\n    paths:\n      - path: /_matrix\n        pathType: Prefix\n      - path: /_synapse/client\n        pathType: Prefix\n  element:\n    paths:\n      - path: /\n        pathType: Prefix\n',
  );
  const values = loadValues({ files: [file] });
  assert.deepEqual(values.ingress.synapse.paths, ['/_matrix', '/_synapse/client']);
  assert.deepEqual(values.ingress.element.paths, ['/']);
});

test('element.config.brandingUrl of the old chart becomes branding.authHeaderLogoUrl', () => {
  const values = loadValues({ files: [valuesFile('legacy-branding.yaml', 'element:\n  config:\n    brandingUrl: https://example.com/logo.png\n')] });
  assert.equal(values.element.config.branding.authHeaderLogoUrl, 'https://example.com/logo.png');
  assert.equal(values.element.config.brandingUrl, undefined);
});

test('an explicit branding.authHeaderLogoUrl wins over the old brandingUrl', () => {
  const file = valuesFile('legacy-branding-both.yaml', 'element:\n  config:\n    brandingUrl: https://example.com/old.png\n    branding:\n      authHeaderLogoUrl: https://example.com/new.png\n');
  assert.equal(loadValues({ files: [file] }).element.config.branding.authHeaderLogoUrl, 'https://example.com/new.png');
});

test('persistence.storageClass (the old chart\'s postgresql spelling, and backup\'s) is storageClassName, as for synapse', () => {
  const values = loadValues({ files: [valuesFile('legacy-storage-class.yaml', 'postgresql:\n  persistence:\n    storageClass: longhorn\nbackup:\n  persistence:\n    storageClass: slow\n')] });
  assert.equal(values.postgresql.persistence.storageClassName, 'longhorn');
  assert.equal(values.backup.persistence.storageClassName, 'slow');
  assert.equal(values.postgresql.persistence.storageClass, undefined);
  assert.equal(loadValues({ sets: ['postgresql.persistence.storageClass=fast'] }).postgresql.persistence.storageClassName, 'fast');
  const both = valuesFile('storage-class-both.yaml', 'postgresql:\n  persistence:\n    storageClass: old\n    storageClassName: new\n');
  assert.equal(loadValues({ files: [both] }).postgresql.persistence.storageClassName, 'new');
  const claims = renderKubernetesObjects(compileKubernetesStack(values)).flatMap((object) =>
    object.kind === 'StatefulSet' ? (((object as { spec?: unknown }).spec as { volumeClaimTemplates?: { spec: { storageClassName?: string } }[] }).volumeClaimTemplates ?? []).map((claim) => claim.spec.storageClassName) : [],
  );
  assert.deepEqual(claims, ['longhorn']);
});

test('a misspelt key is refused naming its full path and the closest valid key', () => {
  const problems = problemsOf(() => loadValues({ files: [valuesFile('typo.yaml', 'synapse:\n  server:\n    media:\n      maxUploadSzie: 10M\n')] }));
  assert.equal(problems.length, 1);
  assert.match(problems[0]!, /^synapse\.server\.media\.maxUploadSzie: unknown key\. Did you mean synapse\.server\.media\.maxUploadSize\?/);
  assert.match(problems[0]!, /Allowed here: maxUploadSize, maxImagePixels, enableAuthenticatedMedia\./);
});

test('the closest-key suggestion is offered only when the key is plausibly a typo', () => {
  assert.equal(closestKey('registation', ['registration', 'reportStats']), 'registration');
  assert.equal(closestKey('ServerName', ['serverName', 'name']), 'serverName', 'case differences count as close');
  assert.equal(closestKey('coturm', ['coturn', 'mas']), 'coturn');
  assert.equal(closestKey('foo', ['global', 'mas', 'synapse']), undefined);
  assert.equal(closestKey('identity_providers', ['ingress', 'element']), undefined);
  const problems = problemsOf(() => loadValues({ sets: ['foo.bar=1'] }));
  assert.doesNotMatch(problems[0]!, /Did you mean/);
});

test('an enum typo suggests the allowed value it resembles', () => {
  const problems = problemsOf(() => loadValues({ sets: ['coturn.service.externalTrafficPolicy=local'] }));
  assert.deepEqual(problems, ['coturn.service.externalTrafficPolicy: "local" is not allowed; must be one of "Local", "Cluster". Did you mean "Local"?']);
});

test('values files must hold a mapping at the top level', () => {
  assert.deepEqual(parseValuesFile('x.yaml', ''), {});
  assert.deepEqual(parseValuesFile('x.yaml', '~\n'), {});
  assert.throws(() => parseValuesFile('x.yaml', '- a\n'), /x\.yaml: expected a mapping/);
  assert.throws(() => parseValuesFile('x.yaml', 'just a string\n'), /x\.yaml: expected a mapping/);
});

test('every good fixture loads, and its file comment explains the scenario', async () => {
  const { readFileSync } = await import('node:fs');
  const fixtures = goodValuesFixtures();
  assert.ok(fixtures.length >= 19, `only ${fixtures.length} good fixtures`);
  for (const fixture of fixtures) {
    assert.match(readFileSync(fixture, 'utf8'), /^# \S/, `${fixture} starts with a comment`);
    assert.doesNotThrow(() => loadValues({ files: [fixture] }), `${fixture} loads`);
  }
});

test('a values file using every key group of the old chart, in its old spellings, loads unchanged in meaning', () => {
  const values = loadValues({ files: [join(import.meta.dirname, '../fixtures/values/old-chart-keys.yaml')] });
  assert.equal(values.synapse.server.name, 'matrix.example.com');
  assert.equal(values.element.config.branding.authHeaderLogoUrl, 'https://example.com/logo.svg');
  assert.deepEqual(values.ingress.synapse.paths, ['/_matrix', '/_synapse/client']);
  assert.deepEqual(values.ingress.synapse.tls, { enabled: true, secretName: 'matrix-synapse-tls' });
  assert.deepEqual(values.ingress.element.tls, { enabled: true });
  assert.equal(values.synapse.signingKey.existingSecret, 'matrix-synapse-signing-key');
  assert.equal(values.synapse.server.mfa.totp.digits, 6);
  assert.equal(values.coturn.totalQuota, 100);
  assert.deepEqual(values.mas, { enabled: false });
});
