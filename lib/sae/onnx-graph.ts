// The SAE's whole training step as one ONNX graph, for ONNX Runtime's native CPU kernels (lib/sae/onnx-step runs it):
// the forward pass, the hand-written backward pass of lib/sae/step (the same formulas, op for op), the decoder's
// unit-norm handling and Adam (lib/model/adam, torch.optim.Adam), so that a step takes the parameters and Adam's
// moments and gives their next values. Between steps they stay with ONNX Runtime's run (outputs written into
// preallocated buffers that are the next step's inputs); TF.js sees them only when asked.
//
// Inputs (float32):
//   x [batch, d]                 the raw rows of the batch (the graph scales them as the preset says)
//   weight_encoder [d, m], bias_encoder [m], weight_decoder [m, d], bias_decoder [d]
//   adam_m.<param>, adam_v.<param>  Adam's moments, each of its parameter's shape
//   lr_step []                   learning rate / (1 − β1^t), computed in float64 as lib/model/adam does
//   bc2_sqrt []                  √(1 − β2^t)
//   l1_scale []                  the L1 term's factor: λ (post-l2 loss) or λ / n (mse loss)
//   count [], e_scale []         (mse loss) n and 2 / n
//   input_scale []               (fixed-scale inputs) the scale
//   dead [m], aux_k [1]          (AuxK graphs) 1 for dead features, and min(auxK, dead count) ≥ 1
// Outputs:
//   <param>.next, adam_m.<param>.next, adam_v.<param>.next   the state after the step
//   stats [6]                    loss, recon, sparsity, aux, sse (Σ (x − x̂)²), active (Σ of the mask)
//   fired [m]                    rows of the batch each feature fired on
//
// The formulas are lib/sae/step's (read its header): products run as Gemm with transpose flags (ONNX Runtime's
// MLAS packs transposed operands itself, so no kept copy of W_dᵀ is needed). TopK's active set is, as TF.js's
// `activeMask`, the entries ≥ the row's k-th largest value (the smallest of TopK's values) that are > 0, so ties
// are treated alike; AuxK's likewise among dead features. The batch is symbolic, d and m are fixed per graph.
// `saeMeasureGraph` is the same forward pass alone, to measure rows with the native weights (held-out evaluation).

import { encodeModel, GraphBuilder, type OnnxGraph, type OnnxValueInfo } from "../model/onnx/proto";
import { SAE_PARAMETER_NAMES, type SaeArchitecture, type SaeMeta, type SaeParameterName } from "./sae";

/** ReduceSum's axes as an input needs opset 13; 16 as fine-tuning's graphs (lib/model/onnx/train-graph). */
export const SAE_GRAPH_OPSET = 16;
export const SAE_GRAPH_IR_VERSION = 8;

/** torch.optim.Adam's defaults, as lib/model/adam. */
const BETA1 = 0.9;
const BETA2 = 0.999;
const EPS = 1e-8;

/** Everything that shapes the graph (values that change per step are inputs). */
export interface SaeGraphRecipe {
  readonly inputDim: number;
  readonly dictionarySize: number;
  readonly architecture: SaeArchitecture;
  /** Active features per row (topk). */
  readonly k: number;
  readonly loss: "post-l2" | "mse";
  /** "l2-rows": rows divided by their L2 norm (the post); "fixed-scale": times `input_scale`. */
  readonly scaling: "l2-rows" | "fixed-scale";
  readonly unitNormDecoder: boolean;
  readonly weightDecay: number;
  /** Whether the graph has the AuxK term (inputs `dead`, `aux_k`). */
  readonly auxK: boolean;
  readonly auxKCoefficient: number;
}

/** The recipe of a model's step, with or without AuxK (a step with no dead feature runs the graph without it). */
export function saeGraphRecipe(meta: SaeMeta, auxK: boolean): SaeGraphRecipe {
  const t = meta.training;
  return {
    inputDim: meta.inputDim,
    dictionarySize: meta.dictionarySize,
    architecture: meta.architecture,
    k: meta.k ?? 0,
    loss: t.loss,
    scaling: meta.inputScaling.kind === "fixed-scale" ? "fixed-scale" : "l2-rows",
    unitNormDecoder: t.unitNormDecoder,
    weightDecay: t.weightDecay,
    auxK: auxK && t.auxK > 0 && t.auxKCoefficient > 0,
    auxKCoefficient: t.auxKCoefficient,
  };
}

/** The state a step carries over: the parameters (SAE_PARAMETER_NAMES order), then Adam's m, then Adam's v. */
export const SAE_STATE_NAMES: readonly string[] = [
  ...SAE_PARAMETER_NAMES,
  ...SAE_PARAMETER_NAMES.map((n) => `adam_m.${n}`),
  ...SAE_PARAMETER_NAMES.map((n) => `adam_v.${n}`),
];

/** The shape of each state, in SAE_STATE_NAMES order. */
export function saeStateShapes(d: number, m: number): readonly (readonly number[])[] {
  const shapes = saeParameterShapes(d, m);
  return SAE_STATE_NAMES.map((_, i) => shapes[SAE_PARAMETER_NAMES[i % SAE_PARAMETER_NAMES.length]]);
}

/** Output name of a state's next value. */
export const nextName = (state: string): string => `${state}.next`;

/** The order of the `stats` output. */
export const SAE_STAT_NAMES = ["loss", "recon", "sparsity", "aux", "sse", "active"] as const;

/** Each parameter's shape. */
export function saeParameterShapes(d: number, m: number): Record<SaeParameterName, readonly number[]> {
  return { weight_encoder: [d, m], bias_encoder: [m], weight_decoder: [m, d], bias_decoder: [d] };
}

/** The per-step scalar inputs this recipe's graph takes. */
export function saeScalarInputs(recipe: SaeGraphRecipe): string[] {
  return ["lr_step", "bc2_sqrt", "l1_scale", ...(recipe.loss === "mse" ? ["count", "e_scale"] : []), ...(recipe.scaling === "fixed-scale" ? ["input_scale"] : [])];
}

/** The helpers both graphs build with. */
function graphTools(recipe: SaeGraphRecipe) {
  if (recipe.architecture === "topk" && !(Number.isInteger(recipe.k) && recipe.k > 0)) throw new Error(`saeStepGraph: a topk SAE needs k ≥ 1, got ${recipe.k}`);
  const g = new GraphBuilder();
  const f32 = (name: string, value: number): string => g.constant(name, [], Float32Array.of(value));
  const axis0 = g.int64Constant("axis0", [0]);
  const sumRows = (t: string): string => g.add("ReduceSum", [t, axis0], { keepdims: { int: 0 } }); // Σ over rows → [cols]
  const sumAll = (t: string): string => g.add("ReduceSum", [t], { keepdims: { int: 0 } }); // no axes: every value → []
  const gemm = (a: string, b: string, transA: 0 | 1, transB: 0 | 1, c?: string): string =>
    g.add("Gemm", c === undefined ? [a, b] : [a, b, c], { transA: { int: transA }, transB: { int: transB } });
  /** 1 where t ≥ the row's k-th largest value (k a [1] int64 value), else 0. */
  const atLeastKth = (t: string, k: string): string => {
    const [values] = g.addMany("TopK", [t, k], 2, { axis: { int: 1 }, largest: { int: 1 }, sorted: { int: 1 } });
    const kth = g.add("ReduceMin", [values], { axes: { ints: [1] }, keepdims: { int: 1 } });
    return g.add("Cast", [g.add("GreaterOrEqual", [t, kth])], { to: { int: 1 } });
  };
  /** The forward pass of rows `xs` already in training space: x̄, pre-activations, the active mask, f, e = x̂ − xs. */
  const forward = (xs: string): { xbar: string; pre: string; mask: string; f: string; e: string } => {
    const xbar = g.add("Sub", [xs, "bias_decoder"]);
    const pre = gemm(xbar, "weight_encoder", 0, 0, "bias_encoder");
    const positive = g.add("Cast", [g.add("Greater", [pre, f32("zero", 0)])], { to: { int: 1 } });
    const mask = recipe.architecture === "relu" || recipe.k >= recipe.dictionarySize ? positive : g.add("Mul", [positive, atLeastKth(pre, g.int64Constant("k", [recipe.k]))]);
    const f = g.add("Mul", [pre, mask]);
    const e = g.add("Sub", [gemm(f, "weight_decoder", 0, 0, "bias_decoder"), xs]);
    return { xbar, pre, mask, f, e };
  };
  return { g, f32, axis0, sumRows, sumAll, gemm, atLeastKth, forward };
}

/** The graph of one training step (see the top of the file). */
export function saeStepGraph(recipe: SaeGraphRecipe): OnnxGraph {
  const { inputDim: d, dictionarySize: m } = recipe;
  const { g, f32, axis0, sumRows, sumAll, gemm, atLeastKth, forward } = graphTools(recipe);
  const axis1 = g.int64Constant("axis1", [1]);
  const zero = f32("zero", 0);
  const tiny = f32("tiny", 1e-12);

  // x as the SAE trains on it (lib/sae/step `scaleForTraining`)
  const xs =
    recipe.scaling === "fixed-scale"
      ? g.add("Mul", ["x", "input_scale"])
      : g.add("Div", ["x", g.add("Max", [g.add("Sqrt", [g.add("ReduceSum", [g.add("Mul", ["x", "x"]), axis1], { keepdims: { int: 1 } })]), tiny])]);
  const { xbar, pre, mask, f, e } = forward(xs);
  const sse = sumAll(g.add("Mul", [e, e]));
  const fSum = sumAll(f);
  let recon: string;
  let dxhat: string;
  if (recipe.loss === "post-l2") {
    recon = g.add("Sqrt", [sse]);
    dxhat = g.add("Div", [e, recon]);
  } else {
    recon = g.add("Div", [sse, "count"]);
    dxhat = g.add("Mul", [e, "e_scale"]);
  }
  const sparsity = g.add("Mul", [fSum, "l1_scale"]);
  let dpre = g.add("Mul", [g.add("Add", [gemm(dxhat, "weight_decoder", 0, 1), "l1_scale"]), mask]);
  let gWd = gemm(f, dxhat, 1, 0);
  let aux = zero;
  if (recipe.auxK) {
    const c = recipe.auxKCoefficient;
    const preDead = g.add("Add", [pre, g.add("Mul", [g.add("Sub", [f32("one", 1), "dead"]), f32("minus_huge", -1e30)])]);
    const kAux = g.add("Reshape", [g.add("Cast", ["aux_k"], { to: { int: 7 } }), g.int64Constant("shape1", [1])]);
    const auxMask = g.add("Mul", [atLeastKth(preDead, kAux), "dead"]);
    const a = g.add("Mul", [pre, auxMask]);
    const residual = g.add("Neg", [e]);
    const energy = g.add("Max", [sumAll(g.add("Mul", [residual, residual])), tiny]);
    const diff = g.add("Sub", [gemm(a, "weight_decoder", 0, 0), residual]);
    aux = g.add("Div", [g.add("Mul", [sumAll(g.add("Mul", [diff, diff])), f32("aux_coefficient", c)]), energy]);
    const dAhat = g.add("Div", [g.add("Mul", [diff, f32("aux_two_coefficient", 2 * c)]), energy]);
    gWd = g.add("Add", [gWd, gemm(a, dAhat, 1, 0)]);
    dpre = g.add("Add", [dpre, g.add("Mul", [gemm(dAhat, "weight_decoder", 0, 1), auxMask])]);
  }
  const gbe = sumRows(dpre);
  const gbd = g.add("Sub", [sumRows(dxhat), g.add("MatMul", ["weight_encoder", gbe])]);
  const gWe = gemm(xbar, dpre, 1, 0);
  if (recipe.unitNormDecoder) {
    // the component of each decoder row's gradient parallel to that (unit) row removed
    gWd = g.add("Sub", [gWd, g.add("Mul", [g.add("ReduceSum", [g.add("Mul", [gWd, "weight_decoder"]), axis1], { keepdims: { int: 1 } }), "weight_decoder"])]);
  }

  // Adam (lib/model/adam `apply`, op for op)
  const grads: Record<SaeParameterName, string> = { weight_encoder: gWe, bias_encoder: gbe, weight_decoder: gWd, bias_decoder: gbd };
  const beta1 = f32("beta1", BETA1);
  const oneMinusBeta1 = f32("one_minus_beta1", 1 - BETA1);
  const beta2 = f32("beta2", BETA2);
  const oneMinusBeta2 = f32("one_minus_beta2", 1 - BETA2);
  const eps = f32("eps", EPS);
  for (const name of SAE_PARAMETER_NAMES) {
    const raw = grads[name];
    const grad = recipe.weightDecay === 0 ? raw : g.add("Add", [raw, g.add("Mul", [name, f32("weight_decay", recipe.weightDecay)])]);
    const mNext = g.add("Add", [g.add("Mul", [`adam_m.${name}`, beta1]), g.add("Mul", [grad, oneMinusBeta1])], undefined, nextName(`adam_m.${name}`));
    const vNext = g.add("Add", [g.add("Mul", [`adam_v.${name}`, beta2]), g.add("Mul", [g.add("Mul", [grad, grad]), oneMinusBeta2])], undefined, nextName(`adam_v.${name}`));
    const denom = g.add("Add", [g.add("Div", [g.add("Sqrt", [vNext]), "bc2_sqrt"]), eps]);
    const update = g.add("Mul", [g.add("Div", [mNext, denom]), "lr_step"]);
    if (name === "weight_decoder" && recipe.unitNormDecoder) {
      const moved = g.add("Sub", [name, update]);
      const norms = g.add("Max", [g.add("Sqrt", [g.add("ReduceSum", [g.add("Mul", [moved, moved]), axis1], { keepdims: { int: 1 } })]), tiny]);
      g.add("Div", [moved, norms], undefined, nextName(name));
    } else {
      g.add("Sub", [name, update], undefined, nextName(name));
    }
  }
  const scalar1 = g.int64Constant("shape1", [1]);
  const fired = g.add("ReduceSum", [mask, axis0], { keepdims: { int: 0 } }, "fired");
  const active = sumAll(fired); // whole numbers below 2²⁴: exact in either order
  const stats = [g.add("Add", [g.add("Add", [recon, sparsity]), aux]), recon, sparsity, aux, sse, active].map((s) => g.add("Reshape", [s, scalar1]));
  g.add("Concat", stats, { axis: { int: 0 } }, "stats");

  const shapes = saeParameterShapes(d, m);
  const stateInfo = (prefix: string, suffix: (n: string) => string): OnnxValueInfo[] => SAE_PARAMETER_NAMES.map((n) => ({ name: suffix(`${prefix}${n}`), dims: shapes[n] }));
  const same = (n: string): string => n;
  const inputs: OnnxValueInfo[] = [
    { name: "x", dims: ["batch", d] },
    ...stateInfo("", same),
    ...stateInfo("adam_m.", same),
    ...stateInfo("adam_v.", same),
    ...saeScalarInputs(recipe).map((name) => ({ name, dims: [] })),
    ...(recipe.auxK ? [{ name: "dead", dims: [m] }, { name: "aux_k", dims: [1] }] : []),
  ];
  const outputs: OnnxValueInfo[] = [
    ...stateInfo("", nextName),
    ...stateInfo("adam_m.", nextName),
    ...stateInfo("adam_v.", nextName),
    { name: "stats", dims: [SAE_STAT_NAMES.length] },
    { name: "fired", dims: [m] },
  ];
  return { name: `sae_train_step_${recipe.architecture}_${recipe.loss}${recipe.auxK ? "_auxk" : ""}`, nodes: g.nodes, initializers: g.initializers, inputs, outputs };
}

/** The step graph as ONNX bytes. */
export function saeStepModel(recipe: SaeGraphRecipe): Uint8Array {
  return encodeModel(saeStepGraph(recipe), { irVersion: SAE_GRAPH_IR_VERSION, opsetVersion: SAE_GRAPH_OPSET, producerName: "celeba-sae", producerVersion: "1" });
}

/** The order of the measuring graph's `sums` output (lib/sae/metrics `BatchSums`). */
export const SAE_SUM_NAMES = ["sse", "l1", "active"] as const;

/**
 * The graph that measures rows (lib/sae/metrics `heldOutMetrics`, forward only): inputs `xs` [batch, d], rows already
 * in training space, and the four parameters; outputs `sums` [3] (Σ (x̂ − x)², Σ f, Σ active) and `fired` [m] (rows
 * each feature fired on). The forward pass is the step graph's.
 */
export function saeMeasureGraph(recipe: SaeGraphRecipe): OnnxGraph {
  const { inputDim: d, dictionarySize: m } = recipe;
  const { g, axis0, sumAll, forward } = graphTools(recipe);
  const { mask, f, e } = forward("xs");
  const fired = g.add("ReduceSum", [mask, axis0], { keepdims: { int: 0 } }, "fired");
  const scalar1 = g.int64Constant("shape1", [1]);
  const sums = [sumAll(g.add("Mul", [e, e])), sumAll(f), sumAll(fired)].map((s) => g.add("Reshape", [s, scalar1]));
  g.add("Concat", sums, { axis: { int: 0 } }, "sums");
  const shapes = saeParameterShapes(d, m);
  return {
    name: `sae_measure_${recipe.architecture}`,
    nodes: g.nodes,
    initializers: g.initializers,
    inputs: [{ name: "xs", dims: ["batch", d] }, ...SAE_PARAMETER_NAMES.map((n) => ({ name: n, dims: shapes[n] }))],
    outputs: [{ name: "sums", dims: [SAE_SUM_NAMES.length] }, { name: "fired", dims: [m] }],
  };
}

/** The measuring graph as ONNX bytes. */
export function saeMeasureModel(recipe: SaeGraphRecipe): Uint8Array {
  return encodeModel(saeMeasureGraph(recipe), { irVersion: SAE_GRAPH_IR_VERSION, opsetVersion: SAE_GRAPH_OPSET, producerName: "celeba-sae", producerVersion: "1" });
}
