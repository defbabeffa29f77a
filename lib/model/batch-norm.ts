// BatchNorm's running statistics after training, recomputed with the final weights (the recommended preset).
//
// In training mode BatchNorm normalises with each batch's own statistics and keeps running averages (momentum 0.1)
// for evaluation. While the weights move fast — a short fine-tuning at Adam's 1e-3, from random initialisation — the
// averages trail them: each mixes the statistics of several past versions of the network, and the evaluated network
// (notebook 03 embeds in eval mode) is not the one that was trained. Current tools recompute them once the weights are
// final, over some training batches in training mode, as a plain average: torch.optim.swa_utils.update_bn, PreciseBN
// (fvcore/detectron2; Wu & Johnson, "Rethinking 'Batch' in BatchNorm", 2021). The post keeps the running averages.
//
// The running statistics never feed back into training (training mode uses the batch's own), so recomputing them
// changes what evaluation sees and nothing else.

import { tf } from "../kernels/backend";
import type { Preset } from "../run/config";
import { facesTensor, type FaceSet } from "./held-out";
import type { NativeTrainer } from "./onnx/train";
import type { ResNet18 } from "./resnet18";
import { BN_MOMENTUM } from "./resnet18-layout";
import { statisticsPass } from "./step";

const isRunning = (key: string): boolean => key.endsWith(".running_mean") || key.endsWith(".running_var");

function runningStatistics(model: ResNet18): Map<string, { values: Float32Array; shape: number[] }> {
  const dict = model.stateDict();
  try {
    return new Map([...dict].filter(([key]) => isRunning(key)).map(([key, t]) => [key, { values: Float32Array.from(t.dataSync() as Float32Array), shape: t.shape }]));
  } finally {
    tf.dispose([...dict.values()]);
  }
}

/**
 * Sets every BatchNorm's running mean and variance to the plain average of the batch statistics of `passes` under
 * the current weights (PyTorch's momentum=None, as update_bn does). Each pass is one training-mode forward pass of
 * one chunk, which moves the running statistics once: r ← (1 − m)·r + m·b, so its b is read back as
 * (r_after − (1 − m)·r_before) / m. Returns the number of passes averaged.
 */
export async function updateBatchNorm(model: ResNet18, passes: Iterable<() => Promise<void>>): Promise<number> {
  const m = BN_MOMENTUM;
  const sums = new Map<string, Float64Array>();
  let count = 0;
  let before = runningStatistics(model);
  for (const pass of passes) {
    await pass();
    const after = runningStatistics(model);
    for (const [key, { values }] of after) {
      const old = before.get(key)!.values;
      const sum = sums.get(key) ?? new Float64Array(values.length);
      for (let i = 0; i < values.length; i++) sum[i] += (values[i] - (1 - m) * old[i]) / m;
      sums.set(key, sum);
    }
    before = after;
    count++;
  }
  if (count === 0) return 0;
  const dict = model.stateDict();
  const averaged = new Map([...sums].map(([key, sum]) => [key, tf.tensor(Float32Array.from(sum, (v) => v / count), before.get(key)!.shape)]));
  try {
    model.loadStateDict(new Map([...dict].map(([key, t]) => [key, averaged.get(key) ?? t])));
  } finally {
    tf.dispose([...dict.values(), ...averaged.values()]);
  }
  return count;
}

/** updateBatchNorm over the faces of `set`, one chunk of at most `chunkSize` faces a pass, as training's chunks are
 *  normalised (lib/model/step statisticsPass, on ONNX Runtime when `native` is given). */
export async function updateBatchNormOn(model: ResNet18, set: FaceSet, options: { readonly preset: Preset; readonly chunkSize: number; readonly native?: NativeTrainer }): Promise<number> {
  const n = set.indices.length;
  const chunk = Math.max(1, options.chunkSize);
  const passes = Array.from({ length: Math.ceil(n / chunk) }, (_, c) => async (): Promise<void> => {
    const x = facesTensor(set, c * chunk, Math.min(n, (c + 1) * chunk));
    try {
      await statisticsPass(model, x, { ...options, chunkSize: chunk });
    } finally {
      x.dispose();
    }
  });
  return updateBatchNorm(model, passes);
}
