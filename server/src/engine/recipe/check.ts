/**
 * The one recipe checker behind the editor and `merge-studio check`: YAML, schema and cross-field checks
 * (synchronous, from text alone), then the disk checks (asynchronous, cached). Never throws on user input;
 * an unexpected failure becomes an `internal-error` diagnostic.
 */
import { describeError } from '../errors';
import { diagnostic, Severity, sortDiagnostics, type Range, type RecipeDiagnostic } from './diagnostics';
import { checkCrossField, type PartialRecipe } from './crossfield';
import { RecipeDisk } from './disk';
import { parseRecipe, type ParsedRecipe } from './parse';
import { checkOnDisk } from './semantic';
import { validateRecipe, type ValidationResult } from './validate';

/** What the text alone says: reusable by completion, hover and symbols for the same document version. */
export interface RecipeStructure {
  parsed: ParsedRecipe;
  validation: ValidationResult;
  /** YAML + schema + cross-field diagnostics, in document order. */
  diagnostics: RecipeDiagnostic[];
}

export function checkStructure(text: string): RecipeStructure {
  const parsed = parseRecipe(text);
  let diagnostics: RecipeDiagnostic[];
  let validation: ValidationResult;
  try {
    validation = validateRecipe(parsed);
    const partial = validation.partial as PartialRecipe | undefined;
    diagnostics = [...parsed.diagnostics, ...validation.diagnostics];
    if (partial) diagnostics.push(...checkCrossField(partial, validation.ranges, firstLine(parsed)));
  } catch (e) {
    validation = { diagnostics: [], ranges: { key: new Map(), value: new Map() }, value: undefined, partial: undefined };
    diagnostics = [...parsed.diagnostics, internalError(parsed, e)];
  }
  return { parsed, validation, diagnostics: sortDiagnostics(diagnostics) };
}

/** Disk diagnostics only (to be merged with the structure's). */
export async function checkDisk(structure: RecipeStructure, recipeFile: string, disk: RecipeDisk): Promise<RecipeDiagnostic[]> {
  const partial = structure.validation.partial as PartialRecipe | undefined;
  if (!partial) return [];
  try {
    return await checkOnDisk(partial, structure.validation.ranges, recipeFile, disk);
  } catch (e) {
    return [internalError(structure.parsed, e)];
  }
}

/** Every diagnostic of a recipe text, in document order. */
export async function checkRecipeText(text: string, recipeFile: string, disk: RecipeDisk = new RecipeDisk()): Promise<RecipeDiagnostic[]> {
  const structure = checkStructure(text);
  const onDisk = await checkDisk(structure, recipeFile, disk);
  return sortDiagnostics([...structure.diagnostics, ...onDisk]);
}

function firstLine(p: ParsedRecipe): Range {
  return { start: { line: 0, character: 0 }, end: { line: 0, character: p.lines.lineText(0).length } };
}

function internalError(p: ParsedRecipe, e: unknown): RecipeDiagnostic {
  return diagnostic(firstLine(p), Severity.Error, 'internal-error', `Merge Studio could not check this recipe (a bug, please report it): ${describeError(e)}`);
}
