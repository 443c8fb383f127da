/**
 * Composition root of the language server (yaml-language-server's yamlServerInit): receives a connection
 * and its collaborators, wires thin handlers over engine/recipe and the job manager. Tests pass an in-memory
 * connection; server.ts passes stdio / ipc. Nothing here throws on user input: handlers are guarded, log to
 * the connection and degrade to an empty answer or an error response.
 */
import { promises as fs } from 'node:fs';
import {
  CodeActionKind,
  CodeLensRefreshRequest,
  DidChangeConfigurationNotification,
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
import { RunInsights } from './services/run-insights';
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
const WATCHED_GLOBS = ['**/report.json', '**/config.json', '**/preprocessor_config.json', '**/*.safetensors', '**/*.bin', '**/*.index.json', '**/labels.csv', '**/*.{wav,flac,mp3}'];

export function startServer(connection: Connection, options: ServerOptions = {}): void {
  const documents = new TextDocuments(TextDocument);
  const parses = new RecipeDocuments();
  const disk = options.disk ?? new RecipeDisk();
  const launcher = options.launcher === null ? undefined : (options.launcher ?? bundledCliLauncher());
  const preflight = options.preflight ?? (async (file: string) => checkRecipeText(await readRecipeFile(file), file, disk));
  let clientWantsStatus = false;
  let clientHasProgress = false;
  let canRegisterWatchers = false;
  let canRefreshLenses = false;
  let canPullConfiguration = false;
  let canRegisterConfiguration = false;
  let health: { health: lsp.ServerHealth; message?: string } = { health: 'ok' };
  const reporters = new Map<string, WorkDoneProgressReporter>();
  let lastStatusPercent = -1;

  const log = (line: string) => connection.console.log(line);
  /** The last run of each recipe: code lenses, low-correlation warnings, per-layer hovers. */
  const insights = new RunInsights({ log });

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
      if (result.ok && result.reportPath) void guard('run insights', undefined, () => attachRun(job, result.reportPath!));
    },
  });

  /** A finished job's report becomes the recipe's last run: its lenses, warnings and hovers. */
  async function attachRun(job: Job, reportPath: string): Promise<void> {
    const doc = documents.get(job.uri);
    if (!(await insights.attachJob(job.uri, job.recipeFile, job.id, reportPath, doc?.getText()))) return;
    if (doc) await validate(doc);
    refreshLenses();
  }

  const refreshLenses = () => {
    if (canRefreshLenses) void connection.sendRequest(CodeLensRefreshRequest.type).catch((e: unknown) => internalError('refreshing code lenses', e));
  };

  // ---- diagnostics ----

  async function validate(doc: TextDocument): Promise<void> {
    const file = uriToPath(doc.uri);
    const structure = parses.structure(doc);
    let diagnostics: Diagnostic[] = structure.diagnostics as Diagnostic[];
    let lensesChanged = false;
    if (file) {
      const [onDisk, discovered] = await Promise.all([checkDisk(structure, file, disk), insights.discover(doc.uri, file, structure)]);
      lensesChanged = discovered;
      const fromRun = insights.diagnostics(doc.uri, structure);
      diagnostics = sortDiagnostics([...structure.diagnostics, ...onDisk]) as Diagnostic[];
      if (fromRun.length) diagnostics = [...diagnostics, ...fromRun].sort(byStart);
    }
    if (lensesChanged) refreshLenses();
    // A newer version may have arrived while the disk checks ran; its own validation will publish.
    if (documents.get(doc.uri)?.version !== doc.version) return;
    await connection.sendDiagnostics({ uri: doc.uri, version: doc.version, diagnostics });
  }

  const revalidate = (doc: TextDocument) => void guard('diagnostics', undefined, () => validate(doc));

  documents.onDidChangeContent((e) => revalidate(e.document));
  documents.onDidClose((e) => {
    parses.forget(e.document.uri);
    insights.forget(e.document.uri);
    void connection.sendDiagnostics({ uri: e.document.uri, diagnostics: [] });
  });

  connection.onDidChangeWatchedFiles((params) =>
    guard('file watching', undefined, async () => {
      let reports = false;
      for (const change of params.changes) {
        const file = uriToPath(change.uri);
        if (file) disk.cache.invalidate(file);
        if (file?.endsWith('report.json')) reports = true;
      }
      // A run from the command line (or a deleted output folder): look for each recipe's report again.
      if (reports) {
        for (const doc of documents.all()) {
          const file = uriToPath(doc.uri);
          if (file) await insights.discover(doc.uri, file, parses.structure(doc), true);
        }
        refreshLenses();
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
    canRefreshLenses = params.capabilities.workspace?.codeLens?.refreshSupport === true;
    canPullConfiguration = params.capabilities.workspace?.configuration === true;
    canRegisterConfiguration = params.capabilities.workspace?.didChangeConfiguration?.dynamicRegistration === true;
    insights.setThreshold((params.initializationOptions as lsp.MergeStudioSettings | null | undefined)?.lowCorrelationThreshold);
    if (!launcher) health = { health: 'warning', message: 'Jobs are unavailable: the engine CLI (cli.js) was not found beside the server' };
    const mergeStudio: lsp.MergeStudioServerCapabilities = { protocolVersion: lsp.PROTOCOL_VERSION, jobs: jobs.available, serverStatus: true };
    return {
      capabilities: {
        textDocumentSync: TextDocumentSyncKind.Incremental,
        completionProvider: { triggerCharacters: ['/', '[', ','] },
        hoverProvider: true,
        codeActionProvider: { codeActionKinds: [CodeActionKind.QuickFix] },
        codeLensProvider: { resolveProvider: false },
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
    if (canRegisterConfiguration) {
      void connection.client.register(DidChangeConfigurationNotification.type, { section: 'mergeStudio' }).catch((e: unknown) => internalError('registering for configuration changes', e));
    }
    sendStatus();
  });

  // Settings: `mergeStudio.lowCorrelationThreshold`, pushed with the notification or pulled when it comes empty.
  connection.onDidChangeConfiguration((params) =>
    guard('configuration', undefined, async () => {
      let settings = (params.settings as { mergeStudio?: lsp.MergeStudioSettings } | null | undefined)?.mergeStudio;
      if (!settings && canPullConfiguration) settings = ((await connection.workspace.getConfiguration('mergeStudio')) as lsp.MergeStudioSettings | null) ?? undefined;
      if (insights.setThreshold(settings?.lowCorrelationThreshold)) for (const doc of documents.all()) revalidate(doc);
    }),
  );

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
      const structure = parses.structure(doc);
      const base = await hoverRecipe({ parsed: structure.parsed, position: params.position, recipeFile: uriToPath(doc.uri), disk });
      return insights.hover(doc.uri, structure, params.position, base);
    }),
  );

  connection.onCodeAction((params) =>
    guard('code actions', [], () => {
      const doc = documents.get(params.textDocument.uri);
      if (!doc) return [];
      return recipeCodeActions(parses.structure(doc).parsed, doc.uri, params.context.diagnostics);
    }),
  );

  connection.onCodeLens((params) =>
    guard('code lenses', [], () => {
      const doc = documents.get(params.textDocument.uri);
      return doc ? insights.codeLenses(doc.uri, parses.structure(doc)) : [];
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
      // A report found on disk beside an open recipe (its lenses name it by a report id).
      const known = jobs.find(jobId) ? undefined : insights.reportById(jobId);
      if (known) return { jobId, reportPath: known.reportPath, report: known.report };
      throw new ResponseError(ErrorCodes.InvalidParams, describeError(e));
    }
  });

  documents.listen(connection);
  connection.listen();
}

function byStart(a: Diagnostic, b: Diagnostic): number {
  return a.range.start.line - b.range.start.line || a.range.start.character - b.range.start.character;
}

async function readFileOrFail(file: string): Promise<string> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (e) {
    throw new ResponseError(ErrorCodes.InvalidParams, `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? describeError(e)}`);
  }
}
