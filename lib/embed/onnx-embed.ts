// Embedding through onnxruntime-node, where it is installed.
//
// onnxruntime-node is an optional dependency (its CPU library ships inside the npm package). When it loads, the
// fine-tuned ResNet18 is exported to ONNX (lib/model/onnx/export: BatchNorm folded, preprocessing inside the graph) and
// run by ONNX Runtime's CPU execution provider on every core, 5–7× faster than TF.js's WASM backend here
// (native AVX-512 kernels against 128-bit WASM SIMD); its outputs equal `embedBatch`'s to float32 rounding. When it
// does not load, the TF.js path embeds.
// The run config's `embed.engine` picks: "auto" (ONNX Runtime when it loads, else TF.js), "onnxruntime" (must
// load, else an error naming the fix), "tfjs".
//
// Only the few calls used here are typed below (structurally), so this file compiles and runs where the package
// is missing, and tests can pass a fake.

import { renameSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import type { EmbedEngineChoice, Preset } from "../run/config";
import { IMAGENET_MEAN, IMAGENET_STD } from "../model/imagenet";
import type { ImageBatch } from "../data/image-loader";
import { temporaryPathFor } from "../formats/npy";
import { plainStateDict, resnet18ToOnnx } from "../model/onnx/export";
import { requireFromProject } from "../util/project-require";
import type { ResNet18 } from "../model/resnet18";

export const ONNXRUNTIME_PACKAGE = "onnxruntime-node";

// ---------------------------------------------------------------------------------------------------------------
// The part of onnxruntime-node's API used here

export interface OrtTensor {
  readonly data: unknown;
  readonly dims: readonly number[];
}

export interface OrtSessionOptions {
  readonly executionProviders: readonly string[];
  readonly intraOpNumThreads: number;
  readonly interOpNumThreads: number;
  readonly graphOptimizationLevel: "disabled" | "basic" | "extended" | "all";
}

export interface OrtSession {
  run(feeds: Record<string, OrtTensor>): Promise<Record<string, OrtTensor>>;
  release(): Promise<void>;
}

export interface OrtModule {
  readonly InferenceSession: { create(model: Uint8Array, options: OrtSessionOptions): Promise<OrtSession> };
  readonly Tensor: new (type: "float32", data: Float32Array, dims: readonly number[]) => OrtTensor;
  readonly env: { readonly versions?: { readonly node?: string; readonly common?: string } };
}

/** Loading onnxruntime-node gave the module and its version, or why not. */
export type OrtLoad = { readonly ok: true; readonly ort: OrtModule; readonly version: string } | { readonly ok: false; readonly reason: string };

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split("\n")[0].slice(0, 200);
}

/** Requires onnxruntime-node from the project's node_modules (`load` replaces `require`, for tests). */
export function loadOnnxRuntime(load: (id: string) => unknown = (id) => requireFromProject()(id)): OrtLoad {
  let ort: OrtModule;
  try {
    ort = load(ONNXRUNTIME_PACKAGE) as OrtModule;
  } catch (e) {
    const missing = e instanceof Error && (e as NodeJS.ErrnoException).code === "MODULE_NOT_FOUND" && e.message.includes(`'${ONNXRUNTIME_PACKAGE}'`);
    return { ok: false, reason: missing ? `${ONNXRUNTIME_PACKAGE} is not installed` : `${ONNXRUNTIME_PACKAGE} does not load (${firstLine(e)})` };
  }
  if (typeof ort?.InferenceSession?.create !== "function" || typeof ort.Tensor !== "function") {
    return { ok: false, reason: `${ONNXRUNTIME_PACKAGE} loaded but has no InferenceSession/Tensor API` };
  }
  return { ok: true, ort, version: ort.env?.versions?.node ?? ort.env?.versions?.common ?? "(unknown version)" };
}

// ---------------------------------------------------------------------------------------------------------------
// Which engine embeds

/** The engine that will embed: ONNX Runtime (with its module), or TF.js and why. */
export type EmbedEngine =
  | { readonly name: "onnxruntime"; readonly ort: OrtModule; readonly version: string }
  | { readonly name: "tfjs"; readonly why: string };

/**
 * Picks the engine: "tfjs" is TF.js; "onnxruntime" must load (else an error saying how to install it); "auto"
 * takes ONNX Runtime when it loads and TF.js otherwise, saying why.
 */
export function chooseEmbedEngine(choice: EmbedEngineChoice, load: () => OrtLoad = () => loadOnnxRuntime(), setting = "embed.engine"): EmbedEngine {
  if (choice === "tfjs") return { name: "tfjs", why: `${setting} is tfjs` };
  const loaded = load();
  if (loaded.ok === true) return { name: "onnxruntime", ort: loaded.ort, version: loaded.version };
  const reason = loaded.ok === false ? loaded.reason : "it did not load";
  if (choice === "onnxruntime") {
    throw new Error(
      `${setting} is "onnxruntime" but ${reason}: install it with \`npm install ${ONNXRUNTIME_PACKAGE}\` in the project folder, ` +
        `or set ${setting}=auto (ONNX Runtime when it loads, else TF.js) or ${setting}=tfjs.`,
    );
  }
  return { name: "tfjs", why: reason };
}

/** How many threads ONNX Runtime uses within an operator: every core. */
export function onnxThreads(): number {
  return Math.max(1, availableParallelism());
}

/** One line for people: "onnxruntime-node 1.30.0 (CPU, 2 threads)" or "TF.js wasm: onnxruntime-node is not installed". */
export function describeEmbedEngine(engine: EmbedEngine, tfBackend: string, threads: number = onnxThreads()): string {
  if (engine.name === "onnxruntime") return `${ONNXRUNTIME_PACKAGE} ${engine.version} (CPU, ${threads} thread${threads === 1 ? "" : "s"})`;
  return `TF.js ${tfBackend}: ${engine.why}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Embedding with a session

/** Embeds image batches with one engine; `close` frees what it holds (not the model). */
export interface Embedder {
  readonly engine: "onnxruntime" | "tfjs";
  /** Which engine embeds and why, e.g. "onnxruntime-node 1.30.0 (CPU, 2 threads)". */
  readonly description: string;
  /** The batch's embeddings, row after row ([n, embeddingSize]), as `embedBatch` computes them. */
  embed(batch: ImageBatch): Promise<Float32Array>;
  close(): Promise<void>;
}

export interface OnnxEmbedderOptions {
  /** Write the exported model here as well (atomically), e.g. runs/<run>/resnet18.onnx, for reuse elsewhere. */
  readonly savePath?: string;
  /** Intra-op threads (default: every core). */
  readonly threads?: number;
  /** Extra metadata stored in the ONNX file. */
  readonly metadata?: Readonly<Record<string, string>>;
  /**
   * The side of the square images it will embed (the run's imageSize). Each image size gets a session of its own
   * whose graph is fixed to it (lib/model/onnx/export `imageSize`: at 64 px layer4's convolutions run as matrix products,
   * 60 ms instead of 88 for 64 images); this one is made at once, others at their first batch. Without it, the one
   * session takes any size.
   */
  readonly imageSize?: number;
}

/**
 * `data` in memory ONNX Runtime accepts: onnxruntime-node refuses memory shared between threads ("Invalid
 * argument"), which is where lib/data/decode-pool writes batches and TF.js's threaded WASM backend keeps tensors, so
 * such data is copied; other data goes as it is.
 */
export function unsharedFloat32(data: Float32Array): Float32Array {
  return data.buffer instanceof SharedArrayBuffer ? data.slice() : data;
}

/** A session of ONNX Runtime's CPU provider on `threads` threads within each operator, every graph optimisation. */
export function createCpuSession(ort: OrtModule, model: Uint8Array, threads: number): Promise<OrtSession> {
  return ort.InferenceSession.create(model, { executionProviders: ["cpu"], intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: "all" });
}

/** The preprocessing of a preset (lib/model/finetune `preprocess`) as the exporter's in-graph normalisation. */
export function presetNormalization(preset: Preset): { mean: readonly number[]; std: readonly number[] } | null {
  return preset === "post" ? null : { mean: IMAGENET_MEAN, std: IMAGENET_STD };
}

function writeAtomic(path: string, bytes: Uint8Array): void {
  const temp = temporaryPathFor(path);
  writeFileSync(temp, bytes);
  renameSync(temp, path);
}

/**
 * The model exported to ONNX in ONNX Runtime sessions (CPU, all graph optimisations, every core), one per image
 * size (see OnnxEmbedderOptions.imageSize). The saved file takes any size.
 */
export async function createOnnxEmbedder(model: ResNet18, preset: Preset, engine: { readonly ort: OrtModule; readonly version: string }, options: OnnxEmbedderOptions = {}): Promise<Embedder> {
  const state = plainStateDict(model);
  const exportOptions = { normalize: presetNormalization(preset), metadata: { preset, ...(options.metadata ?? {}) } };
  if (options.savePath !== undefined) writeAtomic(options.savePath, resnet18ToOnnx(state, exportOptions));
  const threads = options.threads ?? onnxThreads();
  // by "<height>x<width>", or "any" for the one session of an embedder made without an image size
  const sessions = new Map<string, OrtSession>();
  const sized = options.imageSize !== undefined;
  const sessionFor = async (size: { height: number; width: number } | null): Promise<OrtSession> => {
    const key = size === null ? "any" : `${size.height}x${size.width}`;
    let session = sessions.get(key);
    if (session === undefined) {
      session = await createCpuSession(engine.ort, resnet18ToOnnx(state, { ...exportOptions, imageSize: size ?? undefined }), threads);
      sessions.set(key, session);
    }
    return session;
  };
  await sessionFor(options.imageSize === undefined ? null : { height: options.imageSize, width: options.imageSize });
  const dim = model.embeddingSize;
  let closed = false;
  return {
    engine: "onnxruntime",
    description: describeEmbedEngine({ name: "onnxruntime", ort: engine.ort, version: engine.version }, "", threads),
    async embed(batch: ImageBatch): Promise<Float32Array> {
      if (closed) throw new Error("ONNX embedder: embed() after close()");
      const n = batch.shape[0];
      const session = await sessionFor(sized ? { height: batch.shape[1], width: batch.shape[2] } : null);
      // a batch in shared memory is copied: a few ms, against the model's hundreds
      const outputs = await session.run({ images: new engine.ort.Tensor("float32", unsharedFloat32(batch.data), batch.shape) });
      const out = outputs.embedding;
      if (out === undefined || !(out.data instanceof Float32Array) || out.data.length !== n * dim) {
        throw new Error(`ONNX embedder: expected a float32 [${n}, ${dim}] output "embedding", got [${out?.dims.join(", ") ?? "nothing"}]`);
      }
      return out.data;
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      for (const session of sessions.values()) await session.release();
    },
  };
}
