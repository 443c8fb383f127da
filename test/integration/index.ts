/**
 * Extension-host tests: a real VS Code (code-server 4.100.3 here and in CI, or a desktop VS Code through
 * @vscode/test-electron) with this extension under development and test/fixtures/workspace open. They go
 * through the public VS Code API only, as a person's editor would: open recipes, read diagnostics, ask for
 * completion and hover, run the commands.
 */
import { existsSync, rmSync } from 'node:fs';
import * as vscode from 'vscode';
import type { CheckRecipeResult, GetReportResult, OPEN_PANEL_COMMANDS, OpenReportPanelArgs } from '../../protocol/lsp-ext';

/** The lens command of the correlation panel (a type-only import: the suite bundles no protocol runtime). */
const OPEN_CORRELATION: (typeof OPEN_PANEL_COMMANDS)['correlation'] = 'mergeStudio.openCorrelationPanel';
import type { MergeStudioApi } from '../../client/src/extension';
import type { RunOutcome } from '../../client/src/run';
import {
  assert,
  assertEqual,
  diagCode,
  diagnosticsOf,
  pageAccess,
  pageCheck,
  pageRequest,
  positionOf,
  runSuite,
  until,
  type PanelInPage,
  type TestCase,
} from './harness';
import { reportAndShardTests } from './reports-and-shards';

const EXTENSION_ID = 'merge-studio.merge-studio';

const ws = () => {
  const folder = vscode.workspace.workspaceFolders?.[0];
  assert(folder, 'no workspace folder is open');
  return folder.uri;
};
const file = (...parts: string[]) => vscode.Uri.joinPath(ws(), ...parts);
const open = async (uri: vscode.Uri) => {
  const doc = await vscode.workspace.openTextDocument(uri);
  await vscode.window.showTextDocument(doc);
  return doc;
};
const errors = (ds: vscode.Diagnostic[]) => ds.filter((d) => d.severity === vscode.DiagnosticSeverity.Error);
const hoverText = (hs: vscode.Hover[]) =>
  hs
    .flatMap((h) => h.contents)
    .map((c) => (typeof c === 'string' ? c : c instanceof vscode.MarkdownString ? c.value : c.value))
    .join('\n');
const completionLabels = (list: vscode.CompletionList) => list.items.map((i) => (typeof i.label === 'string' ? i.label : i.label.label));

let activated: MergeStudioApi | undefined;
/** The job of the tiny recipe's run, once that test passed; the next test looks at its report in the editor. */
let tinyRun: { jobId: string; reportPath: string } | undefined;
const panelTab = (viewType: string) =>
  vscode.window.tabGroups.all
    .flatMap((g) => g.tabs)
    .find((t) => t.input instanceof vscode.TabInputWebview && t.input.viewType.endsWith(viewType));
const tabLabelsNow = () => vscode.window.tabGroups.all.flatMap((g) => g.tabs.map((t) => t.label));
/** The extension's API, once the first test activated it; later tests fail with this message otherwise. */
const api = (): MergeStudioApi => {
  assert(activated, 'the extension did not activate (see the first test)');
  return activated;
};

const tests: TestCase[] = [
  {
    name: 'opening a recipe activates the extension and starts the language server',
    timeoutMs: 60_000,
    fn: async () => {
      const doc = await open(file('tiny.merge.yaml'));
      assertEqual(doc.languageId, 'merge-recipe', 'language of tiny.merge.yaml');
      const ext = vscode.extensions.getExtension<MergeStudioApi>(EXTENSION_ID);
      assert(ext, `extension ${EXTENSION_ID} is not loaded`);
      activated = await ext.activate();
      await activated.ready();
      const status = activated.status();
      assert(status.visible && /Merge Studio/.test(status.text), `status bar: ${JSON.stringify(status)}`);
      // A valid recipe gets no errors (its disk checks run against the fixture models).
      await diagnosticsOf(doc.uri, (ds) => errors(ds).length === 0);
    },
  },
  // Before any job from the editor finishes (that alone would make the report commands available).
  ...reportAndShardTests({ file, open, api, extensionId: EXTENSION_ID }),
  {
    name: 'the language configuration comments lines with #',
    fn: async () => {
      const doc = await open(file('edit.merge.yaml'));
      const editor = vscode.window.activeTextEditor!;
      editor.selection = new vscode.Selection(8, 0, 8, 0);
      // The extension host hears of the edit asynchronously: wait for the document change, not for the command.
      const line9 = () => doc.lineAt(8).text;
      try {
        // Editor actions run on the focused editor: give it focus first (headless, focus can lag behind).
        await vscode.commands.executeCommand('workbench.action.focusActiveEditorGroup');
        await vscode.commands.executeCommand('editor.action.commentLine');
        await until(
          vscode.workspace.onDidChangeTextDocument,
          line9,
          (t) => t === '  # lambda: 0.9',
          5_000,
          'line 9 after Toggle Line Comment',
        );
        await vscode.commands.executeCommand('editor.action.commentLine');
        await until(vscode.workspace.onDidChangeTextDocument, line9, (t) => t === '  lambda: 0.9', 5_000, 'line 9 after toggling back');
      } finally {
        await vscode.commands.executeCommand('workbench.action.files.revert');
      }
    },
  },
  {
    name: 'diagnostics: an unknown key and an out-of-range lambda, each at its exact range',
    fn: async () => {
      const doc = await open(file('broken.merge.yaml'));
      const ds = await diagnosticsOf(
        doc.uri,
        (d) => d.some((x) => diagCode(x) === 'unknown-key') && d.some((x) => diagCode(x) === 'out-of-range'),
      );
      const unknown = ds.find((d) => diagCode(d) === 'unknown-key')!;
      const at = positionOf(doc, 'methd');
      assertEqual(
        [unknown.range.start.line, unknown.range.start.character, unknown.range.end.character],
        [at.line, at.character, at.character + 5],
        'unknown-key range',
      );
      assert(/method/.test(unknown.message), `unknown-key message suggests "method": ${unknown.message}`);
      assertEqual(unknown.source, 'merge-studio', 'diagnostic source');
      const range = ds.find((d) => diagCode(d) === 'out-of-range')!;
      const lam = positionOf(doc, '1.5');
      assertEqual(
        [range.range.start.line, range.range.start.character, range.range.end.character],
        [lam.line, lam.character, lam.character + 3],
        'out-of-range range',
      );
    },
  },
  {
    name: 'diagnostics follow unsaved edits',
    fn: async () => {
      const doc = await open(file('broken.merge.yaml'));
      const at = positionOf(doc, 'methd');
      const edit = new vscode.WorkspaceEdit();
      edit.replace(doc.uri, new vscode.Range(at, at.translate(0, 5)), 'method');
      try {
        assert(await vscode.workspace.applyEdit(edit), 'edit applied');
        await diagnosticsOf(doc.uri, (d) => !d.some((x) => diagCode(x) === 'unknown-key') && d.some((x) => diagCode(x) === 'out-of-range'));
      } finally {
        // Leave the fixture as it is on disk: a later Run would save a dirty editor.
        await vscode.window.showTextDocument(doc);
        await vscode.commands.executeCommand('workbench.action.files.revert');
      }
      assert(!doc.isDirty, 'broken.merge.yaml is still dirty after revert');
      await diagnosticsOf(doc.uri, (d) => d.some((x) => diagCode(x) === 'unknown-key'));
    },
  },
  {
    name: 'completion offers recipe keys and enum values',
    fn: async () => {
      const doc = await open(file('edit.merge.yaml'));
      // After `method: ` under align: the three alignment methods.
      const afterMethod = positionOf(doc, 'method: weights', 'method: '.length);
      const values = completionLabels(
        await vscode.commands.executeCommand<vscode.CompletionList>('vscode.executeCompletionItemProvider', doc.uri, afterMethod),
      );
      for (const v of ['correlation', 'weights', 'none'])
        assert(values.includes(v), `align.method completion lacks ${v}: ${values.join(', ')}`);
      // At the start of the blank line: the top-level keys the recipe does not have yet.
      const keys = completionLabels(
        await vscode.commands.executeCommand<vscode.CompletionList>(
          'vscode.executeCompletionItemProvider',
          doc.uri,
          new vscode.Position(6, 0),
        ),
      );
      for (const k of ['probe', 'evaluate', 'runtime']) assert(keys.includes(k), `top-level completion lacks ${k}: ${keys.join(', ')}`);
      assert(!keys.includes('models'), `top-level completion offers models, which is already there: ${keys.join(', ')}`);
    },
  },
  {
    name: 'hover documents keys and describes model folders',
    fn: async () => {
      const doc = await open(file('edit.merge.yaml'));
      const onKey = hoverText(
        await vscode.commands.executeCommand<vscode.Hover[]>('vscode.executeHoverProvider', doc.uri, positionOf(doc, 'lambda', 2)),
      );
      assert(/anchor/i.test(onKey), `hover on lambda: ${onKey}`);
      const onModel = hoverText(
        await vscode.commands.executeCommand<vscode.Hover[]>('vscode.executeHoverProvider', doc.uri, positionOf(doc, 'hubert-postln-a', 3)),
      );
      // The fixture: HuBERT layout, 3 layers, hidden size 64.
      assert(/hubert/i.test(onModel) && /\b3\b/.test(onModel) && /\b64\b/.test(onModel), `hover on the anchor path: ${onModel}`);
    },
  },
  {
    name: 'Check Recipe reports what the Problems panel shows',
    fn: async () => {
      const uri = file('broken.merge.yaml');
      const shown = await diagnosticsOf(uri, (d) => d.some((x) => diagCode(x) === 'unknown-key'));
      const result = await vscode.commands.executeCommand<CheckRecipeResult>('mergeStudio.checkRecipe', uri);
      assert(result, 'checkRecipe returned nothing');
      assertEqual(result.errorCount, errors(shown).length, 'error count');
      assertEqual(result.diagnostics.map((d) => d.code).sort(), shown.map(diagCode).sort(), 'codes');
      const clean = await vscode.commands.executeCommand<CheckRecipeResult>('mergeStudio.checkRecipe', file('tiny.merge.yaml'));
      assertEqual(clean.errorCount, 0, 'errors in tiny.merge.yaml');
    },
  },
  {
    name: 'Run Recipe refuses a recipe with errors',
    fn: async () => {
      const outcome = await vscode.commands.executeCommand<RunOutcome>('mergeStudio.runRecipe', file('broken.merge.yaml'));
      assert(outcome.status === 'refused' && outcome.reason === 'recipe-has-errors', `outcome: ${JSON.stringify(outcome)}`);
      assert(!existsSync(file('out', 'broken').fsPath), 'a refused run wrote output');
    },
  },
  {
    name: 'Run Recipe runs the tiny recipe to the end, with the job in the status bar, and Show Report opens its report',
    timeoutMs: 180_000,
    // The work-done progress shows as a notification with a Cancel button, then the result message.
    ui: [
      { toast: 'Merge Studio: tiny.merge.yaml: ', button: 'Cancel' },
      { toast: 'Merge Studio: merged tiny.merge.yaml', button: 'Show Report' },
    ],
    fn: async () => {
      const out = file('out', 'tiny').fsPath;
      rmSync(out, { recursive: true, force: true });
      // The refused run of the previous test leaves its progress toast (title and Cancel) on screen a moment after
      // the refusal, and while it is there the workbench shows no other progress toast: this run's would never
      // appear. Wait for it (where the runner can see the page) and clear it, as a person would close it.
      await pageRequest({
        kind: 'selector',
        selector: '.notification-toast:has-text("Merge Studio: broken.merge.yaml"):has(.monaco-button:has-text("Cancel"))',
        timeoutMs: 5_000,
      });
      await vscode.commands.executeCommand('notifications.clearAll');
      await pageRequest({ kind: 'selector', selector: '.notification-toast', state: 'detached', timeoutMs: 5_000 });
      // Every state the status bar goes through, recorded from its change event (no polling).
      const seen: { text: string; command: string | undefined }[] = [];
      const sub = api().onDidChangeStatus(() => seen.push(api().status()));
      const run = vscode.commands.executeCommand<RunOutcome>('mergeStudio.runRecipe', file('tiny.merge.yaml'));
      const outcome = await run;
      assert(outcome.status === 'finished', `outcome: ${JSON.stringify(outcome)}`);
      assert(outcome.job.ok, `job failed: ${JSON.stringify(outcome.job.error)}`);
      assert(outcome.job.reportPath && existsSync(outcome.job.reportPath), `report: ${outcome.job.reportPath}`);
      assert(existsSync(out), `output folder ${out} missing`);
      sub.dispose();
      // Stages come only from the server's serverStatus notifications.
      const stage = /Merge Studio: (load|probe|statistics|assign|permute|self-check|merge|evaluate|write)\b/;
      assert(
        seen.some((x) => x.command === 'mergeStudio.cancelJob' && stage.test(x.text)),
        `the status bar never showed a job stage: ${[...new Set(seen.map((x) => x.text))].join(' | ')}`,
      );
      assert(api().status().command !== 'mergeStudio.cancelJob', `status bar after the job: ${api().status().text}`);
      const report = await vscode.commands.executeCommand<GetReportResult>('mergeStudio.showReport');
      assertEqual(report?.jobId, outcome.job.jobId, 'Show Report shows the last job');
      // The results webview panel opened beside the recipe (focus between editor groups lags in a headless page,
      // so look in every group rather than at the active one).
      const resultsTab = () =>
        vscode.window.tabGroups.all
          .flatMap((g) => g.tabs)
          .find((t) => t.input instanceof vscode.TabInputWebview && t.input.viewType.endsWith('mergeStudio.resultsPanel'));
      const tabLabels = () => vscode.window.tabGroups.all.flatMap((g) => g.tabs.map((t) => t.label));
      await until(vscode.window.tabGroups.onDidChangeTabs, tabLabels, () => resultsTab() !== undefined, 10_000, 'a Merge Results tab');
      assertEqual(resultsTab()?.label, 'Merge Studio: Merge Results', 'results panel title');
      await vscode.window.tabGroups.close(resultsTab()!);
      // The output stays for the next test (which removes it).
      tinyRun = { jobId: outcome.job.jobId, reportPath: outcome.job.reportPath };
    },
  },
  {
    name: 'after the run: code lenses on align and merge open both report panels, which draw their charts',
    timeoutMs: 120_000,
    fn: async () => {
      const out = file('out', 'tiny').fsPath;
      try {
        assert(tinyRun, 'the run test did not leave a report');
        const doc = await open(file('tiny.merge.yaml'));
        // The server attaches the report when the job ends; lenses are asked for as VS Code would.
        const lensesNow = () => vscode.commands.executeCommand<vscode.CodeLens[]>('vscode.executeCodeLensProvider', doc.uri);
        let lenses = await lensesNow();
        for (let i = 0; i < 50 && !lenses.some((l) => l.command?.title.startsWith('Last run:')); i++) {
          await new Promise((r) => setTimeout(r, 100)); // bounded: 5 s at most
          lenses = await lensesNow();
        }
        const titles = lenses.map((l) => `${l.range.start.line}: ${l.command?.title}`);
        const alignLine = positionOf(doc, 'align:').line;
        const mergeLine = positionOf(doc, 'merge:').line;
        assert(
          lenses.some(
            (l) => l.range.start.line === alignLine && /^Last run: correlation \S+ → \S+ over \d+ taps$/.test(l.command?.title ?? ''),
          ),
          `align lenses: ${titles.join(' | ')}`,
        );
        assert(
          lenses.some((l) => l.range.start.line === mergeLine && /^Last run: best permuted /.test(l.command?.title ?? '')),
          `merge lenses: ${titles.join(' | ')}`,
        );
        // Drawn in the editor, one row above `align:` and one above `merge:`, every lens (the page, where the runner can see it).
        const drawnLenses = await pageCheck<{ ok: boolean; count: number }>('code lenses drawn in the editor', {
          kind: 'selector',
          selector: '.monaco-editor .codelens-decoration a',
          timeoutMs: 10_000,
        });
        if (pageAccess)
          assert(
            drawnLenses && drawnLenses.ok && drawnLenses.count === lenses.length,
            `code lenses drawn in the recipe editor (all ${lenses.length}): ${JSON.stringify(drawnLenses)}`,
          );
        const lens = (title: string) => {
          const l = lenses.find((x) => x.command?.title === title);
          assert(l?.command, `no "${title}" lens: ${titles.join(' | ')}`);
          return l.command;
        };
        const diagnostics = lens('Open diagnostics');
        assertEqual(diagnostics.command, OPEN_CORRELATION, 'Open diagnostics command');
        assertEqual((diagnostics.arguments?.[0] as OpenReportPanelArgs).jobId, tinyRun.jobId, 'the lens names the job');

        // Open diagnostics: the correlation panel opens on that job's report and draws its charts.
        const shown = await vscode.commands.executeCommand<GetReportResult>(diagnostics.command, ...(diagnostics.arguments ?? []));
        assertEqual(shown?.reportPath, tinyRun.reportPath, 'report shown by Open diagnostics');
        await until(
          vscode.window.tabGroups.onDidChangeTabs,
          tabLabelsNow,
          () => panelTab('mergeStudio.correlationPanel') !== undefined,
          10_000,
          'a Correlation Diagnostics tab',
        );
        const correlation = await pageCheck<PanelInPage>('the correlation panel draws', {
          kind: 'webview',
          title: 'Correlation diagnostics',
          timeoutMs: 30_000,
        });
        if (correlation) {
          assert(correlation.ok && correlation.panel, `the correlation panel did not finish drawing: ${JSON.stringify(correlation)}`);
          assertEqual(correlation.panel.errors, [], 'errors in the correlation panel');
          const ids = correlation.panel.charts.map((c) => c.id);
          for (const id of ['correlation-by-layer', 'units-moved', 'correlation-heatmap'])
            assert(ids.includes(id), `correlation panel charts: ${ids.join(', ')}`);
          assert(
            correlation.panel.charts.every((c) => c.marks > 0),
            `a correlation chart drew nothing: ${JSON.stringify(correlation.panel.charts)}`,
          );
        }

        // Open results: the results panel, score vs λ and the averages.
        const results = lens('Open results');
        // A lens is clicked in the recipe's editor: it is the active one again (the panel opens beside it).
        await vscode.window.showTextDocument(doc, vscode.ViewColumn.One);
        await vscode.commands.executeCommand(results.command, ...(results.arguments ?? []));
        await until(
          vscode.window.tabGroups.onDidChangeTabs,
          tabLabelsNow,
          () => panelTab('mergeStudio.resultsPanel') !== undefined,
          10_000,
          'a Merge Results tab',
        );
        const drawn = await pageCheck<PanelInPage>('the results panel draws', {
          kind: 'webview',
          title: 'Merge results',
          timeoutMs: 30_000,
        });
        if (drawn) {
          assert(drawn.ok && drawn.panel, `the results panel did not finish drawing: ${JSON.stringify(drawn)}`);
          assertEqual(
            drawn.panel.charts.map((c) => c.id),
            ['score-by-lambda', 'average-score'],
            'results panel charts',
          );
          assert(
            drawn.panel.charts.every((c) => c.marks > 0),
            `a results chart drew nothing: ${JSON.stringify(drawn.panel.charts)}`,
          );
          // The recipe beside it with its lenses drawn, then one picture of the workbench.
          await vscode.commands.executeCommand('notifications.clearAll');
          await vscode.commands.executeCommand('workbench.action.closeSidebar');
          const shot = await pageRequest<{ ok: boolean; file?: string }>({ kind: 'screenshot', name: 'vscode-results-panel.png' });
          assert(shot?.ok, `screenshot: ${JSON.stringify(shot)}`);
        }
      } finally {
        await vscode.commands.executeCommand('workbench.view.explorer');
        for (const t of ['mergeStudio.correlationPanel', 'mergeStudio.resultsPanel']) {
          const tab = panelTab(t);
          if (tab) await vscode.window.tabGroups.close(tab);
        }
        rmSync(out, { recursive: true, force: true });
      }
    },
  },
  {
    name: 'Cancel Job stops a running job and leaves no output',
    timeoutMs: 180_000,
    fn: async () => {
      const out = file('out', 'tiny').fsPath;
      rmSync(out, { recursive: true, force: true });
      const run = vscode.commands.executeCommand<RunOutcome>('mergeStudio.runRecipe', file('tiny.merge.yaml'));
      await until(
        api().onDidChangeStatus,
        () => api().runningJob(),
        (j) => j !== null,
        60_000,
        'a running job',
      );
      const cancelled = await vscode.commands.executeCommand<{ cancelled: boolean }>('mergeStudio.cancelJob');
      const outcome = await run;
      assert(outcome.status === 'finished', `outcome: ${JSON.stringify(outcome)}`);
      if (!cancelled.cancelled) {
        rmSync(out, { recursive: true, force: true });
        throw new Error('the tiny job finished before it could be cancelled: make the cancel test recipe slower');
      }
      assert(outcome.job.cancelled && !outcome.job.ok, `job: ${JSON.stringify(outcome.job)}`);
      assert(!existsSync(out), 'a cancelled job left output behind');
    },
  },
  {
    name: 'New Recipe writes a starter recipe with paths relative to it',
    fn: async () => {
      const target = file('out', 'new.merge.yaml');
      const hf = vscode.Uri.joinPath(ws(), '..', 'hf-reference');
      const written = await vscode.commands.executeCommand<vscode.Uri>('mergeStudio.newRecipe', {
        anchor: vscode.Uri.joinPath(hf, 'hubert-postln-a'),
        other: vscode.Uri.joinPath(hf, 'hubert-postln-a'),
        target,
      });
      try {
        assertEqual(written?.toString(), target.toString(), 'written recipe');
        const doc = vscode.window.activeTextEditor?.document;
        assert(doc && doc.uri.toString() === target.toString(), 'the new recipe is the active editor');
        assertEqual(doc.languageId, 'merge-recipe', 'language of the new recipe');
        assert(doc.getText().includes('anchor: ../../hf-reference/hubert-postln-a'), `anchor path in:\n${doc.getText()}`);
        // The models resolve; what is left to fill in is the probe audio, and the server says so.
        const ds = await diagnosticsOf(target, (d) => d.length > 0);
        const models = ds.filter((d) => d.range.start.line <= 4 && d.severity === vscode.DiagnosticSeverity.Error);
        assertEqual(
          models.map((d) => d.message),
          [],
          'errors on the model lines',
        );
        assert(
          ds.some((d) => d.range.start.line === positionOf(doc, './probe').line),
          `no diagnostic on the missing probe folder: ${JSON.stringify(ds.map((d) => d.message))}`,
        );
      } finally {
        await vscode.commands.executeCommand('workbench.action.closeActiveEditor');
        rmSync(target.fsPath, { force: true });
      }
    },
  },
  {
    name: 'mergeStudio.recipeGlobs opens a matching YAML file as a recipe',
    fn: async () => {
      const uri = file('recipes', 'plain.yaml');
      await vscode.workspace.openTextDocument(uri);
      const doc = await until(
        vscode.workspace.onDidOpenTextDocument,
        () => vscode.workspace.textDocuments.find((d) => d.uri.toString() === uri.toString()),
        (d) => d?.languageId === 'merge-recipe',
        10_000,
        'recipes/plain.yaml as merge-recipe',
      );
      assert(doc, 'document');
      // And the server checks it like any recipe.
      await diagnosticsOf(uri, (ds) => ds.length === 0 || errors(ds).length === 0);
      const result = await vscode.commands.executeCommand<CheckRecipeResult>('mergeStudio.checkRecipe', uri);
      assertEqual(result.errorCount, 0, 'errors in recipes/plain.yaml');
    },
  },
  {
    name: 'Restart Server brings the server back with working features',
    timeoutMs: 60_000,
    fn: async () => {
      await vscode.commands.executeCommand('mergeStudio.restartServer');
      assert(/\$\(check\)|\$\(warning\)/.test(api().status().text), `status after restart: ${api().status().text}`);
      const doc = await open(file('edit.merge.yaml'));
      const hover = hoverText(
        await vscode.commands.executeCommand<vscode.Hover[]>('vscode.executeHoverProvider', doc.uri, positionOf(doc, 'lambda', 2)),
      );
      assert(hover.length > 0, 'no hover after restart');
    },
  },
];

export function run(): Promise<void> {
  return runSuite(tests);
}
