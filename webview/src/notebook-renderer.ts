/**
 * Notebook renderer (dist/notebook-renderer.js, ESM) for `application/vnd.merge-studio.report+json`: a cell
 * output holding a Merge Studio report shows both panels' charts inline, with tables, without exports
 * (a notebook output has no host to save through).
 */
import { PANEL_KINDS } from '../../protocol/panels';
import { isMergeReport, REPORT_MIME } from '../../protocol/report';
import { ReportPanel } from './render/panel';
import { injectStyle, injectVegaEmbedStyle } from './render/styles';
import { readTheme, watchTheme } from './render/theme-dom';
import css from './styles.css';

export { REPORT_MIME };

interface OutputItem {
  readonly id: string;
  readonly mime: string;
  json(): unknown;
}
interface RendererContext {
  readonly workspace?: { readonly isTrusted: boolean };
}

export const activate = (_ctx: RendererContext) => {
  const rendered = new Map<string, { panels: ReportPanel[]; unwatch: () => void }>();
  const dispose = (id: string) => {
    const r = rendered.get(id);
    if (!r) return;
    r.unwatch();
    for (const p of r.panels) p.dispose();
    rendered.delete(id);
  };
  return {
    renderOutputItem(item: OutputItem, element: HTMLElement): void {
      dispose(item.id);
      // The notebook webview allows inline styles; the <style>s go once into the document head.
      injectVegaEmbedStyle(document, undefined);
      injectStyle(document, 'merge-studio-style', css, undefined);
      let report: unknown;
      try {
        report = item.json();
      } catch (e) {
        report = e;
      }
      element.replaceChildren();
      if (!isMergeReport(report)) {
        const p = document.createElement('p');
        p.className = 'ms-panel status error';
        p.textContent = 'Not a Merge Studio report (version 1 or 2) — cannot chart this output.';
        element.append(p);
        return;
      }
      const panels = PANEL_KINDS.map((kind) => {
        const root = document.createElement('div');
        root.className = `ms-panel ms-panel-${kind}`;
        element.append(root);
        const panel = new ReportPanel(root, kind, { theme: () => readTheme(document) });
        void panel.show(report, null);
        return panel;
      });
      const unwatch = watchTheme(document, () => panels.forEach((p) => void p.refresh()));
      rendered.set(item.id, { panels, unwatch });
    },
    disposeOutputItem(id?: string): void {
      if (id === undefined) [...rendered.keys()].forEach(dispose);
      else dispose(id);
    },
  };
};
