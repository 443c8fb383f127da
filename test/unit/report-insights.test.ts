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
    expect(s.worst?.tap).toBe('conv.1');
    expect(s.groups.map((g) => [g.group, g.taps])).toEqual([
      ['cnn', 7],
      ['attention', 4],
      ['ffn', 4],
    ]);
    expect(describeAlignment(s)).toBe(
      `correlation ${formatCorrelation(s.before)} → ${formatCorrelation(s.after)} over 15 taps · worst conv.1 0.05`,
    );
  });

  it('a run without alignment says so', () => {
    const none = { ...real, align: { ...real.align, method: 'none' as const, taps: [] } };
    const s = alignmentSummary(none);
    expect([s.before, s.after, s.worst]).toEqual([null, null, null]);
    expect(describeAlignment(s)).toBe('not aligned (no permutation)');
  });
});

describe('score summary', () => {
  it('the best λ of each merge and the source models', () => {
    const s = scoreSummary(real)!;
    expect(s.bestPermuted).toEqual({ lambda: 0.5, average: expect.closeTo(0.3237, 4) });
    expect(s.bestLinear).toEqual({ lambda: 0.5, average: expect.closeTo(0.3317, 4) });
    expect(s.anchor).toBeCloseTo(0.1935, 6);
    expect(s.other).toBeCloseTo(0.2685, 6);
    expect(s.tasks).toBe(5);
    expect(describeScores(s)).toBe('best permuted 0.324 (λ 0.5) vs linear 0.332 (λ 0.5) · anchor 0.194 · other 0.269');
  });

  it('none without an evaluation', () => {
    expect(scoreSummary({ ...real, evaluation: null })).toBeNull();
  });
});

describe('low correlation', () => {
  it('groups the taps below the threshold by part, in network order', () => {
    const low = lowCorrelation(real, 0.2);
    expect(low.map((g) => [g.group, g.of, g.taps.map((t) => t.tap)])).toEqual([
      ['cnn', 7, ['conv.1', 'conv.4', 'conv.5', 'conv.6']],
      ['ffn', 4, ['layer.0.ffn', 'layer.1.ffn', 'layer.2.ffn', 'layer.3.ffn']],
    ]);
    expect(low[0]!.taps[0]).toEqual({
      tap: 'conv.1',
      layer: 1,
      meanCorrelationAfter: real.align.taps.find((t) => t.tap === 'conv.1')!.meanCorrelationAfter,
    });
  });

  it('follows the threshold: strictly below it', () => {
    expect(lowCorrelation(real, 0.05).map((g) => g.taps.map((t) => t.tap))).toEqual([['conv.1']]);
    const conv1 = real.align.taps.find((t) => t.tap === 'conv.1')!.meanCorrelationAfter;
    expect(lowCorrelation(real, conv1)).toEqual([]);
    expect(lowCorrelation(real, 0.3).map((g) => g.group)).toEqual(['cnn', 'attention', 'ffn']);
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
      `| layer.0.ffn | FFN | 512 | ${formatCorrelation(ffn.meanCorrelationBefore)} → ${formatCorrelation(ffn.meanCorrelationAfter)} | 100% | 0 |`,
    );
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
