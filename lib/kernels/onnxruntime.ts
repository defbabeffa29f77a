// ONNX Runtime (onnxruntime-node) as an engine for the heavy passes: loading the optional package, the choice of
// engine for each heavy stage (`embed.engine`, `finetune.engine`: the fastest that loads — TF.js on a GPU, else
// ONNX Runtime's native CPU kernels, else TF.js on tfjs-node or WASM), and the CPU sessions that embedding
// (lib/embed/onnx-embed) and native fine-tuning (lib/model/onnx/train) open.
//
// onnxruntime-node is an optional dependency (its CPU library ships inside the npm package). Only the few calls used
// here are typed below (structurally), so this file compiles and runs where the package is missing, and tests can
// pass a fake.

import { availableParallelism } from "node:os";
import type { EngineChoice } from "./backend-names";
import { selectedBackend } from "./backend";
import { requireFromProject } from "../util/project";

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
export type Engine =
  | { readonly name: "onnxruntime"; readonly ort: OrtModule; readonly version: string }
  | { readonly name: "tfjs"; readonly why: string };

/** What TF.js runs on, as the engine choice needs it. */
export interface TfjsOn {
  readonly backend: string;
  /** A GPU in use (tfjs-node-gpu seeing a CUDA device). */
  readonly gpu: boolean;
}

/** The TF.js backend this process selected (lib/kernels/backend `initBackend`), or "none yet". */
export function tfjsOn(): TfjsOn {
  const report = selectedBackend();
  return report === undefined ? { backend: "none yet", gpu: false } : { backend: report.name, gpu: report.gpu };
}

/**
 * Picks the engine of a heavy stage. "tfjs" is TF.js; "onnxruntime" must load (else an error saying how to install
 * it); "auto" is the fastest that loads: TF.js when it runs on a GPU, else ONNX Runtime's native CPU kernels when
 * onnxruntime-node loads, else TF.js on its CPU backend (tfjs-node, then WASM) — saying why.
 */
export function chooseEngine(choice: EngineChoice, load: () => OrtLoad = () => loadOnnxRuntime(), setting = "embed.engine", tfjs: TfjsOn = tfjsOn()): Engine {
  if (choice === "tfjs") return { name: "tfjs", why: `${setting} is tfjs` };
  if (choice === "auto" && tfjs.gpu) return { name: "tfjs", why: `it runs on the GPU, faster than ONNX Runtime on the CPU (${setting} is auto)` };
  const loaded = load();
  if (loaded.ok === true) return { name: "onnxruntime", ort: loaded.ort, version: loaded.version };
  const reason = loaded.ok === false ? loaded.reason : "it did not load";
  if (choice === "onnxruntime") {
    throw new Error(
      `${setting} is "onnxruntime" but ${reason}: install it with \`npm install ${ONNXRUNTIME_PACKAGE}\` in the project folder, ` +
        `or set ${setting}=auto (the fastest engine that loads) or ${setting}=tfjs.`,
    );
  }
  return { name: "tfjs", why: reason };
}

/** How many threads ONNX Runtime uses within an operator: every core. */
export function onnxThreads(): number {
  return Math.max(1, availableParallelism());
}

/** One line for people: "onnxruntime-node 1.30.0 (CPU, 2 threads)" or "TF.js wasm: onnxruntime-node is not installed". */
export function describeEngine(engine: Engine, tfBackend: string, threads: number = onnxThreads()): string {
  if (engine.name === "onnxruntime") return `${ONNXRUNTIME_PACKAGE} ${engine.version} (CPU, ${threads} thread${threads === 1 ? "" : "s"})`;
  return `TF.js ${tfBackend}: ${engine.why}`;
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
