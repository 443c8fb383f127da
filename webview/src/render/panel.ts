/**
 * A panel's DOM: header with the run's summary, a tap picker (correlation), and one card per chart with a
 * keyboard-reachable toolbar (table view, CSV, PNG, SVG), the chart and its table. Used by the VS Code
 * webview (main.ts) and the notebook renderer; what differs (saving, opening the other panel, state) comes in
 * through `PanelEnv`.
 */
import type { Result } from 'vega-embed';
import { PANEL_KINDS, PANELS, type PanelKind } from '../../../protocol/panels';
import type { PanelState, SaveFileParams, SaveFileResult } from '../../../protocol/webview';
import type { MergeReport } from '../../../protocol/report';
import {
  correlationSummary,
  formatCell,
  initialSelection,
  orderedTaps,
  panelCharts,
  selectedKey,
  toCsv,
  type ChartModel,
  type ThemeColors,
} from '../charts/index';
import { PICK_PARAM, SELECTED_SIGNAL } from '../charts/model';
import { embedChart, exportPng, exportSvg } from './embed';
import { pickedTap } from './pick';
import { errorMessage } from '../../../protocol/errors';

export interface PanelEnv {
  theme(): ThemeColors;
  /** Saves an export through the host; absent where there is none (notebooks): the export buttons are left out. */
  save?(params: SaveFileParams): Promise<SaveFileResult>;
  /** Opens the other panel on the same report; absent in notebooks. */
  openPanel?(kind: PanelKind): void;
  /** Persists the small state (vscode.setState). */
  setState?(state: PanelState): void;
  onError?(message: string, chart?: string): void;
}

/** The per-layer charts keep their view across selections; the matrix charts are rebuilt for the new tap. */
const PER_LAYER = new Set(['correlation-by-layer', 'units-moved']);

interface Card {
  model: ChartModel;
  el: HTMLElement;
  result: Result | null;
}

/** The width inside an element's padding (the chart's container is an inline-block as wide as its drawing). */
function contentWidth(el: HTMLElement): number {
  const style = getComputedStyle(el);
  return el.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
}

function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Partial<Record<string, string>> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) if (v !== undefined) el.setAttribute(k, v);
  el.append(...children);
  return el;
}

const pct = (x: number) => x.toFixed(3);
/** The summary lines under the correlation panel's heading. */
function correlationSummaryLines(report: MergeReport): HTMLElement[] {
  const summary = correlationSummary(report);
  if (!summary) return [];
  const lines = [
    h(
      'p',
      { class: 'summary' },
      `Mean diagonal correlation ${pct(summary.before)} → ${pct(summary.after)} over ${report.align.taps.length} taps; lowest after permutation: ${summary.worst?.tap ?? '—'} (${summary.worst ? pct(summary.worst.meanCorrelationAfter) : '—'}).`,
    ),
  ];
  const sc = report.align.selfCheck;
  if (sc?.warning)
    lines.push(
      h(
        'p',
        { class: 'summary' },
        `Self-check: align.method ${report.align.method} is not function-preserving; its permuted model deviates by ${sc.maxRelativeError.toExponential(1)} (relative), reported, not refused.`,
      ),
    );
  else if (sc)
    lines.push(
      h(
        'p',
        { class: `summary ${sc.passed ? '' : 'error'}` },
        `Self-check ${sc.passed ? 'passed' : 'FAILED'}: max relative error ${sc.maxRelativeError.toExponential(1)} (tolerance ${sc.tolerance.toExponential(0)}).`,
      ),
    );
  return lines;
}

/** The summary line under the results panel's heading: the best average of each system. */
function resultsSummaryLines(report: MergeReport): HTMLElement[] {
  if (!report.evaluation) return [];
  const avg = report.evaluation.averages;
  const best = (v: string) => avg.filter((a) => a.variant === v).sort((a, b) => b.average - a.average)[0];
  // The recipe's own merge first, then its variants, then the unaligned baseline (`linear` in version-1 reports),
  // then the sources.
  const rank = (v: string) => (v === 'permuted' ? 0 : v === 'unaligned' || v === 'linear' ? 2 : 1);
  const merged = [...new Set(avg.map((a) => a.variant))].filter((v) => v !== 'anchor' && v !== 'other').sort((a, b) => rank(a) - rank(b));
  const parts = [...merged, 'anchor', 'other'].flatMap((v) => {
    const b = best(v);
    return b ? [`${v} ${pct(b.average)}${b.lambda === null ? '' : ` (λ = ${b.lambda})`}`] : [];
  });
  return parts.length > 0 ? [h('p', { class: 'summary' }, `Best average score — ${parts.join(' · ')}.`)] : [];
}

/** What each panel kind shows besides its charts (a new kind in protocol/panels.ts must get an entry here). */
const PANEL_VIEWS: Record<PanelKind, { picksTaps: boolean; summary: (report: MergeReport) => HTMLElement[] }> = {
  correlation: { picksTaps: true, summary: correlationSummaryLines },
  results: { picksTaps: false, summary: resultsSummaryLines },
};

/** Element ids are per panel instance: a notebook may show several reports in one document. */
let instances = 0;

export class ReportPanel {
  private report: MergeReport | null = null;
  private state: PanelState;
  private cards: Card[] = [];
  private renderSeq = 0;
  /** Width the charts were built for; a resize re-renders only when it changed noticeably. */
  private builtWidth = 0;
  private readonly uid = `ms${++instances}`;

  constructor(
    private readonly root: HTMLElement,
    private readonly kind: PanelKind,
    private readonly env: PanelEnv,
    state: PanelState | null = null,
  ) {
    this.state = state ?? { kind, jobId: null, selected: null, tables: [] };
  }

  get currentState(): PanelState {
    return this.state;
  }

  /** Shows a report (first one, or a newer run: a different job resets the selection). */
  async show(report: MergeReport, jobId: string | null): Promise<void> {
    const sameJob = jobId === this.state.jobId;
    this.report = report;
    const keep = sameJob && report.align.taps.some((t) => t.tap === this.state.selected);
    const selected = !PANEL_VIEWS[this.kind].picksTaps ? null : keep ? this.state.selected : initialSelection(report);
    this.state = { ...this.state, jobId, selected };
    this.saveState();
    await this.render();
  }

  showError(message: string): void {
    this.dispose();
    this.root.replaceChildren(h('p', { class: 'status error', role: 'alert' }, message));
    this.root.setAttribute('aria-busy', 'false');
  }

  /** Re-renders for the current width and theme (theme switch, resize). */
  async refresh(): Promise<void> {
    if (this.report) await this.render();
  }

  /** Whether the root's width moved enough from what the charts were built for to rebuild them. */
  widthChanged(): boolean {
    return Math.abs(this.chartWidth() - this.builtWidth) > 40;
  }

  dispose(): void {
    for (const c of this.cards) c.result?.finalize();
    this.cards = [];
  }

  private saveState(): void {
    this.env.setState?.(this.state);
  }

  private chartWidth(): number {
    // The cards' content box: the root's padding (16 px each side), then each card's border and padding (13 px each side).
    return Math.max(280, (this.root.clientWidth || 800) - 32 - 26);
  }

  private models(): ChartModel[] {
    if (!this.report) return [];
    return panelCharts(this.kind, this.report, { theme: this.env.theme(), width: this.chartWidth(), selected: this.state.selected });
  }

  private async render(): Promise<void> {
    const report = this.report!;
    const seq = ++this.renderSeq;
    this.dispose();
    this.builtWidth = this.chartWidth();
    const models = this.models();
    const header = this.header(report);
    const controls = PANEL_VIEWS[this.kind].picksTaps ? this.tapPicker(report) : null;
    const list = h('div', { class: 'cards' });
    this.root.replaceChildren(...[header, controls, list].filter((x): x is HTMLElement => x !== null));
    if (models.length === 0) list.append(h('p', { class: 'status' }, PANELS[this.kind].empty));
    this.cards = models.map((m) => this.card(m));
    list.append(...this.cards.map((c) => c.el));
    await Promise.all(this.cards.map((c) => this.embed(c, seq)));
    if (seq === this.renderSeq) this.root.setAttribute('aria-busy', 'false');
  }

  private header(report: MergeReport): HTMLElement {
    const { anchor, other } = report.models;
    const facts: string[] = [
      `${anchor.source} (anchor) × ${other.source}`,
      `recipe ${report.recipe.file}`,
      new Date(report.createdAt).toLocaleString(),
    ];
    const lines = PANEL_VIEWS[this.kind].summary(report);
    const nav = h('nav', { 'aria-label': 'Panels' });
    const openPanel = this.env.openPanel;
    if (openPanel) {
      for (const other of PANEL_KINDS.filter((k) => k !== this.kind)) {
        const b = h('button', { type: 'button', class: 'link' }, PANELS[other].openLabel);
        b.addEventListener('click', () => openPanel(other));
        nav.append(b);
      }
    }
    return h('header', {}, h('h1', {}, PANELS[this.kind].heading), h('p', { class: 'facts' }, facts.join(' · ')), ...lines, nav);
  }

  /** The keyboard path to every tap (a click on a chart does the same). */
  private tapPicker(report: MergeReport): HTMLElement {
    const select = h('select', { id: `${this.uid}-tap`, class: 'tap-select' });
    for (const t of orderedTaps(report)) {
      const o = h('option', { value: t.tap }, `${t.tap} — ${pct(t.meanCorrelationBefore)} → ${pct(t.meanCorrelationAfter)}`);
      if (t.tap === this.state.selected) o.selected = true;
      select.append(o);
    }
    select.addEventListener('change', () => void this.select(select.value));
    return h(
      'div',
      { class: 'controls' },
      h('label', { for: `${this.uid}-tap` }, 'Tap'),
      select,
      h('span', { class: 'hint' }, 'or click a point or bar; ← → on a chart step through taps'),
    );
  }

  private card(model: ChartModel): Card {
    const id = model.id;
    const dom = `${this.uid}-${id}`;
    const asTable = this.state.tables.includes(id);
    const chart = h('div', { class: 'chart', role: 'img', 'aria-label': model.description, tabindex: '0', id: `chart-${dom}` });
    const table = this.table(model, dom);
    table.hidden = !asTable;
    chart.hidden = asTable;
    const status = h('p', { class: 'card-status', role: 'status', 'aria-live': 'polite' });
    const toolbar = h('div', { class: 'toolbar', role: 'toolbar', 'aria-label': `${model.title}: view and export` });
    const card: Card = { model, el: h('section', { class: 'card', 'data-chart': id, 'aria-labelledby': `title-${dom}` }), result: null };

    const toggle = h('button', { type: 'button', 'aria-pressed': String(asTable), 'aria-controls': `chart-${dom} table-${dom}` }, 'Table');
    toggle.addEventListener('click', () => {
      const on = toggle.getAttribute('aria-pressed') !== 'true';
      toggle.setAttribute('aria-pressed', String(on));
      table.hidden = !on;
      chart.hidden = on;
      this.state = { ...this.state, tables: on ? [...new Set([...this.state.tables, id])] : this.state.tables.filter((t) => t !== id) };
      this.saveState();
    });
    toolbar.append(toggle);
    if (this.env.save) {
      const save = this.env.save.bind(this.env);
      const exp = (label: string, make: () => Promise<SaveFileParams>) => {
        const b = h('button', { type: 'button', 'aria-label': `Export ${model.title} as ${label}` }, label);
        b.addEventListener('click', async () => {
          status.textContent = `Exporting ${label}…`;
          try {
            const r = await save(await make());
            status.textContent = r.saved ? `Saved ${r.path ?? ''}` : 'Export cancelled.';
          } catch (e) {
            status.textContent = `Export failed: ${errorMessage(e)}`;
          }
        });
        toolbar.append(b);
      };
      exp('CSV', async () => ({ fileName: `${id}.csv`, mimeType: 'text/csv', content: toCsv(model.table), encoding: 'utf8' }));
      exp('PNG', async () => ({
        fileName: `${id}.png`,
        mimeType: 'image/png',
        content: await exportPng(this.viewOf(card)),
        encoding: 'base64',
      }));
      exp('SVG', async () => ({
        fileName: `${id}.svg`,
        mimeType: 'image/svg+xml',
        content: await exportSvg(this.viewOf(card)),
        encoding: 'utf8',
      }));
    }
    if (PER_LAYER.has(id)) chart.addEventListener('keydown', (e) => this.onChartKey(e));
    card.el.append(
      h('div', { class: 'card-head' }, h('h2', { id: `title-${dom}` }, model.title), toolbar),
      h('p', { class: 'desc' }, model.description),
      chart,
      table,
      status,
    );
    return card;
  }

  private table(model: ChartModel, dom: string): HTMLElement {
    const thead = h('thead', {}, h('tr', {}, ...model.table.columns.map((c) => h('th', { scope: 'col' }, c.title))));
    const tbody = h('tbody');
    for (const r of model.table.rows) tbody.append(h('tr', {}, ...model.table.columns.map((c) => h('td', {}, formatCell(r[c.key], c)))));
    const table = h('table', {}, h('caption', {}, model.title), thead, tbody);
    // Scrollable region: focusable so keyboard users can scroll it.
    return h(
      'div',
      { class: 'table-wrap', id: `table-${dom}`, tabindex: '0', role: 'region', 'aria-label': `${model.title} table` },
      table,
    );
  }

  private viewOf(card: Card): Result['view'] {
    if (!card.result) throw new Error('the chart has not rendered');
    return card.result.view;
  }

  private async embed(card: Card, seq: number): Promise<void> {
    const el = card.el.querySelector<HTMLElement>('.chart')!;
    try {
      let result = await embedChart(el, card.model.spec);
      // Axis labels and legends come on top of the plot width a spec asks for: when they make the drawing wider
      // than its card, draw it once more with the plot narrowed by the overflow, so no card scrolls sideways.
      const overflow = Math.ceil((el.querySelector('svg')?.getBoundingClientRect().width ?? 0) - contentWidth(card.el));
      if (overflow > 0 && seq === this.renderSeq && this.report) {
        const narrower = panelCharts(this.kind, this.report, {
          theme: this.env.theme(),
          width: this.chartWidth() - overflow,
          selected: this.state.selected,
        }).find((m) => m.id === card.model.id);
        if (narrower) {
          result.finalize();
          card.model = narrower;
          result = await embedChart(el, narrower.spec);
        }
      }
      if (seq !== this.renderSeq || !card.el.isConnected) {
        result.finalize();
        return;
      }
      card.result = result;
      if (PER_LAYER.has(card.model.id)) {
        result.view.addSignalListener(PICK_PARAM, (_name, value) => {
          const tap = pickedTap(value);
          if (tap && tap !== this.state.selected) void this.select(tap);
        });
      }
    } catch (e) {
      const message = errorMessage(e);
      el.replaceChildren(h('p', { class: 'status error', role: 'alert' }, `Could not draw this chart: ${message}`));
      this.env.onError?.(message, card.model.id);
    }
  }

  private onChartKey(e: KeyboardEvent): void {
    if (!this.report) return;
    const taps = orderedTaps(this.report).map((t) => t.tap);
    const i = Math.max(0, taps.indexOf(this.state.selected ?? ''));
    const next =
      e.key === 'ArrowRight' ? i + 1 : e.key === 'ArrowLeft' ? i - 1 : e.key === 'Home' ? 0 : e.key === 'End' ? taps.length - 1 : null;
    if (next === null) return;
    e.preventDefault();
    const tap = taps[Math.min(taps.length - 1, Math.max(0, next))]!;
    void this.select(tap);
  }

  /** Selects a tap everywhere: the per-layer charts' signal, the picker, the matrix charts (rebuilt). */
  async select(tap: string): Promise<void> {
    const report = this.report;
    if (!report || !report.align.taps.some((t) => t.tap === tap)) return;
    this.state = { ...this.state, selected: tap };
    this.saveState();
    const picker = this.root.querySelector<HTMLSelectElement>('.tap-select');
    if (picker && picker.value !== tap) picker.value = tap;
    const key = selectedKey(report, tap);
    const seq = this.renderSeq;
    await Promise.all(
      this.cards.filter((c) => PER_LAYER.has(c.model.id) && c.result).map((c) => c.result!.view.signal(SELECTED_SIGNAL, key).runAsync()),
    );
    if (seq !== this.renderSeq) return;
    // Matrix charts depend on the tap's data: replace their cards.
    const list = this.root.querySelector('.cards')!;
    for (const c of this.cards.filter((c) => !PER_LAYER.has(c.model.id))) {
      c.result?.finalize();
      c.el.remove();
    }
    const fresh = this.models()
      .filter((m) => !PER_LAYER.has(m.id))
      .map((m) => this.card(m));
    this.cards = [...this.cards.filter((c) => PER_LAYER.has(c.model.id)), ...fresh];
    list.append(...fresh.map((c) => c.el));
    await Promise.all(fresh.map((c) => this.embed(c, seq)));
  }
}
