/**
 * Chart builders: every spec compiles with vega-lite and renders to SVG headless with vega's View under the
 * webview's settings (AST parse + expression interpreter, no eval); marks and data are what the report says.
 */
import { readFileSync } from 'node:fs';
import * as vega from 'vega';
import { expressionInterpreter } from 'vega-interpreter';
import { compile } from 'vega-lite';
import { describe, expect, it } from 'vitest';
import type { MergeReport } from '../../server/src/engine/pipeline/report';
import {
  correlationCharts,
  defaultTheme,
  initialSelection,
  panelCharts,
  resultsCharts,
  selectedKey,
  tapKey,
  toCsv,
  type ChartModel,
} from '../../webview/src/charts/index';
import { headCells, heatmapCells, keyDomain } from '../../webview/src/charts/data';
import { PICK_PARAM, SELECTED_SIGNAL } from '../../webview/src/charts/model';

const report = JSON.parse(readFileSync(new URL('../fixtures/reports/example.report.json', import.meta.url), 'utf8')) as MergeReport;
const theme = defaultTheme('dark');
const opts = { theme, width: 760, selected: 'layer.5.attn' };

async function render(chart: ChartModel) {
  const vg = compile(chart.spec).spec;
  const view = new vega.View(vega.parse(vg, undefined, { ast: true }), { expr: expressionInterpreter, renderer: 'none' });
  const svg = await view.toSVG();
  return { vg, view, svg };
}

/** Items of every mark of this type in the scenegraph (walks groups, facets included). */
function items(view: vega.View, markType: string): vega.Item[] {
  const out: vega.Item[] = [];
  const walk = (node: { marktype?: string; items?: unknown[] }) => {
    for (const it of (node.items ?? []) as { items?: unknown[]; mark?: { marktype: string } }[]) {
      if (node.marktype === markType) out.push(it as unknown as vega.Item);
      for (const child of (it.items ?? []) as { marktype?: string; items?: unknown[] }[]) walk(child);
    }
  };
  walk((view.scenegraph() as unknown as { root: { marktype?: string; items?: unknown[] } }).root);
  return out;
}

/** Line marks drawn: vega draws one line mark (with one item per point) per series. */
function lineCount(view: vega.View): number {
  let n = 0;
  const walk = (node: { marktype?: string; items?: unknown[] }) => {
    if (node.marktype === 'line' && (node.items?.length ?? 0) > 0) n++;
    for (const it of (node.items ?? []) as { items?: unknown[] }[])
      for (const child of (it.items ?? []) as { marktype?: string; items?: unknown[] }[]) walk(child);
  };
  walk((view.scenegraph() as unknown as { root: { marktype?: string; items?: unknown[] } }).root);
  return n;
}

const byId = (charts: ChartModel[], id: string) => {
  const c = charts.find((x) => x.id === id);
  if (!c) throw new Error(`no chart ${id}`);
  return c;
};

describe('correlation charts', () => {
  const charts = correlationCharts(report, opts);

  it('builds the four diagnostics for a selected attention tap', () => {
    expect(charts.map((c) => c.id)).toEqual(['correlation-by-layer', 'units-moved', 'correlation-heatmap', 'head-scores']);
    for (const c of charts) {
      expect(c.title.length).toBeGreaterThan(0);
      expect(c.description.length).toBeGreaterThan(20);
    }
  });

  it('per-layer correlation: one point per tap and stage, lines per group and stage, a rule at the selected layer', async () => {
    const { svg, view } = await render(byId(charts, 'correlation-by-layer'));
    const taps = report.align.taps.length;
    expect(items(view, 'symbol').filter((i) => (i as unknown as { datum?: { tap?: string } }).datum?.tap).length).toBe(2 * taps);
    // 4 groups × 2 stages (the residual line has one point: still one line item each).
    expect(lineCount(view)).toBe(8);
    // layer 5 has an attention and an FFN tap, two stages each: four rules at the same x.
    const rules = items(view, 'rule').filter((i) => (i as unknown as { datum?: { key?: string } }).datum?.key === 'layer:5');
    expect(rules.length).toBe(4);
    expect(svg).toContain('<svg');
    expect(svg).toContain('mean diagonal correlation');
    expect(view.signal(SELECTED_SIGNAL)).toBe('layer:5');
  });

  it('per-layer x domain: conv blocks, then layers, then the residual stream', () => {
    const d = keyDomain(report);
    expect(d.slice(0, 8)).toEqual(['cnn:0', 'cnn:1', 'cnn:2', 'cnn:3', 'cnn:4', 'cnn:5', 'cnn:6', 'layer:0']);
    expect(d.at(-1)).toBe('residual');
    expect(d.length).toBe(7 + 12 + 1);
  });

  it('units moved: one bar per tap, the selected layer opaque and the others faded', async () => {
    const { view } = await render(byId(charts, 'units-moved'));
    const bars = items(view, 'rect').filter((i) => (i as unknown as { datum?: { tap?: string } }).datum?.tap);
    expect(bars.length).toBe(report.align.taps.length);
    const opacity = (tap: string) =>
      (bars.find((b) => (b as unknown as { datum: { tap: string } }).datum.tap === tap) as unknown as { opacity: number }).opacity;
    expect(opacity('layer.5.ffn')).toBe(1);
    expect(opacity('layer.6.ffn')).toBeLessThan(1);
  });

  it('a new selection through the signal re-highlights without a rebuild (what the panel does on a click elsewhere)', async () => {
    const { view } = await render(byId(charts, 'units-moved'));
    await view.signal(SELECTED_SIGNAL, 'cnn:2').runAsync();
    const bars = items(view, 'rect').filter((i) => (i as unknown as { datum?: { tap?: string } }).datum?.tap);
    const opaque = bars
      .filter((b) => (b as unknown as { opacity: number }).opacity === 1)
      .map((b) => (b as unknown as { datum: { tap: string } }).datum.tap);
    expect(opaque).toEqual(['conv.2']);
  });

  it('declares the click selection on the tap field', () => {
    for (const id of ['correlation-by-layer', 'units-moved']) {
      const vg = compile(byId(charts, id).spec).spec;
      expect(vg.signals?.some((s) => s.name === PICK_PARAM)).toBe(true);
      expect(JSON.stringify(vg)).toContain('"tap"');
    }
  });

  it('heatmap: before and after matrices of the selected tap, side² cells each, one shared colour scale', async () => {
    const tap = report.align.taps.find((t) => t.tap === 'layer.5.attn')!;
    const side = tap.heatmap!.size;
    const { view, vg } = await render(byId(charts, 'correlation-heatmap'));
    const cells = items(view, 'rect').filter((i) => (i as unknown as { datum?: { stage?: string } }).datum?.stage);
    expect(cells.length).toBe(2 * side * side);
    expect(
      heatmapCells(tap)
        .filter((c) => c.stage === 'after')
        .map((c) => c.value),
    ).toEqual(tap.heatmap!.after);
    expect(vg.scales?.filter((s) => s.name === 'color').length).toBe(1);
    expect(byId(charts, 'correlation-heatmap').title).toContain('layer.5.attn');
  });

  it('head scores: heads² cells with value labels, one outlined best head per row', async () => {
    const tap = report.align.taps.find((t) => t.tap === 'layer.5.attn')!;
    const { view } = await render(byId(charts, 'head-scores'));
    expect(items(view, 'rect').filter((i) => (i as unknown as { datum?: { score?: number } }).datum?.score !== undefined).length).toBe(144);
    expect(items(view, 'text').filter((i) => (i as unknown as { datum?: { score?: number } }).datum?.score !== undefined).length).toBe(144);
    const best = headCells(tap).filter((c) => c.best);
    expect(best.length).toBe(12);
    for (const b of best)
      expect(b.score).toBe(
        Math.max(
          ...headCells(tap)
            .filter((c) => c.anchorHead === b.anchorHead)
            .map((c) => c.score),
        ),
      );
  });

  it('an FFN selection shows its own matrix and the head scores of the same layer', () => {
    const c = correlationCharts(report, { ...opts, selected: 'layer.2.ffn' });
    expect(byId(c, 'correlation-heatmap').title).toContain('layer.2.ffn');
    expect(byId(c, 'head-scores').title).toContain('layer.2.attn');
  });

  it('a conv block has no head scores; the residual stream (no layer) is selectable', () => {
    expect(correlationCharts(report, { ...opts, selected: 'conv.1' }).map((c) => c.id)).toEqual([
      'correlation-by-layer',
      'units-moved',
      'correlation-heatmap',
    ]);
    expect(selectedKey(report, 'residual')).toBe('residual');
    expect(byId(correlationCharts(report, { ...opts, selected: 'residual' }), 'correlation-heatmap').title).toContain('residual');
  });

  it('starts on the tap with the worst correlation after permutation', () => {
    const sel = initialSelection(report)!;
    const worst = Math.min(...report.align.taps.map((t) => t.meanCorrelationAfter));
    expect(report.align.taps.find((t) => t.tap === sel)!.meanCorrelationAfter).toBe(worst);
    expect(tapKey(report.align.taps.find((t) => t.tap === sel)!)).toMatch(/^(layer:\d+|cnn:\d|residual)$/);
  });

  it('a report without matrices still charts per-layer statistics', async () => {
    const bare: MergeReport = {
      ...report,
      align: { ...report.align, taps: report.align.taps.map(({ heatmap: _h, headScores: _s, ...t }) => t) },
    };
    const c = correlationCharts(bare, opts);
    expect(c.map((x) => x.id)).toEqual(['correlation-by-layer', 'units-moved']);
    await render(c[0]!);
  });
});

describe('results charts', () => {
  const charts = resultsCharts(report, { theme, width: 760 });
  const ev = report.evaluation!;

  it('score vs λ: a facet per task, merge lines with points, dashed rules for the source models', async () => {
    const { view } = await render(byId(charts, 'score-by-lambda'));
    const tasks = new Set(ev.rows.map((r) => r.task));
    // per task: linear + permuted lines
    expect(lineCount(view)).toBe(2 * tasks.size);
    const rules = items(view, 'rule').filter((i) => (i as unknown as { datum?: { variant?: string } }).datum?.variant);
    expect(rules.length).toBe(2 * tasks.size);
    expect(new Set(rules.map((r) => (r as unknown as { datum: { variant: string } }).datum.variant))).toEqual(new Set(['anchor', 'other']));
    const points = items(view, 'symbol').filter((i) => (i as unknown as { datum?: { lambda?: number } }).datum?.lambda != null);
    expect(points.length).toBe(ev.rows.filter((r) => r.lambda !== null).length);
  });

  it('averages: rules at the source models’ averages, one line per merge', async () => {
    const { view } = await render(byId(charts, 'average-score'));
    expect(lineCount(view)).toBe(2);
    const anchorRule = items(view, 'rule').find(
      (i) => (i as unknown as { datum?: { variant?: string } }).datum?.variant === 'anchor',
    ) as unknown as { datum: { score: number } };
    expect(anchorRule.datum.score).toBe(ev.averages.find((a) => a.variant === 'anchor')!.average);
  });

  it('columns follow the panel width', () => {
    const narrow = compile(resultsCharts(report, { theme, width: 400 })[0]!.spec).spec;
    const wide = compile(resultsCharts(report, { theme, width: 1200 })[0]!.spec).spec;
    const cols = (vg: vega.Spec) => (vg.layout as { columns?: number } | undefined)?.columns;
    expect(cols(narrow)).toBe(1);
    expect(cols(wide)).toBe(4);
  });

  it('version 2 with variants: one more line per variant, labels and colours of their own, parameter counts in the table', async () => {
    const variantRows = ev.rows.filter((r) => r.variant === 'permuted').map((r) => ({ ...r, variant: 'zip125', score: r.score / 2 }));
    const variantAverages = ev.averages.filter((a) => a.variant === 'permuted').map((a) => ({ ...a, variant: 'zip125' }));
    const v2: MergeReport = {
      ...report,
      version: 2,
      systems: [
        {
          name: 'zip125',
          align: { method: 'correlation', permute: ['ffn'], heads: 'reorder' },
          merge: { method: 'linear', repair: false, width: 1.25 },
          parameters: 123456,
        },
      ],
      evaluation: { rows: [...ev.rows, ...variantRows], averages: [...ev.averages, ...variantAverages] },
    };
    const v2Charts = resultsCharts(v2, { theme, width: 760 });
    const { view } = await render(byId(v2Charts, 'score-by-lambda'));
    expect(lineCount(view)).toBe(3 * new Set(ev.rows.map((r) => r.task)).size);
    const avg = byId(v2Charts, 'average-score');
    const table = avg.table.rows.filter((r) => r.variant === 'zip125');
    expect(table.length).toBe(variantAverages.length);
    expect(table.every((r) => r.parameters === 123456)).toBe(true);
    const color = (avg.spec as unknown as { layer: { encoding: { color: { scale: { domain: string[]; range: string[] } } } }[] }).layer[1]!
      .encoding.color.scale;
    expect(color.domain).toContain('zip125');
    expect(new Set(color.range).size).toBe(color.range.length);
  });

  it('no evaluation: no results charts', () => {
    expect(resultsCharts({ ...report, evaluation: null }, { theme, width: 760 })).toEqual([]);
  });

  it('tables and CSV: every evaluation row once, full precision', () => {
    const t = byId(charts, 'score-by-lambda').table;
    expect(t.rows.length).toBe(ev.rows.length);
    const csv = toCsv(t).split('\r\n');
    expect(csv[0]).toBe('task,variant,λ,score');
    expect(csv.length).toBe(ev.rows.length + 2); // header + rows + trailing empty
    expect(csv).toContain(`${ev.rows[2]!.task},${ev.rows[2]!.variant},${ev.rows[2]!.lambda},${ev.rows[2]!.score}`);
  });
});

describe('every chart in every theme', () => {
  for (const kind of ['light', 'dark', 'high-contrast', 'high-contrast-light'] as const) {
    it(`${kind}: compiles and renders`, async () => {
      const t = defaultTheme(kind);
      for (const panel of ['correlation', 'results'] as const) {
        for (const c of panelCharts(panel, report, { theme: t, width: 600, selected: 'layer.0.attn' })) {
          const { svg } = await render(c);
          expect(svg.length, c.id).toBeGreaterThan(1000);
          expect(JSON.stringify(c.spec)).toContain(t.foreground);
        }
      }
    });
  }
});

describe('CSV', () => {
  it('quotes separators and quotes, defuses spreadsheet formulas, leaves nulls empty', () => {
    const csv = toCsv({
      columns: [
        { key: 'a', title: 'a,b' },
        { key: 'b', title: 'b' },
      ],
      rows: [
        { a: 'say "hi"', b: null },
        { a: '=SUM(A1)', b: -0.5 },
      ],
    });
    expect(csv).toBe('"a,b",b\r\n"say ""hi""",\r\n\'=SUM(A1),-0.5\r\n');
  });
});

describe('the real report of the example run (4 layers, 7 conv blocks, head scores)', () => {
  const real = JSON.parse(readFileSync(new URL('../fixtures/reports/speech-music.report.json', import.meta.url), 'utf8')) as MergeReport;
  const selected = initialSelection(real);
  const tapOf = (name: string) => real.align.taps.find((t) => t.tap === name)!;
  const rectsWith = (xs: vega.Item[], field: string) =>
    xs.filter((i) => (i as unknown as { datum?: Record<string, unknown> }).datum?.[field] !== undefined);

  it('starts on its worst tap, an attention tap: per-layer, moved, its heatmap and its head scores', async () => {
    const worst = real.align.taps.reduce((w, t) => (t.meanCorrelationAfter < w.meanCorrelationAfter ? t : w));
    expect(selected).toBe(worst.tap);
    expect(selected).toBe('layer.1.attn.v');
    const charts = correlationCharts(real, { theme, width: 760, selected });
    expect(charts.map((c) => c.id)).toEqual(['correlation-by-layer', 'units-moved', 'correlation-heatmap', 'head-scores']);
    expect(keyDomain(real)).toEqual([
      'cnn:0',
      'cnn:1',
      'cnn:2',
      'cnn:3',
      'cnn:4',
      'cnn:5',
      'cnn:6',
      'layer:0',
      'layer:1',
      'layer:2',
      'layer:3',
    ]);
    const perLayer = await render(byId(charts, 'correlation-by-layer'));
    expect(rectsWith(items(perLayer.view, 'symbol'), 'tap').length).toBe(2 * real.align.taps.length);
    // cnn, attention, ffn × before, after
    expect(lineCount(perLayer.view)).toBe(6);
    const moved = await render(byId(charts, 'units-moved'));
    expect(rectsWith(items(moved.view, 'rect'), 'tap').length).toBe(real.align.taps.length);
    const heat = await render(byId(charts, 'correlation-heatmap'));
    const side = worst.heatmap!.size;
    expect(rectsWith(items(heat.view, 'rect'), 'stage')).toHaveLength(2 * side * side);
    expect(
      heatmapCells(worst)
        .filter((c) => c.stage === 'after')
        .map((c) => c.value),
    ).toEqual(worst.heatmap!.after);
    expect(byId(charts, 'correlation-heatmap').title).toContain(worst.tap);
    // heads × heads scores, the best other head of each anchor head outlined.
    const heads = real.models.anchor.heads;
    const scores = await render(byId(charts, 'head-scores'));
    expect(rectsWith(items(scores.view, 'rect'), 'score')).toHaveLength(heads * heads);
    expect(headCells(worst).filter((c) => c.best)).toHaveLength(heads);
    expect(byId(charts, 'head-scores').title).toContain('layer.1');
  });

  it('a conv block gets its heatmap only; an FFN tap the head scores of its layer', () => {
    const conv = correlationCharts(real, { theme, width: 760, selected: 'conv.4' });
    expect(conv.map((c) => c.id)).toEqual(['correlation-by-layer', 'units-moved', 'correlation-heatmap']);
    expect(headCells(tapOf('conv.4'))).toEqual([]);
    const ffn = correlationCharts(real, { theme, width: 760, selected: 'layer.2.ffn' });
    expect(byId(ffn, 'correlation-heatmap').title).toContain('layer.2.ffn');
    expect(byId(ffn, 'head-scores').title).toContain('layer.2');
  });

  it('results: five tasks over three λ, the sources as rules, the averages', async () => {
    const charts = resultsCharts(real, { theme, width: 760 });
    expect(charts.map((c) => c.id)).toEqual(['score-by-lambda', 'average-score']);
    const { view } = await render(byId(charts, 'score-by-lambda'));
    expect(lineCount(view)).toBe(2 * 5);
    const points = items(view, 'symbol').filter((i) => (i as unknown as { datum?: { lambda?: number } }).datum?.lambda != null);
    expect(points.length).toBe(2 * 5 * 3);
    const avg = await render(byId(charts, 'average-score'));
    expect(lineCount(avg.view)).toBe(2);
    expect(toCsv(byId(charts, 'score-by-lambda').table).split('\r\n')).toHaveLength(real.evaluation!.rows.length + 2);
  });

  for (const kind of ['light', 'dark', 'high-contrast'] as const) {
    it(`${kind}: every chart of both panels compiles and renders`, async () => {
      const t = defaultTheme(kind);
      for (const panel of ['correlation', 'results'] as const) {
        for (const c of panelCharts(panel, real, { theme: t, width: 600, selected }))
          expect((await render(c)).svg.length, c.id).toBeGreaterThan(1000);
      }
    });
  }
});
