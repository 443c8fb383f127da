import * as vscode from 'vscode';
import type { RunningJobStatus } from '../../protocol/lsp-ext';
import { createCommands, registerCommands } from './commands';
import { Config } from './config';
import { Ctx } from './ctx';
import { applyRecipeGlobs, isRecipe } from './recipes';
import { ReportContext } from './report-context';

/** What `activate` returns: a small window into the client's state for the extension-host tests. */
export interface MergeStudioApi {
  /** Starts the language server if needed; resolves once it runs. */
  ready(): Promise<void>;
  status(): { text: string; command: string | undefined; visible: boolean };
  /** Fires whenever the status-bar item changes (server state, running job). */
  onDidChangeStatus: vscode.Event<void>;
  runningJob(): RunningJobStatus | null;
}

let ctx: Ctx | undefined;

export function activate(context: vscode.ExtensionContext): MergeStudioApi {
  const c = new Ctx(context);
  ctx = c;
  context.subscriptions.push(c);
  registerCommands(c, createCommands());
  c.pushCleanup(new ReportContext(c.jobs, c.onDidProvideCodeLenses));

  const onDocument = (doc: vscode.TextDocument): void => {
    void applyRecipeGlobs(doc, c.config).catch((e) => c.outputChannel.warn(`recipeGlobs: ${String(e)}`));
    // Starting fails loudly inside Ctx; nothing more to do here.
    if (isRecipe(doc)) c.start().catch(() => undefined);
  };
  vscode.workspace.textDocuments.forEach(onDocument);
  c.pushCleanup(vscode.workspace.onDidOpenTextDocument(onDocument));
  c.pushCleanup(
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (e.affectsConfiguration('mergeStudio.recipeGlobs')) vscode.workspace.textDocuments.forEach(onDocument);
      if (Config.needsRestart(e) && c.client) {
        void vscode.window.showInformationMessage('Merge Studio: the server path changed.', 'Restart Server').then((pick) => {
          if (pick) void vscode.commands.executeCommand('mergeStudio.restartServer');
        });
      }
    }),
  );

  return {
    ready: async () => {
      await c.start();
    },
    status: () => c.status.snapshot(),
    onDidChangeStatus: c.status.onDidChange,
    runningJob: () => c.jobs.running,
  };
}

export async function deactivate(): Promise<void> {
  await ctx?.stop();
  ctx = undefined;
}
