/**
 * A real LSP client talking to the real server over an in-memory duplex pair (two PassThrough streams), the
 * stylelint connection-manager pattern. Helpers await protocol messages; nothing sleeps. Tests end with
 * `shutdown` (never `exit`, which would call process.exit in the test worker), and never end the streams
 * (the server exits the process when its input ends).
 */
import { readFileSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import { pathToFileURL } from 'node:url';
import {
  createProtocolConnection,
  StreamMessageReader,
  StreamMessageWriter,
  type ProtocolConnection,
} from 'vscode-languageserver-protocol/node';
import {
  DidChangeTextDocumentNotification,
  DidOpenTextDocumentNotification,
  InitializedNotification,
  InitializeRequest,
  PublishDiagnosticsNotification,
  ShutdownRequest,
  WorkDoneProgressCreateRequest,
  RegistrationRequest,
  type ClientCapabilities,
  type Diagnostic,
  type InitializeResult,
  type ProgressToken,
  type WorkDoneProgressBegin,
  type WorkDoneProgressEnd,
  type WorkDoneProgressReport,
} from 'vscode-languageserver-protocol';
import { createConnection } from 'vscode-languageserver/node';
import * as lsp from '../../protocol/lsp-ext';
import { startServer, type ServerOptions } from '../../server/src/lsp';

export type ProgressValue = WorkDoneProgressBegin | WorkDoneProgressReport | WorkDoneProgressEnd;

/** Resolves the first time `predicate` holds for a value pushed to the stream. */
class Stream<T> {
  readonly values: T[] = [];
  private waiters: { predicate: (v: T) => boolean; resolve: (v: T) => void }[] = [];

  push(v: T): void {
    this.values.push(v);
    this.waiters = this.waiters.filter((w) => {
      if (!w.predicate(v)) return true;
      w.resolve(v);
      return false;
    });
  }

  /** The first value matching `predicate`, among those pushed from index `from` on (already seen or still to come). */
  next(predicate: (v: T) => boolean = () => true, from = 0): Promise<T> {
    const hit = this.values.slice(from).find(predicate);
    if (hit !== undefined) return Promise.resolve(hit);
    return new Promise((resolve) => this.waiters.push({ predicate, resolve }));
  }
}

export interface TestClient {
  connection: ProtocolConnection;
  initializeResult: InitializeResult;
  diagnostics: Stream<{ uri: string; version?: number; diagnostics: Diagnostic[] }>;
  progress: Stream<{ token: ProgressToken; value: ProgressValue }>;
  jobFinished: Stream<lsp.JobFinishedParams>;
  serverStatus: Stream<lsp.ServerStatusParams>;
  logs: string[];
  /** didOpen; resolves with the diagnostics published for that version. */
  open(uri: string, text: string, version?: number): Promise<Diagnostic[]>;
  /** Full-text didChange; resolves with the diagnostics published for the new version. */
  change(uri: string, version: number, text: string): Promise<Diagnostic[]>;
  shutdown(): Promise<void>;
}

export const defaultCapabilities: ClientCapabilities = {
  window: { workDoneProgress: true },
  workspace: { didChangeWatchedFiles: { dynamicRegistration: true } },
  textDocument: { completion: { completionItem: { snippetSupport: true } }, hover: { contentFormat: ['markdown'] } },
  experimental: { mergeStudio: { serverStatusNotification: true } satisfies lsp.MergeStudioClientCapabilities },
};

export async function startTestServer(
  options: ServerOptions = {},
  capabilities: ClientCapabilities = defaultCapabilities,
  initializationOptions?: unknown,
): Promise<TestClient> {
  const toServer = new PassThrough();
  const toClient = new PassThrough();
  startServer(createConnection(new StreamMessageReader(toServer), new StreamMessageWriter(toClient)), options);
  return connectClient(new StreamMessageReader(toClient), new StreamMessageWriter(toServer), capabilities, initializationOptions);
}

export async function connectClient(
  reader: StreamMessageReader,
  writer: StreamMessageWriter,
  capabilities: ClientCapabilities = defaultCapabilities,
  initializationOptions?: unknown,
): Promise<TestClient> {
  const connection = createProtocolConnection(reader, writer);
  const diagnostics = new Stream<{ uri: string; version?: number; diagnostics: Diagnostic[] }>();
  const progress = new Stream<{ token: ProgressToken; value: ProgressValue }>();
  const jobFinished = new Stream<lsp.JobFinishedParams>();
  const serverStatus = new Stream<lsp.ServerStatusParams>();
  const logs: string[] = [];
  connection.onNotification(PublishDiagnosticsNotification.type, (p) => diagnostics.push(p));
  connection.onNotification(lsp.jobFinished, (p) => jobFinished.push(p));
  connection.onNotification(lsp.serverStatus, (p) => serverStatus.push(p));
  connection.onNotification('window/logMessage', (p: { message: string }) => {
    logs.push(p.message);
  });
  connection.onRequest(WorkDoneProgressCreateRequest.type, () => undefined);
  connection.onRequest(RegistrationRequest.type, () => undefined);
  // Progress for any token: vscode-jsonrpc dispatches $/progress by token, so listen to the raw notification.
  connection.onNotification('$/progress', (p: { token: ProgressToken; value: ProgressValue }) => progress.push(p));
  connection.listen();

  const initializeResult = await connection.sendRequest(InitializeRequest.type, {
    processId: process.pid,
    rootUri: null,
    capabilities,
    workspaceFolders: null,
    ...(initializationOptions === undefined ? {} : { initializationOptions }),
  });
  await connection.sendNotification(InitializedNotification.type, {});

  const forVersion = (uri: string, version: number) =>
    diagnostics.next((d) => d.uri === uri && d.version === version).then((d) => d.diagnostics);

  return {
    connection,
    initializeResult,
    diagnostics,
    progress,
    jobFinished,
    serverStatus,
    logs,
    async open(uri, text, version = 1) {
      await connection.sendNotification(DidOpenTextDocumentNotification.type, {
        textDocument: { uri, languageId: 'merge-recipe', version, text },
      });
      return forVersion(uri, version);
    },
    async change(uri, version, text) {
      await connection.sendNotification(DidChangeTextDocumentNotification.type, {
        textDocument: { uri, version },
        contentChanges: [{ text }],
      });
      return forVersion(uri, version);
    },
    async shutdown() {
      await connection.sendRequest(ShutdownRequest.type);
      connection.dispose();
    },
  };
}

export function fileUri(file: string): string {
  return pathToFileURL(file).href;
}

export function read(file: string): string {
  return readFileSync(file, 'utf8');
}

/** Text with one `|` caret: the text without it, and the caret's LSP position. */
export function caret(s: string): { text: string; position: { line: number; character: number } } {
  const i = s.indexOf('|');
  const text = s.slice(0, i) + s.slice(i + 1);
  const before = text.slice(0, i).split('\n');
  return { text, position: { line: before.length - 1, character: before[before.length - 1]!.length } };
}
