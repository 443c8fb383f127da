/**
 * The typed message transport between the VS Code host and a webview (over postMessage), independent of what the
 * messages mean (protocol/webview.ts defines those). Modelled on GitLens' `webviews/ipc`: every message type is a
 * typed constant (`IpcCommand<P>`, `IpcRequest<P, R>` owning its reply type, `IpcNotification<P>`), and one
 * `IpcEndpoint` per side sends them and dispatches what arrives.
 *
 * Dependency-free and DOM-free, so the module bundles into Node (host) and the browser (webview) alike.
 */

import { errorMessage } from './errors';

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

export const command = <P>(method: string): IpcCommand<P> => ({ kind: 'command', method });
export const request = <P, R>(method: string): IpcRequest<P, R> => ({ kind: 'request', method });
export const notification = <P>(method: string): IpcNotification<P> => ({ kind: 'notification', method });

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

export function isRecord(x: unknown): x is Record<string, unknown> {
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

// ---------------------------------------------------------------------------------------------------------
// Endpoint: one per side, over postMessage
// ---------------------------------------------------------------------------------------------------------

export class IpcTimeoutError extends Error {
  constructor(
    readonly method: string,
    readonly timeoutMs: number,
  ) {
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
  private readonly pending = new Map<
    string,
    { resolve: (r: unknown) => void; reject: (e: Error) => void; timer: ReturnType<typeof setTimeout> }
  >();
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
      reply(undefined, errorMessage(e));
      return true;
    }
    if (handler.request) {
      Promise.resolve(result).then(
        (r) => reply(r),
        (e: unknown) => reply(undefined, errorMessage(e)),
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
