import { describe, expect, it } from 'vitest';
import { ProgressRenderer, eta } from '../../server/src/cli/progress-bar';
import { partOfStage, type JobEvent } from '../../server/src/engine/progress';

const sink = (isTTY: boolean) => {
  const chunks: string[] = [];
  return { stream: { isTTY, write: (s: string) => (chunks.push(s), true) }, text: () => chunks.join('') };
};

describe('progress rendering', () => {
  it('without a TTY: whole lines only, no carriage return or escape code, even when a bar was asked for', () => {
    const out = sink(false);
    const r = new ProgressRenderer(out.stream, true);
    r.handle({ type: 'stage', stage: 'probe', message: 'decoding' }, 0);
    for (let i = 0; i < 16; i++) r.handle({ type: 'progress', stage: 'probe', done: i, total: 16 }, 100 + i);
    r.handle({ type: 'stage', stage: 'statistics', message: 'taps' }, 200);
    r.finishLine();
    const text = out.text();
    expect(text).not.toMatch(/[\r\x1b]/);
    expect(text.endsWith('\n')).toBe(true);
    // The last progress seen before the stage ended is printed, on its own line, before the next stage.
    expect(text).toContain('15/16\nstatistics');
  });

  it('on a TTY, a message after a bar (Ctrl-C, an error) starts on its own line', () => {
    const out = sink(true);
    const r = new ProgressRenderer(out.stream, true);
    r.handle({ type: 'progress', stage: 'evaluate', done: 3, total: 10 }, 0);
    r.finishLine();
    expect(out.text()).toMatch(/3\/10\n$/);
  });

  it('one ETA per stage: none for the first seconds, then from the rate since progress last went back', () => {
    expect(eta({ at: 0, fraction: 0, total: 10 }, 0.1, 1000)).toBe('');
    expect(eta({ at: 0, fraction: 0, total: 10 }, 0.5, 10_000)).toBe(' ETA 10s');
    expect(eta({ at: 0, fraction: 0.5, total: 10 }, 0.75, 10_000)).toBe(' ETA 10s');
    expect(eta({ at: 0, fraction: 0, total: 10 }, 1, 10_000)).toBe('');
  });

  it('evaluate scores systems as parts of one stage: progress never restarts and ends at the total', () => {
    const seen: JobEvent[] = [];
    const emit = (e: JobEvent) => seen.push(e);
    for (let part = 0; part < 3; part++) {
      const p = partOfStage(emit, part, 3);
      for (let done = 1; done <= 4; done++) p({ type: 'progress', stage: 'evaluate', done, total: 4 });
    }
    const done = seen.map((e) => (e.type === 'progress' ? e.done : -1));
    expect(done).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    expect(seen.every((e) => e.type === 'progress' && e.total === 12)).toBe(true);
  });
});
