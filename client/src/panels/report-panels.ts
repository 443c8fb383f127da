/**
 * Host side of the report panels (correlation diagnostics, merge results): one webview panel per kind, the
 * page from `renderPanelHtml` (the same HTML the Chromium tests load), typed messages through
 * protocol/webview.ts with the `webview/ready` handshake, exports saved through a save dialog, and serializers
 * so panels come back after a reload (their report re-fetched by job id).
 *
 * Self-contained: the extension wires it with `ReportPanels.register(context, source, log)` and opens panels
 * with `panels.show(kind, jobId, report)`.
 */
import { randomBytes } from 'node:crypto';
import * as vscode from 'vscode';
import {
  DidChangeReportNotification,
  DidFailReportNotification,
  ErrorCommand,
  OpenPanelCommand,
  ReadyCommand,
  SaveFileRequest,
  WEBVIEW_PROTOCOL_VERSION,
  isPanelState,
  isReadyParams,
  isSaveFileParams,
  type OpenPanelParams,
  type SaveFileParams,
  type SaveFileResult,
  type WebviewErrorParams,
} from '../../../protocol/webview';
import { IpcEndpoint } from '../../../protocol/ipc';
import { PANEL_KINDS, PANEL_TITLES, PANEL_VIEW_TYPES, isPanelKind, type PanelKind } from '../../../protocol/panels';
import { isMergeReport, type MergeReport } from '../../../protocol/report';
import { renderPanelHtml } from '../../../webview/src/html';
import { errorMessage } from '../../../protocol/errors';

/** Where reports come from after a reload: `mergeStudio/getReport` by job id (its `report` field). */
export interface ReportSource {
  getReport(jobId: string): Promise<unknown>;
}

export interface PanelLog {
  info(message: string): void;
  warn(message: string): void;
}

const FILTERS: Record<SaveFileParams['mimeType'], Record<string, string[]>> = {
  'text/csv': { CSV: ['csv'] },
  'image/png': { 'PNG image': ['png'] },
  'image/svg+xml': { 'SVG image': ['svg'] },
};

/** One open panel: its webview, its endpoint, and the report it shows. */
class ReportPanel implements vscode.Disposable {
  private readonly ipc: IpcEndpoint;
  private readonly disposables: vscode.Disposable[] = [];
  private ready = false;
  private current: { jobId: string | null; report: MergeReport } | null = null;
  private restoreJobId: string | null;

  constructor(
    readonly panel: vscode.WebviewPanel,
    readonly kind: PanelKind,
    private readonly owner: ReportPanels,
    restoreJobId: string | null,
  ) {
    this.restoreJobId = restoreJobId;
    const dist = vscode.Uri.joinPath(owner.extensionUri, 'dist');
    const webview = panel.webview;
    webview.options = { enableScripts: true, localResourceRoots: [dist] };
    this.ipc = new IpcEndpoint({ side: 'host', post: (m) => void webview.postMessage(m) });
    this.ipc.on(ReadyCommand, isReadyParams, (p) => void this.onReady(p.protocolVersion, p.state?.jobId ?? null));
    this.ipc.onRequest(SaveFileRequest, isSaveFileParams, (p) => this.save(p));
    this.ipc.on(
      OpenPanelCommand,
      (x): x is OpenPanelParams => isPanelKind((x as OpenPanelParams | null)?.kind),
      (p) => {
        if (this.current) owner.show(p.kind, this.current.jobId, this.current.report);
      },
    );
    this.ipc.on(
      ErrorCommand,
      (x): x is WebviewErrorParams => typeof (x as WebviewErrorParams | null)?.message === 'string',
      (p) => owner.log?.warn(`${PANEL_TITLES[kind]}${p.chart ? ` (${p.chart})` : ''}: ${p.message}`),
    );
    this.disposables.push(
      webview.onDidReceiveMessage((m: unknown) => {
        try {
          this.ipc.receive(m);
        } catch (e) {
          owner.log?.warn(`${PANEL_TITLES[kind]}: ${errorMessage(e)}`);
        }
      }),
      panel.onDidDispose(() => this.dispose()),
    );
    webview.html = renderPanelHtml({
      kind,
      cspSource: webview.cspSource,
      scriptUri: webview.asWebviewUri(vscode.Uri.joinPath(dist, 'webview.js')).toString(),
      styleUri: webview.asWebviewUri(vscode.Uri.joinPath(dist, 'webview.css')).toString(),
      nonce: randomBytes(16).toString('base64'),
    });
  }

  /** Shows a report now, or once the webview is ready (a message posted before would be lost). */
  setReport(jobId: string | null, report: MergeReport): void {
    this.current = { jobId, report };
    if (this.ready) this.ipc.sendNotification(DidChangeReportNotification, { jobId, report });
  }

  private async onReady(protocolVersion: number, stateJobId: string | null): Promise<void> {
    if (protocolVersion !== WEBVIEW_PROTOCOL_VERSION)
      this.owner.log?.warn(`webview protocol ${protocolVersion}, host ${WEBVIEW_PROTOCOL_VERSION}`);
    // A webview reloads (e.g. moved to another window) with the panel alive: ready again, send again.
    this.ready = true;
    if (this.current) {
      this.ipc.sendNotification(DidChangeReportNotification, this.current);
      return;
    }
    const jobId = this.restoreJobId ?? stateJobId;
    if (!jobId) {
      this.ipc.sendNotification(DidFailReportNotification, { message: 'No report to show: run a recipe, then Merge Studio: Show Report.' });
      return;
    }
    try {
      const report = await this.owner.source.getReport(jobId);
      if (!isMergeReport(report)) throw new Error('the job’s report.json is not a Merge Studio report (version 1)');
      this.setReport(jobId, report);
    } catch (e) {
      const why = errorMessage(e);
      this.ipc.sendNotification(DidFailReportNotification, {
        message: `The report of job ${jobId} is no longer available (${why}). Run the recipe again.`,
      });
    }
  }

  private async save(p: SaveFileParams): Promise<SaveFileResult> {
    const folder = vscode.workspace.workspaceFolders?.[0]?.uri;
    const uri = await vscode.window.showSaveDialog({
      defaultUri: folder ? vscode.Uri.joinPath(folder, p.fileName) : undefined,
      filters: FILTERS[p.mimeType],
      title: `Export ${p.fileName}`,
    });
    if (!uri) return { saved: false };
    await vscode.workspace.fs.writeFile(uri, Buffer.from(p.content, p.encoding));
    return { saved: true, path: uri.fsPath };
  }

  dispose(): void {
    this.ipc.dispose();
    this.owner.forget(this);
    for (const d of this.disposables.splice(0)) d.dispose();
  }
}

export class ReportPanels implements vscode.Disposable {
  private readonly open = new Map<PanelKind, ReportPanel>();
  private readonly disposables: vscode.Disposable[] = [];

  private constructor(
    readonly extensionUri: vscode.Uri,
    readonly source: ReportSource,
    readonly log?: PanelLog,
  ) {}

  /**
   * Creates the manager and registers a serializer per panel kind. Call during activation: VS Code restores
   * panels only through serializers registered by then (activation events `onWebviewPanel:<viewType>`).
   */
  static register(context: vscode.ExtensionContext, source: ReportSource, log?: PanelLog): ReportPanels {
    const panels = new ReportPanels(context.extensionUri, source, log);
    for (const kind of PANEL_KINDS) {
      panels.disposables.push(
        vscode.window.registerWebviewPanelSerializer(PANEL_VIEW_TYPES[kind], {
          deserializeWebviewPanel: async (panel: vscode.WebviewPanel, state: unknown) => {
            const jobId = isPanelState(state) ? state.jobId : null;
            panels.adopt(kind, new ReportPanel(panel, kind, panels, jobId));
          },
        }),
      );
    }
    context.subscriptions.push(panels);
    return panels;
  }

  /** Opens (or reveals) the panel of this kind on a report; `report` is GetReportResult.report as received. */
  show(kind: PanelKind, jobId: string | null, report: unknown): void {
    if (!isMergeReport(report)) throw new Error('Merge Studio: the report is not a Merge Studio report (version 1).');
    let p = this.open.get(kind);
    if (p) p.panel.reveal(undefined, true);
    else {
      const panel = vscode.window.createWebviewPanel(
        PANEL_VIEW_TYPES[kind],
        PANEL_TITLES[kind],
        { viewColumn: vscode.ViewColumn.Beside, preserveFocus: false },
        {
          enableScripts: true,
          enableFindWidget: true,
          localResourceRoots: [vscode.Uri.joinPath(this.extensionUri, 'dist')],
        },
      );
      p = new ReportPanel(panel, kind, this, jobId);
      this.adopt(kind, p);
    }
    p.setReport(jobId, report);
  }

  /** Sends a newer report (a new run) to the panels that are open, without revealing them. */
  update(jobId: string | null, report: unknown): void {
    if (!isMergeReport(report)) return;
    for (const p of this.open.values()) p.setReport(jobId, report);
  }

  /** The open panel of a kind (for tests). */
  panel(kind: PanelKind): vscode.WebviewPanel | undefined {
    return this.open.get(kind)?.panel;
  }

  private adopt(kind: PanelKind, p: ReportPanel): void {
    this.open.get(kind)?.panel.dispose();
    this.open.set(kind, p);
  }

  /** Called by a panel when it is closed. */
  forget(p: ReportPanel): void {
    if (this.open.get(p.kind) === p) this.open.delete(p.kind);
  }

  dispose(): void {
    for (const p of [...this.open.values()]) p.panel.dispose();
    this.open.clear();
    for (const d of this.disposables.splice(0)) d.dispose();
  }
}
