/**
 * The last run in the recipe, over the real protocol: code lenses on align / merge, low-correlation warnings on
 * the `align.permute` entries at their exact ranges, per-layer hovers; from a report on disk and from a job of
 * the server; cleared by edits that change what the run ran, kept by those that do not.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  CodeLensRefreshRequest,
  CodeLensRequest,
  DidChangeConfigurationNotification,
  DidChangeWatchedFilesNotification,
  FileChangeType,
  HoverRequest,
  type CodeLens,
  type Diagnostic,
  type MarkupContent,
} from 'vscode-languageserver-protocol';
import * as lsp from '../../protocol/lsp-ext';
import type { MergeReport } from '../../server/src/engine/pipeline/report';
import { ENGINE_MALLOC_ENV, engineProcessEnv } from '../../server/src/engine/process-env';
import { diskReportId } from '../../server/src/lsp/services/run-insights';
import { defaultCapabilities, fileUri, startTestServer, type TestClient } from './harness';

const fixtures = path.join(__dirname, '..', 'fixtures');
const models = path.join(fixtures, 'recipes', 'models');
const realReport = readFileSync(path.join(fixtures, 'reports', 'speech-music.report.json'), 'utf8');
const reportEngine = path.join(__dirname, 'fixtures', 'report-engine.mjs');
/**
 * The example run ends above correlation 0.3 on every tap, so the default threshold (0.2) warns about nothing
 * (tested below); 0.35 catches its weakest CNN and attention taps.
 */
const THRESHOLD = 0.35;
const settings: lsp.MergeStudioSettings = { lowCorrelationThreshold: THRESHOLD };

/** The run's scores as the lenses and hovers print them, from the per-task rows: `0.537 (λ 0.7)`. */
const printed = (() => {
  const rows = (JSON.parse(realReport) as MergeReport).evaluation!.rows;
  const average = (variant: string, lambda: number | null) => {
    const of = rows.filter((r) => r.variant === variant && r.lambda === lambda);
    return of.reduce((a, r) => a + r.score, 0) / of.length;
  };
  const best = (variant: string) => {
    const [lambda, avg] = [0.3, 0.5, 0.7].map((l) => [l, average(variant, l)] as const).reduce((b, p) => (p[1] > b[1] ? p : b));
    return `${avg.toFixed(3)} (λ ${lambda})`;
  };
  return {
    permuted: best('permuted'),
    unaligned: best('unaligned'),
    anchor: average('anchor', null).toFixed(3),
    other: average('other', null).toFixed(3),
  };
})();

/** Line numbers (0-based) below are those of this text. */
const RECIPE = [
  '# speech × music, small',
  'version: 1',
  'name: speech-music',
  'models:',
  `  anchor: ${path.join(models, 'tiny-a')}`,
  `  other: ${path.join(models, 'tiny-b')}`,
  'probe:',
  `  audio: [${path.join(fixtures, 'recipes', 'data', 'probe')}]`,
  '  max_seconds: 20',
  '  segment_seconds: 1',
  'align:',
  '  method: correlation',
  '  permute: [cnn, attention, ffn]',
  '  heads: reorder',
  'merge:',
  '  method: linear',
  '  lambda: [0.5, 0.4]',
  '  sweep: [0.3, 0.5, 0.7]',
  'output: ./out',
  '',
].join('\n');

let dir: string;
let recipeFile: string;
let uri: string;
let client: TestClient;

const sha = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');
const range = (line: number, start: number, end: number) => ({ start: { line, character: start }, end: { line, character: end } });
const low = (ds: Diagnostic[]) => ds.filter((d) => d.code === lsp.LOW_CORRELATION_CODE);
const lenses = async (): Promise<CodeLens[]> =>
  (await client.connection.sendRequest(CodeLensRequest.type, { textDocument: { uri } })) ?? [];
const hover = async (line: number, character: number): Promise<string | null> => {
  const h = await client.connection.sendRequest(HoverRequest.type, { textDocument: { uri }, position: { line, character } });
  return h ? (h.contents as MarkupContent).value : null;
};

/** Writes the recipe and, beside it, the real report addressed to it (path and hash of `ranText`). */
function writeRun(recipeText: string, reportOverrides: Partial<MergeReport> = {}, ranText = recipeText): string {
  writeFileSync(recipeFile, recipeText);
  const report = { ...(JSON.parse(realReport) as MergeReport), recipe: { file: recipeFile, sha256: sha(ranText) }, ...reportOverrides };
  mkdirSync(path.join(dir, 'out'), { recursive: true });
  const reportPath = path.join(dir, 'out', 'report.json');
  writeFileSync(reportPath, JSON.stringify(report));
  return reportPath;
}

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'ms-insights-'));
  recipeFile = path.join(dir, 'speech-music.merge.yaml');
  uri = fileUri(recipeFile);
});
afterEach(async () => {
  await client.shutdown();
  rmSync(dir, { recursive: true, force: true });
});

describe('a report on disk beside the recipe', () => {
  beforeEach(async () => {
    client = await startTestServer({ launcher: null }, undefined, settings);
  });

  it('warns on the permute entries whose taps stay below the threshold, at their exact ranges, naming the taps', async () => {
    const reportPath = writeRun(RECIPE);
    const warnings = low(await client.open(uri, RECIPE));
    expect(warnings.map((d) => d.range)).toEqual([range(12, 12, 15), range(12, 17, 26)]);
    expect(warnings.every((d) => d.severity === 2 && d.source === 'merge-studio')).toBe(true);
    const [cnn, attention] = warnings.map((d) => d.data as lsp.LowCorrelationData);
    expect(cnn).toMatchObject({ group: 'cnn', threshold: THRESHOLD, reportId: diskReportId(reportPath) });
    expect(cnn!.taps.map((t) => t.tap)).toEqual(['conv.4', 'conv.5']);
    expect(attention!.taps.map((t) => t.tap)).toEqual(['layer.0.attn.v', 'layer.1.attn.v', 'layer.2.attn.v', 'layer.3.attn.v']);
    const after = (tap: string) => (JSON.parse(realReport) as MergeReport).align.taps.find((t) => t.tap === tap)!.meanCorrelationAfter;
    expect(cnn!.taps.map((t) => t.meanCorrelationAfter)).toEqual([after('conv.4'), after('conv.5')]);
    expect(warnings[0]!.message).toMatch(
      /^Last run: 2 of 7 CNN taps stay below correlation 0\.35 after permutation \(conv\.4 0\.33, conv\.5 0\.34\): /,
    );
  });

  it('checkRecipe answers the pushed diagnostics, run-insight warnings included (one diagnosticsFor)', async () => {
    writeRun(RECIPE);
    const pushed = await client.open(uri, RECIPE);
    expect(low(pushed)).toHaveLength(2);
    const answered = await client.connection.sendRequest(lsp.checkRecipe, { uri });
    expect(answered.diagnostics).toEqual(pushed);
    expect(answered.warningCount).toBe(pushed.filter((d) => d.severity === 2).length);
  });

  it('code lenses on align and merge, short and the button first: panels, correlation before → after, worst tap, scores', async () => {
    const reportPath = writeRun(RECIPE);
    await client.open(uri, RECIPE);
    const got = await lenses();
    const args: lsp.OpenReportPanelArgs = { jobId: diskReportId(reportPath), uri };
    expect(got.map((l) => [l.range.start.line, l.command!.title, l.command!.command])).toEqual([
      [10, 'Open diagnostics', lsp.OPEN_PANEL_COMMANDS.correlation],
      [10, 'Last run: correlation 0.04 → 0.42 over 15 taps', lsp.OPEN_PANEL_COMMANDS.correlation],
      [10, 'worst layer.1.attn.v 0.31', lsp.OPEN_PANEL_COMMANDS.correlation],
      [14, 'Open results', lsp.OPEN_PANEL_COMMANDS.results],
      [14, `Last run: best permuted ${printed.permuted}`, lsp.OPEN_PANEL_COMMANDS.results],
      [14, `unaligned ${printed.unaligned}`, lsp.OPEN_PANEL_COMMANDS.results],
      [14, `anchor ${printed.anchor} · other ${printed.other}`, lsp.OPEN_PANEL_COMMANDS.results],
    ]);
    // A half-width editor shows about 60 characters of lenses: the button comes first, and no lens is long.
    expect(Math.max(...got.map((l) => l.command!.title.length))).toBeLessThanOrEqual(50);
    expect(got[0]!.range).toEqual(range(10, 0, 5));
    expect(got.every((l) => JSON.stringify(l.command!.arguments) === JSON.stringify([args]))).toBe(true);
    // The lens's id is one getReport answers.
    const r = await client.connection.sendRequest(lsp.getReport, { jobId: args.jobId });
    expect(r.reportPath).toBe(reportPath);
    expect((r.report as MergeReport).align.taps).toHaveLength(15);
  });

  it('hover: a permute entry shows its part per layer, a λ list entry its layer', async () => {
    writeRun(RECIPE);
    await client.open(uri, RECIPE);
    const ffn = (await hover(12, 29))!;
    expect(ffn).toMatch(/^\*\*Last run, FFN\*\* per layer/);
    expect(ffn).toContain('| layer.3.ffn | FFN | 512 | 0.01 → 0.42 | 100% | 0 |');
    // The schema documentation stays below.
    expect(ffn).toContain('The hidden units of each feed-forward block.');
    const layer1 = (await hover(16, 17))!;
    expect(layer1).toMatch(/^\*\*Last run, layer 1\*\* \(λ entry 1\)/);
    expect(
      layer1
        .split('\n')
        .filter((l) => l.startsWith('| layer.'))
        .map((l) => l.split(' | ')[0]),
    ).toEqual(['| layer.1.attn.v', '| layer.1.ffn']);
    const scores = (await hover(14, 2))!;
    expect(scores).toContain(
      `**Last run**: best permuted ${printed.permuted} vs unaligned ${printed.unaligned} · anchor ${printed.anchor} · other ${printed.other} over 5 tasks`,
    );
    // Keys a run does not measure keep their plain hover.
    expect(await hover(18, 2)).not.toContain('Last run');
  });

  it('hover: a λ override confined to one layer shows that layer', async () => {
    const overrides = RECIPE.replace(
      '  lambda: [0.5, 0.4]',
      '  lambda:\n    default: 0.5\n    overrides:\n      encoder.layers.3.**: 0.2\n      encoder.layers.*.attention.**: 0.6',
    );
    writeRun(overrides);
    await client.open(uri, overrides);
    const layer3 = (await hover(19, 8))!;
    expect(layer3).toMatch(/^\*\*Last run, layer 3\*\* \(matched by encoder\.layers\.3\.\*\*\)/);
    expect(layer3).toContain('| layer.3.ffn | FFN | 512 |');
    // A glob over every layer is about no single one.
    expect(await hover(20, 8)).not.toContain('Last run');
  });

  it('edits outside the run keep the insights; changing align clears them, the lenses say so, undoing restores them', async () => {
    writeRun(RECIPE);
    expect(low(await client.open(uri, RECIPE))).toHaveLength(2);

    // A comment line above and a new name: the warnings move with their entries.
    const renamed = `# tuned\n${RECIPE.replace('name: speech-music', 'name: speech-music v2')}`;
    expect(low(await client.change(uri, 2, renamed)).map((d) => d.range)).toEqual([range(13, 12, 15), range(13, 17, 26)]);
    expect((await lenses())[1]!.command!.title).toMatch(/^Last run: correlation/);

    const within = renamed.replace('heads: reorder', 'heads: within');
    expect(low(await client.change(uri, 3, within))).toEqual([]);
    const stale = await lenses();
    expect(stale.map((l) => [l.range.start.line, l.command!.title, l.command!.command])).toEqual([
      [11, '⚠ Out of date (align changed): run again', 'mergeStudio.runRecipe'],
      [11, 'Open diagnostics (last run)', lsp.OPEN_PANEL_COMMANDS.correlation],
      [15, '⚠ Out of date (align changed): run again', 'mergeStudio.runRecipe'],
      [15, 'Open results (last run)', lsp.OPEN_PANEL_COMMANDS.results],
    ]);
    expect(stale[0]!.command!.arguments).toEqual([uri]);
    expect(await hover(13, 29)).not.toContain('Last run');

    const models = within.replace('heads: within', 'heads: reorder').replace('tiny-b', 'tiny-a');
    expect(low(await client.change(uri, 4, models))).toEqual([]);
    expect((await lenses())[0]!.command!.title).toBe('⚠ Out of date (models changed): run again');

    expect(low(await client.change(uri, 5, renamed))).toHaveLength(2);
    expect((await hover(13, 29))!).toContain('Last run, FFN');
  });

  it('a recipe file changed since the run (its hash differs) shows the report as out of date, without warnings', async () => {
    writeRun(RECIPE, {}, `${RECIPE}# saved again after the run\n`);
    expect(low(await client.open(uri, RECIPE))).toEqual([]);
    expect((await lenses()).map((l) => l.command!.title)).toEqual([
      '⚠ Out of date (the recipe file changed): run again',
      'Open diagnostics (last run)',
      '⚠ Out of date (the recipe file changed): run again',
      'Open results (last run)',
    ]);
  });

  it('ignores the report of another recipe in the same output folder', async () => {
    writeRun(RECIPE, { recipe: { file: path.join(dir, 'other.merge.yaml'), sha256: sha('something else') } });
    expect(low(await client.open(uri, RECIPE))).toEqual([]);
    expect(await lenses()).toEqual([]);
  });

  it('a report written later (a command-line run) appears when the file watcher says so, and goes with its folder', async () => {
    writeFileSync(recipeFile, RECIPE);
    expect(low(await client.open(uri, RECIPE))).toEqual([]);
    expect(await lenses()).toEqual([]);
    const reportPath = writeRun(RECIPE);
    const from = client.diagnostics.values.length;
    await client.connection.sendNotification(DidChangeWatchedFilesNotification.type, {
      changes: [{ uri: fileUri(reportPath), type: FileChangeType.Created }],
    });
    const published = await client.diagnostics.next((d) => d.uri === uri && low(d.diagnostics).length === 2, from);
    expect(low(published.diagnostics)).toHaveLength(2);
    expect(await lenses()).toHaveLength(7);

    rmSync(path.join(dir, 'out'), { recursive: true });
    const from2 = client.diagnostics.values.length;
    await client.connection.sendNotification(DidChangeWatchedFilesNotification.type, {
      changes: [{ uri: fileUri(reportPath), type: FileChangeType.Deleted }],
    });
    await client.diagnostics.next((d) => d.uri === uri && low(d.diagnostics).length === 0, from2);
    expect(await lenses()).toEqual([]);
  });

  it('a report the watcher sees in a run’s staging folder appears once the folder is renamed into place', async () => {
    writeFileSync(recipeFile, RECIPE);
    expect(low(await client.open(uri, RECIPE))).toEqual([]);
    // A run writes into `.out.staging-…` and renames it to `out`; the watcher reports only the staged file.
    const reportPath = writeRun(RECIPE);
    const staging = path.join(dir, `.out.staging-${process.pid}-0a1b2c3d`);
    renameSync(path.dirname(reportPath), staging);
    const from = client.diagnostics.values.length;
    await client.connection.sendNotification(DidChangeWatchedFilesNotification.type, {
      changes: [{ uri: fileUri(path.join(staging, 'report.json')), type: FileChangeType.Created }],
    });
    // The event is handled before the rename: nothing to show yet.
    await client.diagnostics.next((d) => d.uri === uri, from);
    expect(await lenses()).toEqual([]);
    renameSync(staging, path.dirname(reportPath));
    const published = await client.diagnostics.next((d) => d.uri === uri && low(d.diagnostics).length === 2, from);
    expect(low(published.diagnostics)).toHaveLength(2);
    expect(await lenses()).toHaveLength(7);
  });

  it.each([
    ['its creation (the file inside missed), then a silent rename', FileChangeType.Created, 'before'],
    ['only its removal, the rename itself', FileChangeType.Deleted, 'after'],
  ] as const)('a staging folder the watcher reports by %s: the report appears', async (_, type, when) => {
    writeFileSync(recipeFile, RECIPE);
    expect(low(await client.open(uri, RECIPE))).toEqual([]);
    const reportPath = writeRun(RECIPE);
    const staging = path.join(dir, `.out.staging-${process.pid}-4e5f6a7b`);
    renameSync(path.dirname(reportPath), staging);
    const from = client.diagnostics.values.length;
    const notify = () =>
      client.connection.sendNotification(DidChangeWatchedFilesNotification.type, { changes: [{ uri: fileUri(staging), type }] });
    if (when === 'before') {
      await notify();
      await client.diagnostics.next((d) => d.uri === uri, from);
      expect(await lenses()).toEqual([]);
    }
    renameSync(staging, path.dirname(reportPath));
    if (when === 'after') await notify();
    const published = await client.diagnostics.next((d) => d.uri === uri && low(d.diagnostics).length === 2, from);
    expect(low(published.diagnostics)).toHaveLength(2);
    expect(await lenses()).toHaveLength(7);
  });
});

describe('the threshold setting', () => {
  it('defaults to 0.2: this run has no tap below it, so no warning, the lenses still there', async () => {
    client = await startTestServer({ launcher: null });
    writeRun(RECIPE);
    expect(low(await client.open(uri, RECIPE))).toEqual([]);
    expect(await lenses()).toHaveLength(7);
  });

  it('comes from initializationOptions and follows workspace/didChangeConfiguration', async () => {
    client = await startTestServer({ launcher: null }, undefined, { lowCorrelationThreshold: 0.32 } satisfies lsp.MergeStudioSettings);
    writeRun(RECIPE);
    const first = low(await client.open(uri, RECIPE));
    expect(first.map((d) => (d.data as lsp.LowCorrelationData).taps.map((t) => t.tap))).toEqual([['layer.1.attn.v', 'layer.2.attn.v']]);

    const from = client.diagnostics.values.length;
    const changed: { mergeStudio: lsp.MergeStudioSettings } = { mergeStudio: { lowCorrelationThreshold: 0.5 } };
    await client.connection.sendNotification(DidChangeConfigurationNotification.type, { settings: changed });
    const again = await client.diagnostics.next((d) => d.uri === uri && low(d.diagnostics).length === 3, from);
    expect(low(again.diagnostics).map((d) => [(d.data as lsp.LowCorrelationData).group, d.range])).toEqual([
      ['cnn', range(12, 12, 15)],
      ['attention', range(12, 17, 26)],
      ['ffn', range(12, 28, 31)],
    ]);
  });
});

describe('a job of the server', () => {
  it('its report becomes the recipe’s last run: warnings and lenses name the job', async () => {
    client = await startTestServer(
      { launcher: (file) => ({ command: process.execPath, args: [reportEngine, file] }) },
      { ...defaultCapabilities, workspace: { ...defaultCapabilities.workspace, codeLens: { refreshSupport: true } } },
      settings,
    );
    let refreshed!: () => void;
    const refresh = new Promise<void>((resolve) => (refreshed = resolve));
    client.connection.onRequest(CodeLensRefreshRequest.type, () => refreshed());
    writeFileSync(recipeFile, RECIPE);
    expect(low(await client.open(uri, RECIPE))).toEqual([]);
    const from = client.diagnostics.values.length;
    const { jobId } = await client.connection.sendRequest(lsp.runRecipe, { uri });
    expect((await client.jobFinished.next((j) => j.jobId === jobId)).ok).toBe(true);
    const published = await client.diagnostics.next((d) => d.uri === uri && low(d.diagnostics).length > 0, from);
    expect(low(published.diagnostics).map((d) => [(d.data as lsp.LowCorrelationData).reportId, d.range])).toEqual([
      [jobId, range(12, 12, 15)],
      [jobId, range(12, 17, 26)],
    ]);
    // Editors showing the recipe ask again for its lenses.
    await refresh;
    const got = await lenses();
    expect(got.map((l) => (l.command!.arguments as lsp.OpenReportPanelArgs[])[0]!.jobId)).toEqual(Array(got.length).fill(jobId));
    expect(got[1]!.command!.title).toMatch(/^Last run: correlation 0\.04 → 0\.42/);
  });

  it('runs its engine process with the malloc settings of engine/process-env.ts (on Linux; values already set kept)', async () => {
    const want = Object.fromEntries(Object.keys(ENGINE_MALLOC_ENV).map((k) => [k, engineProcessEnv(process.env)[k]]));
    // The stand-in engine checks its environment first and fails the job when a setting is not what it should be.
    const check = [
      `const want = ${JSON.stringify(want)};`,
      `for (const [k, v] of Object.entries(want)) if (process.env[k] !== v) { console.error('engine env ' + k + '=' + process.env[k]); process.exit(3); }`,
      `process.argv.splice(1, 0, 'engine');`,
      `import(${JSON.stringify(pathToFileURL(reportEngine).href)});`,
    ].join('\n');
    client = await startTestServer(
      { launcher: (file) => ({ command: process.execPath, args: ['-e', check, file] }) },
      defaultCapabilities,
      settings,
    );
    writeFileSync(recipeFile, RECIPE);
    await client.open(uri, RECIPE);
    const { jobId } = await client.connection.sendRequest(lsp.runRecipe, { uri });
    const finished = await client.jobFinished.next((j) => j.jobId === jobId);
    expect(finished.error?.message).toBeUndefined();
    expect(finished.ok).toBe(true);
  });
});
