/**
 * Container images for the end-to-end Kubernetes tests, built from the local target's runtime root
 * filesystem (src/targets/local/runtime.ts: the same Debian packages the local target runs) and named
 * exactly as the rendered manifests name the upstream images, so the manifests run unchanged.
 *
 * There is no registry here. One docker-archive holds every image: one layer with the whole runtime, one
 * with what the upstream images add on top (users, entry points, the auth service), and one image config
 * per upstream name. The archive is cached under the mxstack cache directory, keyed by the runtime's
 * package set and every input below, so it is built once per machine (and again only when an input
 * changes); the shared cluster tool's images/mkimage.py writes it.
 *
 * loadTestImages() puts them into the cluster: the shared cluster imports the archive with `cluster import`
 * (once per archive: a marker per kubeconfig). Another cluster (MXSTACK_TEST_KUBECONFIG) gets them through
 * MXSTACK_TEST_IMAGE_LOAD, a command given the archive's path (e.g. `kind load image-archive`); without it,
 * that cluster must be able to pull the images the manifests name.
 *
 * Each upstream contract the manifests rely on is imitated as `contract` says, in one line.
 */
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { defaultImages, componentVersions, type ImageName } from '../../src/versions.js';
import { mxstackCacheDir, postgresqlMajor, runtimeDir, runtimeIsPresent } from '../../src/targets/local/runtime.js';
import { projectRoot } from './cli.js';
import { findSharedClusterTool, testKubeconfigVariable, type TestCluster } from './kubernetes-cluster.js';

/** The image config fields an upstream image sets and the manifests depend on. */
interface ImageConfig {
  Entrypoint?: string[];
  Cmd?: string[];
  Env: string[];
  User?: string;
  WorkingDir?: string;
  StopSignal?: string;
}

export interface TestImage {
  /** The name the rendered manifests use (defaultImages). */
  name: string;
  /** What of the upstream image is imitated, in one line. */
  contract: string;
  config: ImageConfig;
}

/** Where the overlay puts the auth service (the upstream Dockerfile's WORKDIR, images/auth/Dockerfile). */
const authAppDir = '/app';
const basePath = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export function imageName(image: ImageName): string {
  return `${defaultImages[image].repository}:${defaultImages[image].tag}`;
}

/** The images of the e2e release (Element Web has no release available offline: it stays off there). */
export function testImages(pgMajor: number): TestImage[] {
  const pgBin = `/usr/lib/postgresql/${pgMajor}/bin`;
  return [
    {
      name: imageName('synapse'),
      contract: `\`python\` on PATH runs Debian's matrix-synapse ${componentVersions.synapse} (\`python -m synapse.app.homeserver\`) as any uid (991 in the manifests), like the upstream image's /usr/local/bin/python, with its Redis client txredisapi (for workers)`,
      config: { Entrypoint: ['python', '-m', 'synapse.app.homeserver'], Env: [`PATH=${basePath}`, 'LANG=C.UTF-8', 'PYTHONUNBUFFERED=1'] },
    },
    {
      name: imageName('postgresql'),
      contract: `docker-entrypoint.sh honours POSTGRES_{USER,DB,PASSWORD,PASSWORD_FILE,INITDB_ARGS} on an empty PGDATA=/var/lib/postgresql/${pgMajor}/docker (the ${pgMajor} image's layout), user postgres is uid/gid 70 as on Alpine, the server tools on PATH, sockets in /var/run/postgresql, stop signal SIGINT`,
      config: {
        Entrypoint: ['docker-entrypoint.sh'],
        Cmd: ['postgres'],
        Env: [`PATH=/usr/local/sbin:/usr/local/bin:${pgBin}:/usr/sbin:/usr/bin:/sbin:/bin`, `PG_MAJOR=${pgMajor}`, `PGDATA=/var/lib/postgresql/${pgMajor}/docker`, 'LANG=C.UTF-8'],
        StopSignal: 'SIGINT',
      },
    },
    {
      name: imageName('coturn'),
      contract: '`turnserver` and a POSIX `sh` with cat/tr/printf on PATH, running as nobody (65534), like the Alpine coturn image',
      config: { Entrypoint: ['turnserver'], Env: [`PATH=${basePath}`], User: '65534:65534' },
    },
    {
      name: imageName('router'),
      contract: '`haproxy` on PATH reading /usr/local/etc/haproxy/haproxy.cfg, user haproxy is uid/gid 99 as on Alpine, stop signal SIGUSR1',
      config: { Entrypoint: ['haproxy'], Cmd: ['-f', '/usr/local/etc/haproxy/haproxy.cfg'], Env: [`PATH=${basePath}`], User: '99:99', StopSignal: 'SIGUSR1' },
    },
    {
      name: imageName('redis'),
      contract: '`redis-server` on PATH, user redis is uid/gid 999 as in the upstream image',
      config: { Entrypoint: ['redis-server'], Env: [`PATH=${basePath}`], User: '999:999' },
    },
    {
      name: imageName('auth'),
      contract: `images/auth/Dockerfile's layout: ${authAppDir} with bin/, src/ and the production node_modules, \`node bin/mxstack-auth.js --config /config/config.json\`, user 10001 (the host's Node ${process.version} binary stands in for the node:20 base image)`,
      config: {
        Entrypoint: ['node', 'bin/mxstack-auth.js'],
        Cmd: ['--config', '/config/config.json'],
        Env: [`PATH=${basePath}`, 'NODE_ENV=production', 'LANG=C.UTF-8'],
        User: '10001:10001',
        WorkingDir: authAppDir,
      },
    },
  ];
}

/** mkimage.py of the shared cluster tool (it needs no cluster: it only writes a tarball). */
function mkimage(): string {
  const tool = findSharedClusterTool();
  if (!tool) throw new Error('the shared cluster tool (shared/kubernetes beside the clone) is missing: its images/mkimage.py builds the test images');
  return join(tool, 'images/mkimage.py');
}

/** Files of the auth service the image carries (the Dockerfile's COPY lines). */
const authSources = ['package.json', 'package-lock.json', 'bin', 'src'];

function filesUnder(path: string): string[] {
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path, { withFileTypes: true })
    .sort((a, b) => a.name.localeCompare(b.name))
    .flatMap((entry) => filesUnder(join(path, entry.name)));
}

/** Production dependencies only (npm's own view of the tree), relative to the project root. */
function productionPackages(): string[] {
  const result = spawnSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: projectRoot, encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
  return result.stdout
    .split('\n')
    .filter((line) => line.startsWith(join(projectRoot, 'node_modules')))
    .map((line) => relative(projectRoot, line))
    .sort();
}

/** What decides the archive's contents: a different value means a different archive. */
export function imageArchiveKey(runtime: string, images: TestImage[]): string {
  const hash = createHash('sha256');
  const add = (label: string, data: string | Buffer) => hash.update(`${label}\0`).update(data).update('\0');
  add('runtime packages', readFileSync(join(runtime, 'var/lib/dpkg/status')));
  add('mkimage', readFileSync(mkimage()));
  add('images', JSON.stringify(images));
  add('overlay script', readFileSync(new URL(import.meta.url)));
  add('postgres entrypoint', readFileSync(new URL('./test-images/postgres-entrypoint.sh', import.meta.url)));
  add('node', readFileSync(process.execPath));
  for (const file of authSources.flatMap((source) => filesUnder(join(projectRoot, source)))) add(relative(projectRoot, file), readFileSync(file));
  add('production packages', productionPackages().join('\n'));
  return hash.digest('hex').slice(0, 16);
}

/** /etc/passwd or /etc/group of the runtime with the upstream images' ids for the users the manifests run as. */
export function withUpstreamIds(text: string, ids: Record<string, number>, kind: 'passwd' | 'group'): string {
  const lines = text.split('\n').filter((line) => line !== '');
  const out = lines.map((line) => {
    const fields = line.split(':');
    const id = ids[fields[0]!];
    if (id === undefined) return line;
    fields[2] = String(id);
    if (kind === 'passwd') fields[3] = String(id);
    return fields.join(':');
  });
  for (const [name, id] of Object.entries(ids)) {
    if (out.some((line) => line.startsWith(`${name}:`))) continue;
    out.push(kind === 'passwd' ? `${name}:x:${id}:${id}::/nonexistent:/usr/sbin/nologin` : `${name}:x:${id}:`);
  }
  return `${out.join('\n')}\n`;
}

const upstreamIds = { postgres: 70, haproxy: 99, redis: 999 };

/** The layer on top of the runtime: upstream users and ids, `python` and txredisapi, the postgres entry point, the auth service. */
function writeOverlay(runtime: string, dir: string): void {
  mkdirSync(join(dir, 'etc'), { recursive: true });
  writeFileSync(join(dir, 'etc/passwd'), withUpstreamIds(readFileSync(join(runtime, 'etc/passwd'), 'utf8'), upstreamIds, 'passwd'));
  writeFileSync(join(dir, 'etc/group'), withUpstreamIds(readFileSync(join(runtime, 'etc/group'), 'utf8'), upstreamIds, 'group'));
  const bin = join(dir, 'usr/local/bin');
  mkdirSync(bin, { recursive: true });
  symlinkSync('/usr/bin/python3', join(bin, 'python'));
  copyFileSync(new URL('./test-images/postgres-entrypoint.sh', import.meta.url), join(bin, 'docker-entrypoint.sh'));
  chmodSync(join(bin, 'docker-entrypoint.sh'), 0o755);
  copyFileSync(process.execPath, join(bin, 'node'));
  chmodSync(join(bin, 'node'), 0o755);
  for (const empty of ['docker-entrypoint-initdb.d/.keep', 'usr/local/etc/haproxy/.keep']) {
    mkdirSync(join(dir, empty, '..'), { recursive: true });
    writeFileSync(join(dir, empty), '');
  }
  // Synapse's Redis client, which the upstream image has and Debian does not package: the module the local target vendors.
  const pythonModules = join(dir, 'usr/lib/python3/dist-packages');
  mkdirSync(pythonModules, { recursive: true });
  cpSync(join(projectRoot, 'src/targets/local/python'), pythonModules, { recursive: true });
  const app = join(dir, authAppDir);
  for (const source of authSources) cpSync(join(projectRoot, source), join(app, source), { recursive: true });
  for (const pkg of productionPackages()) {
    // Nested packages are copied with their parent already; copying the parent takes its whole folder.
    if (existsSync(join(app, pkg))) continue;
    cpSync(join(projectRoot, pkg), join(app, pkg), { recursive: true, verbatimSymlinks: true });
  }
  // Nested node_modules of a copied parent may hold dev-only packages: harmless, they are never loaded.
}

function run(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): string {
  const result = spawnSync(command, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, ...options, env: { ...process.env, ...options.env } });
  if (result.error) throw result.error;
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed (${result.status}): ${result.stderr.trim()}`);
  return result.stdout;
}

interface ArchiveManifestEntry {
  Config: string;
  RepoTags: string[];
  Layers: string[];
}

/**
 * Turns mkimage's one-image archive into one image per TestImage, all on the same layers: each gets the
 * base config with its own `config` section (GNU tar replaces the small JSON members in place).
 */
function addImageConfigs(archive: string, images: TestImage[], workDir: string): void {
  const [entry] = JSON.parse(run('tar', ['-xOf', archive, 'manifest.json'])) as ArchiveManifestEntry[];
  const base = JSON.parse(run('tar', ['-xOf', archive, entry!.Config])) as { config: ImageConfig & { Labels?: Record<string, string> } };
  const manifest: ArchiveManifestEntry[] = [];
  const members: string[] = [];
  for (const image of images) {
    const config = JSON.stringify({ ...base, config: { ...image.config, Labels: { 'org.mxstack.test-image.contract': image.contract } } });
    const file = `${createHash('sha256').update(config).digest('hex')}.json`;
    writeFileSync(join(workDir, file), config);
    members.push(file);
    manifest.push({ Config: file, RepoTags: [image.name], Layers: entry!.Layers });
  }
  writeFileSync(join(workDir, 'manifest.json'), JSON.stringify(manifest));
  run('tar', ['--delete', '-f', archive, 'manifest.json', 'repositories', entry!.Config]);
  run('tar', ['-rf', archive, '-C', workDir, ...members, 'manifest.json']);
}

export interface ImageArchive {
  path: string;
  key: string;
  images: TestImage[];
  /** Whether this call built it (false: reused from the cache). */
  built: boolean;
  buildSeconds: number;
}

/** The cached archive for the current inputs, built when missing. The runtime must exist (`mxstack runtime setup`). */
export function ensureTestImageArchive(progress: (line: string) => void = () => {}): ImageArchive {
  const runtime = runtimeDir();
  if (!runtimeIsPresent(runtime)) throw new Error(`the runtime is missing at ${runtime}: run \`node bin/mxstack.js runtime setup\` first.`);
  const images = testImages(postgresqlMajor(runtime));
  const key = imageArchiveKey(runtime, images);
  const cacheDir = join(mxstackCacheDir(), 'kubernetes-test-images');
  const path = join(cacheDir, `images-${key}.tar`);
  if (existsSync(path)) return { path, key, images, built: false, buildSeconds: 0 };
  mkdirSync(cacheDir, { recursive: true });
  // Older archives are superseded: one is kept per machine.
  for (const name of readdirSync(cacheDir)) if (name.startsWith('images-')) rmSync(join(cacheDir, name), { force: true });
  const started = Date.now();
  const work = mkdtempSync(join(cacheDir, `.build-${key}-`));
  try {
    progress(`building the test images from ${runtime} (once per input set, cached as ${path})`);
    const overlay = join(work, 'overlay');
    writeOverlay(runtime, overlay);
    const building = join(work, 'images.tar');
    run('python3', [mkimage(), building, `mxstack-test/runtime:${key}`, runtime, '--overlay', overlay], { env: { SOURCE_DATE_EPOCH: '0' } });
    addImageConfigs(building, images, work);
    renameSync(building, path);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return { path, key, images, built: true, buildSeconds: (Date.now() - started) / 1000 };
}

/** Image names containerd of the shared cluster holds. */
function sharedClusterImages(tool: string): string[] {
  const listed = spawnSync(join(tool, 'cluster'), ['images'], { encoding: 'utf8' });
  return listed.status === 0 ? listed.stdout.split('\n').filter(Boolean) : [];
}

/** containerd's full name of a short reference (docker.io/library/ for official images). */
export function normalizedImageName(name: string): string {
  const firstPart = name.split('/')[0]!;
  const hasRegistry = name.includes('/') && (firstPart.includes('.') || firstPart.includes(':') || firstPart === 'localhost');
  if (hasRegistry) return name;
  return name.includes('/') ? `docker.io/${name}` : `docker.io/library/${name}`;
}

export interface LoadedImages extends ImageArchive {
  importSeconds: number;
}

/** Builds (or reuses) the archive and puts the images where the cluster's kubelet finds them. */
export function loadTestImages(cluster: TestCluster, progress: (line: string) => void): LoadedImages {
  const archive = ensureTestImageArchive(progress);
  const started = Date.now();
  const tool = findSharedClusterTool();
  const loader = process.env.MXSTACK_TEST_IMAGE_LOAD;
  if (!process.env[testKubeconfigVariable] && tool) {
    const markerDir = join(mxstackCacheDir(), 'kubernetes-test-images');
    const marker = join(markerDir, `imported-${createHash('sha256').update(cluster.kubeconfig).digest('hex').slice(0, 12)}`);
    const present = new Set(sharedClusterImages(tool));
    const upToDate = existsSync(marker) && readFileSync(marker, 'utf8').trim() === archive.key && archive.images.every((image) => present.has(normalizedImageName(image.name)));
    if (!upToDate) {
      progress(`importing ${archive.path} into the shared cluster`);
      run(join(tool, 'cluster'), ['import', archive.path]);
      writeFileSync(marker, `${archive.key}\n`);
    }
  } else if (loader) {
    progress(`loading the images: ${loader} ${archive.path}`);
    run('sh', ['-c', `${loader} "$1"`, 'sh', archive.path]);
  } else {
    progress('MXSTACK_TEST_IMAGE_LOAD is not set: the cluster must pull the images the manifests name itself');
  }
  return { ...archive, importSeconds: (Date.now() - started) / 1000 };
}
