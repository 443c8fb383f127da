/**
 * The webview bundle in real headless Chromium: the page comes from renderPanelHtml (the host's CSP), served
 * from a loopback server as the host would through asWebviewUri; `acquireVsCodeApi` is a stub whose messages
 * reach a real host-side IpcEndpoint in this test. Asserts charts drawn, selection and exports working,
 * no console errors and no CSP violations; writes a screenshot per panel to test-results/. The interactive tests use
 * the synthetic 12-layer report (head scores, a residual tap); the real report of the example run
 * (speech-music.report.json) is rendered too, and its screenshots are the README's.
 *
 * MERGE_STUDIO_UPDATE_SCREENSHOTS=1 also writes docs/images/{correlation,results}-panel.png (real report) for the README.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DidChangeReportNotification,
  OpenPanelCommand,
  ReadyCommand,
  SaveFileRequest,
  isReadyParams,
  isSaveFileParams,
  type OpenPanelParams,
  type ReadyParams,
  type SaveFileParams,
} from '../../protocol/webview';
import { IpcEndpoint, type IpcMessage } from '../../protocol/ipc';
import { type PanelKind } from '../../protocol/panels';
import type { MergeReport } from '../../server/src/engine/pipeline/report';
import { renderPanelHtml } from '../../webview/src/html';
import { findChromium, INSTALL_HINT } from '../../scripts/find-chromium.mjs';

const root = path.resolve(__dirname, '../..');
const dist = path.join(root, 'dist');
const reportPath = path.join(root, 'test/fixtures/reports/example.report.json');
const report = JSON.parse(readFileSync(reportPath, 'utf8')) as MergeReport;
const realReport = JSON.parse(readFileSync(path.join(root, 'test/fixtures/reports/speech-music.report.json'), 'utf8')) as MergeReport;
const resultsDir = path.join(root, 'test-results');

/** Rebuild when the bundle is missing or older than any webview source (a stale bundle would test old code). */
function ensureBundle(): void {
  const outputs = ['webview.js', 'webview.css', 'notebook-renderer.js'].map((f) => path.join(dist, f));
  const newest = (dir: string): number =>
    Math.max(
      ...readdirSync(dir, { withFileTypes: true }).map((e) =>
        e.isDirectory() ? newest(path.join(dir, e.name)) : statSync(path.join(dir, e.name)).mtimeMs,
      ),
    );
  const sources = Math.max(newest(path.join(root, 'webview/src')), statSync(path.join(root, 'protocol/webview.ts')).mtimeMs);
  if (outputs.every((o) => existsSync(o) && statSync(o).mtimeMs >= sources)) return;
  execFileSync(process.execPath, ['scripts/build.mjs'], { cwd: root, stdio: 'inherit' });
}

/** VS Code's Dark Modern values of the variables the panels use, set where VS Code sets them (<html style>). */
const DARK_VARS: Record<string, string> = {
  '--vscode-font-family': 'system-ui, "Ubuntu", "Droid Sans", sans-serif',
  '--vscode-font-size': '13px',
  '--vscode-foreground': '#cccccc',
  '--vscode-descriptionForeground': '#9d9d9d',
  '--vscode-editor-background': '#1f1f1f',
  '--vscode-editorWidget-background': '#202020',
  '--vscode-panel-border': '#2b2b2b',
  '--vscode-focusBorder': '#0078d4',
  '--vscode-button-background': '#0078d4',
  '--vscode-button-foreground': '#ffffff',
  '--vscode-button-secondaryBackground': '#313131',
  '--vscode-button-secondaryForeground': '#cccccc',
  '--vscode-dropdown-background': '#313131',
  '--vscode-dropdown-foreground': '#cccccc',
  '--vscode-dropdown-border': '#3c3c3c',
  '--vscode-textLink-foreground': '#4daafc',
  '--vscode-charts-foreground': '#cccccc',
  '--vscode-charts-lines': 'rgba(204, 204, 204, 0.5)',
  '--vscode-charts-blue': '#3794ff',
  '--vscode-charts-orange': '#d18616',
  '--vscode-charts-green': '#89d185',
  '--vscode-charts-purple': '#b180d7',
  '--vscode-charts-red': '#f14c4c',
  '--vscode-charts-yellow': '#cca700',
};

interface Page_ {
  page: Page;
  /** What the webview posted, in order. */
  received: IpcMessage[];
  saves: SaveFileParams[];
  opened: OpenPanelParams[];
  ready: ReadyParams[];
  problems: string[];
}

let server: Server;
let origin: string;
let browser: Browser;
const pages: Page_[] = [];
// The system's Chromium, else the one inside the npm package @sparticuz/chromium (linux-x64).
const found = findChromium();
if (!found.executablePath)
  console.warn(`\n!!! SKIPPED the webview tests in headless Chromium: ${found.reason}. Enable them with: ${INSTALL_HINT}\n`);

const nonce = () => randomBytes(16).toString('base64');

beforeAll(async () => {
  ensureBundle();
  mkdirSync(resultsDir, { recursive: true });
  server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const file = url.pathname.match(/^\/dist\/([\w.-]+\.(js|css))$/);
    if (file) {
      res.writeHead(200, { 'content-type': file[2] === 'js' ? 'text/javascript' : 'text/css' });
      res.end(readFileSync(path.join(dist, file[1]!)));
      return;
    }
    const panel = url.pathname.match(/^\/panel\/(correlation|results)$/);
    if (panel) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(
        renderPanelHtml({
          kind: panel[1] as PanelKind,
          cspSource: origin,
          scriptUri: `${origin}/dist/webview.js`,
          styleUri: `${origin}/dist/webview.css`,
          nonce: nonce(),
        }),
      );
      return;
    }
    if (url.pathname === '/notebook') {
      // A bare page standing in for the notebook output webview: the renderer module on an output element.
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(`<!DOCTYPE html><html><body class="vscode-light"><div id="out"></div>
<script type="module">
import { activate, REPORT_MIME } from '/dist/notebook-renderer.js';
const report = await (await fetch('/report.json')).json();
const r = activate({ workspace: { isTrusted: true } });
r.renderOutputItem({ id: 'cell-1', mime: REPORT_MIME, json: () => report }, document.getElementById('out'));
window.__mime = REPORT_MIME;
</script></body></html>`);
      return;
    }
    if (url.pathname === '/report.json') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(readFileSync(reportPath));
      return;
    }
    // Chromium asks for /favicon.ico on its own; a webview never does. Anything else unknown is a failure.
    res.writeHead(url.pathname === '/favicon.ico' ? 204 : 404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  // launch() gives Chromium a fresh temporary profile (user-data-dir) and deletes it on close.
  if (!found.executablePath) return;
  browser = await chromium.launch({
    executablePath: found.executablePath,
    env: { ...process.env, ...found.env } as Record<string, string>,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
    ],
  });
});

afterAll(async () => {
  await browser?.close();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
});

/** Opens a panel like the host does: page, stub VS Code API, host endpoint answering ready with the report. */
async function openPanel(kind: PanelKind, theme: 'dark' | 'light' = 'dark', shown: MergeReport = report): Promise<Page_> {
  const page = await browser.newPage({ viewport: { width: 960, height: 900 }, deviceScaleFactor: 1 });
  const p: Page_ = { page, received: [], saves: [], opened: [], ready: [], problems: [] };
  pages.push(p);
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') p.problems.push(`console.${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => p.problems.push(`pageerror: ${e.message}`));
  page.on('requestfailed', (r) => p.problems.push(`request failed: ${r.url()}`));
  page.on('response', (r) => r.status() >= 400 && p.problems.push(`HTTP ${r.status()}: ${r.url()}`));

  const host = new IpcEndpoint({
    side: 'host',
    post: (m) => void page.evaluate((msg) => window.postMessage(msg, '*'), m as unknown as Record<string, unknown>),
  });
  host.on(ReadyCommand, isReadyParams, (params) => {
    p.ready.push(params);
    host.sendNotification(DidChangeReportNotification, { jobId: 'job-1', report: shown });
  });
  host.onRequest(SaveFileRequest, isSaveFileParams, (params) => {
    p.saves.push(params);
    return { saved: true, path: `/tmp/${params.fileName}` };
  });
  host.on(
    OpenPanelCommand,
    (x): x is OpenPanelParams => typeof x === 'object' && x !== null,
    (params) => p.opened.push(params),
  );
  await page.exposeFunction('__toHost', (m: IpcMessage) => {
    p.received.push(m);
    host.receive(m);
  });
  await page.addInitScript(
    ({ vars, themeClass }) => {
      const w = window as unknown as Record<string, unknown>;
      w.__violations = [];
      document.addEventListener('securitypolicyviolation', (e) =>
        (w.__violations as string[]).push(`${e.violatedDirective}: ${e.blockedURI} ${e.sample}`),
      );
      // VS Code keeps a webview's state across reloads of its page: sessionStorage does the same here.
      w.acquireVsCodeApi = () => ({
        postMessage: (m: unknown) => (w.__toHost as (m: unknown) => void)(m),
        getState: () => JSON.parse(sessionStorage.getItem('vscode-state') ?? 'null') ?? undefined,
        setState: (s: unknown) => (sessionStorage.setItem('vscode-state', JSON.stringify(s)), s),
      });
      document.addEventListener('DOMContentLoaded', () => {
        document.body.classList.add(themeClass);
        for (const [k, v] of Object.entries(vars)) document.documentElement.style.setProperty(k, v);
      });
    },
    { vars: theme === 'dark' ? DARK_VARS : {}, themeClass: theme === 'dark' ? 'vscode-dark' : 'vscode-light' },
  );
  await page.goto(`${origin}/panel/${kind}`);
  // Generous: a loaded 2-core machine drew the real report's panel in 15–30 s with the npm package's Chromium.
  await page.waitForSelector('main[aria-busy="false"]', { timeout: 45_000 });
  return p;
}

async function violations(page: Page): Promise<string[]> {
  return page.evaluate(() => (window as unknown as { __violations: string[] }).__violations);
}

/**
 * Items drawn by the data marks of one chart card: vega's SVG renderer makes one <g class="mark-TYPE role-mark">
 * per mark with one element per item (legends and axes have other roles).
 */
async function markCount(page: Page, chart: string, type: 'symbol' | 'line' | 'rect' | 'rule'): Promise<number> {
  return page.locator(`section[data-chart="${chart}"] .chart svg g.mark-${type}.role-mark > *`).count();
}

describe.skipIf(!found.executablePath)('webview in headless Chromium', () => {
  it('correlation panel: handshake, four charts, click and keyboard selection, table and exports, no CSP violation', async () => {
    const p = await openPanel('correlation');
    const { page } = p;
    expect(p.ready).toEqual([{ kind: 'correlation', protocolVersion: 1, state: null }]);
    const charts = await page.locator('section[data-chart]').evaluateAll((els) => els.map((e) => e.getAttribute('data-chart')));
    expect(charts).toEqual(['correlation-by-layer', 'units-moved', 'correlation-heatmap', 'head-scores']);
    expect(await markCount(page, 'correlation-by-layer', 'symbol')).toBe(2 * report.align.taps.length);
    expect(await markCount(page, 'correlation-by-layer', 'line')).toBe(8);
    expect(await markCount(page, 'units-moved', 'rect')).toBe(report.align.taps.length);
    // Both stylesheets apply under the CSP: vega-embed's (a <style> with the script's nonce) and ours (the link).
    const styles = await page.evaluate(() => ({
      embed: getComputedStyle(document.querySelector('.vega-embed')!).position,
      nonce: (document.getElementById('vega-embed-style') as HTMLStyleElement | null)?.nonce?.length ?? 0,
      card: getComputedStyle(document.querySelector('.ms-panel .card')!).borderTopStyle,
    }));
    expect(styles).toEqual({ embed: 'relative', nonce: 24, card: 'solid' });

    // Starts on the worst tap; the picker says which, the matrices are its own.
    const worst = report.align.taps.reduce((w, t) => (t.meanCorrelationAfter < w.meanCorrelationAfter ? t : w));
    expect(await page.locator('.tap-select').inputValue()).toBe(worst.tap);
    const side = worst.heatmap!.size;
    expect(await markCount(page, 'correlation-heatmap', 'rect')).toBe(2 * side * side);
    expect(await markCount(page, 'head-scores', 'rect')).toBe(144);
    await page.screenshot({ path: path.join(resultsDir, 'correlation-panel-synthetic.png'), fullPage: true });

    // A click on a bar of layer 2's FFN selects that tap everywhere (vega-lite point selection → panel sync).
    const target = 'layer.2.ffn';
    const bar = page.locator(`section[data-chart="units-moved"] .mark-rect path[aria-label*="tap: ${target};"]`);
    await bar.click({ timeout: 5000 });
    await expect.poll(() => page.locator('.tap-select').inputValue()).toBe(target);
    await expect.poll(() => page.locator('section[data-chart="correlation-heatmap"] h2').textContent()).toContain(target);
    expect(await page.locator('section[data-chart="head-scores"] h2').textContent()).toContain('layer.2.attn');

    // Keyboard: focus the per-layer chart, → moves to the next tap in network order.
    await page.locator('section[data-chart="correlation-by-layer"] .chart').focus();
    await page.keyboard.press('ArrowRight');
    await expect.poll(() => page.locator('.tap-select').inputValue()).toBe('layer.3.attn');

    // Table view is a real table with every tap.
    await page.locator('section[data-chart="correlation-by-layer"] button', { hasText: 'Table' }).click();
    expect(await page.locator('section[data-chart="correlation-by-layer"] table tbody tr').count()).toBe(report.align.taps.length);
    expect(await page.locator('section[data-chart="correlation-by-layer"] .chart').isHidden()).toBe(true);

    // Exports go to the host as a save request, and the reply comes back into the card.
    const card = page.locator('section[data-chart="units-moved"]');
    await card.locator('button', { hasText: 'CSV' }).click();
    await card.locator('button', { hasText: 'PNG' }).click();
    await card.locator('button', { hasText: 'SVG' }).click();
    await expect.poll(() => p.saves.length).toBe(3);
    expect(p.saves[0]).toMatchObject({ fileName: 'units-moved.csv', mimeType: 'text/csv', encoding: 'utf8' });
    expect(p.saves[0]!.content.split('\r\n')[0]).toBe('tap,group,units,moved');
    expect(p.saves[1]).toMatchObject({ fileName: 'units-moved.png', mimeType: 'image/png', encoding: 'base64' });
    expect(Buffer.from(p.saves[1]!.content, 'base64').subarray(1, 4).toString()).toBe('PNG');
    expect(p.saves[2]!.content.startsWith('<svg')).toBe(true);
    await expect.poll(() => card.locator('.card-status').textContent()).toContain('/tmp/units-moved.svg');

    // Reload (VS Code reloads a hidden webview's page): the state comes back through ready, selection and table view kept.
    await page.reload();
    await page.waitForSelector('main[aria-busy="false"]', { timeout: 15_000 });
    expect(p.ready[1]).toEqual({
      kind: 'correlation',
      protocolVersion: 1,
      state: { kind: 'correlation', jobId: 'job-1', selected: 'layer.3.attn', tables: ['correlation-by-layer'] },
    });
    expect(await page.locator('.tap-select').inputValue()).toBe('layer.3.attn');
    expect(await page.locator('section[data-chart="correlation-by-layer"] table').isVisible()).toBe(true);

    // Hover: vega-tooltip shows under the CSP (no inline styles).
    // The value label lies over its cell and carries the same tooltip.
    await page.locator('section[data-chart="head-scores"] g.mark-text.role-mark > text').nth(5).hover({ timeout: 5000 });
    await expect.poll(() => page.locator('#vg-tooltip-element.visible').count()).toBe(1);

    expect(await violations(page)).toEqual([]);
    expect(p.problems).toEqual([]);
    await page.close();
  });

  it('results panel: score vs λ and averages, state kept for restore, theme switch redraws, no CSP violation', async () => {
    const p = await openPanel('results');
    const { page } = p;
    const tasks = new Set(report.evaluation!.rows.map((r) => r.task)).size;
    expect(await markCount(page, 'score-by-lambda', 'line')).toBe(2 * tasks);
    expect(await markCount(page, 'score-by-lambda', 'rule')).toBe(2 * tasks);
    expect(await markCount(page, 'average-score', 'line')).toBe(2);
    expect(await page.locator('header .summary').textContent()).toContain('Best average score — permuted');
    await page.screenshot({ path: path.join(resultsDir, 'results-panel-synthetic.png'), fullPage: true });

    await page.locator('nav button').click();
    await expect.poll(() => p.opened).toEqual([{ kind: 'correlation' }]);

    // Table toggles persist in the webview state (what the serializer gets back after a reload).
    await page.locator('section[data-chart="average-score"] button', { hasText: 'Table' }).click();
    const state = await page.evaluate(() =>
      (window as unknown as { acquireVsCodeApi: () => { getState(): unknown } }).acquireVsCodeApi().getState(),
    );
    expect(state).toEqual({ kind: 'results', jobId: 'job-1', selected: null, tables: ['average-score'] });

    // VS Code switches theme by rewriting the body class: the charts redraw in the new colours.
    const fill = () => page.locator('section[data-chart="score-by-lambda"] .chart svg .role-axis-title text').first().getAttribute('fill');
    expect(await fill()).toBe('#cccccc');
    await page.evaluate(() => {
      document.body.classList.replace('vscode-dark', 'vscode-light');
      for (const k of ['--vscode-charts-foreground', '--vscode-foreground']) document.documentElement.style.removeProperty(k);
    });
    await expect.poll(fill).toBe('#3b3b3b');

    expect(await violations(page)).toEqual([]);
    expect(p.problems).toEqual([]);
    await page.close();
  });

  it('the real report of the example run: both panels draw every chart, no CSP violation (the README screenshots)', async () => {
    const taps = realReport.align.taps.length;
    const c = await openPanel('correlation', 'dark', realReport);
    const charts = await c.page.locator('section[data-chart]').evaluateAll((els) => els.map((e) => e.getAttribute('data-chart')));
    // Starts on its worst tap, an attention tap: four charts, its head scores among them.
    const worst = realReport.align.taps.reduce((w, t) => (t.meanCorrelationAfter < w.meanCorrelationAfter ? t : w));
    expect(worst.tap).toBe('layer.1.attn.v');
    expect(charts).toEqual(['correlation-by-layer', 'units-moved', 'correlation-heatmap', 'head-scores']);
    expect(await c.page.locator('.tap-select').inputValue()).toBe(worst.tap);
    expect(await markCount(c.page, 'correlation-by-layer', 'symbol')).toBe(2 * taps);
    expect(await markCount(c.page, 'correlation-by-layer', 'line')).toBe(6);
    expect(await markCount(c.page, 'units-moved', 'rect')).toBe(taps);
    const side = worst.heatmap!.size;
    expect(await markCount(c.page, 'correlation-heatmap', 'rect')).toBe(2 * side * side);
    expect(await markCount(c.page, 'head-scores', 'rect')).toBe(realReport.models.anchor.heads ** 2);
    await c.page.screenshot({ path: path.join(resultsDir, 'correlation-panel.png'), fullPage: true });
    expect(await violations(c.page)).toEqual([]);
    expect(c.problems).toEqual([]);
    await c.page.close();

    const r = await openPanel('results', 'dark', realReport);
    const tasks = new Set(realReport.evaluation!.rows.map((x) => x.task)).size;
    expect(tasks).toBe(5);
    expect(await markCount(r.page, 'score-by-lambda', 'line')).toBe(2 * tasks);
    expect(await markCount(r.page, 'score-by-lambda', 'rule')).toBe(2 * tasks);
    expect(await markCount(r.page, 'average-score', 'line')).toBe(2);
    expect(await r.page.locator('header .summary').textContent()).toContain('Best average score');
    await r.page.screenshot({ path: path.join(resultsDir, 'results-panel.png'), fullPage: true });
    expect(await violations(r.page)).toEqual([]);
    expect(r.problems).toEqual([]);
    await r.page.close();
  });

  it('at side-by-side width (~500 px cards) every chart fits its card: no sideways scroll, nothing clipped', async () => {
    for (const kind of ['correlation', 'results'] as const) {
      const p = await openPanel(kind, 'dark', realReport);
      await p.page.setViewportSize({ width: 560, height: 900 });
      // The panel redraws on resize (ResizeObserver); wait until every chart is drawn for the new width.
      const fits = () =>
        p.page.evaluate(() =>
          Array.from(document.querySelectorAll<HTMLElement>('section[data-chart]')).map((card) => {
            const style = getComputedStyle(card);
            return {
              id: card.getAttribute('data-chart'),
              svg: Math.ceil(card.querySelector('.chart svg')?.getBoundingClientRect().width ?? Infinity),
              box: Math.floor(card.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight)),
              scrolls: card.scrollWidth > card.clientWidth || document.documentElement.scrollWidth > document.documentElement.clientWidth,
            };
          }),
        );
      await p.page.waitForFunction(
        () =>
          (document.querySelector('main')?.getBoundingClientRect().width ?? Infinity) <= 560 &&
          document.querySelector('main[aria-busy="false"]') !== null,
        undefined,
        { timeout: 15_000 },
      );
      let seen = await fits();
      for (let i = 0; i < 75 && seen.some((c) => c.svg > c.box || c.scrolls); i++) {
        await p.page.waitForTimeout(200);
        seen = await fits();
      }
      expect(seen.length).toBeGreaterThan(1);
      for (const c of seen) {
        expect(c.box, `${kind}/${c.id}`).toBeLessThan(520);
        expect(c.svg, `${kind}/${c.id}: svg ${c.svg} px in a ${c.box} px card`).toBeLessThanOrEqual(c.box);
        expect(c.scrolls, `${kind}/${c.id} scrolls sideways`).toBe(false);
      }
      expect(p.problems).toEqual([]);
      await p.page.close();
    }
  });

  it('notebook renderer (ESM): renders both panels for the report MIME type', async () => {
    const page = await browser.newPage({ viewport: { width: 900, height: 800 } });
    const problems: string[] = [];
    page.on('console', (m) => (m.type() === 'error' || m.type() === 'warning') && problems.push(m.text()));
    page.on('pageerror', (e) => problems.push(e.message));
    await page.goto(`${origin}/notebook`);
    await page.waitForFunction(() => document.querySelectorAll('.ms-panel[aria-busy="false"]').length === 2, undefined, {
      timeout: 15_000,
    });
    expect(await page.evaluate(() => (window as unknown as { __mime: string }).__mime)).toBe('application/vnd.merge-studio.report+json');
    expect(await page.locator('section[data-chart] .chart svg').count()).toBe(6);
    // No host to save through: view toggles only.
    expect(await page.locator('.toolbar button', { hasText: 'CSV' }).count()).toBe(0);
    expect(problems).toEqual([]);
    await page.close();
  });
});

afterAll(() => {
  if (process.env.MERGE_STUDIO_UPDATE_SCREENSHOTS !== '1') return;
  const docs = path.join(root, 'docs/images');
  mkdirSync(docs, { recursive: true });
  for (const f of ['correlation-panel.png', 'results-panel.png']) copyFileSync(path.join(resultsDir, f), path.join(docs, f));
});
