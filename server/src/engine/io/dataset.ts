/**
 * Evaluation datasets on disk: a task folder holding `train/` and `test/`, each with audio files and a `labels.csv`
 *
 *     file,label
 *     yes-000.wav,yes
 *     sub/clip 2.wav,"label, with a comma"
 *
 * File names are relative to the split folder (subfolders allowed); labels are strings. Fields may be quoted as in
 * RFC 4180 (`"…"`, `""` for a quote). Blank lines are skipped; a UTF-8 BOM and CRLF line ends are accepted.
 *
 * Loading checks everything a probe would trip over later and reports it as an EngineError('bad-dataset') whose
 * message starts with `path:line:` where a line is to blame: a missing folder or labels.csv, a wrong header, a row
 * with the wrong number of columns or an empty field, a file listed twice, a listed file that does not exist, an empty
 * split, fewer than two classes in train, a test label that train never shows, the same audio file in both splits.
 * Audio is not decoded here (see io/audio.ts); only its existence is checked.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { EngineError } from '../errors';
import { readTextFile } from './regular-file';

export type SplitName = 'train' | 'test';

export interface LabeledClip {
  /** Absolute path of the audio file. */
  file: string;
  /** As written in labels.csv (relative to the split folder). */
  name: string;
  label: string;
  /** 1-based line of labels.csv that lists it. */
  line: number;
}

export interface DatasetSplit {
  split: SplitName;
  /** Absolute path of the split folder and of its labels.csv. */
  dir: string;
  csv: string;
  clips: LabeledClip[];
}

export interface TaskDataset {
  /** Absolute path of the task folder. */
  dir: string;
  train: DatasetSplit;
  test: DatasetSplit;
  /** The classes, as the distinct train labels sorted by code unit; a clip's class index is its place here. */
  classes: string[];
}

export const LABELS_CSV = 'labels.csv';
export const LABELS_HEADER = ['file', 'label'] as const;

/** A labels.csv of a million clips is ~50 MB; a larger one (or a device) is refused instead of read. */
export const MAX_LABELS_BYTES = 256 * 1024 * 1024;
const LAYOUT_HINT = 'a task folder holds train/ and test/, each with audio files and labels.csv (header "file,label")';

function bad(message: string, file: string): EngineError {
  return new EngineError('bad-dataset', message, file);
}

/** Loads and checks a task folder. `dir` is resolved against `baseDir` (default: the current directory). */
export async function loadTaskDataset(dir: string, baseDir: string = process.cwd()): Promise<TaskDataset> {
  const abs = path.resolve(baseDir, dir);
  const st = await fs.stat(abs).catch(() => undefined);
  if (!st) throw bad(`${abs}: task folder not found (${LAYOUT_HINT})`, abs);
  if (!st.isDirectory()) throw bad(`${abs}: not a folder (${LAYOUT_HINT})`, abs);
  const train = await loadSplit(abs, 'train');
  const test = await loadSplit(abs, 'test');

  const classes = [...new Set(train.clips.map((c) => c.label))].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  if (classes.length < 2) {
    throw bad(`${train.csv}: train has only one label ("${classes[0]}"); a classifier needs at least two`, train.csv);
  }
  const known = new Set(classes);
  for (const c of test.clips) {
    if (!known.has(c.label)) {
      throw bad(`${test.csv}:${c.line}: label "${c.label}" does not appear in train/${LABELS_CSV} (known: ${preview(classes)})`, test.csv);
    }
  }
  const trainFiles = new Map(train.clips.map((c) => [c.file, c]));
  for (const c of test.clips) {
    const t = trainFiles.get(c.file);
    if (t) throw bad(`${test.csv}:${c.line}: "${c.name}" is also in train (${train.csv}:${t.line}); the splits must be disjoint`, test.csv);
  }
  return { dir: abs, train, test, classes };
}

async function loadSplit(taskDir: string, split: SplitName): Promise<DatasetSplit> {
  const dir = path.join(taskDir, split);
  const st = await fs.stat(dir).catch(() => undefined);
  if (!st || !st.isDirectory()) throw bad(`${taskDir}: no ${split}/ folder (${LAYOUT_HINT})`, taskDir);
  const csv = path.join(dir, LABELS_CSV);
  let text: string;
  try {
    text = await readTextFile(csv, MAX_LABELS_BYTES, 'a labels CSV file', 'bad-dataset');
  } catch (e) {
    if (e instanceof EngineError && e.code === 'file-not-found') throw bad(`${csv}: not found (${LAYOUT_HINT})`, csv);
    throw e;
  }
  const rows = parseLabelsCsv(text, csv);
  if (rows.length === 0) throw bad(`${csv}: the ${split} split is empty (no rows after the header)`, csv);

  const seen = new Map<string, number>();
  const clips: LabeledClip[] = [];
  for (const r of rows) {
    const file = path.resolve(dir, r.file);
    const first = seen.get(file);
    if (first !== undefined) throw bad(`${csv}:${r.line}: "${r.file}" is listed twice (first on line ${first})`, csv);
    seen.set(file, r.line);
    clips.push({ file, name: r.file, label: r.label, line: r.line });
  }
  const missing = await Promise.all(
    clips.map(async (c) => {
      const s = await fs.stat(c.file).catch(() => undefined);
      return s && s.isFile() ? undefined : c;
    }),
  );
  const gone = missing.find((c) => c !== undefined);
  if (gone) throw bad(`${csv}:${gone.line}: "${gone.name}" does not exist in ${dir}`, csv);
  return { split, dir, csv, clips };
}

export interface LabelRow {
  file: string;
  label: string;
  /** 1-based line number in the CSV text. */
  line: number;
}

/** Parses labels.csv text (header `file,label`, then one row per clip); `csvPath` names the file in errors. */
export function parseLabelsCsv(text: string, csvPath: string): LabelRow[] {
  const records = splitCsv(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text, csvPath);
  const nonBlank = records.filter((r) => !(r.fields.length === 1 && r.fields[0]!.trim() === ''));
  const header = nonBlank[0];
  if (!header) throw bad(`${csvPath}:1: empty file; expected the header "file,label"`, csvPath);
  const names = header.fields.map((f) => f.trim());
  if (names.length !== 2 || names[0] !== LABELS_HEADER[0] || names[1] !== LABELS_HEADER[1]) {
    const found = header.fields.join(',');
    const hint =
      names.length === 2 && !names.includes('file') && !names.includes('label')
        ? ' (the header is missing: the first line looks like a row)'
        : names.length > 2
          ? ` (${names.length} columns; only file and label are allowed)`
          : '';
    throw bad(`${csvPath}:${header.line}: header must be "file,label", found "${found}"${hint}`, csvPath);
  }
  const rows: LabelRow[] = [];
  for (const r of nonBlank.slice(1)) {
    if (r.fields.length !== 2) {
      throw bad(`${csvPath}:${r.line}: expected 2 columns (file,label), found ${r.fields.length}: "${r.raw}"`, csvPath);
    }
    const file = r.fields[0]!.trim();
    const label = r.fields[1]!.trim();
    if (file === '') throw bad(`${csvPath}:${r.line}: empty file name`, csvPath);
    if (label === '') throw bad(`${csvPath}:${r.line}: empty label for "${file}"`, csvPath);
    rows.push({ file, label, line: r.line });
  }
  return rows;
}

interface CsvRecord {
  fields: string[];
  line: number;
  raw: string;
}

/** RFC 4180 records: quoted fields may hold commas, quotes ("") and line breaks. */
function splitCsv(text: string, csvPath: string): CsvRecord[] {
  const out: CsvRecord[] = [];
  let fields: string[] = [];
  let field = '';
  let line = 1;
  let startLine = 1;
  let startAt = 0;
  let i = 0;
  let quoted = false;
  let atFieldStart = true;
  const endRecord = (end: number) => {
    fields.push(field);
    out.push({ fields, line: startLine, raw: text.slice(startAt, end).replace(/\r$/, '') });
    fields = [];
    field = '';
    atFieldStart = true;
  };
  while (i < text.length) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        quoted = false;
        i++;
        continue;
      }
      if (ch === '\n') line++;
      field += ch;
      i++;
      continue;
    }
    if (ch === '"' && atFieldStart && field.trim() === '') {
      quoted = true;
      field = '';
      atFieldStart = false;
      i++;
      continue;
    }
    if (ch === ',') {
      fields.push(field);
      field = '';
      atFieldStart = true;
      i++;
      continue;
    }
    if (ch === '\n' || ch === '\r') {
      endRecord(i);
      if (ch === '\r' && text[i + 1] === '\n') i++;
      i++;
      line++;
      startLine = line;
      startAt = i;
      continue;
    }
    field += ch;
    atFieldStart = false;
    i++;
  }
  if (quoted) throw bad(`${csvPath}:${startLine}: unterminated quoted field`, csvPath);
  if (field !== '' || fields.length > 0) endRecord(text.length);
  return out;
}

function preview(xs: readonly string[], max = 8): string {
  const shown = xs
    .slice(0, max)
    .map((x) => `"${x}"`)
    .join(', ');
  return xs.length > max ? `${shown}, … ${xs.length - max} more` : shown;
}
