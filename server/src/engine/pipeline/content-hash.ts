/**
 * Content hashes of model folders (sha256 of the config and checkpoint files), for statistics shard manifests.
 * Hashing a checkpoint reads all of it (a few seconds per GB), so hashes are cached by real path, size and mtime in
 * one small JSON file under the user cache; a changed file gets a new entry.
 */
import { createHash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EngineError } from '../errors';

/** Files whose bytes define a model: its config and checkpoint (single or sharded, safetensors or PyTorch). */
const MODEL_FILE = /^(config\.json|preprocessor_config\.json|.*\.safetensors|.*\.bin|.*\.index\.json)$/;

function cacheFile(): string {
  const base = process.env.MERGE_STUDIO_CACHE ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'merge-studio');
  return path.join(base, 'content-hashes.json');
}

async function fileHash(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 22 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** sha256 over the model folder's files (name and content hash of each, in name order). */
export async function modelContentHash(dir: string): Promise<string> {
  const real = await fs.realpath(dir).catch(() => {
    throw new EngineError('file-not-found', `model folder ${dir} does not exist`, dir);
  });
  const names = (await fs.readdir(real)).filter((n) => MODEL_FILE.test(n)).sort();
  const cachePath = cacheFile();
  const cache = (await fs
    .readFile(cachePath, 'utf8')
    .then((t) => JSON.parse(t) as Record<string, string>)
    .catch(() => ({}))) as Record<string, string>;
  let changed = false;
  const whole = createHash('sha256');
  for (const name of names) {
    const file = path.join(real, name);
    const st = await fs.stat(file);
    if (!st.isFile()) continue;
    const key = `${file}\u0000${st.size}\u0000${st.mtimeMs}`;
    let digest = cache[key];
    if (!digest) {
      digest = await fileHash(file);
      cache[key] = digest;
      changed = true;
    }
    whole.update(`${name}\u0000${digest}\n`);
  }
  if (changed) {
    // Best effort: a cache that cannot be written only costs a re-hash next time.
    const tmp = `${cachePath}.${process.pid}.tmp`;
    await fs
      .mkdir(path.dirname(cachePath), { recursive: true })
      .then(() => fs.writeFile(tmp, JSON.stringify(cache)))
      .then(() => fs.rename(tmp, cachePath))
      .catch(() => undefined);
  }
  return whole.digest('hex');
}
