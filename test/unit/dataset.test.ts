import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EngineError } from '../../server/src/engine/errors';
import { loadTaskDataset, parseLabelsCsv } from '../../server/src/engine/io/dataset';

const root = mkdtempSync(path.join(tmpdir(), 'ms-dataset-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let counter = 0;

/** A task folder: for each split, labels.csv text and the audio files to create (empty files: nothing decodes them). */
function task(splits: Partial<Record<'train' | 'test', { csv?: string; files?: string[] }>>): string {
  const dir = path.join(root, `task${counter++}`);
  mkdirSync(dir);
  for (const [split, spec] of Object.entries(splits)) {
    const sd = path.join(dir, split);
    mkdirSync(sd);
    if (spec.csv !== undefined) writeFileSync(path.join(sd, 'labels.csv'), spec.csv);
    for (const f of spec.files ?? []) {
      mkdirSync(path.dirname(path.join(sd, f)), { recursive: true });
      writeFileSync(path.join(sd, f), '');
    }
  }
  return dir;
}

const okTrain = { csv: 'file,label\na.wav,cat\nb.wav,dog\n', files: ['a.wav', 'b.wav'] };
const okTest = { csv: 'file,label\nc.wav,dog\n', files: ['c.wav'] };

async function failure(p: Promise<unknown>): Promise<EngineError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(EngineError);
    expect((e as EngineError).code).toBe('bad-dataset');
    return e as EngineError;
  }
  throw new Error('expected the dataset to be refused');
}

describe('loadTaskDataset', () => {
  it('loads a good task: classes from train sorted, paths absolute, lines kept', async () => {
    const dir = task({
      train: {
        csv: '\ufefffile,label\r\nx/b.wav,dog\r\na.wav,cat\r\n\r\n"c, 1.wav","say ""hi"""\r\n',
        files: ['x/b.wav', 'a.wav', 'c, 1.wav'],
      },
      test: { csv: 'file,label\nd.wav,cat\n', files: ['d.wav'] },
    });
    const ds = await loadTaskDataset(dir);
    expect(ds.classes).toEqual(['cat', 'dog', 'say "hi"']);
    expect(ds.train.clips.map((c) => [c.name, c.label, c.line])).toEqual([
      ['x/b.wav', 'dog', 2],
      ['a.wav', 'cat', 3],
      ['c, 1.wav', 'say "hi"', 5],
    ]);
    expect(ds.train.clips[0]!.file).toBe(path.join(dir, 'train', 'x', 'b.wav'));
    expect(ds.test.clips).toHaveLength(1);
  });

  it('resolves the folder against baseDir', async () => {
    const dir = task({ train: okTrain, test: okTest });
    const ds = await loadTaskDataset(path.basename(dir), root);
    expect(ds.dir).toBe(dir);
  });

  it('refuses a missing task folder, naming it', async () => {
    const missing = path.join(root, 'no-such-task');
    const e = await failure(loadTaskDataset(missing));
    expect(e.message).toBe(
      `${missing}: task folder not found (a task folder holds train/ and test/, each with audio files and labels.csv (header "file,label"))`,
    );
    expect(e.file).toBe(missing);
  });

  it('refuses a file given as the task folder', async () => {
    const f = path.join(root, 'plain-file');
    writeFileSync(f, 'x');
    expect((await failure(loadTaskDataset(f))).message).toMatch(/: not a folder/);
  });

  it('refuses a task without test/', async () => {
    const dir = task({ train: okTrain });
    const e = await failure(loadTaskDataset(dir));
    expect(e.message).toMatch(new RegExp(`^${escape(dir)}: no test/ folder`));
  });

  it('refuses a split without labels.csv', async () => {
    const dir = task({ train: okTrain, test: { files: ['c.wav'] } });
    const e = await failure(loadTaskDataset(dir));
    const csv = path.join(dir, 'test', 'labels.csv');
    expect(e.message).toMatch(new RegExp(`^${escape(csv)}: not found`));
    expect(e.file).toBe(csv);
  });

  it('refuses a missing header, pointing at line 1', async () => {
    const dir = task({ train: { csv: 'a.wav,cat\nb.wav,dog\n', files: ['a.wav', 'b.wav'] }, test: okTest });
    const e = await failure(loadTaskDataset(dir));
    expect(e.message).toBe(
      `${path.join(dir, 'train', 'labels.csv')}:1: header must be "file,label", found "a.wav,cat" (the header is missing: the first line looks like a row)`,
    );
  });

  it('refuses an extra header column', async () => {
    const dir = task({ train: { csv: 'file,label,speaker\na.wav,cat,x\n', files: ['a.wav'] }, test: okTest });
    expect((await failure(loadTaskDataset(dir))).message).toMatch(
      /labels\.csv:1: header must be "file,label", found "file,label,speaker" \(3 columns; only file and label are allowed\)$/,
    );
  });

  it('refuses a row with the wrong number of columns, with its line', async () => {
    const dir = task({ train: { csv: 'file,label\na.wav,cat\nb.wav,dog,extra\n', files: ['a.wav', 'b.wav'] }, test: okTest });
    expect((await failure(loadTaskDataset(dir))).message).toMatch(
      /train[/\\]labels\.csv:3: expected 2 columns \(file,label\), found 3: "b\.wav,dog,extra"$/,
    );
    const dir2 = task({ train: { csv: 'file,label\na.wav\n', files: ['a.wav'] }, test: okTest });
    expect((await failure(loadTaskDataset(dir2))).message).toMatch(/labels\.csv:2: expected 2 columns \(file,label\), found 1/);
  });

  it('refuses an empty label', async () => {
    const dir = task({ train: { csv: 'file,label\na.wav, \n', files: ['a.wav'] }, test: okTest });
    expect((await failure(loadTaskDataset(dir))).message).toMatch(/labels\.csv:2: empty label for "a\.wav"$/);
  });

  it('refuses a listed file that does not exist, naming file and line', async () => {
    const dir = task({ train: { csv: 'file,label\na.wav,cat\nmissing.wav,dog\n', files: ['a.wav'] }, test: okTest });
    const e = await failure(loadTaskDataset(dir));
    expect(e.message).toBe(`${path.join(dir, 'train', 'labels.csv')}:3: "missing.wav" does not exist in ${path.join(dir, 'train')}`);
  });

  it('refuses a file listed twice', async () => {
    const dir = task({ train: { csv: 'file,label\na.wav,cat\nb.wav,dog\n./a.wav,dog\n', files: ['a.wav', 'b.wav'] }, test: okTest });
    expect((await failure(loadTaskDataset(dir))).message).toMatch(/labels\.csv:4: "\.\/a\.wav" is listed twice \(first on line 2\)$/);
  });

  it('refuses an empty split', async () => {
    const dir = task({ train: okTrain, test: { csv: 'file,label\n\n' } });
    expect((await failure(loadTaskDataset(dir))).message).toMatch(
      /test[/\\]labels\.csv: the test split is empty \(no rows after the header\)$/,
    );
    const dir2 = task({ train: { csv: '' }, test: okTest });
    expect((await failure(loadTaskDataset(dir2))).message).toMatch(
      /train[/\\]labels\.csv:1: empty file; expected the header "file,label"$/,
    );
  });

  it('refuses a test label that train never shows', async () => {
    const dir = task({ train: okTrain, test: { csv: 'file,label\nc.wav,dog\nd.wav,bird\n', files: ['c.wav', 'd.wav'] } });
    const e = await failure(loadTaskDataset(dir));
    expect(e.message).toBe(
      `${path.join(dir, 'test', 'labels.csv')}:3: label "bird" does not appear in train/labels.csv (known: "cat", "dog")`,
    );
  });

  it('refuses a train split with a single class', async () => {
    const dir = task({
      train: { csv: 'file,label\na.wav,cat\nb.wav,cat\n', files: ['a.wav', 'b.wav'] },
      test: { csv: 'file,label\nc.wav,cat\n', files: ['c.wav'] },
    });
    expect((await failure(loadTaskDataset(dir))).message).toMatch(/train has only one label \("cat"\); a classifier needs at least two$/);
  });

  it('refuses the same audio file in train and test', async () => {
    const dir = task({ train: okTrain, test: { csv: 'file,label\n../train/a.wav,cat\n' } });
    expect((await failure(loadTaskDataset(dir))).message).toMatch(
      /test[/\\]labels\.csv:2: "\.\.\/train\/a\.wav" is also in train \(.*labels\.csv:2\); the splits must be disjoint$/,
    );
  });

  it('refuses an unterminated quote', () => {
    expect(() => parseLabelsCsv('file,label\n"a.wav,cat\n', 'x.csv')).toThrow(/^x\.csv:2: unterminated quoted field$/);
  });

  it('loads every example task shipped in examples/eval', async () => {
    const base = path.resolve(__dirname, '../../examples/eval');
    const expected: Record<string, [number, number, number]> = {
      keywords: [10, 200, 100],
      voices: [8, 160, 80],
      pitch: [12, 240, 120],
      timbre: [6, 120, 60],
      chords: [4, 80, 40],
    };
    for (const [name, [classes, train, test]] of Object.entries(expected)) {
      const ds = await loadTaskDataset(path.join(base, name));
      expect([ds.classes.length, ds.train.clips.length, ds.test.clips.length]).toEqual([classes, train, test]);
    }
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
