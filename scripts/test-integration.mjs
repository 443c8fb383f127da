#!/usr/bin/env node
// `npm run test:integration`: builds the extension and the extension-host test bundle, makes sure code-server is
// installed (scripts/install-code-server.sh, cached), and runs the suite twice: in a trusted workspace, then the
// Restricted Mode suite (`npm run test:integration -- restricted` runs one; `-- vsix` tests the packaged .vsix). With MERGE_VSCODE_EXECUTABLE set to a desktop VS Code (Electron) binary, the same suite
// runs through @vscode/test-electron instead of code-server.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';
import { findChromium, INSTALL_HINT } from './find-chromium.mjs';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
process.chdir(root);
const t0 = Date.now();
const step = (s) => console.log(`\n== ${s} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);

step('build');
execFileSync(process.execPath, ['scripts/build.mjs'], { stdio: 'inherit' });
// The suites are bundled on their own (out/, not dist/): they are never shipped.
await esbuild.build({
  entryPoints: { index: 'test/integration/index.ts', restricted: 'test/integration/restricted.ts' },
  outdir: 'out/test/integration',
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: 'inline',
  external: ['vscode'],
  logLevel: 'warning',
});
const workspace = 'test/fixtures/workspace';
rmSync(path.join(workspace, 'out'), { recursive: true, force: true });

const suites = [
  { name: 'main extension-host suite', tests: 'out/test/integration/index.js', extra: [] },
  { name: 'Restricted Mode suite', tests: 'out/test/integration/restricted.js', extra: ['--untrusted'] },
];
// `npm run test:integration -- restricted` runs only the suites whose name contains the argument;
// `-- vsix` packages the extension for this platform (npm run package) and runs the main suite against the installed .vsix.
const only = process.argv[2]?.toLowerCase();
if (only === 'vsix') {
  step('package');
  // This machine's platform package (scripts/package.mjs): exactly what a person here would install.
  execFileSync(process.execPath, ['scripts/package.mjs'], { stdio: ['ignore', 'inherit', 'inherit'] });
  const vsix = `merge-studio-${process.platform}-${process.arch}.vsix`;
  suites.splice(0, suites.length, {
    name: 'main extension-host suite on the packaged .vsix',
    tests: suites[0].tests,
    extra: ['--vsix', vsix],
  });
} else if (only) suites.splice(0, suites.length, ...suites.filter((s) => s.name.toLowerCase().includes(only)));
let failed = 0;
if (process.env.MERGE_VSCODE_EXECUTABLE) {
  const { runTests } = await import('@vscode/test-electron');
  for (const s of suites.filter((x) => x.extra.length === 0)) {
    step(`${s.name} (desktop VS Code: ${process.env.MERGE_VSCODE_EXECUTABLE})`);
    const results = path.join(mkdtempSync(path.join(os.tmpdir(), 'merge-studio-te-')), 'results.json');
    try {
      await runTests({
        vscodeExecutablePath: process.env.MERGE_VSCODE_EXECUTABLE,
        extensionDevelopmentPath: root,
        extensionTestsPath: path.resolve(s.tests),
        launchArgs: [
          path.resolve(workspace),
          '--disable-extensions',
          '--disable-workspace-trust',
          '--skip-welcome',
          '--skip-release-notes',
        ],
        extensionTestsEnv: { MERGE_TEST_RESULTS: results },
      });
    } catch (e) {
      failed++;
      console.log(`FAILED: ${e instanceof Error ? e.message : e}`);
    }
    try {
      for (const r of JSON.parse(readFileSync(results, 'utf8')))
        console.log(`${r.ok ? 'PASS' : 'FAIL'} ${r.name}${r.ok ? '' : `\n  ${r.error}`}`);
    } catch {
      /* no results */
    }
  }
} else {
  // The workbench runs in headless Chromium: the system's, else the npm package's (scripts/find-chromium.mjs).
  const browser = findChromium();
  if (!browser.executablePath) {
    console.log(
      `\n!!! SKIPPED the extension-host tests (VS Code in headless Chromium): ${browser.reason}. Enable them with: ${INSTALL_HINT}`,
    );
    process.exit(0);
  }
  step('code-server');
  const install = spawnSync('bash', ['scripts/install-code-server.sh'], { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
  if (install.status !== 0) {
    console.error('test:integration: installing code-server failed');
    process.exit(2);
  }
  const codeServer = install.stdout.trim().split('\n').pop();
  const timeoutS = Number(process.env.MERGE_TEST_TIMEOUT ?? 300);
  for (const s of suites) {
    step(s.name);
    const r = spawnSync(
      process.execPath,
      [
        'scripts/run-extension-tests.mjs',
        '--code-server',
        codeServer,
        ...(s.extra.includes('--vsix') ? [] : ['--extension', '.']),
        '--tests',
        s.tests,
        '--workspace',
        workspace,
        '--timeout',
        String(timeoutS),
        ...s.extra,
      ],
      { stdio: 'inherit', timeout: (timeoutS + 120) * 1000, killSignal: 'SIGTERM' },
    );
    // A backstop: the runner bounds the suite itself and, on SIGTERM, still stops code-server before exiting.
    if (r.error) console.log(`test:integration: the runner did not finish: ${r.error.message}`);
    if (r.status !== 0) failed++;
  }
}
step(failed ? `${failed} suite(s) failed` : 'all suites passed');
process.exit(failed ? 1 : 0);
