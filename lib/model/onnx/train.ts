// ResNet18 training passes on ONNX Runtime's native CPU kernels, where onnxruntime-node loads.
//
// TF.js on WASM trains a ResNet18 several times slower than PyTorch (bench/results.md has the numbers): 128-bit
// WASM SIMD against native AVX-512. onnxruntime-node runs any ONNX graph natively, so the training passes are written as ONNX graphs
// (lib/model/onnx/train-graph: forward on batch statistics, and the backward pass by hand) and run by it; TF.js keeps
// the model, the optimizer and everything else. A step's gradients equal the TF.js path's to float32 rounding
// (test/native-train.test.ts). Config `finetune.engine` picks: "auto" (this where onnxruntime-node loads, else
// TF.js), "onnxruntime" (must load), "tfjs".
//
// The data crosses once per pass: parameters and images are copied out of TF.js (its WASM memory is shared between
// threads, which onnxruntime-node does not accept), gradients and statistics are copied back in.

import { availableParallelism } from "node:os";
import { resnet18TrainModel, trainBatchNorms, trainParameterInputs, type TrainGraphKind, type TrainLoss } from "./train-graph";
import { createCpuSession, type OrtModule, type OrtSession, type OrtTensor } from "../../kernels/onnxruntime";
import type { MapSize } from "./export";

/** Named float32 arrays going in or out of a graph. */
export type Feeds = Record<string, { readonly data: Float32Array; readonly shape: readonly number[] }>;

/** Batch mean and biased variance of one BatchNorm in one pass, over `count` values per channel. */
export interface BatchStatistics {
  readonly name: string;
  readonly mean: Float32Array;
  readonly variance: Float32Array;
  readonly count: number;
}

export interface NativeStepResult {
  readonly loss: number;
  readonly contrastive: number;
  readonly orientation: number;
  /** Gradient of each parameter, in `parameterNames`' order. */
  readonly grads: Float32Array[];
  /** The straight pass's BatchNorm statistics, then the rotated pass's, in the network's order. */
  readonly statistics: readonly (readonly BatchStatistics[])[];
}

/** Runs the training graphs of one network width; sessions are made per image size (and loss) on first use. */
export interface NativeTrainer {
  /** "onnxruntime-node 1.30.0 (CPU, 2 threads)". */
  readonly description: string;
  /** The parameters the graphs take and give gradients of (torchvision names, model.trainableNames' order). */
  readonly parameterNames: readonly string[];
  /** A whole step on images x and their rotated copy (preprocessed NHWC): loss, gradients, batch statistics. */
  step(params: Feeds, x: Feeds[string], rotated: Feeds[string], targets: Feeds[string], loss: TrainLoss): Promise<NativeStepResult>;
  /** Embeddings ([n, 8·width]) and BatchNorm statistics of x. */
  forward(params: Feeds, x: Feeds[string]): Promise<{ embedding: Float32Array; statistics: BatchStatistics[] }>;
  /** The parameters' gradients of Σ embedding(x) ⊙ dEmbedding. */
  gradients(params: Feeds, x: Feeds[string], dEmbedding: Feeds[string]): Promise<Float32Array[]>;
  close(): Promise<void>;
}

/** A native trainer for a ResNet18 of this width (64: torchvision's). */
export function createNativeTrainer(engine: { readonly ort: OrtModule; readonly version: string }, width: number, threads: number = Math.max(1, availableParallelism())): NativeTrainer {
  const parameterNames = trainParameterInputs(width).map((p) => p.name);
  const sessions = new Map<string, Promise<OrtSession>>();
  const session = (size: MapSize, what: TrainGraphKind): Promise<OrtSession> => {
    const key = `${what.kind}:${size.height}x${size.width}:${what.kind === "step" ? `${what.loss.preset}:${what.loss.temperature}` : ""}`;
    let made = sessions.get(key);
    if (made === undefined) {
      made = createCpuSession(engine.ort, resnet18TrainModel(width, size, what), threads);
      sessions.set(key, made);
    }
    return made;
  };
  const tensors = (feeds: Feeds): Record<string, OrtTensor> =>
    Object.fromEntries(Object.entries(feeds).map(([name, f]) => [name, new engine.ort.Tensor("float32", f.data, f.shape)]));
  const output = (outputs: Record<string, OrtTensor>, name: string): Float32Array => {
    const data = outputs[name]?.data;
    if (!(data instanceof Float32Array)) throw new Error(`native training: the graph gave no float32 output "${name}"`);
    return data;
  };
  const sizeOf = (x: Feeds[string]): MapSize => ({ height: x.shape[1], width: x.shape[2] });
  const statistics = (outputs: Record<string, OrtTensor>, pass: number, x: Feeds[string]): BatchStatistics[] =>
    trainBatchNorms(width, sizeOf(x)).map(({ name, size }) => ({
      name,
      mean: output(outputs, `pass${pass}/${name}.batch_mean`),
      variance: output(outputs, `pass${pass}/${name}.batch_var`),
      count: x.shape[0] * size.height * size.width,
    }));
  const grads = (outputs: Record<string, OrtTensor>): Float32Array[] => parameterNames.map((name) => output(outputs, `${name}.grad`));
  let closed = false;
  const open = (what: string): void => {
    if (closed) throw new Error(`native training: ${what}() after close()`);
  };
  return {
    parameterNames,
    description: `onnxruntime-node ${engine.version} (CPU, ${threads} thread${threads === 1 ? "" : "s"})`,
    async step(params, x, rotated, targets, loss) {
      open("step");
      const s = await session(sizeOf(x), { kind: "step", loss });
      const out = await s.run(tensors({ ...params, x, x_rotated: rotated, targets }));
      return {
        loss: output(out, "loss")[0],
        contrastive: output(out, "contrastive")[0],
        orientation: output(out, "orientation")[0],
        grads: grads(out),
        statistics: [statistics(out, 0, x), statistics(out, 1, x)],
      };
    },
    async forward(params, x) {
      open("forward");
      const out = await (await session(sizeOf(x), { kind: "forward" })).run(tensors({ ...params, x }));
      return { embedding: output(out, "embedding"), statistics: statistics(out, 0, x) };
    },
    async gradients(params, x, dEmbedding) {
      open("gradients");
      const out = await (await session(sizeOf(x), { kind: "gradients" })).run(tensors({ ...params, x, d_embedding: dEmbedding }));
      return grads(out);
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const made of sessions.values()) await (await made).release();
    },
  };
}
