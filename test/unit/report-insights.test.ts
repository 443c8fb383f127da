import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { MergeReport } from '../../server/src/engine/pipeline/report';
import {
  alignmentSummary,
  canonicalJson,
  changedSections,
  describeAlignment,
  describeScores,
  formatCorrelation,
  formatPercent,
  layerOfGlob,
  lowCorrelation,
  orderTaps,
  scoreSummary,
  sectionFingerprint,
  tapsOfGroup,
  tapsOfLayer,
  tapTable,
  textSha256,
} from '../../server/src/engine/pipeline/report-insights';
import { checkStructure } from '../../server/src/engine/recipe';

/** The real report of the example run (4-layer encoders, 7 conv blocks). */
const real = JSON.parse(readFileSync(new URL('../fixtures/reports/speech-music.report.json', import.meta.url), 'utf8')) as MergeReport;
const synthetic = JSON.parse(readFileSync(new URL('../fixtures/reports/example.report.json', import.meta.url), 'utf8')) as MergeReport;

describe('alignment summary', () => {
  it('averages over taps like the job summary, and names the worst tap', () => {
    const s = alignmentSummary(real);
    const taps = real.align.taps;
    expect(s.taps).toBe(15);
    expect(s.before).toBeCloseTo(taps.reduce((a, t) => a + t.meanCorrelationBefore, 0) / taps.length, 12);
    expect(s.after).toBeCloseTo(taps.reduce((a, t) => a + t.meanCorrelationAfter, 0) / taps.length, 12);
    // The lowest correlation after permutation; in this run an attention tap (the one with head scores).
    const lowest = Math.min(...taps.map((t) => t.meanCorrelationAfter));
    expect(s.worst?.meanCorrelationAfter).toBe(lowest);
    expect(s.worst?.tap).toBe('layer.1.attn.v');
    expect(s.worst?.headScores).toHaveLength(real.models.anchor.heads ** 2);
    expect(s.groups.map((g) => [g.group, g.taps])).toEqual([
      ['cnn', 7],
      ['attention', 4],
      ['ffn', 4],
    ]);
    expect(describeAlignment(s)).toBe('correlation 0.04 → 0.42 over 15 taps · worst layer.1.attn.v 0.31');
  });

  it('a run without alignment says so', () => {
    const none = { ...real, align: { ...real.align, method: 'none' as const, taps: [] } };
    const s = alignmentSummary(none);
    expect([s.before, s.after, s.worst]).toEqual([null, null, null]);
    expect(describeAlignment(s)).toBe('not aligned (no permutation)');
  });
});

describe('score summary', () => {
  /** The average over tasks of one system at one λ, from the per-task rows (not the report's own averages). */
  const averageOf = (variant: string, lambda: number | null) => {
    const rows = real.evaluation!.rows.filter((r) => r.variant === variant && r.lambda === lambda);
    return rows.reduce((a, r) => a + r.score, 0) / rows.length;
  };
  const bestOf = (variant: string) =>
    real.merge.sweep!.map((lambda) => ({ lambda, average: averageOf(variant, lambda) })).reduce((b, p) => (p.average > b.average ? p : b));

  it('the best λ of each merge and the source models', () => {
    const s = scoreSummary(real)!;
    expect(real.merge.sweep).toEqual([0.3, 0.5, 0.7]);
    const permuted = bestOf('permuted');
    const unaligned = bestOf('unaligned');
    expect(s.bestPermuted).toEqual({ lambda: permuted.lambda, average: expect.closeTo(permuted.average, 12) });
    expect(s.bestUnaligned).toEqual({ lambda: unaligned.lambda, average: expect.closeTo(unaligned.average, 12) });
    expect(s.anchor).toBeCloseTo(averageOf('anchor', null), 12);
    expect(s.other).toBeCloseTo(averageOf('other', null), 12);
    expect(s.tasks).toBe(5);
    const f = (x: number) => x.toFixed(3);
    expect(describeScores(s)).toBe(
      `best permuted ${f(permuted.average)} (λ ${permuted.lambda}) vs unaligned ${f(unaligned.average)} (λ ${unaligned.lambda}) · anchor ${f(averageOf('anchor', null))} · other ${f(averageOf('other', null))}`,
    );
  });

  it('a version 1 report names the unaligned merge `linear`: the same baseline', () => {
    const v1 = structuredClone(real);
    v1.version = 1;
    const rename = <T extends { variant: string }>(x: T): T => (x.variant === 'unaligned' ? { ...x, variant: 'linear' } : x);
    v1.evaluation = { ...v1.evaluation!, rows: v1.evaluation!.rows.map(rename), averages: v1.evaluation!.averages.map(rename) };
    expect(scoreSummary(v1)).toEqual(scoreSummary(real));
  });

  it('none without an evaluation', () => {
    expect(scoreSummary({ ...real, evaluation: null })).toBeNull();
  });
});

describe('low correlation', () => {
  it('groups the taps below the threshold by part, in network order', () => {
    // At the default threshold (0.2) this run has no low tap: every tap ends above 0.3.
    expect(lowCorrelation(real, 0.2)).toEqual([]);
    const low = lowCorrelation(real, 0.35);
    expect(low.map((g) => [g.group, g.of, g.taps.map((t) => t.tap)])).toEqual([
      ['cnn', 7, ['conv.4', 'conv.5']],
      ['attention', 4, ['layer.0.attn.v', 'layer.1.attn.v', 'layer.2.attn.v', 'layer.3.attn.v']],
    ]);
    for (const g of low) {
      const below = real.align.taps.filter((t) => t.group === g.group && t.meanCorrelationAfter < 0.35);
      expect(g.taps.map((t) => t.meanCorrelationAfter).sort()).toEqual(below.map((t) => t.meanCorrelationAfter).sort());
    }
    expect(low[0]!.taps[0]).toEqual({
      tap: 'conv.4',
      layer: 4,
      meanCorrelationAfter: real.align.taps.find((t) => t.tap === 'conv.4')!.meanCorrelationAfter,
    });
  });

  it('follows the threshold: strictly below it', () => {
    const worst = alignmentSummary(real).worst!.meanCorrelationAfter;
    expect(lowCorrelation(real, worst)).toEqual([]);
    expect(lowCorrelation(real, worst + 1e-9).map((g) => g.taps.map((t) => t.tap))).toEqual([['layer.1.attn.v']]);
    expect(lowCorrelation(real, 0.5).map((g) => g.group)).toEqual(['cnn', 'attention', 'ffn']);
  });
});

describe('layers and groups', () => {
  it('a transformer layer has its attention and FFN taps; conv blocks are not layers', () => {
    expect(tapsOfLayer(real, 2).map((t) => t.tap)).toEqual(['layer.2.attn.v', 'layer.2.ffn']);
    expect(tapsOfLayer(real, 6)).toEqual([]);
    expect(tapsOfGroup(real, 'ffn').map((t) => t.layer)).toEqual([0, 1, 2, 3]);
  });

  it('network order: conv blocks, layers (attention first), residual stream last', () => {
    const order = orderTaps(synthetic.align.taps).map((t) => t.tap);
    expect(order[0]).toMatch(/^conv\./);
    expect(order.indexOf('layer.0.attn')).toBeLessThan(order.indexOf('layer.0.ffn'));
    expect(order.at(-1)).toBe('residual');
    // Whatever order the report lists them in.
    expect(orderTaps([...synthetic.align.taps].reverse()).map((t) => t.tap)).toEqual(order);
  });

  it('a glob confined to one layer names it', () => {
    expect(layerOfGlob('encoder.layers.3.**')).toBe(3);
    expect(layerOfGlob('layers.11.feed_forward.*')).toBe(11);
    expect(layerOfGlob('encoder.layers.*.attention.**')).toBeNull();
    expect(layerOfGlob('encoder.sublayers.3')).toBeNull();
  });

  it('tap table: one row per tap with before → after, moved and dead units', () => {
    const table = tapTable(tapsOfLayer(real, 0)).split('\n');
    expect(table).toHaveLength(4);
    const ffn = real.align.taps.find((t) => t.tap === 'layer.0.ffn')!;
    expect(table[3]).toBe(
      `| layer.0.ffn | FFN | 512 | ${formatCorrelation(ffn.meanCorrelationBefore)} → ${formatCorrelation(ffn.meanCorrelationAfter)} | ${formatPercent(ffn.moved)} | ${ffn.deadUnits.anchor + ffn.deadUnits.other} |`,
    );
    expect(table[2]).toMatch(/^\| layer\.0\.attn\.v \| attention \| 128 \| /);
  });

  it('formats correlations with two decimals and a real minus sign', () => {
    expect([formatCorrelation(-0.0252), formatCorrelation(-0.001), formatCorrelation(0.8944), formatCorrelation(null)]).toEqual([
      '−0.03',
      '0.00',
      '0.89',
      '–',
    ]);
  });
});

describe('recipe fingerprint', () => {
  const recipe = (extra: string) =>
    `version: 1\nmodels:\n  anchor: ./a\n  other: ./b\nprobe:\n  audio: [./probe]\nalign:\n  method: correlation\n  permute: [cnn, ffn]\nmerge:\n  lambda: 0.5\noutput: ./out\n${extra}`;
  const sections = (text: string) => sectionFingerprint(checkStructure(text).validation.partial);

  it('ignores comments, formatting, key order and the sections a run does not depend on', () => {
    const base = sections(recipe(''));
    const same = sections(
      `# a comment\nversion: 1\nmodels: { other: ./b, anchor: ./a }\nprobe:\n  audio:\n    - ./probe\nalign: { permute: [cnn, ffn], method: correlation }\nmerge:\n  lambda: 0.5   # half\noutput: ./elsewhere\nname: renamed\n`,
    );
    expect(changedSections(base, same)).toEqual([]);
  });

  it('names each changed section; defaults count as written', () => {
    const base = sections(recipe(''));
    expect(changedSections(base, sections(recipe('').replace('permute: [cnn, ffn]', 'permute: [cnn, attention]')))).toEqual(['align']);
    expect(changedSections(base, sections(recipe('').replace('lambda: 0.5', 'lambda: 0.6').replace('./b', './c')))).toEqual([
      'models',
      'merge',
    ]);
    // align.heads defaults to reorder: writing it out changes nothing.
    expect(changedSections(base, sections(recipe('').replace('method: correlation', 'method: correlation\n  heads: reorder')))).toEqual([]);
  });

  it('canonical JSON sorts keys at every depth', () => {
    expect(canonicalJson({ b: [{ y: 1, x: 2 }], a: null, c: undefined })).toBe('{"a":null,"b":[{"x":2,"y":1}]}');
  });

  it('hashes text as the engine hashes the file (UTF-8 bytes)', () => {
    // λ is U+03BB: the bytes CE BB in UTF-8.
    expect(textSha256('λ')).toBe(
      createHash('sha256')
        .update(Buffer.from([0xce, 0xbb]))
        .digest('hex'),
    );
  });
});
