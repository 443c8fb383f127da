import { describe, expect, it } from 'vitest';
import { ProgressRenderer } from '../../server/src/cli/progress-bar';
import { partsOfStage, StageEta, type JobEvent } from '../../server/src/engine/progress';

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
    expect(text.includes('\r') || text.includes('\u001b'), 'no carriage returns, no escape sequences').toBe(false);
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
    const e = new StageEta();
    expect(e.update('evaluate', 0, 10, 0).etaSeconds).toBeNull();
    expect(e.update('evaluate', 1, 10, 1000).etaSeconds).toBeNull(); // first seconds: start-up, no rate yet
    expect(e.update('evaluate', 5, 10, 10_000).etaSeconds).toBeCloseTo(10, 5);
    // Progress goes back (a new phase of the stage): a new measurement, no ETA until it has a rate.
    expect(e.update('evaluate', 2, 10, 11_000).etaSeconds).toBeNull();
    expect(e.update('evaluate', 6, 10, 19_000).etaSeconds).toBeCloseTo(8, 5);
    expect(e.update('evaluate', 10, 10, 20_000)).toEqual({ fraction: 1, etaSeconds: null });
  });

  it('evaluate scores systems as parts of one stage: progress never restarts and ends at the total', () => {
    const seen: JobEvent[] = [];
    const emit = (e: JobEvent) => seen.push(e);
    const partOf = partsOfStage(emit, 3);
    for (let part = 0; part < 3; part++) {
      const p = partOf(part);
      for (let done = 1; done <= 4; done++) p({ type: 'progress', stage: 'evaluate', done, total: 4 });
    }
    const done = seen.map((e) => (e.type === 'progress' ? e.done : -1));
    expect(done).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    expect(seen.every((e) => e.type === 'progress' && e.total === 12)).toBe(true);
  });

  it('parts that run at the same time add up: the stage only moves forward and ends at the total', () => {
    const seen: number[] = [];
    const partOf = partsOfStage((e) => seen.push(e.type === 'progress' ? e.done : -1), 2);
    const [a, b] = [partOf(0), partOf(1)];
    const p = (done: number) => ({ type: 'progress', stage: 'evaluate', done, total: 4 }) as const;
    a(p(1));
    b(p(2));
    a(p(2));
    b(p(1)); // a part going back (it never should) does not move the stage back
    b(p(4));
    a(p(4));
    expect(seen).toEqual([1, 3, 4, 4, 6, 8]);
    const logs: JobEvent[] = [];
    partsOfStage((e) => logs.push(e), 2)(1)({ type: 'log', level: 'info', message: 'kept as it is' });
    expect(logs).toEqual([{ type: 'log', level: 'info', message: 'kept as it is' }]);
  });
});
