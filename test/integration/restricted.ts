/**
 * Restricted Mode (an untrusted workspace): the extension still loads (`untrustedWorkspaces: limited`), editing
 * and checking work, and Run Recipe refuses with a message instead of executing models.
 */
import { existsSync } from 'node:fs';
import * as vscode from 'vscode';
import type { CheckRecipeResult } from '../../protocol/lsp-ext';
import type { RunOutcome } from '../../client/src/run';
import { assert, assertEqual, diagCode, diagnosticsOf, pageRequest, runSuite, type TestCase } from './harness';

const file = (...parts: string[]) => vscode.Uri.joinPath(vscode.workspace.workspaceFolders![0]!.uri, ...parts);

const tests: TestCase[] = [
  {
    name: 'the workspace is in Restricted Mode and recipes still get diagnostics',
    timeoutMs: 60_000,
    fn: async () => {
      assertEqual(vscode.workspace.isTrusted, false, 'workspace.isTrusted');
      const doc = await vscode.workspace.openTextDocument(file('broken.merge.yaml'));
      await vscode.window.showTextDocument(doc);
      assertEqual(doc.languageId, 'merge-recipe', 'language');
      await diagnosticsOf(doc.uri, (d) => d.some((x) => diagCode(x) === 'unknown-key'), 45_000);
    },
  },
  {
    name: 'Check Recipe works in Restricted Mode',
    fn: async () => {
      const result = await vscode.commands.executeCommand<CheckRecipeResult>('mergeStudio.checkRecipe', file('broken.merge.yaml'));
      assert(result && result.errorCount > 0, `check: ${JSON.stringify(result)}`);
    },
  },
  {
    name: 'Run Recipe is refused with the reason, and nothing runs',
    ui: [{ toast: 'Running a recipe needs a trusted workspace', button: 'Manage Workspace Trust' }],
    fn: async () => {
      const outcome = await vscode.commands.executeCommand<RunOutcome>('mergeStudio.runRecipe', file('tiny.merge.yaml'));
      assert(outcome.status === 'refused' && outcome.reason === 'untrusted', `outcome: ${JSON.stringify(outcome)}`);
      assert(/trusted workspace/.test(outcome.message), `message: ${outcome.message}`);
      assert(!existsSync(file('out', 'tiny').fsPath), 'output was written');
    },
  },
  {
    name: 'Compute Statistics Shard and Run with Statistics are refused the same way, before asking anything',
    ui: [{ toast: 'Running a recipe needs a trusted workspace', button: 'Manage Workspace Trust' }],
    fn: async () => {
      // The workbench shows one toast per message: let the previous test's be seen, then clear it for these.
      await pageRequest({
        kind: 'selector',
        selector: '.notification-toast:has-text("Running a recipe needs a trusted workspace")',
        timeoutMs: 10_000,
      });
      await vscode.commands.executeCommand('notifications.clearAll');
      const shard = file('out', 'stats', 'shard-0');
      const stats = await vscode.commands.executeCommand<RunOutcome>('mergeStudio.computeStats', file('tiny.merge.yaml'));
      assert(stats.status === 'refused' && stats.reason === 'untrusted', `computeStats: ${JSON.stringify(stats)}`);
      const run = await vscode.commands.executeCommand<RunOutcome>('mergeStudio.runWithStats', file('tiny.merge.yaml'), {
        statsDirs: [shard],
      });
      assert(run.status === 'refused' && run.reason === 'untrusted', `runWithStats: ${JSON.stringify(run)}`);
      assert(!existsSync(shard.fsPath) && !existsSync(file('out', 'tiny').fsPath), 'output was written');
    },
  },
];

export function run(): Promise<void> {
  return runSuite(tests);
}
