/**
 * Chart colours and fonts from the VS Code theme. `ThemeColors` is plain data (read from the DOM by
 * render/theme-dom.ts, or a default in tests and notebooks); `vegaConfig` turns it into a vega-lite config.
 */
import type { Config } from 'vega-lite';

export type ThemeKind = 'light' | 'dark' | 'high-contrast' | 'high-contrast-light';

export interface ThemeColors {
  kind: ThemeKind;
  foreground: string;
  /** Secondary text: axis titles, captions. */
  muted: string;
  /** Grid and axis lines. */
  lines: string;
  fontFamily: string;
  fontSize: number;
  /** Categorical series: --vscode-charts-{blue, orange, green, purple, red, yellow}. */
  blue: string;
  orange: string;
  green: string;
  purple: string;
  red: string;
  yellow: string;
}

/** VS Code's own chart colours per theme kind, for when the CSS variables are absent (tests, other hosts). */
export function defaultTheme(kind: ThemeKind = 'light'): ThemeColors {
  const dark = kind === 'dark' || kind === 'high-contrast';
  const hc = kind === 'high-contrast' || kind === 'high-contrast-light';
  return {
    kind,
    foreground: dark ? (hc ? '#ffffff' : '#cccccc') : hc ? '#292929' : '#3b3b3b',
    muted: dark ? (hc ? '#ffffff' : '#9d9d9d') : hc ? '#292929' : '#717171',
    lines: dark ? (hc ? '#6fc3df' : '#474747') : hc ? '#0f4a85' : '#d4d4d4',
    fontFamily: 'system-ui, -apple-system, "Segoe UI", "Ubuntu", "Droid Sans", sans-serif',
    fontSize: 13,
    blue: dark ? '#3794ff' : '#1a85ff',
    orange: dark ? '#d18616' : '#d18616',
    green: dark ? '#89d185' : '#388a34',
    purple: dark ? '#b180d7' : '#652d90',
    red: dark ? '#f14c4c' : '#e51400',
    yellow: dark ? '#cca700' : '#bf8803',
  };
}

export const isHighContrast = (t: ThemeColors) => t.kind === 'high-contrast' || t.kind === 'high-contrast-light';
export const isDark = (t: ThemeColors) => t.kind === 'dark' || t.kind === 'high-contrast';

/** Fixed colour per series, the same in every chart: before/after, groups, merge variants. */
export function seriesColors(t: ThemeColors) {
  return {
    stage: { before: t.muted, after: t.blue },
    group: { 'CNN blocks': t.purple, attention: t.blue, FFN: t.orange, residual: t.green },
    variant: { anchor: t.green, other: t.purple, unaligned: t.orange, permuted: t.blue },
  } as const;
}

/** Diverging scheme for correlations in [-1, 1]; vega's built-in schemes read well on light and dark. */
export const correlationScheme = (t: ThemeColors) => (isDark(t) ? 'blueorange' : 'redblue');

export function vegaConfig(t: ThemeColors): Config {
  const hc = isHighContrast(t);
  const font = t.fontFamily;
  const axis = {
    labelColor: t.foreground,
    titleColor: t.foreground,
    gridColor: t.lines,
    gridOpacity: hc ? 1 : 0.6,
    domainColor: t.lines,
    tickColor: t.lines,
    labelFont: font,
    titleFont: font,
    labelFontSize: Math.max(11, t.fontSize - 2),
    titleFontSize: Math.max(11, t.fontSize - 1),
    titleFontWeight: 'normal' as const,
  };
  return {
    background: 'transparent',
    font,
    padding: 4,
    view: { stroke: hc ? t.lines : null },
    axis,
    legend: {
      labelColor: t.foreground,
      titleColor: t.foreground,
      labelFont: font,
      titleFont: font,
      labelFontSize: Math.max(11, t.fontSize - 2),
      titleFontSize: Math.max(11, t.fontSize - 1),
      titleFontWeight: 'normal',
      orient: 'bottom',
      direction: 'horizontal',
    },
    header: { labelColor: t.foreground, titleColor: t.foreground, labelFont: font, titleFont: font, labelFontSize: t.fontSize - 1 },
    title: { color: t.foreground, font, fontSize: t.fontSize, fontWeight: 'normal', anchor: 'start', subtitleColor: t.muted },
    line: { strokeWidth: hc ? 3 : 2 },
    point: { size: hc ? 70 : 50, filled: true },
    rule: { strokeWidth: hc ? 2.5 : 1.5 },
    text: { color: t.foreground, font },
  };
}
