/**
 * Host ↔ webview messages of the report panels, defined once and imported by the VS Code host
 * (client/src/panels) and the webview bundle (webview/src). The transport (typed message constants, the endpoint)
 * is protocol/ipc.ts; the panel kinds are protocol/panels.ts; the report types protocol/report.ts. A `webview/ready`
 * command is the handshake: the host sends nothing until the webview has said it listens (a message posted earlier
 * would be lost). Only plain JSON crosses the boundary; chart specs are built inside the webview from the report.
 */
import { command, isRecord, notification, request } from './ipc';
import { isPanelKind, type PanelKind } from './panels';
import { isMergeReport, type MergeReport } from './report';

/** Bumped when a payload changes incompatibly; sent in the ready handshake. */
export const WEBVIEW_PROTOCOL_VERSION = 1;

/** What a panel remembers across reloads (`vscode.setState`), and what the host's serializer receives. */
export interface PanelState {
  kind: PanelKind;
  /** The job whose report is shown; the serializer re-fetches the report by this id (`mergeStudio/getReport`). */
  jobId: string | null;
  /** Selected tap key (see webview/src/charts/data.ts `tapKey`), e.g. `layer:3`, `cnn:0`, `residual`. */
  selected: string | null;
  /** Chart ids shown as tables instead of charts. */
  tables: string[];
}

export function isPanelState(x: unknown): x is PanelState {
  if (!isRecord(x)) return false;
  return (
    isPanelKind(x.kind) &&
    (x.jobId === null || typeof x.jobId === 'string') &&
    (x.selected === null || typeof x.selected === 'string') &&
    Array.isArray(x.tables) &&
    x.tables.every((t) => typeof t === 'string')
  );
}

export interface ReadyParams {
  kind: PanelKind;
  protocolVersion: number;
  /** The state the webview restored (after a reload), so the host can re-send the right report. */
  state: PanelState | null;
}
/** Webview → host, once its message listener is installed. The host answers with `report/didChange`. */
export const ReadyCommand = command<ReadyParams>('webview/ready');

export interface DidChangeReportParams {
  /** The job the report belongs to (kept in the panel's state for restore); null for a report opened from a file. */
  jobId: string | null;
  report: MergeReport;
}
/** Host → webview: show this report (the first one after ready, or a newer run). */
export const DidChangeReportNotification = notification<DidChangeReportParams>('report/didChange');

export interface DidFailReportParams {
  message: string;
}
/** Host → webview: the report could not be loaded (e.g. its job is gone after a restart). */
export const DidFailReportNotification = notification<DidFailReportParams>('report/didFail');

export type SaveFileEncoding = 'utf8' | 'base64';
export interface SaveFileParams {
  /** Suggested file name (no directory), e.g. `correlation-by-layer.csv`. */
  fileName: string;
  mimeType: 'text/csv' | 'image/png' | 'image/svg+xml';
  /** Text (utf8) or base64 bytes (a PNG). */
  content: string;
  encoding: SaveFileEncoding;
}
export interface SaveFileResult {
  /** False when the user cancelled the save dialog. */
  saved: boolean;
  /** The file written (fsPath), when saved. */
  path?: string;
}
/** Webview → host: webviews cannot download; the host shows a save dialog and writes the file. */
export const SaveFileRequest = request<SaveFileParams, SaveFileResult>('file/save');

export interface OpenPanelParams {
  kind: PanelKind;
}
/** Webview → host: open the other panel on the same report. */
export const OpenPanelCommand = command<OpenPanelParams>('panel/open');

export interface WebviewErrorParams {
  message: string;
  /** Which chart failed, when one did. */
  chart?: string;
}
/** Webview → host: a rendering error, for the output channel (webview consoles are hard to find). */
export const ErrorCommand = command<WebviewErrorParams>('webview/error');

// ---------------------------------------------------------------------------------------------------------
// Guards
// ---------------------------------------------------------------------------------------------------------

const finite = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);

export function isReadyParams(x: unknown): x is ReadyParams {
  return isRecord(x) && isPanelKind(x.kind) && finite(x.protocolVersion) && (x.state === null || isPanelState(x.state));
}
export function isDidChangeReportParams(x: unknown): x is DidChangeReportParams {
  return isRecord(x) && (x.jobId === null || typeof x.jobId === 'string') && isMergeReport(x.report);
}
export function isSaveFileParams(x: unknown): x is SaveFileParams {
  return (
    isRecord(x) &&
    typeof x.fileName === 'string' &&
    /^[\w.() -]+$/.test(x.fileName) &&
    (x.mimeType === 'text/csv' || x.mimeType === 'image/png' || x.mimeType === 'image/svg+xml') &&
    typeof x.content === 'string' &&
    (x.encoding === 'utf8' || x.encoding === 'base64')
  );
}
