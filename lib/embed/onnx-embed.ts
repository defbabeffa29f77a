// Embedding through onnxruntime-node, where it is installed.
//
// onnxruntime-node is an optional dependency (its CPU library ships inside the npm package). When it loads, the
// fine-tuned ResNet18 is exported to ONNX (lib/model/onnx/export: BatchNorm folded, preprocessing inside the graph) and
// run by ONNX Runtime's CPU execution provider on every core, several times faster than TF.js's WASM backend
// (native AVX-512 kernels against 128-bit WASM SIMD; bench/results.md); its outputs equal `embedBatch`'s to float32 rounding. When it
// does not load, the TF.js path embeds.
// The run config's `embed.engine` picks: "auto" (ONNX Runtime when it loads, else TF.js), "onnxruntime" (must
// load, else an error naming the fix), "tfjs".
//
// Loading ONNX Runtime, the engine choice and the sessions: lib/kernels/onnxruntime.

import type { Preset } from "../run/config";
import { presetNormalization } from "../model/imagenet";
import { createCpuSession, describeEngine, onnxThreads, unsharedFloat32, type OrtModule, type OrtSession } from "../kernels/onnxruntime";
import type { ImageBatch } from "../data/image-loader";
import { writeFileAtomicSync } from "../util/atomic-write";
import { plainStateDict, resnet18ToOnnx } from "../model/onnx/export";
import type { ResNet18 } from "../model/resnet18";

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
   * which is faster); this one is made at once, others at their first batch. Without it, the one
   * session takes any size.
   */
  readonly imageSize?: number;
}

/**
 * The model exported to ONNX in ONNX Runtime sessions (CPU, all graph optimisations, every core), one per image
 * size (see OnnxEmbedderOptions.imageSize). The saved file takes any size.
 */
export async function createOnnxEmbedder(model: ResNet18, preset: Preset, engine: { readonly ort: OrtModule; readonly version: string }, options: OnnxEmbedderOptions = {}): Promise<Embedder> {
  const state = plainStateDict(model);
  const exportOptions = { normalize: presetNormalization(preset), metadata: { preset, ...(options.metadata ?? {}) } };
  if (options.savePath !== undefined) writeFileAtomicSync(options.savePath, resnet18ToOnnx(state, exportOptions));
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
    description: describeEngine({ name: "onnxruntime", ort: engine.ort, version: engine.version }, "", threads),
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
