#!/usr/bin/env node
// Builds the extension's .vsix packages, one per platform (`vsce package --target`), each holding only its own
// onnxruntime binaries: the one shared .vscodeignore, with onnxruntime-node's bin/ narrowed to the target's files.
//
// usage: node scripts/package.mjs [TARGET…]   (default: this machine's platform; `all`: every supported one)
//   writes merge-studio-<target>.vsix and prints each package's size.
// Dropped from every package: the darwin library under its versioned name (the binding loads @rpath/
// libonnxruntime.1.dylib; npm's copy of the symlink doubles it) and DirectML.dll (the DirectML provider, which
// the engine never asks for; dxcompiler/dxil stay: WebGPU on Windows compiles its shaders with them).
// darwin-x64 has no package: onnxruntime-node 1.30 ships no binary for Intel Macs (client/src/platform.ts says so).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
process.chdir(root);
const TARGETS = ['linux-x64', 'linux-arm64', 'darwin-arm64', 'win32-x64', 'win32-arm64'];
const ORT_BIN = 'node_modules/onnxruntime-node/bin/napi-v6';
const DROPPED = [/^libonnxruntime\.\d+\.\d+\.\d+\.dylib$/, /^DirectML\.dll$/];

const asked = process.argv.slice(2);
const targets = asked.includes('all') ? TARGETS : asked.length ? asked : [`${process.platform}-${process.arch}`];
for (const t of targets) {
  if (!TARGETS.includes(t)) {
    console.error(
      `package: no package for ${t}${t === 'darwin-x64' ? ' (onnxruntime-node 1.30 has no Intel Mac binary)' : ''}; targets: ${TARGETS.join(', ')}`,
    );
    process.exit(2);
  }
}

execFileSync(process.execPath, ['scripts/build.mjs', '--production'], { stdio: 'inherit' });
const baseIgnore = readFileSync('.vscodeignore', 'utf8');
const ortLine = `!${ORT_BIN.replace(/\/napi-v6$/, '')}/**`;
if (!baseIgnore.split('\n').includes(ortLine)) throw new Error(`.vscodeignore must include onnxruntime-node's binaries as \`${ortLine}\``);
const tmp = mkdtempSync(path.join(os.tmpdir(), 'merge-studio-package-'));
const vsce = path.join(root, 'node_modules', '@vscode', 'vsce', 'vsce');
try {
  for (const target of targets) {
    const [platform, arch] = target.split('-');
    const dir = `${ORT_BIN}/${platform}/${arch}`;
    const files = readdirSync(dir).filter((f) => !DROPPED.some((re) => re.test(f)));
    if (!files.some((f) => f.endsWith('.node')))
      throw new Error(`${dir} holds no onnxruntime binding: is onnxruntime-node installed with every platform's binaries?`);
    // vsce keeps a file that any `!` line names, whatever the order: narrow the one line, do not add exclusions.
    const ignore = baseIgnore.replace(ortLine, files.map((f) => `!${dir}/${f}`).join('\n'));
    const ignoreFile = path.join(tmp, `${target}.vscodeignore`);
    writeFileSync(ignoreFile, ignore);
    const out = `merge-studio-${target}.vsix`;
    // README links to repository files (examples/README.md, docs/…) stay relative: the package has no repository URL.
    execFileSync(
      process.execPath,
      [
        vsce,
        'package',
        '--target',
        target,
        '--ignoreFile',
        ignoreFile,
        '--no-rewrite-relative-links',
        '--skip-license',
        '--allow-missing-repository',
        '--out',
        out,
      ],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
    console.log(`${out}: ${(statSync(out).size / 2 ** 20).toFixed(1)} MiB`);
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
