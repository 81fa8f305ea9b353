/**
 * nginx.conf of Element Web on the local target: the runtime's nginx, unprivileged, on loopback, with the
 * headers and caching rules of Element's own image (element-hq/element-web docker/nginx-templates and
 * docs/install.md): config.json, index.html and /version are never cached, the content-hashed bundles are.
 */
import { block, directive, renderNginxConfig, type NginxDirective } from '../../kit/nginx.js';
import { loopback } from '../../kit/local-process.js';

/** The headers Element's image sends with every answer. */
export const elementSecurityHeaders: Readonly<Record<string, string>> = {
  'X-Frame-Options': 'SAMEORIGIN',
  'X-Content-Type-Options': 'nosniff',
  'X-XSS-Protection': '1; mode=block',
  'Content-Security-Policy': "frame-ancestors 'self'",
};

/** Files a browser must fetch anew every time: they name the bundles and carry the stack's settings. */
export const elementNoCacheLocations = ['= /index.html', '= /version', '= /config.json', '~ ^/config.*\\.json$'] as const;

/** Element's bundles live under a content-hashed directory: a new release has new names. */
export const elementHashedBundlesLocation = '^~ /bundles/';
export const elementHashedBundlesCacheControl = 'public, max-age=31536000, immutable';

/** The media types of the files an Element Web release holds (nosniff makes a wrong one fatal). */
export const elementMediaTypes: Readonly<Record<string, readonly string[]>> = {
  'text/html': ['html', 'htm'],
  'text/css': ['css'],
  'text/javascript': ['js', 'mjs'],
  'application/json': ['json', 'map'],
  'application/manifest+json': ['webmanifest'],
  'application/wasm': ['wasm'],
  'image/svg+xml': ['svg', 'svgz'],
  'image/png': ['png'],
  'image/jpeg': ['jpg', 'jpeg'],
  'image/gif': ['gif'],
  'image/webp': ['webp'],
  'image/avif': ['avif'],
  'image/x-icon': ['ico'],
  'font/woff2': ['woff2'],
  'font/woff': ['woff'],
  'font/ttf': ['ttf'],
  'audio/mpeg': ['mp3'],
  'audio/ogg': ['ogg'],
  'audio/wav': ['wav'],
  'video/mp4': ['mp4'],
  'video/webm': ['webm'],
  'text/plain': ['txt'],
  'application/xml': ['xml'],
};

export interface ElementNginxPlacement {
  /** The directory served: the build with the stack's config.json laid over it. */
  rootDir: string;
  port: number;
  /** A directory the unprivileged nginx may write (its pid file and request buffers). */
  writableDir: string;
}

const headerDirectives = (extra: Record<string, string> = {}): NginxDirective[] =>
  Object.entries({ ...elementSecurityHeaders, ...extra }).map(([name, value]) => directive('add_header', name, value, 'always'));

/** nginx replaces inherited add_header lines in a location that has its own: each location lists them all. */
function elementLocations(): NginxDirective[] {
  return [
    block('location', ['/'], [directive('try_files', '$uri', '$uri/', '=404'), ...headerDirectives()]),
    ...elementNoCacheLocations.map((match) => block('location', match.split(' '), headerDirectives({ 'Cache-Control': 'no-cache' }))),
    block('location', elementHashedBundlesLocation.split(' '), headerDirectives({ 'Cache-Control': elementHashedBundlesCacheControl })),
  ];
}

export function renderElementNginxConfig({ rootDir, port, writableDir }: ElementNginxPlacement): string {
  const temporary = (name: string) => `${writableDir}/${name}`;
  return renderNginxConfig([
    // The supervisor runs nginx in the foreground as an unprivileged user: no user switch, no daemon.
    directive('daemon', 'off'),
    directive('worker_processes', '1'),
    directive('pid', temporary('nginx.pid')),
    directive('error_log', 'stderr', 'warn'),
    block('events', [], [directive('worker_connections', '512')]),
    block('http', [], [
      block('types', [], Object.entries(elementMediaTypes).map(([type, extensions]) => directive(type, ...extensions))),
      directive('default_type', 'application/octet-stream'),
      directive('charset', 'utf-8'),
      directive('charset_types', 'text/css', 'text/javascript', 'application/json', 'application/manifest+json', 'text/plain', 'image/svg+xml'),
      directive('access_log', 'off'),
      directive('server_tokens', 'off'),
      directive('sendfile', 'on'),
      directive('gzip', 'on'),
      directive('gzip_types', 'text/css', 'text/javascript', 'application/json', 'application/manifest+json', 'application/wasm', 'image/svg+xml'),
      ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((kind) => directive(`${kind}_temp_path`, temporary(kind))),
      block('server', [], [
        directive('listen', `${loopback}:${port}`),
        directive('root', rootDir),
        directive('index', 'index.html'),
        // Nothing outside the build is served through a link placed in it.
        directive('disable_symlinks', 'on'),
        ...elementLocations(),
      ]),
    ]),
  ]);
}
