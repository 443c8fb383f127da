/**
 * Merge Studio's custom LSP methods and payloads, defined once and imported by both the VS Code client
 * (client/src) and the language server (server/src/lsp). Modelled on rust-analyzer's `lsp_ext.ts`:
 * every method is a typed `RequestType` / `NotificationType` constant, names are namespaced
 * `mergeStudio/…`, and payloads are plain JSON. Never hand-copy one of these types elsewhere.
 *
 * Only `vscode-languageserver-protocol` (shared by vscode-languageclient and vscode-languageserver) and
 * type-only imports of the engine are allowed here, so the module is safe to bundle into either side.
 */
import { NotificationType, RequestType, type Diagnostic, type WorkDoneProgressParams } from 'vscode-languageserver-protocol';
import type { JobEvent, JobStage, JobSummary } from '../server/src/engine/progress';
import { PANEL_KINDS, PANELS, type PanelKind } from './panels';
import type { PermuteGroup } from '../server/src/engine/pipeline/report';
import type { ShardSpec } from '../server/src/engine/pipeline/shards';

export type { JobEvent, JobStage, JobSummary, ShardSpec };

/** Bumped when a payload changes incompatibly; announced in `ServerCapabilities.experimental.mergeStudio`. */
export const PROTOCOL_VERSION = 1;

/** What the server announces under `InitializeResult.capabilities.experimental.mergeStudio`. */
export interface MergeStudioServerCapabilities {
  protocolVersion: number;
  /** Jobs can be run; false when the server has no engine CLI to spawn. */
  jobs: boolean;
  /** The server sends `mergeStudio/serverStatus` notifications. */
  serverStatus: true;
}

/** What the client may announce under `ClientCapabilities.experimental.mergeStudio`. */
export interface MergeStudioClientCapabilities {
  /** The client shows `mergeStudio/serverStatus`; servers send it only to clients that say so. */
  serverStatusNotification?: boolean;
}

import type { Device } from '../server/src/engine/recipe/schema';

export type { Device };

// ---------------------------------------------------------------------------------------------------------
// Jobs: run / cancel / finished / report
// ---------------------------------------------------------------------------------------------------------

/**
 * Starts align + merge + evaluate for the recipe at `uri`. The job runs the file on disk (clients save
 * first), after the same checks as `mergeStudio/checkRecipe`: a file with errors is refused.
 *
 * Lifecycle:
 * - The request resolves with `{ jobId }` as soon as the job has been checked and started.
 *   It is rejected (ResponseError, `data: RunRecipeErrorData`) when the recipe has errors, when a job is
 *   already running, or when the workspace is untrusted on the client side (the client decides that).
 * - Progress is reported on `workDoneToken` (when given) from start to end of the job, not of the request:
 *   `begin` (title "Merge Studio: <recipe>", cancellable), `report` per stage with message "<stage>: …" and
 *   an overall percentage, `end` with a one-line outcome.
 * - When the job ends (success, failure or cancel), `mergeStudio/jobFinished` is sent.
 *
 * Cancelling, all equivalent:
 * - `mergeStudio/cancelJob` with the job id;
 * - `window/workDoneProgress/cancel` with the `workDoneToken` (the Cancel button of a progress UI);
 * - `$/cancelRequest` for this request while it is still pending (before the job has started).
 * A cancelled job kills its child process; the engine guarantees no partial output is left behind.
 */
export interface RunRecipeParams extends WorkDoneProgressParams {
  /** The recipe document, a `file:` URI. */
  uri: string;
  /** Overrides `runtime.device` of the recipe. */
  device?: Device;
  /** Overrides `runtime.threads` of the recipe. */
  threads?: number;
  /**
   * Statistics shard folders (`mergeStudio/computeStats`, `merge-studio stats --shard`), absolute or relative to the
   * recipe's folder: the job reduces them instead of computing the statistics (`merge-studio run --stats DIR…`).
   */
  statsDirs?: string[];
}
export interface RunRecipeResult {
  jobId: string;
}
/** `ResponseError.data` of a refused `runRecipe`. */
export interface RunRecipeErrorData {
  /** `not-shardable`: statistics shards need `align.method: correlation` and a probe (the diagnostics say where). */
  reason: 'recipe-has-errors' | 'job-running' | 'not-a-file' | 'no-engine' | 'not-shardable';
  /** The recipe's error diagnostics, for `recipe-has-errors` and `not-shardable`. */
  diagnostics?: Diagnostic[];
  /** The job already running, for `job-running`. */
  runningJobId?: string;
}
export const runRecipe = new RequestType<RunRecipeParams, RunRecipeResult, RunRecipeErrorData>('mergeStudio/runRecipe');

/** What a job runs: `run <recipe>`, `stats <recipe> --shard I/N --out DIR`, or `run <recipe> --stats DIR…`. */
export type JobKind = 'run' | 'stats' | 'run-with-stats';

/**
 * Computes one shard of the recipe's statistics into `outDir` (`merge-studio stats <recipe> --shard I/N --out DIR`),
 * for a later `runRecipe` with `statsDirs`. The same lifecycle, progress, cancelling and refusals as `runRecipe`,
 * plus `not-shardable` for a recipe that does not align by correlation over a probe. When the job ends,
 * `jobFinished` has `kind: 'stats'` and `outputDir` the shard folder, and no report.
 */
export interface ComputeStatsParams extends WorkDoneProgressParams {
  uri: string;
  shard: ShardSpec;
  /** The shard folder to write, absolute or relative to the recipe's folder; a shard already there is replaced. */
  outDir: string;
  device?: Device;
  threads?: number;
}
export const computeStats = new RequestType<ComputeStatsParams, RunRecipeResult, RunRecipeErrorData>('mergeStudio/computeStats');

/** The title of a job's progress: the recipe, and what the job does with it when that is not a plain run. */
export function jobTitle(
  recipeName: string,
  job: { kind: 'run' } | { kind: 'stats'; shard: ShardSpec } | { kind: 'run-with-stats'; statsDirs: readonly unknown[] },
): string {
  if (job.kind === 'stats') return `Merge Studio: ${recipeName}, statistics shard ${job.shard.index}/${job.shard.count}`;
  const n = job.kind === 'run-with-stats' ? job.statsDirs.length : 0;
  return `Merge Studio: ${recipeName}${n ? ` from ${n} statistics shard${n === 1 ? '' : 's'}` : ''}`;
}

export interface CancelJobParams {
  jobId: string;
}
export interface CancelJobResult {
  /** False when no such job was running (already finished or unknown id). */
  cancelled: boolean;
}
export const cancelJob = new RequestType<CancelJobParams, CancelJobResult, void>('mergeStudio/cancelJob');

/** Small on purpose: the full report is pulled with `mergeStudio/getReport`. */
export interface JobFinishedParams {
  jobId: string;
  /** The recipe the job ran. */
  uri: string;
  /** What the job ran (servers before statistics jobs omit it: a run). */
  kind?: JobKind;
  /** The shard a `stats` job computed. */
  shard?: ShardSpec;
  ok: boolean;
  /** True when the job ended because it was cancelled (then `ok` is false and `error.code` is 'cancelled'). */
  cancelled: boolean;
  /** The merged output folder, or the shard folder of a `stats` job (present when ok). */
  outputDir?: string;
  /** The report.json written by the engine (present when a run or run-with-stats job is ok). */
  reportPath?: string;
  summary?: JobSummary;
  error?: { code: string; message: string; file?: string };
  /** Wall time of the job on the server side. */
  seconds: number;
}
export const jobFinished = new NotificationType<JobFinishedParams>('mergeStudio/jobFinished');

export interface GetReportParams {
  jobId: string;
}
export interface GetReportResult {
  jobId: string;
  reportPath: string;
  /** The engine's report.json, as written (plain JSON; its shape belongs to the engine). */
  report: unknown;
}
/**
 * Fails with a ResponseError when the id is unknown or the job has no report (it failed or was cancelled).
 * Also answers the ids of reports the server found on disk beside an open recipe (`report-…`, see
 * OpenReportPanelArgs), which stay the same for the same report.json across server restarts.
 */
export const getReport = new RequestType<GetReportParams, GetReportResult, void>('mergeStudio/getReport');

// ---------------------------------------------------------------------------------------------------------
// Checking
// ---------------------------------------------------------------------------------------------------------

/**
 * The diagnostics of a recipe, exactly as pushed with `textDocument/publishDiagnostics` (one implementation):
 * the checks `merge-studio check` runs, plus, for an open recipe with a known last run, that run's warnings.
 * Uses the open document's text when the document is open, else the file on disk (which must be a regular
 * file; anything else is an InvalidParams error naming it). Always complete: semantic (disk) checks included.
 */
export interface CheckRecipeParams {
  uri: string;
}
export interface CheckRecipeResult {
  uri: string;
  /** The document version checked; null when read from disk. */
  version: number | null;
  diagnostics: Diagnostic[];
  errorCount: number;
  warningCount: number;
}
export const checkRecipe = new RequestType<CheckRecipeParams, CheckRecipeResult, void>('mergeStudio/checkRecipe');

// ---------------------------------------------------------------------------------------------------------
// Server status (rust-analyzer's experimental/serverStatus, for the status-bar item)
// ---------------------------------------------------------------------------------------------------------

export type ServerHealth = 'ok' | 'warning' | 'error';

export interface RunningJobStatus {
  jobId: string;
  uri: string;
  /** What the job runs (absent: a run). */
  kind?: JobKind;
  /** The shard a `stats` job computes. */
  shard?: ShardSpec;
  stage: JobStage | null;
  /** Overall percentage 0–100, when known. */
  percentage: number | null;
  /** The current stage's own percentage 0–100, while it reports progress (servers before 0.1 omit it). */
  stagePercentage?: number | null;
  /** Seconds left in the current stage at its measured rate (one ETA per stage), when known. */
  etaSeconds?: number | null;
}

/** Seconds left as a person reads them: "40 s", "3 min", "1 h 5 min". */
export function formatEta(seconds: number): string {
  if (seconds < 60) return `${Math.max(1, Math.round(seconds))} s`;
  const min = Math.round(seconds / 60);
  return min < 60 ? `${min} min` : `${Math.floor(min / 60)} h ${min % 60} min`;
}

export interface ServerStatusParams {
  health: ServerHealth;
  /** One line for the status-bar tooltip (e.g. the last internal error); absent when all is well. */
  message?: string;
  /** The running job, or null when idle. */
  runningJob: RunningJobStatus | null;
}
/** Sent after `initialized`, whenever health changes, and on each job stage change / finish. */
export const serverStatus = new NotificationType<ServerStatusParams>('mergeStudio/serverStatus');

// ---------------------------------------------------------------------------------------------------------
// Run insights: what the last run says, shown in the recipe (code lenses, warnings, hover)
// ---------------------------------------------------------------------------------------------------------

/** Default of the `mergeStudio.lowCorrelationThreshold` setting. */
export const DEFAULT_LOW_CORRELATION_THRESHOLD = 0.2;

/**
 * `InitializeParams.initializationOptions`, and the `mergeStudio` section of the workspace configuration
 * (sent with `workspace/didChangeConfiguration`, or pulled with `workspace/configuration`).
 */
export interface MergeStudioSettings {
  /** A tap whose mean correlation after permutation is below this gets a `low-correlation` warning. */
  lowCorrelationThreshold?: number;
}

/**
 * Client commands the server's code lenses run, with `OpenReportPanelArgs` as their single argument: they open
 * the correlation diagnostics / merge results panel on that report (fetched with `mergeStudio/getReport`).
 */
export const OPEN_PANEL_COMMANDS = Object.fromEntries(PANEL_KINDS.map((k) => [k, PANELS[k].command])) as {
  [K in PanelKind]: (typeof PANELS)[K]['command'];
};
export interface OpenReportPanelArgs {
  /** A job id, or the id of a report found on disk; either is accepted by `mergeStudio/getReport`. */
  jobId: string;
  /** The recipe the report belongs to. */
  uri: string;
}

/** Code of the warning on an `align.permute` entry whose taps stay poorly correlated after permutation. */
export const LOW_CORRELATION_CODE = 'low-correlation';
/** `Diagnostic.data` of a `low-correlation` warning. */
export interface LowCorrelationData {
  group: PermuteGroup;
  threshold: number;
  /** The report the numbers come from (a job id or a disk report id). */
  reportId: string;
  /** The taps below the threshold, in network order. */
  taps: { tap: string; layer: number | null; meanCorrelationAfter: number }[];
}
