// torchvision's ResNet18 as data: its constants, the architecture at a width (the stem, eight BasicBlocks, which
// convolutions downsample) and its state_dict entries with PyTorch's names and shapes, in torchvision's order.
// lib/model/resnet18 runs it; lib/model/onnx/export and onnx/train-graph write it as ONNX graphs.

/** torchvision's BatchNorm2d defaults. */
export const BN_EPS = 1e-5;
export const BN_MOMENTUM = 0.1;
/** torchvision's resnet18 base width. */
export const RESNET18_WIDTH = 64;

/** The parameter of a state_dict entry: what it is, its PyTorch shape. */
export interface StateDictEntry {
  readonly name: string;
  readonly kind: "conv" | "bn-weight" | "bn-bias" | "bn-mean" | "bn-var" | "bn-count";
  /** PyTorch's shape (OIHW for conv weights). */
  readonly shape: readonly number[];
}

/** One convolution of the architecture: its state_dict prefix, kernel, channels, stride and (symmetric) padding. */
export interface ConvLayout {
  readonly name: string;
  readonly kernel: number;
  readonly inChannels: number;
  readonly outChannels: number;
  readonly stride: number;
  readonly pad: number;
}

/** One BasicBlock: two convolutions with their BatchNorms, and the downsampling shortcut where shapes change. */
export interface BlockLayout {
  readonly prefix: string;
  readonly conv1: ConvLayout;
  readonly bn1: string;
  readonly conv2: ConvLayout;
  readonly bn2: string;
  readonly downsample?: { readonly conv: ConvLayout; readonly bn: string };
}

/** The whole network: the stem (conv1, bn1, relu, maxpool 3×3/2 pad 1) and the eight blocks, in order. */
export interface ResNet18Layout {
  readonly stem: ConvLayout;
  readonly stemBn: string;
  readonly blocks: readonly BlockLayout[];
}

/** The architecture at this width, as `apply` runs it (for exporters such as lib/model/onnx/export). */
export function resnet18Layout(width: number = RESNET18_WIDTH): ResNet18Layout {
  const conv = (name: string, kernel: number, inChannels: number, outChannels: number, stride: number): ConvLayout => ({
    name,
    kernel,
    inChannels,
    outChannels,
    stride,
    pad: (kernel - 1) / 2,
  });
  const blocks: BlockLayout[] = [];
  let channels = width;
  for (let stage = 1; stage <= 4; stage++) {
    const out = width * 2 ** (stage - 1);
    for (let b = 0; b < 2; b++) {
      const prefix = `layer${stage}.${b}`;
      const stride = stage > 1 && b === 0 ? 2 : 1;
      const needsDownsample = stride !== 1 || channels !== out;
      blocks.push({
        prefix,
        conv1: conv(`${prefix}.conv1`, 3, channels, out, stride),
        bn1: `${prefix}.bn1`,
        conv2: conv(`${prefix}.conv2`, 3, out, out, 1),
        bn2: `${prefix}.bn2`,
        downsample: needsDownsample ? { conv: conv(`${prefix}.downsample.0`, 1, channels, out, stride), bn: `${prefix}.downsample.1` } : undefined,
      });
      channels = out;
    }
  }
  return { stem: conv("conv1", 7, 3, width, 2), stemBn: "bn1", blocks };
}

/** Every state_dict entry of torchvision's resnet18 at this width except fc.*, in torchvision's order. */
export function resnet18StateDictLayout(width: number = RESNET18_WIDTH): StateDictEntry[] {
  const entries: StateDictEntry[] = [];
  const conv = (c: ConvLayout): void => {
    entries.push({ name: `${c.name}.weight`, kind: "conv", shape: [c.outChannels, c.inChannels, c.kernel, c.kernel] });
  };
  const bn = (name: string, channels: number): void => {
    entries.push(
      { name: `${name}.weight`, kind: "bn-weight", shape: [channels] },
      { name: `${name}.bias`, kind: "bn-bias", shape: [channels] },
      { name: `${name}.running_mean`, kind: "bn-mean", shape: [channels] },
      { name: `${name}.running_var`, kind: "bn-var", shape: [channels] },
      { name: `${name}.num_batches_tracked`, kind: "bn-count", shape: [] },
    );
  };
  const layout = resnet18Layout(width);
  conv(layout.stem);
  bn(layout.stemBn, width);
  for (const block of layout.blocks) {
    conv(block.conv1);
    bn(block.bn1, block.conv1.outChannels);
    conv(block.conv2);
    bn(block.bn2, block.conv2.outChannels);
    if (block.downsample !== undefined) {
      conv(block.downsample.conv);
      bn(block.downsample.bn, block.downsample.conv.outChannels);
    }
  }
  return entries;
}
