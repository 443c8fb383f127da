/**
 * CSS that must reach the page without 'unsafe-inline': vega-embed's stylesheet (we pass `defaultStyle: false`,
 * so it is shipped here instead of injected by vega-embed) added as a <style> carrying the page's script nonce.
 */
// vega-embed keeps its CSS as a TS string in src/ (not exported): import that file directly so upgrades follow.
import vegaEmbedCss from '../../../node_modules/vega-embed/src/style';

export function injectStyle(doc: Document, id: string, css: string, nonce: string | undefined, parent: Node = doc.head): void {
  if (doc.getElementById(id)) return;
  const style = doc.createElement('style');
  style.id = id;
  if (nonce) style.nonce = nonce;
  style.textContent = css;
  parent.appendChild(style);
}

export function injectVegaEmbedStyle(doc: Document, nonce: string | undefined, parent?: Node): void {
  injectStyle(doc, 'vega-embed-style', vegaEmbedCss, nonce, parent);
}
