// Bundles the extension client, the language server and the CLI for Node (CommonJS), and the webview for the browser.
// Usage: node scripts/build.mjs [--watch] [--production]
import * as esbuild from 'esbuild';
import { existsSync } from 'node:fs';

const watch = process.argv.includes('--watch');
const production = process.argv.includes('--production');

/** Native and runtime-provided modules stay outside the bundles. */
const external = ['vscode', 'onnxruntime-node'];

const node = {
  bundle: true,
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
  {
    bundle: true,
    platform: 'browser',
    target: 'es2022',
    format: 'iife',
    sourcemap: !production,
    minify: production,
    logLevel: 'warning',
    entryPoints: { webview: 'webview/src/main.ts' },
  },
].filter((b) => Object.values(b.entryPoints).every((p) => existsSync(p)));

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
