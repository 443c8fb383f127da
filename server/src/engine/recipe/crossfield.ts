/**
 * Checks that relate several keys of one recipe (no disk access): a correlation alignment needs probe audio,
 * head alignment needs attention permuted, segments fit in the probe budget, task names are unique.
 * Runs on the partial value, so a broken key elsewhere does not hide these.
 */
import { probeNeed } from '../pipeline/probe-need';
import { diagnostic, Severity, type Range, type RecipeDiagnostic } from './diagnostics';
import { recipeSchema, type Recipe } from './schema';
import { pathKey, type NodeRanges } from './validate';

/** The validator's best-effort value: every present key is valid, any key may be missing, list items may be holes. */
export type PartialRecipe = DeepPartial<Recipe>;
type DeepPartial<T> = T extends (infer I)[]
  ? (DeepPartial<I> | undefined)[]
  : T extends object
    ? { [K in keyof T]?: DeepPartial<T[K]> }
    : T;

export function checkCrossField(r: PartialRecipe, ranges: NodeRanges, documentStart: Range): RecipeDiagnostic[] {
  const out: RecipeDiagnostic[] = [];
  const valueAt = (...path: (string | number)[]) => ranges.value.get(pathKey(path));
  const keyAt = (...path: (string | number)[]) => ranges.key.get(pathKey(path));

  // Which settings need probe audio is the method registries' rule (pipeline/probe-need.ts); absent keys carry defaults.
  const need = probeNeed(r);
  if (need && r.probe === undefined && !keyAt('probe')) {
    const explicit = valueAt(...need.path);
    const where = explicit ?? keyAt(...need.path.slice(0, -1)) ?? documentStart;
    const why = explicit ? need.setting : `The default ${need.setting.replace(/ (\S+)$/, ' ($1)')}`;
    out.push(
      diagnostic(where, Severity.Error, 'missing-probe', `${why} needs probe audio: add a probe section with audio files or folders`, {
        fix: 'insert-key',
        path: '',
        key: 'probe',
      }),
    );
  }

  const permute = r.align?.permute;
  const heads = r.align?.heads;
  const headsRange = valueAt('align', 'heads');
  // A permute entry that is itself wrong (a typo) has its own error; whether it meant `attention` is unknown.
  const permuteComplete = permute !== undefined && permute.every((p) => p !== undefined);
  if (headsRange && heads && heads !== 'none' && permuteComplete && !permute.includes('attention')) {
    out.push(
      diagnostic(
        headsRange,
        Severity.Warning,
        'inconsistent-align',
        `align.heads ${heads} has no effect: "attention" is not in align.permute`,
      ),
    );
  }
  const permuteRange = valueAt('align', 'permute');
  if (permuteRange && r.align?.method === 'none') {
    out.push(diagnostic(permuteRange, Severity.Warning, 'inconsistent-align', 'align.permute has no effect when align.method is none'));
  }

  const precisionRange = valueAt('runtime', 'precision');
  if (precisionRange && r.runtime?.precision === 'fp16' && r.runtime?.device === 'cpu') {
    out.push(
      diagnostic(
        precisionRange,
        Severity.Error,
        'precision-unsupported',
        'runtime.precision fp16 needs a GPU backend (webgpu or cuda): the cpu device has no float16 kernels for these layers. Use fp32, or device auto/webgpu/cuda',
      ),
    );
  }

  // lsq on a zipped FFN (merge.width > 1) refits from the wider merge, whose fc1 has more units than either model: it
  // has no target to fit there. Each system gets its merge keys from the main ones plus its variant's (systems.ts).
  const refitsFc1 = (refit: readonly (string | undefined)[] | undefined) => (refit ?? LSQ_DEFAULT_REFIT).includes('intermediate_dense');
  const systems = [
    { at: [] as (string | number)[], merge: r.merge },
    ...(r.variants ?? []).map((v, i) => ({ at: ['variants', i], merge: v?.merge })),
  ];
  for (const { at, merge } of systems) {
    if (at.length > 0 && merge === undefined) continue;
    const method = merge?.method ?? r.merge?.method;
    const width = merge?.width ?? r.merge?.width;
    const refit = merge?.lsq?.refit ?? r.merge?.lsq?.refit;
    if (method !== 'lsq' || width === undefined || width <= 1 || !refitsFc1(refit)) continue;
    const where = valueAt(...at, 'merge', 'width') ?? valueAt(...at, 'merge', 'lsq', 'refit') ?? valueAt(...at, 'merge', 'method');
    if (!where) continue;
    out.push(
      diagnostic(
        where,
        Severity.Error,
        'inconsistent-merge',
        `merge.lsq.refit includes intermediate_dense, which cannot be refit on a zipped FFN (merge.width ${width} gives it more units than either model has): refit out_proj and output_dense, or set merge.width: 1`,
      ),
    );
  }

  out.push(...checkProbeDomains(r, systems, valueAt));

  const maxSeconds = r.probe?.max_seconds;
  const segment = r.probe?.segment_seconds;
  const segmentRange = valueAt('probe', 'segment_seconds');
  if (segmentRange && segment !== undefined && maxSeconds !== undefined && segment > maxSeconds) {
    out.push(
      diagnostic(
        segmentRange,
        Severity.Error,
        'segment-too-long',
        `probe.segment_seconds (${segment}) is longer than probe.max_seconds (${maxSeconds})`,
      ),
    );
  }

  const foldsRange = valueAt('evaluate', 'folds');
  if (foldsRange && (r.evaluate?.folds ?? 1) > 1 && (r.evaluate?.split ?? 'test') === 'test') {
    out.push(
      diagnostic(
        foldsRange,
        Severity.Warning,
        'inconsistent-evaluate',
        'evaluate.folds has no effect on the test split: it cross-validates over train/ when evaluate.split is validation',
      ),
    );
  }

  const tasks = r.evaluate?.tasks ?? [];
  const firstByName = new Map<string, number>();
  tasks.forEach((t, i) => {
    if (!t?.name) return;
    const first = firstByName.get(t.name);
    const at = valueAt('evaluate', 'tasks', i, 'name');
    if (first !== undefined && at) {
      out.push(diagnostic(at, Severity.Error, 'duplicate-task', `Task name "${t.name}" is already used by evaluate.tasks[${first}]`));
    } else firstByName.set(t.name, i);
  });

  // Variant names label report rows and name output sub-folders: unique, not a built-in row, a plain folder name.
  const variantByName = new Map<string, number>();
  (r.variants ?? []).forEach((v, i) => {
    const at = valueAt('variants', i, 'name');
    if (!v?.name || !at) return;
    const first = variantByName.get(v.name);
    if (first !== undefined)
      out.push(diagnostic(at, Severity.Error, 'bad-variant-name', `Variant name "${v.name}" is already used by variants[${first}]`));
    else if (RESERVED_ROWS.includes(v.name))
      out.push(
        diagnostic(
          at,
          Severity.Error,
          'bad-variant-name',
          `"${v.name}" names a built-in row of the report (${RESERVED_ROWS.join(', ')}); choose another name`,
        ),
      );
    else if (!/^[A-Za-z0-9][A-Za-z0-9_.+-]*$/.test(v.name))
      out.push(
        diagnostic(
          at,
          Severity.Error,
          'bad-variant-name',
          `Variant name "${v.name}" must be a plain folder name: letters, digits and _ . + - (it names the variant's output sub-folder)`,
        ),
      );
    variantByName.set(v.name, variantByName.get(v.name) ?? i);
  });
  return out;
}

/**
 * `probe.domains` names entries of `probe.audio`, each in one list at most; `merge.lsq.targets: routed` (main settings
 * or a variant's, inherited as systems.ts inherits merge.lsq) fits every probe frame to its domain's model, so it needs
 * a domain for every entry.
 */
function checkProbeDomains(
  r: PartialRecipe,
  systems: { at: (string | number)[]; merge: { method?: string; lsq?: { targets?: string } } | undefined }[],
  valueAt: (...path: (string | number)[]) => Range | undefined,
): RecipeDiagnostic[] {
  const out: RecipeDiagnostic[] = [];
  const audio = r.probe?.audio ?? [];
  const domains = r.probe?.domains;
  const domainOf = new Map<string, 'anchor' | 'other'>();
  for (const side of ['anchor', 'other'] as const) {
    (domains?.[side] ?? []).forEach((entry, i) => {
      const at = valueAt('probe', 'domains', side, i);
      if (entry === undefined || !at) return;
      const first = domainOf.get(entry);
      if (!audio.includes(entry))
        out.push(
          diagnostic(
            at,
            Severity.Error,
            'inconsistent-probe',
            `probe.domains.${side}: "${entry}" is not an entry of probe.audio (${audio.map((a) => `"${a}"`).join(', ')}); name the entry as probe.audio writes it`,
          ),
        );
      else if (first && first !== side)
        out.push(
          diagnostic(
            at,
            Severity.Error,
            'inconsistent-probe',
            `probe.domains.${side}: "${entry}" is already listed as the ${first}'s domain; a probe source is one model's domain`,
          ),
        );
      else domainOf.set(entry, side);
    });
  }
  const routedAt = systems
    .filter(({ at, merge }) => !(at.length > 0 && merge === undefined))
    .filter(({ merge }) => (merge?.method ?? r.merge?.method) === 'lsq' && (merge?.lsq?.targets ?? r.merge?.lsq?.targets) === 'routed')
    .map(({ at }) => valueAt(...at, 'merge', 'lsq', 'targets') ?? valueAt('merge', 'lsq', 'targets'))
    .find((where) => where !== undefined);
  if (!routedAt || !r.probe) return out;
  if (!domains) {
    out.push(
      diagnostic(
        routedAt,
        Severity.Error,
        'inconsistent-merge',
        'merge.lsq.targets routed fits each probe frame to the model whose domain its audio is: add probe.domains with the probe.audio entries of each (anchor: [...], other: [...])',
      ),
    );
    return out;
  }
  audio.forEach((entry, i) => {
    const at = valueAt('probe', 'audio', i);
    if (entry === undefined || !at || domainOf.has(entry)) return;
    out.push(
      diagnostic(
        at,
        Severity.Error,
        'inconsistent-probe',
        `probe.audio "${entry}" has no domain, and merge.lsq.targets routed fits every probe frame to its domain's model: list it under probe.domains.anchor or probe.domains.other`,
      ),
    );
  });
  return out;
}

const LSQ_DEFAULT_REFIT: readonly string[] = recipeSchema.properties.merge.properties.lsq.properties.refit.default;

/** Report rows every run has: the two sources, the unaligned merge and the main settings. */
const RESERVED_ROWS = ['anchor', 'other', 'unaligned', 'permuted', 'linear'];
