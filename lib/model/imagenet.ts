// torchvision's ImageNet normalisation: what its pretrained weights were trained with. The `recommended` preset
// normalises its inputs with it (lib/model/finetune `preprocess`), inside TF.js or inside the exported ONNX graph
// (`presetNormalization` below).

import type { Preset } from "../run/config";

export const IMAGENET_MEAN: readonly number[] = [0.485, 0.456, 0.406];
export const IMAGENET_STD: readonly number[] = [0.229, 0.224, 0.225];

/** The preprocessing of a preset (lib/model/finetune `preprocess`) as the exporter's in-graph normalisation. */
export function presetNormalization(preset: Preset): { mean: readonly number[]; std: readonly number[] } | null {
  return preset === "post" ? null : { mean: IMAGENET_MEAN, std: IMAGENET_STD };
}
