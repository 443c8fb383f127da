/**
 * Merge results: score vs λ per task for the linear (unaligned) and permuted (aligned) merges, with the two
 * source models as reference rules, and the same for the average over tasks.
 */
import type { TopLevelSpec } from 'vega-lite';
import type { MergeReport } from '../../../protocol/report';
import { VARIANT_ORDER, averageRows, tasks, type Variant } from './data';
import type { ChartModel, Table } from './model';
import { seriesColors, vegaConfig, type ThemeColors } from './theme';

export interface ResultsOptions {
  theme: ThemeColors;
  width: number;
}

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';
const VARIANT_LABEL: Readonly<Record<Variant, string>> = {
  anchor: 'anchor model',
  other: 'other model',
  linear: 'linear merge',
  permuted: 'permuted merge',
};

interface ScoreRow {
  variant: Variant;
  label: string;
  lambda: number | null;
  task: string;
  score: number;
}

function scoreTable(rows: ScoreRow[]): Table {
  return {
    columns: [
      { key: 'task', title: 'task' },
      { key: 'variant', title: 'variant' },
      { key: 'lambda', title: 'λ' },
      { key: 'score', title: 'score', decimals: 3 },
    ],
    rows: rows.map(({ task, variant, lambda, score }) => ({ task, variant, lambda, score })),
  };
}

/** The layered score-vs-λ unit: rules for the source models (no λ), lines for the merges. */
function scoreLayers(rows: ScoreRow[], theme: ThemeColors) {
  const colors = seriesColors(theme);
  const present = VARIANT_ORDER.filter((v) => rows.some((r) => r.variant === v));
  const color = {
    field: 'label',
    type: 'nominal' as const,
    title: null,
    scale: { domain: present.map((v) => VARIANT_LABEL[v]), range: present.map((v) => colors.variant[v]) },
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
  return rows.map((r) => ({ variant: r.variant, label: VARIANT_LABEL[r.variant], lambda: r.lambda, task: r.task, score: r.score }));
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
    description: 'Score vs λ per task for linear and permuted merges',
    config: vegaConfig(o.theme),
    data: { values: rows },
    facet: { field: 'task', type: 'nominal', sort: names, title: null },
    columns,
    spec: { width, height: 170, layer: scoreLayers(rows, o.theme) },
  };
  return {
    id: 'score-by-lambda',
    title: 'Score vs λ per task',
    description: `Test score against the merge weight λ for ${names.length} tasks: linear and permuted merges as lines, the anchor and other models as dashed reference lines.`,
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
    description: 'Average test score over all tasks against λ: linear and permuted merges as lines, the source models as dashed reference lines.',
    spec,
    table: scoreTable(rows),
  };
}
