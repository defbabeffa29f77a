// ResNet18's training passes as ONNX graphs, for ONNX Runtime's native CPU kernels (lib/model/onnx/train runs them).
//
// Three kinds of graph per image size, each taking the preprocessed NHWC images `x` [batch, h, w, 3] and every
// trainable parameter under its torchvision name, in TF.js's layouts (conv weights HWIO, BatchNorm weight and bias):
//   • forward: BatchNorm on batch statistics (PyTorch's train mode) → `embedding` [batch, 8·width], and each
//     BatchNorm's batch mean and biased variance (`pass0/<bn>.batch_mean`, `…batch_var`) for its running statistics;
//   • gradients: the same forward pass again, then back-propagation of `d_embedding` [batch, 8·width] (the loss's
//     gradient with respect to the embeddings) → `<param>.grad` for every parameter, in its own layout;
//   • step (a batch in one chunk): `x` and its rotated copy `x_rotated` through the network, the fine-tuning loss
//     on `targets` → `loss`, `contrastive`, `orientation`, every `<param>.grad` (both passes summed) and both
//     passes' statistics (`pass0/…`, `pass1/…`).
// Chunked batches use the first two (lib/model/finetune `nativeBatchGradients`), whole ones the third.
// The backward pass is written out by hand, op by op (ONNX has no autodiff):
//   • conv, input gradient: stride 1 — a convolution of dy with the filter flipped in space and transposed;
//     stride 2 — ConvTranspose with the filter as it is (output padding making the input's size);
//   • conv, filter gradient: one convolution of the input with batch and channels swapped, [cin, n, h, w], by the
//     output gradient as a filter [cout, n, oh, ow] dilated by the stride → [cin, cout, k, k];
//   • BatchNorm: dx = γσ⁻¹·(dy − mean(dy) − x̂·mean(dy·x̂)), dγ = Σ dy·x̂, dβ = Σ dy;
//   • ReLU: dy where the output is > 0; max-pool: dy added at each window's argmax (MaxPool's indices, scattered);
//   • global average pool: dy / (h·w) everywhere; residual additions: the sum of both branches' gradients.
// Inside the graph everything is NCHW. The batch is symbolic; the height and width are fixed per graph.

import { mapSizeAfter, type MapSize } from "./export";
import { encodeModel, GraphBuilder, type OnnxGraph, type OnnxValueInfo } from "./proto";
import { BN_EPS, resnet18Layout, resnet18StateDictLayout, type ConvLayout } from "../resnet18-layout";

/** ScatterElements' `reduction` (the max-pool gradient) needs opset 16, which needs IR version 8. */
export const TRAIN_OPSET = 16;
export const TRAIN_IR_VERSION = 8;

/** A feature map in the graph (NCHW): its value's name, channels and size. */
interface Map4 {
  readonly name: string;
  readonly channels: number;
  readonly size: MapSize;
}

/** A layer's backward pass: from the gradient of its output (a value of the graph) to that of its input. */
type Backward = (dy: string) => string;

const REDUCE_NCHW = { axes: { ints: [0, 2, 3] }, keepdims: { int: 1 } } as const;

/** Builds the layers' forward nodes, each with a function adding its backward nodes. */
class TrainGraphBuilder {
  readonly g = new GraphBuilder();
  /** Each parameter's gradient, summed over the passes that use it. */
  readonly grads = new Map<string, string>();
  /** Each BatchNorm's batch statistics, pass by pass. */
  readonly stats: { name: string; channels: number; mean: string; variance: string }[] = [];
  /** The scalar 0 (made on first use: ONNX Runtime warns about constants no node reads). */
  get zero(): string {
    return this.g.constant("zero", [], Float32Array.of(0));
  }

  private get nchwAxes(): string {
    return this.g.int64Constant("axes_nhw", [0, 2, 3]);
  }

  private addGrad(param: string, grad: string): void {
    const known = this.grads.get(param);
    this.grads.set(param, known === undefined ? grad : this.g.add("Add", [known, grad]));
  }

  conv(layout: ConvLayout, x: Map4, inputGrad: boolean): { y: Map4; back: (dy: string) => string | null } {
    const { g } = this;
    const { kernel: k, stride: s, pad: p } = layout;
    const weight = g.add("Transpose", [`${layout.name}.weight`], { perm: { ints: [3, 2, 0, 1] } }); // HWIO → OIHW
    const size = mapSizeAfter(x.size, k, s, p);
    const y = g.add("Conv", [x.name, weight], { kernel_shape: { ints: [k, k] }, strides: { ints: [s, s] }, pads: { ints: [p, p, p, p] } });
    const back = (dy: string): string | null => {
      // filter gradient: [cin, n, h, w] ⋆ [cout, n, oh, ow] (dilated by s) → [cin, cout, k', k'] → HWIO
      const xs = g.add("Transpose", [x.name], { perm: { ints: [1, 0, 2, 3] } });
      const dys = g.add("Transpose", [dy], { perm: { ints: [1, 0, 2, 3] } });
      let full = g.add("Conv", [xs, dys], { pads: { ints: [p, p, p, p] }, dilations: { ints: [s, s] } });
      const rows = x.size.height + 2 * p - (size.height - 1) * s;
      const cols = x.size.width + 2 * p - (size.width - 1) * s;
      if (rows !== k || cols !== k) {
        full = g.add("Slice", [full, g.int64Constant(`${layout.name}.grad_starts`, [0, 0]), g.int64Constant(`${layout.name}.grad_ends`, [k, k]), g.int64Constant(`${layout.name}.grad_axes`, [2, 3])]);
      }
      this.addGrad(`${layout.name}.weight`, g.add("Transpose", [full], { perm: { ints: [2, 3, 0, 1] } }));
      if (!inputGrad) return null;
      if (s === 1) {
        // the "full" correlation: dy ⋆ (filter flipped in space, in/out swapped), padding k − 1 − p
        const swapped = g.add("Transpose", [weight], { perm: { ints: [1, 0, 2, 3] } });
        const flipped = g.add("Slice", [
          swapped,
          g.int64Constant(`${layout.name}.flip_starts`, [k - 1, k - 1]),
          g.int64Constant(`${layout.name}.flip_ends`, [-k - 1, -k - 1]),
          g.int64Constant(`${layout.name}.flip_axes`, [2, 3]),
          g.int64Constant(`${layout.name}.flip_steps`, [-1, -1]),
        ]);
        const q = k - 1 - p;
        return g.add("Conv", [dy, flipped], { kernel_shape: { ints: [k, k] }, pads: { ints: [q, q, q, q] } });
      }
      const extraRows = x.size.height - ((size.height - 1) * s + k - 2 * p);
      const extraCols = x.size.width - ((size.width - 1) * s + k - 2 * p);
      return g.add("ConvTranspose", [dy, weight], {
        kernel_shape: { ints: [k, k] },
        strides: { ints: [s, s] },
        pads: { ints: [p, p, p, p] },
        output_padding: { ints: [extraRows, extraCols] },
      });
    };
    return { y: { name: y, channels: layout.outChannels, size }, back };
  }

  batchNorm(name: string, x: Map4): { y: Map4; back: Backward } {
    const { g } = this;
    const c = x.channels;
    const perChannel = g.int64Constant(`${name}.channel_shape`, [1, c, 1, 1]);
    const gamma = g.add("Reshape", [`${name}.weight`, perChannel]);
    const beta = g.add("Reshape", [`${name}.bias`, perChannel]);
    const mean = g.add("ReduceMean", [x.name], REDUCE_NCHW);
    const centred = g.add("Sub", [x.name, mean]);
    const variance = g.add("ReduceMean", [g.add("Mul", [centred, centred])], REDUCE_NCHW);
    const invStd = g.add("Reciprocal", [g.add("Sqrt", [g.add("Add", [variance, g.constant(`${name}.eps`, [], Float32Array.of(BN_EPS))])])]);
    const xhat = g.add("Mul", [centred, invStd]);
    const y = g.add("Add", [g.add("Mul", [xhat, gamma]), beta]);
    const flat = g.int64Constant(`${name}.flat`, [-1]);
    this.stats.push({ name, channels: c, mean: g.add("Reshape", [mean, flat]), variance: g.add("Reshape", [variance, flat]) });
    const back = (dy: string): string => {
      const dyXhat = g.add("Mul", [dy, xhat]);
      this.addGrad(`${name}.weight`, g.add("ReduceSum", [dyXhat, this.nchwAxes], { keepdims: { int: 0 } }));
      this.addGrad(`${name}.bias`, g.add("ReduceSum", [dy, this.nchwAxes], { keepdims: { int: 0 } }));
      const meanDy = g.add("ReduceMean", [dy], REDUCE_NCHW);
      const meanDyXhat = g.add("ReduceMean", [dyXhat], REDUCE_NCHW);
      const inner = g.add("Sub", [g.add("Sub", [dy, meanDy]), g.add("Mul", [xhat, meanDyXhat])]);
      return g.add("Mul", [g.add("Mul", [gamma, invStd]), inner]);
    };
    return { y: { ...x, name: y }, back };
  }

  relu(x: Map4): { y: Map4; back: Backward } {
    const y = this.g.add("Relu", [x.name]);
    const back = (dy: string): string => this.g.add("Where", [this.g.add("Greater", [y, this.zero]), dy, this.zero]);
    return { y: { ...x, name: y }, back };
  }

  /** MaxPool 3×3 / 2, padding 1 (ONNX pads with −∞, PyTorch's rule). */
  maxPool(x: Map4): { y: Map4; back: Backward } {
    const { g } = this;
    const [y, indices] = g.addMany("MaxPool", [x.name], 2, { kernel_shape: { ints: [3, 3] }, strides: { ints: [2, 2] }, pads: { ints: [1, 1, 1, 1] } });
    const size = mapSizeAfter(x.size, 3, 2, 1);
    const back = (dy: string): string => {
      const flat = g.int64Constant("maxpool.flat", [-1]);
      const zeros = g.add("ConstantOfShape", [g.add("Shape", [g.add("Reshape", [x.name, flat])])]);
      const scattered = g.add("ScatterElements", [zeros, g.add("Reshape", [indices, flat]), g.add("Reshape", [dy, flat])], { axis: { int: 0 }, reduction: { string: "add" } });
      return g.add("Reshape", [scattered, g.add("Shape", [x.name])]);
    };
    return { y: { ...x, name: y, size }, back };
  }

  add(a: Map4, b: Map4): Map4 {
    return { ...a, name: this.g.add("Add", [a.name, b.name]) };
  }

  /** Global average pool → [batch, channels]. */
  meanPool(x: Map4): { y: string; back: Backward } {
    const { g } = this;
    const y = g.add("ReduceMean", [x.name], { axes: { ints: [2, 3] }, keepdims: { int: 0 } });
    const back = (dy: string): string => {
      const spread = g.add("Reshape", [dy, g.int64Constant("pool.grad_shape", [-1, x.channels, 1, 1])]);
      const scaled = g.add("Mul", [spread, g.constant("pool.grad_scale", [], Float32Array.of(1 / (x.size.height * x.size.width)))]);
      return g.add("Expand", [scaled, g.add("Shape", [x.name])]);
    };
    return { y, back };
  }
}

/** Each BatchNorm of the network, in the order the graphs give their statistics, with its feature map's size. */
export function trainBatchNorms(width: number, size: MapSize): { readonly name: string; readonly size: MapSize }[] {
  const layout = resnet18Layout(width);
  const stemSize = mapSizeAfter(size, layout.stem.kernel, layout.stem.stride, layout.stem.pad);
  const out = [{ name: layout.stemBn, size: stemSize }];
  let h = mapSizeAfter(stemSize, 3, 2, 1);
  for (const b of layout.blocks) {
    const inner = mapSizeAfter(h, b.conv1.kernel, b.conv1.stride, b.conv1.pad);
    out.push({ name: b.bn1, size: inner }, { name: b.bn2, size: inner });
    if (b.downsample !== undefined) out.push({ name: b.downsample.bn, size: inner });
    h = inner;
  }
  return out;
}

/** The parameters as graph inputs: torchvision names, TF.js layouts (`model.trainableNames` order). */
export function trainParameterInputs(width: number): OnnxValueInfo[] {
  return resnet18StateDictLayout(width)
    .filter((e) => e.kind === "conv" || e.kind === "bn-weight" || e.kind === "bn-bias")
    .map((e) => ({ name: e.name, dims: e.kind === "conv" ? [e.shape[2], e.shape[3], e.shape[1], e.shape[0]] : [...e.shape] })); // OIHW → HWIO
}

/** One forward pass of the network on an NHWC input of the graph; `backward(dEmbedding)` adds its gradients. */
function forwardPass(t: TrainGraphBuilder, width: number, input: string, size: MapSize): { embedding: string; backward: (dEmbedding: string) => void } {
  const layout = resnet18Layout(width);
  const { g } = t;
  const steps: Backward[] = [];
  const image: Map4 = { name: g.add("Transpose", [input], { perm: { ints: [0, 3, 1, 2] } }), channels: 3, size };
  const stem = t.conv(layout.stem, image, false);
  const stemBn = t.batchNorm(layout.stemBn, stem.y);
  const stemRelu = t.relu(stemBn.y);
  const pool = t.maxPool(stemRelu.y);
  steps.push((dy) => {
    stem.back(stemBn.back(stemRelu.back(pool.back(dy))));
    return "";
  });
  let h = pool.y;
  for (const block of layout.blocks) {
    const input = h;
    const c1 = t.conv(block.conv1, input, true);
    const b1 = t.batchNorm(block.bn1, c1.y);
    const r1 = t.relu(b1.y);
    const c2 = t.conv(block.conv2, r1.y, true);
    const b2 = t.batchNorm(block.bn2, c2.y);
    const ds = block.downsample;
    const dsConv = ds === undefined ? null : t.conv(ds.conv, input, true);
    const dsBn = ds === undefined || dsConv === null ? null : t.batchNorm(ds.bn, dsConv.y);
    const out = t.relu(t.add(b2.y, dsBn === null ? input : dsBn.y));
    steps.push((dy) => {
      const dSum = out.back(dy);
      const dMain = c1.back(b1.back(r1.back(c2.back(b2.back(dSum)) as string))) as string;
      const dShort = dsConv === null || dsBn === null ? dSum : (dsConv.back(dsBn.back(dSum)) as string);
      return g.add("Add", [dMain, dShort]);
    });
    h = out.y;
  }
  const pooled = t.meanPool(h);
  const backward = (dEmbedding: string): void => {
    let dy = pooled.back(dEmbedding);
    for (let k = steps.length - 1; k >= 0; k--) dy = steps[k](dy);
  };
  return { embedding: pooled.y, backward };
}

/** The fine-tuning loss (lib/model/finetune `finetuneLoss`) of a batch's embeddings and its rotated copy's, and its gradient. */
export interface TrainLoss {
  readonly preset: "post" | "recommended";
  /** Softmax temperature of the recommended contrastive loss. */
  readonly temperature: number;
}

/**
 * finetuneLoss in the graph, on embeddings `e`, `r` [n, d] and targets [n, n] (rows summing to 1): its three parts
 * and its gradients with respect to e and r, written out:
 *   contrastive = −mean_i Σ_j T_ij·log softmax(L)_ij, dL = (softmax(L) − T)/n, d(rows of L = u·uᵀ) = (dL + dLᵀ)·u;
 *   post: L = e·eᵀ, orientation = mean((e + r)²);
 *   recommended: z = e / max(‖e‖, 1e-12) row by row, L = z·zᵀ/τ, orientation = mean_i ‖z_i + zr_i‖², and through
 *   the normalisation de = (dz − z·(z·dz)) / ‖e‖ (dz / 1e-12 for rows shorter than that).
 */
function lossInGraph(t: TrainGraphBuilder, e: string, r: string, loss: TrainLoss): { parts: [string, string, string]; de: string; dr: string } {
  const { g } = t;
  const rowAxis = g.int64Constant("loss.axis1", [1]);
  const count = g.add("Cast", [g.add("Gather", [g.add("Shape", [e]), g.int64Constant("loss.zero_index", [0])])], { to: { int: 1 } }); // n as float [1]
  const scalar = g.int64Constant("loss.scalar", []);
  const n = g.add("Reshape", [count, scalar]);
  const contrastiveOf = (u: string, scale: number): { value: string; du: string } => {
    let logits = g.add("MatMul", [u, g.add("Transpose", [u], { perm: { ints: [1, 0] } })]);
    if (scale !== 1) logits = g.add("Mul", [logits, g.constant(`loss.scale`, [], Float32Array.of(scale))]);
    const logProbs = g.add("Sub", [logits, g.add("ReduceLogSumExp", [logits], { axes: { ints: [1] }, keepdims: { int: 1 } })]);
    const rowSums = g.add("ReduceSum", [g.add("Mul", ["targets", logProbs]), rowAxis], { keepdims: { int: 0 } });
    const value = g.add("Neg", [g.add("ReduceMean", [rowSums], { axes: { ints: [0] }, keepdims: { int: 0 } })]);
    const dLogits = g.add("Div", [g.add("Sub", [g.add("Softmax", [logits], { axis: { int: 1 } }), "targets"]), n]);
    const symmetric = g.add("Add", [dLogits, g.add("Transpose", [dLogits], { perm: { ints: [1, 0] } })]);
    let du = g.add("MatMul", [symmetric, u]);
    if (scale !== 1) du = g.add("Mul", [du, `loss.scale`]);
    return { value, du };
  };
  if (loss.preset === "post") {
    const sum = g.add("Add", [e, r]);
    const orientation = g.add("ReduceMean", [g.add("Mul", [sum, sum])], { axes: { ints: [0, 1] }, keepdims: { int: 0 } });
    const size = g.add("Cast", [g.add("Size", [e])], { to: { int: 1 } });
    const dOrientation = g.add("Div", [g.add("Mul", [sum, g.constant("loss.two", [], Float32Array.of(2))]), size]);
    const c = contrastiveOf(e, 1);
    return { parts: [g.add("Add", [c.value, orientation]), c.value, orientation], de: g.add("Add", [c.du, dOrientation]), dr: dOrientation };
  }
  const eps = g.constant("loss.eps", [], Float32Array.of(1e-12));
  const normalise = (u: string): { z: string; norm: string; back: (dz: string) => string } => {
    const length = g.add("Sqrt", [g.add("ReduceSum", [g.add("Mul", [u, u]), rowAxis], { keepdims: { int: 1 } })]);
    const norm = g.add("Max", [length, eps]);
    const z = g.add("Div", [u, norm]);
    const back = (dz: string): string => {
      const along = g.add("Mul", [z, g.add("ReduceSum", [g.add("Mul", [z, dz]), rowAxis], { keepdims: { int: 1 } })]);
      const radial = g.add("Where", [g.add("Greater", [length, eps]), along, t.zero]);
      return g.add("Div", [g.add("Sub", [dz, radial]), norm]);
    };
    return { z, norm, back };
  };
  const ze = normalise(e);
  const zr = normalise(r);
  const sum = g.add("Add", [ze.z, zr.z]);
  const orientation = g.add("ReduceMean", [g.add("ReduceSum", [g.add("Mul", [sum, sum]), rowAxis], { keepdims: { int: 0 } })], { axes: { ints: [0] }, keepdims: { int: 0 } });
  const dOrientation = g.add("Div", [g.add("Mul", [sum, g.constant("loss.two", [], Float32Array.of(2))]), n]);
  const c = contrastiveOf(ze.z, 1 / loss.temperature);
  return {
    parts: [g.add("Add", [c.value, orientation]), c.value, orientation],
    de: ze.back(g.add("Add", [c.du, dOrientation])),
    dr: zr.back(dOrientation),
  };
}

/** What a training graph computes (see the top of the file). */
export type TrainGraphKind =
  /** embedding and batch statistics of "x" */
  | { readonly kind: "forward" }
  /** the gradients of Σ embedding(x) ⊙ d_embedding */
  | { readonly kind: "gradients" }
  /** a whole step: "x" and its rotated copy "x_rotated" through the network, the loss on "targets", its gradients */
  | { readonly kind: "step"; readonly loss: TrainLoss };

const statOutputs = (t: TrainGraphBuilder, pass: number, from: number, to: number): OnnxValueInfo[] =>
  t.stats.slice(from, to).flatMap((s) => {
    t.g.add("Identity", [s.mean], undefined, `pass${pass}/${s.name}.batch_mean`);
    t.g.add("Identity", [s.variance], undefined, `pass${pass}/${s.name}.batch_var`);
    return [{ name: `pass${pass}/${s.name}.batch_mean`, dims: [s.channels] }, { name: `pass${pass}/${s.name}.batch_var`, dims: [s.channels] }];
  });

/** A training graph of a ResNet18 of this width on images of this size. */
export function resnet18TrainGraph(width: number, size: MapSize, what: TrainGraphKind): OnnxGraph {
  const t = new TrainGraphBuilder();
  const { g } = t;
  const embeddingSize = 8 * width;
  const image = (name: string): OnnxValueInfo => ({ name, dims: ["batch", size.height, size.width, 3] });
  const params = trainParameterInputs(width);
  const gradOutputs = (): OnnxValueInfo[] =>
    params.map((p) => {
      const grad = t.grads.get(p.name);
      if (grad === undefined) throw new Error(`resnet18TrainGraph: no gradient for ${p.name}`);
      g.add("Identity", [grad], undefined, `${p.name}.grad`);
      return { name: `${p.name}.grad`, dims: p.dims };
    });
  const graph = (name: string, inputs: OnnxValueInfo[], outputs: OnnxValueInfo[]): OnnxGraph => ({ name, nodes: g.nodes, initializers: g.initializers, inputs, outputs });

  if (what.kind === "forward") {
    const pass = forwardPass(t, width, "x", size);
    g.add("Identity", [pass.embedding], undefined, "embedding");
    const outputs = [{ name: "embedding", dims: ["batch", embeddingSize] }, ...statOutputs(t, 0, 0, t.stats.length)];
    return graph("resnet18_train_forward", [image("x"), ...params], outputs);
  }
  if (what.kind === "gradients") {
    forwardPass(t, width, "x", size).backward("d_embedding");
    return graph("resnet18_train_gradients", [image("x"), ...params, { name: "d_embedding", dims: ["batch", embeddingSize] }], gradOutputs());
  }
  const straight = forwardPass(t, width, "x", size);
  const perPass = t.stats.length;
  const rotated = forwardPass(t, width, "x_rotated", size);
  const loss = lossInGraph(t, straight.embedding, rotated.embedding, what.loss);
  straight.backward(loss.de);
  rotated.backward(loss.dr);
  const lossOutputs = (["loss", "contrastive", "orientation"] as const).map((name, k) => {
    g.add("Identity", [loss.parts[k]], undefined, name);
    return { name, dims: [] };
  });
  const outputs = [...lossOutputs, ...gradOutputs(), ...statOutputs(t, 0, 0, perPass), ...statOutputs(t, 1, perPass, 2 * perPass)];
  return graph("resnet18_train_step", [image("x"), image("x_rotated"), { name: "targets", dims: ["batch", "batch"] }, ...params], outputs);
}

/** The graph as ONNX bytes. */
export function resnet18TrainModel(width: number, size: MapSize, what: TrainGraphKind): Uint8Array {
  return encodeModel(resnet18TrainGraph(width, size, what), {
    irVersion: TRAIN_IR_VERSION,
    opsetVersion: TRAIN_OPSET,
    producerName: "celeba-sae",
    producerVersion: "1",
  });
}
