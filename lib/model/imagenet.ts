// torchvision's ImageNet normalisation: what its pretrained weights were trained with. The `recommended` preset
// normalises its inputs with it (lib/model/finetune `preprocess`), inside TF.js or inside the exported ONNX graph
// (lib/embed/onnx-embed `presetNormalization`).

export const IMAGENET_MEAN: readonly number[] = [0.485, 0.456, 0.406];
export const IMAGENET_STD: readonly number[] = [0.229, 0.224, 0.225];
