/**
 * Host ↔ webview messages of the report panels, defined once and imported by the VS Code host
 * (client/src/panels) and the webview bundle (webview/src). Modelled on GitLens' `webviews/ipc`:
 * every message type is a typed constant (`IpcCommand<P>`, `IpcRequest<P, R>` owning its reply type,
 * `IpcNotification<P>`), names are namespaced, and a `webview/ready` command is the handshake: the host sends
 * nothing until the webview has said it listens (a message posted earlier would be lost).
 *
 * Dependency-free and DOM-free, so the module bundles into Node (host) and the browser (webview) alike.
 * Only plain JSON crosses the boundary; chart specs are built inside the webview from the report.
 */
import type { MergeReport } from '../server/src/engine/pipeline/report';

export type { MergeReport };

/** Bumped when a payload changes incompatibly; sent in the ready handshake. */
export const WEBVIEW_PROTOCOL_VERSION = 1;

export type PanelKind = 'correlation' | 'results';
export const PANEL_KINDS: readonly PanelKind[] = ['correlation', 'results'];

/** `WebviewPanel.viewType` per kind; also the `onWebviewPanel:<viewType>` activation events of the serializers. */
export const PANEL_VIEW_TYPES: Readonly<Record<PanelKind, string>> = {
  correlation: 'mergeStudio.correlationPanel',
  results: 'mergeStudio.resultsPanel',
};

export const PANEL_TITLES: Readonly<Record<PanelKind, string>> = {
  correlation: 'Merge Studio: Correlation Diagnostics',
  results: 'Merge Studio: Merge Results',
};

export function isPanelKind(x: unknown): x is PanelKind {
  return x === 'correlation' || x === 'results';
}

// ---------------------------------------------------------------------------------------------------------
// Message types
// ---------------------------------------------------------------------------------------------------------

/** Fire-and-forget, webview → host. */
export interface IpcCommand<P> {
  readonly kind: 'command';
  readonly method: string;
  /** Phantom: carries the params type only. */
  readonly _params?: P;
}
/** Either direction; the receiver answers with a message whose `completionId` is the request's `id`. */
export interface IpcRequest<P, R> {
  readonly kind: 'request';
  readonly method: string;
  readonly _params?: P;
  readonly _result?: R;
}
/** Fire-and-forget, host → webview. */
export interface IpcNotification<P> {
  readonly kind: 'notification';
  readonly method: string;
  readonly _params?: P;
}
export type IpcMessageType = IpcCommand<unknown> | IpcRequest<unknown, unknown> | IpcNotification<unknown>;

export type ParamsOf<T> = T extends { _params?: infer P } ? P : never;
export type ResultOf<T> = T extends IpcRequest<unknown, infer R> ? R : never;

const command = <P>(method: string): IpcCommand<P> => ({ kind: 'command', method });
const request = <P, R>(method: string): IpcRequest<P, R> => ({ kind: 'request', method });
const notification = <P>(method: string): IpcNotification<P> => ({ kind: 'notification', method });

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
// Wire format and guards
// ---------------------------------------------------------------------------------------------------------

/** Every message posted either way. A reply carries `completionId` (the request's id) and either params or error. */
export interface IpcMessage {
  id: string;
  method: string;
  params?: unknown;
  completionId?: string;
  error?: string;
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

export function isIpcMessage(x: unknown): x is IpcMessage {
  return (
    isRecord(x) &&
    typeof x.id === 'string' &&
    typeof x.method === 'string' &&
    (x.completionId === undefined || typeof x.completionId === 'string') &&
    (x.error === undefined || typeof x.error === 'string')
  );
}

/** A message of this type (not a reply to one). Narrows `params` to the type's params (shape checked by the caller's guard). */
export function isMessage<T extends IpcMessageType>(type: T, msg: IpcMessage): msg is IpcMessage & { params: ParamsOf<T> } {
  return msg.method === type.method && msg.completionId === undefined;
}

const finite = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);

/**
 * Enough of a MergeReport to chart it: version, taps with numeric statistics, evaluation rows. A report is
 * trusted JSON from our own engine; this guards against a wrong file or an older/newer version, not an attacker.
 */
export function isMergeReport(x: unknown): x is MergeReport {
  if (!isRecord(x) || x.version !== 1) return false;
  const align = x.align;
  if (!isRecord(align) || !Array.isArray(align.taps)) return false;
  for (const t of align.taps) {
    if (!isRecord(t) || typeof t.tap !== 'string' || typeof t.group !== 'string') return false;
    if (!(t.layer === null || finite(t.layer))) return false;
    if (!finite(t.meanCorrelationBefore) || !finite(t.meanCorrelationAfter) || !finite(t.moved)) return false;
  }
  if (x.evaluation !== null) {
    const e = x.evaluation;
    if (!isRecord(e) || !Array.isArray(e.rows) || !Array.isArray(e.averages)) return false;
    for (const r of e.rows) {
      if (!isRecord(r) || typeof r.variant !== 'string' || typeof r.task !== 'string' || !finite(r.score)) return false;
      if (!(r.lambda === null || finite(r.lambda))) return false;
    }
  }
  return isRecord(x.models) && isRecord(x.merge);
}

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

// ---------------------------------------------------------------------------------------------------------
// Endpoint: one per side, over postMessage
// ---------------------------------------------------------------------------------------------------------

export class IpcTimeoutError extends Error {
  constructor(readonly method: string, readonly timeoutMs: number) {
    super(`${method}: no reply within ${timeoutMs} ms`);
    this.name = 'IpcTimeoutError';
  }
}

export interface IpcEndpointOptions {
  /** Posts one message to the other side (`vscode.postMessage` / `webview.postMessage`). */
  post: (msg: IpcMessage) => unknown;
  /** Id prefix, so ids from the two sides never collide (`host` / `webview`). */
  side: string;
  /** How long a request waits for its reply (default 30 s: a save dialog is human-paced). */
  requestTimeoutMs?: number;
}

interface Handler {
  /** Requests get a reply (result or error); commands and notifications do not. */
  request: boolean;
  fn: (params: unknown) => unknown;
}

/**
 * Sends commands, notifications and requests, and dispatches what arrives: `receive` every message posted by the
 * other side. A request's pending reply is removed when it resolves, fails, times out or the endpoint is disposed,
 * so nothing leaks when the other side never answers (a webview reloaded mid-request).
 */
export class IpcEndpoint {
  private seq = 0;
  private readonly pending = new Map<string, { resolve: (r: unknown) => void; reject: (e: Error) => void; timer: ReturnType<typeof setTimeout> }>();
  private readonly handlers = new Map<string, Handler>();
  private disposed = false;

  constructor(private readonly options: IpcEndpointOptions) {}

  /** Replies awaited right now (for tests and diagnostics). */
  get pendingCount(): number {
    return this.pending.size;
  }

  private nextId(): string {
    return `${this.options.side}:${++this.seq}`;
  }

  sendCommand<P>(type: IpcCommand<P>, params: P): void {
    this.post({ id: this.nextId(), method: type.method, params });
  }

  sendNotification<P>(type: IpcNotification<P>, params: P): void {
    this.post({ id: this.nextId(), method: type.method, params });
  }

  sendRequest<P, R>(type: IpcRequest<P, R>, params: P, timeoutMs = this.options.requestTimeoutMs ?? 30_000): Promise<R> {
    if (this.disposed) return Promise.reject(new Error(`${type.method}: endpoint disposed`));
    const id = this.nextId();
    return new Promise<R>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new IpcTimeoutError(type.method, timeoutMs));
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (r: unknown) => void, reject, timer });
      try {
        this.post({ id, method: type.method, params });
      } catch (e) {
        clearTimeout(timer);
        this.pending.delete(id);
        reject(e instanceof Error ? e : new Error(String(e)));
      }
    });
  }

  /** Handles a command or notification; `guard` rejects malformed params (they are dropped, and reported via `onInvalid`). */
  on<P>(type: IpcCommand<P> | IpcNotification<P>, guard: (x: unknown) => x is P, handler: (params: P) => void): void {
    this.handlers.set(type.method, {
      request: false,
      fn: (params) => {
        if (!guard(params)) throw new Error(`${type.method}: malformed params`);
        handler(params);
      },
    });
  }

  /** Answers a request; the handler's result (or thrown error) becomes the reply. */
  onRequest<P, R>(type: IpcRequest<P, R>, guard: (x: unknown) => x is P, handler: (params: P) => R | Promise<R>): void {
    this.handlers.set(type.method, {
      request: true,
      fn: (params) => {
        if (!guard(params)) throw new Error(`${type.method}: malformed params`);
        return handler(params);
      },
    });
  }

  /**
   * Dispatches one posted message. Returns false for anything that is not ours (other extensions' or VS Code's
   * own messages reach a webview's `message` listener too) or has no handler.
   */
  receive(data: unknown): boolean {
    if (this.disposed || !isIpcMessage(data)) return false;
    if (data.completionId !== undefined) {
      const p = this.pending.get(data.completionId);
      if (!p) return false; // timed out already, or not ours
      this.pending.delete(data.completionId);
      clearTimeout(p.timer);
      if (data.error !== undefined) p.reject(new Error(data.error));
      else p.resolve(data.params);
      return true;
    }
    const handler = this.handlers.get(data.method);
    if (!handler) return false;
    const reply = (params: unknown, error?: string) =>
      this.post({ id: this.nextId(), method: data.method, completionId: data.id, ...(error === undefined ? { params } : { error }) });
    let result: unknown;
    try {
      result = handler.fn(data.params);
    } catch (e) {
      // Commands/notifications have no reply channel: surface the error to the caller of receive.
      if (!handler.request) throw e;
      reply(undefined, e instanceof Error ? e.message : String(e));
      return true;
    }
    if (handler.request) {
      Promise.resolve(result).then(
        (r) => reply(r),
        (e: unknown) => reply(undefined, e instanceof Error ? e.message : String(e)),
      );
    }
    return true;
  }

  /** Rejects every pending request and ignores later messages (panel disposed / webview gone). */
  dispose(): void {
    this.disposed = true;
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new Error(`reply ${id}: endpoint disposed`));
    }
    this.pending.clear();
    this.handlers.clear();
  }

  private post(msg: IpcMessage): void {
    if (this.disposed) return;
    this.options.post(msg);
  }
}
