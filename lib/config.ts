// The one typed configuration of a run.
//
// A run is a folder `runs/<run>/` holding `config.json`, the artifacts of every step and the executed notebooks.
// The defaults reproduce the post; `npm run notebooks -- --run NAME --set key=value …` (or `applyOverrides`)
// changes single values, and the result is saved into the run folder, where every notebook of the run reads it.
// The run a notebook uses comes from CELEBA_SAE_RUN (set by the runner), else "dev" (JupyterLab by hand).

import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import { BACKEND_ORDER, type BackendChoice } from "./backend";
import { dataDir, projectRoot, runDir } from "./paths";

export interface SyntheticConfig {
  /** How many synthetic faces to generate. */
  readonly count: number;
  /** How many distinct people they show (each several times). */
  readonly identities: number;
  /** The generator's seed: same seed, same pictures. */
  readonly seed: number;
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
  readonly resize: "post" | "recommended";
  /** Use only the first N images in listing order (null: all). */
  readonly limit: number | null;
  /** What a corrupt or unreadable image does: stop with its name ("error") or be left out and counted ("skip"). */
  readonly onBadImage: "error" | "skip";
  /** Keep decoded images in a uint8 .npy cache so later passes don't decode JPEGs again. */
  readonly imageCache: boolean;
  /** Decoded batches kept ready ahead of the model. */
  readonly prefetchBatches: number;
  /** TF.js backend: "auto" picks the fastest that loads; CELEBA_SAE_BACKEND overrides. */
  readonly backend: BackendChoice;
  /** The run's seed for shuffling and initialisation. */
  readonly seed: number;
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
    imageCache: true,
    prefetchBatches: 2,
    backend: "auto",
    seed: 0,
  };
}

export const RUN_ENV = "CELEBA_SAE_RUN";

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** The dotted key paths of a config ("synthetic.count", "imageSize", …) with their default values. */
function leaves(value: Json, prefix = ""): Map<string, Json> {
  const out = new Map<string, Json>();
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) for (const [p, x] of leaves(v, prefix ? `${prefix}.${k}` : k)) out.set(p, x);
  } else {
    out.set(prefix, value);
  }
  return out;
}

const NULLABLE_NUMBERS = new Set(["limit"]);
const CHOICES: Record<string, readonly string[]> = {
  resize: ["post", "recommended"],
  onBadImage: ["error", "skip"],
  backend: ["auto", ...BACKEND_ORDER],
};

/** Parses one `--set` value to the type of the key's default, or explains what it should be. */
function parseValue(key: string, raw: string, example: Json): Json {
  if (NULLABLE_NUMBERS.has(key) && (raw === "null" || raw === "none" || raw === "all" || raw === "")) return null;
  if (typeof example === "number" || NULLABLE_NUMBERS.has(key)) {
    const n = Number(raw);
    if (raw.trim() === "" || !Number.isFinite(n)) throw new Error(`--set ${key}=${raw}: ${key} takes a number`);
    return n;
  }
  if (typeof example === "boolean") {
    if (raw === "true" || raw === "1") return true;
    if (raw === "false" || raw === "0") return false;
    throw new Error(`--set ${key}=${raw}: ${key} takes true or false`);
  }
  return raw;
}

function setPath(target: Record<string, Json>, path: string, value: Json): void {
  const parts = path.split(".");
  let node = target;
  for (const p of parts.slice(0, -1)) node = node[p] as Record<string, Json>;
  node[parts[parts.length - 1]] = value;
}

/** Applies `key=value` overrides (dotted keys, e.g. `synthetic.count=200`), checking keys and values. */
export function applyOverrides(config: RunConfig, assignments: readonly string[]): RunConfig {
  const copy = JSON.parse(JSON.stringify(config)) as Record<string, Json>;
  const known = leaves(JSON.parse(JSON.stringify(defaultConfig())) as Json);
  for (const assignment of assignments) {
    const eq = assignment.indexOf("=");
    if (eq <= 0) throw new Error(`--set "${assignment}": write key=value, e.g. --set imageSize=64`);
    const key = assignment.slice(0, eq).trim();
    if (key === "run") throw new Error(`--set run=…: choose the run with --run NAME instead`);
    if (!known.has(key)) throw new Error(`--set ${key}: no such setting. Settings: ${[...known.keys()].filter((k) => k !== "run").join(", ")}`);
    setPath(copy, key, parseValue(key, assignment.slice(eq + 1).trim(), known.get(key) ?? null));
  }
  return validateConfig(copy);
}

function fail(key: string, problem: string): never {
  throw new Error(`config "${key}" ${problem}`);
}

function positiveInt(key: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 1) fail(key, `must be a whole number ≥ 1, got ${JSON.stringify(v)}`);
  return v;
}

function choice<T extends string>(key: string, v: unknown): T {
  const allowed = CHOICES[key];
  if (typeof v !== "string" || !allowed.includes(v)) fail(key, `must be one of ${allowed.join(", ")}, got ${JSON.stringify(v)}`);
  return v as T;
}

/** Checks a parsed config (e.g. from config.json) field by field and fills missing fields with defaults. */
export function validateConfig(raw: unknown): RunConfig {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw new Error("config must be a JSON object");
  const d = defaultConfig();
  const r = { ...d, ...(raw as Partial<RunConfig>) };
  const s = { ...d.synthetic, ...(r.synthetic ?? {}) };
  if (typeof r.run !== "string" || !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(r.run)) {
    fail("run", `must be a folder name of letters, digits, ".", "_" or "-", got ${JSON.stringify(r.run)}`);
  }
  if (typeof r.dataset !== "string" || r.dataset.trim() === "") fail("dataset", "must be auto, synthetic, celeba or a folder path");
  if (r.limit !== null) positiveInt("limit", r.limit);
  if (typeof r.imageCache !== "boolean") fail("imageCache", "must be true or false");
  if (typeof r.seed !== "number" || !Number.isInteger(r.seed)) fail("seed", "must be a whole number");
  if (typeof s.seed !== "number" || !Number.isInteger(s.seed)) fail("synthetic.seed", "must be a whole number");
  const imageSize = positiveInt("imageSize", r.imageSize);
  if (imageSize < 16 || imageSize > 1024) fail("imageSize", `must be between 16 and 1024, got ${imageSize}`);
  const synthetic: SyntheticConfig = {
    count: positiveInt("synthetic.count", s.count),
    identities: positiveInt("synthetic.identities", s.identities),
    seed: s.seed,
  };
  if (synthetic.identities > synthetic.count) fail("synthetic.identities", `(${synthetic.identities}) cannot exceed synthetic.count (${synthetic.count})`);
  return {
    run: r.run,
    dataset: r.dataset.trim(),
    synthetic,
    imageSize,
    resize: choice("resize", r.resize),
    limit: r.limit,
    onBadImage: choice("onBadImage", r.onBadImage),
    imageCache: r.imageCache,
    prefetchBatches: positiveInt("prefetchBatches", r.prefetchBatches),
    backend: choice("backend", r.backend),
    seed: r.seed,
  };
}

export function configPath(run: string): string {
  return join(runDir(run), "config.json");
}

/** Writes runs/<run>/config.json atomically (temp file + rename). */
export function saveRunConfig(config: RunConfig): string {
  const path = configPath(config.run);
  mkdirSync(runDir(config.run), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(config, null, 2) + "\n");
  renameSync(tmp, path);
  return path;
}

/** Reads runs/<run>/config.json, or the defaults when the run has none yet (then saved, so the run is reproducible). */
export function loadRunConfig(run: string = process.env[RUN_ENV] ?? "dev"): RunConfig {
  const path = configPath(run);
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

/** The folder a named dataset lives in: data/synthetic-…, data/celeba, or a user's path (relative to the project). */
export function datasetFolder(config: RunConfig, resolved: "synthetic" | "celeba" | "path"): string {
  if (resolved === "synthetic") {
    const s = config.synthetic;
    return join(dataDir(), `synthetic-faces-seed${s.seed}-n${s.count}-id${s.identities}`);
  }
  if (resolved === "celeba") return join(dataDir(), "celeba");
  return isAbsolute(config.dataset) ? config.dataset : resolve(projectRoot(), config.dataset);
}
