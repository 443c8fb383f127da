import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, promises as fs, readFileSync, readlinkSync, lstatSync } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../server/src/engine/io/checkpoint';
import { describeHubCache, parseHubRef, resolveModelRef, type HubProgress } from '../../server/src/engine/io/hub';
import { forward, loadEncoderModel } from '../../server/src/engine/model/encoder';
import { FIXTURES, HF_REFERENCE, loadReference, relativeMaxError } from '../helpers/reference';
import { ROOT } from '../helpers/cli';
import { useTempDirs } from '../helpers/tmp';

const tempDir = useTempDirs();

interface Repo {
  commit: string;
  files: Map<string, Buffer>;
  /** Served through Git LFS: etag = sha256, and /resolve redirects to the CDN. */
  lfs: Set<string>;
  gated?: boolean;
}

interface Seen {
  method: string;
  url: string;
  range?: string;
  auth?: string;
}

/**
 * The Hub endpoints a download uses, on loopback: model info (commit + file list), paths-info (sizes and etags),
 * /resolve (with Range), and an LFS "CDN" on another origin that /resolve redirects to.
 */
class FakeHub {
  readonly repos = new Map<string, Repo>();
  readonly seen: Seen[] = [];
  readonly cdnSeen: Seen[] = [];
  /** File name → bytes after which the next responses for it are cut (count: how many responses). */
  readonly cuts = new Map<string, { after: number; times: number }>();
  private hub!: http.Server;
  private cdn!: http.Server;
  url = '';
  cdnUrl = '';

  async start(): Promise<void> {
    this.cdn = http.createServer((req, res) => {
      this.cdnSeen.push({ method: req.method!, url: req.url!, range: req.headers.range, auth: req.headers.authorization });
      const m = /^\/lfs\/([^/]+)\/([^/]+)\/(.+)$/.exec(req.url!);
      const repo = m && this.repos.get(`${m[1]}/${m[2]}`);
      const file = m && repo?.files.get(decodeURIComponent(m[3]!));
      if (!file) return void res.writeHead(404).end();
      this.sendFile(req, res, decodeURIComponent(m![3]!), file);
    });
    this.hub = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => this.route(req, res, Buffer.concat(chunks).toString('utf8')));
    });
    await Promise.all([this.cdn, this.hub].map((s) => new Promise<void>((r) => s.listen(0, '127.0.0.1', r))));
    this.url = `http://127.0.0.1:${(this.hub.address() as AddressInfo).port}`;
    this.cdnUrl = `http://127.0.0.1:${(this.cdn.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    for (const s of [this.hub, this.cdn]) {
      s.closeAllConnections();
      await new Promise((r) => s.close(r));
    }
  }

  add(name: string, files: Record<string, Buffer>, opts: { gated?: boolean; lfs?: string[] } = {}): Repo {
    const commit = createHash('sha1')
      .update(name + Object.keys(files).join())
      .digest('hex');
    const repo: Repo = {
      commit,
      files: new Map(Object.entries(files)),
      lfs: new Set(opts.lfs ?? Object.keys(files).filter((f) => !f.endsWith('.json'))),
      gated: opts.gated,
    };
    this.repos.set(name, repo);
    return repo;
  }

  private json(res: http.ServerResponse, status: number, body: unknown): void {
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  }

  private route(req: http.IncomingMessage, res: http.ServerResponse, body: string): void {
    this.seen.push({ method: req.method!, url: req.url!, range: req.headers.range, auth: req.headers.authorization });
    const api = /^\/api\/models\/([^/]+)\/([^/]+)\/(revision|paths-info)\/([^?]+)/.exec(req.url!);
    const resolve = /^\/([^/]+)\/([^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(req.url!);
    const name = api ? `${api[1]}/${api[2]}` : resolve ? `${resolve[1]}/${resolve[2]}` : '';
    const repo = this.repos.get(name);
    // Like huggingface.co: an unknown repository is a 401 "Repository Not Found" without a token, so that private ones do not leak.
    if (!repo)
      return req.headers.authorization
        ? this.json(res, 404, { error: 'Repository not found' })
        : this.json(res, 401, { error: 'Repository Not Found for url' });
    // A gated repository's metadata is public; its files need an authorised token.
    if (resolve && repo.gated && req.headers.authorization !== 'Bearer hf_good') {
      return this.json(res, 401, {
        error: `Access to model ${name} is restricted. You must have access to it and be authenticated to access it. Please log in.`,
      });
    }
    if (api?.[3] === 'revision') {
      const rev = decodeURIComponent(api[4]!);
      if (rev !== 'main' && rev !== 'v1' && rev !== repo.commit) return this.json(res, 404, { error: `Invalid rev id: ${rev}` });
      return this.json(res, 200, {
        _id: 'x',
        id: name,
        sha: repo.commit,
        siblings: [...repo.files.keys()].map((rfilename) => ({ rfilename })),
        private: false,
        gated: repo.gated ? 'auto' : false,
        downloads: 0,
        likes: 0,
      });
    }
    if (api?.[3] === 'paths-info') {
      const { paths } = JSON.parse(body) as { paths: string[] };
      return this.json(
        res,
        200,
        paths
          .filter((p) => repo.files.has(p))
          .map((p) => {
            const data = repo.files.get(p)!;
            const oid = createHash('sha1').update(`blob ${data.length}\0`).update(data).digest('hex');
            return {
              type: 'file',
              path: p,
              size: data.length,
              oid,
              ...(repo.lfs.has(p) && {
                lfs: { oid: createHash('sha256').update(data).digest('hex'), size: data.length, pointerSize: 134 },
              }),
            };
          }),
      );
    }
    if (resolve) {
      const file = decodeURIComponent(resolve[4]!);
      const data = repo.files.get(file);
      if (!data || resolve[3] !== repo.commit) return this.json(res, 404, { error: 'Entry not found' });
      if (repo.lfs.has(file)) return void res.writeHead(302, { location: `${this.cdnUrl}/lfs/${name}/${encodeURIComponent(file)}` }).end();
      return this.sendFile(req, res, file, data);
    }
    this.json(res, 404, { error: 'no such endpoint' });
  }

  private sendFile(req: http.IncomingMessage, res: http.ServerResponse, name: string, data: Buffer): void {
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const from = m ? Number(m[1]) : 0;
    const headers = {
      'content-length': String(data.length - from),
      'accept-ranges': 'bytes',
      ...(m && { 'content-range': `bytes ${from}-${data.length - 1}/${data.length}` }),
    };
    res.writeHead(m ? 206 : 200, headers);
    const cut = this.cuts.get(name);
    if (cut && cut.times > 0) {
      cut.times--;
      res.write(data.subarray(from, Math.max(from, cut.after)), () => setTimeout(() => res.socket?.destroy(), 20));
      return;
    }
    res.end(data.subarray(from));
  }
}

const REF_DIR = path.join(HF_REFERENCE, 'hubert-postln-a');
const read = (p: string) => readFileSync(p);
const modelFiles = () => ({
  'config.json': read(path.join(REF_DIR, 'config.json')),
  'preprocessor_config.json': Buffer.from(JSON.stringify({ feature_size: 1, sampling_rate: 16000 })),
  'model.safetensors': read(path.join(REF_DIR, 'model.safetensors')),
  'README.md': Buffer.from('# tiny\n'),
});

let hub: FakeHub;
let home: string;
const saved = { ...process.env };

beforeEach(async () => {
  hub = new FakeHub();
  await hub.start();
  home = tempDir();
  for (const k of ['HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN', 'HF_HUB_OFFLINE', 'HF_HUB_CACHE', 'HUGGINGFACE_HUB_CACHE', 'HF_ENDPOINT'])
    delete process.env[k];
  process.env.HF_HOME = home;
});

afterEach(async () => {
  await hub.stop();
  process.env = { ...saved };
});

const opts = (extra: object = {}) => ({ baseDir: '/', hubUrl: hub.url, ...extra });

describe('Hub references', () => {
  it('parses hf:org/name[@revision] and refuses malformed or path-climbing ones', () => {
    expect(parseHubRef('./models/x')).toBeUndefined();
    expect(parseHubRef('hf:m-a-p/MERT-v0-public')).toEqual({ repo: 'm-a-p/MERT-v0-public', revision: 'main' });
    expect(parseHubRef('hf:org/name@refs/pr/1')).toEqual({ repo: 'org/name', revision: 'refs/pr/1' });
    for (const bad of ['hf:name', 'hf:org/name@', 'hf:org/name@../../x', 'hf:org/../x', 'hf:/x']) {
      expect(() => parseHubRef(bad), bad).toThrow(/not a Hugging Face reference/);
    }
  });

  it('downloads into the standard HF cache layout (blobs, snapshots → links, refs), with progress, then serves from the cache', async () => {
    const repo = hub.add('org/tiny', modelFiles());
    const events: HubProgress[] = [];
    const dir = await resolveModelRef('hf:org/tiny', opts({ onProgress: (p: HubProgress) => events.push(p) }));
    const repoDir = path.join(home, 'hub', 'models--org--tiny');
    expect(dir).toBe(path.join(repoDir, 'snapshots', repo.commit));
    expect(readFileSync(path.join(repoDir, 'refs', 'main'), 'utf8')).toBe(repo.commit);
    expect((await fs.readdir(dir)).sort()).toEqual(['config.json', 'model.safetensors', 'preprocessor_config.json']); // no README
    const sha = createHash('sha256').update(repo.files.get('model.safetensors')!).digest('hex');
    expect(lstatSync(path.join(dir, 'model.safetensors')).isSymbolicLink()).toBe(true);
    expect(readlinkSync(path.join(dir, 'model.safetensors'))).toBe(path.join('..', '..', 'blobs', sha));
    expect(read(path.join(dir, 'model.safetensors')).equals(repo.files.get('model.safetensors')!)).toBe(true);
    expect(
      events
        .filter((e) => e.done && !e.cached)
        .map((e) => e.file)
        .sort(),
    ).toEqual(['config.json', 'model.safetensors', 'preprocessor_config.json']);
    expect(events.find((e) => e.file === 'model.safetensors' && e.done)!.received).toBe(repo.files.get('model.safetensors')!.length);
    // The LFS file came from the CDN origin, which never saw a token (none set here) and got no Range.
    expect(hub.cdnSeen.map((s) => s.url)).toEqual(['/lfs/org/tiny/model.safetensors']);

    const resolvesBefore = hub.seen.filter((s) => s.url.includes('/resolve/')).length;
    const again: HubProgress[] = [];
    expect(await resolveModelRef('hf:org/tiny', opts({ onProgress: (p: HubProgress) => again.push(p) }))).toBe(dir);
    expect(hub.seen.filter((s) => s.url.includes('/resolve/')).length).toBe(resolvesBefore);
    expect(again.every((e) => e.cached)).toBe(true);
    expect(describeHubCache('hf:org/tiny')).toEqual({
      cached: true,
      files: ['config.json', 'model.safetensors', 'preprocessor_config.json'],
      path: dir,
      commit: repo.commit,
    });
    expect(describeHubCache('hf:org/other')).toEqual({ cached: false, files: [] });
  });

  it('loadEncoderModel takes a Hub reference and computes what transformers does', async () => {
    hub.add('org/tiny', modelFiles());
    const model = await loadEncoderModel('hf:org/tiny', { hubUrl: hub.url });
    const ref = loadReference('hubert-postln-a');
    const out = await forward(model, Float32Array.from(ref.input), { device: 'cpu' });
    expect(relativeMaxError(out.lastHiddenState, ref.last_hidden_state)).toBeLessThan(1e-4);
  });

  it('a revision is recorded in refs/; pytorch_model.bin is fetched when there is no safetensors, its shards when sharded', async () => {
    const bin = hub.add('org/bin', {
      'config.json': read(path.join(FIXTURES, 'torch', 'hubert-bin', 'config.json')),
      'pytorch_model.bin': read(path.join(FIXTURES, 'torch', 'hubert-bin', 'pytorch_model.bin')),
    });
    const dir = await resolveModelRef('hf:org/bin@v1', opts());
    expect(readFileSync(path.join(home, 'hub', 'models--org--bin', 'refs', 'v1'), 'utf8')).toBe(bin.commit);
    expect((await loadEncoderModel(dir)).layout.prefix).toBe('hubert.');

    const shardDir = path.join(FIXTURES, 'torch', 'sharded');
    const files: Record<string, Buffer> = { 'config.json': Buffer.from('{}') };
    for (const f of await fs.readdir(shardDir)) files[f] = read(path.join(shardDir, f));
    files['pytorch_model-00009-of-00009.bin'] = Buffer.from('unrelated file, not in the index');
    const sharded = hub.add('org/sharded', files);
    const sdir = await resolveModelRef(`hf:org/sharded@${sharded.commit}`, opts());
    expect((await fs.readdir(sdir)).sort()).toEqual([
      'config.json',
      'pytorch_model-00001-of-00002.bin',
      'pytorch_model-00002-of-00002.bin',
      'pytorch_model.bin.index.json',
    ]);
    expect(existsSync(path.join(home, 'hub', 'models--org--sharded', 'refs'))).toBe(false); // a commit needs no ref
    const requests = hub.seen.length;
    expect(await resolveModelRef(`hf:org/sharded@${sharded.commit}`, opts())).toBe(sdir);
    expect(hub.seen).toHaveLength(requests); // a cached commit is final: no request
    const ckpt = await openCheckpoint(sdir);
    expect(ckpt.tensors()).toHaveLength(4);
    await ckpt.close();
  });

  it('resumes a cut connection with a Range request, within one call and on the next run', async () => {
    const repo = hub.add('org/tiny', modelFiles());
    const size = repo.files.get('model.safetensors')!.length;
    hub.cuts.set('model.safetensors', { after: 300_000, times: 1 });
    const dir = await resolveModelRef('hf:org/tiny', opts({ retry: { delayMs: 10 } }));
    expect(hub.cdnSeen.map((s) => s.range)).toEqual([undefined, 'bytes=300000-']);
    expect(read(path.join(dir, 'model.safetensors')).equals(repo.files.get('model.safetensors')!)).toBe(true);

    // A connection that keeps failing: the error says how far it got; the next run continues from there.
    process.env.HF_HOME = tempDir();
    hub.cdnSeen.length = 0;
    hub.cuts.set('model.safetensors', { after: 200_000, times: 2 });
    await expect(resolveModelRef('hf:org/tiny', opts({ retry: { attempts: 2, delayMs: 10 } }))).rejects.toMatchObject({
      code: 'hub-error',
      message: expect.stringMatching(
        /download of org\/tiny\/model\.safetensors was interrupted 2 times .*200000 of \d+ bytes are kept in .*\.incomplete, run again to resume/,
      ),
    });
    const blobs = path.join(process.env.HF_HOME, 'hub', 'models--org--tiny', 'blobs');
    const partial = (await fs.readdir(blobs)).find((f) => f.endsWith('.incomplete'))!;
    expect((await fs.stat(path.join(blobs, partial))).size).toBe(200_000);
    const resumed = await resolveModelRef('hf:org/tiny', opts());
    expect(hub.cdnSeen.at(-1)!.range).toBe('bytes=200000-');
    expect((await fs.stat(path.join(resumed, 'model.safetensors'))).size).toBe(size);
    expect((await fs.readdir(blobs)).some((f) => f.endsWith('.incomplete'))).toBe(false);
  });

  it('a repository that does not exist (404 with a token; 401 "Repository Not Found" without, as the Hub answers)', async () => {
    await expect(resolveModelRef('hf:org/missing', opts())).rejects.toMatchObject({
      code: 'hub-error',
      message: expect.stringMatching(
        /org\/missing was not found on http:\/\/127\.0\.0\.1:\d+, or is private \(HTTP 401\): check the name, or set HF_TOKEN/,
      ),
    });
    process.env.HF_TOKEN = 'hf_good';
    await expect(resolveModelRef('hf:org/missing', opts())).rejects.toMatchObject({
      code: 'hub-error',
      message: expect.stringMatching(/org\/missing@main was not found on http:\/\/127\.0\.0\.1:\d+ \(HTTP 404/),
    });
  });

  it('a gated repository: without a token the message says to set HF_TOKEN; with one it downloads, and the CDN never sees the token', async () => {
    hub.add('org/gated', modelFiles(), { gated: true });
    await expect(resolveModelRef('hf:org/gated', opts())).rejects.toMatchObject({
      code: 'hub-error',
      message: expect.stringMatching(/org\/gated is gated or private \(HTTP 401\): request access on .*, then set HF_TOKEN/),
    });
    process.env.HF_TOKEN = 'hf_wrong';
    await expect(resolveModelRef('hf:org/gated', opts())).rejects.toMatchObject({
      message: expect.stringMatching(/refused HF_TOKEN for org\/gated/),
    });
    process.env.HF_TOKEN = 'hf_good';
    const from = hub.seen.length;
    const dir = await resolveModelRef('hf:org/gated', opts());
    expect(existsSync(path.join(dir, 'model.safetensors'))).toBe(true);
    expect(hub.seen.slice(from).map((s) => s.auth)).toEqual(hub.seen.slice(from).map(() => 'Bearer hf_good'));
    expect(hub.cdnSeen.length).toBeGreaterThan(0);
    expect(hub.cdnSeen.every((s) => s.auth === undefined)).toBe(true);
  });

  it('offline mode reads only the cache and names what is missing; an unreachable Hub falls back to a complete cache', async () => {
    hub.add('org/tiny', modelFiles());
    process.env.HF_HUB_OFFLINE = '1';
    await expect(resolveModelRef('hf:org/tiny', opts())).rejects.toMatchObject({
      code: 'offline',
      message: expect.stringMatching(/HF_HUB_OFFLINE is set and org\/tiny@main is not in the Hugging Face cache/),
    });
    expect(hub.seen).toHaveLength(0);

    delete process.env.HF_HUB_OFFLINE;
    const dir = await resolveModelRef('hf:org/tiny', opts());
    const requests = hub.seen.length;
    process.env.HF_HUB_OFFLINE = '1';
    expect(await resolveModelRef('hf:org/tiny', opts())).toBe(dir);
    expect(hub.seen).toHaveLength(requests);

    await fs.rm(path.join(dir, 'model.safetensors'));
    await expect(resolveModelRef('hf:org/tiny', opts())).rejects.toMatchObject({
      code: 'offline',
      message: expect.stringMatching(/the cached org\/tiny@main .* lacks model\.safetensors or pytorch_model\.bin/),
    });
    expect(describeHubCache('hf:org/tiny').cached).toBe(false);

    delete process.env.HF_HUB_OFFLINE;
    await resolveModelRef('hf:org/tiny', opts()); // repairs the link from the blob still in the cache
    const port = Number(new URL(hub.url).port);
    await hub.stop();
    hub = new FakeHub();
    await hub.start(); // a different port: the old one now refuses connections
    expect(await resolveModelRef('hf:org/tiny', opts({ hubUrl: `http://127.0.0.1:${port}` }))).toBe(dir);
    await expect(resolveModelRef('hf:org/never', opts({ hubUrl: `http://127.0.0.1:${port}` }))).rejects.toMatchObject({
      code: 'offline',
      message: expect.stringMatching(/cannot reach http:\/\/127\.0\.0\.1:\d+ .*HF_HUB_OFFLINE=1/),
    });
  });

  it('merge-studio forward --model hf:org/name downloads through HF_ENDPOINT into HF_HOME and runs', async () => {
    hub.add('org/tiny', modelFiles());
    const wav = path.join(FIXTURES, 'audio', 'tone-16k.wav');
    const child = spawn(
      process.execPath,
      [path.join(ROOT, 'bin', 'merge-studio.js'), 'forward', '--model', 'hf:org/tiny', '--audio', wav, '--summary'],
      {
        env: { ...process.env, HF_HOME: home, HF_ENDPOINT: hub.url },
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const code = await new Promise<number | null>((r) => child.on('close', r));
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toMatch(/hubert \(hubert\), 3 layers × 64 hidden/);
    expect(describeHubCache('hf:org/tiny').cached).toBe(true);
  });

  it('paths resolve against the base folder', async () => {
    expect(await resolveModelRef('models/a', { baseDir: '/work/r' })).toBe('/work/r/models/a');
  });
});
