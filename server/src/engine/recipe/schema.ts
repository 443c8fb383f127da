/**
 * THE recipe schema, version 1: the single source for validation, completion, hover, the generated
 * recipe.schema.json and the `Recipe` type. Key names and meanings are defined here; every key is documented
 * here and nowhere else.
 */
import { array, bool, enumOf, literal, map, num, object, str, union, type Infer, type Schema } from './schema-dsl';

const lambdaValue = num({
  description: 'Weight on the **anchor**, between 0 and 1: merged = λ·anchor + (1 − λ)·other.',
  minimum: 0,
  maximum: 1,
});

const modelRef = (role: 'anchor' | 'other') =>
  str({
    format: 'model',
    description:
      role === 'anchor'
        ? 'The **anchor** model: a Hugging Face folder (config.json + model.safetensors or pytorch_model.bin, single or sharded), relative to the recipe, or `hf:org/name@rev`. The merged model keeps its layout and its outputs.'
        : 'The **other** model: permuted toward the anchor, then interpolated with it. A Hugging Face folder relative to the recipe, or `hf:org/name@rev`. Must have the same architecture (tensor names and shapes) as the anchor.',
    starter: role === 'anchor' ? './models/anchor' : './models/other',
  });

const alignSchema = object({
  optional: true,
  default: { method: 'correlation', permute: ['cnn', 'attention', 'ffn'], heads: 'reorder', self_check: true },
  description: 'How `other` is permuted toward `anchor` before merging.',
  starter: 'align:\n  method: ${1|correlation,paper,weights,none|}\n  permute: [cnn, attention, ffn]\n  heads: reorder',
  properties: {
    method: enumOf({
      optional: true,
      default: 'correlation',
      description: 'How matching units are found.',
      values: ['correlation', 'paper', 'weights', 'none'],
      valueDescriptions: {
        correlation: 'Match units by the Pearson correlation of their activations on the probe audio (needs `probe`).',
        paper:
          "Reproduce the paper's released code (Ritter-Gutierrez et al., ASRU 2025): per-batch standardised correlations at its hook points (FFN activations, attention output after out_proj), and only the consumers' input columns of `other` permuted (fc2, out_proj). Not function-preserving: the self-check reports the deviation instead of failing. FFN and attention only (needs `probe`).",
        weights: 'Match units by the similarity of their weights (no audio needed; usually weaker).',
        none: 'Do not permute: plain interpolation of the two checkpoints.',
      },
    }),
    permute: array({
      optional: true,
      default: ['cnn', 'attention', 'ffn'],
      description: 'Which parts of the network are permuted. The residual stream is optional and off by default.',
      minItems: 1,
      uniqueItems: true,
      items: enumOf({
        description: 'A permutable part of the network.',
        values: ['cnn', 'attention', 'ffn', 'residual'],
        valueDescriptions: {
          cnn: 'The channels of each feature-extractor conv block.',
          attention: 'Attention heads and the dimensions inside each head.',
          ffn: 'The hidden units of each feed-forward block.',
          residual: 'The residual stream (hidden size) shared by all layers.',
        },
      }),
    }),
    heads: enumOf({
      optional: true,
      default: 'reorder',
      description: 'How attention heads are aligned when `attention` is permuted.',
      values: ['reorder', 'within', 'none'],
      valueDescriptions: {
        reorder: 'Reorder whole heads, then the dimensions within each matched head.',
        within: 'Keep head order; permute the dimensions within each head only.',
        none: 'Leave attention heads untouched.',
      },
    }),
    self_check: bool({
      optional: true,
      default: true,
      description: 'After permuting `other`, verify on probe audio that it still computes the same function (≤ 1e-4 relative).',
    }),
  },
});

const mergeSchema = object({
  description: 'How the aligned checkpoints are combined.',
  starter: 'merge:\n  method: ${1|linear,slerp|}\n  lambda: ${2:0.5}',
  properties: {
    method: enumOf({
      optional: true,
      default: 'linear',
      description: 'Interpolation between the anchor and the aligned other.',
      values: ['linear', 'slerp', 'lsq'],
      valueDescriptions: {
        linear: 'λ·anchor + (1 − λ)·other, tensor by tensor.',
        slerp: 'Spherical interpolation of each tensor (keeps norms), λ on the anchor side.',
        lsq: "Least-squares refit (after PLeaS, Nasery et al., CVPR 2025): from the linear merge, each layer's linear projections (`merge.lsq.refit`) are refit, in layer order, so that their outputs on the probe audio best match the λ-mix of both aligned models' outputs (ridge regression; needs `probe`).",
      },
    }),
    lambda: union({
      description:
        'Weight on the anchor: a number in [0, 1], a list with one number per transformer layer, or `{default, overrides}` with tensor-name globs.',
      expected: 'a number in [0, 1], a list of numbers (one per layer) or a mapping {default, overrides}',
      variants: [
        lambdaValue,
        array({
          description: 'One λ per transformer layer, in layer order (the feature extractor uses the first).',
          minItems: 1,
          items: lambdaValue,
        }),
        object({
          description: 'A default λ and overrides for the tensors whose names match a glob.',
          properties: {
            default: { ...lambdaValue, description: 'λ for every tensor no override matches.' },
            overrides: map({
              optional: true,
              description: 'λ per tensor-name glob (`*` within a name part, `**` across parts); the first matching glob wins.',
              keyFormat: 'glob',
              keyDescription: 'A glob over canonical tensor names, e.g. `encoder.layers.*.feed_forward.**`.',
              values: lambdaValue,
            }),
          },
        }),
      ],
    }),
    sweep: array({
      optional: true,
      description: 'Also produce and evaluate a merge for each of these λ values (numbers in [0, 1]).',
      minItems: 1,
      uniqueItems: true,
      items: lambdaValue,
    }),
    repair: bool({
      optional: true,
      default: false,
      description:
        "Statistics repair (REPAIR, Jordan et al., ICLR 2023): after merging, rescale and shift every conv channel, attention value dimension and FFN unit so that its mean and std on the probe audio equal the λ-mix of the two aligned models' (needs `probe`). Folded into the weights: the output stays a plain checkpoint.",
    }),
    width: num({
      optional: true,
      default: 1,
      minimum: 1,
      maximum: 2,
      description:
        "Partial zipping (ZipIt!, Stoica et al., ICLR 2024): FFN width of the merged model as a multiple of one model's. Above 1, the FFN units whose matched correlation is weakest stay unmerged, one copy from each model (outputs scaled by λ and 1 − λ), and `intermediate_size` grows; at 2 every FFN is the exact λ-mix of both FFNs. With `method: lsq` the refit starts from the zipped linear merge (output_dense is refit over all its units). Uses the FFN correlations of `align.method` correlation (weakest by weight cosine otherwise).",
    }),
    lsq: object({
      optional: true,
      description: 'Settings of `merge.method: lsq` (ignored by the other methods); each key has its default when omitted.',
      properties: {
        refit: array({
          optional: true,
          default: ['out_proj', 'output_dense'],
          description:
            "Which linear projections of each transformer layer are refit, in forward order within the layer (the others keep the linear merge). The default, the two output projections: refitting more scored no better on the example's validation split (examples/README.md).",
          minItems: 1,
          uniqueItems: true,
          items: enumOf({
            description: 'A linear projection of a transformer layer.',
            values: ['q_proj', 'k_proj', 'v_proj', 'out_proj', 'intermediate_dense', 'output_dense'],
            valueDescriptions: {
              q_proj: 'Attention query projection.',
              k_proj: 'Attention key projection.',
              v_proj: 'Attention value projection.',
              out_proj: 'Attention output projection.',
              intermediate_dense: 'FFN input projection (fc1, before the activation: its pre-activations are matched).',
              output_dense: 'FFN output projection (fc2).',
            },
          }),
        }),
        ridge: union({
          optional: true,
          default: 'auto',
          description:
            'Ridge strength γ, relative to the mean input variance (α = γ·tr(Cov)/p), pulling the refit toward the linear merge; `auto` chooses it per projection from 1e-4 … 1 by the fit residual on a held-out fifth of the probe segments.',
          expected: 'a number ≥ 0 or auto',
          variants: [
            num({ description: 'γ, the same for every projection.', minimum: 0 }),
            enumOf({
              description: 'Choose γ per projection on held-out probe segments.',
              values: ['auto'],
              valueDescriptions: { auto: 'Chosen per projection from 1e-4 … 1 on a held-out fifth of the probe segments (needs ≥ 5).' },
            }),
          ],
        }),
        residual: bool({
          optional: true,
          default: false,
          description:
            "Fit out_proj and output_dense so that what enters the next LayerNorm, the residual stream plus the projection's output, matches the target's (the endpoints' sums, mixed or routed), not the projection's output alone: the refit then also corrects how far the merged model's residual stream has drifted from the target's.",
        }),
        targets: enumOf({
          optional: true,
          default: 'mix',
          description:
            "What the refit projections are fit to on each probe frame: the λ-mix of both models' outputs everywhere, or, with `routed`, the outputs of the model whose domain the frame's audio is (`probe.domains`), weighted λ on the anchor's frames and 1 − λ on the other's.",
          values: ['mix', 'routed'],
          valueDescriptions: {
            mix: 'Every probe frame is fit to λ·anchor + (1 − λ)·other (PLeaS).',
            routed:
              "Multi-teacher least squares: frames of the anchor's domain are fit to the anchor's outputs, frames of the other's domain to the other's, weighted λ and 1 − λ. A mix of two models' outputs is what neither computes; on its own domain's audio each model's output is the one worth keeping. Needs `probe.domains`.",
          },
        }),
      },
    }),
  },
});

/** A schema as an override: optional and without a default, and so are the keys of a nested object. */
type Override<S> = S extends { kind: 'object'; properties: infer Q extends Record<string, Schema> }
  ? Omit<S, 'default' | 'optional' | 'properties'> & { optional: true; properties: Overrides<Q> }
  : Omit<S, 'default' | 'optional'> & { optional: true };
type Overrides<P extends Record<string, Schema>> = { [K in keyof P]: Override<P[K]> };

/**
 * The same keys, all optional and without defaults: a variant's overrides of the main settings. Nested objects
 * (merge.lsq) too, so that a variant setting one nested key inherits the others from the main settings.
 */
function overridesOf<const P extends Record<string, Schema>>(properties: P): Overrides<P> {
  const out: Record<string, Schema> = {};
  for (const [k, v] of Object.entries(properties)) {
    const { default: _default, ...rest } = v;
    out[k] =
      rest.kind === 'object' && rest.properties
        ? { ...rest, optional: true, properties: overridesOf(rest.properties) }
        : { ...rest, optional: true };
  }
  return out as Overrides<P>;
}

const { lambda: _lambda, sweep: _sweep, ...mergeOverrideKeys } = mergeSchema.properties;

const variantsSchema = array({
  optional: true,
  minItems: 1,
  description:
    'Extra align/merge settings evaluated in the same run beside the main one, at the same λ values: each item overrides some `align` and `merge` keys. Variants share the probe statistics and the scores of the two source models.',
  starter: 'variants:\n  - name: ${1:repair}\n    merge: { repair: true }',
  items: object({
    description: 'One variant: a name and the align/merge keys it changes.',
    properties: {
      name: str({
        format: 'text',
        description: 'Variant name, unique within the recipe; labels its rows in the report and its sub-folder.',
      }),
      align: object({
        optional: true,
        description: 'The `align` keys this variant changes.',
        properties: overridesOf(alignSchema.properties),
      }),
      merge: object({
        optional: true,
        description: 'The `merge` keys this variant changes (λ and sweep stay the main ones).',
        properties: overridesOf(mergeOverrideKeys),
      }),
    },
  }),
});

export const recipeSchema = object({
  description: 'A Merge Studio recipe (version 1): which two audio encoders to align and merge, how, and how to evaluate the result.',
  properties: {
    version: literal({
      value: 1,
      description: 'Recipe format version. Always `1` for this format.',
      starter: '1',
    }),
    name: str({
      format: 'text',
      optional: true,
      description: 'A short name for this merge, used in reports and the job list. Defaults to the recipe file name.',
    }),
    models: object({
      description: 'The two checkpoints to merge. Both must share one architecture (HuBERT, MERT or wav2vec2 layout).',
      starter: 'models:\n  anchor: ${1:./models/anchor}\n  other: ${2:./models/other}',
      properties: {
        anchor: modelRef('anchor'),
        other: modelRef('other'),
      },
    }),
    probe: object({
      optional: true,
      description: 'Audio run through both models to measure activation correlations. Required when `align.method` is `correlation`.',
      starter: 'probe:\n  audio: [${1:./probe}]\n  max_seconds: 600\n  segment_seconds: 5',
      properties: {
        audio: array({
          description: 'Audio files (wav, flac, mp3) or folders of them, relative to the recipe. Mix the domains both models should serve.',
          minItems: 1,
          uniqueItems: true,
          items: str({ format: 'path', description: 'An audio file or a folder of audio files, relative to the recipe.' }),
        }),
        max_seconds: num({
          optional: true,
          default: 600,
          exclusiveMinimum: 0,
          description: 'At most this many seconds of audio are read from each source in `audio`.',
        }),
        segment_seconds: num({
          optional: true,
          default: 5,
          exclusiveMinimum: 0,
          description: 'Probe audio is cut into segments of this length (seconds) before it is batched through the models.',
        }),
        domains: object({
          optional: true,
          description:
            'Which entries of `audio` are whose domain: read by `merge.lsq.targets: routed`, which fits the frames of each domain to that model. Each entry of `audio` in one list at most.',
          starter: 'domains:\n  anchor: [${1:./probe/speech}]\n  other: [${2:./probe/music}]',
          properties: {
            anchor: array({
              description: "Entries of `probe.audio` (written the same way) that are the anchor's domain.",
              minItems: 1,
              uniqueItems: true,
              items: str({ format: 'path', description: 'An entry of `probe.audio`.' }),
            }),
            other: array({
              description: "Entries of `probe.audio` (written the same way) that are the other model's domain.",
              minItems: 1,
              uniqueItems: true,
              items: str({ format: 'path', description: 'An entry of `probe.audio`.' }),
            }),
          },
        }),
      },
    }),
    align: alignSchema,
    merge: mergeSchema,
    variants: variantsSchema,
    output_variants: bool({
      optional: true,
      default: false,
      description: "Also write each variant's merged model (at the main λ) to a sub-folder of `output` named after the variant.",
    }),
    output_onnx: bool({
      optional: true,
      default: false,
      description:
        "Also write the merged encoder as `model.onnx` for deployment with onnxruntime: input `input_values` (float32 [batch, samples], mono waveforms at the model's sample rate; `do_normalize` applied inside), outputs `last_hidden_state` and `hidden_states.0` … `hidden_states.<layers>`. Weights inside the file (float32, up to 2 GiB).",
    }),
    evaluate: object({
      optional: true,
      description: 'Linear-probe evaluation of the anchor, the other and each merge.',
      starter: 'evaluate:\n  tasks:\n    - name: ${1:task}\n      domain: ${2|speech,music|}\n      data: ${3:./eval/task}',
      properties: {
        tasks: array({
          description:
            'Evaluation tasks. Each `data` folder holds `train/` and `test/`, each with audio files and a `labels.csv` (`file,label`).',
          minItems: 1,
          items: object({
            description: 'One evaluation task.',
            properties: {
              name: str({ format: 'text', description: 'Task name, unique within the recipe; used in reports.' }),
              domain: enumOf({
                description: 'What the task measures, for grouping scores.',
                values: ['speech', 'music'],
                valueDescriptions: {
                  speech: 'A speech task (keywords, speakers, …).',
                  music: 'A music task (pitch, genre, instruments, …).',
                },
              }),
              data: str({
                format: 'directory',
                description: 'Folder with `train/` and `test/`, each holding audio and a `labels.csv` with header `file,label`.',
              }),
            },
          }),
        }),
        split: enumOf({
          optional: true,
          default: 'test',
          description: 'Which clips the probes are scored on. Choose settings on `validation`, then report `test`.',
          values: ['test', 'validation'],
          valueDescriptions: {
            test: 'Train the probes on train/, score them on test/.',
            validation:
              'Hold out a seeded quarter of each class of train/ (runtime.seed), or with `folds` K ≥ 2 each of K folds in turn, train the probes on the rest and score them on it; test/ is never read.',
          },
        }),
        folds: num({
          optional: true,
          default: 1,
          integer: true,
          minimum: 1,
          maximum: 10,
          description:
            'With `split: validation`: 1 holds out one quarter of train/; K ≥ 2 runs a stratified K-fold cross-validation over train/ (runtime.seed): every train clip is scored once, by probes trained on the other folds, so the score rests on all of train/ instead of a quarter. The features are computed once; only the probes are trained K times.',
        }),
      },
    }),
    output: str({
      format: 'directory',
      description:
        'Folder the merged model (a Hugging Face folder; `model.onnx` too with `output_onnx`) and report.json are written to, relative to the recipe. Written atomically: a failed or cancelled run leaves nothing.',
      starter: './out/merged',
    }),
    runtime: object({
      optional: true,
      default: { device: 'auto', seed: 0 },
      description: 'Where and how the models run.',
      starter: 'runtime:\n  device: ${1|auto,cpu,webgpu,cuda|}\n  seed: 0',
      properties: {
        device: enumOf({
          optional: true,
          default: 'auto',
          description: 'onnxruntime execution provider.',
          values: ['auto', 'cpu', 'webgpu', 'cuda'],
          valueDescriptions: {
            auto: 'The fastest available: cuda, then webgpu, then cpu.',
            cpu: 'CPU only.',
            webgpu: 'WebGPU (Dawn) execution provider.',
            cuda: 'NVIDIA CUDA execution provider.',
          },
        }),
        precision: enumOf({
          optional: true,
          default: 'fp32',
          description:
            'Arithmetic of the encoders in onnxruntime. Statistics are reduced in float32 and accumulated in float64 either way.',
          values: ['fp32', 'fp16'],
          valueDescriptions: {
            fp32: 'float32 everywhere (every backend).',
            fp16: 'float16 weights and activations on a GPU backend (webgpu, cuda): half the weight memory and faster GEMMs; hidden states deviate about 1e-3 relative from fp32. The CPU backend has no float16 kernels for these layers and refuses it.',
          },
        }),
        seed: num({
          optional: true,
          default: 0,
          integer: true,
          minimum: 0,
          description: 'Seed for segment sampling and probe training; same seed, same result.',
        }),
        threads: num({
          optional: true,
          integer: true,
          minimum: 1,
          description:
            'CPU threads for onnxruntime and statistics, and how many systems evaluation scores at once (one onnxruntime thread each, at most 4, as many as fit in memory; 1 scores them one after another). Default: all cores.',
        }),
        batch_size: num({
          optional: true,
          integer: true,
          minimum: 1,
          description: 'Probe segments per forward batch. Default: chosen from the model size.',
        }),
        memory: str({
          optional: true,
          format: 'text',
          description:
            'Memory budget of the statistics step, e.g. 4GB: picks the batch size and the layers per pass so the run stays under it (`merge-studio run --dry-run` prints the estimate), and caps how many systems evaluation scores at once. Default: the batch size above and passes of 4 layers; evaluation fits in half the free memory.',
        }),
      },
    }),
  },
});

/** A recipe as loaded: validated, with defaults filled in. Paths are as written (relative to the recipe). */
export type Recipe = Infer<typeof recipeSchema>;
export type RecipeModels = Recipe['models'];
export type RecipeLambda = Recipe['merge']['lambda'];
export type EvaluationTask = NonNullable<Recipe['evaluate']>['tasks'][number];
export type RecipeVariant = NonNullable<Recipe['variants']>[number];

// Engine vocabularies, derived from the schema so a value added here reaches every `switch` and registry.
export type AlignMethodName = Recipe['align']['method'];
export type PermutePart = Recipe['align']['permute'][number];
export type HeadsMode = Recipe['align']['heads'];
export type MergeMethodName = Recipe['merge']['method'];
export type LsqSettings = NonNullable<Recipe['merge']['lsq']>;
export type LsqProjection = LsqSettings['refit'][number];
export type LsqTargets = LsqSettings['targets'];
export type ProbeDomains = NonNullable<NonNullable<Recipe['probe']>['domains']>;
export type Device = Recipe['runtime']['device'];
export const DEVICES: readonly Device[] = recipeSchema.properties.runtime.properties.device.values;
export type Precision = Recipe['runtime']['precision'];
export const PRECISIONS: readonly Precision[] = recipeSchema.properties.runtime.properties.precision.values;
export const ALIGN_METHOD_NAMES: readonly AlignMethodName[] = recipeSchema.properties.align.properties.method.values;
export const MERGE_METHOD_NAMES: readonly MergeMethodName[] = recipeSchema.properties.merge.properties.method.values;

export const RECIPE_VERSION = 1;

/** The schema at a key path (e.g. ['merge', 'lambda']), descending through arrays, maps and unions. */
export function schemaAt(path: readonly (string | number)[], root: Schema = recipeSchema): Schema[] {
  let current: Schema[] = [root];
  for (const seg of path) {
    const next: Schema[] = [];
    for (const s of current.flatMap(expandUnion)) {
      if (s.kind === 'object' && typeof seg === 'string' && seg in s.properties) next.push(s.properties[seg]!);
      else if (s.kind === 'array' && typeof seg === 'number') next.push(s.items);
      else if (s.kind === 'map' && typeof seg === 'string') next.push(s.values);
    }
    current = next;
    if (current.length === 0) break;
  }
  return current;
}

export function expandUnion(s: Schema): Schema[] {
  return s.kind === 'union' ? [...s.variants] : [s];
}

/** Required keys of an object schema: not optional. */
export function requiredKeys(s: Extract<Schema, { kind: 'object' }>): string[] {
  return Object.entries(s.properties)
    .filter(([, p]) => !p.optional)
    .map(([k]) => k);
}
