/**
 * The last run of each open recipe, shown in the recipe itself: code lenses on `align` and `merge` (correlation
 * before → after, worst tap, scores, and lenses that open the report panels), `low-correlation` warnings on
 * the `align.permute` entry of each part whose taps stay poorly matched, and per-layer statistics in hovers.
 *
 * A recipe's run comes from the server's own jobs (`attachJob`, on jobFinished) or from `<output>/report.json`
 * on disk (`discover`, so it is there after a reload too). It describes the recipe only while the sections a
 * run depends on (models, probe, align, merge) are those it ran: fingerprinted from the recipe text whose
 * sha256 the report records; when they change, warnings and statistics go and the lenses say so.
 *
 * The numbers and text come from engine/pipeline/report-insights.ts; this module only places them.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import {
  DiagnosticSeverity,
  MarkupKind,
  type CodeLens,
  type Diagnostic,
  type Hover,
  type Position,
  type Range,
} from 'vscode-languageserver';
import * as lsp from '../../../../protocol/lsp-ext';
import { isMergeReport } from '../../../../protocol/report';
import type { MergeReport, PermuteGroup } from '../../engine/pipeline/report';
import {
  alignmentSummary,
  changedSections,
  describeAlignment,
  describeScores,
  formatCorrelation,
  formatLambda,
  formatScore,
  GROUP_LABELS,
  layerOfGlob,
  lowCorrelation,
  scoreSummary,
  sectionFingerprint,
  tapsOfGroup,
  tapsOfLayer,
  tapTable,
  textSha256,
  type RunSection,
  type ScorePoint,
  type SectionFingerprint,
} from '../../engine/pipeline/report-insights';
import {
  checkStructure,
  DIAGNOSTIC_SOURCE,
  locate,
  pathKey,
  readRecipeFile,
  resolveRecipePath,
  type RecipeStructure,
} from '../../engine/recipe';
import { describeError } from '../../engine/errors';

/** A report known for a recipe. */
export interface RunRecord {
  /** Job id (a run of this server) or disk report id (`report-…`). */
  id: string;
  origin: 'job' | 'disk';
  reportPath: string;
  report: MergeReport;
  /** mtime of report.json when read: the same file is not read twice. */
  mtimeMs: number;
  /**
   * The run-relevant sections of the recipe text the run used (that text's sha256 is the report's); null when
   * neither the file on disk nor the open document is that text any more (then the report is out of date).
   */
  ran: SectionFingerprint | null;
}

/** A report.json larger than this is not read (a real one is well under 1 MB). */
const MAX_REPORT_BYTES = 64 * 1024 * 1024;

export type RunState = { record: RunRecord; fresh: true } | { record: RunRecord; fresh: false; changed: RunSection[] | null };

export interface RunInsightsOptions {
  threshold?: number;
  log?: (line: string) => void;
}

/** `report-` + 12 hex digits of the report path: stable for one report.json, across server restarts. */
export function diskReportId(reportPath: string): string {
  return `report-${textSha256(path.resolve(reportPath)).slice(0, 12)}`;
}

/** The report.json a recipe writes, from its `output` (undefined while `output` is missing or invalid). */
export function reportPathOf(structure: RecipeStructure, recipeFile: string): string | undefined {
  const partial = structure.validation.partial as { output?: unknown } | undefined;
  const output = partial?.output;
  return typeof output === 'string' && output.trim() !== '' ? path.join(resolveRecipePath(recipeFile, output), 'report.json') : undefined;
}

export class RunInsights {
  private readonly byUri = new Map<string, RunRecord>();
  /** Where `discover` last looked for each recipe (it looks again when `output` changes, or when told to). */
  private readonly looked = new Map<string, string>();
  private readonly fingerprints = new WeakMap<RecipeStructure, SectionFingerprint>();
  private thresholdValue: number;
  private readonly log: (line: string) => void;

  constructor(options: RunInsightsOptions = {}) {
    this.thresholdValue = options.threshold ?? lsp.DEFAULT_LOW_CORRELATION_THRESHOLD;
    this.log = options.log ?? (() => undefined);
  }

  get threshold(): number {
    return this.thresholdValue;
  }

  /** Sets the warning threshold; true when it changed. Ignores values that are not numbers in [-1, 1]. */
  setThreshold(value: unknown): boolean {
    if (typeof value !== 'number' || !Number.isFinite(value) || value < -1 || value > 1 || value === this.thresholdValue) return false;
    this.thresholdValue = value;
    return true;
  }

  record(uri: string): RunRecord | undefined {
    return this.byUri.get(uri);
  }

  /** A report this service knows by id (disk reports; job reports are the job manager's). */
  reportById(id: string): RunRecord | undefined {
    for (const r of this.byUri.values()) if (r.id === id) return r;
    return undefined;
  }

  forget(uri: string): void {
    this.byUri.delete(uri);
    this.looked.delete(uri);
  }

  /**
   * A job of this server finished with a report for `uri`. `docText` is the open document's text, if open.
   * False when the report cannot be read or is not a Merge Studio report.
   */
  async attachJob(uri: string, recipeFile: string, jobId: string, reportPath: string, docText: string | undefined): Promise<boolean> {
    const loaded = await this.load(reportPath);
    if (!loaded) return false;
    this.byUri.set(uri, {
      id: jobId,
      origin: 'job',
      reportPath,
      report: loaded.report,
      mtimeMs: loaded.mtimeMs,
      ran: await this.ranSections(loaded.report, recipeFile, docText),
    });
    this.looked.set(uri, reportPath);
    return true;
  }

  /**
   * Looks for `<output>/report.json` of the recipe when it has not looked there yet (or `force`); true when what
   * is known for the recipe changed. A report of another recipe (neither its file nor its hash) is ignored.
   */
  async discover(uri: string, recipeFile: string, structure: RecipeStructure, force = false): Promise<boolean> {
    const reportPath = reportPathOf(structure, recipeFile);
    if (!reportPath || (!force && this.looked.get(uri) === reportPath)) return false;
    this.looked.set(uri, reportPath);
    const known = this.byUri.get(uri);
    let mtimeMs: number;
    try {
      mtimeMs = (await fs.stat(reportPath)).mtimeMs;
    } catch {
      // Gone (deleted, or a failed run's output was never written): a record of that file goes with it.
      if (known?.reportPath === reportPath) {
        this.byUri.delete(uri);
        return true;
      }
      return false;
    }
    if (known && known.reportPath === reportPath && known.mtimeMs === mtimeMs) return false;
    const loaded = await this.load(reportPath);
    if (!loaded) return false;
    const { report } = loaded;
    const text = structure.parsed.text;
    if (!(await samePath(report.recipe.file, recipeFile)) && report.recipe.sha256 !== textSha256(text)) {
      this.log(`${reportPath} belongs to ${report.recipe.file}, not to ${recipeFile}: not shown`);
      return false;
    }
    const ran = await this.ranSections(report, recipeFile, text);
    // Read again after the awaits: a job that wrote this very file may have been attached meanwhile (the watcher's
    // event for its report.json races the job's end), and a job's report keeps the job's id.
    const now = this.byUri.get(uri);
    const sameJob = now?.origin === 'job' && now.reportPath === reportPath && now.mtimeMs === loaded.mtimeMs;
    if (sameJob && now !== known) return false;
    this.byUri.set(uri, {
      id: sameJob ? now.id : diskReportId(reportPath),
      origin: 'disk',
      reportPath,
      report,
      mtimeMs: loaded.mtimeMs,
      ran,
    });
    return true;
  }

  /** Whether the recipe as it is now is the recipe the known run ran. */
  state(uri: string, structure: RecipeStructure): RunState | undefined {
    const record = this.byUri.get(uri);
    if (!record) return undefined;
    if (!record.ran) return { record, fresh: false, changed: null };
    const changed = changedSections(record.ran, this.fingerprint(structure));
    return changed.length === 0 ? { record, fresh: true } : { record, fresh: false, changed };
  }

  // ---- features ----

  codeLenses(uri: string, structure: RecipeStructure): CodeLens[] {
    const state = this.state(uri, structure);
    if (!state) return [];
    const { record } = state;
    const keys = structure.validation.ranges.key;
    const topLine: Range = { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } };
    const alignAt = keys.get('align') ?? keys.get('models') ?? topLine;
    const mergeAt = keys.get('merge') ?? alignAt;
    const args: lsp.OpenReportPanelArgs = { jobId: record.id, uri };
    const open = (range: Range, kind: keyof typeof lsp.OPEN_PANEL_COMMANDS, title: string): CodeLens => ({
      range,
      command: { title, command: lsp.OPEN_PANEL_COMMANDS[kind], arguments: [args] },
    });
    // Short lenses, the action first: a line of lenses is cut off at the editor's edge, and what is cut must not be
    // the button.
    if (!state.fresh) {
      const what = state.changed ? `${state.changed.join(', ')} changed` : 'the recipe file changed';
      const rerun = (range: Range): CodeLens => ({
        range,
        command: { title: `⚠ Out of date (${what}): run again`, command: 'mergeStudio.runRecipe', arguments: [uri] },
      });
      return [
        rerun(alignAt),
        open(alignAt, 'correlation', 'Open diagnostics (last run)'),
        ...(mergeAt === alignAt ? [] : [rerun(mergeAt)]),
        open(mergeAt, 'results', 'Open results (last run)'),
      ];
    }
    const report = record.report;
    const align = alignmentSummary(report);
    const lenses: CodeLens[] = [open(alignAt, 'correlation', 'Open diagnostics')];
    if (align.taps === 0) lenses.push(open(alignAt, 'correlation', `Last run: ${describeAlignment(align)}`));
    else {
      lenses.push(
        open(
          alignAt,
          'correlation',
          `Last run: correlation ${formatCorrelation(align.before)} → ${formatCorrelation(align.after)} over ${align.taps} tap${align.taps === 1 ? '' : 's'}`,
        ),
      );
      if (align.worst)
        lenses.push(open(alignAt, 'correlation', `worst ${align.worst.tap} ${formatCorrelation(align.worst.meanCorrelationAfter)}`));
    }
    lenses.push(open(mergeAt, 'results', 'Open results'));
    const scores = scoreSummary(report);
    if (!scores) {
      const lambda = typeof report.merge.lambda === 'number' ? `λ ${report.merge.lambda}` : 'per-layer λ';
      lenses.push(open(mergeAt, 'results', `Last run: ${report.merge.method} merge at ${lambda} (not evaluated)`));
      return lenses;
    }
    const point = (p: ScorePoint | null) => (p ? `${formatScore(p.average)} (${formatLambda(p.lambda)})` : '–');
    lenses.push(
      open(mergeAt, 'results', `Last run: best permuted ${point(scores.bestPermuted)}`),
      open(mergeAt, 'results', `unaligned ${point(scores.bestUnaligned)}`),
    );
    const single = [
      scores.anchor === null ? '' : `anchor ${formatScore(scores.anchor)}`,
      scores.other === null ? '' : `other ${formatScore(scores.other)}`,
    ].filter(Boolean);
    if (single.length) lenses.push(open(mergeAt, 'results', single.join(' · ')));
    return lenses;
  }

  diagnostics(uri: string, structure: RecipeStructure): Diagnostic[] {
    const state = this.state(uri, structure);
    if (!state?.fresh) return [];
    const { record } = state;
    return lowCorrelation(record.report, this.thresholdValue).map((low) => {
      const data: lsp.LowCorrelationData = { group: low.group, threshold: low.threshold, reportId: record.id, taps: low.taps };
      const list = low.taps.map((t) => `${t.tap} ${formatCorrelation(t.meanCorrelationAfter)}`).join(', ');
      const label = GROUP_LABELS[low.group];
      return {
        range: permuteEntryRange(structure, low.group),
        severity: DiagnosticSeverity.Warning,
        code: lsp.LOW_CORRELATION_CODE,
        source: DIAGNOSTIC_SOURCE,
        message: `Last run: ${low.taps.length} of ${low.of} ${label} tap${low.of === 1 ? '' : 's'} stay below correlation ${low.threshold} after permutation (${list}): their units have no close match in the other model, so merging them averages unrelated features.`,
        data,
      };
    });
  }

  /** Adds the last run's statistics to the hover of a layer-related key (or makes one). */
  hover(uri: string, structure: RecipeStructure, position: Position, base: Hover | null): Hover | null {
    const state = this.state(uri, structure);
    if (!state?.fresh) return base;
    const parsed = structure.parsed;
    const at = locate(parsed, parsed.lines.offsetAt(position));
    if (!at?.scalar) return base;
    const section = runSection(state.record.report, at.path, at.onKey, at.scalar.value);
    if (!section) return base;
    const range = parsed.lines.range(at.scalar.start, at.scalar.end);
    const previous = base && typeof base.contents === 'object' && 'kind' in base.contents ? base.contents.value : '';
    return {
      contents: { kind: MarkupKind.Markdown, value: previous ? `${section}\n\n---\n\n${previous}` : section },
      range: base?.range ?? range,
    };
  }

  // ---- internals ----

  private fingerprint(structure: RecipeStructure): SectionFingerprint {
    let f = this.fingerprints.get(structure);
    if (!f) {
      f = sectionFingerprint(structure.validation.partial);
      this.fingerprints.set(structure, f);
    }
    return f;
  }

  /** The sections of the text the run used: the file on disk or the open document, whichever has its hash. */
  private async ranSections(report: MergeReport, recipeFile: string, docText: string | undefined): Promise<SectionFingerprint | null> {
    if (docText !== undefined && textSha256(docText) === report.recipe.sha256)
      return sectionFingerprint(checkStructure(docText).validation.partial);
    try {
      const onDisk = await readRecipeFile(recipeFile);
      if (textSha256(onDisk) === report.recipe.sha256) return sectionFingerprint(checkStructure(onDisk).validation.partial);
    } catch {
      // No file: nothing to compare with.
    }
    return null;
  }

  private async load(reportPath: string): Promise<{ report: MergeReport; mtimeMs: number } | undefined> {
    try {
      const st = await fs.stat(reportPath);
      // Only a regular file of a sane size: a pipe named report.json would block the read forever.
      if (!st.isFile() || st.size > MAX_REPORT_BYTES) {
        this.log(`${reportPath} is not a regular file of at most ${MAX_REPORT_BYTES / (1024 * 1024)} MB: no run insights`);
        return undefined;
      }
      const mtimeMs = st.mtimeMs;
      const report: unknown = JSON.parse(await fs.readFile(reportPath, 'utf8'));
      if (!isMergeReport(report)) {
        this.log(`${reportPath} is not a Merge Studio report (version 1): no run insights`);
        return undefined;
      }
      return { report, mtimeMs };
    } catch (e) {
      this.log(`cannot read ${reportPath}: ${describeError(e)}`);
      return undefined;
    }
  }
}

/** The `align.permute` entry that permutes `group`; else the nearest entry that decides it. */
function permuteEntryRange(structure: RecipeStructure, group: PermuteGroup): Range {
  const { value, key } = structure.validation.ranges;
  const partial = structure.validation.partial as { align?: { permute?: unknown } } | undefined;
  const permute = partial?.align?.permute;
  if (Array.isArray(permute)) {
    const i = permute.indexOf(group);
    const r = i >= 0 ? value.get(pathKey(['align', 'permute', i])) : undefined;
    if (r) return r;
  }
  return key.get('align.permute') ?? key.get('align') ?? { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } };
}

/** The hover section for a path in the recipe, when it is about something a run measured. */
function runSection(report: MergeReport, at: (string | number)[], onKey: boolean, value: unknown): string | null {
  const p = pathKey(at);
  const layerTable = (layer: number, what: string) => {
    const taps = tapsOfLayer(report, layer);
    return taps.length
      ? `**Last run, layer ${layer}** (${what})\n\n${tapTable(taps)}`
      : `**Last run**: no aligned taps in layer ${layer} (${what})`;
  };
  if (at.length === 3 && at[0] === 'align' && at[1] === 'permute' && typeof at[2] === 'number' && typeof value === 'string') {
    const group = value as PermuteGroup;
    const taps = tapsOfGroup(report, group);
    return taps.length ? `**Last run, ${GROUP_LABELS[group] ?? group}** per layer\n\n${tapTable(taps)}` : null;
  }
  if (onKey && (p === 'align.permute' || p === 'align')) {
    const s = alignmentSummary(report);
    const rows = s.groups.map(
      (g) => `| ${GROUP_LABELS[g.group]} | ${g.taps} | ${formatCorrelation(g.before)} → ${formatCorrelation(g.after)} |`,
    );
    return `**Last run**: ${describeAlignment(s)}\n\n| part | taps | mean correlation before → after |\n|---|---:|---|\n${rows.join('\n')}`;
  }
  if (at.length === 3 && at[0] === 'merge' && at[1] === 'lambda' && typeof at[2] === 'number') return layerTable(at[2], `λ entry ${at[2]}`);
  if (onKey && at.length === 4 && p.startsWith('merge.lambda.overrides.') && typeof at[3] === 'string') {
    const layer = layerOfGlob(at[3]);
    return layer === null ? null : layerTable(layer, `matched by ${at[3]}`);
  }
  if (onKey && (p === 'merge' || p === 'merge.lambda')) {
    const scores = scoreSummary(report);
    return scores ? `**Last run**: ${describeScores(scores)} over ${scores.tasks} task${scores.tasks === 1 ? '' : 's'}` : null;
  }
  return null;
}

async function samePath(a: string, b: string): Promise<boolean> {
  if (path.resolve(a) === path.resolve(b)) return true;
  const real = async (p: string) => fs.realpath(p).catch(() => path.resolve(p));
  return (await real(a)) === (await real(b));
}
