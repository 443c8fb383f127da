/**
 * The zip container of `torch.save` (PyTorch ≥ 1.6), read by our own strict parser rather than a general zip
 * library: every offset and size in the end record, the ZIP64 locator and record, the central directory and each
 * local header is checked against the file before it is used, so a hostile archive gets one located EngineError
 * (never a RangeError from a read at an impossible position, never an exception outside our promise). Stored
 * entries are read by position from our own file handle (a tensor costs one read of exactly its bytes) and every
 * entry's CRC-32 is verified once, the first time it is read, so a corrupt download is refused instead of loaded.
 */
import { type promises as fs } from 'node:fs';
import * as zlib from 'node:zlib';
import { EngineError } from '../errors';

const EOCD_SIG = 0x06054b50;
const ZIP64_LOCATOR_SIG = 0x07064b50;
const ZIP64_EOCD_SIG = 0x06064b50;
const CENTRAL_SIG = 0x02014b50;
const LOCAL_SIG = 0x04034b50;
const EOCD_BYTES = 22;
const ZIP64_LOCATOR_BYTES = 20;
const ZIP64_EOCD_BYTES = 56;
const CENTRAL_BYTES = 46;
const LOCAL_BYTES = 30;
const MAX_COMMENT = 0xffff;
/** A state dict has one entry per storage: tens of thousands at most; the directory of such an archive is a few MB. */
const MAX_ENTRIES = 1_000_000;
const MAX_DIRECTORY_BYTES = 256 * 1024 * 1024;
/** CRC of a partially read entry is computed over the whole entry in pieces of this size. */
const CRC_PIECE = 4 * 1024 * 1024;

const METHOD_STORED = 0;
const METHOD_DEFLATE = 8;

interface Member {
  readonly name: string;
  readonly method: number;
  readonly crc: number;
  readonly compressedSize: number;
  readonly size: number;
  readonly localOffset: number;
  /** Absolute file offset of the entry's data, once its local header has been read. */
  dataStart?: number;
  crcChecked?: boolean;
}

export class ZipArchive {
  private constructor(
    readonly file: string,
    private readonly handle: fs.FileHandle,
    private readonly fileSize: number,
    private readonly members: Map<string, Member>,
  ) {}

  /** Reads the central directory; takes ownership of `handle` (closed by close(), or here on failure). */
  static async open(file: string, handle: fs.FileHandle): Promise<ZipArchive> {
    try {
      const fileSize = (await handle.stat()).size;
      const members = await readDirectory(file, handle, fileSize);
      return new ZipArchive(file, handle, fileSize, members);
    } catch (e) {
      await handle.close();
      if (e instanceof EngineError) throw e;
      throw new EngineError('bad-checkpoint', `${file} is not a readable PyTorch zip checkpoint: ${(e as Error).message}`, file, {
        cause: e,
      });
    }
  }

  names(): string[] {
    return [...this.members.keys()];
  }

  has(name: string): boolean {
    return this.members.has(name);
  }

  /** Uncompressed size of an entry. */
  size(name: string): number {
    return this.member(name).size;
  }

  /** A whole entry (small ones: data.pkl, byteorder, version); deflated entries are inflated, bounded by `limit`. */
  async readAll(name: string, limit: number): Promise<Buffer> {
    const m = this.member(name);
    if (m.size > limit) throw this.bad(`${name} is ${m.size} bytes, over the ${limit}-byte limit`);
    if (m.method === METHOD_STORED) return this.readRange(name, 0, m.size);
    const start = await this.dataStart(m);
    const packed = await this.readAt(start, m.compressedSize, name);
    let out: Buffer;
    try {
      out = zlib.inflateRawSync(packed, { maxOutputLength: Math.max(1, m.size) });
    } catch (e) {
      const why =
        (e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE'
          ? `inflates to more than the ${m.size} bytes the directory says`
          : 'does not inflate';
      throw this.bad(`${name} ${why}: corrupt archive`, e);
    }
    if (out.length !== m.size) throw this.bad(`${name} inflates to ${out.length} bytes, but the directory says ${m.size}`);
    this.checkCrc(m, zlib.crc32(out));
    return out;
  }

  /** Bytes [begin, end) of a stored entry, bounds-checked against the entry and the file. */
  async readRange(name: string, begin: number, end: number): Promise<Buffer> {
    const m = this.member(name);
    if (m.method !== METHOD_STORED) {
      throw this.bad(
        `${name} is compressed (method ${m.method}); torch.save writes stored entries, so re-save the checkpoint with torch.save`,
      );
    }
    if (begin < 0 || end < begin || end > m.size) throw this.bad(`bytes [${begin}, ${end}) are outside ${name} (${m.size} bytes)`);
    const start = await this.dataStart(m);
    const out = await this.readAt(start + begin, end - begin, name);
    if (!m.crcChecked) {
      if (begin === 0 && end === m.size) this.checkCrc(m, zlib.crc32(out));
      else await this.verifyStored(m, start);
    }
    return out;
  }

  async close(): Promise<void> {
    await this.handle.close();
  }

  private member(name: string): Member {
    const m = this.members.get(name);
    if (!m) throw this.bad(`the archive has no entry ${name}`);
    return m;
  }

  private bad(why: string, cause?: unknown): EngineError {
    return new EngineError('bad-checkpoint', `${this.file}: ${why}`, this.file, cause === undefined ? undefined : { cause });
  }

  /** Reads the entry's local header (once): it must agree with the directory and its data must lie in the file. */
  private async dataStart(m: Member): Promise<number> {
    if (m.dataStart !== undefined) return m.dataStart;
    const h = await this.readAt(m.localOffset, LOCAL_BYTES, m.name);
    if (h.readUInt32LE(0) !== LOCAL_SIG)
      throw this.bad(`the local header of ${m.name} at byte ${m.localOffset} is missing (corrupt archive)`);
    if (h.readUInt16LE(6) & 1) throw this.bad(`${m.name} is encrypted`);
    const nameLen = h.readUInt16LE(26);
    const extraLen = h.readUInt16LE(28);
    const localName = (await this.readAt(m.localOffset + LOCAL_BYTES, nameLen, m.name)).toString('utf8');
    if (localName !== m.name)
      throw this.bad(
        `the local header at byte ${m.localOffset} names ${JSON.stringify(localName)}, the directory ${JSON.stringify(m.name)} (corrupt archive)`,
      );
    const start = m.localOffset + LOCAL_BYTES + nameLen + extraLen;
    if (start + m.compressedSize > this.fileSize) throw this.bad(`${m.name} runs past the end of the file (truncated file?)`);
    m.dataStart = start;
    return start;
  }

  private async verifyStored(m: Member, start: number): Promise<void> {
    let crc = 0;
    for (let o = 0; o < m.size; o += CRC_PIECE)
      crc = zlib.crc32(await this.readAt(start + o, Math.min(CRC_PIECE, m.size - o), m.name), crc);
    this.checkCrc(m, crc);
  }

  private checkCrc(m: Member, actual: number): void {
    if (actual !== m.crc) {
      throw this.bad(
        `${m.name} fails its CRC-32 check (stored ${hex(m.crc)}, computed ${hex(actual)}): the file is corrupt (an incomplete or damaged download?)`,
      );
    }
    m.crcChecked = true;
  }

  private readAt(position: number, length: number, what: string): Promise<Buffer> {
    return readExactly(this.handle, position, length, this.fileSize, () => this.bad(`${what} is cut short (truncated file?)`));
  }
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}

/** A positional read of exactly `length` bytes, refused up front when it would run past `fileSize`. */
async function readExactly(
  handle: fs.FileHandle,
  position: number,
  length: number,
  fileSize: number,
  short: () => EngineError,
): Promise<Buffer> {
  if (!Number.isSafeInteger(position) || position < 0 || !Number.isSafeInteger(length) || length < 0 || position + length > fileSize)
    throw short();
  const out = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await handle.read(out, done, length - done, position + done);
    if (bytesRead === 0) throw short();
    done += bytesRead;
  }
  return out;
}

/** The end record (with its ZIP64 extension when present) and the central directory it points at. */
async function readDirectory(file: string, handle: fs.FileHandle, fileSize: number): Promise<Map<string, Member>> {
  const bad = (why: string) => new EngineError('bad-checkpoint', `${file} is not a readable PyTorch zip checkpoint: ${why}`, file);
  const read = (position: number, length: number, what: string) =>
    readExactly(handle, position, length, fileSize, () => bad(`${what} lies outside the ${fileSize}-byte file (corrupt or truncated)`));

  // The end record is the last thing in the file, followed only by its comment, whose length it states.
  const tailLen = Math.min(fileSize, EOCD_BYTES + MAX_COMMENT);
  const tail = await read(fileSize - tailLen, tailLen, 'the end of the archive');
  let at = -1;
  for (let i = tail.length - EOCD_BYTES; i >= 0; i--) {
    if (tail.readUInt32LE(i) === EOCD_SIG && i + EOCD_BYTES + tail.readUInt16LE(i + 20) === tail.length) {
      at = i;
      break;
    }
  }
  if (at < 0) {
    const sig = tail.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
    throw bad(
      sig >= 0
        ? 'the end record is followed by bytes its comment length does not account for (garbage at the end of the file)'
        : 'the zip directory at its end is missing (truncated or incomplete download?)',
    );
  }
  const eocdOffset = fileSize - tailLen + at;
  const disk = tail.readUInt16LE(at + 4);
  const cdDisk = tail.readUInt16LE(at + 6);
  let diskEntries: number = tail.readUInt16LE(at + 8);
  let entries: number = tail.readUInt16LE(at + 10);
  let cdSize: number = tail.readUInt32LE(at + 12);
  let cdOffset: number = tail.readUInt32LE(at + 16);
  let cdEnd = eocdOffset; // where the directory must end: at the (ZIP64) end record

  if (eocdOffset >= ZIP64_LOCATOR_BYTES) {
    const loc = await read(eocdOffset - ZIP64_LOCATOR_BYTES, ZIP64_LOCATOR_BYTES, 'the ZIP64 locator');
    if (loc.readUInt32LE(0) === ZIP64_LOCATOR_SIG) {
      const recordOffset = loc.readBigUInt64LE(8);
      const recordEnd = BigInt(eocdOffset - ZIP64_LOCATOR_BYTES);
      if (loc.readUInt32LE(4) !== 0 || loc.readUInt32LE(16) > 1) throw bad('the ZIP64 locator describes a multi-part archive');
      if (recordOffset + BigInt(ZIP64_EOCD_BYTES) > recordEnd) {
        throw bad(
          `the ZIP64 locator points at byte ${recordOffset}, where no ZIP64 end record can be (the record must end before byte ${recordEnd})`,
        );
      }
      const rec = await read(Number(recordOffset), ZIP64_EOCD_BYTES, 'the ZIP64 end record');
      if (rec.readUInt32LE(0) !== ZIP64_EOCD_SIG)
        throw bad(`the ZIP64 locator points at byte ${recordOffset}, which holds no ZIP64 end record`);
      if (rec.readUInt32LE(16) !== 0 || rec.readUInt32LE(20) !== 0) throw bad('the ZIP64 end record describes a multi-part archive');
      const big = (o: number, what: string, field: number) => {
        const v = rec.readBigUInt64LE(o);
        if (v > BigInt(fileSize)) throw bad(`the ZIP64 end record's ${what} (${v}) is larger than the ${fileSize}-byte file`);
        // A ZIP64 value must agree with its 32/16-bit twin unless that twin is saturated.
        const n = Number(v);
        if (field !== 0xffff && field !== 0xffffffff && field !== n)
          throw bad(`the end record and the ZIP64 end record disagree on the ${what} (${field} vs ${n})`);
        return n;
      };
      diskEntries = big(24, 'entry count on this disk', diskEntries);
      entries = big(32, 'entry count', entries);
      cdSize = big(40, 'directory size', cdSize);
      cdOffset = big(48, 'directory offset', cdOffset);
      cdEnd = Number(recordOffset);
    }
  }
  if (disk !== 0 || cdDisk !== 0 || diskEntries !== entries)
    throw bad('the end record describes a multi-part (split) archive, or its entry counts disagree (corrupt end record)');
  if (entries > MAX_ENTRIES) throw bad(`the directory lists ${entries} entries (at most ${MAX_ENTRIES} are read)`);
  if (cdSize > MAX_DIRECTORY_BYTES) throw bad(`the central directory is ${cdSize} bytes (at most ${MAX_DIRECTORY_BYTES} are read)`);
  if (cdOffset + cdSize !== cdEnd)
    throw bad(
      `the central directory [${cdOffset}, ${cdOffset + cdSize}) does not end where the end record begins (byte ${cdEnd}): corrupt end record`,
    );

  const cd = await read(cdOffset, cdSize, 'the central directory');
  const members = new Map<string, Member>();
  let p = 0;
  for (let i = 0; i < entries; i++) {
    if (p + CENTRAL_BYTES > cd.length || cd.readUInt32LE(p) !== CENTRAL_SIG)
      throw bad(`directory entry ${i} of ${entries} is missing or damaged`);
    const flags = cd.readUInt16LE(p + 8);
    const method = cd.readUInt16LE(p + 10);
    const crc = cd.readUInt32LE(p + 16);
    let compressedSize: number = cd.readUInt32LE(p + 20);
    let size: number = cd.readUInt32LE(p + 24);
    const nameLen = cd.readUInt16LE(p + 28);
    const extraLen = cd.readUInt16LE(p + 30);
    const commentLen = cd.readUInt16LE(p + 32);
    const startDisk = cd.readUInt16LE(p + 34);
    let localOffset: number = cd.readUInt32LE(p + 42);
    const next = p + CENTRAL_BYTES + nameLen + extraLen + commentLen;
    if (next > cd.length) throw bad(`directory entry ${i} runs past the end of the directory`);
    const name = cd.toString('utf8', p + CENTRAL_BYTES, p + CENTRAL_BYTES + nameLen);
    const extra = cd.subarray(p + CENTRAL_BYTES + nameLen, p + CENTRAL_BYTES + nameLen + extraLen);
    // ZIP64 extended information: 64-bit values for exactly the fields saturated at 0xffffffff, in this order.
    const wide = { size: size === 0xffffffff, compressedSize: compressedSize === 0xffffffff, localOffset: localOffset === 0xffffffff };
    if (wide.size || wide.compressedSize || wide.localOffset) {
      const z = zip64Extra(extra);
      if (!z) throw bad(`entry ${JSON.stringify(name)} needs a ZIP64 extra field, and has none`);
      let q = 0;
      const take = (field: string) => {
        if (q + 8 > z.length) throw bad(`the ZIP64 extra field of ${JSON.stringify(name)} is too short for its ${field}`);
        const v = z.readBigUInt64LE(q);
        q += 8;
        if (v > BigInt(fileSize) * 1024n) throw bad(`entry ${JSON.stringify(name)} has an impossible ${field} (${v})`);
        return Number(v);
      };
      if (wide.size) size = take('size');
      if (wide.compressedSize) compressedSize = take('compressed size');
      if (wide.localOffset) localOffset = take('offset');
    }
    if (flags & 1) throw bad(`entry ${JSON.stringify(name)} is encrypted`);
    if (startDisk !== 0 && startDisk !== 0xffff) throw bad(`entry ${JSON.stringify(name)} starts on another disk (split archive)`);
    if (method !== METHOD_STORED && method !== METHOD_DEFLATE)
      throw bad(`entry ${JSON.stringify(name)} uses compression method ${method} (only stored and deflate are read)`);
    if (method === METHOD_STORED && compressedSize !== size)
      throw bad(`stored entry ${JSON.stringify(name)} has compressed size ${compressedSize} but size ${size}`);
    if (localOffset + LOCAL_BYTES + compressedSize > cdOffset)
      throw bad(`entry ${JSON.stringify(name)} (offset ${localOffset}, ${compressedSize} bytes) overlaps the central directory`);
    if (members.has(name)) throw bad(`entry ${JSON.stringify(name)} appears twice`);
    if (!name.endsWith('/')) members.set(name, { name, method, crc, compressedSize, size, localOffset });
    p = next;
  }
  if (p !== cd.length) throw bad(`the central directory has ${cd.length - p} bytes after its ${entries} entries (corrupt end record)`);
  return members;
}

function zip64Extra(extra: Buffer): Buffer | undefined {
  for (let q = 0; q + 4 <= extra.length;) {
    const id = extra.readUInt16LE(q);
    const len = extra.readUInt16LE(q + 2);
    if (q + 4 + len > extra.length) return undefined;
    if (id === 0x0001) return extra.subarray(q + 4, q + 4 + len);
    q += 4 + len;
  }
  return undefined;
}
