/**
 * The zip container of `torch.save` (PyTorch ≥ 1.6): yauzl reads the central directory (ZIP64 included, so
 * checkpoints over 4 GB work) and each entry's local header; the bytes of stored (uncompressed) entries are then read
 * by position from our own file handle, so a tensor costs one positional read of exactly its bytes. The descriptor
 * belongs to our FileHandle; yauzl only borrows it (we never call its close()).
 */
import { promises as fs } from 'node:fs';
import * as yauzl from 'yauzl';
import { EngineError } from '../errors';

interface Member {
  readonly entry: yauzl.Entry;
  /** Absolute file offset of the entry's data, once its local header has been read. */
  dataStart?: number;
}

export class ZipArchive {
  private constructor(
    readonly file: string,
    private readonly handle: fs.FileHandle,
    private readonly zip: yauzl.ZipFile,
    private readonly members: Map<string, Member>,
  ) {}

  /** Reads the central directory; takes ownership of `handle` (closed by close(), or here on failure). */
  static async open(file: string, handle: fs.FileHandle): Promise<ZipArchive> {
    const bad = (why: string, cause?: unknown) =>
      new EngineError('bad-checkpoint', `${file} is not a readable PyTorch zip checkpoint: ${why}`, file, { cause });
    let zip: yauzl.ZipFile;
    try {
      zip = await new Promise<yauzl.ZipFile>((resolve, reject) =>
        yauzl.fromFd(handle.fd, { lazyEntries: true, autoClose: false, validateEntrySizes: true, strictFileNames: false }, (err, z) => (err ? reject(err) : resolve(z))),
      );
    } catch (e) {
      await handle.close();
      const msg = (e as Error).message;
      throw bad(/end of central directory/i.test(msg) ? 'the zip directory at its end is missing (truncated or incomplete download?)' : msg, e);
    }
    const members = new Map<string, Member>();
    try {
      await new Promise<void>((resolve, reject) => {
        zip.on('entry', (entry: yauzl.Entry) => {
          if (!entry.fileName.endsWith('/')) members.set(entry.fileName, { entry });
          zip.readEntry();
        });
        zip.on('end', () => resolve());
        zip.on('error', reject);
        zip.readEntry();
      });
    } catch (e) {
      await handle.close();
      throw bad((e as Error).message, e);
    }
    return new ZipArchive(file, handle, zip, members);
  }

  names(): string[] {
    return [...this.members.keys()];
  }

  has(name: string): boolean {
    return this.members.has(name);
  }

  /** Uncompressed size of an entry. */
  size(name: string): number {
    return this.member(name).entry.uncompressedSize;
  }

  /** A whole entry (small ones: data.pkl, byteorder, version); deflated entries are inflated by yauzl. */
  async readAll(name: string, limit: number): Promise<Buffer> {
    const m = this.member(name);
    if (m.entry.uncompressedSize > limit) throw new EngineError('bad-checkpoint', `${this.file}: ${name} is ${m.entry.uncompressedSize} bytes, over the ${limit}-byte limit`, this.file);
    if (m.entry.compressionMethod === 0) return this.readRange(name, 0, m.entry.uncompressedSize);
    return new Promise<Buffer>((resolve, reject) => {
      this.zip.openReadStream(m.entry, (err, stream) => {
        if (err) return reject(this.wrap(name, err));
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => resolve(Buffer.concat(chunks)));
        stream.on('error', (e) => reject(this.wrap(name, e)));
      });
    });
  }

  /** Bytes [begin, end) of a stored entry, bounds-checked against the entry and the file. */
  async readRange(name: string, begin: number, end: number): Promise<Buffer> {
    const m = this.member(name);
    if (m.entry.compressionMethod !== 0) {
      throw new EngineError('bad-checkpoint', `${this.file}: ${name} is compressed (method ${m.entry.compressionMethod}); torch.save writes stored entries, so re-save the checkpoint with torch.save`, this.file);
    }
    if (begin < 0 || end < begin || end > m.entry.uncompressedSize) {
      throw new EngineError('bad-checkpoint', `${this.file}: bytes [${begin}, ${end}) are outside ${name} (${m.entry.uncompressedSize} bytes)`, this.file);
    }
    if (m.dataStart === undefined) {
      try {
        const header = await this.zip.readLocalFileHeaderPromise(m.entry, { minimal: true });
        m.dataStart = header.fileDataStart;
      } catch (e) {
        throw this.wrap(name, e);
      }
    }
    const out = Buffer.alloc(end - begin);
    let done = 0;
    while (done < out.length) {
      const { bytesRead } = await this.handle.read(out, done, out.length - done, m.dataStart + begin + done);
      if (bytesRead === 0) throw new EngineError('bad-checkpoint', `${this.file}: ${name} is cut short (truncated file?)`, this.file);
      done += bytesRead;
    }
    return out;
  }

  /** Closes our handle only: yauzl's close() would close the same descriptor a second time. */
  async close(): Promise<void> {
    await this.handle.close();
  }

  private member(name: string): Member {
    const m = this.members.get(name);
    if (!m) throw new EngineError('bad-checkpoint', `${this.file}: the archive has no entry ${name}`, this.file);
    return m;
  }

  private wrap(name: string, e: unknown): EngineError {
    return new EngineError('bad-checkpoint', `${this.file}: cannot read ${name}: ${(e as Error).message}`, this.file, { cause: e });
  }
}
