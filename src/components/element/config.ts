/**
 * Element Web's config.json. Keys follow `IConfigOptions` in element-hq/element-web (snake_case); a values
 * key with no counterpart there is not rendered (see the notes beside each mapping).
 */
import type { Stack } from '../../stack/model.js';
import type { Values } from '../../values/schema.js';
import { deepMerge } from '../../values/load.js';
import { baseUrlWithoutTrailingSlash } from '../wellknown/config.js';
import { toPlainSorted, toSortedJson } from '../../kit/sorted-json.js';

type ElementConfigValues = Values['element']['config'];
type CustomTheme = ElementConfigValues['customThemes'][number];

/** A list that says nothing when empty is left out, so Element keeps its own default. */
const unlessEmpty = <T>(list: T[]): T[] | undefined => (list.length > 0 ? list : undefined);

/** An object whose members are all undefined is left out. */
function unlessAllUndefined(object: Record<string, unknown>): Record<string, unknown> | undefined {
  return Object.values(object).some((value) => value !== undefined) ? object : undefined;
}

function customTheme(theme: CustomTheme): Record<string, unknown> {
  return { name: theme.name, is_dark: theme.is_dark, colors: theme.colors, fonts: theme.fonts };
}

/**
 * Element only takes a Jitsi *domain* (`jitsi.preferred_domain`); the values key holds a widget URL, so
 * its host name is used. A bare domain is taken as is.
 */
export function jitsiPreferredDomain(jitsiWidgetUrl: string): string {
  try {
    return new URL(jitsiWidgetUrl).hostname;
  } catch {
    return jitsiWidgetUrl;
  }
}

function defaultServerConfig(stack: Stack, config: ElementConfigValues): Record<string, unknown> {
  return {
    'm.homeserver': {
      base_url: baseUrlWithoutTrailingSlash(config.defaultServerUrl ?? stack.publicBaseUrl),
      server_name: config.defaultServerName ?? stack.serverName,
    },
  };
}

function settingDefaults(config: ElementConfigValues): Record<string, unknown> {
  return {
    custom_themes: unlessEmpty(config.customThemes.map(customTheme)),
    // Element has no `features` flag for widgets: the switch is the `UIFeature.widgets` setting.
    'UIFeature.widgets': config.features.enableWidgets,
  };
}

function branding(config: ElementConfigValues): Record<string, unknown> | undefined {
  return unlessAllUndefined({
    welcome_background_url: config.branding.welcomeBackgroundUrl,
    auth_header_logo_url: config.branding.authHeaderLogoUrl,
    auth_footer_links: unlessEmpty(config.branding.authFooterLinks.map(({ text, url }) => ({ text, url }))),
  });
}

/**
 * config.json as an object. Not rendered, because Element Web 1.12 reads no such key:
 * `welcome_user_id` (element.config.welcomeUserId; removed from IConfigOptions, the welcome bot is gone).
 * Element's `features` map (feature_* flags) has no values key of its own: set it through `extra`.
 */
export function renderElementConfig(stack: Stack): Record<string, unknown> {
  const config = stack.values.element.config;
  const { integrations } = config;
  const rendered = {
    default_server_config: defaultServerConfig(stack, config),
    brand: config.brand,
    default_theme: config.defaultTheme,
    setting_defaults: settingDefaults(config),
    show_labs_settings: config.features.showLabsSettings,
    disable_guests: config.disableGuests,
    disable_custom_urls: config.disableCustomUrls,
    disable_3pid_login: config.disable3pidLogin,
    branding: branding(config),
    embedded_pages: unlessAllUndefined({ welcome_url: config.embeddedPages.welcomeUrl, home_url: config.embeddedPages.homeUrl }),
    room_directory: { servers: unlessEmpty(config.roomDirectory.servers) ?? [stack.serverName] },
    integrations_ui_url: integrations.uiUrl,
    integrations_rest_url: integrations.restUrl,
    integrations_widgets_urls: unlessEmpty(integrations.widgetsUrls),
    jitsi: integrations.jitsiWidgetUrl === undefined ? undefined : { preferred_domain: jitsiPreferredDomain(integrations.jitsiWidgetUrl) },
  };
  return toPlainSorted(deepMerge(toPlainSorted(rendered), config.extra)) as Record<string, unknown>;
}

/** { 'config.json': ... } */
export function elementConfigFiles(stack: Stack): Record<string, string> {
  return { 'config.json': toSortedJson(renderElementConfig(stack)) };
}
