/**
 * Fuzz tier: mutated WAV, FLAC and MP3 files through decoding and resampling to 16 kHz (loadAudio). Each case must
 * end within a time bound with bounded heap growth, in success or an EngineError whose message names the file, with
 * nothing printed by the WASM decoders, no raw Node error, no leaked descriptor, and nothing written outside its
 * folder. Header fields (rates, channel counts, chunk sizes) get targeted mutations besides random ones.
 */
import { promises as fs, readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { EngineError } from '../../server/src/engine/errors';
import { loadAudio } from '../../server/src/engine/io/audio';
import {
  assertNoStackTrace,
  caseDir,
  caseIndices,
  caseRng,
  diffTrees,
  fileSeed,
  FuzzHang,
  FuzzTally,
  fuzzCases,
  snapshotTree,
  within,
  type Rng,
} from './fuzz-util';
import { mutate } from './mutate';

const AUDIO = path.resolve(__dirname, '../fixtures/audio');
/** A case may use this much CPU time (measured as CPU time, so a loaded shared machine does not fake a hang)… */
const CPU_BOUND_MS = 10_000;
/** …and this much wall time (a read that blocks uses no CPU). */
const WALL_BOUND_MS = 60_000;
const HEAP_BOUND_BYTES = 512 * 1024 * 1024;
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
const openFds = () => readdirSync('/proc/self/fd').length;

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

async function runCase(tally: FuzzTally, name: string, bytes: Buffer, label: string): Promise<void> {
  const { dir, remove } = caseDir('audio');
  const printed: string[] = [];
  const saved = { error: console.error, warn: console.warn, log: console.log, write: process.stderr.write };
  try {
    const file = path.join(dir, name);
    await fs.writeFile(file, bytes);
    const fds = openFds();
    const heap = process.memoryUsage().heapUsed;
    console.error = console.warn = console.log = (...args: unknown[]) => void printed.push(args.map(String).join(' '));
    process.stderr.write = ((chunk: unknown) => (printed.push(String(chunk)), true)) as typeof process.stderr.write;
    let error: unknown;
    const cpu = process.cpuUsage();
    await within(
      loadAudio(file, 16000).then(
        () => undefined,
        (e: unknown) => void (error = e),
      ),
      WALL_BOUND_MS,
      label,
    );
    Object.assign(console, { error: saved.error, warn: saved.warn, log: saved.log });
    process.stderr.write = saved.write;
    // A synchronous decoder loop blocks the timer above; its CPU time still counts.
    const used = process.cpuUsage(cpu);
    if ((used.user + used.system) / 1000 > CPU_BOUND_MS)
      throw new FuzzHang(`${label}: took ${((used.user + used.system) / 1e6).toFixed(1)} s of CPU`);
    tally.memory(process.memoryUsage().rss);
    if (printed.length) throw new Error(`${label}: the decoder printed: ${printed.join(' | ').slice(0, 300)}`);
    if (error !== undefined) {
      if (!(error instanceof EngineError))
        throw new Error(`${label}: a raw ${(error as Error)?.name ?? typeof error} escaped: ${String((error as Error)?.message ?? error)}`);
      assertNoStackTrace(error.message, label);
      if (!error.message.includes(file)) throw new Error(`${label}: message does not name the file: ${error.message}`);
    }
    const grew = process.memoryUsage().heapUsed - heap;
    if (grew > HEAP_BOUND_BYTES) throw new Error(`${label}: heap grew by ${(grew / 2 ** 20).toFixed(0)} MiB`);
    if (openFds() !== fds) throw new Error(`${label}: ${openFds() - fds} file descriptor(s) left open`);
    const left = readdirSync(dir);
    if (left.length !== 1 || left[0] !== name) throw new Error(`${label}: the case folder now holds ${left.join(', ')}`);
  } finally {
    Object.assign(console, { error: saved.error, warn: saved.warn, log: saved.log });
    process.stderr.write = saved.write;
    remove();
  }
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
