/**
 * Merge results: score vs λ per task for every merged system — the unaligned merge, the permuted merge (the recipe's
 * main settings) and the recipe's variants — with the two source models as reference rules, and the same for the
 * average over tasks (whose table adds each system's parameter count).
 */
import type { TopLevelSpec } from 'vega-lite';
import type { MergeReport } from '../../../protocol/report';
import { averageRows, parameterCounts, tasks, variantOrder, type Variant } from './data';
import type { ChartModel, Table } from './model';
import { seriesColors, vegaConfig, type ThemeColors } from './theme';

export interface ResultsOptions {
  theme: ThemeColors;
  width: number;
}

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';
const BUILTIN_LABEL: Readonly<Record<string, string>> = {
  anchor: 'anchor model',
  other: 'other model',
  unaligned: 'unaligned merge',
  linear: 'unaligned merge', // version 1 reports
  permuted: 'permuted merge',
};
/** A variant is labelled by its recipe name. */
const variantLabel = (v: Variant) => BUILTIN_LABEL[v] ?? v;

/** Built-in rows keep their colours; variants take the remaining series colours in turn. */
function variantColor(v: Variant, order: readonly Variant[], theme: ThemeColors): string {
  const fixed = seriesColors(theme).variant;
  const builtin = v === 'linear' ? fixed.unaligned : (fixed as Readonly<Record<string, string>>)[v];
  if (builtin) return builtin;
  const spare = [theme.red, theme.yellow, theme.blue, theme.orange, theme.green, theme.purple];
  return spare[order.filter((x) => !BUILTIN_LABEL[x]).indexOf(v) % spare.length]!;
}

interface ScoreRow {
  variant: Variant;
  label: string;
  lambda: number | null;
  task: string;
  score: number;
}

function scoreTable(rows: ScoreRow[], parameters?: ReadonlyMap<Variant, number>): Table {
  return {
    columns: [
      { key: 'task', title: 'task' },
      { key: 'variant', title: 'variant' },
      { key: 'lambda', title: 'λ' },
      { key: 'score', title: 'score', decimals: 3 },
      ...(parameters ? [{ key: 'parameters', title: 'parameters' }] : []),
    ],
    rows: rows.map(({ task, variant, lambda, score }) => ({
      task,
      variant,
      lambda,
      score,
      ...(parameters ? { parameters: parameters.get(variant) ?? null } : {}),
    })),
  };
}

/** The layered score-vs-λ unit: rules for the source models (no λ), lines for the merges. */
function scoreLayers(rows: ScoreRow[], theme: ThemeColors) {
  const present = variantOrder(rows);
  const color = {
    field: 'label',
    type: 'nominal' as const,
    title: null,
    scale: { domain: present.map(variantLabel), range: present.map((v) => variantColor(v, present, theme)) },
  };
  const lambdas = rows.flatMap((r) => (r.lambda === null ? [] : [r.lambda]));
  const lo = Math.min(...lambdas);
  const hi = Math.max(...lambdas);
  const pad = lambdas.length > 0 && hi > lo ? (hi - lo) * 0.08 : 0.05;
  const y = { field: 'score', type: 'quantitative' as const, title: 'score', scale: { domain: [0, 1] }, axis: { format: '.0%' } };
  const tooltip = [
    { field: 'task', title: 'task' },
    { field: 'label', title: 'variant' },
    { field: 'lambda', title: 'λ' },
    { field: 'score', title: 'score', format: '.3f' },
  ];
  return [
    {
      transform: [{ filter: 'datum.lambda === null' }],
      mark: { type: 'rule' as const, strokeDash: [6, 4] },
      encoding: { y, color, tooltip },
    },
    {
      transform: [{ filter: 'datum.lambda !== null' }],
      mark: { type: 'line' as const, point: true },
      encoding: {
        x: {
          field: 'lambda',
          type: 'quantitative' as const,
          title: 'λ (anchor weight)',
          scale: { domain: [lo - pad, hi + pad], nice: false, zero: false },
          axis: { values: [...new Set(lambdas)].sort((a, b) => a - b), format: '.2~f' },
        },
        y,
        color,
        tooltip,
      },
    },
  ];
}

function toScoreRows(rows: { variant: Variant; lambda: number | null; task: string; score: number }[]): ScoreRow[] {
  return rows.map((r) => ({ variant: r.variant, label: variantLabel(r.variant), lambda: r.lambda, task: r.task, score: r.score }));
}

/** Score vs λ, one small multiple per task. Null when the report has no evaluation. */
export function scoreByLambdaChart(report: MergeReport, o: ResultsOptions): ChartModel | null {
  if (!report.evaluation || report.evaluation.rows.length === 0) return null;
  const rows = toScoreRows(report.evaluation.rows);
  const names = tasks(report);
  // As many columns as fit at ≥ 260 px each (facet axes take ~70 px of that).
  // Balanced rows: 4 tasks where 3 fit make 2 × 2, not 3 + 1.
  const fit = Math.max(1, Math.floor(o.width / 260));
  const columns = fit >= names.length ? names.length : Math.ceil(names.length / Math.ceil(names.length / fit));
  const width = Math.max(160, Math.floor(o.width / columns) - 70);
  const spec: TopLevelSpec = {
    $schema: SCHEMA,
    description: 'Score vs λ per task for each merged system',
    config: vegaConfig(o.theme),
    data: { values: rows },
    facet: { field: 'task', type: 'nominal', sort: names, title: null },
    columns,
    spec: { width, height: 170, layer: scoreLayers(rows, o.theme) },
  };
  return {
    id: 'score-by-lambda',
    title: 'Score vs λ per task',
    description: `Test score against the merge weight λ for ${names.length} task${names.length === 1 ? '' : 's'}: each merged system as a line, the anchor and other models as dashed reference lines.`,
    spec,
    table: scoreTable(rows),
  };
}

/** Score vs λ averaged over tasks. Null when the report has no evaluation. */
export function averageScoreChart(report: MergeReport, o: ResultsOptions): ChartModel | null {
  const avg = averageRows(report);
  if (avg.length === 0) return null;
  const rows = toScoreRows(avg);
  const spec: TopLevelSpec = {
    $schema: SCHEMA,
    description: 'Average score over tasks vs λ',
    config: vegaConfig(o.theme),
    data: { values: rows },
    width: Math.max(240, Math.min(o.width, 720) - 64),
    height: 220,
    layer: scoreLayers(rows, o.theme),
  };
  return {
    id: 'average-score',
    title: 'Average over tasks',
    description:
      "Average test score over all tasks against λ: each merged system (unaligned, permuted, the recipe's variants) as a line, the source models as dashed reference lines; the table adds parameter counts.",
    spec,
    table: scoreTable(rows, parameterCounts(report)),
  };
}
