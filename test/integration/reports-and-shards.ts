/**
 * Extension-host tests of reports made outside the editor and of statistics jobs: after a CLI run the palette offers
 * the report commands (they are hidden while no report exists), and Compute Statistics Shard… / Run with
 * Statistics… run as jobs with progress, the status bar and cancel, like Run Recipe. They run before any job from
 * the editor has finished, which would make the report commands available by itself.
 */
import { spawn } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { GetReportResult } from '../../protocol/lsp-ext';
import type { MergeStudioApi } from '../../client/src/extension';
import type { RunOutcome } from '../../client/src/run';
import { assert, assertEqual, pageAccess, pageRequest, until, type TestCase } from './harness';

export interface SuiteContext {
  file(...parts: string[]): vscode.Uri;
  open(uri: vscode.Uri): Promise<vscode.TextDocument>;
  api(): MergeStudioApi;
  extensionId: string;
}

type Found = { ok: boolean; count: number };

/** The command palette filtered to `label`; whether its row is there (undefined without access to the page). */
async function paletteOffers(label: string, waitMs: number): Promise<boolean | undefined> {
  await vscode.commands.executeCommand('workbench.action.quickOpen', `>${label}`);
  try {
    const row = await pageRequest<Found>({
      kind: 'selector',
      selector: `.quick-input-widget .monaco-list-row:has-text("${label}")`,
      state: 'visible',
      timeoutMs: waitMs,
    });
    // Visible, not just present: a closed palette keeps its last rows in the page, hidden.
    return row?.ok;
  } finally {
    await vscode.commands.executeCommand('workbench.action.closeQuickOpen');
  }
}

const REPORT_COMMANDS = ['Merge Studio: Show Report', 'Merge Studio: Open Correlation Diagnostics', 'Merge Studio: Open Merge Results'];

/** `merge-studio run <recipe>` in a terminal of its own: the extension's bundled CLI, outside the editor. */
function cliRun(extensionPath: string, recipe: string): Promise<void> {
  const bin = path.join(extensionPath, 'bin', 'merge-studio.js');
  const cli = existsSync(bin) ? bin : path.join(extensionPath, 'dist', 'cli.js');
  return new Promise((resolve, reject) => {
    // The extension host's executable is Node (code-server) or Electron (desktop), which runs as Node with this.
    const child = spawn(process.execPath, [cli, 'run', recipe, '--progress', 'plain'], {
      cwd: path.dirname(recipe),
      env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`merge-studio run exited with ${code}: ${stderr}`))));
  });
}

export function reportAndShardTests(s: SuiteContext): TestCase[] {
  const out = () => s.file('out', 'tiny').fsPath;
  // Where Compute Statistics Shard… puts shards by default, so Run with Statistics… finds them.
  const shards = () => [0, 1].map((i) => s.file('stats', `shard-${i}`));
  return [
    {
      name: 'after a CLI run, the palette offers Show Report, Open Correlation Diagnostics and Open Merge Results',
      timeoutMs: 120_000,
      fn: async () => {
        rmSync(out(), { recursive: true, force: true });
        const recipe = s.file('tiny.merge.yaml');
        const doc = await s.open(recipe);
        await s.api().ready();
        // Before: no report anywhere, so the palette hides them (and the palette itself works: Check Recipe is there).
        const checkShown = await paletteOffers('Merge Studio: Check Recipe', 10_000);
        if (pageAccess) {
          assert(checkShown, 'the palette does not offer Merge Studio: Check Recipe on a recipe');
          for (const label of REPORT_COMMANDS) assert(!(await paletteOffers(label, 1_000)), `the palette offers ${label} before any run`);
        }

        await cliRun(vscode.extensions.getExtension(s.extensionId)!.extensionPath, recipe.fsPath);
        assert(existsSync(path.join(out(), 'report.json')), 'the CLI run wrote no report.json');
        await vscode.window.showTextDocument(doc);
        // The server finds the new report.json, its lenses offer it, and the client's context key follows.
        if (pageAccess) {
          for (const label of REPORT_COMMANDS) {
            let shown = false;
            for (let i = 0; i < 10 && !shown; i++) shown = Boolean(await paletteOffers(label, 2_000)); // bounded: about 20 s
            assert(shown, `the palette does not offer ${label} after a CLI run`);
          }
        }
        // From the palette (no argument) the command opens the report the CLI wrote, by its disk report id.
        const shown = await vscode.commands.executeCommand<GetReportResult>('mergeStudio.showReport');
        assertEqual(shown?.reportPath, path.join(out(), 'report.json'), 'report opened by Show Report');
        assert(/^report-/.test(shown!.jobId), `a report found on disk has a report id: ${shown!.jobId}`);
        // The results panel opened beside the recipe: later tests expect one editor group and nothing open.
        await vscode.commands.executeCommand('workbench.action.closeAllEditors');
        await vscode.commands.executeCommand('workbench.action.joinAllGroups');
        rmSync(out(), { recursive: true, force: true });
      },
    },
    {
      name: 'Compute Statistics Shard… and Run with Statistics… run as jobs, with the shard in the status bar',
      timeoutMs: 240_000,
      ui: [
        { toast: 'Merge Studio: wrote statistics shard 1/2 of tiny.merge.yaml', button: 'Run with Statistics…' },
        { toast: 'Merge Studio: no report yet; run a recipe first.' },
        { toast: 'Merge Studio: merged tiny.merge.yaml', button: 'Show Report' },
      ],
      fn: async () => {
        const recipe = s.file('tiny.merge.yaml');
        await s.open(recipe);
        rmSync(s.file('stats').fsPath, { recursive: true, force: true });
        const seen: string[] = [];
        const sub = s.api().onDidChangeStatus(() => seen.push(s.api().status().text));
        try {
          for (const [index, outDir] of shards().entries()) {
            const outcome = await vscode.commands.executeCommand<RunOutcome>('mergeStudio.computeStats', recipe, {
              shard: { index, count: 2 },
              outDir,
            });
            assert(outcome.status === 'finished', `shard ${index}: ${JSON.stringify(outcome)}`);
            assert(outcome.job.ok && outcome.job.kind === 'stats', `shard ${index} job: ${JSON.stringify(outcome.job)}`);
            assertEqual(outcome.job.outputDir, outDir.fsPath, `folder of shard ${index}`);
            assert(existsSync(path.join(outDir.fsPath, 'manifest.json')), `shard ${index} has no manifest`);
          }
        } finally {
          sub.dispose();
        }
        assert(
          seen.some((t) => /Merge Studio: shard 1\/2 (load|probe|statistics|write)\b/.test(t)),
          `the status bar never showed the shard's stage: ${[...new Set(seen)].join(' | ')}`,
        );
        // A shard is no report: with no recipe in front, Show Report says there is none yet (not that one went missing).
        await vscode.commands.executeCommand('workbench.action.closeAllEditors');
        const report = await vscode.commands.executeCommand<GetReportResult | undefined>('mergeStudio.showReport');
        assertEqual(report, undefined, 'Show Report after statistics shards only');

        // Run with Statistics… from its picker: the recipe's two shards are found and ticked; accepting runs them.
        const run = vscode.commands.executeCommand<RunOutcome>('mergeStudio.runWithStats', recipe);
        const picker = await pageRequest<Found>({
          kind: 'selector',
          selector: '.quick-input-widget .monaco-list-row:has-text("shard 1/2")',
          timeoutMs: 20_000,
        });
        let outcome: RunOutcome;
        if (picker) {
          assert(picker.ok, 'the Run with Statistics picker does not list shard 1/2');
          await vscode.commands.executeCommand('workbench.action.acceptSelectedQuickOpenItem');
          outcome = await run;
        } else {
          // Without the page, the picker cannot be answered: close it and pass the folders as a task would.
          await vscode.commands.executeCommand('workbench.action.closeQuickOpen');
          await run;
          outcome = await vscode.commands.executeCommand<RunOutcome>('mergeStudio.runWithStats', recipe, { statsDirs: shards() });
        }
        assert(outcome.status === 'finished', `run with statistics: ${JSON.stringify(outcome)}`);
        assert(outcome.job.ok && outcome.job.kind === 'run-with-stats', `run with statistics job: ${JSON.stringify(outcome.job)}`);
        assertEqual(outcome.job.reportPath, path.join(out(), 'report.json'), 'report of the run with statistics');

        // Compute Statistics Shard… from its pickers, where the page can answer them: the shard as I/N (the
        // suggestion follows the shards there), then the folder beside the recipe, which says a shard is replaced.
        if (pageAccess) {
          const picked = vscode.commands.executeCommand<RunOutcome>('mergeStudio.computeStats', recipe);
          const input = await pageRequest<Found>({
            kind: 'selector',
            selector: '.quick-input-widget:has-text("Merge Studio: Compute Statistics Shard") input',
            timeoutMs: 20_000,
          });
          assert(input?.ok, 'the shard input box did not open');
          await vscode.commands.executeCommand('workbench.action.acceptSelectedQuickOpenItem');
          const folder = await pageRequest<Found>({
            kind: 'selector',
            selector: '.quick-input-widget .monaco-list-row:has-text("a shard is there: replaced")',
            timeoutMs: 20_000,
          });
          assert(folder?.ok, 'the folder picker does not offer the existing shard folder');
          await vscode.commands.executeCommand('workbench.action.acceptSelectedQuickOpenItem');
          const again = await picked;
          assert(again.status === 'finished' && again.job.ok, `shard from the pickers: ${JSON.stringify(again)}`);
          assertEqual(again.job.shard, { index: 0, count: 2 }, 'the suggested shard');
          assertEqual(again.job.outputDir, shards()[0]!.fsPath, 'the suggested folder');
        }
      },
    },
    {
      name: 'Cancel Job stops a statistics shard and leaves no shard behind',
      timeoutMs: 120_000,
      fn: async () => {
        const outDir = s.file('out', 'stats', 'cancelled');
        rmSync(outDir.fsPath, { recursive: true, force: true });
        const run = vscode.commands.executeCommand<RunOutcome>('mergeStudio.computeStats', s.file('tiny.merge.yaml'), {
          shard: { index: 0, count: 1 },
          outDir,
        });
        await until(
          s.api().onDidChangeStatus,
          () => s.api().runningJob(),
          (j) => j?.kind === 'stats',
          60_000,
          'a running statistics job',
        );
        const cancelled = await vscode.commands.executeCommand<{ cancelled: boolean }>('mergeStudio.cancelJob');
        const outcome = await run;
        assert(outcome.status === 'finished', `outcome: ${JSON.stringify(outcome)}`);
        assert(cancelled.cancelled, 'the shard finished before it could be cancelled');
        assert(outcome.job.cancelled && !outcome.job.ok, `job: ${JSON.stringify(outcome.job)}`);
        assert(!existsSync(path.join(outDir.fsPath, 'manifest.json')), 'a cancelled shard left a manifest behind');
        for (const dir of ['stats', path.join('out', 'stats')]) rmSync(s.file(dir).fsPath, { recursive: true, force: true });
        rmSync(out(), { recursive: true, force: true });
        await vscode.commands.executeCommand('notifications.clearAll');
        await vscode.commands.executeCommand('workbench.action.closeAllEditors');
      },
    },
  ];
}
