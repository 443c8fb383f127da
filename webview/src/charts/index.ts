/** The charts of each panel, in display order, from a report. */
import type { PanelKind } from '../../../protocol/panels';
import type { MergeReport } from '../../../protocol/report';
import { correlationByLayerChart, headScoresChart, heatmapChart, movedChart, selectedKey, type ChartOptions } from './correlation';
import { tapForKey, tapKey } from './data';
import type { ChartModel } from './model';
import { averageScoreChart, scoreByLambdaChart } from './results';

export { toCsv, formatCell, type ChartModel, type Table, type TableColumn } from './model';
export * from './data';
export { defaultTheme, vegaConfig, type ThemeColors, type ThemeKind } from './theme';
export { selectedKey, type ChartOptions };

/** The tap first selected: the one with a matrix and the lowest correlation after permutation (what to look at). */
export function initialSelection(report: MergeReport): string | null {
  const taps = report.align.taps.filter((t) => t.heatmap);
  const pool = taps.length > 0 ? taps : report.align.taps;
  if (pool.length === 0) return null;
  return pool.reduce((w, t) => (t.meanCorrelationAfter < w.meanCorrelationAfter ? t : w)).tap;
}

export function correlationCharts(report: MergeReport, o: ChartOptions): ChartModel[] {
  if (report.align.taps.length === 0) return [];
  const charts: ChartModel[] = [correlationByLayerChart(report, o), movedChart(report, o)];
  const tap = report.align.taps.find((t) => t.tap === o.selected);
  const key = selectedKey(report, o.selected);
  // The selected tap's matrix, or that of another tap of the same layer when it has none.
  const withMatrix = tap?.heatmap ? tap : report.align.taps.find((t) => t.heatmap && tapKey(t) === key);
  const heat = withMatrix ? heatmapChart(withMatrix, o) : null;
  if (heat) charts.push(heat);
  const attn = key === null ? undefined : tapForKey(report, key, 'attention');
  const heads = attn?.group === 'attention' ? headScoresChart(attn, o) : null;
  if (heads) charts.push(heads);
  return charts;
}

export function resultsCharts(report: MergeReport, o: Omit<ChartOptions, 'selected'>): ChartModel[] {
  return [scoreByLambdaChart(report, o), averageScoreChart(report, o)].filter((c): c is ChartModel => c !== null);
}

/** Each panel's charts: a new panel kind (protocol/panels.ts) is a compile error here until it has its builder. */
const PANEL_CHARTS: Record<PanelKind, (report: MergeReport, o: ChartOptions) => ChartModel[]> = {
  correlation: correlationCharts,
  results: resultsCharts,
};

export function panelCharts(kind: PanelKind, report: MergeReport, o: ChartOptions): ChartModel[] {
  return PANEL_CHARTS[kind](report, o);
}
