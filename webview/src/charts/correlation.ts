/**
 * Correlation diagnostics: per-layer mean diagonal correlation before/after permutation, fraction of units
 * moved, a tap's block-averaged correlation matrix before/after, and the attention head-pair scores.
 * The per-layer charts share the `selected` param (a tap key) and a click `pick` selection; the panel copies a
 * pick from one chart into the others' `selected` and rebuilds the matrix charts for it.
 */
import type { TopLevelSpec } from 'vega-lite';
import type { MergeReport, TapReport } from '../../../protocol/report';
import {
  GROUP_LABEL,
  GROUP_ORDER,
  correlationRows,
  headCells,
  heatmapCells,
  keyDomain,
  keyLabel,
  orderedTaps,
  squareSide,
  tapKey,
} from './data';
import { PICK_PARAM, SELECTED_SIGNAL, type ChartModel } from './model';
import { correlationScheme, isDark, isHighContrast, seriesColors, vegaConfig, type ThemeColors } from './theme';

export interface ChartOptions {
  theme: ThemeColors;
  /** Width available to the chart (the card's inner width) in CSS pixels. */
  width: number;
  /** Selected tap (its name, e.g. `layer.3.attn`), or null; the per-layer charts highlight its layer. */
  selected: string | null;
}

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';
/** Room for the y axis, its title and padding, so the plot fits the card. */
const Y_AXIS_ROOM = 64;
/** Width of a heatmap's colour legend with its title, and the gap between the before and after matrices. */
const HEATMAP_LEGEND_ROOM = 80;
const HEATMAP_GAP = 24;

const selectedTest = `${SELECTED_SIGNAL} !== null && datum.key === ${SELECTED_SIGNAL}`;

/** The `selected` signal's value: the key (layer) of the selected tap. */
export function selectedKey(report: MergeReport, tap: string | null): string | null {
  const t = report.align.taps.find((x) => x.tap === tap);
  return t ? tapKey(t) : null;
}

function pickParam() {
  // Point selection on the tap key; clicks replace it (no toggle) and keep it (no clear), like a list selection.
  return { name: PICK_PARAM, select: { type: 'point' as const, fields: ['tap'], on: 'click', toggle: false, clear: false } };
}

export function correlationByLayerChart(report: MergeReport, o: ChartOptions): ChartModel {
  const rows = correlationRows(report);
  const colors = seriesColors(o.theme);
  const groups = GROUP_ORDER.map((g) => GROUP_LABEL[g]).filter((g) => rows.some((r) => r.group === g));
  const x = {
    field: 'position',
    type: 'ordinal' as const,
    sort: keyDomain(report).map(keyLabel),
    title: 'conv block (C) · transformer layer',
    axis: { labelAngle: 0 },
  };
  const minY = Math.min(0, ...rows.map((r) => r.correlation));
  const y = { field: 'correlation', type: 'quantitative' as const, title: 'mean diagonal correlation', scale: { domain: [minY, 1] } };
  const color = {
    field: 'group',
    type: 'nominal' as const,
    title: null,
    scale: { domain: groups, range: groups.map((g) => colors.group[g as keyof typeof colors.group]) },
  };
  const spec: TopLevelSpec = {
    $schema: SCHEMA,
    description: 'Mean diagonal correlation per tap before and after permutation',
    width: Math.max(240, o.width - Y_AXIS_ROOM),
    height: 220,
    config: vegaConfig(o.theme),
    data: { values: rows },
    params: [{ name: SELECTED_SIGNAL, value: selectedKey(report, o.selected) }],
    encoding: { x },
    layer: [
      {
        transform: [{ filter: selectedTest }],
        mark: { type: 'rule', color: o.theme.foreground, opacity: 0.35, strokeWidth: isHighContrast(o.theme) ? 3 : 2 },
      },
      {
        mark: { type: 'line' },
        encoding: {
          y,
          color,
          strokeDash: {
            field: 'stage',
            type: 'nominal',
            title: null,
            scale: {
              domain: ['before', 'after'],
              range: [
                [4, 3],
                [1, 0],
              ],
            },
          },
          detail: { field: 'stage' },
        },
      },
      {
        mark: { type: 'point', cursor: 'pointer' },
        params: [pickParam()],
        encoding: {
          y,
          color,
          shape: { field: 'stage', type: 'nominal', title: null, scale: { domain: ['before', 'after'], range: ['circle', 'diamond'] } },
          size: { condition: { test: selectedTest, value: 160 }, value: 45 },
          tooltip: [
            { field: 'tap', title: 'tap' },
            { field: 'stage', title: 'stage' },
            { field: 'correlation', title: 'mean correlation', format: '.3f' },
          ],
        },
      },
    ],
  };
  return {
    id: 'correlation-by-layer',
    title: 'Mean diagonal correlation, before → after permutation',
    description: `Mean diagonal correlation of ${new Set(rows.map((r) => r.tap)).size} taps before (dashed) and after (solid) permutation, conv blocks then transformer layers. Click a point to select its layer.`,
    spec,
    table: {
      columns: [
        { key: 'tap', title: 'tap' },
        { key: 'group', title: 'group' },
        { key: 'layer', title: 'layer' },
        { key: 'before', title: 'before', decimals: 3 },
        { key: 'after', title: 'after', decimals: 3 },
      ],
      rows: orderedTaps(report).map((t) => ({
        tap: t.tap,
        group: t.group,
        layer: t.layer,
        before: t.meanCorrelationBefore,
        after: t.meanCorrelationAfter,
      })),
    },
  };
}

export function movedChart(report: MergeReport, o: ChartOptions): ChartModel {
  const taps = orderedTaps(report);
  const colors = seriesColors(o.theme);
  const rows = taps.map((t) => ({
    key: tapKey(t),
    position: keyLabel(tapKey(t)),
    tap: t.tap,
    group: GROUP_LABEL[t.group],
    moved: t.moved,
    units: t.units,
  }));
  const groups = GROUP_ORDER.map((g) => GROUP_LABEL[g]).filter((g) => rows.some((r) => r.group === g));
  const spec: TopLevelSpec = {
    $schema: SCHEMA,
    description: 'Fraction of units moved by the permutation per tap',
    width: Math.max(240, o.width - Y_AXIS_ROOM),
    height: 160,
    config: vegaConfig(o.theme),
    data: { values: rows },
    // A unit spec's top-level params hold both the variable and the click selection.
    params: [{ name: SELECTED_SIGNAL, value: selectedKey(report, o.selected) }, pickParam()],
    mark: { type: 'bar', cursor: 'pointer' },
    encoding: {
      x: {
        field: 'position',
        type: 'ordinal',
        sort: keyDomain(report).map(keyLabel),
        title: 'conv block (C) · transformer layer',
        axis: { labelAngle: 0 },
      },
      xOffset: { field: 'group', type: 'nominal', sort: groups },
      y: { field: 'moved', type: 'quantitative', title: 'units moved', scale: { domain: [0, 1] }, axis: { format: '%' } },
      color: {
        field: 'group',
        type: 'nominal',
        title: null,
        scale: { domain: groups, range: groups.map((g) => colors.group[g as keyof typeof colors.group]) },
      },
      opacity: { condition: { test: `${SELECTED_SIGNAL} === null || datum.key === ${SELECTED_SIGNAL}`, value: 1 }, value: 0.45 },
      tooltip: [
        { field: 'tap', title: 'tap' },
        { field: 'moved', title: 'moved', format: '.1%' },
        { field: 'units', title: 'units' },
      ],
    },
  };
  return {
    id: 'units-moved',
    title: 'Units moved by the permutation',
    description: `Fraction of units each of ${taps.length} taps' permutations moved. Click a bar to select its layer.`,
    spec,
    table: {
      columns: [
        { key: 'tap', title: 'tap' },
        { key: 'group', title: 'group' },
        { key: 'units', title: 'units' },
        { key: 'moved', title: 'moved', decimals: 3 },
      ],
      rows: rows.map(({ tap, group, units, moved }) => ({ tap, group, units, moved })),
    },
  };
}

function cellSize(available: number, side: number, min: number, max: number): number {
  return Math.max(min, Math.min(max, Math.floor(available / side)));
}

/** The tap's block-averaged correlation matrix before (identity order) and after permutation, same colour scale. */
export function heatmapChart(tap: TapReport, o: ChartOptions): ChartModel | null {
  if (!tap.heatmap) return null;
  const n = squareSide(tap.heatmap.after);
  const sampled = tap.heatmap.units !== undefined;
  const perBlock = sampled ? 1 : Math.max(1, Math.round(tap.units / n));
  // Two matrices side by side, plus one y axis title, the gap between them and the colour legend. Cells may be
  // fractional: a 64-unit sample must still fit a half-width card (≈ 500 px).
  const cell = Math.min(14, Math.max(1, (o.width - Y_AXIS_ROOM - HEATMAP_LEGEND_ROOM - HEATMAP_GAP) / 2 / n));
  // A sampled matrix (pipeline/heatmap.ts): n of the units, ranked by matched correlation, best first.
  const axisTitle = sampled ? ` (${n} of ${tap.units}, best matched first)` : perBlock > 1 ? ` (blocks of ${perBlock})` : '';
  const spec: TopLevelSpec = {
    $schema: SCHEMA,
    description: `Correlation matrix of ${tap.tap} before and after permutation`,
    config: vegaConfig(o.theme),
    data: { values: heatmapCells(tap) },
    facet: {
      column: {
        field: 'stage',
        type: 'nominal',
        sort: ['before', 'after'],
        title: null,
        header: { labelExpr: "datum.value === 'before' ? 'before (identity order)' : 'after permutation'" },
      },
    },
    spec: {
      width: cell * n,
      height: cell * n,
      mark: { type: 'rect' },
      encoding: {
        x: { field: 'col', type: 'ordinal', title: `other units${axisTitle}`, axis: { labels: false, ticks: false } },
        y: { field: 'row', type: 'ordinal', title: `anchor units${axisTitle}`, axis: { labels: false, ticks: false } },
        color: {
          field: 'value',
          type: 'quantitative',
          title: 'r',
          scale: { scheme: correlationScheme(o.theme), domain: [-1, 1], reverse: !isDark(o.theme) },
          legend: { orient: 'right', direction: 'vertical', gradientLength: Math.min(160, cell * n) },
        },
        tooltip: [
          { field: 'stage', title: 'stage' },
          { field: 'row', title: perBlock > 1 ? 'anchor block' : 'anchor unit' },
          { field: 'col', title: perBlock > 1 ? 'other block' : 'other unit' },
          { field: 'value', title: 'r', format: '.3f' },
        ],
      },
    },
    resolve: { scale: { color: 'shared' } },
  };
  return {
    id: 'correlation-heatmap',
    title: `Correlation matrix of ${tap.tap}`,
    description: `${tap.tap}: ${n}×${n} block-averaged anchor × other correlation matrix before permutation (units in their own order) and after (other units reordered), ${tap.units} units.`,
    spec,
    table: {
      columns: [
        { key: 'stage', title: 'stage' },
        { key: 'row', title: 'anchor block' },
        { key: 'col', title: 'other block' },
        { key: 'value', title: 'r', decimals: 3 },
      ],
      rows: heatmapCells(tap).map((c) => ({ ...c })),
    },
  };
}

/** Attention head-pair scores (mean in-head matched correlation), the best other head per anchor head outlined. */
export function headScoresChart(tap: TapReport, o: ChartOptions): ChartModel | null {
  if (!tap.headScores) return null;
  const cells = headCells(tap);
  const n = squareSide(tap.headScores);
  const cell = cellSize(o.width - 2 * Y_AXIS_ROOM, n, 14, 34);
  const max = Math.max(...cells.map((c) => c.score));
  const min = Math.min(0, ...cells.map((c) => c.score));
  const dark = isDark(o.theme);
  const headTooltip = [
    { field: 'anchorHead', title: 'anchor head' },
    { field: 'otherHead', title: 'other head' },
    { field: 'score', title: 'score', format: '.3f' },
    { field: 'best', title: 'row maximum' },
  ];
  const spec: TopLevelSpec = {
    $schema: SCHEMA,
    description: `Head-pair scores of ${tap.tap}`,
    config: vegaConfig(o.theme),
    width: cell * n,
    height: cell * n,
    data: { values: cells },
    encoding: {
      x: { field: 'otherHead', type: 'ordinal', title: 'other head', axis: { labelAngle: 0, orient: 'top' } },
      y: { field: 'anchorHead', type: 'ordinal', title: 'anchor head' },
    },
    layer: [
      {
        mark: { type: 'rect' },
        encoding: {
          color: {
            field: 'score',
            type: 'quantitative',
            title: 'score',
            scale: { scheme: dark ? 'viridis' : 'blues', domain: [min, max] },
            legend: { orient: 'right', direction: 'vertical' },
          },
          stroke: { condition: { test: 'datum.best', value: o.theme.foreground }, value: null },
          strokeWidth: { condition: { test: 'datum.best', value: isHighContrast(o.theme) ? 3 : 2 }, value: 0 },
          tooltip: headTooltip,
        },
      },
      ...(cell >= 24
        ? [
            {
              mark: { type: 'text' as const, fontSize: Math.min(11, cell / 2.8) },
              encoding: {
                text: { field: 'score', type: 'quantitative' as const, format: '.2f' },
                // The label covers most of its cell: it carries the cell's tooltip.
                tooltip: headTooltip,
                // Light text on the dark end of either scheme, dark text on the light end.
                color: {
                  condition: { test: `datum.score ${dark ? '<' : '>'} ${(min + max) / 2}`, value: '#ffffff' },
                  value: '#1e1e1e',
                },
              },
            },
          ]
        : []),
    ],
  };
  return {
    id: 'head-scores',
    title: `Head-pair scores of ${tap.tap}`,
    description: `${n}×${n} attention head-pair score matrix of ${tap.tap} (mean in-head matched correlation); the best other head of each anchor head is outlined.`,
    spec,
    table: {
      columns: [
        { key: 'anchorHead', title: 'anchor head' },
        { key: 'otherHead', title: 'other head' },
        { key: 'score', title: 'score', decimals: 3 },
        { key: 'best', title: 'row maximum' },
      ],
      rows: cells.map((c) => ({ ...c, best: c.best ? 'yes' : '' })),
    },
  };
}
