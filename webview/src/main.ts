/**
 * Webview entry (dist/webview.js): wires the panel to the host. Order matters: the message listener is
 * installed before `webview/ready` is sent, and the host sends the report only after ready.
 */
import {
  DidChangeReportNotification,
  DidFailReportNotification,
  ErrorCommand,
  OpenPanelCommand,
  ReadyCommand,
  SaveFileRequest,
  WEBVIEW_PROTOCOL_VERSION,
  isDidChangeReportParams,
  isPanelState,
  type DidFailReportParams,
  type PanelState,
} from '../../protocol/webview';
import { IpcEndpoint } from '../../protocol/ipc';
import { isPanelKind } from '../../protocol/panels';
import { ReportPanel } from './render/panel';
import { injectVegaEmbedStyle } from './render/styles';
import { readTheme, watchTheme } from './render/theme-dom';
import './styles.css';
import { errorMessage } from '../../protocol/errors';

// The nonce of this script authorises the <style> elements we add (CSP without 'unsafe-inline').
const nonce = (document.currentScript as HTMLScriptElement | null)?.nonce || undefined;

function start(): void {
  const vscode = acquireVsCodeApi<PanelState>();
  const root = document.getElementById('app')!;
  const kind = document.body.dataset.panel;
  if (!isPanelKind(kind)) throw new Error(`unknown panel kind ${String(kind)}`);
  injectVegaEmbedStyle(document, nonce);

  const restored = vscode.getState();
  const state = isPanelState(restored) && restored.kind === kind ? restored : null;
  const ipc = new IpcEndpoint({ post: (m) => vscode.postMessage(m), side: 'webview' });
  const reportError = (message: string, chart?: string) =>
    ipc.sendCommand(ErrorCommand, chart === undefined ? { message } : { message, chart });

  const panel = new ReportPanel(
    root,
    kind,
    {
      theme: () => readTheme(document),
      save: (p) => ipc.sendRequest(SaveFileRequest, p, 120_000),
      openPanel: (k) => ipc.sendCommand(OpenPanelCommand, { kind: k }),
      setState: (s) => vscode.setState(s),
      onError: reportError,
    },
    state,
  );

  ipc.on(DidChangeReportNotification, isDidChangeReportParams, (p) => {
    panel.show(p.report, p.jobId).catch((e: unknown) => reportError(errorMessage(e)));
  });
  ipc.on(
    DidFailReportNotification,
    (x): x is DidFailReportParams => typeof (x as DidFailReportParams | null)?.message === 'string',
    (p) => panel.showError(p.message),
  );
  window.addEventListener('message', (e: MessageEvent) => {
    try {
      ipc.receive(e.data);
    } catch (err) {
      reportError(errorMessage(err));
    }
  });

  watchTheme(document, () => void panel.refresh());
  let resizeTimer: ReturnType<typeof setTimeout> | undefined;
  new ResizeObserver(() => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      if (panel.widthChanged()) void panel.refresh();
    }, 150);
  }).observe(root);

  ipc.sendCommand(ReadyCommand, { kind, protocolVersion: WEBVIEW_PROTOCOL_VERSION, state });
}

start();
