/**
 * Synapse's page templates in the stack's brand (`templates.custom_template_directory`). Synapse looks there
 * first for each template by name and falls back to its own for the rest: these two replace the frame every
 * page of Synapse extends (`_base.html`: the title and the "[matrix]" logo header) and the footer of its
 * single sign-on pages (`sso_footer.html`: the Matrix logo and "© 2023 The Matrix.org Foundation"), so the
 * SSO pages ("Confirm it's you", "Thank you", the redirect confirmation, errors) carry the same name as
 * Element's button and the auth component's pages. The files are Jinja2 templates: the brand is written as
 * text, escaped for HTML and with its braces as character references, so Jinja never reads it as syntax.
 */
import type { Stack } from '../../stack/model.js';

/** `text` as HTML text that Jinja2 leaves alone. */
export function templateText(text: string): string {
  const references: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;', '{': '&#123;', '}': '&#125;', '%': '&#37;', '#': '&#35;' };
  return text.replace(/[&<>"'{}%#]/g, (character) => references[character]!);
}

function baseTemplate(brand: string): string {
  return [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '    <meta charset="UTF-8">',
    '    <meta name="viewport" content="width=device-width, initial-scale=1.0">',
    `    <title>{% block title %}{% endblock %} · ${brand}</title>`,
    '    <style type="text/css">',
    "      {%- include 'style.css' without context %}",
    '      .mx_Header .mx_Brand { font-size: 1.25rem; font-weight: 600; margin: 0; }',
    '    </style>',
    '    {% block header %}{% endblock %}',
    '</head>',
    '<body>',
    '<header class="mx_Header">',
    `    <p class="mx_Brand">${brand}</p>`,
    '</header>',
    '',
    '{% block body %}{% endblock %}',
    '',
    '</body>',
    '</html>',
    '',
  ].join('\n');
}

function ssoFooterTemplate(brand: string): string {
  return ['<footer>', `    <p>${brand}</p>`, '</footer>', ''].join('\n');
}

/** The template files by name (beside homeserver.yaml: the config directory is the template directory). */
export function synapseTemplateFiles(stack: Stack): Record<string, string> {
  const brand = templateText(stack.brand);
  return { '_base.html': baseTemplate(brand), 'sso_footer.html': ssoFooterTemplate(brand) };
}
