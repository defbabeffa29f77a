// The sparse autoencoder (notebook 04): the model, its two presets, initialisation, and sae.safetensors + sae.json.
//
//   x̄ = x − b_d        f = act(x̄ W_e + b_e)        x̂ = f W_d + b_d
//
// W_e is [inputDim, dictionarySize], W_d is [dictionarySize, inputDim]: the post's layout and key names
// (weight_encoder, bias_encoder, weight_decoder, bias_decoder), so a PyTorch user loads sae.safetensors into the
// post's SparseAutoencoder class with `load_state_dict(safetensors.torch.load_file(...))`. A "decoder column" in
// the papers' notation is a ROW of weight_decoder here.
//
// act is ReLU ("relu", the post's) or TopK ("topk": the k largest pre-activations of each row, rectified, as in
// OpenAI's sparse_autoencoder); every other entry is 0.
//
// Presets:
//   post         the post's code exactly: W_e, W_d ~ N(0, 1), biases 0; training rows L2-normalised; loss
//                ‖x − x̂‖₂ over the whole batch (not squared, not averaged) + λ‖f‖₁, λ 0.1; Adam lr 1e-5 with
//                weight decay 1e-4 (PyTorch's Adam: an L2 term added to the gradient); 30 epochs; and `encode` takes
//                the RAW vectors, as the post's extraction loop does (it never normalises them).
//   recommended  what SAELens / openai/sparse_autoencoder / saev do: inputs multiplied by one fixed scale so their
//                mean squared norm is inputDim (applied by encode, undone by decode); decoder rows random unit
//                vectors, kept at unit norm after every step with the gradient component parallel to each row
//                removed first; W_e = W_dᵀ at the start; b_d = the mean of the (scaled) data; loss = mean over rows
//                of ‖x − x̂‖² + λ·mean ‖f‖₁, with lr and λ warmed up linearly; AuxK revives dead features. Its
//                budget is counted in training rows, as SAELens counts training tokens, not in passes over the
//                data, so a small dataset is not under-trained; it holds out a fixed share of the faces, stops when
//                their loss stops falling, and keeps the weights of its best evaluation.
//
// Files: sae.safetensors (lib/formats/safetensors.ts) holds the four F32 tensors; sae.json holds SaeMeta (architecture, sizes, input scaling,
// training hyper-parameters, a metrics summary). Both are written atomically (temp file + rename).

import { existsSync } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { tf } from "../kernels/backend";
import type { Preset, RunConfig, SaeConfig } from "../run/config";
import { readSafetensors, writeSafetensors, type SafetensorsTensor } from "../formats/safetensors";
import { RUN_FILE_NAMES } from "../run/files";
import { writeFileAtomic } from "../util/atomic-write";
import { hash32 } from "../util/random";

export type SaeArchitecture = "relu" | "topk";

/** How vectors are scaled before the SAE sees them. */
export type SaeInputScaling =
  /** The post: training rows are L2-normalised, but encode() takes raw vectors, as the post's extraction does. */
  | { readonly kind: "post-l2-rows" }
  /** x·scale has mean squared norm inputDim over the training data; encode multiplies by it, decode divides. */
  | { readonly kind: "fixed-scale"; readonly scale: number };

/** The training recipe, every value resolved (no nulls). */
export interface SaeTraining {
  /** λ of the L1 term (0: none, usual for topk). */
  readonly l1: number;
  readonly learningRate: number;
  /** PyTorch Adam's weight_decay: wd·p added to the gradient of every parameter. */
  readonly weightDecay: number;
  /** Passes over the training rows (the post: 30); null: the budget is `trainingRows`. */
  readonly epochs: number | null;
  /** The most training rows the recipe sees, whatever the dataset's size (SAELens's training tokens); null with epochs. */
  readonly trainingRows: number | null;
  readonly batchSize: number;
  /** "post-l2": ‖x − x̂‖₂ over the batch + λ Σ|f|; "mse": mean over rows of ‖x − x̂‖² + λ · mean over rows of ‖f‖₁. */
  readonly loss: "post-l2" | "mse";
  /** Fraction of all steps over which lr and λ rise linearly from 0 (0: none). */
  readonly warmupFraction: number;
  /** Decoder rows renormalised to 1 after every step, the parallel gradient component removed before it. */
  readonly unitNormDecoder: boolean;
  /** "post-normal": W_e, W_d ~ N(0,1); "tied-unit": W_d rows random unit vectors, W_e = W_dᵀ, b_d = data mean. */
  readonly init: "post-normal" | "tied-unit";
  /** Dead features used by the AuxK loss per row (0: no AuxK). */
  readonly auxK: number;
  readonly auxKCoefficient: number;
  /** A feature counts as dead for AuxK after this many training rows without firing (null: one epoch). */
  readonly deadAfterRows: number | null;
  /**
   * Train on every face but the held-out ones (lib/sae/metrics evaluationSplit). false: on every face, as the
   * post does; the evaluation rows are still measured, but they are not held out.
   */
  readonly holdOut: boolean;
  /** Steps between evaluations (null: one after every pass over the training rows, as the post's epochs). */
  readonly evalEvery: number | null;
  /**
   * Stop once `patience` evaluations in a row have not lowered the held-out loss by `minImprovement` (a fraction of
   * it) below the last one that did, but not before `minSteps` steps; null: train the whole budget.
   */
  readonly earlyStopping: { readonly patience: number; readonly minImprovement: number; readonly minSteps: number } | null;
  /** Keep the weights of the evaluation with the lowest held-out loss rather than the last ones. */
  readonly keepBest: boolean;
  readonly seed: number;
}

/** What training did and what the kept weights measured (see lib/sae/train.ts). */
export interface SaeMetricsSummary {
  /** Steps trained, and the same in passes over the training rows. */
  readonly steps: number;
  readonly epochs: number;
  /** The step whose weights were kept (the last, or the best evaluation's with keepBest). */
  readonly keptStep: number;
  /** Why training ended: the budget was spent, or the held-out loss stopped falling. */
  readonly stopped: "budget" | "plateau";
  /** MSE per value, explained variance and L0 of the kept weights, on the held-out rows (else training's window). */
  readonly mse: number;
  readonly explainedVariance: number;
  readonly l0: number;
  readonly measuredOn: "held-out rows" | "evaluation rows (trained on)" | "training batches";
  /** Dead and dense features in the kept evaluation's window of training batches. */
  readonly dead: number;
  readonly dense: number;
}

/** Which vectors an SAE was trained on: a content hash, so a changed face_vectors.npy is noticed. */
export interface VectorsIdentity {
  /** The file's name (face_vectors.npy). */
  readonly file: string;
  /** SHA-256 of the whole file, hex. */
  readonly sha256: string;
  readonly rows: number;
  readonly cols: number;
}

export interface SaeMeta {
  readonly format: "celeba-sae/sae@1";
  readonly preset: Preset;
  readonly architecture: SaeArchitecture;
  readonly inputDim: number;
  readonly dictionarySize: number;
  /** Active features per row (topk only). */
  readonly k?: number;
  readonly inputScaling: SaeInputScaling;
  readonly training: SaeTraining;
  /** The vectors it was trained on (set by the trainer when it is told; see lib/sae/provenance). */
  readonly trainedOn?: VectorsIdentity;
  readonly metrics?: SaeMetricsSummary;
}

export interface SparseAutoencoder {
  readonly meta: SaeMeta;
  /** [n, inputDim] raw vectors → [n, dictionarySize] feature activations (the preset's input scaling applied). */
  encode(x: tf.Tensor2D): tf.Tensor2D;
  /** [n, dictionarySize] → [n, inputDim], in the units encode() took. */
  decode(f: tf.Tensor2D): tf.Tensor2D;
  dispose(): void;
}

/** Each preset's training recipe for a given architecture (and dictionary size: the recommended step size follows it). */
export function presetTraining(preset: Preset, architecture: SaeArchitecture, dictionarySize = 512): Omit<SaeTraining, "batchSize" | "seed"> {
  if (preset === "post") {
    return {
      l1: 0.1,
      learningRate: 1e-5,
      weightDecay: 1e-4,
      epochs: 30,
      trainingRows: null,
      loss: "post-l2",
      warmupFraction: 0,
      unitNormDecoder: false,
      init: "post-normal",
      auxK: 0,
      auxKCoefficient: 0,
      deadAfterRows: null,
      holdOut: false,
      evalEvery: null,
      earlyStopping: null,
      keepBest: false,
    };
  }
  return {
    // λ = 1 is a starting point for inputs at mean squared norm inputDim with unit decoder rows (the sweep shows
    // the trade-off on the run's own vectors); TopK needs no L1.
    l1: architecture === "topk" ? 0 : 1,
    // 2e-3 at 512 features (measured: held-out loss flat after ~600 steps on the demo's vectors, where 5e-4 needs
    // four times as many), smaller for larger dictionaries as 1/√features (3.5e-4 at 16,384).
    learningRate: 2e-3 * Math.sqrt(512 / dictionarySize),
    weightDecay: 0,
    epochs: null,
    trainingRows: RECOMMENDED_TRAINING_ROWS,
    loss: "mse",
    warmupFraction: 0.05,
    unitNormDecoder: true,
    init: "tied-unit",
    auxK: 256,
    auxKCoefficient: 1 / 32,
    deadAfterRows: null,
    holdOut: true,
    evalEvery: 50,
    earlyStopping: { patience: 4, minImprovement: 0.005, minSteps: 500 },
    keepBest: true,
  };
}

/** The recommended recipe's budget in training rows: an upper bound; early stopping usually ends it sooner. */
export const RECOMMENDED_TRAINING_ROWS = 1_000_000;

/** Each preset's architecture: the post's ReLU, or TopK for the recommended recipe (OpenAI's sparse_autoencoder). */
export function presetArchitecture(preset: Preset): SaeArchitecture {
  return preset === "post" ? "relu" : "topk";
}

/** sae.architecture, or the preset's when it is null. */
export function resolveArchitecture(config: Pick<SaeConfig, "preset" | "architecture">): SaeArchitecture {
  return config.architecture ?? presetArchitecture(config.preset);
}

/** The run config's SAE section with the preset's values filled in where it says null. */
export function resolveSaeTraining(config: SaeConfig, seed: number): SaeTraining {
  const base = presetTraining(config.preset, resolveArchitecture(config), config.dictionarySize);
  return {
    ...base,
    l1: config.l1 ?? base.l1,
    learningRate: config.learningRate ?? base.learningRate,
    weightDecay: config.weightDecay ?? base.weightDecay,
    ...budgetOf(config, base),
    batchSize: config.batchSize,
    auxK: Math.min(base.auxK, config.dictionarySize),
    seed,
  };
}

/**
 * The budget: sae.epochs when set; else the preset's, in epochs for the post's recipe and in training rows
 * (sae.trainingRows when set) for the recommended one.
 */
function budgetOf(config: SaeConfig, base: Pick<SaeTraining, "epochs" | "trainingRows">): Pick<SaeTraining, "epochs" | "trainingRows"> {
  if (config.epochs !== null) return { epochs: config.epochs, trainingRows: null };
  if (base.trainingRows !== null) return { epochs: null, trainingRows: config.trainingRows ?? base.trainingRows };
  return { epochs: base.epochs, trainingRows: null };
}

/** What a new SAE needs. */
export interface SaeSpec {
  readonly preset: Preset;
  readonly architecture: SaeArchitecture;
  readonly inputDim: number;
  readonly dictionarySize: number;
  readonly k?: number;
  readonly training: SaeTraining;
  /** Default: the preset's ("post-l2-rows" for post, scale 1 for recommended until the trainer measures it). */
  readonly inputScaling?: SaeInputScaling;
}

/** The SAE's trainable tensors. */
export interface SaeParameters {
  /** [inputDim, dictionarySize] */
  readonly weightEncoder: tf.Variable<tf.Rank.R2>;
  /** [dictionarySize] */
  readonly biasEncoder: tf.Variable<tf.Rank.R1>;
  /** [dictionarySize, inputDim] */
  readonly weightDecoder: tf.Variable<tf.Rank.R2>;
  /** [inputDim] */
  readonly biasDecoder: tf.Variable<tf.Rank.R1>;
}

/** The order of parameters in files and optimiser state. */
export const SAE_PARAMETER_NAMES = ["weight_encoder", "bias_encoder", "weight_decoder", "bias_decoder"] as const;
export type SaeParameterName = (typeof SAE_PARAMETER_NAMES)[number];

/** The sparse autoencoder: parameters as tf.Variables, plus an explicit copy of W_dᵀ for the training step. */
export class SaeModel implements SparseAutoencoder {
  meta: SaeMeta;
  readonly params: SaeParameters;
  private readonly transposed: tf.Variable<tf.Rank.R2>;
  /** weightDecoder changed since `transposed` was made from it. */
  private transposeStale = false;

  constructor(meta: SaeMeta, params: SaeParameters) {
    this.meta = meta;
    this.params = params;
    this.transposed = tf.variable(tf.tidy(() => params.weightDecoder.transpose()), true);
  }

  /**
   * W_dᵀ [inputDim, dictionarySize] for TF.js's training step (lib/sae/step), equal to transpose(weightDecoder):
   * made again here when W_d changed since (syncDecoderTranspose), so that a native engine, which never reads it,
   * does not pay for the transpose at every sync (~0.1 s at 16,384 features on WASM).
   */
  get decoderT(): tf.Variable<tf.Rank.R2> {
    if (this.transposeStale) {
      tf.tidy(() => this.transposed.assign(this.params.weightDecoder.transpose()));
      this.transposeStale = false;
    }
    return this.transposed;
  }

  /** The parameters by file key name. */
  named(): Record<SaeParameterName, tf.Variable> {
    const p = this.params;
    return { weight_encoder: p.weightEncoder, bias_encoder: p.biasEncoder, weight_decoder: p.weightDecoder, bias_decoder: p.biasDecoder };
  }

  /** weightDecoder was changed other than by TF.js's step: decoderT follows it when next read. */
  syncDecoderTranspose(): void {
    this.transposeStale = true;
  }

  /** Raw vectors → the space the SAE was trained in, as encode() does it (the post: unchanged). */
  scaleForEncode(x: tf.Tensor2D): tf.Tensor2D {
    const s = this.meta.inputScaling;
    return s.kind === "fixed-scale" ? tf.mul(x, s.scale) : x;
  }

  /** Pre-activations x̄ W_e + b_e of already-scaled rows. */
  preActivations(xs: tf.Tensor2D): tf.Tensor2D {
    const p = this.params;
    return matMulBias(tf.sub(xs, p.biasDecoder), p.weightEncoder, p.biasEncoder);
  }

  /** act(pre): ReLU, or the k largest pre-activations of each row rectified. */
  activate(pre: tf.Tensor2D): tf.Tensor2D {
    if (this.meta.architecture === "relu") return tf.relu(pre);
    return tf.tidy(() => tf.mul(tf.relu(pre), activeMask(pre, this.meta.architecture, this.meta.k ?? 0)));
  }

  encode(x: tf.Tensor2D): tf.Tensor2D {
    checkWidth(x.shape[1], this.meta.inputDim, "SparseAutoencoder.encode");
    return tf.tidy(() => this.activate(this.preActivations(this.scaleForEncode(x))));
  }

  decode(f: tf.Tensor2D): tf.Tensor2D {
    checkWidth(f.shape[1], this.meta.dictionarySize, "SparseAutoencoder.decode");
    return tf.tidy(() => {
      const p = this.params;
      const xhat = matMulBias(f, p.weightDecoder, p.biasDecoder);
      const s = this.meta.inputScaling;
      return s.kind === "fixed-scale" ? tf.div(xhat, s.scale) : xhat;
    });
  }

  dispose(): void {
    for (const v of Object.values(this.named())) v.dispose();
    this.transposed.dispose();
  }
}

/** a @ b + bias in one fused kernel (plain, non-transposed operands: the fast path on WASM). */
export function matMulBias(a: tf.Tensor2D, b: tf.Tensor2D, bias: tf.Tensor): tf.Tensor2D {
  return tf.fused.matMul({ a, b, bias }) as tf.Tensor2D;
}

/** 1 where a feature is active, else 0: pre > 0 (relu), or pre > 0 and among the row's k largest (topk). */
export function activeMask(pre: tf.Tensor2D, architecture: SaeArchitecture, k: number): tf.Tensor2D {
  return tf.tidy(() => {
    const positive: tf.Tensor2D = tf.step(pre);
    if (architecture === "relu") return positive;
    const m = pre.shape[1];
    if (k >= m) return positive;
    const kth = tf.topk(pre, k).values.slice([0, k - 1], [pre.shape[0], 1]);
    return tf.mul<tf.Tensor2D>(positive, atLeast(pre, kth));
  });
}

/**
 * 1 where x ≥ threshold (broadcast), else 0, as 1 − step(threshold − x): on the WASM backend a comparison
 * (greaterEqual, then a cast) is far slower than a subtraction and a step, and TopK needs one every step.
 */
export function atLeast(x: tf.Tensor2D, threshold: tf.Tensor): tf.Tensor2D {
  return tf.tidy(() => tf.sub<tf.Tensor2D>(1, tf.step(tf.sub(threshold, x))));
}

function checkWidth(width: number, expected: number, where: string): void {
  if (width !== expected) {
    throw new Error(`${where}: got rows of ${width} values, the SAE takes ${expected}: pass [n, ${expected}] (face vectors of the run this SAE was trained on)`);
  }
}

/** A new SAE initialised as its preset says (b_d stays 0 until the trainer sets it from the data for "tied-unit"). */
export function createSae(spec: SaeSpec): SaeModel {
  const { inputDim: d, dictionarySize: m, training } = spec;
  if (!(Number.isInteger(d) && d > 0 && Number.isInteger(m) && m > 0)) throw new Error(`SAE sizes must be positive integers, got inputDim ${d}, dictionarySize ${m}`);
  if (spec.architecture === "topk" && !(spec.k !== undefined && Number.isInteger(spec.k) && spec.k > 0)) throw new Error(`a topk SAE needs k ≥ 1 (config sae.k), got ${spec.k}`);
  // TF.js draws from Math.random() when a seed is 0 (falsy): every stream gets a non-zero seed derived from the run's.
  const seedOf = (stream: number): number => hash32(training.seed, stream) || 1;
  const params = tf.tidy(() => {
    let we: tf.Tensor2D;
    let wd: tf.Tensor2D;
    if (training.init === "post-normal") {
      we = tf.randomNormal([d, m], 0, 1, "float32", seedOf(0));
      wd = tf.randomNormal([m, d], 0, 1, "float32", seedOf(1));
    } else {
      wd = normaliseRows(tf.randomNormal([m, d], 0, 1, "float32", seedOf(1)));
      we = wd.transpose();
    }
    return { we, wd, be: tf.zeros([m]) as tf.Tensor1D, bd: tf.zeros([d]) as tf.Tensor1D };
  });
  const variables: SaeParameters = {
    weightEncoder: tf.variable(params.we, true, `weight_encoder_${nextId()}`),
    biasEncoder: tf.variable(params.be, true, `bias_encoder_${nextId()}`),
    weightDecoder: tf.variable(params.wd, true, `weight_decoder_${nextId()}`),
    biasDecoder: tf.variable(params.bd, true, `bias_decoder_${nextId()}`),
  };
  tf.dispose([params.we, params.wd, params.be, params.bd]);
  const inputScaling = spec.inputScaling ?? (spec.preset === "post" ? { kind: "post-l2-rows" as const } : { kind: "fixed-scale" as const, scale: 1 });
  const meta: SaeMeta = {
    format: "celeba-sae/sae@1",
    preset: spec.preset,
    architecture: spec.architecture,
    inputDim: d,
    dictionarySize: m,
    ...(spec.architecture === "topk" ? { k: spec.k } : {}),
    inputScaling,
    training,
  };
  return new SaeModel(meta, variables);
}

let variableCounter = 0;
const nextId = (): number => ++variableCounter;

/** Each row divided by its L2 norm. */
export function normaliseRows(w: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => tf.div<tf.Tensor2D>(w, tf.maximum(tf.norm(w, 2, 1, true), 1e-12)));
}

// ---------------------------------------------------------------------------------------------------------------
// sae.safetensors + sae.json


/** Writes dir/sae.safetensors and dir/sae.json, each atomically (temp file + rename). */
export async function saveSae(sae: SparseAutoencoder, dir: string): Promise<void> {
  if (!(sae instanceof SaeModel)) throw new Error("saveSae: pass an SAE made by createSae or loadSae");
  await mkdir(dir, { recursive: true });
  await writeSafetensors(join(dir, RUN_FILE_NAMES.saeWeights), await tensorsOf(sae.named()), { format: sae.meta.format, preset: sae.meta.preset, architecture: sae.meta.architecture });
  await writeFileAtomic(join(dir, RUN_FILE_NAMES.saeMeta), Buffer.from(JSON.stringify(sae.meta, null, 2) + "\n"));
}

/** Reads dir/sae.safetensors + dir/sae.json, checking every tensor's name, dtype and shape against the meta. */
export async function loadSae(dir: string): Promise<SparseAutoencoder> {
  return loadSaeModel(dir);
}

/** loadSae, typed as the trainable model. */
export async function loadSaeModel(dir: string): Promise<SaeModel> {
  const metaPath = join(dir, RUN_FILE_NAMES.saeMeta);
  const weightsPath = join(dir, RUN_FILE_NAMES.saeWeights);
  for (const path of [metaPath, weightsPath]) {
    if (!existsSync(path)) throw new Error(`${path} does not exist: train the SAE first (notebook 04-sae writes ${RUN_FILE_NAMES.saeWeights} and ${RUN_FILE_NAMES.saeMeta})`);
  }
  let meta: SaeMeta;
  try {
    meta = JSON.parse(await readFile(metaPath, "utf8")) as SaeMeta;
  } catch (e) {
    throw new Error(`${metaPath} is not valid JSON (${(e as Error).message}): re-run notebook 04-sae`);
  }
  if (meta === null || typeof meta !== "object" || meta.format !== "celeba-sae/sae@1") {
    throw new Error(`${metaPath} is not an SAE description (format "celeba-sae/sae@1" expected): re-run notebook 04-sae`);
  }
  const d = meta.inputDim;
  const m = meta.dictionarySize;
  const expected: Record<SaeParameterName, number[]> = { weight_encoder: [d, m], bias_encoder: [m], weight_decoder: [m, d], bias_decoder: [d] };
  let tensors: Map<string, SafetensorsTensor>;
  try {
    tensors = await readSafetensors(weightsPath);
  } catch (e) {
    throw new Error(`${(e as Error).message} (re-run notebook 04-sae to write ${RUN_FILE_NAMES.saeWeights} again)`);
  }
  for (const name of SAE_PARAMETER_NAMES) {
    const t = tensors.get(name);
    if (t === undefined) throw new Error(`${weightsPath} has no tensor "${name}": it is not an SAE of this project; re-run notebook 04-sae`);
    if (t.dtype !== "F32") throw new Error(`${weightsPath}: "${name}" is ${t.dtype}, F32 expected; re-run notebook 04-sae`);
    if (t.shape.join(",") !== expected[name].join(",")) {
      throw new Error(`${weightsPath}: "${name}" has shape [${t.shape.join(", ")}] but ${RUN_FILE_NAMES.saeMeta} says [${expected[name].join(", ")}]: the two files do not belong together; re-run notebook 04-sae`);
    }
  }
  const variable = <R extends tf.Rank>(name: SaeParameterName): tf.Variable<R> => {
    const t = tensors.get(name) as SafetensorsTensor<"F32">;
    return tf.variable(tf.tensor(t.data, [...t.shape]), true, `${name}_${nextId()}`) as unknown as tf.Variable<R>;
  };
  const params: SaeParameters = {
    weightEncoder: variable<tf.Rank.R2>("weight_encoder"),
    biasEncoder: variable<tf.Rank.R1>("bias_encoder"),
    weightDecoder: variable<tf.Rank.R2>("weight_decoder"),
    biasDecoder: variable<tf.Rank.R1>("bias_decoder"),
  };
  return new SaeModel(meta, params);
}

/** F32 copies of tensors for writeSafetensors, by name in the given order. */
export async function tensorsOf(named: Readonly<Record<string, tf.Tensor>>): Promise<Map<string, SafetensorsTensor>> {
  const out = new Map<string, SafetensorsTensor>();
  for (const [name, v] of Object.entries(named)) out.set(name, { dtype: "F32", shape: v.shape, data: (await v.data()) as Float32Array });
  return out;
}

/** The SAE a run's config asks for (sae.* settings, the run's seed), for vectors of `inputDim` values. */
export function createRunSae(config: RunConfig, inputDim: number): SaeModel {
  const s = config.sae;
  return createSae({ preset: s.preset, architecture: resolveArchitecture(s), inputDim, dictionarySize: s.dictionarySize, k: s.k, training: resolveSaeTraining(s, config.seed) });
}
