// Bundles the extension client, the language server and the CLI for Node (CommonJS), and the webview for the browser.
// Usage: node scripts/build.mjs [--watch] [--production]
import * as esbuild from 'esbuild';
import { existsSync, readFileSync } from 'node:fs';

const watch = process.argv.includes('--watch');
const production = process.argv.includes('--production');

/** Native and runtime-provided modules stay outside the bundles. */
const external = ['vscode', 'onnxruntime-node'];

const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));

const node = {
  bundle: true,
  define: { MERGE_STUDIO_VERSION: JSON.stringify(version) },
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: !production,
  minify: production,
  external,
  logLevel: 'warning',
};

const builds = [
  { ...node, entryPoints: { client: 'client/src/extension.ts' } },
  { ...node, entryPoints: { server: 'server/src/server.ts', cli: 'server/src/cli.ts' } },
  { ...node, entryPoints: { 'lap-worker': 'server/src/engine/align/lap-worker.ts' } },
  { ...node, entryPoints: { 'scoring-worker': 'server/src/engine/eval/scoring-worker.ts' } },
  // Loaded by bin/merge-studio.js before the CLI, which links onnxruntime at start and so cannot explain its absence.
  { ...node, entryPoints: { platform: 'protocol/platform.ts' } },
  {
    bundle: true,
    platform: 'browser',
    target: 'es2022',
    format: 'iife',
    sourcemap: !production,
    minify: production,
    logLevel: 'warning',
    // Imports of CSS become dist/webview.css (the panels' stylesheet, linked by the host's HTML).
    entryPoints: { webview: 'webview/src/main.ts' },
  },
  {
    // VS Code notebook renderers are ES modules; there is no <link> in a cell output, so CSS comes in as text.
    bundle: true,
    platform: 'browser',
    target: 'es2022',
    format: 'esm',
    sourcemap: !production,
    minify: production,
    logLevel: 'warning',
    loader: { '.css': 'text' },
    entryPoints: { 'notebook-renderer': 'webview/src/notebook-renderer.ts' },
  },
];

// Every entry point must exist: a renamed or deleted one must stop the build, not ship a package without it.
const missing = builds.flatMap((b) =>
  Object.entries(b.entryPoints)
    .filter(([, p]) => !existsSync(p))
    .map(([name, p]) => `${name} (${p})`),
);
if (missing.length) {
  console.error(`build: missing entry point${missing.length > 1 ? 's' : ''}: ${missing.join(', ')}`);
  process.exit(1);
}

for (const b of builds) {
  const options = { ...b, outdir: 'dist' };
  if (watch) {
    const ctx = await esbuild.context(options);
    await ctx.watch();
  } else {
    await esbuild.build(options);
  }
}
if (watch) console.log('esbuild: watching client, server, cli and webview sources');
