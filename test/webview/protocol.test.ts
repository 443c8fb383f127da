/**
 * Host ↔ webview protocol: guards, the ready handshake over a pair of endpoints, request replies and errors,
 * request timeouts and disposal cleaning up pending replies; the panel HTML and its CSP.
 */
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  DidChangeReportNotification,
  ErrorCommand,
  ReadyCommand,
  SaveFileRequest,
  WEBVIEW_PROTOCOL_VERSION,
  isDidChangeReportParams,
  isPanelState,
  isReadyParams,
  isSaveFileParams,
  type DidChangeReportParams,
  type ReadyParams,
  type SaveFileParams,
  type WebviewErrorParams,
} from '../../protocol/webview';
import { IpcEndpoint, IpcTimeoutError, isIpcMessage, isMessage, type IpcMessage } from '../../protocol/ipc';
import { PANEL_VIEW_TYPES } from '../../protocol/panels';
import { isMergeReport } from '../../protocol/report';
import { REPORT_MIME, type MergeReport } from '../../server/src/engine/pipeline/report';
import { panelCsp, renderPanelHtml } from '../../webview/src/html';
import { pickedTap } from '../../webview/src/render/pick';

const report = JSON.parse(readFileSync(new URL('../fixtures/reports/example.report.json', import.meta.url), 'utf8')) as MergeReport;

/** Two endpoints wired like host and webview; messages are JSON round-tripped (postMessage clones). */
function pair() {
  const toWebview: IpcMessage[] = [];
  const toHost: IpcMessage[] = [];
  const host: IpcEndpoint = new IpcEndpoint({
    side: 'host',
    post: (m) => (toWebview.push(m), queueMicrotask(() => webview.receive(JSON.parse(JSON.stringify(m))))),
  });
  const webview: IpcEndpoint = new IpcEndpoint({
    side: 'webview',
    post: (m) => (toHost.push(m), queueMicrotask(() => host.receive(JSON.parse(JSON.stringify(m))))),
  });
  return { host, webview, toWebview, toHost };
}

const flush = () => new Promise<void>((r) => setTimeout(r, 0));

afterEach(() => {
  vi.useRealTimers();
});

describe('guards', () => {
  it('accepts the example report and rejects near misses', () => {
    expect(isMergeReport(report)).toBe(true);
    // Version 1 (the example fixture) and 2 (systems, variant rows) are both read; other versions are not.
    expect(isMergeReport({ ...report, version: 2 })).toBe(true);
    expect(isMergeReport({ ...report, version: 3 })).toBe(false);
    expect(
      isMergeReport({ ...report, align: { ...report.align, taps: [{ ...report.align.taps[0], meanCorrelationAfter: 'high' }] } }),
    ).toBe(false);
    expect(
      isMergeReport({ ...report, evaluation: { rows: [{ variant: 'linear', lambda: '0.5', task: 't', score: 1 }], averages: [] } }),
    ).toBe(false);
    expect(isMergeReport({ ...report, evaluation: null })).toBe(true);
    expect(isMergeReport(null)).toBe(false);
    expect(isMergeReport([report])).toBe(false);
  });

  it('ipc messages need string id and method; replies a string completion id', () => {
    expect(isIpcMessage({ id: 'h:1', method: 'webview/ready' })).toBe(true);
    expect(isIpcMessage({ id: 1, method: 'webview/ready' })).toBe(false);
    expect(isIpcMessage({ id: 'x', method: 'file/save', completionId: 3 })).toBe(false);
    // VS Code and other extensions post their own messages into webviews: not ours.
    expect(isIpcMessage({ type: 'vscode:message' })).toBe(false);
    expect(isIpcMessage('webview/ready')).toBe(false);
  });

  it('params guards', () => {
    const ready: ReadyParams = {
      kind: 'results',
      protocolVersion: 1,
      state: { kind: 'results', jobId: 'j', selected: null, tables: ['average-score'] },
    };
    expect(isReadyParams(ready)).toBe(true);
    expect(isReadyParams({ ...ready, kind: 'other' })).toBe(false);
    expect(isReadyParams({ ...ready, state: { ...ready.state, tables: [1] } })).toBe(false);
    expect(isPanelState({ kind: 'correlation', jobId: null, selected: 'layer.1.ffn', tables: [] })).toBe(true);
    expect(isDidChangeReportParams({ jobId: 'j', report })).toBe(true);
    expect(isDidChangeReportParams({ jobId: 3, report })).toBe(false);
    const save: SaveFileParams = { fileName: 'units-moved.csv', mimeType: 'text/csv', content: 'a\r\n', encoding: 'utf8' };
    expect(isSaveFileParams(save)).toBe(true);
    // The host joins the name to a folder: no separators, no traversal.
    expect(isSaveFileParams({ ...save, fileName: '../../.bashrc' })).toBe(false);
    expect(isSaveFileParams({ ...save, fileName: 'a\\b.csv' })).toBe(false);
    expect(isSaveFileParams({ ...save, mimeType: 'text/html' })).toBe(false);
  });

  it('isMessage matches the method and not replies to it', () => {
    const m: IpcMessage = { id: 'w:1', method: ReadyCommand.method, params: {} };
    expect(isMessage(ReadyCommand, m)).toBe(true);
    expect(isMessage(SaveFileRequest, m)).toBe(false);
    expect(isMessage(ReadyCommand, { ...m, completionId: 'h:1' })).toBe(false);
  });

  it('the notebook MIME type and view types are the documented ones', () => {
    expect(REPORT_MIME).toBe('application/vnd.merge-studio.report+json');
    expect(PANEL_VIEW_TYPES).toEqual({ correlation: 'mergeStudio.correlationPanel', results: 'mergeStudio.resultsPanel' });
  });

  it('pickedTap reads vega-lite point selection values', () => {
    expect(pickedTap({ tap: ['layer.2.ffn'] })).toBe('layer.2.ffn');
    expect(pickedTap({ tap: 'conv.0' })).toBe('conv.0');
    expect(pickedTap({})).toBeNull();
    expect(pickedTap(null)).toBeNull();
    expect(pickedTap({ tap: [3] })).toBeNull();
  });
});

describe('endpoints', () => {
  it('handshake: the host sends the report only after ready, and the webview gets it typed', async () => {
    const { host, webview, toWebview } = pair();
    const shown: DidChangeReportParams[] = [];
    webview.on(DidChangeReportNotification, isDidChangeReportParams, (p) => shown.push(p));
    host.on(ReadyCommand, isReadyParams, (p) => {
      expect(p.protocolVersion).toBe(WEBVIEW_PROTOCOL_VERSION);
      host.sendNotification(DidChangeReportNotification, { jobId: 'job-7', report });
    });
    expect(toWebview).toEqual([]);
    webview.sendCommand(ReadyCommand, { kind: 'correlation', protocolVersion: WEBVIEW_PROTOCOL_VERSION, state: null });
    await flush();
    expect(toWebview.map((m) => m.method)).toEqual(['report/didChange']);
    expect(shown).toHaveLength(1);
    expect(shown[0]!.jobId).toBe('job-7');
    expect(shown[0]!.report.align.taps.length).toBe(report.align.taps.length);
    // Ids never collide between the sides.
    expect(toWebview[0]!.id.startsWith('host:')).toBe(true);
  });

  it('requests resolve with the handler result, reject with its error, and leave nothing pending', async () => {
    const { host, webview } = pair();
    host.onRequest(SaveFileRequest, isSaveFileParams, async (p) => {
      if (p.fileName === 'fail.csv') throw new Error('disk full');
      return { saved: true, path: `/out/${p.fileName}` };
    });
    const params: SaveFileParams = { fileName: 'a.csv', mimeType: 'text/csv', content: 'x', encoding: 'utf8' };
    await expect(webview.sendRequest(SaveFileRequest, params)).resolves.toEqual({ saved: true, path: '/out/a.csv' });
    await expect(webview.sendRequest(SaveFileRequest, { ...params, fileName: 'fail.csv' })).rejects.toThrow('disk full');
    await expect(webview.sendRequest(SaveFileRequest, { ...params, fileName: '../x' })).rejects.toThrow('malformed params');
    expect(webview.pendingCount).toBe(0);
  });

  it('a request with no reply times out and its pending entry is removed; a late reply is ignored', async () => {
    vi.useFakeTimers();
    const posted: IpcMessage[] = [];
    const webview = new IpcEndpoint({ side: 'webview', post: (m) => posted.push(m), requestTimeoutMs: 1000 });
    const p = webview.sendRequest(SaveFileRequest, { fileName: 'a.csv', mimeType: 'text/csv', content: '', encoding: 'utf8' });
    const settled = expect(p).rejects.toBeInstanceOf(IpcTimeoutError);
    expect(webview.pendingCount).toBe(1);
    vi.advanceTimersByTime(999);
    expect(webview.pendingCount).toBe(1);
    vi.advanceTimersByTime(1);
    await settled;
    expect(webview.pendingCount).toBe(0);
    expect(webview.receive({ id: 'host:1', method: SaveFileRequest.method, completionId: posted[0]!.id, params: { saved: true } })).toBe(
      false,
    );
  });

  it('dispose rejects pending requests and drops later messages', async () => {
    const webview = new IpcEndpoint({ side: 'webview', post: () => undefined });
    const p = webview.sendRequest(SaveFileRequest, { fileName: 'a.csv', mimeType: 'text/csv', content: '', encoding: 'utf8' });
    webview.dispose();
    await expect(p).rejects.toThrow('disposed');
    expect(webview.pendingCount).toBe(0);
    expect(webview.receive({ id: 'h:1', method: 'report/didChange', params: {} })).toBe(false);
    await expect(
      webview.sendRequest(SaveFileRequest, { fileName: 'b.csv', mimeType: 'text/csv', content: '', encoding: 'utf8' }),
    ).rejects.toThrow('disposed');
  });

  it('a post that throws (webview gone) rejects the request at once and leaves nothing pending', async () => {
    const webview = new IpcEndpoint({
      side: 'webview',
      post: () => {
        throw new Error('Webview is disposed');
      },
    });
    await expect(
      webview.sendRequest(SaveFileRequest, { fileName: 'a.csv', mimeType: 'text/csv', content: '', encoding: 'utf8' }),
    ).rejects.toThrow('Webview is disposed');
    expect(webview.pendingCount).toBe(0);
  });

  it('foreign and unhandled messages are not consumed; malformed command params throw to the caller', () => {
    const host = new IpcEndpoint({ side: 'host', post: () => undefined });
    const errors: WebviewErrorParams[] = [];
    host.on(
      ErrorCommand,
      (x): x is WebviewErrorParams => typeof (x as WebviewErrorParams)?.message === 'string',
      (p) => errors.push(p),
    );
    expect(host.receive({ command: 'alert' })).toBe(false);
    expect(host.receive({ id: 'w:1', method: 'panel/open', params: { kind: 'results' } })).toBe(false);
    expect(host.receive({ id: 'w:2', method: ErrorCommand.method, params: { message: 'boom', chart: 'head-scores' } })).toBe(true);
    expect(errors).toEqual([{ message: 'boom', chart: 'head-scores' }]);
    expect(() => host.receive({ id: 'w:3', method: ErrorCommand.method, params: { nope: 1 } })).toThrow('malformed');
  });
});

describe('panel HTML', () => {
  const opts = {
    kind: 'correlation' as const,
    cspSource: 'https://file+.vscode-resource.vscode-cdn.net',
    scriptUri: 'https://file+.vscode-resource.vscode-cdn.net/ext/dist/webview.js',
    styleUri: 'https://file+.vscode-resource.vscode-cdn.net/ext/dist/webview.css',
    nonce: 'q2b3Vn0vJ8m2a9tRkX1w4A==',
  };

  it('CSP: nothing by default, scripts by nonce only, no unsafe-*', () => {
    const csp = panelCsp(opts.cspSource, opts.nonce);
    expect(csp).toBe(
      "default-src 'none'; script-src 'nonce-q2b3Vn0vJ8m2a9tRkX1w4A=='; style-src https://file+.vscode-resource.vscode-cdn.net 'nonce-q2b3Vn0vJ8m2a9tRkX1w4A=='; img-src https://file+.vscode-resource.vscode-cdn.net data:; font-src https://file+.vscode-resource.vscode-cdn.net",
    );
    expect(csp).not.toMatch(/unsafe/);
  });

  it('one script with the nonce, the stylesheet, the panel kind on the body', () => {
    const html = renderPanelHtml(opts);
    expect(html).toContain(`<meta http-equiv="Content-Security-Policy" content="default-src 'none';`);
    expect(html.match(/<script\b/g)).toHaveLength(1);
    expect(html).toContain(`<script nonce="${opts.nonce}" src="${opts.scriptUri}"></script>`);
    expect(html).toContain(`<link rel="stylesheet" href="${opts.styleUri}"`);
    expect(html).toContain('<body data-panel="correlation">');
    expect(renderPanelHtml({ ...opts, kind: 'results' })).toContain('<title>Merge Studio: Merge Results</title>');
  });

  it('refuses a nonce that could break out of the attribute or the policy', () => {
    expect(() => renderPanelHtml({ ...opts, nonce: 'short' })).toThrow('nonce');
    expect(() => renderPanelHtml({ ...opts, nonce: `abcdefghijklmnop"; script-src *` })).toThrow('nonce');
  });

  it('escapes resource URIs', () => {
    const html = renderPanelHtml({ ...opts, scriptUri: 'https://x/a"b<c.js' });
    expect(html).toContain('src="https://x/a&quot;b&lt;c.js"');
  });
});
