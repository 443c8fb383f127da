/** `mergeStudio/checkRecipe`: the diagnostics of a recipe as pushed for it (open), or of the file on disk. */
import { ErrorCodes, ResponseError, type Diagnostic } from 'vscode-languageserver';
import * as lsp from '../../../../protocol/lsp-ext';
import { describeError, isEngineError } from '../../engine/errors';
import { checkRecipeText, countBySeverity, readRecipeFile } from '../../engine/recipe';
import { uriToPath } from '../documents';
import type { ServerContext } from '../server-context';
import type { Validation } from './validation';

export function registerCustomRequests(ctx: ServerContext, validation: Validation): void {
  ctx.connection.onRequest(lsp.checkRecipe, (params) =>
    ctx.guardRequest('checkRecipe', async (): Promise<lsp.CheckRecipeResult> => {
      const uri = params?.uri;
      if (typeof uri !== 'string') throw new ResponseError(ErrorCodes.InvalidParams, 'mergeStudio/checkRecipe: uri must be a string');
      const doc = ctx.documents.get(uri);
      let diagnostics: Diagnostic[];
      if (doc) diagnostics = await validation.diagnosticsFor(doc);
      else {
        const file = uriToPath(uri);
        if (!file) throw new ResponseError(ErrorCodes.InvalidParams, `${uri} is neither open nor a file`);
        diagnostics = (await checkRecipeText(await readOrRefuse(file), file, ctx.disk)) as Diagnostic[];
      }
      const { errors, warnings } = countBySeverity(diagnostics as Parameters<typeof countBySeverity>[0]);
      return { uri, version: doc?.version ?? null, diagnostics, errorCount: errors, warningCount: warnings };
    }),
  );
}

/** The recipe on disk; a file that cannot be a recipe (missing, a folder, a device, too large) is a bad request. */
async function readOrRefuse(file: string): Promise<string> {
  try {
    return await readRecipeFile(file);
  } catch (e) {
    if (isEngineError(e)) throw new ResponseError(ErrorCodes.InvalidParams, describeError(e));
    throw e;
  }
}
