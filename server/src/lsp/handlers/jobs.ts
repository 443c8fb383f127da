/**
 * Jobs: `mergeStudio/runRecipe` (a run, or a run from statistics shards) and `mergeStudio/computeStats` (one shard),
 * after the same checks as `checkRecipe`; `cancelJob`, `getReport`, progress on the client's or a server-created
 * work-done token, and cancellation from the progress UI. Every kind of job goes through one path.
 */
import {
  ErrorCodes,
  LSPErrorCodes,
  ResponseError,
  WorkDoneProgressCancelNotification,
  WorkDoneProgressCreateRequest,
  type CancellationToken,
  type Diagnostic,
  type WorkDoneProgressReporter,
} from 'vscode-languageserver';
import * as path from 'node:path';
import * as lsp from '../../../../protocol/lsp-ext';
import { describeError } from '../../engine/errors';
import { checkRecipeText, readRecipeFile, Severity, type RecipeDiagnostic } from '../../engine/recipe';
import { uriToPath } from '../documents';
import { bundledCliLauncher, JobManager, type Job, type JobLauncher } from '../jobs';
import { resolveAgainstRecipe, shardingProblem, type JobSpec } from '../job-kinds';
import type { ServerContext } from '../server-context';

export interface JobOptions {
  /** How jobs start the engine; default: the CLI bundled beside the server. null: jobs unavailable. */
  launcher?: JobLauncher | null;
  /**
   * The check a run must pass, of the recipe file on disk. Injected by tests that need a slow check to
   * exercise `$/cancelRequest`; default: every check, as `merge-studio check` does.
   */
  preflight?: (file: string, token: CancellationToken) => Promise<RecipeDiagnostic[]>;
}

export interface JobHandlers {
  readonly available: boolean;
  /** After `initialized` (where vscode-languageserver installs its own progress-cancel handler): ours, too. */
  initialized(): void;
  dispose(): void;
}

export function registerJobs(
  ctx: ServerContext,
  options: JobOptions,
  onReport: (job: Job, reportPath: string) => Promise<void>,
): JobHandlers {
  const { connection } = ctx;
  const launcher = options.launcher === null ? undefined : (options.launcher ?? bundledCliLauncher());
  const preflight = options.preflight ?? (async (file: string) => checkRecipeText(await readRecipeFile(file), file, ctx.disk));
  const reporters = new Map<string, WorkDoneProgressReporter>();
  let lastStatusKey = '';

  const jobs = new JobManager(launcher, {
    progress(job, percentage, message) {
      reporters.get(job.id)?.report(percentage, message);
      // The status bar needs stages and each 5 % of a stage's own progress (with its ETA), not every tick.
      const key = `${job.stage}:${Math.floor((job.status.stagePercentage ?? percentage) / 5)}`;
      if (key !== lastStatusKey) {
        lastStatusKey = key;
        ctx.sendStatus();
      }
    },
    log(job, line) {
      ctx.log(`[${job.id}] ${line}`);
    },
    finished(job, result) {
      const reporter = reporters.get(job.id);
      reporters.delete(job.id);
      reporter?.done();
      lastStatusKey = '';
      ctx.log(
        `[${job.id}] ${result.ok ? `finished in ${result.seconds.toFixed(1)} s: ${result.outputDir}` : `${result.cancelled ? 'cancelled' : 'failed'}: ${result.error?.message}`}`,
      );
      void connection.sendNotification(lsp.jobFinished, result);
      ctx.sendStatus();
      if (result.ok && result.reportPath) void ctx.guard('run insights', undefined, () => onReport(job, result.reportPath!));
    },
  });
  ctx.runningJob = () => jobs.running?.status ?? null;

  const refuse = (data: lsp.RunRecipeErrorData, message: string) =>
    new ResponseError<lsp.RunRecipeErrorData>(LSPErrorCodes.RequestFailed, message, data);
  const invalid = (method: string, message: string) => new ResponseError(ErrorCodes.InvalidParams, `mergeStudio/${method}: ${message}`);
  const settings = (p: { device?: lsp.Device; threads?: number }) => ({
    ...(p.device ? { device: p.device } : {}),
    ...(p.threads ? { threads: p.threads } : {}),
  });

  connection.onRequest(lsp.runRecipe, async (params, token): Promise<lsp.RunRecipeResult> => {
    const dirs = params?.statsDirs;
    if (dirs !== undefined && (!Array.isArray(dirs) || dirs.length === 0 || !dirs.every((d) => typeof d === 'string' && d !== '')))
      throw invalid('runRecipe', 'statsDirs must be a non-empty list of folder paths');
    return checkAndStart('runRecipe', params, token, (file) =>
      dirs
        ? { kind: 'run-with-stats', statsDirs: dirs.map((d) => resolveAgainstRecipe(file, d)), ...settings(params) }
        : { kind: 'run', ...settings(params) },
    );
  });

  connection.onRequest(lsp.computeStats, async (params, token): Promise<lsp.RunRecipeResult> => {
    const shard = params?.shard;
    const count = shard?.count;
    const index = shard?.index;
    if (!Number.isInteger(count) || count! < 1 || !Number.isInteger(index) || index! < 0 || index! >= count!)
      throw invalid(
        'computeStats',
        `shard must be { index, count } with count ≥ 1 and index from 0 to count − 1, got ${JSON.stringify(shard)}`,
      );
    if (typeof params.outDir !== 'string' || params.outDir === '') throw invalid('computeStats', 'outDir must be a folder path');
    return checkAndStart('computeStats', params, token, (file) => ({
      kind: 'stats',
      shard: { index: index!, count: count! },
      outDir: resolveAgainstRecipe(file, params.outDir),
      ...settings(params),
    }));
  });

  /** The checks every job passes before it starts (the recipe's own, then the kind's), then the start. */
  async function checkAndStart(
    method: string,
    params: lsp.RunRecipeParams | lsp.ComputeStatsParams,
    token: CancellationToken,
    specFor: (file: string) => JobSpec,
  ): Promise<lsp.RunRecipeResult> {
    if (typeof params?.uri !== 'string') throw invalid(method, 'uri must be a string');
    if (!jobs.available) throw refuse({ reason: 'no-engine' }, 'The engine CLI (cli.js) was not found beside the server');
    const file = uriToPath(params.uri);
    if (!file) throw refuse({ reason: 'not-a-file' }, `${params.uri} is not a file on disk; save it first`);
    const spec = specFor(file);
    const busy = () => {
      const running = jobs.running;
      if (running) throw refuse({ reason: 'job-running', runningJobId: running.id }, `Job ${running.id} is already running`);
    };
    busy();
    let diagnostics: RecipeDiagnostic[];
    let notShardable: ReturnType<typeof shardingProblem>;
    try {
      diagnostics = await preflight(file, token);
      // A recipe with errors is refused for those (below); one without gets the check of its kind of job.
      if (spec.kind !== 'run' && !diagnostics.some((d) => d.severity === Severity.Error))
        notShardable = shardingProblem(await readRecipeFile(file));
    } catch (e) {
      throw new ResponseError(LSPErrorCodes.RequestFailed, describeError(e));
    }
    if (token.isCancellationRequested) throw new ResponseError(LSPErrorCodes.RequestCancelled, 'Run cancelled before the job started');
    const errors = diagnostics.filter((d) => d.severity === Severity.Error);
    if (errors.length)
      throw refuse(
        { reason: 'recipe-has-errors', diagnostics: errors as Diagnostic[] },
        `The recipe has ${errors.length} error${errors.length === 1 ? '' : 's'}`,
      );
    if (notShardable) throw refuse({ reason: 'not-shardable', diagnostics: [notShardable] }, notShardable.message);
    busy();
    const job = await ctx.guardRequest(method, () => startJob(params, file, spec));
    return { jobId: job.id };
  }

  async function startJob(params: lsp.RunRecipeParams | lsp.ComputeStatsParams, file: string, spec: JobSpec): Promise<Job> {
    let token = params.workDoneToken;
    if (token === undefined && ctx.client.workDoneProgress) {
      // Server-created progress, so clients without their own token (Neovim, Helix…) still see it.
      token = `mergeStudio/job/${Date.now().toString(36)}`;
      await connection.sendRequest(WorkDoneProgressCreateRequest.type, { token });
    }
    const job = jobs.start(params.uri, file, spec, token);
    if (token !== undefined) {
      const reporter = connection.window.attachWorkDoneProgress(token);
      reporter.begin(lsp.jobTitle(path.basename(file), spec), 0, 'starting', true);
      reporters.set(job.id, reporter);
      // The job may have failed to spawn synchronously.
      if (job.result) {
        reporters.delete(job.id);
        reporter.done();
      }
    }
    ctx.sendStatus();
    return job;
  }

  connection.onRequest(lsp.cancelJob, (params): lsp.CancelJobResult => {
    const job = jobs.running;
    return { cancelled: job !== undefined && job.id === params?.jobId ? job.cancel() : false };
  });

  connection.onRequest(lsp.getReport, async (params): Promise<lsp.GetReportResult> => {
    const jobId = params?.jobId;
    if (typeof jobId !== 'string') throw new ResponseError(ErrorCodes.InvalidParams, 'mergeStudio/getReport: jobId must be a string');
    try {
      const { reportPath, report } = await jobs.report(jobId);
      return { jobId, reportPath, report };
    } catch (e) {
      // A report found on disk beside an open recipe (its lenses name it by a report id).
      const known = jobs.find(jobId) ? undefined : ctx.insights.reportById(jobId);
      if (known) return { jobId, reportPath: known.reportPath, report: known.report };
      throw new ResponseError(ErrorCodes.InvalidParams, describeError(e));
    }
  });

  return {
    get available() {
      return jobs.available;
    },
    initialized() {
      connection.onNotification(WorkDoneProgressCancelNotification.type, (params) => {
        const job = params && jobs.byProgressToken(params.token);
        if (job) job.cancel();
      });
    },
    dispose: () => jobs.dispose(),
  };
}
