/**
 * Every values snippet of the old chart's README is accepted by mxstack, and what the README says it
 * does is visible in the rendered output (the 2FA one now deploys the built-in identity provider).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { resolveValues, deepMerge } from '../../src/values/load.js';
import { ValuesError } from '../../src/values/errors.js';
import { compileKubernetesStack, renderKubernetesObjects } from '../../src/targets/kubernetes/render.js';
import { toPlainSorted } from '../../src/kit/sorted-json.js';
import { runCli } from '../support/cli.js';

const seedReadme = '/work/shared/seed/matrix-synapse-helm-chart-README.md';

interface Snippet {
  /** `<heading> #<n>`: the nearest heading above the block and the block's rank under it. */
  id: string;
  line: number;
  text: string;
}

/** The ```yaml blocks of a Markdown text, each named by the heading it sits under (fences of any language skipped). */
export function yamlSnippets(markdown: string): Snippet[] {
  const snippets: Snippet[] = [];
  const perHeading = new Map<string, number>();
  let heading = '(no heading)';
  let fence: { language: string; start: number; lines: string[] } | undefined;
  markdown.split('\n').forEach((line, index) => {
    const fenceMatch = /^\s*```(\S*)/.exec(line);
    if (fence) {
      if (fenceMatch && fenceMatch[1] === '') {
        if (fence.language === 'yaml') {
          const rank = (perHeading.get(heading) ?? 0) + 1;
          perHeading.set(heading, rank);
          snippets.push({ id: `${heading} #${rank}`, line: fence.start + 1, text: fence.lines.join('\n') });
        }
        fence = undefined;
      } else fence.lines.push(line);
      return;
    }
    if (fenceMatch) fence = { language: fenceMatch[1]!, start: index + 1, lines: [] };
    else if (/^#{1,6} /.test(line)) heading = line.trim();
  });
  return snippets;
}

/** Blocks that are not chart values, and why. */
const notValues: Record<string, string> = {
  '#### Example: Authelia Integration #1': "Authelia's own configuration (identity_providers.oidc.clients), applied to Authelia, not to the chart",
  '#### Security #1': "an excerpt of Synapse's homeserver.yaml (url_preview_ip_range_blacklist) showing what the chart renders",
};

/** Blocks refused with a sentence: their placeholders would reach the rendered configuration. */
const refused: Record<string, string> = {
  '### Quick Start #1': 'coturn.externalIP: "YOUR_PUBLIC_IP" is not valid',
};

const snippets = yamlSnippets(readFileSync(seedReadme, 'utf8'));
const snippet = (id: string): Snippet => {
  const found = snippets.find((s) => s.id === id);
  assert.ok(found, `no yaml block "${id}" in the README`);
  return found;
};
const rawOf = (id: string) => (parseYaml(snippet(id).text) ?? {}) as Record<string, unknown>;

type Plain = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** Values (optionally several snippets merged, later wins) → rendered objects as plain data. */
function render(...raws: Record<string, unknown>[]): { objects: Plain[]; values: ReturnType<typeof resolveValues> } {
  const values = resolveValues(raws.reduce((merged, raw) => deepMerge(merged, raw) as Record<string, unknown>, {}));
  const stack = compileKubernetesStack(values);
  return { values, objects: renderKubernetesObjects(stack).map((o) => toPlainSorted(o) as Plain) };
}

/** The one file of that name among the ConfigMaps' data. */
function configFile(objects: Plain[], fileName: string): string {
  const holders = objects.filter((o) => o.kind === 'ConfigMap' && typeof o.data?.[fileName] === 'string');
  assert.equal(holders.length, 1, `exactly one ConfigMap should hold ${fileName}; found ${holders.map((o) => o.metadata.name).join(', ') || 'none'}`);
  return holders[0]!.data[fileName] as string;
}

const homeserver = (objects: Plain[]) => parseYaml(configFile(objects, 'homeserver.yaml')) as Plain;
const elementConfig = (objects: Plain[]) => JSON.parse(configFile(objects, 'config.json')) as Plain;
const turnserverLines = (objects: Plain[]) => configFile(objects, 'turnserver.conf').split('\n');
const ofKind = (objects: Plain[], kind: string) => objects.filter((o) => o.kind === kind);
const byComponent = (objects: Plain[], kind: string, component: string) =>
  ofKind(objects, kind).filter((o) => o.metadata?.labels?.['app.kubernetes.io/component'] === component);

function oneOf(objects: Plain[], kind: string, component: string): Plain {
  const found = byComponent(objects, kind, component);
  assert.equal(found.length, 1, `exactly one ${kind} of ${component}; found ${found.map((o) => o.metadata.name).join(', ') || 'none'}`);
  return found[0]!;
}

/** Every Secret a pod mounts or reads must have a name Kubernetes accepts (DNS-1123 subdomain). */
function referencedSecretNames(objects: Plain[]): string[] {
  const names: string[] = [];
  const visit = (node: unknown, key?: string): void => {
    if (Array.isArray(node)) node.forEach((child) => visit(child));
    else if (node && typeof node === 'object') {
      for (const [k, v] of Object.entries(node)) {
        if ((k === 'secret' || k === 'secretRef' || k === 'secretKeyRef') && v && typeof v === 'object') {
          const name = (v as Plain).secretName ?? (v as Plain).name;
          if (typeof name === 'string') names.push(name);
        }
        visit(v, k);
      }
    }
    void key;
  };
  for (const object of objects) if (['Deployment', 'StatefulSet', 'Job', 'CronJob'].includes(object.kind)) visit(object.spec);
  return [...new Set(names)];
}
const dns1123Subdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

test('the README yaml blocks are the ones this test knows (a new block needs a decision here)', () => {
  assert.deepEqual(
    snippets.map((s) => s.id),
    [
      '### Step 3: Configure Values #1',
      '#### Server Settings #1',
      '#### Database #1',
      '#### Email Configuration #1',
      '#### Basic OIDC Configuration #1',
      '#### Example: Authelia Integration #1',
      '#### Example: Authelia Integration #2',
      '#### Network Policy for SSO #1',
      '#### Server Configuration #1',
      '#### Server Configuration #2',
      '#### Security #1',
      '#### Configuration #1',
      '#### Custom Theme Colors #1',
      '### Quick Start #1',
      '### Configuration Examples #1',
      '### Configuration Examples #2',
      '### Network Security #1',
    ],
  );
});

test('the skipped blocks really are not chart values', () => {
  assert.ok(rawOf('#### Example: Authelia Integration #1').identity_providers, notValues['#### Example: Authelia Integration #1']);
  assert.ok(rawOf('#### Security #1').url_preview_ip_range_blacklist, notValues['#### Security #1']);
});

for (const { id, line, text } of snippets) {
  if (id in notValues) continue;
  const refusal = refused[id];
  if (refusal) {
    test(`README snippet "${id}" (line ${line}) is refused with the explanation`, () => {
      assert.throws(
        () => resolveValues(parseYaml(text) as Record<string, unknown>),
        (error: unknown) => error instanceof ValuesError && error.problems.some((p) => p.startsWith(refusal)),
      );
    });
    continue;
  }
  test(`README snippet "${id}" (line ${line}) is accepted and renders`, () => {
    const { objects } = render(parseYaml(text) as Record<string, unknown>);
    assert.ok(objects.length > 0, 'renders objects');
    for (const name of referencedSecretNames(objects)) assert.match(name, dns1123Subdomain, `Secret name "${name}" is not a valid Kubernetes name`);
  });
}

test('"Server Configuration" (2FA): TOTP as the README writes it sends every login to the auth component', () => {
  const { objects, values } = render(rawOf('#### Server Configuration #1'));
  assert.equal(values.synapse.server.mfa.totp.algorithm, 'sha1');
  assert.equal(values.synapse.server.mfa.totp.issuer, 'My Matrix');
  const config = homeserver(objects);
  assert.deepEqual(config.password_config, { enabled: false }, 'Synapse\'s own password login is off');
  const [provider] = config.oidc_providers as Plain[];
  assert.equal(provider!.idp_id, 'mxstack');
  assert.equal(provider!.issuer, `${config.public_baseurl}auth`, 'the issuer is /auth on Synapse\'s public host');
  const deployment = oneOf(objects, 'Deployment', 'auth');
  assert.equal(deployment.metadata.name, 'mxstack-auth');
  const authConfig = JSON.parse(oneOf(objects, 'ConfigMap', 'auth').data['config.json'] as string) as Plain;
  assert.deepEqual(
    { ...authConfig.policy.totp },
    { enabled: true, issuer: 'My Matrix', digits: 6, period: 30, algorithm: 'SHA1' },
  );
});

test('README 2FA snippet through the CLI: rendered, with the auth component', () => {
  const result = runCli(['render', '--set', 'synapse.server.mfa.totp.enabled=true', '--set', 'synapse.server.mfa.totp.issuer=My Matrix']);
  assert.equal(result.status, 0, result.stderr);
  const objects = result.stdout.split(/^---$/m).map((doc) => parseYaml(doc) as Plain | null).filter((o): o is Plain => o !== null);
  assert.ok(objects.some((o) => o.kind === 'Deployment' && o.metadata.name === 'mxstack-auth'), 'the auth Deployment is rendered');
});

test('"Key settings": server name and public hosts reach Synapse, Element and the Ingress', () => {
  const raw = rawOf('### Step 3: Configure Values #1');
  const { objects } = render(raw);
  assert.equal(homeserver(objects).server_name, 'matrix.example.com');
  assert.equal(homeserver(objects).public_baseurl, 'https://matrix.example.com/');
  const element = elementConfig(objects);
  assert.equal(element.default_server_config['m.homeserver'].server_name, 'matrix.example.com');
  assert.match(element.default_server_config['m.homeserver'].base_url, /^https:\/\/matrix\.example\.com\/?$/);
  // The old chart's values.yaml had ingress.enabled: true; its README sets only the hosts and opens Element.
  const hosts = ofKind(objects, 'Ingress').flatMap((o) => o.spec.rules.map((r: Plain) => r.host));
  assert.ok(hosts.includes('matrix.example.com') && hosts.includes('element.example.com'), `Ingress hosts: ${hosts.join(', ') || 'no Ingress'}`);
});

test('"Key settings" through the CLI: Ingress objects on stdout, the public routes on stderr', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mxstack-key-settings-'));
  try {
    const file = join(dir, 'values-prod.yaml');
    writeFileSync(file, snippet('### Step 3: Configure Values #1').text);
    const result = runCli(['render', '-f', file]);
    assert.equal(result.status, 0, result.stderr);
    const ingresses = result.stdout.split(/^---$/m).map((doc) => parseYaml(doc) as Plain | null).filter((o): o is Plain => o?.kind === 'Ingress');
    assert.deepEqual(ingresses.flatMap((o) => o.spec.rules.map((r: Plain) => r.host)), ['matrix.example.com', 'element.example.com']);
    assert.match(result.stderr, /^public routes: Ingress mxstack-router/m);
    assert.match(result.stderr, /^ {2}https:\/\/element\.example\.com {2}\//m);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('"Server Settings": stats, closed registration, guests off, upload and image limits in homeserver.yaml', () => {
  const config = homeserver(render(rawOf('#### Server Settings #1')).objects);
  assert.equal(config.server_name, 'matrix.example.com');
  assert.equal(config.report_stats, true);
  assert.equal(config.enable_registration, false);
  assert.equal(config.allow_guest_access, false);
  assert.equal(config.max_upload_size, '100M');
  assert.equal(config.max_image_pixels, '64M');
});

test('"Database": the release PostgreSQL creates synapse_prod on a 5Gi Longhorn volume', () => {
  const { objects } = render(rawOf('#### Database #1'));
  const statefulSet = oneOf(objects, 'StatefulSet', 'postgresql');
  const claim = statefulSet.spec.volumeClaimTemplates[0].spec;
  assert.equal(claim.resources.requests.storage, '5Gi');
  assert.equal(claim.storageClassName, 'longhorn');
  const env = statefulSet.spec.template.spec.containers.flatMap((c: Plain) => c.env ?? []);
  assert.deepEqual(env.find((e: Plain) => e.name === 'POSTGRES_DB')?.value, 'synapse_prod');
  assert.deepEqual(env.find((e: Plain) => e.name === 'POSTGRES_USER')?.value, 'synapse');
});

test('"Email Configuration": the SMTP settings reach Synapse in the rendered homeserver.yaml, its password does not', () => {
  const { objects, values } = render(rawOf('#### Email Configuration #1'));
  const { email } = homeserver(objects);
  assert.equal(email.smtp_host, 'smtp.example.com');
  assert.equal(email.smtp_port, 587);
  assert.equal(email.smtp_user, 'matrix-noreply');
  assert.equal(email.notif_from, 'Matrix <matrix@example.com>');
  assert.equal(email.app_name, 'My Matrix Server');
  assert.equal('smtp_pass' in email, false);
  const smtpPass = values.synapse.server.email.smtpPass;
  if (smtpPass !== undefined) for (const configMap of ofKind(objects, 'ConfigMap')) assert.ok(!JSON.stringify(configMap).includes(smtpPass));
});

test('"Basic OIDC Configuration": the provider reaches homeserver.yaml with its own secret file', () => {
  const { objects } = render(rawOf('#### Basic OIDC Configuration #1'));
  const providers = homeserver(objects).oidc_providers as Plain[];
  assert.equal(providers.length, 1);
  const [provider] = providers;
  assert.equal(provider!.idp_id, 'my_provider');
  assert.equal(provider!.idp_name, 'My SSO');
  assert.equal(provider!.issuer, 'https://sso.example.com');
  assert.equal(provider!.client_id, 'matrix');
  assert.deepEqual(provider!.scopes, ['openid', 'profile', 'email']);
  assert.equal(provider!.user_mapping_provider.config.localpart_template, '{{ user.preferred_username }}');
  assert.equal(provider!.client_secret, undefined, 'no secret in the ConfigMap');
  assert.match(provider!.client_secret_path, /my_provider/);
});

test('"Example: Authelia Integration": Authelia provider with existing-user linking and the groups scope', () => {
  const { objects } = render(rawOf('#### Example: Authelia Integration #2'));
  const [provider] = homeserver(objects).oidc_providers as Plain[];
  assert.equal(provider!.idp_id, 'authelia');
  assert.equal(provider!.issuer, 'https://authelia.example.com');
  assert.equal(provider!.allow_existing_users, true);
  assert.deepEqual(provider!.scopes, ['openid', 'profile', 'email', 'groups']);
});

test('"Network Policy for SSO": Synapse may reach the authentif namespace', () => {
  const { objects } = render(rawOf('#### Example: Authelia Integration #2'), rawOf('#### Network Policy for SSO #1'));
  const synapseEgressPeers = ofKind(objects, 'NetworkPolicy')
    .filter((p) => p.spec.podSelector?.matchLabels?.['app.kubernetes.io/name'] === 'synapse')
    .flatMap((p) => (p.spec.egress ?? []).flatMap((rule: Plain) => rule.to ?? []));
  assert.ok(
    synapseEgressPeers.some((peer: Plain) => peer.namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'] === 'authentif'),
    `egress peers of Synapse: ${JSON.stringify(synapseEgressPeers)}`,
  );
});

test('"URL Previews": previews on with every range of the README\'s SSRF blacklist', () => {
  const config = homeserver(render(rawOf('#### Server Configuration #2')).objects);
  assert.equal(config.url_preview_enabled, true);
  const documented = rawOf('#### Security #1').url_preview_ip_range_blacklist as string[];
  for (const range of documented) assert.ok((config.url_preview_ip_range_blacklist as string[]).includes(range), `${range} blacklisted`);
  assert.equal(config.max_spider_size, '10M', '10MB max preview size');
  // "HTTP/HTTPS egress via NetworkPolicy": with policies on, Synapse may fetch pages on 80 and 443.
  const { objects } = render(rawOf('#### Server Configuration #2'), { networkPolicy: { enabled: true } });
  const synapseEgressPorts = ofKind(objects, 'NetworkPolicy')
    .filter((p) => p.spec.podSelector?.matchLabels?.['app.kubernetes.io/name'] === 'synapse')
    .flatMap((p) => (p.spec.egress ?? []).flatMap((rule: Plain) => (rule.ports ?? []).map((port: Plain) => port.port)));
  assert.ok(synapseEgressPorts.includes(80) && synapseEgressPorts.includes(443), `Synapse egress ports: ${synapseEgressPorts.join(', ')}`);
});

test('"Element Web Theming": dark default theme and branding images in config.json', () => {
  const config = elementConfig(render(rawOf('#### Configuration #1')).objects);
  assert.equal(config.default_theme, 'dark');
  assert.equal(config.branding?.auth_header_logo_url, 'https://example.com/logo.png');
  assert.equal(config.branding?.welcome_background_url, 'https://example.com/background.jpg');
});

test('"Custom Theme Colors": the custom theme reaches config.json', () => {
  const config = elementConfig(render(rawOf('#### Custom Theme Colors #1')).objects);
  const themes = config.setting_defaults?.custom_themes as Plain[] | undefined;
  assert.ok(themes, `custom_themes in setting_defaults: ${JSON.stringify(config.setting_defaults)}`);
  assert.equal(themes.length, 1);
  assert.equal(themes[0]!.name, 'Dark');
  assert.equal(themes[0]!.is_dark, true);
  assert.equal(themes[0]!.colors['accent-color'], '#0dbd8b');
  assert.equal(themes[0]!.colors['timeline-text-color'], '#ffffff');
});

test('coturn "Quick Start": LoadBalancer published by external-dns, realm and TURN URIs on turn.example.com', () => {
  // The README's placeholder is refused (above); with a real address in its place the block renders.
  const { objects } = render(rawOf('### Quick Start #1'), { coturn: { externalIP: '203.0.113.50' } });
  assert.ok(turnserverLines(objects).includes('external-ip=203.0.113.50'));
  const services = byComponent(objects, 'Service', 'coturn').filter((s) => s.spec.type === 'LoadBalancer');
  assert.equal(services.length, 1);
  assert.equal(services[0]!.metadata.annotations?.['external-dns.alpha.kubernetes.io/hostname'], 'turn.example.com');
  assert.ok(turnserverLines(objects).includes('realm=turn.example.com'));
  const config = homeserver(objects);
  const uris = config.turn_uris as string[];
  assert.ok(uris.length > 0 && uris.every((uri) => uri.includes('turn.example.com')), uris.join(', '));
  // "Shared secret injected from Kubernetes secret ... no manual configuration needed": a file, never inline.
  assert.equal(typeof config.turn_shared_secret_path, 'string');
  assert.equal(config.turn_shared_secret, undefined);
});

test('coturn "Production with LoadBalancer": fixed IP, TURNS with the coturn-tls certificate, resource limits', () => {
  const { objects } = render(rawOf('### Configuration Examples #1'));
  const service = byComponent(objects, 'Service', 'coturn').find((s) => s.spec.type === 'LoadBalancer');
  assert.equal(service?.spec.loadBalancerIP, '203.0.113.50');
  const lines = turnserverLines(objects);
  assert.ok(lines.includes('external-ip=203.0.113.50'), 'external-ip');
  assert.ok(lines.includes('realm=turn.example.com'), 'realm');
  assert.ok(lines.some((l) => l.startsWith('cert=')) && lines.some((l) => l.startsWith('pkey=')), 'certificate configured');
  assert.ok((homeserver(objects).turn_uris as string[]).some((uri) => uri.startsWith('turns:')), 'a turns: URI for clients');
  const deployment = oneOf(objects, 'Deployment', 'coturn');
  const volumes = deployment.spec.template.spec.volumes as Plain[];
  assert.ok(volumes.some((v) => v.secret?.secretName === 'coturn-tls'), 'the coturn-tls Secret is mounted');
  const limits = deployment.spec.template.spec.containers.find((c: Plain) => c.name === 'coturn')?.resources?.limits;
  assert.deepEqual(limits, { cpu: '1000m', memory: '512Mi' });
});

test('coturn "NodePort setup": TURN on node port 30478 for UDP and TCP', () => {
  const { objects } = render(rawOf('### Configuration Examples #2'));
  const service = byComponent(objects, 'Service', 'coturn').find((s) => s.spec.type === 'NodePort');
  assert.ok(service, 'a NodePort Service for coturn');
  const turnPorts = (service.spec.ports as Plain[]).filter((p) => p.port === 3478);
  assert.deepEqual(turnPorts.map((p) => `${p.protocol}/${p.nodePort}`).sort(), ['TCP/30478', 'UDP/30478']);
  assert.ok(turnserverLines(objects).includes('external-ip=203.0.113.50'));
});

test('"Network Security": inbound HTTP only from the traefik namespace', () => {
  const { objects } = render(rawOf('### Network Security #1'));
  const policies = ofKind(objects, 'NetworkPolicy');
  assert.ok(policies.length > 0, 'NetworkPolicies rendered');
  const fromTraefik = policies.filter((p) =>
    (p.spec.ingress ?? []).some((rule: Plain) => (rule.from ?? []).some((peer: Plain) => peer.namespaceSelector?.matchLabels?.name === 'traefik')),
  );
  assert.ok(fromTraefik.length > 0, 'a policy admits the traefik namespace');
});
