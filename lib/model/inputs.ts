// What fine-tuning's model sees: the preset's preprocessing of the loader's [0, 1] pixels, and the 180° turn of the
// post's orientation loss.

import { tf } from "../kernels/backend";
import type { Preset } from "../run/config";
import { IMAGENET_MEAN, IMAGENET_STD } from "./imagenet";

// ---------------------------------------------------------------------------------------------------------------
// Inputs

/** What the model sees: `post` the loader's [0, 1] pixels as they are (ToTensor()), `recommended` ImageNet-normalised. */
export function preprocess(x: tf.Tensor4D, preset: Preset): tf.Tensor4D {
  if (preset === "post") return x.clone();
  return tf.tidy(() => tf.div(tf.sub(x, IMAGENET_MEAN), IMAGENET_STD) as tf.Tensor4D);
}

/** The images turned 180°: torch.rot90(images, 2, (2, 3)) on NCHW is a flip of height and width (NHWC axes 1, 2). */
export function rotate180(x: tf.Tensor4D): tf.Tensor4D {
  return tf.reverse(x, [1, 2]);
}

