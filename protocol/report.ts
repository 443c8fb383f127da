/**
 * The report as the editor side sees it: report.json's types (defined once, in the engine) and a guard for JSON that
 * claims to be one. Every consumer outside the engine (webview panels, notebook renderer, language server insights)
 * imports them from here.
 */
import { READABLE_REPORT_VERSIONS, type MergeReport } from '../server/src/engine/pipeline/report';
import { isRecord } from './ipc';

export { REPORT_MIME, REPORT_VERSION } from '../server/src/engine/pipeline/report';
export type { EvaluationRow, MergeReport, ModelSummary, PermuteGroup, SystemReport, TapReport } from '../server/src/engine/pipeline/report';

const finite = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);

/**
 * Enough of a MergeReport to chart it: version, taps with numeric statistics, evaluation rows. A report is
 * trusted JSON from our own engine; this guards against a wrong file or an older/newer version, not an attacker.
 */
export function isMergeReport(x: unknown): x is MergeReport {
  if (!isRecord(x) || !(READABLE_REPORT_VERSIONS as readonly unknown[]).includes(x.version)) return false;
  const align = x.align;
  if (!isRecord(align) || !Array.isArray(align.taps)) return false;
  for (const t of align.taps) {
    if (!isRecord(t) || typeof t.tap !== 'string' || typeof t.group !== 'string') return false;
    if (!(t.layer === null || finite(t.layer))) return false;
    if (!finite(t.meanCorrelationBefore) || !finite(t.meanCorrelationAfter) || !finite(t.moved)) return false;
  }
  if (x.evaluation !== null) {
    const e = x.evaluation;
    if (!isRecord(e) || !Array.isArray(e.rows) || !Array.isArray(e.averages)) return false;
    for (const r of e.rows) {
      if (!isRecord(r) || typeof r.variant !== 'string' || typeof r.task !== 'string' || !finite(r.score)) return false;
      if (!(r.lambda === null || finite(r.lambda))) return false;
    }
  }
  return isRecord(x.models) && isRecord(x.merge);
}
