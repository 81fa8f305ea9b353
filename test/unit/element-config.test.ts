import { test } from 'node:test';
import assert from 'node:assert/strict';
import { elementConfigFiles, renderElementConfig } from '../../src/components/element/config.js';
import { kubernetesStack } from '../support/component-stacks.js';
import { ValuesError } from '../../src/values/errors.js';

type Tree = Record<string, unknown>;

const at = (tree: unknown, ...path: string[]): unknown =>
  path.reduce<unknown>((node, key) => (node as Tree | undefined)?.[key], tree);

function undefinedPaths(value: unknown, path = ''): string[] {
  if (value === undefined) return [path];
  if (value === null || typeof value !== 'object') return [];
  return Object.entries(value).flatMap(([key, child]) => undefinedPaths(child, `${path}.${key}`));
}

test('defaults point Element at this server and list only this server in the room directory', () => {
  const config = renderElementConfig(kubernetesStack({ synapse: { server: { name: 'example.org' } }, ingress: { synapse: { host: 'matrix.example.org' } } }));
  assert.deepEqual(config.default_server_config, { 'm.homeserver': { base_url: 'https://matrix.example.org', server_name: 'example.org' } });
  assert.deepEqual(config.room_directory, { servers: ['example.org'] });
  assert.equal(config.brand, 'Element');
  assert.equal(config.default_theme, 'light');
  assert.equal(config.disable_guests, true);
  assert.equal(config.show_labs_settings, false);
  assert.deepEqual(undefinedPaths(config), [], 'no key is written with an undefined value');
  for (const absent of ['branding', 'embedded_pages', 'integrations_ui_url', 'jitsi', 'welcome_user_id']) {
    assert.equal(absent in config, false, `${absent} is left to Element's default`);
  }
});

test('explicit server URL and name win, without a trailing slash', () => {
  const config = renderElementConfig(
    kubernetesStack({
      synapse: { server: { name: 'example.org' } },
      element: { config: { defaultServerUrl: 'https://hs.example.net/', defaultServerName: 'Example', roomDirectory: { servers: ['matrix.org', 'example.org'] } } },
    }),
  );
  assert.deepEqual(at(config, 'default_server_config', 'm.homeserver'), { base_url: 'https://hs.example.net', server_name: 'Example' });
  assert.deepEqual(at(config, 'room_directory', 'servers'), ['matrix.org', 'example.org']);
});

test('custom themes, branding, embedded pages and integrations reach config.json under Element\'s own keys', () => {
  const config = renderElementConfig(
    kubernetesStack({
      element: {
        config: {
          brand: 'Acme Chat',
          defaultTheme: 'custom-acme-dark',
          customThemes: [{ name: 'acme-dark', is_dark: true, colors: { 'accent-color': '#ff6600' }, fonts: { general: 'Inter' } }],
          disableCustomUrls: true,
          disable3pidLogin: true,
          features: { showLabsSettings: true },
          branding: {
            authHeaderLogoUrl: 'https://acme.example/logo.svg',
            welcomeBackgroundUrl: 'https://acme.example/bg.jpg',
            authFooterLinks: [{ text: 'Privacy', url: 'https://acme.example/privacy' }],
          },
          embeddedPages: { homeUrl: 'https://acme.example/home.html' },
          integrations: {
            uiUrl: 'https://im.acme.example/',
            restUrl: 'https://im.acme.example/api',
            widgetsUrls: ['https://im.acme.example/widgets'],
            jitsiWidgetUrl: 'https://meet.acme.example/widget',
          },
        },
      },
    }),
  );
  assert.equal(config.brand, 'Acme Chat');
  assert.equal(config.default_theme, 'custom-acme-dark');
  assert.deepEqual(at(config, 'setting_defaults', 'custom_themes'), [
    { name: 'acme-dark', is_dark: true, colors: { 'accent-color': '#ff6600' }, fonts: { general: 'Inter' } },
  ]);
  assert.deepEqual(config.branding, {
    auth_footer_links: [{ text: 'Privacy', url: 'https://acme.example/privacy' }],
    auth_header_logo_url: 'https://acme.example/logo.svg',
    welcome_background_url: 'https://acme.example/bg.jpg',
  });
  assert.deepEqual(config.embedded_pages, { home_url: 'https://acme.example/home.html' });
  assert.equal(config.show_labs_settings, true);
  assert.equal(config.disable_custom_urls, true);
  assert.equal(config.disable_3pid_login, true);
  assert.equal(config.integrations_ui_url, 'https://im.acme.example/');
  assert.equal(config.integrations_rest_url, 'https://im.acme.example/api');
  assert.deepEqual(config.integrations_widgets_urls, ['https://im.acme.example/widgets']);
  assert.deepEqual(config.jitsi, { preferred_domain: 'meet.acme.example' }, 'Element takes a Jitsi domain, not a URL');
});

test('turning widgets off sets the UIFeature.widgets setting Element reads', () => {
  const on = renderElementConfig(kubernetesStack());
  const off = renderElementConfig(kubernetesStack({ element: { config: { features: { enableWidgets: false } } } }));
  assert.equal(at(on, 'setting_defaults', 'UIFeature.widgets'), true);
  assert.equal(at(off, 'setting_defaults', 'UIFeature.widgets'), false);
});

test('welcomeUserId is refused, not silently dropped: Element Web 1.12 has no welcome_user_id option', () => {
  assert.throws(
    () => kubernetesStack({ element: { config: { welcomeUserId: '@bot:example.org' } } }),
    (error: Error) => error instanceof ValuesError && /element\.config\.welcomeUserId: .*welcome_user_id/.test(error.message),
  );
});

test('extra is merged last and deeply: it can override a rendered key and add beside rendered ones', () => {
  const config = renderElementConfig(
    kubernetesStack({
      element: {
        config: {
          customThemes: [{ name: 'x', colors: {} }],
          extra: { brand: 'Overridden', setting_defaults: { 'UIFeature.voip': false }, features: { feature_video_rooms: true } },
        },
      },
    }),
  );
  assert.equal(config.brand, 'Overridden');
  assert.equal(at(config, 'setting_defaults', 'UIFeature.voip'), false);
  assert.equal((at(config, 'setting_defaults', 'custom_themes') as unknown[]).length, 1, 'rendered settings kept beside extra ones');
  assert.deepEqual(config.features, { feature_video_rooms: true });
});

test('config.json is the same object as JSON with sorted keys, 2-space indent and a final newline', () => {
  const stack = kubernetesStack({ element: { config: { customThemes: [{ name: 'b', colors: { z: '#000', a: '#fff' } }] } } });
  const text = elementConfigFiles(stack)['config.json']!;
  assert.deepEqual(JSON.parse(text), renderElementConfig(stack));
  assert.ok(text.endsWith('}\n'));
  assert.match(text, /^\{\n {2}"brand"/);
  const keyOrderIsSorted = (node: unknown): boolean => {
    if (node === null || typeof node !== 'object') return true;
    const keys = Array.isArray(node) ? [] : Object.keys(node);
    return keys.every((key, i) => i === 0 || keys[i - 1]! < key) && Object.values(node).every(keyOrderIsSorted);
  };
  assert.ok(keyOrderIsSorted(JSON.parse(text)));
  assert.equal(elementConfigFiles(stack)['config.json'], text, 'rendering twice gives the same bytes');
});
