// Does a feature still respond to a face turned upside down? The fine-tuning (notebook 02) showed the model every
// face upright and turned 180°, with a loss on how their embeddings relate; here the fine-tuned model embeds a
// sample of faces and their rotated copies, and each feature's activations on both are correlated across the sample.

import { existsSync } from "node:fs";
import { tf, tidyValues } from "../kernels/backend";
import { loadImages } from "../data/datasets";
import type { ImageDataset } from "../data/image-dataset";
import { createEmbedder } from "../embed/embed";
import type { Embedder } from "../embed/onnx-embed";
import { loadResNet18 } from "../model/resnet18";
import { ProgressBar } from "../display/progress";
import type { RunConfig } from "../run/config";
import { runFiles } from "../run/files";
import { displayPath } from "../util/project";
import { normalizeRows, type FeatureEncoder } from "./top-activations";

/** Per feature, the correlation across faces of its activation on the face and on the face turned 180°. */
export interface RotationConsistency {
  readonly images: number;
  readonly dense: Float64Array;
  /** Each encoder's features, by the name it was given. */
  readonly encoded: Readonly<Record<string, Float64Array>>;
}

/** Pearson correlation of each column of a with the same column of b (rows × width, row-major); NaN if constant. */
export function columnCorrelations(a: Float32Array, b: Float32Array, rows: number, width: number): Float64Array {
  const out = new Float64Array(width);
  for (let j = 0; j < width; j++) {
    let ma = 0;
    let mb = 0;
    for (let i = 0; i < rows; i++) {
      ma += a[i * width + j];
      mb += b[i * width + j];
    }
    ma /= rows;
    mb /= rows;
    let sab = 0;
    let saa = 0;
    let sbb = 0;
    for (let i = 0; i < rows; i++) {
      const da = a[i * width + j] - ma;
      const db = b[i * width + j] - mb;
      sab += da * db;
      saa += da * da;
      sbb += db * db;
    }
    out[j] = saa > 0 && sbb > 0 ? sab / Math.sqrt(saa * sbb) : Number.NaN;
  }
  return out;
}

/** NHWC images turned 180° (height and width reversed: torch.rot90(x, 2) as the fine-tuning does). */
export function rotate180Nhwc(data: Float32Array, shape: readonly [number, number, number, number]): Float32Array {
  const [n, h, w, c] = shape;
  const out = new Float32Array(data.length);
  for (let k = 0; k < n; k++) {
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const from = ((k * h + y) * w + x) * c;
        const to = ((k * h + (h - 1 - y)) * w + (w - 1 - x)) * c;
        for (let ch = 0; ch < c; ch++) out[to + ch] = data[from + ch];
      }
    }
  }
  return out;
}

/**
 * How each feature behaves when the face is turned 180°, the transformation the fine-tuning's orientation loss
 * uses: the fine-tuned model embeds a sample of faces (config.inspect.rotationSample, evenly spread) and their
 * rotated copies once; both are normalised per row (and encoded by each SAE for its features) as the post's grids, and each feature's activations on originals and
 * rotated copies are correlated across the sample. Near 1: the feature ignores orientation; near 0 or below: it
 * responds to it.
 */
export async function rotationConsistency(
  config: RunConfig,
  dataset: ImageDataset,
  encoders: Readonly<Record<string, FeatureEncoder>>,
  options: { sample?: number; batchSize?: number } = {},
): Promise<RotationConsistency> {
  const path = runFiles(config.run).model;
  if (!existsSync(path)) throw new Error(`${displayPath(path)} does not exist: run notebook 02-finetune first`);
  const model = await loadResNet18(path);
  const count = Math.min(options.sample ?? config.inspect.rotationSample, dataset.count);
  const indices = Array.from({ length: count }, (_, i) => Math.floor((i * dataset.count) / count));
  const batchSize = options.batchSize ?? config.embed.batchSize;
  const d = model.embeddingSize;
  const original = new Float32Array(count * d);
  const rotated = new Float32Array(count * d);
  // The engine notebook 03 embedded with (config embed.engine): ONNX Runtime where it is installed, else TF.js.
  let embedder: Embedder;
  try {
    embedder = await createEmbedder(model, config.finetune.preset, config.embed.engine, { imageSize: config.imageSize });
  } catch (error) {
    model.dispose();
    throw error;
  }
  const bar = new ProgressBar({ total: count, desc: "Rotation consistency", unit: "faces" });
  try {
    for (let start = 0; start < count; start += batchSize) {
      const batch = await loadImages(dataset, indices.slice(start, start + batchSize), config);
      original.set(await embedder.embed(batch), start * d);
      const turned = { ...batch, data: rotate180Nhwc(batch.data, batch.shape) };
      rotated.set(await embedder.embed(turned), start * d);
      bar.update(batch.indices.length);
    }
  } finally {
    bar.close();
    await embedder.close();
    model.dispose();
  }
  const correlate = (encoder: FeatureEncoder): Float64Array => {
    const encode = (x: Float32Array): { data: Float32Array; width: number } => {
      const data = tidyValues(() => encoder.encode(tf.tensor2d(x, [count, d])));
      const width = count > 0 ? data.length / count : 0;
      return { data: normalizeRows(data, width), width };
    };
    const a = encode(original);
    const b = encode(rotated);
    return columnCorrelations(a.data, b.data, count, a.width);
  };
  const encoded = Object.fromEntries(Object.entries(encoders).map(([name, encoder]) => [name, correlate(encoder)]));
  normalizeRows(original, d);
  normalizeRows(rotated, d);
  return { images: count, dense: columnCorrelations(original, rotated, count, d), encoded };
}
