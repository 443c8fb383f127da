/**
 * Report → tidy rows for the charts and their tables. Pure functions; the only place that knows how a
 * MergeReport's tap statistics are laid out.
 */
import type { EvaluationRow, MergeReport, PermuteGroup, TapReport } from '../../../protocol/report';

export const GROUP_ORDER: readonly PermuteGroup[] = ['cnn', 'attention', 'ffn', 'residual'];
export const GROUP_LABEL: Readonly<Record<PermuteGroup, string>> = {
  cnn: 'CNN blocks',
  attention: 'attention',
  ffn: 'FFN',
  residual: 'residual',
};

/**
 * Selection key of a tap's place in the network: `cnn:i` (conv block i), `layer:l` (transformer layer l,
 * shared by its attention and FFN taps, so a click on one selects the layer in every chart), or the group
 * name for a tap without a layer (the residual stream).
 */
export function tapKey(t: Pick<TapReport, 'group' | 'layer'>): string {
  if (t.layer === null) return t.group;
  return t.group === 'cnn' ? `cnn:${t.layer}` : `layer:${t.layer}`;
}

/** Axis label of a key: `C3` for conv block 3, `7` for layer 7, `res` for the residual stream. */
export function keyLabel(key: string): string {
  if (key.startsWith('cnn:')) return `C${key.slice(4)}`;
  if (key.startsWith('layer:')) return key.slice(6);
  return key === 'residual' ? 'res' : key;
}

/** Taps in network order: conv blocks, then layers (attention before FFN), then layer-less taps. */
export function orderedTaps(report: MergeReport): TapReport[] {
  const rank = (t: TapReport) => {
    const g = GROUP_ORDER.indexOf(t.group);
    if (t.layer === null) return 1e6 + g;
    return (t.group === 'cnn' ? 0 : 1e3) + t.layer * 10 + g;
  };
  return [...report.align.taps].sort((a, b) => rank(a) - rank(b));
}

/** Distinct keys in network order: the x domain shared by the per-layer charts. */
export function keyDomain(report: MergeReport): string[] {
  return [...new Set(orderedTaps(report).map(tapKey))];
}

export interface TapStageRow {
  key: string;
  position: string;
  tap: string;
  group: string;
  layer: number | null;
  stage: 'before' | 'after';
  correlation: number;
}

export function correlationRows(report: MergeReport): TapStageRow[] {
  return orderedTaps(report).flatMap((t) =>
    (['before', 'after'] as const).map((stage) => ({
      key: tapKey(t),
      position: keyLabel(tapKey(t)),
      tap: t.tap,
      group: GROUP_LABEL[t.group],
      layer: t.layer,
      stage,
      correlation: stage === 'before' ? t.meanCorrelationBefore : t.meanCorrelationAfter,
    })),
  );
}

/**
 * The tap whose matrices a selection shows: the tap of that key in `prefer` group when there is one (attention
 * for the head scores), else the first tap of the key in network order.
 */
export function tapForKey(report: MergeReport, key: string | null, prefer?: PermuteGroup): TapReport | undefined {
  const taps = orderedTaps(report);
  const of = taps.filter((t) => tapKey(t) === key);
  return of.find((t) => t.group === prefer) ?? of[0];
}

/** The side of a stored square matrix (row-major, side²); throws on a length that is not a square. */
export function squareSide(values: readonly number[]): number {
  const n = Math.round(Math.sqrt(values.length));
  if (n * n !== values.length) throw new Error(`matrix of ${values.length} values is not square`);
  return n;
}

export interface MatrixCell {
  stage: 'before' | 'after';
  row: number;
  col: number;
  value: number;
}

/** Heatmap cells of a tap, before and after; the side comes from the data (≤ 64 blocks). */
export function heatmapCells(tap: TapReport): MatrixCell[] {
  if (!tap.heatmap) return [];
  const cells: MatrixCell[] = [];
  for (const stage of ['before', 'after'] as const) {
    const m = tap.heatmap[stage];
    const n = squareSide(m);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) cells.push({ stage, row: i, col: j, value: m[i * n + j]! });
  }
  return cells;
}

export interface HeadCell {
  anchorHead: number;
  otherHead: number;
  score: number;
  /** The best other head for this anchor head (row maximum). */
  best: boolean;
}

export function headCells(tap: TapReport): HeadCell[] {
  const m = tap.headScores;
  if (!m) return [];
  const n = squareSide(m);
  const cells: HeadCell[] = [];
  for (let a = 0; a < n; a++) {
    let best = 0;
    for (let b = 1; b < n; b++) if (m[a * n + b]! > m[a * n + best]!) best = b;
    for (let b = 0; b < n; b++) cells.push({ anchorHead: a, otherHead: b, score: m[a * n + b]!, best: b === best });
  }
  return cells;
}

export type Variant = EvaluationRow['variant'];
/** The rows every run has, in chart order (`linear` is version 1's name for `unaligned`); a recipe's variants follow. */
export const BUILTIN_VARIANTS: readonly Variant[] = ['anchor', 'other', 'unaligned', 'linear', 'permuted'];

/** The systems present in these rows: built-in rows first, then variants in the order the report lists them. */
export function variantOrder(rows: readonly { variant: Variant }[]): Variant[] {
  const present = [...new Set(rows.map((r) => r.variant))];
  return [...BUILTIN_VARIANTS.filter((v) => present.includes(v)), ...present.filter((v) => !BUILTIN_VARIANTS.includes(v))];
}

/** Parameter count per system (sources from `models`, merges from version 2's `systems`). */
export function parameterCounts(report: MergeReport): Map<Variant, number> {
  return new Map<Variant, number>([
    ['anchor', report.models.anchor.parameters],
    ['other', report.models.other.parameters],
    ...(report.systems ?? []).map((s) => [s.name, s.parameters] as const),
  ]);
}

/** Tasks in report order (speech tasks before music tasks when the report lists them so). */
export function tasks(report: MergeReport): string[] {
  return [...new Set((report.evaluation?.rows ?? []).map((r) => r.task))];
}

/** Averages as evaluation-like rows under the task name `average`. */
export function averageRows(report: MergeReport): { variant: Variant; lambda: number | null; task: string; score: number }[] {
  return (report.evaluation?.averages ?? []).map((a) => ({ variant: a.variant, lambda: a.lambda, task: 'average', score: a.average }));
}

/** Overall mean before/after over all taps, and the tap with the lowest correlation after permutation. */
export function correlationSummary(report: MergeReport): { before: number; after: number; worst: TapReport | null } | null {
  const taps = report.align.taps;
  if (taps.length === 0) return null;
  const mean = (f: (t: TapReport) => number) => taps.reduce((s, t) => s + f(t), 0) / taps.length;
  const worst = taps.reduce((w, t) => (t.meanCorrelationAfter < w.meanCorrelationAfter ? t : w));
  return { before: mean((t) => t.meanCorrelationBefore), after: mean((t) => t.meanCorrelationAfter), worst };
}
