/** Reads the VS Code theme from the page: body classes for the kind, --vscode-* variables for the colours. */
import { defaultTheme, type ThemeColors, type ThemeKind } from '../charts/theme';

export function themeKind(body: HTMLElement): ThemeKind {
  const c = body.classList;
  if (c.contains('vscode-high-contrast-light')) return 'high-contrast-light';
  if (c.contains('vscode-high-contrast')) return 'high-contrast';
  if (c.contains('vscode-dark')) return 'dark';
  if (c.contains('vscode-light')) return 'light';
  // Outside VS Code (a browser, a notebook elsewhere): follow the OS.
  return typeof matchMedia === 'function' && matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';
}

export function readTheme(doc: Document = document): ThemeColors {
  const base = defaultTheme(themeKind(doc.body));
  const css = getComputedStyle(doc.documentElement);
  const v = (name: string, fallback: string) => css.getPropertyValue(name).trim() || fallback;
  const size = parseFloat(v('--vscode-font-size', ''));
  return {
    ...base,
    foreground: v('--vscode-charts-foreground', v('--vscode-foreground', base.foreground)),
    muted: v('--vscode-descriptionForeground', base.muted),
    lines: v('--vscode-charts-lines', base.lines),
    fontFamily: v('--vscode-font-family', base.fontFamily),
    fontSize: Number.isFinite(size) && size > 0 ? size : base.fontSize,
    blue: v('--vscode-charts-blue', base.blue),
    orange: v('--vscode-charts-orange', base.orange),
    green: v('--vscode-charts-green', base.green),
    purple: v('--vscode-charts-purple', base.purple),
    red: v('--vscode-charts-red', base.red),
    yellow: v('--vscode-charts-yellow', base.yellow),
  };
}

/** Calls `onChange` when VS Code switches theme (it rewrites the body's class and style attributes). */
export function watchTheme(doc: Document, onChange: () => void): () => void {
  let last = JSON.stringify(readTheme(doc));
  const obs = new MutationObserver(() => {
    const now = JSON.stringify(readTheme(doc));
    if (now !== last) {
      last = now;
      onChange();
    }
  });
  obs.observe(doc.body, { attributes: true, attributeFilter: ['class'] });
  obs.observe(doc.documentElement, { attributes: true, attributeFilter: ['style'] });
  return () => obs.disconnect();
}
