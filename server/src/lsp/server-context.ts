/**
 * What the handler groups share: the connection, the open documents and their parses, the disk checks, the last
 * runs, what the client can do, and the server's health (the status notification). Also the guards that keep
 * every handler from throwing on user input: an unexpected failure is logged and reported in the status, and the
 * handler degrades to an empty answer (features) or an error response (requests whose caller needs an answer).
 */
import { CodeLensRefreshRequest, ErrorCodes, ResponseError, type Connection, type InitializeParams } from 'vscode-languageserver';
import type { TextDocument } from 'vscode-languageserver-textdocument';
import * as lsp from '../../../protocol/lsp-ext';
import { describeError } from '../engine/errors';
import type { RecipeDisk } from '../engine/recipe';
import { RecipeDocuments } from './documents';
import { isPosition, OpenDocuments } from './open-documents';
import { RunInsights } from './services/run-insights';

/** What the client said it supports, read once at `initialize`. */
export interface ClientSupport {
  statusNotification: boolean;
  workDoneProgress: boolean;
  watcherRegistration: boolean;
  codeLensRefresh: boolean;
  configurationPull: boolean;
  configurationRegistration: boolean;
}

export function clientSupport(params: InitializeParams): ClientSupport {
  const caps = params.capabilities;
  const experimental = caps.experimental as { mergeStudio?: lsp.MergeStudioClientCapabilities } | undefined;
  return {
    statusNotification: experimental?.mergeStudio?.serverStatusNotification === true,
    workDoneProgress: caps.window?.workDoneProgress === true,
    watcherRegistration: caps.workspace?.didChangeWatchedFiles?.dynamicRegistration === true,
    codeLensRefresh: caps.workspace?.codeLens?.refreshSupport === true,
    configurationPull: caps.workspace?.configuration === true,
    configurationRegistration: caps.workspace?.didChangeConfiguration?.dynamicRegistration === true,
  };
}

export class ServerContext {
  readonly documents = new OpenDocuments();
  readonly parses = new RecipeDocuments();
  readonly insights: RunInsights;
  client: ClientSupport = {
    statusNotification: false,
    workDoneProgress: false,
    watcherRegistration: false,
    codeLensRefresh: false,
    configurationPull: false,
    configurationRegistration: false,
  };
  /** The running job's status for the status notification (set by the jobs group). */
  runningJob: () => lsp.RunningJobStatus | null = () => null;
  private health: { health: lsp.ServerHealth; message?: string } = { health: 'ok' };

  constructor(
    readonly connection: Connection,
    readonly disk: RecipeDisk,
  ) {
    this.insights = new RunInsights({ log: (line) => this.log(line) });
  }

  log(line: string): void {
    this.connection.console.log(line);
  }

  warn(line: string): void {
    this.connection.console.warn(line);
  }

  /** Sets the health the status notification reports; `notify: false` before `initialized`, when none may be sent. */
  setHealth(health: lsp.ServerHealth, message?: string, notify = true): void {
    this.health = message === undefined ? { health } : { health, message };
    if (notify) this.sendStatus();
  }

  sendStatus(): void {
    if (!this.client.statusNotification) return;
    const params: lsp.ServerStatusParams = { ...this.health, runningJob: this.runningJob() };
    void this.connection.sendNotification(lsp.serverStatus, params);
  }

  /** Logs an unexpected failure (with its stack, for the output channel only); the server stays up and says so. */
  internalError(where: string, e: unknown): void {
    this.connection.console.error(`${where}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    this.setHealth('warning', `Internal error in ${where}: ${describeError(e)} (details in the output channel)`);
  }

  /** Runs a handler; an unexpected failure is logged and `fallback` answered. ResponseErrors pass through. */
  async guard<T>(where: string, fallback: T, body: () => Promise<T> | T): Promise<T> {
    try {
      return await body();
    } catch (e) {
      if (e instanceof ResponseError) throw e;
      this.internalError(where, e);
      return fallback;
    }
  }

  /** Like guard, for requests whose caller needs an answer: an unexpected failure is an error response. */
  async guardRequest<T>(where: string, body: () => Promise<T> | T): Promise<T> {
    try {
      return await body();
    } catch (e) {
      if (e instanceof ResponseError) throw e;
      this.internalError(where, e);
      throw new ResponseError(ErrorCodes.InternalError, `${where} failed: ${describeError(e)}`);
    }
  }

  refreshLenses(): void {
    if (this.client.codeLensRefresh)
      void this.connection.sendRequest(CodeLensRefreshRequest.type).catch((e: unknown) => this.internalError('refreshing code lenses', e));
  }

  /**
   * The open document a text-document request names, or undefined when it is not open. Params that are not a
   * text-document request (no uri, a position that is not two non-negative integers) are a protocol error.
   */
  documentOf(params: unknown, method: string, withPosition = false): TextDocument | undefined {
    const p = params as { textDocument?: { uri?: unknown }; position?: unknown } | null;
    const uri = p?.textDocument?.uri;
    if (typeof uri !== 'string') throw new ResponseError(ErrorCodes.InvalidParams, `${method}: textDocument.uri must be a string`);
    if (withPosition && !isPosition(p?.position))
      throw new ResponseError(ErrorCodes.InvalidParams, `${method}: position must be { line, character } with non-negative integers`);
    return this.documents.get(uri);
  }
}
