/**
 * vega-embed under the webview CSP: specs parsed to an AST and run by vega's expression interpreter (no eval),
 * vega-embed's own CSS not injected (shipped in the bundle instead, see styles.ts), no actions menu (the card's
 * toolbar does exports), tooltips styled by our CSS.
 */
import embed, { type EmbedOptions, type Result } from 'vega-embed';
import { expressionInterpreter } from 'vega-interpreter';
import type { TopLevelSpec } from 'vega-lite';

export const EMBED_OPTIONS: EmbedOptions = {
  ast: true,
  expr: expressionInterpreter,
  defaultStyle: false,
  actions: false,
  renderer: 'svg',
  tooltip: { theme: 'vscode', disableDefaultStyle: true },
  logLevel: 1, // vega.Error: warnings would go to the console, which the tests hold to zero messages.
};

export function embedChart(el: HTMLElement, spec: TopLevelSpec): Promise<Result> {
  return embed(el, spec, EMBED_OPTIONS);
}

/** PNG bytes (base64) and SVG text of a view, for the host to save. */
export async function exportPng(view: Result['view'], scale = 2): Promise<string> {
  const url = await view.toImageURL('png', scale);
  const comma = url.indexOf(',');
  if (!url.startsWith('data:image/png;base64,') || comma < 0) throw new Error('PNG export returned no data URL');
  return url.slice(comma + 1);
}

export function exportSvg(view: Result['view']): Promise<string> {
  return view.toSVG();
}
