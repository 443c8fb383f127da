// Finds a Chromium for the headless browser tests (webview tests, extension-host tests): the system's, else the one
// shipped inside the npm package @sparticuz/chromium (a devDependency; linux-x64), unpacked once into a cache
// folder. That build links a few libraries a bare machine may lack (libnss3, libnspr4, libexpat): the package
// carries them too (al2023.tar.br), and they go on LD_LIBRARY_PATH only when the system has none.
//
// usage as a module: const { executablePath, env } = findChromium(); chromium.launch({ executablePath, env: {...process.env, ...env} })
// usage as a command: node scripts/find-chromium.mjs  → prints the path, or the reason none was found (exit 1)
// MERGE_STUDIO_NO_SYSTEM_CHROMIUM=1 skips the system's Chromium (to check the npm fallback on a machine that has one).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliDecompressSync } from 'node:zlib';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const SYSTEM = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome', '/usr/bin/google-chrome-stable'];
const NPM_PACKAGE = '@sparticuz/chromium';
/** The one command that gives a machine a Chromium when neither the system nor npm can (see .ci/run). */
export const INSTALL_HINT = 'apt-get install -y chromium';

/** The cache folder shared with scripts/install-code-server.sh. */
const cacheDir = () =>
  process.env.MERGE_STUDIO_CACHE ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'merge-studio');

/** Writes a file atomically: concurrent test workers never see half of it. */
function writeAtomic(file, data, mode) {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, data, { mode });
  renameSync(tmp, file);
}

/** Unpacks a .tar.br archive into dir (through the system's tar, which every machine has). */
function untarBrotli(archive, dir) {
  const staging = `${dir}.${process.pid}.tmp`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  execFileSync('tar', ['-x', '-C', staging], { input: brotliDecompressSync(readFileSync(archive)), maxBuffer: 1 << 30 });
  try {
    renameSync(staging, dir);
  } catch {
    rmSync(staging, { recursive: true, force: true }); /* another worker won */
  }
}

/** Shared libraries the binary links that the system does not have. */
function missingLibraries(binary, env) {
  try {
    const out = execFileSync('ldd', [binary], { encoding: 'utf8', env: { ...process.env, ...env } });
    return out
      .split('\n')
      .filter((l) => l.includes('not found'))
      .map((l) => l.trim().split(/\s/)[0]);
  } catch {
    return []; /* no ldd: let the launch tell */
  }
}

function fromNpmPackage() {
  if (`${process.platform}-${process.arch}` !== 'linux-x64')
    return { reason: `${NPM_PACKAGE} has no Chromium for ${process.platform}-${process.arch}` };
  let pkgDir;
  // The package's exports hide its package.json: find the folder from its entry point.
  try {
    pkgDir = createRequire(path.join(root, 'package.json')).resolve(NPM_PACKAGE);
  } catch {
    return { reason: `${NPM_PACKAGE} is not installed (npm ci installs it)` };
  }
  while (!existsSync(path.join(pkgDir, 'bin', 'chromium.br')) && path.dirname(pkgDir) !== pkgDir) pkgDir = path.dirname(pkgDir);
  const { version } = JSON.parse(readFileSync(path.join(pkgDir, 'package.json'), 'utf8'));
  const dir = path.join(cacheDir(), `chromium-${version}`);
  const binary = path.join(dir, 'chromium');
  mkdirSync(dir, { recursive: true });
  if (!existsSync(binary)) writeAtomic(binary, brotliDecompressSync(readFileSync(path.join(pkgDir, 'bin', 'chromium.br'))), 0o755);
  chmodSync(binary, 0o755);
  const env = {};
  const fonts = path.join(dir, 'fonts');
  if (!existsSync(fonts)) untarBrotli(path.join(pkgDir, 'bin', 'fonts.tar.br'), fonts);
  if (!existsSync('/etc/fonts/fonts.conf')) env.FONTCONFIG_PATH = fonts;
  if (missingLibraries(binary, env).length) {
    const libs = path.join(dir, 'al2023');
    if (!existsSync(libs)) untarBrotli(path.join(pkgDir, 'bin', 'al2023.tar.br'), libs);
    env.LD_LIBRARY_PATH = [path.join(libs, 'lib'), process.env.LD_LIBRARY_PATH].filter(Boolean).join(':');
    const still = missingLibraries(binary, env);
    if (still.length) return { reason: `the Chromium of ${NPM_PACKAGE} needs ${still.join(', ')}, which this machine lacks` };
  }
  return { executablePath: binary, env, source: `${NPM_PACKAGE}@${version}` };
}

/**
 * A Chromium to launch: { executablePath, env, source }, or { reason } saying why there is none.
 * `env` holds the variables the browser needs on top of the caller's (empty for a system Chromium).
 */
export function findChromium() {
  const explicit = process.env.CHROMIUM_PATH;
  if (explicit)
    return existsSync(explicit)
      ? { executablePath: explicit, env: {}, source: 'CHROMIUM_PATH' }
      : { reason: `CHROMIUM_PATH=${explicit} does not exist` };
  if (process.env.MERGE_STUDIO_NO_SYSTEM_CHROMIUM !== '1') {
    const system = SYSTEM.find((p) => existsSync(p));
    if (system) return { executablePath: system, env: {}, source: 'system' };
  }
  return fromNpmPackage();
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const found = findChromium();
  if (found.executablePath)
    console.log(
      `${found.executablePath} (${found.source}${
        Object.keys(found.env).length
          ? `; ${Object.entries(found.env)
              .map(([k, v]) => `${k}=${v}`)
              .join(' ')}`
          : ''
      })`,
    );
  else {
    console.error(`no Chromium: ${found.reason}; install one with: ${INSTALL_HINT}`);
    process.exit(1);
  }
}
