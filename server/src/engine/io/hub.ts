/**
 * Hugging Face Hub model references (`hf:org/name` or `hf:org/name@revision`) resolved to a local folder in the
 * standard Hugging Face cache (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else ~/.cache/huggingface/hub):
 * `models--org--name/{blobs/<etag>, snapshots/<commit>/<file> → ../../blobs/<etag>, refs/<revision>}`, the layout
 * huggingface_hub uses, so Python and Merge Studio share downloads.
 *
 * `@huggingface/hub` does the API calls (model info: commit + file list; paths-info: sizes and etags). Files are
 * downloaded here (hub-download.ts) because the library's cache download neither resumes nor reports progress nor
 * writes `refs/`. Offline (`HF_HUB_OFFLINE=1`, or `offline: true`) only the cache is read.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { HubApiError, modelInfo, pathsInfo } from '@huggingface/hub';
import { EngineError } from '../errors';
import { downloadToCache, hubError, type RetryPolicy } from './hub-download';

export type { HubProgress, RetryPolicy } from './hub-download';
import type { HubProgress } from './hub-download';

export const HUB_REF_PREFIX = 'hf:';
export const DEFAULT_HUB_URL = 'https://huggingface.co';

export interface HubRef {
  /** `org/name` */
  readonly repo: string;
  /** Branch, tag or commit; `main` when the reference names none. */
  readonly revision: string;
}

const REF = /^hf:([A-Za-z0-9][\w.-]*\/[\w.-]+)(?:@([\w./-]+))?$/;

/** The Hub reference in `ref`, or undefined when `ref` is not one (a path). Throws on a malformed `hf:` string. */
export function parseHubRef(ref: string): HubRef | undefined {
  if (!ref.startsWith(HUB_REF_PREFIX)) return undefined;
  const m = REF.exec(ref);
  const revision = m?.[2] ?? 'main';
  // `..` would climb out of the cache folder through refs/<revision>.
  if (!m || [...m[1]!.split('/'), ...revision.split('/')].some((p) => p === '' || p === '.' || p === '..')) {
    throw new EngineError('hub-error', `"${ref}" is not a Hugging Face reference; write hf:org/name or hf:org/name@revision`);
  }
  return { repo: m[1]!, revision };
}

export interface ResolveOptions {
  /** Folder that relative (non-Hub) references are resolved against. */
  baseDir: string;
  /** Cache only; default: the HF_HUB_OFFLINE environment variable. */
  offline?: boolean;
  onProgress?: (p: HubProgress) => void;
  /** Default: HF_ENDPOINT, else https://huggingface.co. */
  hubUrl?: string;
  /** Default: HF_TOKEN, else the token `huggingface-cli login` stored in $HF_HOME/token. */
  token?: string;
  /** Default: HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub. */
  cacheDir?: string;
  signal?: AbortSignal;
  retry?: RetryPolicy;
}

export function hfHome(): string {
  return process.env.HF_HOME ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'huggingface');
}

export function hubCacheDir(): string {
  return process.env.HF_HUB_CACHE ?? process.env.HUGGINGFACE_HUB_CACHE ?? path.join(hfHome(), 'hub');
}

function envOffline(): boolean {
  const v = (process.env.HF_HUB_OFFLINE ?? '').toLowerCase();
  return v === '1' || v === 'true' || v === 'yes' || v === 'on';
}

function envToken(): string | undefined {
  const t = process.env.HF_TOKEN ?? process.env.HUGGING_FACE_HUB_TOKEN;
  if (t) return t.trim();
  try {
    return readFileSync(path.join(hfHome(), 'token'), 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** The cache folder of one repository. */
export function repoCacheDir(repo: string, cacheDir = hubCacheDir()): string {
  return path.join(cacheDir, `models--${repo.split('/').join('--')}`);
}

const COMMIT = /^[0-9a-f]{40}$/;

/**
 * A model reference → a local folder: Hub references are downloaded (or found in the cache), anything else is a
 * path resolved against `baseDir`.
 */
export async function resolveModelRef(ref: string, opts: ResolveOptions): Promise<string> {
  const hub = parseHubRef(ref);
  if (!hub) return path.resolve(opts.baseDir, ref);
  const cacheDir = opts.cacheDir ?? hubCacheDir();
  if (opts.offline ?? envOffline()) return resolveOffline(hub, cacheDir, 'HF_HUB_OFFLINE is set');
  // A commit never changes: a complete cached snapshot of one needs no request at all.
  if (COMMIT.test(hub.revision)) {
    const state = inspectCache(hub, cacheDir);
    if (state.path && state.missing.length === 0) return state.path;
  }
  try {
    return await resolveOnline(hub, cacheDir, opts);
  } catch (e) {
    // Like huggingface_hub: when the Hub cannot be reached at all, a complete cached snapshot is good enough.
    if (e instanceof EngineError && e.code === 'offline') {
      const cached = await resolveOffline(hub, cacheDir, e.message).catch(() => undefined);
      if (cached) return cached;
    }
    throw e;
  }
}

/** Which weight files a repository (or snapshot) offers, in order of preference. */
const SINGLE_WEIGHTS = ['model.safetensors', 'pytorch_model.bin'] as const;
const INDEXES: Record<string, string> = {
  'model.safetensors': 'model.safetensors.index.json',
  'pytorch_model.bin': 'pytorch_model.bin.index.json',
};

function chooseWeights(files: ReadonlySet<string>): { file: string; sharded: boolean } | undefined {
  for (const single of SINGLE_WEIGHTS) {
    if (files.has(single)) return { file: single, sharded: false };
    if (files.has(INDEXES[single]!)) return { file: INDEXES[single]!, sharded: true };
  }
  return undefined;
}

function shardNames(indexText: string, where: string): string[] {
  let map: unknown;
  try {
    map = (JSON.parse(indexText) as { weight_map?: unknown }).weight_map;
  } catch (e) {
    throw new EngineError('bad-checkpoint', `${where} is not valid JSON: ${(e as Error).message}`, where);
  }
  if (!map || typeof map !== 'object') throw new EngineError('bad-checkpoint', `${where} has no "weight_map" object`, where);
  const names = [...new Set(Object.values(map as Record<string, unknown>))];
  for (const n of names) {
    if (typeof n !== 'string' || n.includes('/') || n.includes('\\') || n.startsWith('.'))
      throw new EngineError('bad-checkpoint', `${where} names an invalid shard ${JSON.stringify(n)}`, where);
  }
  return names as string[];
}

async function resolveOnline(hub: HubRef, cacheDir: string, opts: ResolveOptions): Promise<string> {
  const hubUrl = (opts.hubUrl ?? process.env.HF_ENDPOINT ?? DEFAULT_HUB_URL).replace(/\/+$/, '');
  const token = opts.token ?? envToken();
  const api = { hubUrl, ...(token && { accessToken: token }) };
  const ctx = { repo: hub.repo, revision: hub.revision, hubUrl, hasToken: !!token };
  const info = await callApi(ctx, () =>
    modelInfo({ ...api, name: hub.repo, revision: hub.revision, additionalFields: ['sha', 'filePaths'] }),
  );
  const commit = info.sha;
  if (!commit || !COMMIT.test(commit))
    throw new EngineError('hub-error', `${hubUrl} did not return a commit for ${hub.repo}@${hub.revision}`);
  const files = new Set(info.filePaths ?? []);
  if (!files.has('config.json'))
    throw new EngineError('hub-error', `${hub.repo}@${hub.revision} has no config.json: not a transformers model repository`);
  const weights = chooseWeights(files);
  if (!weights) {
    throw new EngineError(
      'hub-error',
      `${hub.repo}@${hub.revision} has no model.safetensors, pytorch_model.bin or their .index.json at its top level (found: ${[...files].slice(0, 12).join(', ')})`,
    );
  }
  const repoDir = repoCacheDir(hub.repo, cacheDir);
  const snapshot = path.join(repoDir, 'snapshots', commit);
  const fetchFiles = async (names: string[]) => {
    const infos = await callApi(ctx, () => pathsInfo({ ...api, repo: { type: 'model', name: hub.repo }, paths: names, revision: commit }));
    const byPath = new Map(infos.map((i) => [i.path, i]));
    for (const [k, name] of names.entries()) {
      const pi = byPath.get(name);
      if (!pi)
        throw new EngineError('hub-error', `${hub.repo}@${commit.slice(0, 12)} lists ${name} but the Hub has no information about it`);
      await downloadToCache({
        url: `${hubUrl}/${hub.repo}/resolve/${commit}/${name.split('/').map(encodeURIComponent).join('/')}`,
        repoDir,
        commit,
        file: name,
        etag: pi.lfs?.oid ?? pi.oid ?? '',
        size: pi.lfs?.size ?? pi.size,
        token,
        ctx,
        onProgress: opts.onProgress && ((p) => opts.onProgress!({ ...p, fileIndex: k, files: names.length })),
        signal: opts.signal,
        retry: opts.retry,
      });
    }
  };
  const first = ['config.json', ...(files.has('preprocessor_config.json') ? ['preprocessor_config.json'] : []), weights.file];
  await fetchFiles(first);
  if (weights.sharded) {
    const shards = shardNames(await fs.readFile(path.join(snapshot, weights.file), 'utf8'), `${hub.repo}/${weights.file}`);
    const missing = shards.filter((s) => !files.has(s));
    if (missing.length)
      throw new EngineError(
        'hub-error',
        `${hub.repo}/${weights.file} names shards the repository lacks: ${missing.slice(0, 3).join(', ')}`,
      );
    await fetchFiles(shards);
  }
  if (hub.revision !== commit) {
    const refFile = path.join(repoDir, 'refs', hub.revision);
    await fs.mkdir(path.dirname(refFile), { recursive: true });
    await fs.writeFile(refFile, commit);
  }
  return snapshot;
}

interface ApiContext {
  repo: string;
  revision: string;
  hubUrl: string;
  hasToken: boolean;
}

async function callApi<T>(ctx: ApiContext, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (e) {
    if (e instanceof HubApiError) throw hubError(ctx, e.statusCode, e.message.split('. URL:')[0] ?? '');
    if (e instanceof TypeError && /must start with 'hf_'/.test(e.message)) {
      throw new EngineError(
        'hub-error',
        'HF_TOKEN does not look like a Hugging Face access token (they start with hf_); create one at https://huggingface.co/settings/tokens',
      );
    }
    throw networkError(ctx, e);
  }
}

export function networkError(ctx: { hubUrl: string }, e: unknown): EngineError {
  if (e instanceof EngineError) return e;
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  const why = cause?.code ?? cause?.message ?? (e as Error).message;
  return new EngineError('offline', `cannot reach ${ctx.hubUrl} (${why}); set HF_HUB_OFFLINE=1 to use only what is cached`, undefined, {
    cause: e,
  });
}

/** Cache-only resolution: the snapshot of the revision must hold config.json and a complete set of weights. */
async function resolveOffline(hub: HubRef, cacheDir: string, why: string): Promise<string> {
  const state = inspectCache(hub, cacheDir);
  const label = `${hub.repo}@${hub.revision}`;
  if (!state.commit)
    throw new EngineError(
      'offline',
      `${why} and ${label} is not in the Hugging Face cache (${repoCacheDir(hub.repo, cacheDir)}); download it once online or unset HF_HUB_OFFLINE`,
    );
  if (state.missing.length) {
    throw new EngineError(
      'offline',
      `${why} and the cached ${label} (${state.path}) lacks ${state.missing.join(', ')}; download it once online or unset HF_HUB_OFFLINE`,
      state.path,
    );
  }
  return state.path!;
}

interface CacheState {
  commit?: string;
  path?: string;
  files: string[];
  /** What a loadable snapshot still needs. */
  missing: string[];
}

function inspectCache(hub: HubRef, cacheDir: string): CacheState {
  const repoDir = repoCacheDir(hub.repo, cacheDir);
  let commit: string | undefined;
  if (COMMIT.test(hub.revision)) commit = hub.revision;
  else {
    try {
      commit = readFileSync(path.join(repoDir, 'refs', hub.revision), 'utf8').trim();
    } catch {
      commit = undefined;
    }
  }
  if (!commit || !COMMIT.test(commit)) return { files: [], missing: ['config.json', 'weights'] };
  const snapshot = path.join(repoDir, 'snapshots', commit);
  if (!existsSync(snapshot)) return { files: [], missing: ['config.json', 'weights'] };
  const files = listFiles(snapshot);
  const present = new Set(files);
  const missing: string[] = [];
  if (!present.has('config.json')) missing.push('config.json');
  const weights = chooseWeights(present);
  if (!weights) missing.push('model.safetensors or pytorch_model.bin');
  else if (weights.sharded) {
    try {
      for (const s of shardNames(readFileSync(path.join(snapshot, weights.file), 'utf8'), weights.file))
        if (!present.has(s)) missing.push(s);
    } catch {
      missing.push(`a readable ${weights.file}`);
    }
  }
  return { commit, path: snapshot, files, missing };
}

/** Files of a snapshot whose link resolves (a dangling link is a file that is not there). */
function listFiles(dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const e of readdirSync(path.join(dir, rel), { withFileTypes: true })) {
    const name = rel ? `${rel}/${e.name}` : e.name;
    const full = path.join(dir, name);
    let st;
    try {
      st = statSync(full);
    } catch {
      continue;
    }
    if (st.isDirectory()) out.push(...listFiles(dir, name));
    else out.push(name);
  }
  return out.sort();
}

export interface HubCacheDescription {
  /** The revision's snapshot holds config.json and a complete set of weights: it loads offline. */
  cached: boolean;
  /** Files present in the snapshot (relative names). */
  files: string[];
  /** The snapshot folder, when the revision is known to the cache. */
  path?: string;
  commit?: string;
}

/** What the cache holds for a reference, without any network access (for hover and `doctor`). */
export function describeHubCache(ref: string, opts: { cacheDir?: string } = {}): HubCacheDescription {
  let hub: HubRef | undefined;
  try {
    hub = parseHubRef(ref);
  } catch {
    hub = undefined;
  }
  if (!hub) return { cached: false, files: [] };
  const s = inspectCache(hub, opts.cacheDir ?? hubCacheDir());
  return {
    cached: !!s.path && s.missing.length === 0,
    files: s.files,
    ...(s.path && { path: s.path }),
    ...(s.commit && { commit: s.commit }),
  };
}
