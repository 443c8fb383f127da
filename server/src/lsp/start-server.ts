/**
 * Composition root of the language server (yaml-language-server's yamlServerInit): one init that creates the
 * shared context and composes the handler groups, each in its own module under handlers/:
 *
 * - documents and validation (handlers/validation.ts): open documents, debounced checks, pushed diagnostics;
 * - language features (handlers/features.ts): completion, hover, quick fixes, lenses, outline;
 * - jobs (handlers/jobs.ts): run, cancel, reports, progress;
 * - run insights (handlers/run-insights.ts): last runs, file watching, settings;
 * - custom requests (handlers/custom-requests.ts): `mergeStudio/checkRecipe`.
 *
 * Tests pass an in-memory connection; server.ts passes stdio / ipc. Nothing here throws on user input: handlers
 * are guarded (server-context.ts), malformed protocol input is a protocol error or a logged warning.
 */
import { CodeActionKind, TextDocumentSyncKind, type Connection, type InitializeParams, type InitializeResult } from 'vscode-languageserver';
import * as lsp from '../../../protocol/lsp-ext';
import { RecipeDisk } from '../engine/recipe';
import { registerCustomRequests } from './handlers/custom-requests';
import { registerLanguageFeatures } from './handlers/features';
import { registerJobs, type JobOptions } from './handlers/jobs';
import { registerRunInsights } from './handlers/run-insights';
import { DEFAULT_VALIDATION_DELAY_MS, Validation } from './handlers/validation';
import { clientSupport, ServerContext } from './server-context';

export interface ServerOptions extends JobOptions {
  /** Disk checks and their cache (shared with hover). */
  disk?: RecipeDisk;
  /** Quiet time after an edit before the document is checked (default 150 ms). */
  validationDelayMs?: number;
}

export function startServer(connection: Connection, options: ServerOptions = {}): void {
  const ctx = new ServerContext(connection, options.disk ?? new RecipeDisk());
  const validation = new Validation(ctx, options.validationDelayMs ?? DEFAULT_VALIDATION_DELAY_MS);
  const runs = registerRunInsights(ctx, validation);
  const jobs = registerJobs(ctx, options, runs.attachRun);
  registerLanguageFeatures(ctx);
  registerCustomRequests(ctx, validation);

  connection.onInitialize((params: InitializeParams): InitializeResult => {
    ctx.client = clientSupport(params);
    runs.configure(params.initializationOptions);
    if (!jobs.available) ctx.setHealth('warning', 'Jobs are unavailable: the engine CLI (cli.js) was not found beside the server', false);
    const mergeStudio: lsp.MergeStudioServerCapabilities = {
      protocolVersion: lsp.PROTOCOL_VERSION,
      jobs: jobs.available,
      serverStatus: true,
    };
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
    jobs.initialized();
    runs.initialized();
    ctx.sendStatus();
  });

  connection.onShutdown(() => jobs.dispose());

  ctx.documents.listen(connection, validation, (line) => ctx.warn(line));
  connection.listen();
}
