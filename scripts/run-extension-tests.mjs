#!/usr/bin/env node
// Runs extension-host tests offline in a real VS Code: code-server (VS Code 1.100 web workbench + a Node extension
// host) with a throw-away profile, opened in headless Chromium with extensionDevelopmentPath/extensionTestsPath in
// the URL payload (what @vscode/test-electron passes to Electron). Streams the suite's progress, prints PASS/FAIL
// per test, and always stops code-server, its children and the browser.
//
// Page access for the tests (the extension host cannot see the workbench's DOM): a test writes a request
// `req-<id>.json` into the folder in env MERGE_TEST_PAGE and waits for `res-<id>.json` (test/integration/harness.ts,
// pageRequest). Requests: { kind: 'webview', title, timeoutMs } waits for a report panel (any frame) whose <h1> is
// `title` to finish drawing and describes its charts; { kind: 'selector', selector, state?, timeoutMs } waits for a
// workbench element (state as Playwright's waitForSelector, default visible); { kind: 'screenshot', name } saves the page to test-results/<name> (and docs/images/<name> with
// MERGE_STUDIO_UPDATE_SCREENSHOTS=1).
//
// usage: node scripts/run-extension-tests.mjs --code-server DIR --extension DIR --tests FILE --workspace DIR
//          [--results FILE] [--timeout SECONDS] [--untrusted] [--chromium PATH] [--vsix FILE]
//   --code-server  where scripts/install-code-server.sh installed it
//   --tests        a CommonJS module exporting run(): Promise<void> that writes [{name, ok, error?}] to the file in
//                  env MERGE_TEST_RESULTS (code-server's exit code says nothing about the tests)
//   --untrusted    open the workspace in Restricted Mode (workspace trust on, folder not trusted)
//   --vsix         test a packaged extension: install FILE into the throw-away profile and load the installed
//                  folder (exactly the packaged files) as the extension under test, instead of --extension
// exit: 0 all passed · 1 a test failed · 2 the suite did not finish (timeout, startup failure)
import { spawn, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { findChromium, INSTALL_HINT } from './find-chromium.mjs';

const argv = process.argv.slice(2);
const arg = (k, d) => {
  const i = argv.indexOf(`--${k}`);
  return i >= 0 ? argv[i + 1] : d;
};
const flag = (k) => argv.includes(`--${k}`);
const need = (k) => {
  const v = arg(k);
  if (!v) {
    console.error(`run-extension-tests: missing --${k}`);
    process.exit(2);
  }
  return path.resolve(v);
};
const VSIX = arg('vsix') ? path.resolve(arg('vsix')) : undefined;
const CS_DIR = need('code-server'),
  TESTS = need('tests'),
  WS = need('workspace');
const TIMEOUT_S = Number(arg('timeout', '240'));
const UNTRUSTED = flag('untrusted');
const CS_BIN = path.join(CS_DIR, 'node_modules', '.bin', 'code-server');

/** --chromium, else the system's or the npm package's (scripts/find-chromium.mjs). */
const findBrowser = () => {
  if (arg('chromium')) return { executablePath: path.resolve(arg('chromium')), env: {} };
  const found = findChromium();
  if (!found.executablePath)
    throw new Error(`no Chromium: ${found.reason}; install one with: ${INSTALL_HINT}, or pass --chromium / CHROMIUM_PATH`);
  return found;
};
const freePort = () =>
  new Promise((res, rej) => {
    const s = net.createServer();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => res(p));
    });
  });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const tail = (file, n = 40) => {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-n).join('\n');
  } catch {
    return '(none)';
  }
};
/** Every *.log under a folder, newest first (the extension host's own log lives in the user-data logs). */
const logsUnder = (dir) => {
  const out = [];
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.log')) out.push(p);
    }
  };
  try {
    walk(dir);
  } catch {
    /* no logs yet */
  }
  return out.sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
};

let EXT = VSIX ? undefined : need('extension');
for (const [what, p] of [
  ['code-server', CS_BIN],
  VSIX ? ['vsix', VSIX] : ['extension', path.join(EXT, 'package.json')],
  ['tests', TESTS],
  ['workspace', WS],
]) {
  if (!existsSync(p)) {
    console.error(`run-extension-tests: ${what} not found: ${p}`);
    process.exit(2);
  }
}
const require = createRequire(path.join(process.cwd(), 'package.json'));
const { chromium } = require('playwright-core');

const run = mkdtempSync(path.join(os.tmpdir(), 'merge-studio-vscode-'));
const RESULTS = path.resolve(arg('results', path.join(run, 'results.json')));
const PROGRESS = path.join(run, 'progress.log');
const PAGE_DIR = path.join(run, 'page');
mkdirSync(PAGE_DIR, { recursive: true });
const home = path.join(run, 'home');
const userData = path.join(run, 'user-data');
mkdirSync(path.join(userData, 'User'), { recursive: true });
mkdirSync(home, { recursive: true });
writeFileSync(
  path.join(userData, 'User', 'settings.json'),
  JSON.stringify({
    'security.workspace.trust.enabled': UNTRUSTED,
    'security.workspace.trust.startupPrompt': 'never',
    'security.workspace.trust.banner': 'never',
    'workbench.startupEditor': 'none',
    'workbench.tips.enabled': false,
    'telemetry.telemetryLevel': 'off',
    'update.mode': 'none',
    'extensions.autoCheckUpdates': false,
    'extensions.autoUpdate': false,
    'extensions.ignoreRecommendations': true,
    'git.enabled': false,
  }),
);
rmSync(RESULTS, { force: true });
writeFileSync(PROGRESS, '');
// Nothing may be written into the real home: code-server, Chromium and the extension host all get this one.
const env = {
  ...process.env,
  HOME: home,
  XDG_CONFIG_HOME: `${home}/.config`,
  XDG_DATA_HOME: `${home}/.local/share`,
  XDG_CACHE_HOME: `${home}/.cache`,
  MERGE_TEST_RESULTS: RESULTS,
  MERGE_TEST_LOG: PROGRESS,
  MERGE_TEST_PAGE: PAGE_DIR,
};
delete env.VSCODE_IPC_HOOK_CLI; // when run from a VS Code terminal

let cs;
let browser;
let code = 2;
let cleaning;

/** What a report panel's page shows, from inside its frame (null: not a report panel, or another one). */
const describePanel = (title) => {
  const h1 = document.querySelector('main h1');
  if (!h1 || h1.textContent !== title) return null;
  const main = h1.closest('main');
  return {
    busy: main.getAttribute('aria-busy'),
    errors: [...document.querySelectorAll('.status.error')].map((e) => e.textContent),
    charts: [...document.querySelectorAll('section[data-chart]')].map((el) => ({
      id: el.getAttribute('data-chart'),
      marks: el.querySelectorAll('.chart svg g.role-mark > *').length,
    })),
  };
};

/** Answers one page request from a test (see the header). */
async function answerPageRequest(page, req) {
  const timeout = Math.min(Number(req.timeoutMs) || 10_000, 60_000);
  if (req.kind === 'screenshot') {
    const name = path.basename(String(req.name));
    const file = path.join(process.cwd(), 'test-results', name);
    mkdirSync(path.dirname(file), { recursive: true });
    await page.screenshot({ path: file });
    if (process.env.MERGE_STUDIO_UPDATE_SCREENSHOTS === '1') {
      mkdirSync(path.join(process.cwd(), 'docs', 'images'), { recursive: true });
      copyFileSync(file, path.join(process.cwd(), 'docs', 'images', name));
    }
    return { ok: true, file };
  }
  if (req.kind === 'selector') {
    const state = ['attached', 'detached', 'visible', 'hidden'].includes(req.state) ? req.state : 'visible';
    const found = await page.waitForSelector(String(req.selector), { timeout, state }).then(
      () => true,
      () => false,
    );
    return { ok: found, count: await page.locator(String(req.selector)).count() };
  }
  if (req.kind === 'webview') {
    const by = Date.now() + timeout;
    let last = null;
    for (;;) {
      for (const frame of page.frames()) {
        const seen = await frame.evaluate(describePanel, String(req.title)).catch(() => null);
        if (seen) last = seen;
        if (seen && seen.busy === 'false') return { ok: true, panel: seen };
      }
      if (Date.now() > by) return { ok: false, panel: last };
      await sleep(200);
    }
  }
  return { ok: false, error: `unknown page request ${JSON.stringify(req.kind)}` };
}

async function servePageRequests(page) {
  for (const f of readdirSync(PAGE_DIR).filter((n) => /^req-[\w-]+\.json$/.test(n))) {
    const id = f.slice(4, -5);
    let res;
    try {
      res = await answerPageRequest(page, JSON.parse(readFileSync(path.join(PAGE_DIR, f), 'utf8')));
    } catch (e) {
      res = { ok: false, error: e instanceof Error ? e.message : String(e) };
    }
    rmSync(path.join(PAGE_DIR, f), { force: true });
    writeFileSync(path.join(PAGE_DIR, `res-${id}.json.tmp`), JSON.stringify(res));
    renameSync(path.join(PAGE_DIR, `res-${id}.json.tmp`), path.join(PAGE_DIR, `res-${id}.json`));
  }
}
const serverLog = path.join(run, 'server.log');

/**
 * code-server runs in its own process group (detached): one signal reaches it and every child it spawned.
 * Memoised: a signal handler and the main flow both await the same cleanup (neither may exit before it is done).
 */
function cleanup() {
  cleaning ??= (async () => {
    if (cs?.pid) {
      try {
        process.kill(-cs.pid, 'SIGTERM');
      } catch {
        /* gone */
      }
    }
    await Promise.race([browser?.close().catch(() => undefined), sleep(5000)]);
    if (cs?.pid) {
      for (let i = 0; i < 30 && cs.exitCode === null && cs.signalCode === null; i++) await sleep(100);
      try {
        process.kill(-cs.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  })();
  return cleaning;
}
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'])
  process.on(sig, () => {
    console.error(`run-extension-tests: ${sig}, stopping code-server`);
    cleanup().finally(() => process.exit(130));
  });

try {
  const port = await freePort();
  const logFd = openSync(serverLog, 'a');
  const args = [
    '--bind-addr',
    `127.0.0.1:${port}`,
    '--auth',
    'none',
    '--user-data-dir',
    userData,
    '--extensions-dir',
    path.join(run, 'extensions'),
    '--config',
    path.join(run, 'config.yaml'),
    '--disable-telemetry',
    '--disable-update-check',
    '--disable-getting-started-override',
    '--ignore-last-opened',
  ];
  if (!UNTRUSTED) args.push('--disable-workspace-trust');
  writeFileSync(path.join(run, 'config.yaml'), `bind-addr: 127.0.0.1:${port}\nauth: none\ncert: false\n`);
  if (VSIX) {
    const inst = spawnSync(
      CS_BIN,
      ['--install-extension', VSIX, '--extensions-dir', path.join(run, 'extensions'), '--user-data-dir', userData],
      { env, encoding: 'utf8', timeout: 120_000 },
    );
    if (inst.status !== 0) throw new Error(`installing ${VSIX} failed:\n${inst.stdout}${inst.stderr}`);
    // Extension tests only run for an extension under development: load the installed copy as that.
    const { publisher, name } = JSON.parse(readFileSync(path.join(process.cwd(), 'package.json'), 'utf8'));
    const dir = readdirSync(path.join(run, 'extensions')).find((d) => d.toLowerCase().startsWith(`${publisher}.${name}-`.toLowerCase()));
    if (!dir) throw new Error(`${VSIX} installed, but no ${publisher}.${name}-* folder in ${path.join(run, 'extensions')}`);
    EXT = path.join(run, 'extensions', dir);
    console.log(`installed ${path.basename(VSIX)}: testing ${EXT}`);
  }
  cs = spawn(CS_BIN, [...args, WS], { env, stdio: ['ignore', logFd, logFd], detached: true });
  const base = `http://127.0.0.1:${port}`;
  const upBy = Date.now() + 60_000;
  for (;;) {
    if (cs.exitCode !== null) throw new Error(`code-server exited with ${cs.exitCode} at startup:\n${tail(serverLog)}`);
    try {
      if ((await fetch(`${base}/healthz`)).ok) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > upBy) throw new Error(`code-server did not answer on ${base} within 60 s:\n${tail(serverLog)}`);
    await sleep(200);
  }
  const auth = `127.0.0.1:${port}`;
  const payload = JSON.stringify([
    ['extensionDevelopmentPath', `vscode-remote://${auth}${EXT}`],
    ['extensionTestsPath', `vscode-remote://${auth}${TESTS}`],
  ]);
  const browserFound = findBrowser();
  browser = await chromium.launch({
    executablePath: browserFound.executablePath,
    headless: true,
    env: { ...env, ...browserFound.env },
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-dev-shm-usage',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  const page = await browser.newPage();
  // Commands show their notifications without awaiting them: on a loaded machine a toast can render seconds after
  // the command returned, so a test's toasts count until this long after it ended.
  const UI_GRACE_MS = 5000;
  // Every notification toast the workbench shows, with its buttons, for the tests' `ui` expectations.
  const toasts = [];
  await page.exposeBinding('__mergeStudioToast', (_source, t) => {
    toasts.push({ ...t, at: Date.now() });
  });
  await page.addInitScript(() => {
    if (window.top !== window) return; // the workbench only, not webview frames
    const last = new WeakMap();
    const scan = () => {
      for (const el of document.querySelectorAll('.notification-toast')) {
        const text = (el.querySelector('.notification-list-item-message')?.textContent ?? el.textContent ?? '').trim();
        const buttons = [...el.querySelectorAll('.monaco-button')].map((b) => (b.textContent ?? '').trim()).filter(Boolean);
        const key = `${text}|${buttons.join(',')}`;
        if (last.get(el) !== key) {
          last.set(el, key);
          window.__mergeStudioToast({ text, buttons });
        }
      }
    };
    new MutationObserver(scan).observe(document, { childList: true, subtree: true, characterData: true });
  });
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('console', (m) => {
    if (m.type() === 'error') pageErrors.push(m.text());
  });
  await page.goto(`${base}/?folder=${encodeURIComponent(WS)}&payload=${encodeURIComponent(payload)}`);

  // Stream the suite's progress lines until the results file appears (written atomically by the suite).
  const end = Date.now() + TIMEOUT_S * 1000;
  let shown = 0;
  const stream = () => {
    const text = readFileSync(PROGRESS, 'utf8');
    if (text.length > shown) {
      process.stdout.write(text.slice(shown));
      shown = text.length;
    }
  };
  while (Date.now() < end && !existsSync(RESULTS)) {
    stream();
    if (cs.exitCode !== null) throw new Error(`code-server exited with ${cs.exitCode} during the tests:\n${tail(serverLog)}`);
    await servePageRequests(page);
    await sleep(200);
  }
  stream();
  // A test's toasts count until UI_GRACE_MS after it ended (see the matching below): keep recording for the last one.
  if (existsSync(RESULTS)) await sleep(UI_GRACE_MS);
  if (!existsSync(RESULTS)) {
    console.log(`\nno results after ${TIMEOUT_S} s: the suite did not finish (profile and logs kept in ${run})`);
    for (const f of logsUnder(path.join(userData, 'logs'))
      .filter((f) => /exthost|remoteagent|server/i.test(f))
      .slice(0, 3))
      console.log(`--- ${f}\n${tail(f)}`);
    if (pageErrors.length) console.log(`--- browser errors\n${pageErrors.slice(-10).join('\n')}`);
    code = 2;
  } else {
    const res = JSON.parse(readFileSync(RESULTS, 'utf8'));
    // A test that passed in the extension host still fails when the person would not have seen what it expects.
    for (const r of res) {
      const during = toasts.filter((t) => r.start === undefined || (t.at >= r.start && t.at <= r.end + UI_GRACE_MS));
      const missing = (r.ok && r.ui ? r.ui : []).filter(
        (u) => !during.some((t) => t.text.includes(u.toast) && (!u.button || t.buttons.includes(u.button))),
      );
      if (missing.length) {
        r.ok = false;
        const seen = [...new Set(during.map((t) => `"${t.text}" [${t.buttons.join(', ')}]`))];
        r.error = `not shown in the workbench: ${missing.map((u) => `a notification "${u.toast}"${u.button ? ` with a ${u.button} button` : ''}`).join('; ')}\nnotifications seen during the test: ${seen.join(' · ') || 'none'}`;
      }
    }
    console.log('');
    for (const r of res)
      console.log(
        `${r.ok ? 'PASS' : 'FAIL'} ${r.name}${r.ms !== undefined ? ` (${(r.ms / 1000).toFixed(1)} s)` : ''}${r.ok ? '' : `\n  ${String(r.error).split('\n').join('\n  ')}`}`,
      );
    const failed = res.filter((r) => !r.ok).length;
    console.log(`${res.length - failed} passed, ${failed} failed${UNTRUSTED ? ' (Restricted Mode)' : ''}`);
    code = failed || res.length === 0 ? 1 : 0;
    if (code) {
      const ext = logsUnder(path.join(userData, 'logs')).find((f) => /exthost/i.test(f));
      if (ext) console.log(`--- extension host log (${ext})\n${tail(ext, 30)}`);
      console.log(`(profile and logs kept in ${run})`);
    }
  }
} catch (e) {
  console.error(`run-extension-tests: ${e instanceof Error ? e.message : e}\n(profile and logs kept in ${run})`);
  code = 2;
} finally {
  await cleanup();
}
if (code === 0) rmSync(run, { recursive: true, force: true });
process.exit(code);
