/**
 * Fuzz tier: mutated WAV, FLAC and MP3 files through decoding and resampling to 16 kHz (loadAudio). Each case must
 * end within a time bound with bounded heap growth, in success or an EngineError whose message names the file, with
 * nothing printed by the WASM decoders, no raw Node error, no leaked descriptor, and nothing written outside its
 * folder. Header fields (rates, channel counts, chunk sizes) get targeted mutations besides random ones.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadAudio } from '../../server/src/engine/io/audio';
import { caseIndices, caseRng, diffTrees, fileSeed, FuzzTally, fuzzCases, snapshotTree, type Rng } from './fuzz-util';
import { runFileCase } from './file-case';
import { mutate } from './mutate';

const AUDIO = path.resolve(__dirname, '../fixtures/audio');
const SEEDS = [
  'sine440-16k-i16.wav',
  'sine440-48k-f32.wav',
  'stereo-44k-i16.wav',
  'rf64.wav',
  'odd-chunks.wav',
  'sine440-16k-i24.flac',
  'sine440-44k-stereo.flac',
  'sine440-44k.mp3',
];

/** Header-aware mutations: WAV fmt/data fields, FLAC STREAMINFO, MP3 frame headers. */
function mutateHeader(b: Buffer, rng: Rng): Buffer {
  const out = Buffer.from(b);
  const u32 = rng.pick([0, 1, 2, 7, 8000, 0x7fffffff, 0xffffffff, out.length, out.length + 1]);
  if (out.toString('latin1', 0, 4) === 'RIFF' || out.toString('latin1', 0, 4) === 'RF64') {
    const field = rng.pick([4, 16, 22, 24, 28, 32, 34, 40]); // RIFF size, fmt size, channels, rate, byte rate, align, bits, data size
    if (field === 22 || field === 32 || field === 34) out.writeUInt16LE(rng.pick([0, 1, 2, 3, 7, 64, 65, 255, 0xffff]), field);
    else if (field + 4 <= out.length) out.writeUInt32LE(u32, field);
  } else if (out.toString('latin1', 0, 4) === 'fLaC') {
    const at = 8 + rng.int(0, 17); // inside STREAMINFO: block sizes, frame sizes, rate/channels/bits, total samples
    out[at] = rng.pick([0, 0xff, rng.int(0, 255)]);
  } else {
    // An MP3: corrupt a frame header (sync word kept) somewhere in the stream.
    const syncs: number[] = [];
    for (let i = 0; i + 1 < out.length && syncs.length < 64; i++) if (out[i] === 0xff && (out[i + 1]! & 0xe0) === 0xe0) syncs.push(i);
    const at = syncs.length ? rng.pick(syncs) : 0;
    if (at + 3 < out.length) out[at + rng.int(1, 3)] = rng.int(0, 255);
  }
  return out;
}

/** One case: decode the file with console and stderr captured, so that a decoder that prints fails the case. */
async function runCase(tally: FuzzTally, name: string, bytes: Buffer, label: string): Promise<void> {
  const printed: string[] = [];
  const saved = { error: console.error, warn: console.warn, log: console.log, write: process.stderr.write };
  const read = async (file: string) => {
    console.error = console.warn = console.log = (...args: unknown[]) => void printed.push(args.map(String).join(' '));
    process.stderr.write = ((chunk: unknown) => (printed.push(String(chunk)), true)) as typeof process.stderr.write;
    try {
      return await loadAudio(file, 16000);
    } finally {
      Object.assign(console, { error: saved.error, warn: saved.warn, log: saved.log });
      process.stderr.write = saved.write;
    }
  };
  await runFileCase({ tally, kind: 'audio', name, bytes, label, read });
  if (printed.length) throw new Error(`${label}: the decoder printed: ${printed.join(' | ').slice(0, 300)}`);
}

/** Cases in the main corpus (the nightly run raises it); the test's time limit grows with it. */
const COUNT = fuzzCases(100);

describe('fuzz: audio decoders', () => {
  const fixturesBefore = snapshotTree(AUDIO);

  it(
    'mutated WAV, FLAC and MP3 files decode or fail with a located message, quietly and in bounded time',
    { timeout: Math.max(600_000, COUNT * 2_000) },
    async () => {
      const count = COUNT;
      const seed = fileSeed('audio');
      const tally = new FuzzTally('audio');
      const seeds = SEEDS.map((name) => ({ name, bytes: readFileSync(path.join(AUDIO, name)) }));
      for (const i of caseIndices(count)) {
        const rng = caseRng(seed, i);
        const s = rng.pick(seeds);
        await tally.run(i, async () => {
          const targeted = rng.bool(0.4);
          const m = targeted ? { bytes: mutateHeader(s.bytes, rng), applied: ['header'] } : mutate(s.bytes, rng);
          await runCase(tally, `clip${path.extname(s.name)}`, m.bytes, `case ${i} ${s.name} ${m.applied.join('+')}`);
        });
      }
      const report = tally.finish();
      expect(diffTrees(fixturesBefore, snapshotTree(AUDIO))).toEqual([]);
      expect({ cases: tally.cases, crashes: tally.crashes, hangs: tally.hangs }, report).toEqual({
        cases: caseIndices(count).length,
        crashes: 0,
        hangs: 0,
      });
    },
  );
});
