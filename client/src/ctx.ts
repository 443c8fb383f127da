import { existsSync } from 'node:fs';
import * as vscode from 'vscode';
import {
  LanguageClient,
  RevealOutputChannelOn,
  State,
  TransportKind,
  type ClientCapabilities,
  type FeatureState,
  type LanguageClientOptions,
  type ServerOptions,
  type StaticFeature,
} from 'vscode-languageclient/node';
import { errorMessage as errorText } from '../../protocol/errors';
import { PANEL_KINDS } from '../../protocol/panels';
import * as lsp from '../../protocol/lsp-ext';
import { Config } from './config';
import { JobTracker } from './jobs';
import { ReportPanels } from './panels/report-panels';
import { LANGUAGE_ID } from './recipes';
import { unsupportedPlatformReason } from '../../protocol/platform';
import { StatusBar } from './status';

/** The code lenses the server gave for one document. */
export interface LensesProvided {
  uri: vscode.Uri;
  lenses: readonly vscode.CodeLens[];
}

/** A context whose client is running, by type: what commands that talk to the server receive. */
export type CtxInit = Ctx & { readonly client: LanguageClient };

/**
 * Owns the language client's lifecycle, the output channel, the status bar, the job tracker and every
 * disposable (rust-analyzer's `Ctx`). The server is started lazily: on the first recipe opened or the first
 * command that needs it, so activation on YAML files (for `recipeGlobs`) costs nothing.
 */
export class Ctx implements vscode.Disposable {
  // vscode-languageclient 11 logs through a LogOutputChannel: `{ log: true }` is required.
  readonly outputChannel = vscode.window.createOutputChannel('Merge Studio', { log: true });
  readonly status = new StatusBar();
  readonly jobs = new JobTracker();
  readonly config = new Config();
  /** The report webview panels; after a reload they re-fetch their report by job id through the server. */
  readonly panels: ReportPanels;
  private _client: LanguageClient | undefined;
  private starting: Promise<LanguageClient> | undefined;
  private clientDisposables: vscode.Disposable[] = [];
  private readonly disposables: vscode.Disposable[] = [];
  private stoppingOnPurpose = false;
  private serverCaps: lsp.MergeStudioServerCapabilities | undefined;
  private readonly lensesProvided = new vscode.EventEmitter<LensesProvided>();
  /** Fires whenever the server's code lenses for a recipe reach the editor (after a run, a report on disk…). */
  readonly onDidProvideCodeLenses = this.lensesProvided.event;

  constructor(readonly extCtx: vscode.ExtensionContext) {
    this.disposables.push(this.outputChannel, this.status, this.jobs, this.lensesProvided);
    this.panels = ReportPanels.register(extCtx, { getReport: async (jobId) => (await this.getReport(jobId)).report }, this.outputChannel);
    this.jobs.onDidChange(() => this.status.update({ runningJob: this.jobs.running }), undefined, this.disposables);
  }

  get client(): LanguageClient | undefined {
    return this._client;
  }

  /** What the server announced under `experimental.mergeStudio`, once running. */
  get capabilities(): lsp.MergeStudioServerCapabilities | undefined {
    return this.serverCaps;
  }

  async getReport(jobId: string): Promise<lsp.GetReportResult> {
    const { client } = await this.withServer();
    return client.sendRequest(lsp.getReport, { jobId });
  }

  /** A new result reaches the report panels that are open, without revealing them. */
  private refreshPanels(job: lsp.JobFinishedParams): void {
    // A statistics shard has no report: the panels keep showing the last run's.
    if (!job.ok || !job.reportPath || !PANEL_KINDS.some((k) => this.panels.panel(k))) return;
    this.getReport(job.jobId).then(
      (r) => this.panels.update(job.jobId, r.report),
      (e) => this.outputChannel.warn(`report of job ${job.jobId}: ${errorText(e)}`),
    );
  }

  pushCleanup(d: vscode.Disposable): void {
    this.disposables.push(d);
  }

  /** Starts the server when needed and narrows the context: the client is non-null and running. */
  async withServer(): Promise<CtxInit> {
    await this.start();
    return this as CtxInit;
  }

  start(): Promise<LanguageClient> {
    if (this._client?.isRunning()) return Promise.resolve(this._client);
    this.starting ??= this.doStart().finally(() => (this.starting = undefined));
    return this.starting;
  }

  async stop(): Promise<void> {
    await this.starting?.catch(() => undefined);
    const client = this._client;
    this._client = undefined;
    this.serverCaps = undefined;
    this.clientDisposables.forEach((d) => d.dispose());
    this.clientDisposables = [];
    if (!client) return;
    this.stoppingOnPurpose = true;
    try {
      if (client.needsStop()) await client.stop(5000);
    } catch (e) {
      this.outputChannel.warn(`stopping the language server: ${errorText(e)}`);
    } finally {
      this.stoppingOnPurpose = false;
      await client.dispose().catch(() => undefined);
    }
    this.jobs.serverLost('The Merge Studio language server was stopped');
    this.status.update({ phase: 'stopped', runningJob: null });
  }

  async restart(): Promise<LanguageClient> {
    await this.stop();
    return this.start();
  }

  private async doStart(): Promise<LanguageClient> {
    this.status.update({ phase: 'starting', message: undefined });
    const module = this.config.serverPath ?? this.extCtx.asAbsolutePath('dist/server.js');
    try {
      if (!existsSync(module))
        throw new Error(`the server module ${module} does not exist (run \`npm run build\`, or fix mergeStudio.server.path)`);
      const unsupported = unsupportedPlatformReason();
      if (unsupported) throw new Error(unsupported);
      // stdio, the transport `merge-studio lsp --stdio` uses for other editors: one transport to test.
      const serverOptions: ServerOptions = {
        run: { module, transport: TransportKind.stdio },
        debug: { module, transport: TransportKind.stdio, options: { execArgv: ['--nolazy', '--inspect=6009'] } },
      };
      const clientOptions: LanguageClientOptions = {
        documentSelector: [
          { language: LANGUAGE_ID, scheme: 'file' },
          { language: LANGUAGE_ID, scheme: 'untitled' },
        ],
        outputChannel: this.outputChannel,
        traceOutputChannel: this.outputChannel,
        // Commands report their own failures with a message that says what to do; no generic pop-ups.
        revealOutputChannelOn: RevealOutputChannelOn.Never,
        markdown: { isTrusted: false, supportHtml: false },
        // Read by the server at start; later changes of the section reach it as didChangeConfiguration.
        initializationOptions: { lowCorrelationThreshold: this.config.lowCorrelationThreshold } satisfies lsp.MergeStudioSettings,
        synchronize: { configurationSection: 'mergeStudio' },
        middleware: {
          // The lenses say whether a recipe has a report (however it was made); the report context key follows them.
          provideCodeLenses: async (document, token, next) => {
            const lenses = await next(document, token);
            if (lenses && !token.isCancellationRequested) this.lensesProvided.fire({ uri: document.uri, lenses });
            return lenses;
          },
        },
      };
      const client = new LanguageClient('mergeStudio', 'Merge Studio', serverOptions, clientOptions);
      client.registerFeature(new MergeStudioFeature());
      this.clientDisposables.push(
        client.onNotification(lsp.serverStatus, (p) => {
          this.jobs.setRunning(p.runningJob);
          this.status.update({ health: p.health, message: p.message });
        }),
        client.onNotification(lsp.jobFinished, (p) => {
          this.jobs.finish(p);
          this.refreshPanels(p);
        }),
        client.onDidChangeState((e) => this.onStateChange(e.newState)),
      );
      this._client = client;
      await client.start();
      this.serverCaps = readServerCaps(client);
      if (this.serverCaps && this.serverCaps.protocolVersion !== lsp.PROTOCOL_VERSION) {
        const msg = `the server speaks protocol ${this.serverCaps.protocolVersion}, this client ${lsp.PROTOCOL_VERSION}`;
        this.outputChannel.warn(msg);
        this.status.update({ health: 'warning', message: msg });
      }
      this.status.update({ phase: 'running' });
      return client;
    } catch (e) {
      const message = errorText(e);
      this.outputChannel.error(`the Merge Studio language server failed to start: ${message}`);
      this.status.update({ phase: 'failed', message });
      const failed = this._client;
      this._client = undefined;
      this.clientDisposables.forEach((d) => d.dispose());
      this.clientDisposables = [];
      await failed?.dispose().catch(() => undefined);
      // VS Code shows nothing when an extension's server dies at start: say it, with a way to the log.
      void vscode.window.showErrorMessage(`Merge Studio: the language server failed to start: ${message}`, 'Show Output').then((pick) => {
        if (pick) this.outputChannel.show();
      });
      throw e;
    }
  }

  private onStateChange(state: State): void {
    if (state === State.Starting) this.status.update({ phase: 'starting' });
    else if (state === State.Running) this.status.update({ phase: 'running' });
    else if (state === State.Stopped) {
      // The client restarts a crashed server by itself (a few times); jobs of the old one are gone either way.
      this.jobs.serverLost('The Merge Studio language server stopped');
      if (!this.stoppingOnPurpose) this.status.update({ phase: 'stopped', message: 'The language server stopped' });
    }
  }

  dispose(): void {
    void this.stop();
    this.disposables.forEach((d) => d.dispose());
  }
}

/** Announces `experimental.mergeStudio` so the server sends `mergeStudio/serverStatus`. */
class MergeStudioFeature implements StaticFeature {
  fillClientCapabilities(capabilities: ClientCapabilities): void {
    const mergeStudio: lsp.MergeStudioClientCapabilities = { serverStatusNotification: true };
    capabilities.experimental = { ...((capabilities.experimental as object | undefined) ?? {}), mergeStudio };
  }
  initialize(): void {}
  getState(): FeatureState {
    return { kind: 'static' };
  }
  clear(): void {}
}

function readServerCaps(client: LanguageClient): lsp.MergeStudioServerCapabilities | undefined {
  const exp = client.initializeResult?.capabilities.experimental as { mergeStudio?: lsp.MergeStudioServerCapabilities } | undefined;
  return exp?.mergeStudio;
}

export { errorText };
