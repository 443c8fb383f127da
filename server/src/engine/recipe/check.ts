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
  return { parsed, validation, diagnostics: rootCauses(sortDiagnostics(diagnostics)) };
}

/**
 * One problem, one diagnostic. Where the YAML itself is broken (a mis-indented key, a tab), what the schema then
 * says about the same lines is a consequence: the key is unknown where it landed, the section above it is empty or
 * lacks it, a value turned into a mapping. Only the YAML error is kept there (one per line), as compilers stop at
 * a syntax error; the rest of the document is reported as usual.
 */
function rootCauses(diagnostics: RecipeDiagnostic[]): RecipeDiagnostic[] {
  const broken = new Set<number>();
  for (const d of diagnostics) if (d.code === 'yaml-syntax' && d.severity === Severity.Error) broken.add(d.range.start.line);
  if (broken.size === 0) return diagnostics;
  const yamlLines = new Set<number>();
  return diagnostics.filter((d) => {
    const line = d.range.start.line;
    if (d.code === 'yaml-syntax') {
      if (yamlLines.has(line)) return false;
      yamlLines.add(line);
      return true;
    }
    if (d.code.startsWith('yaml-')) return true;
    if (d.code === 'missing-key') return false;
    if (broken.has(line)) return false;
    return !(d.code === 'wrong-type' && broken.has(d.range.end.line + 1));
  });
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
  return diagnostic(
    firstLine(p),
    Severity.Error,
    'internal-error',
    `Merge Studio could not check this recipe (a bug, please report it): ${describeError(e)}`,
  );
}
