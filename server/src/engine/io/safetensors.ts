/**
 * safetensors: an 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}}, then the
 * raw little-endian tensor bytes. Headers are read without touching the weights (for checks and hover); tensors are
 * read one at a time on demand. Every offset is validated before any allocation, so a corrupt or hostile file gets a
 * clear EngineError instead of a crash or a huge allocation.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { EngineError } from '../errors';
import { numel, type Tensor } from '../model/tensor';
import { f32FromBytes, DTYPE_BYTES, type Dtype } from './dtype';
import { openRegularFile } from './regular-file';

/** The format's own limit on the header (the Rust reference implementation refuses larger ones). */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export interface TensorInfo {
  readonly name: string;
  readonly dtype: Dtype;
  readonly shape: readonly number[];
}

interface TensorEntry extends TensorInfo {
  /** Byte range inside the data section. */
  readonly begin: number;
  readonly end: number;
}

export class SafetensorsFile {
  /** Opened on the first read; a promise, so that concurrent first reads share one descriptor. */
  private handle: Promise<fs.FileHandle> | undefined;

  private constructor(
    readonly file: string,
    private readonly entries: Map<string, TensorEntry>,
    readonly metadata: Record<string, string>,
    private readonly dataStart: number,
  ) {}

  /** Reads and validates the header only. */
  static async open(file: string): Promise<SafetensorsFile> {
    const { handle, size } = await openRegularFile(file, 'a safetensors checkpoint');
    try {
      const bad = (why: string) => new EngineError('bad-checkpoint', `corrupt safetensors file ${file}: ${why}`, file);
      if (size < 8) throw bad(`file is ${size} bytes, shorter than the 8-byte header length`);
      const lenBuf = Buffer.alloc(8);
      if ((await handle.read(lenBuf, 0, 8, 0)).bytesRead !== 8) throw bad('the file shrank while it was read');
      const headerLen = lenBuf.readBigUInt64LE(0);
      if (headerLen > BigInt(MAX_HEADER_BYTES)) throw bad(`header length ${headerLen} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
      if (headerLen > BigInt(size - 8)) throw bad(`header length ${headerLen} runs past the end of the ${size}-byte file (truncated?)`);
      const n = Number(headerLen);
      const headerBuf = Buffer.alloc(n);
      if ((await handle.read(headerBuf, 0, n, 8)).bytesRead !== n) throw bad('the file shrank while it was read');
      let header: unknown;
      try {
        header = JSON.parse(headerBuf.toString('utf8'));
      } catch (e) {
        throw bad(`header is not valid JSON (${(e as Error).message})`);
      }
      if (typeof header !== 'object' || header === null || Array.isArray(header)) throw bad('header is not a JSON object');
      const dataStart = 8 + n;
      const dataSize = size - dataStart;
      const entries = new Map<string, TensorEntry>();
      let metadata: Record<string, string> = {};
      for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
        if (name === '__metadata__') {
          if (raw && typeof raw === 'object') metadata = raw as Record<string, string>;
          continue;
        }
        entries.set(name, parseEntry(name, raw, dataSize, bad));
      }
      checkNoOverlap([...entries.values()], bad);
      return new SafetensorsFile(file, entries, metadata, dataStart);
    } finally {
      await handle.close();
    }
  }

  tensors(): TensorInfo[] {
    return [...this.entries.values()].map(({ name, dtype, shape }) => ({ name, dtype, shape }));
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  info(name: string): TensorInfo | undefined {
    const e = this.entries.get(name);
    return e && { name: e.name, dtype: e.dtype, shape: e.shape };
  }

  /** Reads one tensor, upcast to float32. */
  async read(name: string): Promise<Tensor> {
    const e = this.entries.get(name);
    if (!e) throw new EngineError('missing-tensor', `tensor ${name} is not in ${this.file}`, this.file);
    this.handle ??= openRegularFile(this.file, 'a safetensors checkpoint').then((r) => r.handle);
    const handle = await this.handle.catch((e: unknown) => {
      this.handle = undefined; // a later read may try again
      throw e;
    });
    const bytes = Buffer.alloc(e.end - e.begin);
    const { bytesRead } = await handle.read(bytes, 0, bytes.length, this.dataStart + e.begin);
    if (bytesRead !== bytes.length) {
      throw new EngineError(
        'bad-checkpoint',
        `corrupt safetensors file ${this.file}: tensor ${name} is truncated (the file changed since it was opened?)`,
        this.file,
      );
    }
    const data = f32FromBytes(
      bytes,
      e.dtype,
      () =>
        new EngineError(
          'bad-dtype',
          `tensor ${name} in ${this.file} has dtype ${e.dtype}; only floating-point weights can be read`,
          this.file,
        ),
    );
    return { shape: e.shape, data };
  }

  async close(): Promise<void> {
    const h = this.handle;
    this.handle = undefined;
    await (await h?.catch(() => undefined))?.close();
  }
}

function parseEntry(name: string, raw: unknown, dataSize: number, bad: (why: string) => EngineError): TensorEntry {
  if (!raw || typeof raw !== 'object') throw bad(`entry for ${name} is not an object`);
  const { dtype, shape, data_offsets: offsets } = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
  if (typeof dtype !== 'string' || !(dtype in DTYPE_BYTES)) throw bad(`tensor ${name} has unknown dtype ${JSON.stringify(dtype)}`);
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0))
    throw bad(`tensor ${name} has an invalid shape ${JSON.stringify(shape)}`);
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
    throw bad(`tensor ${name} has invalid data_offsets ${JSON.stringify(offsets)}`);
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end) throw bad(`tensor ${name} has data_offsets [${begin}, ${end}] that run backwards`);
  if (end > dataSize) throw bad(`tensor ${name} ends at byte ${end}, past the ${dataSize}-byte data section (truncated file?)`);
  const expected = numel(shape) * DTYPE_BYTES[dtype as Dtype];
  if (end - begin !== expected)
    throw bad(`tensor ${name} (${dtype} [${shape.join(', ')}]) needs ${expected} bytes but data_offsets give ${end - begin}`);
  return { name, dtype: dtype as Dtype, shape, begin, end };
}

function checkNoOverlap(entries: TensorEntry[], bad: (why: string) => EngineError): void {
  const sorted = entries.filter((e) => e.end > e.begin).sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]!;
    const cur = sorted[i]!;
    if (cur.begin < prev.end) throw bad(`tensors ${prev.name} and ${cur.name} overlap`);
  }
}

/** One tensor to write: its header entry, and its little-endian bytes produced on demand (one tensor in memory at a time). */
export interface TensorSource {
  name: string;
  dtype: Dtype;
  shape: readonly number[];
  bytes: () => Promise<Uint8Array> | Uint8Array;
}

/**
 * Writes safetensors atomically: a temporary file in the same folder, fsync, then rename, so a reader never sees a
 * half-written checkpoint and a failed write leaves nothing behind. Tensors are streamed in name order. Returns the
 * size of the data section.
 */
export async function writeSafetensorsStream(
  file: string,
  tensors: readonly TensorSource[],
  metadata: Record<string, string> = {},
  onTensor?: (done: number, total: number, name: string) => void,
): Promise<number> {
  const list = [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const header: Record<string, unknown> = { __metadata__: { format: 'pt', ...metadata } };
  let offset = 0;
  for (const t of list) {
    const bytes = numel(t.shape) * DTYPE_BYTES[t.dtype];
    header[t.name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8); // keeps tensor data 8-byte aligned
  const headerBytes = Buffer.from(json, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(headerBytes.length));

  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${Date.now()}.tmp`);
  let out: fs.FileHandle | undefined;
  try {
    out = await fs.open(tmp, 'w');
    await out.write(len);
    await out.write(headerBytes);
    for (const [i, t] of list.entries()) {
      const bytes = await t.bytes();
      const expected = numel(t.shape) * DTYPE_BYTES[t.dtype];
      if (bytes.byteLength !== expected)
        throw new EngineError(
          'shape-mismatch',
          `tensor ${t.name} has ${bytes.byteLength} bytes, ${t.dtype} [${t.shape.join(', ')}] needs ${expected}`,
          file,
        );
      await out.write(bytes);
      onTensor?.(i + 1, list.length, t.name);
    }
    await out.sync();
    await out.close();
    out = undefined;
    await fs.rename(tmp, file);
    return offset;
  } catch (e) {
    await out?.close().catch(() => undefined);
    await fs.rm(tmp, { force: true });
    if (e instanceof EngineError) throw e;
    throw new EngineError('io-error', `cannot write ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, file, {
      cause: e,
    });
  }
}

/** Writes float32 tensors (what the engine computes) as F32 safetensors, atomically. */
export async function writeSafetensors(
  file: string,
  tensors: Iterable<[string, Tensor]>,
  metadata: Record<string, string> = {},
): Promise<void> {
  const sources = [...tensors].map(([name, t]): TensorSource => ({
    name,
    dtype: 'F32',
    shape: t.shape,
    bytes: () => littleEndian(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)),
  }));
  await writeSafetensorsStream(file, sources, metadata);
}

const IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function littleEndian(bytes: Buffer): Buffer {
  if (IS_LITTLE_ENDIAN) return bytes;
  const copy = Buffer.from(bytes);
  copy.swap32();
  return copy;
}
