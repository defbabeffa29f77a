// One step of the sparse autoencoder: Adam over its parameters (lib/model/adam, as torch.optim.Adam) and the
// gradients, written by hand.
//
// Why hand-written gradients: on the WASM backend a matMul with a transposed operand runs far slower than a plain
// one, and autodiff of a @ b produces exactly those. Every product below is plain; the transposes it needs are
// explicit copies (xbarᵀ and fᵀ per step, and W_dᵀ kept beside W_d). The loss and its gradient, for
// e = x̂ − x (x already scaled as the preset says), mask = 1 where a feature is active:
//   post   L = ‖e‖_F + λ Σ f        ∂L/∂x̂ = e / ‖e‖_F           ∂L/∂f = ∂L/∂x̂ W_dᵀ + λ
//   mse    L = Σ e² / n + λ Σ f / n  ∂L/∂x̂ = 2e / n               ∂L/∂f = ∂L/∂x̂ W_dᵀ + λ / n
//   ∂L/∂pre = ∂L/∂f ⊙ mask;  ∂W_d = fᵀ ∂x̂;  ∂W_e = x̄ᵀ ∂pre;  ∂b_e = Σ_rows ∂pre;  ∂b_d = Σ_rows ∂x̂ − W_e ∂b_e
// AuxK (OpenAI's sparse_autoencoder): the kAux largest pre-activations among dead features reconstruct the
// residual x − x̂ through W_d alone; loss c·‖a W_d − (x − x̂)‖² / ‖x − x̂‖² with the residual held fixed. Its
// activations are NOT rectified, so it also reaches ReLU features whose pre-activations have all gone negative
// (the role Anthropic's ghost grads play).
// test/sae-train.test.ts checks these gradients against TF.js autodiff, and one post step against PyTorch.

import { Adam } from "../model/adam";
import { tf } from "../kernels/backend";
import type { SafetensorsTensor } from "../formats/safetensors";
import { activeMask, atLeast, matMulBias, normaliseRows, SAE_PARAMETER_NAMES, type SaeModel, type SaeParameterName } from "./sae";

// ---------------------------------------------------------------------------------------------------------------
// The optimiser: lib/model/adam.ts (torch.optim.Adam), over the parameters in SAE_PARAMETER_NAMES order.

/** Adam over the SAE's parameters, in SAE_PARAMETER_NAMES order, with the recipe's weight decay. */
export function saeOptimizer(model: SaeModel, weightDecay: number): Adam {
  const named = model.named();
  return new Adam(SAE_PARAMETER_NAMES.map((n) => named[n]), { weightDecay });
}

/** The moments by name (m_<param>, v_<param>), for a checkpoint. */
export function adamMoments(adam: Adam): Record<string, tf.Variable> {
  return Object.fromEntries(SAE_PARAMETER_NAMES.flatMap((n, i) => [[`m_${n}`, adam.m[i]], [`v_${n}`, adam.v[i]]]));
}

/** Continues from a checkpoint's moments and step count. */
export function restoreAdam(adam: Adam, moments: ReadonlyMap<string, SafetensorsTensor>, steps: number): void {
  for (const [key, v] of Object.entries(adamMoments(adam))) {
    const t = moments.get(key);
    if (t === undefined || t.shape.join(",") !== v.shape.join(",")) throw new Error(`the SAE checkpoint's optimiser state has no matching "${key}": delete the checkpoint folder to start over`);
    const values = tf.tensor(t.data as Float32Array, v.shape);
    v.assign(values);
    values.dispose();
  }
  adam.step = steps;
}

// ---------------------------------------------------------------------------------------------------------------
// One step

/** What one step measured (training space). */
export interface StepStats {
  readonly loss: number;
  readonly recon: number;
  readonly sparsity: number;
  readonly aux: number;
  /** Σ (x − x̂)² over the batch. */
  readonly sse: number;
  /** Active features summed over the batch's rows. */
  readonly active: number;
  /** Rows of the batch each feature fired on. */
  readonly fired: Float32Array;
}

/** The rows as the SAE trains on them: L2-normalised (post, torch.nn.functional.normalize) or times the fixed scale. */
export function scaleForTraining(model: SaeModel, x: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const s = model.meta.inputScaling;
    if (s.kind === "fixed-scale") return tf.mul(x, s.scale);
    return tf.div(x, tf.maximum(tf.norm(x, 2, 1, true), 1e-12));
  });
}

/** The gradients of one batch (and the loss terms), without changing the model. `dead`: 1 for dead features. */
export function saeGradients(
  model: SaeModel,
  x: tf.Tensor2D,
  l1: number,
  dead: { readonly mask: tf.Tensor1D; readonly count: number } | null,
): { grads: Record<SaeParameterName, tf.Tensor>; terms: Record<"loss" | "recon" | "sparsity" | "aux" | "sse" | "active", tf.Scalar>; fired: tf.Tensor1D } {
  const { training: t, architecture, k, inputDim: d, dictionarySize: m } = model.meta;
  const p = model.params;
  const n = x.shape[0];
  const xs = scaleForTraining(model, x);
  const xbar = tf.sub<tf.Tensor2D>(xs, p.biasDecoder);
  const pre = matMulBias(xbar, p.weightEncoder, p.biasEncoder);
  const mask = activeMask(pre, architecture, k ?? 0);
  const f = tf.mul<tf.Tensor2D>(pre, mask);
  const e = tf.sub<tf.Tensor2D>(matMulBias(f, p.weightDecoder, p.biasDecoder), xs);
  const sse: tf.Scalar = tf.sum(tf.square(e));
  const fSum: tf.Scalar = tf.sum(f);
  let recon: tf.Scalar;
  let sparsity: tf.Scalar;
  let dxhat: tf.Tensor2D;
  let l1Grad: number;
  if (t.loss === "post-l2") {
    recon = tf.sqrt<tf.Scalar>(sse);
    sparsity = tf.mul(fSum, l1);
    dxhat = tf.div(e, recon);
    l1Grad = l1;
  } else {
    recon = tf.div(sse, n);
    sparsity = tf.mul(fSum, l1 / n);
    dxhat = tf.mul(e, 2 / n);
    l1Grad = l1 / n;
  }
  let dpre = tf.mul<tf.Tensor2D>(tf.add(tf.matMul(dxhat, model.decoderT), l1Grad), mask);
  let gWd = tf.matMul(tf.transpose(f), dxhat);
  let aux: tf.Scalar = tf.scalar(0);
  if (dead !== null && dead.count > 0 && t.auxK > 0 && t.auxKCoefficient > 0) {
    const kAux = Math.min(t.auxK, dead.count);
    const preDead = tf.add(pre, tf.mul(tf.sub(1, dead.mask), -1e30));
    const kth = tf.topk(preDead, kAux).values.slice([0, kAux - 1], [n, 1]);
    const auxMask = tf.mul<tf.Tensor2D>(atLeast(preDead as tf.Tensor2D, kth), dead.mask);
    const a = tf.mul<tf.Tensor2D>(pre, auxMask);
    const residual = tf.neg(e);
    const energy = tf.maximum(tf.sum(tf.square(residual)), 1e-12);
    const diff = tf.sub<tf.Tensor2D>(tf.matMul(a, p.weightDecoder), residual);
    aux = tf.div(tf.mul(tf.sum(tf.square(diff)), t.auxKCoefficient), energy);
    const dAhat = tf.div<tf.Tensor2D>(tf.mul(diff, 2 * t.auxKCoefficient), energy);
    gWd = tf.add(gWd, tf.matMul(tf.transpose(a), dAhat));
    dpre = tf.add(dpre, tf.mul(tf.matMul(dAhat, model.decoderT), auxMask));
  }
  const gbe = tf.sum(dpre, 0);
  const gbd = tf.sub(tf.sum(dxhat, 0), tf.reshape(tf.matMul(p.weightEncoder, tf.reshape(gbe, [m, 1])), [d]));
  const gWe = tf.matMul(tf.transpose(xbar), dpre);
  return {
    grads: { weight_encoder: gWe, bias_encoder: gbe, weight_decoder: gWd, bias_decoder: gbd },
    terms: { loss: tf.add<tf.Scalar>(tf.add<tf.Scalar>(recon, sparsity), aux), recon, sparsity, aux, sse, active: tf.sum(mask) },
    fired: tf.sum(mask, 0),
  };
}

/** One optimisation step: gradients, decoder-norm handling, Adam, W_dᵀ refreshed. */
export function saeStep(
  model: SaeModel,
  adam: Adam,
  x: tf.Tensor2D,
  lr: number,
  l1: number,
  dead: { readonly mask: tf.Tensor1D; readonly count: number } | null = null,
): StepStats {
  const { scalars, fired } = tf.tidy(() => {
    // The gradients in a tidy of their own: the forward pass's intermediates are freed before Adam's temporaries
    // are made (together they took the step at dictionary 16,384 to 1.9 GB).
    const { grads, terms, fired } = tf.tidy(() => {
      const g = saeGradients(model, x, l1, dead);
      return { grads: { ...g.grads }, terms: { ...g.terms }, fired: g.fired };
    });
    const wd = model.params.weightDecoder;
    if (model.meta.training.unitNormDecoder) {
      // Remove the component of each decoder row's gradient parallel to that (unit) row.
      grads.weight_decoder = tf.sub(grads.weight_decoder, tf.mul(tf.sum(tf.mul(grads.weight_decoder, wd), 1, true), wd));
    }
    adam.apply(SAE_PARAMETER_NAMES.map((n) => grads[n]), lr);
    if (model.meta.training.unitNormDecoder) wd.assign(normaliseRows(wd));
    model.decoderT.assign(tf.transpose(wd));
    const order = ["loss", "recon", "sparsity", "aux", "sse", "active"] as const;
    return { scalars: tf.stack(order.map((key) => terms[key])), fired };
  });
  const v = scalars.dataSync();
  const firedData = fired.dataSync() as Float32Array;
  tf.dispose([scalars, fired]);
  return { loss: v[0], recon: v[1], sparsity: v[2], aux: v[3], sse: v[4], active: v[5], fired: firedData };
}
