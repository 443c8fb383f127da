import * as path from 'node:path';
import * as vscode from 'vscode';

/** A YAML scalar for a path: plain when that is unambiguous, else double-quoted (JSON strings are valid YAML). */
export function yamlPath(p: string): string {
  return /^[\w./@+~-][\w./@+~ -]*$/.test(p) && !p.endsWith(' ') && !/^[-~]$/.test(p) ? p : JSON.stringify(p);
}

/** `to` relative to the folder `fromDir`, POSIX-style, starting with ./ or ../ as recipes write paths. */
export function relativePath(fromDir: string, to: string): string {
  const rel = path.relative(fromDir, to).split(path.sep).join('/');
  if (rel === '') return '.';
  if (path.isAbsolute(rel) || /^[A-Za-z]:/.test(rel)) return rel;
  return rel.startsWith('../') || rel === '..' ? rel : `./${rel}`;
}

/**
 * The starter recipe: the method of the paper (correlation alignment of CNN, attention and FFN, then linear
 * interpolation), with probe audio still to be chosen — the missing `./probe` folder is flagged by the server,
 * which is the hint to fill it in.
 */
export function starterRecipe(o: { anchor: string; other: string; output: string }): string {
  return [
    '# Merge Studio recipe. Hover a key for its documentation; Ctrl+Space completes keys, values and paths.',
    'version: 1',
    'models:',
    `  anchor: ${yamlPath(o.anchor)}    # keeps its layout; lambda weighs it`,
    `  other: ${yamlPath(o.other)}    # permuted toward the anchor, then interpolated`,
    'probe:',
    '  audio: [./probe]    # audio both models should serve: wav, flac or mp3 files, or folders of them',
    '  max_seconds: 600',
    '  segment_seconds: 5',
    'align:',
    '  method: correlation',
    '  permute: [cnn, attention, ffn]',
    '  heads: reorder',
    'merge:',
    '  method: linear',
    '  lambda: 0.9',
    `output: ${yamlPath(o.output)}`,
    'runtime:',
    '  device: auto',
    '  seed: 0',
    '',
  ].join('\n');
}

export interface NewRecipeArgs {
  anchor?: vscode.Uri;
  other?: vscode.Uri;
  /** The recipe file to write. */
  target?: vscode.Uri;
}

const slug = (s: string) => s.replace(/[^\w.-]+/g, '-').replace(/^-+|-+$/g, '') || 'merged';

/**
 * Asks for the two model folders (and where to save) unless given, writes the starter recipe and opens it.
 * Invoked from the explorer on a folder, that folder is where the recipe goes.
 */
export async function newRecipe(args: NewRecipeArgs | vscode.Uri | undefined): Promise<vscode.Uri | undefined> {
  const given: NewRecipeArgs = args instanceof vscode.Uri ? {} : (args ?? {});
  const baseFolder = args instanceof vscode.Uri ? args : vscode.workspace.workspaceFolders?.[0]?.uri;
  const pickFolder = async (role: string): Promise<vscode.Uri | undefined> =>
    (
      await vscode.window.showOpenDialog({
        canSelectFolders: true,
        canSelectFiles: false,
        canSelectMany: false,
        defaultUri: baseFolder,
        openLabel: `Use as ${role}`,
        title: `Merge Studio: the ${role} model (a Hugging Face folder: config.json + model.safetensors)`,
      })
    )?.[0];
  const anchor = given.anchor ?? (await pickFolder('anchor'));
  if (!anchor) return undefined;
  const other = given.other ?? (await pickFolder('other'));
  if (!other) return undefined;
  const name = `${slug(path.basename(anchor.fsPath))}+${slug(path.basename(other.fsPath))}`;
  let target =
    given.target ??
    (await vscode.window.showSaveDialog({
      defaultUri: baseFolder ? vscode.Uri.joinPath(baseFolder, `${name}.merge.yaml`) : undefined,
      filters: { 'Merge Studio recipe': ['yaml', 'yml'] },
      saveLabel: 'Create Recipe',
      title: 'Merge Studio: save the new recipe',
    }));
  if (!target) return undefined;
  if (!/\.merge\.ya?ml$/.test(target.path)) target = target.with({ path: target.path.replace(/(\.ya?ml)?$/, '.merge.yaml') });
  const dir = path.dirname(target.fsPath);
  const text = starterRecipe({ anchor: relativePath(dir, anchor.fsPath), other: relativePath(dir, other.fsPath), output: `./out/${name}` });
  await vscode.workspace.fs.writeFile(target, new TextEncoder().encode(text));
  await vscode.window.showTextDocument(await vscode.workspace.openTextDocument(target));
  return target;
}
