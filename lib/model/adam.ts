// Adam exactly as torch.optim.Adam (PyTorch 1.13): betas (0.9, 0.999), eps 1e-8, weight_decay as an L2 term added
// to the gradient. One optimiser for the ResNet18 fine-tuning and the sparse autoencoder; its moments are plain
// variables in parameter order, so checkpoints can save and restore them.

import { tf } from "../kernels/backend";

export interface AdamOptions {
  /** The default step size (a step may pass its own, e.g. during warm-up). */
  readonly learningRate?: number;
  readonly weightDecay?: number;
  readonly beta1?: number;
  readonly beta2?: number;
  readonly eps?: number;
}

/** A variable holding a copy of `initial`'s shape filled with zeros; the temporary is disposed. */
function zerosVariable(like: tf.Tensor): tf.Variable {
  const zeros = tf.zerosLike(like);
  const v = tf.variable(zeros, false);
  zeros.dispose();
  return v;
}

export class Adam {
  readonly m: tf.Variable[];
  readonly v: tf.Variable[];
  /** Updates made so far (torch's `state["step"]`). */
  step = 0;
  readonly learningRate: number;
  private readonly weightDecay: number;
  private readonly beta1: number;
  private readonly beta2: number;
  private readonly eps: number;

  constructor(
    readonly params: readonly tf.Variable[],
    options: AdamOptions = {},
  ) {
    this.learningRate = options.learningRate ?? 1e-3;
    this.weightDecay = options.weightDecay ?? 0;
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.999;
    this.eps = options.eps ?? 1e-8;
    this.m = params.map(zerosVariable);
    this.v = params.map(zerosVariable);
  }

  /** One update; `grads[i]` belongs to `params[i]` (null: no gradient, that parameter is left alone). */
  apply(grads: readonly (tf.Tensor | null)[], learningRate: number = this.learningRate): void {
    this.step++;
    const bc1 = 1 - this.beta1 ** this.step;
    const bc2Sqrt = Math.sqrt(1 - this.beta2 ** this.step);
    // One tidy per parameter: its dozen temporaries are freed before the next parameter's are made (for the SAE's
    // 512 × 16,384 weights, 12 × 32 MB each).
    this.params.forEach((p, i) => {
      const raw = grads[i];
      if (raw === null) return;
      tf.tidy(() => {
        const g = this.weightDecay === 0 ? raw : tf.add(raw, tf.mul(p, this.weightDecay));
        const m = tf.add(tf.mul(this.m[i], this.beta1), tf.mul(g, 1 - this.beta1));
        const v = tf.add(tf.mul(this.v[i], this.beta2), tf.mul(tf.square(g), 1 - this.beta2));
        this.m[i].assign(m);
        this.v[i].assign(v);
        const denom = tf.add(tf.div(tf.sqrt(v), bc2Sqrt), this.eps);
        p.assign(tf.sub(p, tf.mul(tf.div(m, denom), learningRate / bc1)));
      });
    });
  }

  /** The moments, flat: all of m (in parameter order), then all of v. */
  state(): Float32Array {
    const size = this.m.reduce((s, t) => s + t.size, 0);
    const out = new Float32Array(2 * size);
    let at = 0;
    for (const t of [...this.m, ...this.v]) {
      out.set(t.dataSync() as Float32Array, at);
      at += t.size;
    }
    return out;
  }

  /** Continues from `state()`'s output and a step count. */
  load(state: Float32Array, step: number): void {
    const size = this.m.reduce((s, t) => s + t.size, 0);
    if (state.length !== 2 * size) throw new Error(`Adam state holds ${state.length} values, this model needs ${2 * size}: the checkpoint is of another model`);
    let at = 0;
    for (const t of [...this.m, ...this.v]) {
      const values = tf.tensor(state.subarray(at, at + t.size), t.shape);
      t.assign(values);
      values.dispose();
      at += t.size;
    }
    this.step = step;
  }

  dispose(): void {
    for (const t of [...this.m, ...this.v]) t.dispose();
  }
}
