/**
 * The report panels, one entry each: everything about a panel kind that is not its charts (those are in
 * webview/src/charts/index.ts, keyed by the same kinds). A new panel is one entry here plus its charts; the
 * `Record<PanelKind, …>` tables elsewhere make the compiler name every other place that must know it
 * (the manifest's commands and activation events are checked against this table by a test).
 */
export interface PanelInfo {
  /** `WebviewPanel.viewType`; also the `onWebviewPanel:<viewType>` activation event of its serializer. */
  viewType: string;
  /** Editor tab title. */
  title: string;
  /** The panel's own heading. */
  heading: string;
  /** Command that opens it (contributed in package.json, offered by code lenses). */
  command: string;
  /** Link text in the other panels. */
  openLabel: string;
  /** Shown when the report has nothing for this panel. */
  empty: string;
}

export const PANELS = {
  correlation: {
    viewType: 'mergeStudio.correlationPanel',
    title: 'Merge Studio: Correlation Diagnostics',
    heading: 'Correlation diagnostics',
    command: 'mergeStudio.openCorrelationPanel',
    openLabel: 'Open correlation diagnostics',
    empty: 'This run did not align the models: no correlation diagnostics.',
  },
  results: {
    viewType: 'mergeStudio.resultsPanel',
    title: 'Merge Studio: Merge Results',
    heading: 'Merge results',
    command: 'mergeStudio.openResultsPanel',
    openLabel: 'Open merge results',
    empty: 'This run has no evaluation: no results to chart.',
  },
} as const satisfies Record<string, PanelInfo>;

export type PanelKind = keyof typeof PANELS;
export const PANEL_KINDS = Object.keys(PANELS) as PanelKind[];

export function isPanelKind(x: unknown): x is PanelKind {
  return typeof x === 'string' && Object.prototype.hasOwnProperty.call(PANELS, x);
}

/** `WebviewPanel.viewType` per kind. */
export const PANEL_VIEW_TYPES = Object.fromEntries(PANEL_KINDS.map((k) => [k, PANELS[k].viewType])) as Record<PanelKind, string>;
/** Editor tab title per kind. */
export const PANEL_TITLES = Object.fromEntries(PANEL_KINDS.map((k) => [k, PANELS[k].title])) as Record<PanelKind, string>;
