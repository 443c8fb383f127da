/**
 * What a finished run says about the recipe that produced it, as plain numbers and short text: the summaries
 * an editor shows beside the recipe (overall correlation, worst tap, scores), the taps whose correlation after
 * permutation stays low, the statistics of one layer, and a fingerprint of the recipe sections a run depends on
 * (to tell whether a report still describes the recipe being edited). Pure: no I/O, no editor types.
 */
import { createHash } from 'node:crypto';
import type { EvaluationRow, MergeReport, PermuteGroup, TapReport } from './report';

/** The recipe sections whose change invalidates a run's report (evaluate, output, runtime and name do not). */
export const RUN_SECTIONS = ['models', 'probe', 'align', 'merge'] as const;
export type RunSection = (typeof RUN_SECTIONS)[number];
export type SectionFingerprint = Record<RunSection, string>;

export const GROUP_ORDER: readonly PermuteGroup[] = ['cnn', 'attention', 'ffn', 'residual'];
export const GROUP_LABELS: Record<PermuteGroup, string> = { cnn: 'CNN', attention: 'attention', ffn: 'FFN', residual: 'residual' };

/** sha256 of a text as UTF-8, hex: what the engine stores in `report.recipe.sha256` for the recipe file. */
export function textSha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** JSON with object keys sorted, so equal values give equal strings whatever their key order. */
export function canonicalJson(value: unknown): string {
  if (value === undefined) return 'null';
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

/**
 * The run-relevant sections of a recipe value (the validator's typed value with defaults, or its best-effort
 * partial value), one canonical string per section: comments, formatting, key order and the other sections
 * do not change it.
 */
export function sectionFingerprint(recipe: unknown): SectionFingerprint {
  const r = recipe !== null && typeof recipe === 'object' ? (recipe as Record<string, unknown>) : {};
  return { models: canonicalJson(r.models), probe: canonicalJson(r.probe), align: canonicalJson(r.align), merge: canonicalJson(r.merge) };
}

/** The sections that differ between two fingerprints, in recipe order. */
export function changedSections(then: SectionFingerprint, now: SectionFingerprint): RunSection[] {
  return RUN_SECTIONS.filter((s) => then[s] !== now[s]);
}

const mean = (xs: readonly number[]): number | null => (xs.length ? xs.reduce((s, x) => s + x, 0) / xs.length : null);

/** Taps in network order: conv blocks, then transformer layers (attention before FFN), then the residual stream. */
export function orderTaps(taps: readonly TapReport[]): TapReport[] {
  const rank = (t: TapReport) => (t.group === 'cnn' ? 0 : t.layer === null ? 2 : 1);
  return [...taps].sort(
    (a, b) => rank(a) - rank(b) || (a.layer ?? 0) - (b.layer ?? 0) || GROUP_ORDER.indexOf(a.group) - GROUP_ORDER.indexOf(b.group),
  );
}

export interface GroupSummary {
  group: PermuteGroup;
  taps: number;
  before: number;
  after: number;
}

export interface AlignmentSummary {
  taps: number;
  /** Mean over taps of the mean diagonal correlation (as the job summary computes it); null without taps. */
  before: number | null;
  after: number | null;
  /** The tap with the lowest correlation after permutation. */
  worst: TapReport | null;
  groups: GroupSummary[];
}

export function alignmentSummary(report: MergeReport): AlignmentSummary {
  const taps = report.align.taps;
  const worst = taps.length ? orderTaps(taps).reduce((w, t) => (t.meanCorrelationAfter < w.meanCorrelationAfter ? t : w)) : null;
  const groups: GroupSummary[] = [];
  for (const group of GROUP_ORDER) {
    const of = taps.filter((t) => t.group === group);
    if (of.length)
      groups.push({
        group,
        taps: of.length,
        before: mean(of.map((t) => t.meanCorrelationBefore))!,
        after: mean(of.map((t) => t.meanCorrelationAfter))!,
      });
  }
  return {
    taps: taps.length,
    before: mean(taps.map((t) => t.meanCorrelationBefore)),
    after: mean(taps.map((t) => t.meanCorrelationAfter)),
    worst,
    groups,
  };
}

export interface ScorePoint {
  lambda: number | null;
  average: number;
}

export interface ScoreSummary {
  /** The best average score of each merge variant over the λ values evaluated (the first λ on a tie). */
  bestPermuted: ScorePoint | null;
  /** The plain interpolation without alignment (`unaligned`; report version 1 called it `linear`). */
  bestUnaligned: ScorePoint | null;
  anchor: number | null;
  other: number | null;
  /** Tasks evaluated. */
  tasks: number;
}

/** The evaluation in a few numbers; null when the run did not evaluate. */
export function scoreSummary(report: MergeReport): ScoreSummary | null {
  const e = report.evaluation;
  if (!e || e.averages.length === 0) return null;
  const best = (variant: EvaluationRow['variant']): ScorePoint | null => {
    let b: ScorePoint | null = null;
    for (const a of e.averages)
      if (a.variant === variant && (b === null || a.average > b.average)) b = { lambda: a.lambda, average: a.average };
    return b;
  };
  const single = (variant: EvaluationRow['variant']) => e.averages.find((a) => a.variant === variant)?.average ?? null;
  return {
    bestPermuted: best('permuted'),
    bestUnaligned: best('unaligned') ?? best('linear'),
    anchor: single('anchor'),
    other: single('other'),
    tasks: new Set(e.rows.map((r) => r.task)).size,
  };
}

export interface LowTap {
  tap: string;
  layer: number | null;
  meanCorrelationAfter: number;
}

export interface LowCorrelationGroup {
  group: PermuteGroup;
  threshold: number;
  /** Taps of the group below the threshold after permutation, in network order. */
  taps: LowTap[];
  /** All taps of the group. */
  of: number;
}

/** Per permutation group, the taps whose mean correlation after permutation is below `threshold`. */
export function lowCorrelation(report: MergeReport, threshold: number): LowCorrelationGroup[] {
  const out: LowCorrelationGroup[] = [];
  const taps = orderTaps(report.align.taps);
  for (const group of GROUP_ORDER) {
    const of = taps.filter((t) => t.group === group);
    const low = of.filter((t) => t.meanCorrelationAfter < threshold);
    if (low.length)
      out.push({
        group,
        threshold,
        of: of.length,
        taps: low.map((t) => ({ tap: t.tap, layer: t.layer, meanCorrelationAfter: t.meanCorrelationAfter })),
      });
  }
  return out;
}

/** The taps of one permutation group, in network order. */
export function tapsOfGroup(report: MergeReport, group: PermuteGroup): TapReport[] {
  return orderTaps(report.align.taps.filter((t) => t.group === group));
}

/** The taps inside transformer layer `layer` (attention, FFN), in network order. */
export function tapsOfLayer(report: MergeReport, layer: number): TapReport[] {
  return orderTaps(report.align.taps.filter((t) => t.layer === layer && (t.group === 'attention' || t.group === 'ffn')));
}

/** The transformer layer a tensor-name glob is confined to (`encoder.layers.3.**` → 3), else null. */
export function layerOfGlob(glob: string): number | null {
  const m = /(?:^|\.)layers\.(\d+)(?:\.|$)/.exec(glob);
  return m ? Number(m[1]) : null;
}

/** A correlation for people: two decimals, a real minus sign. */
export function formatCorrelation(x: number | null): string {
  if (x === null || !Number.isFinite(x)) return '–';
  const s = x.toFixed(2);
  return s.startsWith('-') ? (s === '-0.00' ? '0.00' : `−${s.slice(1)}`) : s;
}

export function formatScore(x: number | null): string {
  return x === null || !Number.isFinite(x) ? '–' : x.toFixed(3);
}

export function formatPercent(x: number): string {
  return `${Math.round(x * 100)}%`;
}

export function formatLambda(lambda: number | null): string {
  return lambda === null ? 'recipe λ' : `λ ${lambda}`;
}

/** One line on alignment: `correlation 0.01 → 0.28 over 15 taps · worst conv.1 0.05`. */
export function describeAlignment(s: AlignmentSummary): string {
  if (s.taps === 0) return 'not aligned (no permutation)';
  const worst = s.worst ? ` · worst ${s.worst.tap} ${formatCorrelation(s.worst.meanCorrelationAfter)}` : '';
  return `correlation ${formatCorrelation(s.before)} → ${formatCorrelation(s.after)} over ${s.taps} tap${s.taps === 1 ? '' : 's'}${worst}`;
}

/** One line on scores: `best permuted 0.537 (λ 0.7) vs unaligned 0.518 (λ 0.7) · anchor 0.561 · other 0.522`. */
export function describeScores(s: ScoreSummary): string {
  const point = (p: ScorePoint | null) => (p ? `${formatScore(p.average)} (${formatLambda(p.lambda)})` : '–');
  const parts = [`best permuted ${point(s.bestPermuted)} vs unaligned ${point(s.bestUnaligned)}`];
  if (s.anchor !== null) parts.push(`anchor ${formatScore(s.anchor)}`);
  if (s.other !== null) parts.push(`other ${formatScore(s.other)}`);
  return parts.join(' · ');
}

/** A markdown table of taps: before → after, units moved, dead units. */
export function tapTable(taps: readonly TapReport[]): string {
  const rows = taps.map((t) => {
    const dead = t.deadUnits.anchor + t.deadUnits.other;
    return `| ${t.tap} | ${GROUP_LABELS[t.group]} | ${t.units} | ${formatCorrelation(t.meanCorrelationBefore)} → ${formatCorrelation(t.meanCorrelationAfter)} | ${formatPercent(t.moved)} | ${dead} |`;
  });
  return ['| tap | part | units | correlation before → after | moved | dead units |', '|---|---|---:|---|---:|---:|', ...rows].join('\n');
}
