/**
 * One file from the Hub into the Hugging Face cache, as huggingface_hub does it: bytes go to
 * `blobs/<etag>.incomplete`, a cut connection resumes with an HTTP Range request (here and on the next run), the
 * finished blob is checked (size; sha256 for LFS files, whose etag is their sha256), renamed into place, and
 * `snapshots/<commit>/<file>` becomes a relative link to it.
 */
import { createReadStream, promises as fs } from 'node:fs';
import { createHash } from 'node:crypto';
import * as path from 'node:path';
import { EngineError } from '../errors';

export interface HubProgress {
  repo: string;
  file: string;
  received: number;
  total: number;
  /** Position of this file among the files being fetched in the current step, and their count. */
  fileIndex: number;
  files: number;
  /** The file was already in the cache. */
  cached: boolean;
  done: boolean;
}

export interface HubContext {
  repo: string;
  revision: string;
  hubUrl: string;
  hasToken: boolean;
}

/** An HTTP failure from the Hub as a message that says what to do. */
export function hubError(ctx: HubContext, status: number, detail: string): EngineError {
  const page = `${ctx.hubUrl}/${ctx.repo}`;
  const said = detail ? ` (${detail.trim().slice(0, 200)})` : '';
  if (status === 401 && !ctx.hasToken && /repository not found/i.test(detail)) {
    return new EngineError(
      'hub-error',
      `${ctx.repo} was not found on ${ctx.hubUrl}, or is private (HTTP 401): check the name, or set HF_TOKEN if you have access`,
    );
  }
  if (status === 401 || status === 403) {
    if (!ctx.hasToken) {
      return new EngineError(
        'hub-error',
        `${ctx.repo} is gated or private (HTTP ${status}): request access on ${page}, then set HF_TOKEN to an access token with read permission${said}`,
      );
    }
    return new EngineError(
      'hub-error',
      `the Hub refused HF_TOKEN for ${ctx.repo} (HTTP ${status}): check that the token is valid and that your account was granted access on ${page}${said}`,
    );
  }
  if (status === 404)
    return new EngineError(
      'hub-error',
      `${ctx.repo}@${ctx.revision} was not found on ${ctx.hubUrl} (HTTP 404: no such repository, revision or file)${said}`,
    );
  if (status === 429)
    return new EngineError(
      'hub-error',
      `the Hub is rate-limiting requests for ${ctx.repo} (HTTP 429); wait and run again${ctx.hasToken ? '' : ', or set HF_TOKEN'}`,
    );
  return new EngineError('hub-error', `the Hub answered HTTP ${status} for ${ctx.repo}@${ctx.revision}${said}`);
}

export interface DownloadRequest {
  url: string;
  repoDir: string;
  commit: string;
  /** Path inside the repository. */
  file: string;
  etag: string;
  size: number;
  token?: string;
  ctx: HubContext;
  onProgress?: (p: Omit<HubProgress, 'fileIndex' | 'files'>) => void;
  signal?: AbortSignal;
  retry?: RetryPolicy;
}

/** How often a cut download is resumed within one call (huggingface_hub: 5), and the first back-off delay. */
export interface RetryPolicy {
  attempts?: number;
  delayMs?: number;
}

const MAX_REDIRECTS = 5;
const SHA256 = /^[0-9a-f]{64}$/;

export async function downloadToCache(req: DownloadRequest): Promise<void> {
  const pointer = path.join(req.repoDir, 'snapshots', req.commit, ...req.file.split('/'));
  const progress = (received: number, cached: boolean, done: boolean) =>
    req.onProgress?.({ repo: req.ctx.repo, file: req.file, received, total: req.size, cached, done });
  if (await isFile(pointer)) {
    progress(req.size, true, true);
    return;
  }
  if (!/^[0-9a-f]{40,64}$/i.test(req.etag))
    throw new EngineError('hub-error', `the Hub gave no usable etag for ${req.ctx.repo}/${req.file} (${JSON.stringify(req.etag)})`);
  const blob = path.join(req.repoDir, 'blobs', req.etag);
  await fs.mkdir(path.dirname(blob), { recursive: true });
  await fs.mkdir(path.dirname(pointer), { recursive: true });
  if (await isFile(blob)) {
    await linkPointer(blob, pointer);
    progress(req.size, true, true);
    return;
  }
  await downloadBlob(req, blob, (n) => progress(n, false, false));
  await linkPointer(blob, pointer);
  progress(req.size, false, true);
}

async function downloadBlob(req: DownloadRequest, blob: string, progress: (received: number) => void): Promise<void> {
  const incomplete = `${blob}.incomplete`;
  const label = `${req.ctx.repo}/${req.file}`;
  let attempt = 0;
  let have = 0;
  for (;;) {
    have = (await fs.stat(incomplete).catch(() => undefined))?.size ?? 0;
    if (have > req.size) {
      await fs.rm(incomplete, { force: true });
      have = 0;
    }
    if (have === req.size) {
      if (req.size === 0) await fs.writeFile(incomplete, '');
      break;
    }
    try {
      const res = await get(req, have);
      if (res.status === 416) {
        // The partial file does not fit what the server holds: start over.
        await res.body?.cancel();
        await fs.rm(incomplete, { force: true });
        throw new Error('range not satisfiable');
      }
      if (!res.ok) throw hubError(req.ctx, res.status, await res.text().catch(() => ''));
      const resumed = have > 0 && res.status === 206 && (res.headers.get('content-range') ?? '').startsWith(`bytes ${have}-`);
      if (!resumed) have = 0;
      const out = await fs.open(incomplete, resumed ? 'a' : 'w');
      let last = 0;
      try {
        if (res.body) {
          for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
            await out.write(chunk);
            have += chunk.byteLength;
            if (have > req.size) throw new EngineError('hub-error', `the Hub sent more than the ${req.size} bytes of ${label}`);
            const now = Date.now();
            if (now - last > 100) {
              last = now;
              progress(have);
            }
          }
        }
      } finally {
        await out.close();
      }
      if (have !== req.size) throw new Error(`connection closed after ${have} of ${req.size} bytes`);
      break;
    } catch (e) {
      if (e instanceof EngineError) throw e;
      if (req.signal?.aborted)
        throw new EngineError('cancelled', `download of ${label} cancelled; ${have} bytes kept in ${incomplete} for the next run`);
      if (++attempt >= (req.retry?.attempts ?? 5)) {
        const why = (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message;
        throw new EngineError(
          'hub-error',
          `download of ${label} was interrupted ${attempt} times (${why}); ${have} of ${req.size} bytes are kept in ${incomplete}, run again to resume`,
          undefined,
          { cause: e },
        );
      }
      await new Promise((r) => setTimeout(r, Math.min(4000, (req.retry?.delayMs ?? 200) * 2 ** (attempt - 1))));
    }
  }
  if (SHA256.test(req.etag)) {
    const digest = await sha256(incomplete);
    if (digest !== req.etag) {
      await fs.rm(incomplete, { force: true });
      throw new EngineError(
        'hub-error',
        `${label} arrived corrupted (sha256 ${digest.slice(0, 12)}…, expected ${req.etag.slice(0, 12)}…); run again to download it afresh`,
      );
    }
  }
  await fs.rename(incomplete, blob);
}

/** GET with the token sent to the Hub only: redirects are followed by hand so that another host never sees it. */
async function get(req: DownloadRequest, from: number): Promise<Response> {
  let url = req.url;
  const origin = new URL(req.url).origin;
  for (let i = 0; i <= MAX_REDIRECTS; i++) {
    const headers: Record<string, string> = { 'user-agent': 'merge-studio' };
    if (req.token && new URL(url).origin === origin) headers.authorization = `Bearer ${req.token}`;
    if (from > 0) headers.range = `bytes=${from}-`;
    const res = await fetch(url, { headers, redirect: 'manual', ...(req.signal && { signal: req.signal }) });
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location) {
      await res.body?.cancel();
      url = new URL(location, url).toString();
      continue;
    }
    return res;
  }
  throw new EngineError('hub-error', `too many redirects downloading ${req.ctx.repo}/${req.file}`);
}

async function sha256(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function isFile(p: string): Promise<boolean> {
  return fs.stat(p).then(
    (s) => s.isFile(),
    () => false,
  );
}

/** snapshots/<commit>/<file> → a relative link to blobs/<etag> (a copy where links are not allowed). */
async function linkPointer(blob: string, pointer: string): Promise<void> {
  await fs.rm(pointer, { force: true });
  try {
    await fs.symlink(path.relative(path.dirname(pointer), blob), pointer);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EPERM' && code !== 'EACCES' && code !== 'ENOTSUP') throw e;
    await fs.copyFile(blob, pointer);
  }
}
