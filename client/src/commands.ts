import * as vscode from 'vscode';
import * as lsp from '../../protocol/lsp-ext';
import { PANEL_KINDS, PANELS, type PanelKind } from '../../protocol/panels';
import { errorText, type Ctx, type CtxInit } from './ctx';
import { newRecipe } from './new-recipe';
import { recipeFromArgs, saveIfDirty, displayName } from './recipes';
import { cancelJob, runWithProgress, type JobRequest, type RunOutcome } from './run';
import { reportOfActiveRecipe } from './report-context';
import { pickShardFolders, pickShardJob } from './stats-pickers';

// VS Code passes commands whatever their callers give (menus, lenses, executeCommand): each command checks its own.
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the arguments are untyped at this boundary
export type Cmd = (...args: any[]) => unknown;

/**
 * Commands as factories (rust-analyzer's `createCommands`): a command that talks to the server is built from a
 * context whose client is running by type; the registration starts the server before calling it.
 */
export type CommandFactory = { server: (ctx: CtxInit) => Cmd } | { always: (ctx: Ctx) => Cmd };

export function createCommands(): Record<string, CommandFactory> {
  return {
    'mergeStudio.runRecipe': { server: runRecipe },
    'mergeStudio.computeStats': { server: computeStats },
    'mergeStudio.runWithStats': { server: runWithStats },
    'mergeStudio.checkRecipe': { server: checkRecipe },
    'mergeStudio.cancelJob': { server: cancel },
    'mergeStudio.showReport': { server: showReport },
    ...Object.fromEntries(PANEL_KINDS.map((kind) => [PANELS[kind].command, { server: (ctx: CtxInit) => openPanel(ctx, kind) }])),
    'mergeStudio.newRecipe': { always: () => newRecipe },
    'mergeStudio.restartServer': { always: restartServer },
    'mergeStudio.showOutput': { always: (ctx) => () => ctx.outputChannel.show() },
  };
}

function noRecipe(verb: string): undefined {
  void vscode.window.showWarningMessage(`Merge Studio: open a recipe (*.merge.yaml) to ${verb} it.`);
  return undefined;
}

/**
 * Every job command: the recipe (argument or active editor), a trusted workspace, the recipe saved, then what the
 * job needs from the person (`ask`: undefined when they dismissed it), then the job behind its progress.
 */
async function jobCommand(ctx: CtxInit, arg: unknown, ask: (recipe: vscode.Uri) => Promise<JobRequest | undefined>): Promise<RunOutcome> {
  const uri = recipeFromArgs(arg);
  if (!uri) return noRecipe('run') ?? { status: 'refused', reason: 'no-recipe', message: 'no recipe' };
  // A job loads checkpoints and executes them here; Restricted Mode keeps editing and checking only.
  if (!vscode.workspace.isTrusted) {
    const message =
      'Running a recipe needs a trusted workspace: it loads the model checkpoints the recipe names and runs them on this machine. Editing and checking work in Restricted Mode.';
    void vscode.window.showWarningMessage(`Merge Studio: ${message}`, 'Manage Workspace Trust').then((pick) => {
      if (pick) void vscode.commands.executeCommand('workbench.trust.manage');
    });
    return { status: 'refused', reason: 'untrusted', message };
  }
  if (!(await saveIfDirty(uri))) return { status: 'refused', reason: 'unsaved', message: `${displayName(uri)} could not be saved` };
  const job = await ask(uri);
  return job ? runWithProgress(ctx, uri, job) : { status: 'dismissed' };
}

function runRecipe(ctx: CtxInit): Cmd {
  return (arg?: unknown) => jobCommand(ctx, arg, async () => ({ kind: 'run' }));
}

/** Arguments that skip the pickers (a caller that knows the shard, e.g. a test or a task). */
interface StatsArgs {
  shard?: lsp.ShardSpec;
  outDir?: vscode.Uri | string;
  statsDirs?: (vscode.Uri | string)[];
}
const folderUri = (d: vscode.Uri | string) => (typeof d === 'string' ? vscode.Uri.file(d) : d);

/** Compute Statistics Shard…: one shard of the recipe's statistics (`merge-studio stats --shard I/N --out DIR`). */
function computeStats(ctx: CtxInit): Cmd {
  return (arg?: unknown, given?: StatsArgs) =>
    jobCommand(ctx, arg, async (recipe) => {
      const picked = given?.shard && given.outDir ? { shard: given.shard, outDir: folderUri(given.outDir) } : await pickShardJob(recipe);
      return picked && { kind: 'stats', ...picked };
    });
}

/** Run with Statistics…: the run, reducing shards instead of computing the statistics (`merge-studio run --stats`). */
function runWithStats(ctx: CtxInit): Cmd {
  return (arg?: unknown, given?: StatsArgs) =>
    jobCommand(ctx, arg, async (recipe) => {
      const dirs = given?.statsDirs?.length ? given.statsDirs.map(folderUri) : await pickShardFolders(recipe);
      return dirs?.length ? { kind: 'run-with-stats', statsDirs: dirs } : undefined;
    });
}

function checkRecipe(ctx: CtxInit): Cmd {
  return async (arg?: unknown): Promise<lsp.CheckRecipeResult | undefined> => {
    const uri = recipeFromArgs(arg);
    if (!uri) return noRecipe('check');
    const result = await ctx.client.sendRequest(lsp.checkRecipe, { uri: ctx.client.code2ProtocolConverter.asUri(uri) });
    const name = displayName(uri);
    const plural = (n: number, w: string) => `${n} ${w}${n === 1 ? '' : 's'}`;
    if (result.errorCount + result.warningCount === 0) {
      void vscode.window.showInformationMessage(`Merge Studio: ${name} has no problems.`);
    } else {
      void vscode.window
        .showWarningMessage(
          `Merge Studio: ${name} has ${plural(result.errorCount, 'error')} and ${plural(result.warningCount, 'warning')}.`,
          'Show Problems',
        )
        .then((pick) => (pick ? vscode.commands.executeCommand('workbench.actions.view.problems') : undefined));
    }
    return result;
  };
}

function cancel(ctx: CtxInit): Cmd {
  return async (jobId?: unknown): Promise<lsp.CancelJobResult> => {
    const id = typeof jobId === 'string' ? jobId : ctx.jobs.running?.jobId;
    if (!id) {
      void vscode.window.showInformationMessage('Merge Studio: no job is running.');
      return { cancelled: false };
    }
    const result = await cancelJob(ctx, id);
    if (!result.cancelled) void vscode.window.showInformationMessage(`Merge Studio: job ${id} had already finished.`);
    return result;
  };
}

function showReport(ctx: CtxInit): Cmd {
  return async (jobId?: unknown): Promise<lsp.GetReportResult | undefined> => {
    // From the palette: the active recipe's report (also one a CLI run wrote), else the last job's.
    const id = typeof jobId === 'string' ? jobId : ((await reportOfActiveRecipe()) ?? ctx.jobs.lastReportJob?.jobId);
    if (!id) {
      void vscode.window.showInformationMessage('Merge Studio: no report yet; run a recipe first.');
      return undefined;
    }
    // Pulled by id (the notification carried only a summary), shown in the results panel; a report the panels
    // cannot read (another version) still opens, as its report.json.
    const result = await fetchReport(ctx, id);
    if (!result) return undefined;
    try {
      ctx.panels.show('results', id, result.report);
    } catch (e) {
      ctx.outputChannel.warn(`results panel: ${errorText(e)}; opening ${result.reportPath}`);
      await vscode.window.showTextDocument(await vscode.workspace.openTextDocument(vscode.Uri.file(result.reportPath)), { preview: true });
    }
    return result;
  };
}

/**
 * Open Diagnostics / Open Results (the recipe's code lenses pass `OpenReportPanelArgs`; from the palette, the
 * last job): the report by id through the server, in the panel of that kind.
 */
function openPanel(ctx: CtxInit, kind: PanelKind): Cmd {
  return async (arg?: unknown): Promise<lsp.GetReportResult | undefined> => {
    const given = arg as Partial<lsp.OpenReportPanelArgs> | undefined;
    const id = typeof given?.jobId === 'string' ? given.jobId : ((await reportOfActiveRecipe()) ?? ctx.jobs.lastReportJob?.jobId);
    if (!id) {
      void vscode.window.showInformationMessage('Merge Studio: no report yet; run a recipe first.');
      return undefined;
    }
    const result = await fetchReport(ctx, id);
    if (!result) return undefined;
    ctx.panels.show(kind, id, result.report);
    return result;
  };
}

/** The report of a job through the server; a failure (job gone after a restart, report deleted) is said once. */
async function fetchReport(ctx: CtxInit, jobId: string): Promise<lsp.GetReportResult | undefined> {
  try {
    return await ctx.client.sendRequest(lsp.getReport, { jobId });
  } catch (e) {
    void vscode.window.showWarningMessage(`Merge Studio: the report is not available (${errorText(e)}); run the recipe again.`);
    return undefined;
  }
}

function restartServer(ctx: Ctx): Cmd {
  return async (): Promise<void> => {
    await ctx.restart();
  };
}

/** The disabled variant of a server command, while the server is down. */
function serverDown(ctx: Ctx, command: string): undefined {
  void vscode.window
    .showWarningMessage(`Merge Studio: the language server is not running, so ${command} is unavailable.`, 'Restart Server', 'Show Output')
    .then((pick) => {
      if (pick === 'Restart Server') void ctx.restart().catch(() => undefined);
      else if (pick === 'Show Output') ctx.outputChannel.show();
    });
  return undefined;
}

/** Registers every command once; server commands start the server (if needed) on each call. */
export function registerCommands(ctx: Ctx, factories: Record<string, CommandFactory>): void {
  for (const [name, factory] of Object.entries(factories)) {
    let cmd: Cmd | undefined;
    const handler =
      'always' in factory
        ? factory.always(ctx)
        : async (...args: unknown[]) => {
            // A server that failed to start stays down until Restart Server (rust-analyzer's disabled commands):
            // say that once, with the way out, instead of failing to start again behind every command.
            if (ctx.status.phase === 'failed') return serverDown(ctx, name);
            let init: CtxInit;
            try {
              init = await ctx.withServer();
            } catch {
              return undefined; // Ctx has said why the server did not start; a second notification would only repeat it
            }
            cmd ??= factory.server(init);
            return cmd(...args);
          };
    ctx.pushCleanup(vscode.commands.registerCommand(name, handler));
  }
}
