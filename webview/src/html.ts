/**
 * The panels' HTML page, one pure function for the VS Code host and the browser tests, so both load the bundle
 * under the same Content-Security-Policy. No DOM, no Node APIs: the client bundles this file as is.
 */
import { PANEL_TITLES, type PanelKind } from '../../protocol/panels';

export interface PanelHtmlOptions {
  kind: PanelKind;
  /** `webview.cspSource`: the origin of `asWebviewUri` resources. */
  cspSource: string;
  /** `asWebviewUri(dist/webview.js)` and `asWebviewUri(dist/webview.css)`. */
  scriptUri: string;
  styleUri: string;
  /** Fresh per page load, e.g. `crypto.randomBytes(16).toString('base64')`. */
  nonce: string;
}

/**
 * Scripts only by nonce; styles from the extension (the CSS file) or by nonce (vega-embed's CSS, injected by the
 * bundle); images from the extension or data: (PNG export draws through a canvas). No 'unsafe-eval': vega runs
 * with its expression interpreter. No 'unsafe-inline': vega sets styles through the CSSOM only.
 */
export function panelCsp(cspSource: string, nonce: string): string {
  return [
    "default-src 'none'",
    `script-src 'nonce-${nonce}'`,
    `style-src ${cspSource} 'nonce-${nonce}'`,
    `img-src ${cspSource} data:`,
    `font-src ${cspSource}`,
  ].join('; ');
}

const escapeAttr = (s: string) => s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function renderPanelHtml(o: PanelHtmlOptions): string {
  // A nonce ends up inside the CSP header value and an attribute: refuse anything but base64/base64url.
  if (!/^[A-Za-z0-9+/_=-]{16,}$/.test(o.nonce)) throw new Error('renderPanelHtml: nonce must be ≥ 16 base64 characters');
  const nonce = escapeAttr(o.nonce);
  const title = PANEL_TITLES[o.kind];
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${escapeAttr(panelCsp(o.cspSource, o.nonce))}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>${escapeAttr(title)}</title>
<link rel="stylesheet" href="${escapeAttr(o.styleUri)}" nonce="${nonce}">
</head>
<body data-panel="${o.kind}">
<main id="app" class="ms-panel ms-panel-${o.kind}" aria-busy="true">
<p class="status" role="status">Waiting for the report…</p>
</main>
<script nonce="${nonce}" src="${escapeAttr(o.scriptUri)}"></script>
</body>
</html>
`;
}
