/** A minimal writer of stored (uncompressed) zip archives, so tests control every byte torch-zip.ts reads. */
import * as zlib from 'node:zlib';

export interface ZipEntry {
  name: string;
  data: Uint8Array;
  /** Written into the directory instead of the data's real CRC-32. */
  crc?: number;
}

/** Stored entries, a central directory, then a ZIP64 end record + locator (as torch.save writes) and the end record. */
export function storedZip(entries: readonly ZipEntry[], opts: { zip64?: boolean } = {}): Buffer {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = Buffer.from(e.name, 'utf8');
    const crc = e.crc ?? zlib.crc32(e.data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(e.data.length, 18);
    local.writeUInt32LE(e.data.length, 22);
    local.writeUInt16LE(name.length, 26);
    parts.push(local, name, Buffer.from(e.data));
    const c = Buffer.alloc(46);
    c.writeUInt32LE(0x02014b50, 0);
    c.writeUInt16LE(20, 4);
    c.writeUInt16LE(20, 6);
    c.writeUInt32LE(crc, 16);
    c.writeUInt32LE(e.data.length, 20);
    c.writeUInt32LE(e.data.length, 24);
    c.writeUInt16LE(name.length, 28);
    c.writeUInt32LE(offset, 42);
    central.push(c, name);
    offset += 30 + name.length + e.data.length;
  }
  const cd = Buffer.concat(central);
  const cdOffset = offset;
  const tail: Buffer[] = [cd];
  if (opts.zip64 ?? true) {
    const rec = Buffer.alloc(56);
    rec.writeUInt32LE(0x06064b50, 0);
    rec.writeBigUInt64LE(44n, 4);
    rec.writeUInt16LE(45, 12);
    rec.writeUInt16LE(45, 14);
    rec.writeBigUInt64LE(BigInt(entries.length), 24);
    rec.writeBigUInt64LE(BigInt(entries.length), 32);
    rec.writeBigUInt64LE(BigInt(cd.length), 40);
    rec.writeBigUInt64LE(BigInt(cdOffset), 48);
    const loc = Buffer.alloc(20);
    loc.writeUInt32LE(0x07064b50, 0);
    loc.writeBigUInt64LE(BigInt(cdOffset + cd.length), 8);
    loc.writeUInt32LE(1, 16);
    tail.push(rec, loc);
  }
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(entries.length, 8);
  eocd.writeUInt16LE(entries.length, 10);
  eocd.writeUInt32LE(cd.length, 12);
  eocd.writeUInt32LE(cdOffset, 16);
  tail.push(eocd);
  return Buffer.concat([...parts, ...tail]);
}

/** Offsets of the end structures in a zip (the last of each signature). */
export function zipTail(zip: Buffer): { eocd: number; locator: number; zip64Record: number } {
  const find = (sig: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(sig);
    return zip.lastIndexOf(b);
  };
  return { eocd: find(0x06054b50), locator: find(0x07064b50), zip64Record: find(0x06064b50) };
}

/** Where an entry's data lies and where its central directory record is (found by name). */
export function locateEntry(zip: Buffer, name: string): { dataStart: number; size: number; central: number } {
  const nameBytes = Buffer.from(name, 'utf8');
  for (let p = zip.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02])); p >= 0; p = zip.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]), p + 4)) {
    const n = zip.readUInt16LE(p + 28);
    if (!zip.subarray(p + 46, p + 46 + n).equals(nameBytes)) continue;
    const local = zip.readUInt32LE(p + 42);
    const dataStart = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
    return { dataStart, size: zip.readUInt32LE(p + 24), central: p };
  }
  throw new Error(`no central directory entry ${name}`);
}
