/**
 * The panel host (client/src/panels) against a fake `vscode` module: HTML with a fresh nonce and the CSP,
 * the report sent only after `webview/ready`, restore through the serializer re-fetching the report by job
 * id, exports written where the save dialog says, and a missing report reported to the webview.
 */
import { readFileSync } from 'node:fs';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import type { IpcMessage } from '../../protocol/ipc';
import type { MergeReport } from '../../protocol/report';

const report = JSON.parse(readFileSync(new URL('../fixtures/reports/example.report.json', import.meta.url), 'utf8')) as MergeReport;

interface FakeWebview {
  html: string;
  options: unknown;
  cspSource: string;
  posted: IpcMessage[];
  listeners: ((m: unknown) => void)[];
  asWebviewUri(u: { path: string }): { toString(): string };
  postMessage(m: IpcMessage): Promise<boolean>;
  onDidReceiveMessage(l: (m: unknown) => void): { dispose(): void };
}
interface FakePanel {
  viewType: string;
  title: string;
  webview: FakeWebview;
  revealed: number;
  disposeListeners: (() => void)[];
  reveal(): void;
  onDidDispose(l: () => void): { dispose(): void };
  dispose(): void;
}

const fake = vi.hoisted(() => ({
  panels: [] as unknown[],
  serializers: new Map<string, { deserializeWebviewPanel(panel: unknown, state: unknown): Promise<void> }>(),
  saveTo: undefined as { fsPath: string } | undefined,
  written: [] as { path: string; bytes: Uint8Array }[],
}));

vi.mock('vscode', () => {
  const uri = (p: string) => ({ path: p, fsPath: p, toString: () => `file://${p}` });
  const makePanel = (viewType: string, title: string) => {
    const webview = {
      html: '',
      options: undefined as unknown,
      cspSource: 'https://csp.example',
      posted: [] as unknown[],
      listeners: [] as ((m: unknown) => void)[],
      asWebviewUri: (u: { path: string }) => ({ toString: () => `https://csp.example${u.path}` }),
      postMessage(m: unknown) {
        this.posted.push(JSON.parse(JSON.stringify(m)));
        return Promise.resolve(true);
      },
      onDidReceiveMessage(l: (m: unknown) => void) {
        this.listeners.push(l);
        return { dispose: () => undefined };
      },
    };
    const panel = {
      viewType,
      title,
      webview,
      revealed: 0,
      disposeListeners: [] as (() => void)[],
      reveal() {
        this.revealed++;
      },
      onDidDispose(l: () => void) {
        this.disposeListeners.push(l);
        return { dispose: () => undefined };
      },
      dispose() {
        for (const l of this.disposeListeners.splice(0)) l();
      },
    };
    fake.panels.push(panel);
    return panel;
  };
  return {
    Uri: { joinPath: (base: { path: string }, ...parts: string[]) => uri([base.path, ...parts].join('/')), file: uri },
    ViewColumn: { Beside: -2 },
    window: {
      createWebviewPanel: (viewType: string, title: string) => makePanel(viewType, title),
      registerWebviewPanelSerializer: (viewType: string, s: { deserializeWebviewPanel(panel: unknown, state: unknown): Promise<void> }) => {
        fake.serializers.set(viewType, s);
        return { dispose: () => fake.serializers.delete(viewType) };
      },
      showSaveDialog: async () => fake.saveTo,
    },
    workspace: {
      workspaceFolders: [{ uri: uri('/ws') }],
      fs: { writeFile: async (u: { fsPath: string }, bytes: Uint8Array) => void fake.written.push({ path: u.fsPath, bytes }) },
    },
    __makePanel: makePanel,
  };
});

const vscode = (await import('vscode')) as unknown as { __makePanel(viewType: string, title: string): FakePanel };
const { ReportPanels } = await import('../../client/src/panels/report-panels');

function context() {
  return { extensionUri: { path: '/ext' }, subscriptions: [] as { dispose(): void }[] } as never;
}
/** The webview side posting a message to the host. */
const fromWebview = (p: FakePanel, m: IpcMessage) => p.webview.listeners.forEach((l) => l(m));
const ready = (p: FakePanel, kind: string, jobId: string | null = null) =>
  fromWebview(p, {
    id: 'webview:1',
    method: 'webview/ready',
    params: { kind, protocolVersion: 1, state: jobId ? { kind, jobId, selected: null, tables: [] } : null },
  });
const settle = () => new Promise<void>((r) => setTimeout(r, 0));

beforeEach(() => {
  fake.panels.length = 0;
  fake.serializers.clear();
  fake.written.length = 0;
});

describe('ReportPanels host', () => {
  it('show: CSP page with a fresh nonce, the report only after ready, one panel per kind', async () => {
    const panels = ReportPanels.register(context(), { getReport: async () => report });
    panels.show('correlation', 'job-1', report);
    const p = fake.panels[0] as FakePanel;
    expect(p.viewType).toBe('mergeStudio.correlationPanel');
    const nonce = p.webview.html.match(/nonce="([^"]+)"/)![1]!;
    expect(p.webview.html).toContain(`script-src 'nonce-${nonce}'`);
    expect(p.webview.html).toContain('src="https://csp.example/ext/dist/webview.js"');
    expect(p.webview.options).toEqual({ enableScripts: true, localResourceRoots: [expect.objectContaining({ path: '/ext/dist' })] });
    expect(p.webview.posted).toEqual([]);
    ready(p, 'correlation');
    expect(p.webview.posted.map((m) => m.method)).toEqual(['report/didChange']);
    expect((p.webview.posted[0]!.params as { jobId: string }).jobId).toBe('job-1');

    // Same kind again: revealed and updated, not a second panel; another panel gets another nonce.
    panels.show('correlation', 'job-2', report);
    expect(fake.panels).toHaveLength(1);
    expect(p.revealed).toBe(1);
    expect(p.webview.posted.map((m) => (m.params as { jobId: string }).jobId)).toEqual(['job-1', 'job-2']);
    panels.show('results', 'job-2', report);
    expect((fake.panels[1] as FakePanel).webview.html).not.toContain(nonce);
    panels.dispose();
  });

  it('restore: the serializer re-fetches the report by the job id in the saved state', async () => {
    const getReport = vi.fn(async (id: string) => (id === 'job-9' ? report : Promise.reject(new Error('unknown job'))));
    ReportPanels.register(context(), { getReport });
    const restored = vscode.__makePanel('mergeStudio.resultsPanel', 'restored');
    await fake.serializers
      .get('mergeStudio.resultsPanel')!
      .deserializeWebviewPanel(restored, { kind: 'results', jobId: 'job-9', selected: null, tables: [] });
    ready(restored, 'results', 'job-9');
    await settle();
    expect(getReport).toHaveBeenCalledWith('job-9');
    expect(restored.webview.posted.map((m) => m.method)).toEqual(['report/didChange']);

    const gone = vscode.__makePanel('mergeStudio.resultsPanel', 'gone');
    await fake.serializers
      .get('mergeStudio.resultsPanel')!
      .deserializeWebviewPanel(gone, { kind: 'results', jobId: 'job-old', selected: null, tables: [] });
    ready(gone, 'results', 'job-old');
    await settle();
    expect(gone.webview.posted.map((m) => m.method)).toEqual(['report/didFail']);
    expect((gone.webview.posted[0]!.params as { message: string }).message).toContain('job-old');
  });

  it('save: writes the decoded bytes where the dialog says, or reports a cancel', async () => {
    const panels = ReportPanels.register(context(), { getReport: async () => report });
    panels.show('results', 'job-1', report);
    const p = fake.panels[0] as FakePanel;
    ready(p, 'results');
    fake.saveTo = { fsPath: '/ws/average-score.png' };
    fromWebview(p, {
      id: 'webview:2',
      method: 'file/save',
      params: {
        fileName: 'average-score.png',
        mimeType: 'image/png',
        content: Buffer.from('PNGDATA').toString('base64'),
        encoding: 'base64',
      },
    });
    await settle();
    expect(fake.written).toHaveLength(1);
    expect(Buffer.from(fake.written[0]!.bytes).toString()).toBe('PNGDATA');
    const reply = p.webview.posted.find((m) => m.completionId === 'webview:2')!;
    expect(reply.params).toEqual({ saved: true, path: '/ws/average-score.png' });

    fake.saveTo = undefined;
    fromWebview(p, {
      id: 'webview:3',
      method: 'file/save',
      params: { fileName: 'a.csv', mimeType: 'text/csv', content: 'x', encoding: 'utf8' },
    });
    await settle();
    expect(p.webview.posted.find((m) => m.completionId === 'webview:3')!.params).toEqual({ saved: false });
    expect(fake.written).toHaveLength(1);
    panels.dispose();
  });

  it('open-panel command opens the other kind on the same report; closing forgets the panel', async () => {
    const panels = ReportPanels.register(context(), { getReport: async () => report });
    panels.show('correlation', 'job-1', report);
    const p = fake.panels[0] as FakePanel;
    ready(p, 'correlation');
    fromWebview(p, { id: 'webview:5', method: 'panel/open', params: { kind: 'results' } });
    expect((fake.panels[1] as FakePanel).viewType).toBe('mergeStudio.resultsPanel');
    p.dispose();
    expect(panels.panel('correlation')).toBeUndefined();
    expect(panels.panel('results')).toBeDefined();
    expect(() => panels.show('results', 'x', { version: 2 })).toThrow('not a Merge Studio report');
    panels.dispose();
  });
});
