/**
 * What every chart builder returns: a vega-lite spec and the table behind it (shown as a <table>, exported as
 * CSV). Pure data, no DOM: the same models feed the panels, the notebook renderer and the Node tests.
 */
import type { TopLevelSpec } from 'vega-lite';

export interface TableColumn {
  key: string;
  title: string;
  /** Numbers are shown with this many decimals (CSV keeps full precision). */
  decimals?: number;
}

export interface Table {
  columns: TableColumn[];
  rows: Record<string, string | number | null>[];
}

export interface ChartModel {
  /** Stable id: DOM ids, export file names, the panel state's table toggles. */
  id: string;
  title: string;
  /** One sentence for screen readers (aria-label of the chart) and the card's caption. */
  description: string;
  spec: TopLevelSpec;
  table: Table;
}

/** Selection signal every correlation chart declares; the panel keeps them in sync (see render/sync.ts). */
export const SELECTED_SIGNAL = 'selected';
/** Point selection a click sets; its value carries the clicked tap's key. */
export const PICK_PARAM = 'pick';

function csvCell(v: string | number | null): string {
  if (v === null) return '';
  const s = String(v);
  // RFC 4180 quoting; a leading =,+,-,@ is prefixed so spreadsheets do not evaluate task names as formulas.
  const safe = typeof v === 'string' && /^[=+\-@]/.test(s) ? `'${s}` : s;
  return /[",\r\n]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

/** CSV (RFC 4180, CRLF line ends, header row) of a table, values at full precision. */
export function toCsv(table: Table): string {
  const lines = [table.columns.map((c) => csvCell(c.title)).join(',')];
  for (const r of table.rows) lines.push(table.columns.map((c) => csvCell(r[c.key] ?? null)).join(','));
  return lines.join('\r\n') + '\r\n';
}

/** A table cell as displayed. */
export function formatCell(v: string | number | null | undefined, col: TableColumn): string {
  if (v === null || v === undefined) return '—';
  if (typeof v === 'number' && col.decimals !== undefined) return v.toFixed(col.decimals);
  return String(v);
}
