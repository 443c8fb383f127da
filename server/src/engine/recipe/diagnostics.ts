/**
 * Diagnostics of a recipe as plain, LSP-shaped data (0-based line/character ranges in UTF-16 code units,
 * LSP severities), so the language server forwards them unchanged and `merge-studio check` prints the very
 * same list. No dependency on vscode-languageserver: the engine must not know it runs in an editor.
 */

export interface Position {
  line: number;
  character: number;
}

export interface Range {
  start: Position;
  end: Position;
}

/** LSP DiagnosticSeverity values. */
export const Severity = { Error: 1, Warning: 2, Information: 3, Hint: 4 } as const;
export type Severity = (typeof Severity)[keyof typeof Severity];

export const DIAGNOSTIC_SOURCE = 'merge-studio';

/** Stable codes: tests, quick fixes and documentation key off these, never off message text. */
export type RecipeDiagnosticCode =
  // YAML
  | 'yaml-syntax'
  | 'yaml-duplicate-key'
  | 'yaml-multiple-documents'
  | 'yaml-unresolved-alias'
  | 'yaml-non-string-key'
  /** The document is past a size, nesting or alias-expansion limit (an alias bomb, a cycle): checked no further. */
  | 'yaml-limit'
  // schema
  | 'not-a-mapping'
  | 'unknown-key'
  | 'missing-key'
  | 'wrong-type'
  | 'bad-enum'
  | 'out-of-range'
  | 'not-an-integer'
  | 'empty-list'
  | 'duplicate-item'
  | 'bad-version'
  | 'bad-model-ref'
  | 'bad-glob'
  | 'empty-string'
  // cross-field
  | 'missing-probe'
  | 'inconsistent-align'
  | 'inconsistent-merge'
  | 'inconsistent-probe'
  | 'inconsistent-evaluate'
  | 'segment-too-long'
  | 'precision-unsupported'
  | 'duplicate-task'
  | 'bad-variant-name'
  | 'output-overwrites-input'
  // disk (semantic)
  | 'path-not-found'
  | 'not-a-directory'
  | 'not-a-file'
  | 'no-audio'
  | 'bad-model'
  | 'bad-checkpoint'
  | 'incompatible-models'
  | 'sample-rate-mismatch'
  | 'lambda-layer-count'
  | 'glob-matches-nothing'
  | 'bad-dataset'
  | 'not-checked'
  // output folder (output-check.ts)
  | 'output-bad-path'
  | 'output-not-ours'
  | 'output-not-writable'
  | 'internal-error';

/** Machine-readable hints for code actions, carried in `Diagnostic.data`. */
export type DiagnosticFix =
  /** Replace the text at the diagnostic's range with `replacement` (a misspelt key or enum value). */
  | { fix: 'replace'; replacement: string }
  /** Insert a missing required key with a starter value into the mapping at `path` (dot-joined, '' = root). */
  | { fix: 'insert-key'; path: string; key: string };

export interface RecipeDiagnostic {
  range: Range;
  severity: Severity;
  code: RecipeDiagnosticCode;
  source: typeof DIAGNOSTIC_SOURCE;
  message: string;
  data?: DiagnosticFix;
}

export function diagnostic(
  range: Range,
  severity: Severity,
  code: RecipeDiagnosticCode,
  message: string,
  data?: DiagnosticFix,
): RecipeDiagnostic {
  const d: RecipeDiagnostic = { range, severity, code, source: DIAGNOSTIC_SOURCE, message };
  if (data) d.data = data;
  return d;
}

export function countBySeverity(diagnostics: readonly RecipeDiagnostic[]): { errors: number; warnings: number } {
  let errors = 0;
  let warnings = 0;
  for (const d of diagnostics) {
    if (d.severity === Severity.Error) errors++;
    else if (d.severity === Severity.Warning) warnings++;
  }
  return { errors, warnings };
}

/** Document order, so the CLI, the editor and the tests all see the same list. */
export function sortDiagnostics(diagnostics: RecipeDiagnostic[]): RecipeDiagnostic[] {
  return diagnostics.sort(
    (a, b) =>
      a.range.start.line - b.range.start.line ||
      a.range.start.character - b.range.start.character ||
      a.severity - b.severity ||
      a.message.localeCompare(b.message),
  );
}

const SEVERITY_NAMES: Record<Severity, string> = { 1: 'error', 2: 'warning', 3: 'info', 4: 'hint' };

export function severityName(s: Severity): string {
  return SEVERITY_NAMES[s];
}

/** `file:line:col: severity code: message`, 1-based line and column like compilers print them. */
export function formatDiagnostic(file: string, d: RecipeDiagnostic): string {
  return `${file}:${d.range.start.line + 1}:${d.range.start.character + 1}: ${severityName(d.severity)} ${d.code}: ${d.message}`;
}
