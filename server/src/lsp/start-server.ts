/**
 * Composition root of the language server (yaml-language-server's yamlServerInit): receives a connection
 * and its collaborators, wires thin handlers over engine/recipe and the job manager. Tests pass an in-memory
 * connection; server.ts passes stdio / ipc. Nothing here throws on user input: handlers are guarded, log to
 * the connection and degrade to an empty answer or an error response.
 */
import { promises as fs } from 'node:fs';
import {
  CodeActionKind,
  ErrorCodes,
  LSPErrorCodes,
  ResponseError,
  TextDocuments,
  TextDocumentSyncKind,
  WorkDoneProgressCancelNotification,
  WorkDoneProgressCreateRequest,
  DidChangeWatchedFilesNotification,
  type CancellationToken,
  type Connection,
  type Diagnostic,
  type InitializeParams,
  type InitializeResult,
  type WorkDoneProgressReporter,
} from 'vscode-languageserver';
import { TextDocument } from 'vscode-languageserver-textdocument';
import * as lsp from '../../../protocol/lsp-ext';
import { checkDisk, checkRecipeText, countBySeverity, readRecipeFile, RecipeDisk, Severity, sortDiagnostics, type RecipeDiagnostic } from '../engine/recipe';
import { describeError } from '../engine/errors';
import { RecipeDocuments, uriToPath } from './documents';
import { bundledCliLauncher, JobManager, type Job, type JobLauncher } from './jobs';
import { recipeCodeActions } from './services/code-actions';
import { completeRecipe } from './services/completion';
import { hoverRecipe } from './services/hover';
import { recipeSymbols } from './services/symbols';

export interface ServerOptions {
  /** How jobs start the engine; default: the CLI bundled beside the server. null: jobs unavailable. */
  launcher?: JobLauncher | null;
  /** Disk checks and their cache (shared with hover). */
  disk?: RecipeDisk;
  /**
   * The check a run must pass, of the recipe file on disk. Injected by tests that need a slow check to
   * exercise `$/cancelRequest`; default: every check, as `merge-studio check` does.
   */
  preflight?: (file: string, token: CancellationToken) => Promise<RecipeDiagnostic[]>;
}

/** Files whose change can change a disk diagnostic. */
const WATCHED_GLOBS = ['**/config.json', '**/preprocessor_config.json', '**/*.safetensors', '**/*.bin', '**/*.index.json', '**/labels.csv', '**/*.{wav,flac,mp3}'];

export function startServer(connection: Connection, options: ServerOptions = {}): void {
  const documents = new TextDocuments(TextDocument);
  const parses = new RecipeDocuments();
  const disk = options.disk ?? new RecipeDisk();
  const launcher = options.launcher === null ? undefined : (options.launcher ?? bundledCliLauncher());
  const preflight = options.preflight ?? (async (file: string) => checkRecipeText(await readRecipeFile(file), file, disk));
  let clientWantsStatus = false;
  let clientHasProgress = false;
  let canRegisterWatchers = false;
  let health: { health: lsp.ServerHealth; message?: string } = { health: 'ok' };
  const reporters = new Map<string, WorkDoneProgressReporter>();
  let lastStatusPercent = -1;

  const log = (line: string) => connection.console.log(line);

  const sendStatus = () => {
    if (!clientWantsStatus) return;
    const params: lsp.ServerStatusParams = { ...health, runningJob: jobs.running?.status ?? null };
    void connection.sendNotification(lsp.serverStatus, params);
  };

  /** Logs an unexpected failure; the server stays up and says so in its status. */
  const internalError = (where: string, e: unknown) => {
    connection.console.error(`${where}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    health = { health: 'warning', message: `Internal error in ${where}: ${describeError(e)} (details in the output channel)` };
    sendStatus();
  };

  async function guard<T>(where: string, fallback: T, body: () => Promise<T> | T): Promise<T> {
    try {
      return await body();
    } catch (e) {
      if (e instanceof ResponseError) throw e;
      internalError(where, e);
      return fallback;
    }
  }

  const jobs = new JobManager(launcher, {
    progress(job, percentage, message) {
      reporters.get(job.id)?.report(percentage, message);
      // The status bar needs stages, not every tick.
      if (Math.floor(percentage / 5) !== Math.floor(lastStatusPercent / 5)) {
        lastStatusPercent = percentage;
        sendStatus();
      }
    },
    log(job, line) {
      log(`[${job.id}] ${line}`);
    },
    finished(job, result) {
      const reporter = reporters.get(job.id);
      reporters.delete(job.id);
      reporter?.done();
      lastStatusPercent = -1;
      log(`[${job.id}] ${result.ok ? `finished in ${result.seconds.toFixed(1)} s: ${result.outputDir}` : `${result.cancelled ? 'cancelled' : 'failed'}: ${result.error?.message}`}`);
      void connection.sendNotification(lsp.jobFinished, result);
      sendStatus();
    },
  });

  // ---- diagnostics ----

  async function validate(doc: TextDocument): Promise<void> {
    const file = uriToPath(doc.uri);
    const structure = parses.structure(doc);
    let diagnostics = structure.diagnostics;
    if (file) {
      const onDisk = await checkDisk(structure, file, disk);
      diagnostics = sortDiagnostics([...structure.diagnostics, ...onDisk]);
    }
    // A newer version may have arrived while the disk checks ran; its own validation will publish.
    if (documents.get(doc.uri)?.version !== doc.version) return;
    await connection.sendDiagnostics({ uri: doc.uri, version: doc.version, diagnostics: diagnostics as Diagnostic[] });
  }

  const revalidate = (doc: TextDocument) => void guard('diagnostics', undefined, () => validate(doc));

  documents.onDidChangeContent((e) => revalidate(e.document));
  documents.onDidClose((e) => {
    parses.forget(e.document.uri);
    void connection.sendDiagnostics({ uri: e.document.uri, diagnostics: [] });
  });

  connection.onDidChangeWatchedFiles((params) =>
    guard('file watching', undefined, () => {
      for (const change of params.changes) {
        const file = uriToPath(change.uri);
        if (file) disk.cache.invalidate(file);
      }
      for (const doc of documents.all()) revalidate(doc);
    }),
  );

  // ---- lifecycle ----

  connection.onInitialize((params: InitializeParams): InitializeResult => {
    const experimental = params.capabilities.experimental as { mergeStudio?: lsp.MergeStudioClientCapabilities } | undefined;
    clientWantsStatus = experimental?.mergeStudio?.serverStatusNotification === true;
    clientHasProgress = params.capabilities.window?.workDoneProgress === true;
    canRegisterWatchers = params.capabilities.workspace?.didChangeWatchedFiles?.dynamicRegistration === true;
    if (!launcher) health = { health: 'warning', message: 'Jobs are unavailable: the engine CLI (cli.js) was not found beside the server' };
    const mergeStudio: lsp.MergeStudioServerCapabilities = { protocolVersion: lsp.PROTOCOL_VERSION, jobs: jobs.available, serverStatus: true };
    return {
      capabilities: {
        textDocumentSync: TextDocumentSyncKind.Incremental,
        completionProvider: { triggerCharacters: ['/', '[', ','] },
        hoverProvider: true,
        codeActionProvider: { codeActionKinds: [CodeActionKind.QuickFix] },
        documentSymbolProvider: true,
        experimental: { mergeStudio },
      },
      serverInfo: { name: 'merge-studio' },
    };
  });

  connection.onInitialized(() => {
    // Registered after `initialize`, where vscode-languageserver installs its own handler for server-created
    // progress: ours also cancels jobs reported on a client-created token.
    connection.onNotification(WorkDoneProgressCancelNotification.type, ({ token }) => {
      const job = jobs.byProgressToken(token);
      if (job) job.cancel();
    });
    if (canRegisterWatchers) {
      void connection.client
        .register(DidChangeWatchedFilesNotification.type, { watchers: WATCHED_GLOBS.map((globPattern) => ({ globPattern })) })
        .catch((e: unknown) => internalError('registering file watchers', e));
    }
    sendStatus();
  });

  connection.onShutdown(() => jobs.dispose());

  // ---- features ----

  connection.onCompletion((params) =>
    guard('completion', [], async () => {
      const doc = documents.get(params.textDocument.uri);
      if (!doc) return [];
      return completeRecipe({ parsed: parses.structure(doc).parsed, position: params.position, recipeFile: uriToPath(doc.uri) });
    }),
  );

  connection.onHover((params) =>
    guard('hover', null, async () => {
      const doc = documents.get(params.textDocument.uri);
      if (!doc) return null;
      return hoverRecipe({ parsed: parses.structure(doc).parsed, position: params.position, recipeFile: uriToPath(doc.uri), disk });
    }),
  );

  connection.onCodeAction((params) =>
    guard('code actions', [], () => {
      const doc = documents.get(params.textDocument.uri);
      if (!doc) return [];
      return recipeCodeActions(parses.structure(doc).parsed, doc.uri, params.context.diagnostics);
    }),
  );

  connection.onDocumentSymbol((params) =>
    guard('document symbols', [], () => {
      const doc = documents.get(params.textDocument.uri);
      return doc ? recipeSymbols(parses.structure(doc).parsed) : [];
    }),
  );

  // ---- custom methods (protocol/lsp-ext.ts) ----

  /** Like guard, for requests whose caller needs an answer: an unexpected failure is an error response. */
  async function guardRequest<T>(where: string, body: () => Promise<T>): Promise<T> {
    try {
      return await body();
    } catch (e) {
      if (e instanceof ResponseError) throw e;
      internalError(where, e);
      throw new ResponseError(ErrorCodes.InternalError, `${where} failed: ${describeError(e)}`);
    }
  }

  connection.onRequest(lsp.checkRecipe, (params) =>
    guardRequest('checkRecipe', async (): Promise<lsp.CheckRecipeResult> => {
      const doc = documents.get(params.uri);
      const file = uriToPath(params.uri);
      let diagnostics: RecipeDiagnostic[];
      if (doc) {
        const structure = parses.structure(doc);
        diagnostics = file ? sortDiagnostics([...structure.diagnostics, ...(await checkDisk(structure, file, disk))]) : structure.diagnostics;
      } else {
        if (!file) throw new ResponseError(ErrorCodes.InvalidParams, `${params.uri} is neither open nor a file`);
        diagnostics = await checkRecipeText(await readFileOrFail(file), file, disk);
      }
      const { errors, warnings } = countBySeverity(diagnostics);
      return { uri: params.uri, version: doc?.version ?? null, diagnostics: diagnostics as Diagnostic[], errorCount: errors, warningCount: warnings };
    }),
  );

  connection.onRequest(lsp.runRecipe, async (params, token): Promise<lsp.RunRecipeResult> => {
    const refuse = (data: lsp.RunRecipeErrorData, message: string) => new ResponseError<lsp.RunRecipeErrorData>(LSPErrorCodes.RequestFailed, message, data);
    if (!jobs.available) throw refuse({ reason: 'no-engine' }, 'The engine CLI (cli.js) was not found beside the server');
    const file = uriToPath(params.uri);
    if (!file) throw refuse({ reason: 'not-a-file' }, `${params.uri} is not a file on disk; save it first`);
    const busy = () => {
      const running = jobs.running;
      if (running) throw refuse({ reason: 'job-running', runningJobId: running.id }, `Job ${running.id} is already running`);
    };
    busy();
    let diagnostics: RecipeDiagnostic[];
    try {
      diagnostics = await preflight(file, token);
    } catch (e) {
      throw new ResponseError(LSPErrorCodes.RequestFailed, describeError(e));
    }
    if (token.isCancellationRequested) throw new ResponseError(LSPErrorCodes.RequestCancelled, 'Run cancelled before the job started');
    const errors = diagnostics.filter((d) => d.severity === Severity.Error);
    if (errors.length) throw refuse({ reason: 'recipe-has-errors', diagnostics: errors as Diagnostic[] }, `The recipe has ${errors.length} error${errors.length === 1 ? '' : 's'}`);
    busy();
    const job = await guardRequest('runRecipe', () => startJob(params, file));
    return { jobId: job.id };
  });

  async function startJob(params: lsp.RunRecipeParams, file: string): Promise<Job> {
    let token = params.workDoneToken;
    const options = { ...(params.device ? { device: params.device } : {}), ...(params.threads ? { threads: params.threads } : {}) };
    if (token === undefined && clientHasProgress) {
      // Server-created progress, so clients without their own token (Neovim, Helix…) still see it.
      token = `mergeStudio/job/${Date.now().toString(36)}`;
      await connection.sendRequest(WorkDoneProgressCreateRequest.type, { token });
    }
    const job = jobs.start(params.uri, file, options, token);
    if (token !== undefined) {
      const reporter = connection.window.attachWorkDoneProgress(token);
      reporter.begin(`Merge Studio: ${file.split(/[\\/]/).pop()}`, 0, 'starting', true);
      reporters.set(job.id, reporter);
      // The job may have failed to spawn synchronously.
      if (job.result) {
        reporters.delete(job.id);
        reporter.done();
      }
    }
    sendStatus();
    return job;
  }

  connection.onRequest(lsp.cancelJob, ({ jobId }): lsp.CancelJobResult => {
    const job = jobs.running;
    return { cancelled: job?.id === jobId ? job.cancel() : false };
  });

  connection.onRequest(lsp.getReport, async ({ jobId }): Promise<lsp.GetReportResult> => {
    try {
      const { reportPath, report } = await jobs.report(jobId);
      return { jobId, reportPath, report };
    } catch (e) {
      throw new ResponseError(ErrorCodes.InvalidParams, describeError(e));
    }
  });

  documents.listen(connection);
  connection.listen();
}

async function readFileOrFail(file: string): Promise<string> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (e) {
    throw new ResponseError(ErrorCodes.InvalidParams, `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? describeError(e)}`);
  }
}
