/**
 * Opening an input file safely: only regular files are read. A folder, a named pipe (FIFO), a socket or a device
 * (`/dev/zero`) given where a checkpoint or an audio file belongs gets a clear message naming it, instead of a raw
 * EISDIR, a read that never ends, or an open() that blocks a thread forever waiting for a FIFO's writer. The file
 * is opened non-blocking (which never waits, whatever it is) and then checked with fstat on the same descriptor,
 * so nothing can swap it between the check and the read.
 */
import { constants, promises as fs, type Stats } from 'node:fs';
import { EngineError } from '../errors';

/** What a non-regular file is, for messages: "a folder", "a named pipe (FIFO)", … */
export function describeFileKind(st: Stats): string {
  if (st.isDirectory()) return 'a folder';
  if (st.isFIFO()) return 'a named pipe (FIFO)';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  return 'a special file';
}

/** The one message for "X is not a regular file": `what` says what was expected there ("a checkpoint"). */
export function notRegularFile(file: string, st: Stats, what: string, code: EngineError['code'] = 'bad-checkpoint'): EngineError {
  return new EngineError(code, `${file} is not a regular file (it is ${describeFileKind(st)}); expected ${what}`, file);
}

/**
 * Opens `file` for reading if it is a regular file; otherwise throws EngineError(code) naming it. A missing file
 * is `file-not-found`.
 */
export async function openRegularFile(
  file: string,
  what: string,
  code: EngineError['code'] = 'bad-checkpoint',
): Promise<{ handle: fs.FileHandle; size: number }> {
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    const c = (e as NodeJS.ErrnoException).code;
    if (c === 'ENOENT' || c === 'ENOTDIR')
      throw new EngineError('file-not-found', `${file} does not exist; expected ${what}`, file, { cause: e });
    throw new EngineError(
      c === 'EISDIR' ? code : 'io-error',
      c === 'EISDIR'
        ? `${file} is not a regular file (it is a folder); expected ${what}`
        : `cannot open ${file} (${c ?? (e as Error).message})`,
      file,
      { cause: e },
    );
  }
  let st: Stats;
  try {
    st = await handle.stat();
  } catch (e) {
    await handle.close();
    throw new EngineError('io-error', `cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, file, {
      cause: e,
    });
  }
  if (!st.isFile()) {
    await handle.close();
    throw notRegularFile(file, st, what, code);
  }
  return { handle, size: st.size };
}

/**
 * A whole small text file (a config, an index, a CSV) as UTF-8, refused when it is not a regular file or is larger
 * than `limit` bytes — a device such as /dev/zero given as config.json used to be read until memory ran out.
 */
export async function readTextFile(
  file: string,
  limit: number,
  what: string,
  code: EngineError['code'] = 'bad-checkpoint',
): Promise<string> {
  const { handle, size } = await openRegularFile(file, what, code);
  try {
    if (size > limit) throw new EngineError(code, `${file} is ${size} bytes, over the ${limit}-byte limit for ${what}`, file);
    const buf = Buffer.alloc(size);
    let done = 0;
    while (done < size) {
      const { bytesRead } = await handle.read(buf, done, size - done, done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return buf.toString('utf8', 0, done);
  } finally {
    await handle.close();
  }
}
