import { randomUUID } from 'node:crypto';
import * as vscode from 'vscode';
import { ResponseError, WorkDoneProgress, type WorkDoneProgressBegin, type WorkDoneProgressReport } from 'vscode-languageclient/node';
import * as lsp from '../../protocol/lsp-ext';
import { errorText, type CtxInit } from './ctx';
import { displayName } from './recipes';

/** How a Run Recipe (or statistics) invocation ended, returned by the command (the extension-host tests read it). */
export type RunOutcome =
  | { status: 'finished'; job: lsp.JobFinishedParams }
  | { status: 'refused'; reason: lsp.RunRecipeErrorData['reason'] | 'untrusted' | 'no-recipe' | 'unsaved'; message: string }
  | { status: 'cancelled-before-start' }
  /** The person closed a picker (shard, folders) without choosing. */
  | { status: 'dismissed' }
  | { status: 'failed'; message: string };

/** The job a command asks for: a run, a run from statistics shards, or one statistics shard. */
export type JobRequest =
  { kind: 'run' } | { kind: 'run-with-stats'; statsDirs: vscode.Uri[] } | { kind: 'stats'; shard: lsp.ShardSpec; outDir: vscode.Uri };

/**
 * Runs a job for a recipe behind a progress notification. The notification is driven by the server's
 * work-done progress on a token this client creates; its Cancel button cancels the request while the job is
 * being started ($/cancelRequest), then the job itself (`mergeStudio/cancelJob`). Resolves when the job ends.
 */
export async function runWithProgress(ctx: CtxInit, uri: vscode.Uri, job: JobRequest = { kind: 'run' }): Promise<RunOutcome> {
  const client = ctx.client;
  const name = displayName(uri);
  return vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: lsp.jobTitle(name, job), cancellable: true },
    async (progress, cancel) => {
      const workDoneToken = `mergeStudio/run/${randomUUID()}`;
      let reported = 0;
      const onProgress = client.onProgress(WorkDoneProgress.type, workDoneToken, (v) => {
        if (v.kind === 'end') return progress.report({ message: v.message });
        const { message, percentage } = v as WorkDoneProgressBegin | WorkDoneProgressReport;
        // VS Code's progress takes increments; the server reports an overall percentage.
        const increment = percentage === undefined ? undefined : Math.max(0, percentage - reported);
        if (percentage !== undefined) reported = Math.max(reported, percentage);
        progress.report({ message, increment });
      });
      let jobId: string | undefined;
      const onCancel = cancel.onCancellationRequested(() => {
        if (jobId) void cancelJob(ctx, jobId);
      });
      try {
        const params = {
          uri: client.code2ProtocolConverter.asUri(uri),
          workDoneToken,
          ...(ctx.config.device ? { device: ctx.config.device } : {}),
          ...(ctx.config.threads ? { threads: ctx.config.threads } : {}),
        };
        const started =
          job.kind === 'stats'
            ? await client.sendRequest(lsp.computeStats, { ...params, shard: job.shard, outDir: job.outDir.fsPath }, cancel)
            : await client.sendRequest(
                lsp.runRecipe,
                job.kind === 'run-with-stats' ? { ...params, statsDirs: job.statsDirs.map((d) => d.fsPath) } : params,
                cancel,
              );
        // The client resolves a request cancelled by the token with undefined.
        if (!started) return { status: 'cancelled-before-start' };
        jobId = started.jobId;
        ctx.outputChannel.info(`job ${jobId} started: ${uri.fsPath}`);
        if (!ctx.jobs.running)
          ctx.jobs.setRunning({
            jobId,
            uri: params.uri,
            kind: job.kind,
            ...(job.kind === 'stats' ? { shard: job.shard } : {}),
            stage: null,
            percentage: null,
          });
        if (cancel.isCancellationRequested) void cancelJob(ctx, jobId);
        const finished = await ctx.jobs.waitFor(jobId);
        announce(ctx, finished);
        return { status: 'finished', job: finished };
      } catch (e) {
        if (e instanceof vscode.CancellationError) return { status: 'cancelled-before-start' };
        if (e instanceof ResponseError && isRunError(e.data)) return refused(uri, e.message, e.data);
        const message = errorText(e);
        ctx.outputChannel.error(`running ${uri.fsPath}: ${message}`);
        void vscode.window.showErrorMessage(`Merge Studio: running ${name} failed: ${message}`, 'Show Output').then((pick) => {
          if (pick) ctx.outputChannel.show();
        });
        return { status: 'failed', message };
      } finally {
        onProgress.dispose();
        onCancel.dispose();
      }
    },
  );
}

export async function cancelJob(ctx: CtxInit, jobId: string): Promise<lsp.CancelJobResult> {
  try {
    return await ctx.client.sendRequest(lsp.cancelJob, { jobId });
  } catch (e) {
    ctx.outputChannel.error(`cancelling job ${jobId}: ${errorText(e)}`);
    return { cancelled: false };
  }
}

function isRunError(data: unknown): data is lsp.RunRecipeErrorData {
  return typeof data === 'object' && data !== null && typeof (data as { reason?: unknown }).reason === 'string';
}

/** A refused run says why and offers the next step. */
function refused(uri: vscode.Uri, serverMessage: string, data: lsp.RunRecipeErrorData): RunOutcome {
  const name = displayName(uri);
  let message: string;
  let action: [string, () => unknown] | undefined;
  switch (data.reason) {
    case 'recipe-has-errors': {
      const n = data.diagnostics?.length ?? 0;
      message = `${name} has ${n === 1 ? '1 error' : `${n} errors`}; fix ${n === 1 ? 'it' : 'them'} before running.`;
      action = ['Show Problems', () => vscode.commands.executeCommand('workbench.actions.view.problems')];
      break;
    }
    case 'job-running':
      message = `A job is already running${data.runningJobId ? ` (${data.runningJobId})` : ''}; cancel it or wait for it to finish.`;
      action = ['Cancel Job', () => vscode.commands.executeCommand('mergeStudio.cancelJob', data.runningJobId)];
      break;
    case 'not-a-file':
      message = `${name} is not a file on disk: save it to run it.`;
      break;
    case 'no-engine':
      message = `The merge engine is not available: ${serverMessage}`;
      break;
    case 'not-shardable': {
      // Not a published diagnostic (the recipe itself is fine for a run): show the place in the recipe.
      message = `${name}: ${serverMessage}.`;
      const at = data.diagnostics?.[0]?.range;
      if (at)
        action = [
          'Show align.method',
          () =>
            vscode.window.showTextDocument(uri, {
              selection: new vscode.Range(at.start.line, at.start.character, at.end.line, at.end.character),
            }),
        ];
      break;
    }
    default:
      message = serverMessage;
  }
  const show = vscode.window.showWarningMessage(`Merge Studio: ${message}`, ...(action ? [action[0]] : []));
  void show.then((pick) => (pick && action ? action[1]() : undefined));
  return { status: 'refused', reason: data.reason, message };
}

/** One message per finished job; not awaited, so the command resolves when the job does. */
function announce(ctx: CtxInit, job: lsp.JobFinishedParams): void {
  const name = displayName(job.uri);
  if (job.ok && job.kind === 'stats') {
    const shard = job.shard ? ` ${job.shard.index}/${job.shard.count}` : '';
    ctx.outputChannel.info(`job ${job.jobId} wrote statistics shard${shard} in ${job.seconds.toFixed(1)} s: ${job.outputDir ?? ''}`);
    void vscode.window
      .showInformationMessage(
        `Merge Studio: wrote statistics shard${shard} of ${name} in ${job.seconds.toFixed(1)} s.`,
        'Run with Statistics…',
        'Reveal Folder',
      )
      .then((pick) => {
        if (pick === 'Run with Statistics…') return vscode.commands.executeCommand('mergeStudio.runWithStats', vscode.Uri.parse(job.uri));
        if (pick === 'Reveal Folder' && job.outputDir)
          return vscode.commands.executeCommand('revealFileInOS', vscode.Uri.file(job.outputDir));
        return undefined;
      });
  } else if (job.ok) {
    ctx.outputChannel.info(`job ${job.jobId} finished in ${job.seconds.toFixed(1)} s: ${job.outputDir ?? ''}`);
    void vscode.window
      .showInformationMessage(`Merge Studio: merged ${name} in ${job.seconds.toFixed(1)} s.`, 'Show Report', 'Reveal Output')
      .then((pick) => {
        if (pick === 'Show Report') return vscode.commands.executeCommand('mergeStudio.showReport', job.jobId);
        if (pick === 'Reveal Output' && job.outputDir)
          return vscode.commands.executeCommand('revealFileInOS', vscode.Uri.file(job.outputDir));
        return undefined;
      });
  } else if (job.cancelled) {
    ctx.outputChannel.info(`job ${job.jobId} cancelled`);
    void vscode.window.showInformationMessage(`Merge Studio: ${name} was cancelled; nothing was written.`);
  } else {
    const err = job.error ? `${job.error.message}${job.error.file ? ` (${job.error.file})` : ''}` : 'unknown error';
    ctx.outputChannel.error(`job ${job.jobId} failed: ${job.error?.code ?? ''} ${err}`);
    // The file the engine names (the recipe, a shard's manifest, a checkpoint) is one click away.
    const file = job.error?.file;
    const actions = file ? ['Open File', 'Show Output'] : ['Show Output'];
    void vscode.window.showErrorMessage(`Merge Studio: ${name} failed: ${err}`, ...actions).then((pick) => {
      if (pick === 'Open File' && file)
        void vscode.window.showTextDocument(vscode.Uri.file(file)).then(undefined, () => ctx.outputChannel.show());
      else if (pick) ctx.outputChannel.show();
    });
  }
}
