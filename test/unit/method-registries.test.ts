import { describe, expect, it } from 'vitest';
import { ALIGN_METHODS, alignNeedsProbe } from '../../server/src/engine/align/methods';
import { MERGE_METHODS, mergeNeedsProbe } from '../../server/src/engine/merge/methods';
import { probeNeed } from '../../server/src/engine/pipeline/probe-need';
import { ALIGN_METHOD_NAMES, MERGE_METHOD_NAMES } from '../../server/src/engine/recipe/schema';

describe('method registries', () => {
  it('have exactly one entry per schema enum value, each under its own name', () => {
    expect(Object.keys(ALIGN_METHODS).sort()).toEqual([...ALIGN_METHOD_NAMES].sort());
    expect(Object.keys(MERGE_METHODS).sort()).toEqual([...MERGE_METHOD_NAMES].sort());
    for (const [key, m] of Object.entries(ALIGN_METHODS)) expect(m.name).toBe(key);
    for (const [key, m] of Object.entries(MERGE_METHODS)) expect(m.name).toBe(key);
  });

  it('answer "needs probe audio" from the entries, and no for unknown names', () => {
    expect(alignNeedsProbe('correlation')).toBe(true);
    expect(alignNeedsProbe('weights')).toBe(false);
    expect(alignNeedsProbe('none')).toBe(false);
    expect(alignNeedsProbe('toString')).toBe(false);
    expect(alignNeedsProbe(undefined)).toBe(false);
    expect(mergeNeedsProbe('linear')).toBe(false);
    expect(mergeNeedsProbe('constructor')).toBe(false);
  });

  it('name the first setting that needs a probe, main run before variants', () => {
    expect(probeNeed({ align: { method: 'none' }, merge: { method: 'linear' } })).toBeUndefined();
    expect(probeNeed({ align: { method: 'correlation' } })).toEqual({ path: ['align', 'method'], setting: 'align.method correlation' });
    expect(probeNeed({ align: { method: 'weights' }, merge: { repair: true } })).toEqual({
      path: ['merge', 'repair'],
      setting: 'merge.repair',
    });
    expect(probeNeed({ align: { method: 'none' }, variants: [{}, { align: { method: 'correlation' } }] })).toEqual({
      path: ['variants', 1, 'align', 'method'],
      setting: 'variants[1].align.method correlation',
    });
  });
});
