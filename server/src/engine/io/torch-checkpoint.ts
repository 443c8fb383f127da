/**
 * `torch.save` checkpoints (`pytorch_model.bin`, `.pt`, `.pth`) read without executing them. Opening parses the zip
 * directory and `data.pkl` with the restricted unpickler (torch-pickle.ts) and checks every tensor's view against
 * its storage; tensor bytes are read on demand, one positional read per tensor, so a 95M-parameter model never
 * needs a second copy in memory. Non-contiguous views (transposes, slices, expands) are materialised row-major.
 */
import { EngineError } from '../errors';
import { numel, type Tensor } from '../model/tensor';
import { DTYPE_BYTES, f32FromBytes, type Dtype } from './dtype';
import type { TensorInfo } from './safetensors';
import { collectTensors, type TorchTensor, unpickle } from './torch-pickle';
import { openRegularFile } from './regular-file';
import { ZipArchive } from './torch-zip';

/** data.pkl of a state dict is a few hundred kB; this bounds what a hostile file can make us hold. */
const MAX_PICKLE_BYTES = 256 * 1024 * 1024;
/** Largest view allowed to be bigger than its storage (broadcast buffers are small). */
const MAX_EXPANDED_BYTES = 64 * 1024 * 1024;

/** A tensor's bytes, contiguous, row-major, little-endian, in its stored dtype (for lossless conversion). */
export interface RawTensor {
  readonly dtype: Dtype;
  readonly shape: readonly number[];
  readonly bytes: Buffer;
}

interface Entry {
  readonly tensor: TorchTensor;
  readonly member: string;
  /** Byte range of the storage that the view touches. */
  readonly begin: number;
  readonly end: number;
}

export type CheckpointFormat = 'zip' | 'legacy-pickle' | 'legacy-tar' | 'other';

const LEGACY_MAGIC = Buffer.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]);

/** Recognises a torch file by its first bytes. */
export function sniffTorchFormat(head: Uint8Array): CheckpointFormat {
  if (head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04) return 'zip';
  if (Buffer.from(head.subarray(0, LEGACY_MAGIC.length)).equals(LEGACY_MAGIC)) return 'legacy-pickle';
  if (head.length >= 262 && Buffer.from(head.subarray(257, 262)).toString('latin1') === 'ustar') return 'legacy-tar';
  return 'other';
}

export async function readHead(file: string, n = 512): Promise<Buffer> {
  const { handle: h } = await openRegularFile(file, 'a checkpoint file');
  try {
    const buf = Buffer.alloc(n);
    const { bytesRead } = await h.read(buf, 0, n, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await h.close();
  }
}

const CONVERT_HINT =
  "re-save it in the current format with PyTorch ≥ 1.6: python -c \"import torch; torch.save(torch.load('OLD', weights_only=True), 'NEW')\" (weights_only=True keeps that load safe too)";

export class TorchCheckpointFile {
  private constructor(
    readonly file: string,
    private readonly zip: ZipArchive,
    private readonly entries: Map<string, Entry>,
    private readonly bigEndian: boolean,
  ) {}

  static async open(file: string): Promise<TorchCheckpointFile> {
    const { handle } = await openRegularFile(file, 'a PyTorch checkpoint file');
    const head = Buffer.alloc(512);
    let bytesRead: number;
    try {
      ({ bytesRead } = await handle.read(head, 0, 512, 0));
    } catch (e) {
      await handle.close();
      throw new EngineError('io-error', `cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, file, {
        cause: e,
      });
    }
    const format = sniffTorchFormat(head.subarray(0, bytesRead));
    if (format !== 'zip') {
      await handle.close();
      if (format === 'legacy-pickle')
        throw new EngineError(
          'bad-checkpoint',
          `${file} is in the legacy (pre-1.6) PyTorch format, which is read only by running its pickle; ${CONVERT_HINT}`,
          file,
        );
      if (format === 'legacy-tar')
        throw new EngineError('bad-checkpoint', `${file} is in the legacy tar PyTorch format (PyTorch ≤ 0.1.10); ${CONVERT_HINT}`, file);
      throw new EngineError(
        'bad-checkpoint',
        `${file} is not a PyTorch checkpoint (no zip signature)${bytesRead === 0 ? ': the file is empty' : ''}`,
        file,
      );
    }
    const zip = await ZipArchive.open(file, handle);
    try {
      return await TorchCheckpointFile.parse(file, zip);
    } catch (e) {
      await zip.close();
      throw e;
    }
  }

  private static async parse(file: string, zip: ZipArchive): Promise<TorchCheckpointFile> {
    const bad = (why: string) => new EngineError('bad-checkpoint', `${file}: ${why}`, file);
    const pkls = zip.names().filter((n) => /^[^/]+\/data\.pkl$/.test(n));
    if (pkls.length !== 1) {
      if (zip.names().some((n) => /^[^/]+\/(constants\.pkl|code\/)/.test(n)))
        throw bad('this is a TorchScript archive (torch.jit.save), not a state dict saved with torch.save');
      throw bad(
        pkls.length
          ? `the archive holds several data.pkl (${pkls.join(', ')})`
          : 'the archive has no <name>/data.pkl: not a torch.save file',
      );
    }
    const prefix = pkls[0]!.slice(0, -'data.pkl'.length);
    let bigEndian = false;
    if (zip.has(`${prefix}byteorder`)) {
      const order = (await zip.readAll(`${prefix}byteorder`, 16)).toString('latin1').trim();
      if (order !== 'little' && order !== 'big') throw bad(`unknown byteorder "${order}"`);
      bigEndian = order === 'big';
    }
    const root = unpickle(await zip.readAll(pkls[0]!, MAX_PICKLE_BYTES), { file });
    const tensors = collectTensors(root, file);
    if (tensors.size === 0) throw bad('the pickle holds no tensors (expected a state dict)');
    const entries = new Map<string, Entry>();
    for (const [name, t] of tensors) {
      const member = `${prefix}data/${t.storage.key}`;
      if (!zip.has(member)) throw bad(`tensor ${name} uses storage ${t.storage.key}, but the archive has no ${member}`);
      const storageBytes = t.storage.numel * DTYPE_BYTES[t.storage.dtype];
      const actual = zip.size(member);
      if (actual < storageBytes)
        throw bad(
          `storage ${t.storage.key} should hold ${storageBytes} bytes (${t.storage.numel} × ${t.storage.dtype}) but ${member} has ${actual}`,
        );
      const es = DTYPE_BYTES[t.dtype];
      let span = 0; // last element index touched, relative to the offset
      for (let d = 0; d < t.shape.length; d++) span += (t.shape[d]! - 1) * t.stride[d]!;
      const n = numel(t.shape);
      const begin = t.offset * es;
      const end = n === 0 ? begin : (t.offset + span + 1) * es;
      if (!Number.isSafeInteger(end) || end > storageBytes) {
        throw bad(
          `tensor ${name} [${t.shape.join(', ')}] at storage offset ${t.offset} (stride ${t.stride.join(', ')}) runs past the end of its ${storageBytes}-byte storage ${t.storage.key}`,
        );
      }
      // Overlapping views (stride 0, as expand() makes) can be far larger than their storage; a hostile one must not
      // make us allocate gigabytes. Real weights are never larger than their storage.
      const bytes = n * es;
      if (!Number.isSafeInteger(bytes) || bytes > Math.max(storageBytes, MAX_EXPANDED_BYTES)) {
        throw bad(
          `tensor ${name} [${t.shape.join(', ')}] expands its ${storageBytes}-byte storage ${t.storage.key} to ${bytes} bytes (stride ${t.stride.join(', ')})`,
        );
      }
      entries.set(name, { tensor: t, member, begin: n === 0 ? 0 : begin, end: n === 0 ? 0 : end });
    }
    return new TorchCheckpointFile(file, zip, entries, bigEndian);
  }

  tensors(): TensorInfo[] {
    return [...this.entries].map(([name, e]) => ({ name, dtype: e.tensor.dtype, shape: e.tensor.shape }));
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  info(name: string): TensorInfo | undefined {
    const e = this.entries.get(name);
    return e && { name, dtype: e.tensor.dtype, shape: e.tensor.shape };
  }

  async readRaw(name: string): Promise<RawTensor> {
    const e = this.entries.get(name);
    if (!e) throw new EngineError('missing-tensor', `tensor ${name} is not in ${this.file}`, this.file);
    const t = e.tensor;
    const es = DTYPE_BYTES[t.dtype];
    const src = e.end > e.begin ? await this.zip.readRange(e.member, e.begin, e.end) : Buffer.alloc(0);
    const bytes = isContiguous(t.shape, t.stride) ? src : gather(src, t.shape, t.stride, es);
    if (this.bigEndian && es > 1) swapInPlace(bytes, es);
    return { dtype: t.dtype, shape: t.shape, bytes };
  }

  /** Reads one tensor, upcast to float32. */
  async read(name: string): Promise<Tensor> {
    const raw = await this.readRaw(name);
    const data = f32FromBytes(
      raw.bytes,
      raw.dtype,
      () =>
        new EngineError(
          'bad-dtype',
          `tensor ${name} in ${this.file} has dtype ${raw.dtype}; only floating-point weights can be read`,
          this.file,
        ),
    );
    return { shape: raw.shape, data };
  }

  close(): Promise<void> {
    return this.zip.close();
  }
}

/** Row-major strides, ignoring dims of size 1 (whose stride is arbitrary). */
function isContiguous(shape: readonly number[], stride: readonly number[]): boolean {
  let expected = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d] !== 1 && stride[d] !== expected) return false;
    expected *= shape[d]!;
  }
  return true;
}

/** Copies a strided view (offsets relative to `src`) into a fresh contiguous buffer, a whole row at a time where the last dim is dense. */
function gather(src: Buffer, shape: readonly number[], stride: readonly number[], es: number): Buffer {
  const n = numel(shape);
  const out = Buffer.alloc(n * es);
  if (n === 0) return out;
  const rank = shape.length;
  const inner = shape[rank - 1]!;
  const innerStride = stride[rank - 1]!;
  const rows = n / inner;
  const idx = new Array<number>(Math.max(0, rank - 1)).fill(0);
  let base = 0;
  let o = 0;
  for (let r = 0; r < rows; r++) {
    if (innerStride === 1) {
      src.copy(out, o, base * es, (base + inner) * es);
      o += inner * es;
    } else {
      for (let i = 0; i < inner; i++) {
        const s = (base + i * innerStride) * es;
        src.copy(out, o, s, s + es);
        o += es;
      }
    }
    // Advance the odometer over the outer dims.
    for (let d = rank - 2; d >= 0; d--) {
      idx[d]!++;
      base += stride[d]!;
      if (idx[d]! < shape[d]!) break;
      base -= idx[d]! * stride[d]!;
      idx[d] = 0;
    }
  }
  return out;
}

function swapInPlace(b: Buffer, es: number): void {
  if (es === 2) b.swap16();
  else if (es === 4) b.swap32();
  else if (es === 8) b.swap64();
}
