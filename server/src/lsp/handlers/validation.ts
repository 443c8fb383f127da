/**
 * Diagnostics: one `diagnosticsFor(doc)` for what is pushed (`textDocument/publishDiagnostics`) and what
 * `mergeStudio/checkRecipe` answers: the text checks, the disk checks, and the last run's warnings. An opened
 * document is checked at once; edits are debounced, so a burst of keystrokes costs one check.
 */
import type { Diagnostic } from 'vscode-languageserver';
import type { TextDocument } from 'vscode-languageserver-textdocument';
import { checkDisk, sortDiagnostics, Severity, DIAGNOSTIC_SOURCE } from '../../engine/recipe';
import { uriToPath } from '../documents';
import type { DocumentListener } from '../open-documents';
import type { ServerContext } from '../server-context';

/** Quiet time after an edit before the document is checked. */
export const DEFAULT_VALIDATION_DELAY_MS = 150;
/** Diagnostics published per document; past it, one more says how many were left out. */
export const MAX_PUBLISHED_DIAGNOSTICS = 1_000;

export class Validation implements DocumentListener {
  private readonly timers = new Map<string, NodeJS.Timeout>();

  constructor(
    private readonly ctx: ServerContext,
    private readonly delayMs: number = DEFAULT_VALIDATION_DELAY_MS,
  ) {}

  /** Every diagnostic of this document version, in document order. */
  async diagnosticsFor(doc: TextDocument): Promise<Diagnostic[]> {
    const { ctx } = this;
    const structure = ctx.parses.structure(doc);
    const file = uriToPath(doc.uri);
    if (!file) return capped(structure.diagnostics as Diagnostic[]);
    const [onDisk, discovered] = await Promise.all([checkDisk(structure, file, ctx.disk), ctx.insights.discover(doc.uri, file, structure)]);
    if (discovered) ctx.refreshLenses();
    let diagnostics = sortDiagnostics([...structure.diagnostics, ...onDisk]) as Diagnostic[];
    const fromRun = ctx.insights.diagnostics(doc.uri, structure);
    if (fromRun.length) diagnostics = [...diagnostics, ...fromRun].sort(byStart);
    return capped(diagnostics);
  }

  /** Checks the document now and publishes, unless a newer version arrived meanwhile (its own check publishes). */
  async validate(doc: TextDocument): Promise<void> {
    const diagnostics = await this.diagnosticsFor(doc);
    if (this.ctx.documents.get(doc.uri)?.version !== doc.version) return;
    await this.ctx.connection.sendDiagnostics({ uri: doc.uri, version: doc.version, diagnostics });
  }

  /** Checks every open document again (a file on disk changed, a setting changed). */
  revalidateAll(): void {
    for (const doc of this.ctx.documents.all()) this.schedule(doc.uri, 0);
  }

  opened(doc: TextDocument): void {
    this.schedule(doc.uri, 0);
  }

  changed(doc: TextDocument): void {
    this.schedule(doc.uri, this.delayMs);
  }

  closed(uri: string): void {
    clearTimeout(this.timers.get(uri));
    this.timers.delete(uri);
    this.ctx.parses.forget(uri);
    this.ctx.insights.forget(uri);
    void this.ctx.connection.sendDiagnostics({ uri, diagnostics: [] });
  }

  private schedule(uri: string, delayMs: number): void {
    clearTimeout(this.timers.get(uri));
    this.timers.set(
      uri,
      setTimeout(() => {
        this.timers.delete(uri);
        const doc = this.ctx.documents.get(uri);
        if (doc) void this.ctx.guard('diagnostics', undefined, () => this.validate(doc));
      }, delayMs),
    );
  }
}

function capped(diagnostics: Diagnostic[]): Diagnostic[] {
  if (diagnostics.length <= MAX_PUBLISHED_DIAGNOSTICS) return diagnostics;
  const shown = diagnostics.slice(0, MAX_PUBLISHED_DIAGNOSTICS);
  const last = shown[shown.length - 1]!;
  shown.push({
    range: last.range,
    severity: Severity.Information,
    code: 'too-many-problems',
    source: DIAGNOSTIC_SOURCE,
    message: `…and ${diagnostics.length - MAX_PUBLISHED_DIAGNOSTICS} more problems not shown (run merge-studio check for all of them)`,
  });
  return shown;
}

function byStart(a: Diagnostic, b: Diagnostic): number {
  return a.range.start.line - b.range.start.line || a.range.start.character - b.range.start.character;
}
