/**
 * The `mergeStudio.hasReport` context key (palette entries Show Report, Open Correlation Diagnostics, Open Merge
 * Results) and the report those commands open when the palette gives them no argument. A report exists when a job
 * run from the editor finished, or when the active recipe's code lenses offer one: the server finds the recipe's
 * `<output>/report.json` however it was made (a CLI run too), so the lenses are the one source of truth.
 */
import * as vscode from 'vscode';
import type { OpenReportPanelArgs } from '../../protocol/lsp-ext';
import { OPEN_PANEL_COMMANDS } from '../../protocol/lsp-ext';
import type { LensesProvided } from './ctx';
import type { JobTracker } from './jobs';
import { isRecipe } from './recipes';

const PANEL_COMMANDS = new Set<string>(Object.values(OPEN_PANEL_COMMANDS));

/** The report id the active recipe's code lenses open, if any. */
export async function reportOfActiveRecipe(): Promise<string | undefined> {
  const doc = vscode.window.activeTextEditor?.document;
  if (!doc || !isRecipe(doc)) return undefined;
  return reportOfLenses((await vscode.commands.executeCommand<vscode.CodeLens[]>('vscode.executeCodeLensProvider', doc.uri, 10)) ?? []);
}

/** The report id a recipe's lenses open (its report panels), if any. */
function reportOfLenses(lenses: readonly vscode.CodeLens[]): string | undefined {
  for (const lens of lenses) {
    const args = lens.command?.arguments?.[0] as Partial<OpenReportPanelArgs> | undefined;
    if (lens.command && PANEL_COMMANDS.has(lens.command.command) && typeof args?.jobId === 'string') return args.jobId;
  }
  return undefined;
}

/** Keeps `mergeStudio.hasReport` true while a report can be opened: after an editor job, or on a recipe that has one. */
export class ReportContext implements vscode.Disposable {
  private readonly disposables: vscode.Disposable[] = [];
  private timer: NodeJS.Timeout | undefined;
  private last: boolean | undefined;

  constructor(
    private readonly jobs: JobTracker,
    onDidProvideCodeLenses: vscode.Event<LensesProvided>,
  ) {
    const soon = () => this.schedule();
    this.disposables.push(vscode.window.onDidChangeActiveTextEditor(soon), jobs.onDidChange(soon));
    // The server refreshes its lenses when it finds a report (a CLI run's, seen by its own file watcher): follow the
    // lenses of the active recipe as they arrive, whatever the order of the two watchers' events.
    this.disposables.push(
      onDidProvideCodeLenses(({ uri, lenses }) => {
        if (uri.toString() !== vscode.window.activeTextEditor?.document.uri.toString()) return;
        void this.set(Boolean(this.jobs.lastReportJob) || Boolean(reportOfLenses(lenses))).catch(() => undefined);
      }),
    );
    // A CLI run writes <output>/report.json; the server's lenses follow it, a moment later.
    const watcher = vscode.workspace.createFileSystemWatcher('**/report.json');
    this.disposables.push(watcher, watcher.onDidCreate(soon), watcher.onDidChange(soon), watcher.onDidDelete(soon));
    this.schedule();
  }

  /** Refreshes after a short delay (the server re-reads the report and recomputes its lenses first). */
  schedule(delayMs = 750): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.refresh().catch(() => undefined), delayMs);
  }

  async refresh(): Promise<boolean> {
    return this.set(Boolean(this.jobs.lastReportJob) || Boolean(await reportOfActiveRecipe()));
  }

  private async set(has: boolean): Promise<boolean> {
    if (has !== this.last) {
      this.last = has;
      await vscode.commands.executeCommand('setContext', 'mergeStudio.hasReport', has);
    }
    return has;
  }

  dispose(): void {
    clearTimeout(this.timer);
    this.disposables.forEach((d) => d.dispose());
  }
}
