/**
 * Dev-time check of align.method paper against scripts/paper-reference.py (numpy float64 + scipy, the solver the
 * released code calls): an encoder pair's tapped activations, batch by batch, go to the Python reference; the
 * engine's correlations and permutations (align/paper/) must agree. Usage:
 *   npx tsx scripts/check-paper-reference.ts [anchor-dir] [other-dir]   (default: the examples' encoders)
 */
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { alignPaper } from '../server/src/engine/align/paper';
import { buildProbeSet } from '../server/src/engine/io/probe';
import { EncoderSession, loadEncoderModel } from '../server/src/engine/model/encoder';
import { tapName, type TapName } from '../server/src/engine/model/taps';

const root = path.resolve(__dirname, '..');
const anchorDir = process.argv[2] ?? path.join(root, 'examples/models/speech-encoder');
const otherDir = process.argv[3] ?? path.join(root, 'examples/models/music-encoder');

async function main(): Promise<void> {
  const anchor = await loadEncoderModel(anchorDir);
  const other = await loadEncoderModel(otherDir);
  const cfg = anchor.config;
  const probe = await buildProbeSet({
    sources: [path.join(root, 'examples/probe/speech'), path.join(root, 'examples/probe/music')],
    baseDir: root,
    sampleRate: cfg.sampleRate,
    segmentSeconds: 1,
    maxSeconds: 6,
    seed: 0,
  });
  const batchSize = 4; // several batches, so the per-batch standardisation matters
  const engine = await alignPaper(anchor, other, probe, { device: 'cpu', permute: ['attention', 'ffn'], heads: 'reorder', batchSize });

  const taps: TapName[] = Array.from({ length: cfg.layers }, (_, l) => [tapName.attnOut(l), tapName.ffn(l)]).flat();
  const [sa, sb] = await Promise.all([
    EncoderSession.create(anchor, taps, { device: 'cpu' }),
    EncoderSession.create(other, taps, { device: 'cpu' }),
  ]);
  const request: { heads: number; taps: Record<string, { kind: string; batches: { A: number[][]; B: number[][] }[] }> } = {
    heads: cfg.heads,
    taps: {},
  };
  for (const t of taps) request.taps[t] = { kind: t.endsWith('attn_out') ? 'attn' : 'ffn', batches: [] };
  const S = probe.segmentSamples;
  for (let s = 0; s < probe.segments.length; s += batchSize) {
    const n = Math.min(batchSize, probe.segments.length - s);
    const audio = new Float32Array(n * S);
    for (let k = 0; k < n; k++) audio.set(probe.segments[s + k]!.samples, k * S);
    const [oa, ob] = [await sa.run(audio, n), await sb.run(audio, n)];
    const units = (x: { dims: readonly number[]; data: unknown }) => {
      const d = x.dims[2]!;
      const data = x.data as Float32Array;
      return Array.from({ length: d }, (_, u) => Array.from({ length: data.length / d }, (_, f) => data[f * d + u]!));
    };
    for (const t of taps) request.taps[t]!.batches.push({ A: units(oa.get(t)!), B: units(ob.get(t)!) });
  }
  await Promise.all([sa.release(), sb.release()]);
  const reference = JSON.parse(
    execFileSync('python3', [path.join(root, 'scripts/paper-reference.py')], {
      input: JSON.stringify(request),
      maxBuffer: 1 << 30,
    }).toString(),
  ) as Record<string, { corr: number[][]; perm: number[] }>;

  let worst = 0;
  for (const t of taps) {
    const ours = engine.correlations.get(t)!;
    const ref = reference[t]!;
    const d = ref.corr.length;
    let err = 0;
    for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) err = Math.max(err, Math.abs(ours[i * d + j]! - ref.corr[i]![j]!));
    worst = Math.max(worst, err);
    const group = t.endsWith('attn_out') ? `layer.${t.split('.')[1]}.attn.v` : `layer.${t.split('.')[1]}.ffn`;
    const p = engine.perms.get(group)!;
    const differ = ref.perm.filter((v, i) => v !== p[i]).length;
    console.log(
      `${t.padEnd(18)} max |Δcorr| ${err.toExponential(2)}  permutation: ${differ === 0 ? 'identical' : `${differ}/${d} units differ`}`,
    );
  }
  console.log(`${probe.segments.length} segments in batches of ${batchSize}; worst |Δcorr| ${worst.toExponential(2)}`);
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
