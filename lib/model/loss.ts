// The fine-tuning loss (lib/model/finetune's header gives the post's step in full).
//
// `post`: contrastive = cross_entropy(e @ eᵀ, arange(B)) on raw embeddings, orientation = mse(e, −r); the post's
// normalised embeddings are computed and never used, as in its code. `recommended`: cosine similarities over a
// temperature, the other pictures of the same person in the batch as extra positives (when the dataset has
// identities), the orientation loss on unit vectors.

import { tf } from "../kernels/backend";
import type { Preset } from "../run/config";

// ---------------------------------------------------------------------------------------------------------------
// Losses

export interface LossParts<T> {
  readonly loss: T;
  readonly contrastive: T;
  readonly orientation: T;
}
export type LossTensors = LossParts<tf.Scalar>;
export type LossValues = LossParts<number>;

export interface LossSettings {
  readonly preset: Preset;
  /** Softmax temperature of the recommended contrastive loss. */
  readonly temperature: number;
}

/**
 * The contrastive targets of a batch: row i spreads probability 1 evenly over the batch positions showing the same
 * person as image i (i included). Without identities (and always in the `post` preset) that is the identity
 * matrix: the post's `arange` targets.
 */
export function contrastiveTargets(n: number, ids: ArrayLike<number> | null): tf.Tensor2D {
  const t = new Float32Array(n * n);
  for (let i = 0; i < n; i++) {
    if (ids === null) {
      t[i * n + i] = 1;
      continue;
    }
    let same = 0;
    for (let j = 0; j < n; j++) if (ids[j] === ids[i]) same++;
    for (let j = 0; j < n; j++) if (ids[j] === ids[i]) t[i * n + j] = 1 / same;
  }
  return tf.tensor2d(t, [n, n]);
}

/** Cross-entropy of logits against target distributions, averaged over rows (= F.cross_entropy for one-hot targets). */
export function softCrossEntropy(logits: tf.Tensor2D, targets: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => tf.neg(tf.mean(tf.sum(tf.mul(targets, tf.sub(logits, tf.logSumExp(logits, 1, true))), 1))) as tf.Scalar);
}

/** torch.nn.functional.normalize(x, dim=1): rows divided by max(‖row‖, 1e-12). */
export function normalizeRows(x: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => tf.div(x, tf.maximum(tf.sqrt(tf.sum(tf.square(x), 1, true)), 1e-12)) as tf.Tensor2D);
}

/** The loss of a batch from its embeddings `e` and those of its rotated copy `r` (both [B, D]). */
export function finetuneLoss(e: tf.Tensor2D, r: tf.Tensor2D, targets: tf.Tensor2D, settings: LossSettings): LossTensors {
  return tf.tidy(() => {
    let contrastive: tf.Scalar;
    let orientation: tf.Scalar;
    if (settings.preset === "post") {
      orientation = tf.mean(tf.square(tf.add(e, r))) as tf.Scalar; // mse_loss(e, −r)
      contrastive = softCrossEntropy(tf.matMul(e, e, false, true), targets); // raw dot products, as the post
    } else {
      const z = normalizeRows(e);
      const zr = normalizeRows(r);
      orientation = tf.mean(tf.sum(tf.square(tf.add(z, zr)), 1)) as tf.Scalar; // 2(1 + cos(e, r)): 0 when opposite
      contrastive = softCrossEntropy(tf.div(tf.matMul(z, z, false, true), settings.temperature), targets);
    }
    return { loss: tf.add(contrastive, orientation) as tf.Scalar, contrastive, orientation };
  });
}

