/** Recipes: schema (single source), parsing with exact ranges, validation, disk checks, loading. */
export * from './diagnostics';
export {
  recipeSchema,
  schemaAt,
  expandUnion,
  requiredKeys,
  RECIPE_VERSION,
  type Recipe,
  type RecipeLambda,
  type EvaluationTask,
} from './schema';
export { describeExpected, type Schema, type ObjectSchema, type EnumSchema } from './schema-dsl';
export {
  parseRecipe,
  locate,
  nodeAt,
  keysAt,
  keyText,
  deref,
  nodeRange,
  LineIndex,
  type ParsedRecipe,
  type NodeLocation,
  type PathSegment,
} from './parse';
export { validateRecipe, displayPath, pathKey, type ValidationResult, type NodeRanges } from './validate';
export { checkStructure, checkDisk, checkRecipeText, type RecipeStructure } from './check';
export { RecipeDisk, isAudioFile, AUDIO_EXTENSIONS, type ModelInfo, type ModelInspection } from './disk';
export { DiskCache } from './disk-cache';
export { resolveRecipePath, modelLocation, HF_PREFIX } from './semantic';
export { globToRegExp, lambdaFor } from './glob';
export { loadRecipe, readRecipeFile, type LoadedRecipe } from './load';
export { toJsonSchema } from './json-schema';
