/**
 * Fuzz tier: mutated safetensors files and torch.save zips (and pickles re-zipped with valid CRCs, so mutations reach
 * the unpickler) through openCheckpoint and every tensor read. Each case must end within a time bound, with bounded
 * heap growth, in success or an EngineError whose message names the file, with no raw Node error, no stack trace,
 * no leaked file descriptor and nothing written outside its folder. Known crashers are fixed regression cases.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { EngineError } from '../../server/src/engine/errors';
import { openCheckpoint } from '../../server/src/engine/io/checkpoint';
import { FIXTURES } from '../helpers/reference';
import { locateEntry, storedZip } from '../helpers/zip';
import { caseIndices, caseRng, diffTrees, fileSeed, FuzzTally, fuzzCases, snapshotTree, type Rng } from './fuzz-util';
import { runFileCase } from './file-case';
import { mutate } from './mutate';

const TORCH = path.join(FIXTURES, 'torch');

/** A small valid safetensors file (F32, F16, BF16, I64, a scalar, an empty tensor, metadata). */
function safetensorsSeed(): Buffer {
  const tensors: [string, string, number[], number][] = [
    ['a', 'F32', [2, 3], 4],
    ['b', 'F16', [4], 2],
    ['c', 'BF16', [2, 2], 2],
    ['d', 'I64', [2], 8],
    ['s', 'F32', [], 4],
    ['e', 'F32', [0, 5], 4],
  ];
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const [name, dtype, shape, es] of tensors) {
    const n = shape.reduce((x, y) => x * y, 1) * es;
    header[name] = { dtype, shape, data_offsets: [offset, offset + n] };
    offset += n;
  }
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  const data = Buffer.alloc(offset);
  for (let i = 0; i < offset; i++) data[i] = (i * 37) & 0x3f; // small finite values in every dtype
  return Buffer.concat([len, json, data]);
}

/** Structure-aware mutations of a safetensors JSON header: numbers, dtypes, shapes and offsets. */
function mutateSafetensorsHeader(seed: Buffer, rng: Rng): Buffer {
  const n = Number(seed.readBigUInt64LE(0));
  const header = JSON.parse(seed.subarray(8, 8 + n).toString('utf8')) as Record<string, Record<string, unknown>>;
  const names = Object.keys(header).filter((k) => k !== '__metadata__');
  const evil = [-1, 0, 1, 2 ** 31, 2 ** 53, 1e308, 1.5, '3', null, [], {}, 'F32', 'U64', 'F8_E4M3', true];
  for (let k = rng.int(1, 3); k > 0; k--) {
    const picked = header[rng.pick(names)];
    if (!picked || typeof picked !== 'object' || Array.isArray(picked)) continue; // an earlier mutation replaced it
    const e = picked;
    const field = rng.pick(['dtype', 'shape', 'data_offsets', 'extra']);
    if (field === 'shape' || field === 'data_offsets') {
      const arr = Array.isArray(e[field]) ? [...(e[field] as unknown[])] : [];
      if (rng.bool() && arr.length) arr[rng.int(0, arr.length - 1)] = rng.pick(evil);
      else if (rng.bool()) arr.push(rng.pick(evil));
      else arr.pop();
      e[field] = rng.bool(0.1) ? rng.pick(evil) : arr;
    } else if (field === 'dtype') e.dtype = rng.pick(evil);
    else header[rng.pick(['__metadata__', 'x', ...names])] = rng.pick(evil) as Record<string, unknown>;
  }
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(rng.bool(0.9) ? BigInt(json.length) : BigInt(rng.pick([0, json.length + 1, json.length - 1, 2 ** 40])));
  return Buffer.concat([len, json, seed.subarray(8 + n)]);
}

/** The entries of a torch fixture, with its data.pkl replaced, re-zipped with correct CRCs (stored). */
function rezipWithPickle(zip: Buffer, prefix: string, pickle: Buffer, names: readonly string[]): Buffer {
  return storedZip(
    names.map((name) => {
      if (name === `${prefix}/data.pkl`) return { name, data: pickle };
      const { dataStart, size } = locateEntry(zip, name);
      return { name, data: zip.subarray(dataStart, dataStart + size) };
    }),
  );
}

interface TorchSeed {
  file: string;
  bytes: Buffer;
  prefix: string;
  names: string[];
  pickle: Buffer;
}

function torchSeed(name: string): TorchSeed {
  const bytes = readFileSync(path.join(TORCH, name));
  const prefix = name.replace(/\.bin$/, '');
  const names: string[] = [];
  for (
    let p = bytes.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
    p >= 0;
    p = bytes.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]), p + 4)
  ) {
    names.push(bytes.toString('utf8', p + 46, p + 46 + bytes.readUInt16LE(p + 28)));
  }
  const pkl = locateEntry(bytes, `${prefix}/data.pkl`);
  return { file: name, bytes, prefix, names, pickle: bytes.subarray(pkl.dataStart, pkl.dataStart + pkl.size) };
}

/** Opens and reads every tensor; the outcome must be success or a located EngineError. */
async function loadAll(file: string): Promise<void> {
  const ckpt = await openCheckpoint(file);
  try {
    for (const t of ckpt.tensors()) {
      await ckpt.read(t.name).catch((e: unknown) => {
        if (!(e instanceof EngineError && e.code === 'bad-dtype')) throw e; // integer tensors are refused as weights by design
      });
    }
  } finally {
    await ckpt.close();
  }
}

/** One case: write `bytes` as `name` in a fresh folder, load it, classify the outcome. */
function runCase(tally: FuzzTally, name: string, bytes: Buffer, label: string): Promise<void> {
  return runFileCase({ tally, kind: 'loader', name, bytes, label, read: loadAll });
}

/** Cases in the main corpus (the nightly run raises it); the test's time limit grows with it. */
const COUNT = fuzzCases(300);

describe('fuzz: checkpoint loaders', () => {
  const fixturesBefore = snapshotTree(TORCH);

  it(
    'mutated safetensors files, torch zips and torch pickles load or fail with a located message',
    { timeout: Math.max(600_000, COUNT * 2_000) },
    async () => {
      const count = COUNT;
      const seed = fileSeed('loaders');
      const tally = new FuzzTally('loaders');
      const st = safetensorsSeed();
      const torchSeeds = [
        'state-f32.bin',
        'state-f16.bin',
        'state-bf16.bin',
        'state-f32-p4.bin',
        'state-f32-p5.bin',
        'noncontig.bin',
        'state-f32-bigendian.bin',
      ].map(torchSeed);
      for (const i of caseIndices(count)) {
        const rng = caseRng(seed, i);
        const kind = rng.pick(['safetensors-bytes', 'safetensors-header', 'torch-zip', 'torch-pickle', 'torch-pickle']);
        await tally.run(i, async () => {
          if (kind === 'safetensors-bytes') {
            const m = mutate(st, rng);
            await runCase(tally, 'model.safetensors', m.bytes, `case ${i} safetensors ${m.applied.join('+')}`);
          } else if (kind === 'safetensors-header') {
            await runCase(tally, 'model.safetensors', mutateSafetensorsHeader(st, rng), `case ${i} safetensors header`);
          } else {
            const s = rng.pick(torchSeeds);
            if (kind === 'torch-zip') {
              const m = mutate(s.bytes, rng);
              await runCase(tally, 'pytorch_model.bin', m.bytes, `case ${i} ${s.file} zip ${m.applied.join('+')}`);
            } else {
              const m = mutate(s.pickle, rng, [
                'flipBits',
                'randomBytes',
                'interesting32',
                'interesting64',
                'truncate',
                'insert',
                'duplicateRange',
                'deleteRange',
              ]);
              await runCase(
                tally,
                'pytorch_model.bin',
                rezipWithPickle(s.bytes, s.prefix, m.bytes, s.names),
                `case ${i} ${s.file} pickle ${m.applied.join('+')}`,
              );
            }
          }
        });
      }
      const report = tally.finish();
      expect(diffTrees(fixturesBefore, snapshotTree(TORCH))).toEqual([]);
      expect({ cases: tally.cases, crashes: tally.crashes, hangs: tally.hangs }, report).toEqual({
        cases: caseIndices(count).length,
        crashes: 0,
        hangs: 0,
      });
    },
  );

  it('known crashers stay fixed: a bogus ZIP64 locator, a 3-million-element list, a CRC mismatch, end-record garbage, an over-long inflate', async () => {
    const tally = new FuzzTally('loaders-regressions');
    const s = torchSeed('state-f32.bin');
    const zip64 = Buffer.from(s.bytes);
    const loc = zip64.lastIndexOf(Buffer.from([0x50, 0x4b, 0x06, 0x07]));
    zip64.writeBigUInt64LE(0xfffffffffffffff0n, loc + 8);
    const bigList = Buffer.alloc(3_000_006, 0x4e);
    bigList.set([0x80, 2, 0x5d, 0x28]);
    bigList.set([0x65, 0x2e], 3_000_004);
    const crc = Buffer.from(s.bytes);
    crc[locateEntry(crc, 'state-f32/data/0').dataStart]! ^= 0xff;
    // Found by this fuzzer: a deflated data.pkl that inflates past the size its directory entry states.
    const big = torchSeed('state-f32-bigendian.bin');
    const inflates = Buffer.from(big.bytes);
    inflates.writeUInt32LE(10, locateEntry(inflates, 'state-f32-bigendian/data.pkl').central + 24);
    const cases: [string, Buffer][] = [
      ['inflate-past-size', inflates],
      ['zip64-locator', zip64],
      ['three-million-list', storedZip([{ name: 'archive/data.pkl', data: bigList }])],
      ['crc', crc],
      ['end-garbage', Buffer.concat([s.bytes, Buffer.from('garbage')])],
    ];
    for (const [i, [label, bytes]] of cases.entries()) await tally.run(i, () => runCase(tally, 'pytorch_model.bin', bytes, label));
    expect(tally.failures, tally.finish()).toEqual([]);
  });
});
