/** Language features over the open documents: completion, hover, quick fixes, code lenses, outline. */
import { CompletionList } from 'vscode-languageserver';
import { uriToPath } from '../documents';
import { recipeCodeActions } from '../services/code-actions';
import { completeRecipe } from '../services/completion';
import { hoverRecipe } from '../services/hover';
import { recipeSymbols } from '../services/symbols';
import type { ServerContext } from '../server-context';

export function registerLanguageFeatures(ctx: ServerContext): void {
  const { connection } = ctx;

  // A complete list, even when empty: nothing more is to come for this position.
  connection.onCompletion((params) =>
    ctx.guard('completion', CompletionList.create([], false), async () => {
      const doc = ctx.documentOf(params, 'textDocument/completion', true);
      if (!doc) return CompletionList.create([], false);
      const items = await completeRecipe({
        parsed: ctx.parses.structure(doc).parsed,
        position: params.position,
        recipeFile: uriToPath(doc.uri),
      });
      return CompletionList.create(items, false);
    }),
  );

  connection.onHover((params) =>
    ctx.guard('hover', null, async () => {
      const doc = ctx.documentOf(params, 'textDocument/hover', true);
      if (!doc) return null;
      const structure = ctx.parses.structure(doc);
      const base = await hoverRecipe({
        parsed: structure.parsed,
        position: params.position,
        recipeFile: uriToPath(doc.uri),
        disk: ctx.disk,
      });
      return ctx.insights.hover(doc.uri, structure, params.position, base);
    }),
  );

  connection.onCodeAction((params) =>
    ctx.guard('code actions', [], () => {
      const doc = ctx.documentOf(params, 'textDocument/codeAction');
      const diagnostics = (params as { context?: { diagnostics?: unknown } } | null)?.context?.diagnostics;
      if (!doc || !Array.isArray(diagnostics)) return [];
      return recipeCodeActions(ctx.parses.structure(doc).parsed, doc.uri, diagnostics);
    }),
  );

  connection.onCodeLens((params) =>
    ctx.guard('code lenses', [], () => {
      const doc = ctx.documentOf(params, 'textDocument/codeLens');
      return doc ? ctx.insights.codeLenses(doc.uri, ctx.parses.structure(doc)) : [];
    }),
  );

  connection.onDocumentSymbol((params) =>
    ctx.guard('document symbols', [], () => {
      const doc = ctx.documentOf(params, 'textDocument/documentSymbol');
      return doc ? recipeSymbols(ctx.parses.structure(doc).parsed) : [];
    }),
  );
}
