// The one typed configuration of a run.
//
// A run is a folder `runs/<run>/` holding `config.json`, the artifacts of every step and the executed notebooks.
// The defaults reproduce the post; `npm run notebooks -- --run NAME --set key=value …` (or `applyOverrides`)
// changes single values, and the result is saved into the run folder, where every notebook of the run reads it.
// The run a notebook uses comes from CELEBA_SAE_RUN (set by the runner), else "dev" (JupyterLab by hand).
//
// `defaultConfig` gives the shape and the defaults, `RULES` the constraint of every setting; validation and
// `--set` parsing are driven by both, so a new setting is one line in each.

import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import { BACKEND_ORDER, ENGINES, type BackendChoice, type EngineChoice } from "../kernels/backend-names";
import { dataDir, projectRoot } from "../util/project";
import { runDir, runFiles } from "./files";
import { writeFileAtomicSync } from "../util/atomic-write";

export type Preset = "post" | "recommended";

export interface SyntheticConfig {
  /** How many synthetic faces to generate. */
  readonly count: number;
  /** How many distinct people they show (each several times). */
  readonly identities: number;
  /** The generator's seed: same seed, same pictures. */
  readonly seed: number;
}

/** Fine-tuning ResNet18 (notebook 02). */
export interface FinetuneConfig {
  /** "post": the post's losses exactly; "recommended": normalised embeddings with a temperature. */
  readonly preset: Preset;
  readonly epochs: number;
  /** Images per optimisation step (the post: 128). */
  readonly batchSize: number;
  /** Images per forward/backward chunk; the step's gradient is still the whole batch's (gradient cache). */
  readonly chunkSize: number;
  /** Adam's learning rate (the post: 1e-3). */
  readonly learningRate: number;
  /** Softmax temperature of the recommended contrastive loss. */
  readonly temperature: number;
  /** Steps between checkpoints. */
  readonly checkpointEvery: number;
  /** Stop after this many steps (null: whole epochs). */
  readonly maxSteps: number | null;
  /** K of identity-balanced batches (P people × K pictures; lib/data/people); 1: shuffled batches of every face, the
   *  post's. null: the preset's (post 1, recommended: lib/model/finetune RECOMMENDED_IMAGES_PER_PERSON). Needs the dataset's identities. */
  readonly imagesPerPerson: number | null;
  /** Each face as a random crop and mirror of itself (lib/model/inputs augmentViews): "auto" the preset's (post no,
   *  recommended yes), "on", "off". */
  readonly augment: "auto" | "on" | "off";
  /** After training, BatchNorm's running statistics become the plain average of the batch statistics of this many
   *  training faces under the final weights (lib/model/batch-norm, torch.optim.swa_utils.update_bn); 0 keeps the
   *  running averages training left, as the post. null: the preset's (post 0, recommended 1024). */
  readonly batchNormImages: number | null;
  /** Fraction of the people held out (a seeded split of identities): measured during fine-tuning, never trained on
   *  by the recommended preset (the post's preset trains on every face, as the post). 0: no held-out measure. */
  readonly heldOutPeople: number;
  /** At most this many faces of the held-out people are measured (whole people). */
  readonly heldOutImages: number;
  /** Steps between held-out measurements (null: about ten over the run); step 0 and the last step always. */
  readonly evalEvery: number | null;
  /** Where fine-tuning starts (lib/model/initial-weights): "auto" (ImageNet weights from the Hugging Face Hub when
   *  they can be had, else random initialisation, saying why), "imagenet" (or an error), "random", or the path of a
   *  .safetensors file with torchvision/timm key names. */
  readonly weights: string;
  /** The Hub revision of the ImageNet weights: "" (main), a branch, a tag or a 40-hex commit. */
  readonly weightsRevision: string;
  /** Who runs the forward and backward passes: "auto": onnxruntime-node's native kernels when it is installed
   *  (closer to PyTorch's step time than WASM; bench/results.md), else TF.js; "onnxruntime": onnxruntime-node or an
   *  error; "tfjs": always TF.js. The model, the optimizer and the checkpoints are the same either way. */
  readonly engine: EngineChoice;
}

/** Embedding every face (notebook 03). */
export interface EmbedConfig {
  readonly batchSize: number;
  /** "auto": onnxruntime-node when it is installed (several times faster on a CPU), else TF.js; "onnxruntime":
   *  onnxruntime-node or an error; "tfjs": always TF.js. */
  readonly engine: EngineChoice;
}

/** The sparse autoencoder (notebook 04). null values take the preset's value. */
export interface SaeConfig {
  /** "post": the post's code exactly; "recommended": what current SAE libraries do. */
  readonly preset: Preset;
  /** "relu" (L1-penalised, the post's) or "topk" (keep the k largest pre-activations, the recommended preset's). */
  readonly architecture: "relu" | "topk" | null;
  /** Number of learned features (the post: 512). */
  readonly dictionarySize: number;
  /** Sparsity coefficient λ (the post: 0.1). */
  readonly l1: number | null;
  readonly learningRate: number | null;
  readonly weightDecay: number | null;
  readonly batchSize: number;
  /** Passes over the faces (null: the preset's: the post's 30, or for recommended the trainingRows budget). */
  readonly epochs: number | null;
  /**
   * The recommended recipe's budget: training rows it sees at most, whatever the dataset's size, as SAELens counts
   * tokens (null: 1,000,000); it also applies to the recommended SAE trained beside the post's.
   */
  readonly trainingRows: number | null;
  /** Active features per input for the topk architecture. */
  readonly k: number;
  /** λ values (or k values for topk) of the sweep, comma-separated ("" : no sweep). */
  readonly sweep: string;
  /** Who runs the SAE's training steps (lib/sae/onnx-step `chooseSaeEngine`, used by lib/sae/train for notebook 04's
   *  SAEs and sweep): "auto": TF.js on a GPU, else onnxruntime-node's native kernels when it is installed, else
   *  TF.js; "onnxruntime": onnxruntime-node or an error; "tfjs": always TF.js. Same results to float32 rounding. */
  readonly engine: EngineChoice;
}

/** Inspecting features (notebook 05). */
export interface InspectConfig {
  /** Features shown as grids, e.g. "0-15" or "0,3,7". */
  readonly features: string;
  /** Images per grid (the post: 16, a 4×4 grid). */
  readonly topImages: number;
  /** SAE activations ranked after normalising each row ("rows", as the post) or as they are ("raw"). */
  readonly normalize: "rows" | "raw";
  /** Faces embedded with their 180° copies to measure each feature's rotation consistency. */
  readonly rotationSample: number;
}

/** The blind interpretability test (notebook 06). */
export interface BlindTestConfig {
  /** Features rated, dense and sparse (the post: 16–31). */
  readonly features: string;
  /** "auto": rated from the attribute labels, unattended; "human": a person rates them on a page. */
  readonly rater: "auto" | "human";
  /**
   * The kinds of grids rated, comma-separated among dense, sparse (the run's SAE) and sparse-recommended (the
   * recommended SAE beside the post's); "auto": every kind there is for the automatic rater, the post's two
   * (dense, sparse) for a person.
   */
  readonly kinds: string;
  readonly seed: number;
}

/** The blog post made from the executed notebooks. */
export interface ExportConfig {
  readonly title: string;
  /** YYYY-MM-DD ("" : the day of the export). */
  readonly date: string;
  /** Comma-separated. */
  readonly tags: string;
  /** "" : /posts/<year>/<month>/<slug>. */
  readonly permalink: string;
}

export interface RunConfig {
  /** The run's name: its folder is runs/<run>/. */
  readonly run: string;
  /**
   * Which images: "auto" (CelebA when Kaggle credentials are configured, else synthetic faces), "synthetic"
   * (the embedded generator, no download), "celeba" (Kaggle's CelebA in data/celeba), or the path of a folder in
   * CelebA's layout (or any folder of images).
   */
  readonly dataset: string;
  readonly synthetic: SyntheticConfig;
  /** Images are resized to imageSize × imageSize (the post: 224). */
  readonly imageSize: number;
  /** "post": stretch to a square ignoring aspect, as the post's T.Resize((224, 224)); "recommended": centre-crop first. */
  readonly resize: Preset;
  /** Use only the first N images in listing order (null: all). */
  readonly limit: number | null;
  /** What a corrupt or unreadable image does: stop with its name ("error") or be left out and counted ("skip"). */
  readonly onBadImage: "error" | "skip";
  /** Keep decoded images in a uint8 .npy cache so later passes don't decode JPEGs again: true, false, or "auto"
   *  (cache when the cache is small enough to be read faster than decoding, see lib/data/datasets `imageCacheDecision`). */
  readonly imageCache: boolean | "auto";
  /** Decoded batches kept ready ahead of the model. */
  readonly prefetchBatches: number;
  /** TF.js backend: "auto" picks the fastest that loads; CELEBA_SAE_BACKEND overrides. */
  readonly backend: BackendChoice;
  /** The run's seed for shuffling and initialisation. */
  readonly seed: number;
  readonly finetune: FinetuneConfig;
  readonly embed: EmbedConfig;
  readonly sae: SaeConfig;
  readonly inspect: InspectConfig;
  readonly blindTest: BlindTestConfig;
  readonly export: ExportConfig;
}

/** The defaults: the post's choices where it made one. */
export function defaultConfig(run = "dev"): RunConfig {
  return {
    run,
    dataset: "auto",
    synthetic: { count: 5000, identities: 250, seed: 1 },
    imageSize: 224,
    resize: "post",
    limit: null,
    onBadImage: "error",
    imageCache: "auto",
    prefetchBatches: 2,
    backend: "auto",
    seed: 0,
    finetune: {
      preset: "post",
      epochs: 1,
      batchSize: 128,
      chunkSize: 32,
      learningRate: 1e-3,
      temperature: 0.1,
      checkpointEvery: 25,
      maxSteps: null,
      imagesPerPerson: null,
      augment: "auto",
      batchNormImages: null,
      heldOutPeople: 0.2,
      heldOutImages: 1000,
      evalEvery: null,
      weights: "auto",
      weightsRevision: "",
      engine: "auto",
    },
    embed: { batchSize: 128, engine: "auto" },
    sae: {
      preset: "post",
      architecture: null,
      dictionarySize: 512,
      l1: null,
      learningRate: null,
      weightDecay: null,
      batchSize: 512,
      epochs: null,
      trainingRows: null,
      k: 32,
      sweep: "",
      engine: "auto",
    },
    inspect: { features: "0-15", topImages: 16, normalize: "rows", rotationSample: 256 },
    blindTest: { features: "16-31", rater: "auto", kinds: "auto", seed: 0 },
    export: { title: "Sparse Autoencoder", date: "", tags: "projects,interpretability,machine-learning", permalink: "" },
  };
}

type Rule =
  | { readonly kind: "int"; readonly min?: number; readonly max?: number; readonly nullable?: boolean }
  | { readonly kind: "number"; readonly min?: number; readonly max?: number; readonly nullable?: boolean }
  | { readonly kind: "bool"; readonly auto?: boolean }
  | { readonly kind: "string"; readonly pattern?: RegExp; readonly hint?: string }
  | { readonly kind: "choice"; readonly values: readonly string[]; readonly nullable?: boolean };

const POSITIVE_INT: Rule = { kind: "int", min: 1 };
/** Seeds are unsigned 32-bit (lib/util/random hashes them modulo 2³²): 2³² acted as seed 0, −1 as 2³² − 1. */
const SEED: Rule = { kind: "int", min: 0, max: 2 ** 32 - 1 };
const PRESET: Rule = { kind: "choice", values: ["post", "recommended"] };
const FEATURES: Rule = { kind: "string", pattern: /^\d+(-\d+)?(,\d+(-\d+)?)*$/, hint: 'feature numbers like "0-15" or "0,3,7"' };

/** The constraint of every setting, by its dotted key. */
const RULES: Readonly<Record<string, Rule>> = {
  run: { kind: "string", pattern: /^[A-Za-z0-9][A-Za-z0-9._-]*$/, hint: 'a folder name of letters, digits, ".", "_" or "-"' },
  dataset: { kind: "string", pattern: /\S/, hint: "auto, synthetic, celeba or a folder path" },
  "synthetic.count": { kind: "int", min: 1, max: 999_999 },
  "synthetic.identities": POSITIVE_INT,
  "synthetic.seed": SEED,
  imageSize: { kind: "int", min: 16, max: 1024 },
  resize: PRESET,
  limit: { kind: "int", min: 1, nullable: true },
  onBadImage: { kind: "choice", values: ["error", "skip"] },
  imageCache: { kind: "bool", auto: true },
  prefetchBatches: POSITIVE_INT,
  backend: { kind: "choice", values: ["auto", ...BACKEND_ORDER] },
  seed: SEED,
  "finetune.preset": PRESET,
  "finetune.epochs": POSITIVE_INT,
  "finetune.batchSize": { kind: "int", min: 2 },
  "finetune.chunkSize": POSITIVE_INT,
  "finetune.learningRate": { kind: "number", min: 0 },
  "finetune.temperature": { kind: "number", min: 1e-6 },
  "finetune.checkpointEvery": POSITIVE_INT,
  "finetune.maxSteps": { kind: "int", min: 1, nullable: true },
  "finetune.imagesPerPerson": { kind: "int", min: 1, nullable: true },
  "finetune.augment": { kind: "choice", values: ["auto", "on", "off"] },
  "finetune.batchNormImages": { kind: "int", min: 0, nullable: true },
  "finetune.heldOutPeople": { kind: "number", min: 0, max: 0.9 },
  "finetune.heldOutImages": { kind: "int", min: 2 },
  "finetune.evalEvery": { kind: "int", min: 1, nullable: true },
  "finetune.weights": { kind: "string" },
  "finetune.weightsRevision": { kind: "string", pattern: /^$|^[A-Za-z0-9._\/-]+$/, hint: 'a branch or tag like "main", or a 40-hex commit hash' },
  "finetune.engine": { kind: "choice", values: ENGINES },
  "embed.batchSize": POSITIVE_INT,
  "embed.engine": { kind: "choice", values: ENGINES },
  "sae.preset": PRESET,
  "sae.architecture": { kind: "choice", values: ["relu", "topk"], nullable: true },
  "sae.dictionarySize": POSITIVE_INT,
  "sae.l1": { kind: "number", min: 0, nullable: true },
  "sae.learningRate": { kind: "number", min: 0, nullable: true },
  "sae.weightDecay": { kind: "number", min: 0, nullable: true },
  "sae.batchSize": POSITIVE_INT,
  "sae.epochs": { kind: "int", min: 1, nullable: true },
  "sae.trainingRows": { kind: "int", min: 1, nullable: true },
  "sae.k": POSITIVE_INT,
  "sae.sweep": { kind: "string", pattern: /^$|^[0-9.eE+-]+(,[0-9.eE+-]+)*$/, hint: 'comma-separated numbers like "0.01,0.1,1", or ""' },
  "sae.engine": { kind: "choice", values: ENGINES },
  "inspect.features": FEATURES,
  "inspect.topImages": POSITIVE_INT,
  "inspect.normalize": { kind: "choice", values: ["rows", "raw"] },
  "inspect.rotationSample": POSITIVE_INT,
  "blindTest.features": FEATURES,
  "blindTest.rater": { kind: "choice", values: ["auto", "human"] },
  "blindTest.kinds": { kind: "string", pattern: /^auto$|^(dense|sparse|sparse-recommended)(,(dense|sparse|sparse-recommended))*$/, hint: '"auto" or kinds like "dense,sparse,sparse-recommended"' },
  "blindTest.seed": SEED,
  "export.title": { kind: "string", pattern: /\S/, hint: "a title" },
  "export.date": { kind: "string", pattern: /^$|^\d{4}-\d{2}-\d{2}$/, hint: 'YYYY-MM-DD, or "" for the day of the export' },
  "export.tags": { kind: "string" },
  "export.permalink": { kind: "string", pattern: /^$|^\//, hint: 'a path starting with "/", or ""' },
};

export const RUN_ENV = "CELEBA_SAE_RUN";

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

const isObject = (v: unknown): v is JsonObject => v !== null && typeof v === "object" && !Array.isArray(v);

function ruleText(rule: Rule): string {
  switch (rule.kind) {
    case "int":
    case "number": {
      const what = rule.kind === "int" ? "a whole number" : "a number";
      const range = rule.min !== undefined && rule.max !== undefined ? ` from ${rule.min} to ${rule.max}` : rule.min !== undefined ? ` ≥ ${rule.min}` : "";
      return `${what}${range}${rule.nullable ? " (or null)" : ""}`;
    }
    case "bool":
      return rule.auto === true ? "true, false or auto" : "true or false";
    case "string":
      return rule.hint ?? "text";
    case "choice":
      return `one of ${rule.values.join(", ")}${rule.nullable ? " (or null)" : ""}`;
  }
}

/** True when `value` satisfies `rule`. */
function satisfies(rule: Rule, value: unknown): boolean {
  switch (rule.kind) {
    case "int":
    case "number":
      if (value === null) return rule.nullable === true;
      return (
        typeof value === "number" &&
        Number.isFinite(value) &&
        (rule.kind === "number" || Number.isInteger(value)) &&
        (rule.min === undefined || value >= rule.min) &&
        (rule.max === undefined || value <= rule.max)
      );
    case "bool":
      return typeof value === "boolean" || (rule.auto === true && value === "auto");
    case "string":
      return typeof value === "string" && (rule.pattern === undefined || rule.pattern.test(value));
    case "choice":
      return (value === null && rule.nullable === true) || (typeof value === "string" && rule.values.includes(value));
  }
}

/** Parses one `--set` value for `rule` (numbers, booleans, null), leaving the check to `satisfies`. */
function parseValue(rule: Rule, raw: string): Json {
  if ((rule.kind === "int" || rule.kind === "number") && rule.nullable && ["null", "none", "all", ""].includes(raw)) return null;
  if (rule.kind === "choice" && rule.nullable && ["null", ""].includes(raw)) return null;
  if (rule.kind === "int" || rule.kind === "number") return raw.trim() === "" ? Number.NaN : Number(raw);
  if (rule.kind === "bool") return raw === "true" || raw === "1" ? true : raw === "false" || raw === "0" ? false : raw;
  return raw;
}

/** Copies `raw` over `base` key by key, refusing keys the config does not have. */
function merge(base: JsonObject, raw: JsonObject, prefix: string): JsonObject {
  const out: JsonObject = { ...base };
  for (const [key, value] of Object.entries(raw)) {
    const path = prefix ? `${prefix}.${key}` : key;
    if (!(key in base)) throw new Error(`config has no setting "${path}"`);
    const current = base[key];
    if (isObject(current)) {
      if (!isObject(value)) throw new Error(`config "${path}" must be an object of settings`);
      out[key] = merge(current, value, path);
    } else {
      out[key] = value;
    }
  }
  return out;
}

/** Every dotted key of the config, with its value. */
function leaves(value: JsonObject, prefix = ""): [string, Json][] {
  return Object.entries(value).flatMap(([k, v]) => (isObject(v) ? leaves(v, prefix ? `${prefix}.${k}` : k) : [[prefix ? `${prefix}.${k}` : k, v] as [string, Json]]));
}

/** Checks a parsed config (e.g. from config.json) setting by setting and fills missing settings with defaults. */
export function validateConfig(raw: unknown): RunConfig {
  if (!isObject(raw)) throw new Error("config must be a JSON object");
  const defaults = defaultConfig(typeof raw.run === "string" ? raw.run : "dev") as unknown as JsonObject;
  const merged = merge(defaults, raw, "");
  for (const [key, value] of leaves(merged)) {
    const rule = RULES[key];
    if (!satisfies(rule, value)) throw new Error(`config "${key}" must be ${ruleText(rule)}, got ${JSON.stringify(value)}`);
  }
  const config = merged as unknown as RunConfig;
  if (config.synthetic.identities > config.synthetic.count) {
    throw new Error(`config "synthetic.identities" (${config.synthetic.identities}) cannot exceed synthetic.count (${config.synthetic.count})`);
  }
  if (config.sae.architecture === "topk" && config.sae.k > config.sae.dictionarySize) {
    throw new Error(`config sae.k (${config.sae.k}) cannot exceed sae.dictionarySize (${config.sae.dictionarySize}): a TopK SAE keeps k of its features for each face`);
  }
  const features = Math.min(config.sae.dictionarySize, EMBEDDING_DIMENSIONS);
  const why = config.sae.dictionarySize <= EMBEDDING_DIMENSIONS ? `sae.dictionarySize is ${config.sae.dictionarySize}` : `the embedding has ${EMBEDDING_DIMENSIONS} dense dimensions`;
  for (const key of ["inspect.features", "blindTest.features"] as const) {
    const spec = key === "inspect.features" ? config.inspect.features : config.blindTest.features;
    const largest = largestFeature(spec, key);
    if (largest >= features) {
      throw new Error(
        `config ${key} = "${spec}" names feature ${largest}, but features run from 0 to ${features - 1} (${why}): ` +
          `pick features in that range, e.g. --set ${key}=0-${Math.min(15, features - 1)}`,
      );
    }
  }
  return config;
}

/** ResNet18's embedding width: the dense dimensions, which the inspect and blind-test feature numbers also index. */
export const EMBEDDING_DIMENSIONS = 512;

/** The largest number of a feature list such as "0-15,40", read without listing its numbers ("0-1000000000" is one range). */
function largestFeature(spec: string, where: string): number {
  let largest = 0;
  for (const part of spec.split(",")) {
    const bounds = part.split("-").map(Number);
    const [first, last] = [bounds[0], bounds[bounds.length - 1]];
    if (last < first) throw new Error(`feature range "${part}" in ${where} runs backwards: write the smaller number first`);
    largest = Math.max(largest, last);
  }
  return largest;
}

/** Applies `key=value` overrides (dotted keys, e.g. `synthetic.count=200`), checking keys and values. */
export function applyOverrides(config: RunConfig, assignments: readonly string[]): RunConfig {
  let raw = JSON.parse(JSON.stringify(config)) as JsonObject;
  for (const assignment of assignments) {
    const eq = assignment.indexOf("=");
    if (eq <= 0) throw new Error(`--set "${assignment}": write key=value, e.g. --set imageSize=64`);
    const key = assignment.slice(0, eq).trim();
    if (key === "run") throw new Error(`--set run=…: choose the run with --run NAME instead`);
    const rule = RULES[key];
    if (rule === undefined) {
      throw new Error(`--set ${key}: no such setting. Settings: ${Object.keys(RULES).filter((k) => k !== "run").join(", ")}`);
    }
    const value = parseValue(rule, assignment.slice(eq + 1).trim());
    if (!satisfies(rule, value)) throw new Error(`--set ${assignment}: ${key} takes ${ruleText(rule)}`);
    const parts = key.split(".");
    const patch: JsonObject = {};
    let node = patch;
    parts.slice(0, -1).forEach((p) => (node = node[p] = {}));
    node[parts[parts.length - 1]] = value;
    raw = merge(raw, patch, "");
  }
  return validateConfig(raw);
}

/** Writes runs/<run>/config.json atomically (temp file + rename). */
export function saveRunConfig(config: RunConfig): string {
  const path = runFiles(config.run).config;
  mkdirSync(runDir(config.run), { recursive: true });
  writeFileAtomicSync(path, JSON.stringify(config, null, 2) + "\n");
  return path;
}

/** Reads runs/<run>/config.json, or the defaults when the run has none yet (then saved, so the run is reproducible). */
export function loadRunConfig(run: string = process.env[RUN_ENV] ?? "dev"): RunConfig {
  const path = runFiles(run).config;
  if (!existsSync(path)) {
    const config = validateConfig(defaultConfig(run));
    saveRunConfig(config);
    return config;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new Error(`${path} is not valid JSON (${(e as Error).message}): fix it, or delete it to start from the defaults`);
  }
  try {
    return validateConfig({ ...(parsed as object), run });
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}. Fix it with npm run notebooks -- --run ${run} --set key=value, or delete it`);
  }
}

/** Feature numbers from "0-15" or "0,3,7" (as the inspect and blind-test settings write them). */
export function parseFeatureList(spec: string): number[] {
  const largest = largestFeature(spec, `"${spec}"`);
  if (largest > 1_000_000) throw new RangeError(`feature list "${spec}" names feature ${largest}: no SAE here has that many features`);
  return spec.split(",").flatMap((part) => {
    const [a, b] = part.split("-").map(Number);
    if (b === undefined) return [a];
    if (b < a) throw new Error(`feature range "${part}" runs backwards: write the smaller number first`);
    return Array.from({ length: b - a + 1 }, (_, i) => a + i);
  });
}

/** The folder a named dataset lives in: data/synthetic-…, data/celeba, or a user's path (relative to the project). */
export function datasetFolder(config: RunConfig, resolved: "synthetic" | "celeba" | "path"): string {
  if (resolved === "synthetic") {
    const s = config.synthetic;
    return join(dataDir(), `synthetic-faces-seed${s.seed}-n${s.count}-id${s.identities}`);
  }
  if (resolved === "celeba") return join(dataDir(), "celeba");
  return isAbsolute(config.dataset) ? config.dataset : resolve(projectRoot(), config.dataset);
}
