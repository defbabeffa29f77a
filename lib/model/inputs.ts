// What fine-tuning's model sees: the preset's preprocessing of the loader's [0, 1] pixels, the 180° turn of the
// post's orientation loss, and (recommended preset) random views of each face.

import { tf } from "../kernels/backend";
import type { Preset } from "../run/config";
import { IMAGENET_MEAN, IMAGENET_STD } from "./imagenet";
import { Rng } from "../util/random";

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


// ---------------------------------------------------------------------------------------------------------------
// Augmented views (the recommended preset)

/** The share of the image a random crop keeps (area) and its aspect ratio range, as torchvision's
 *  RandomResizedCrop draws them, milder: a face must stay a face. */
export const CROP_AREA: readonly [number, number] = [0.6, 1];
export const CROP_RATIO: readonly [number, number] = [3 / 4, 4 / 3];

/**
 * Each image of the batch as a random view of itself: a crop of 60–100 % of its area (aspect 3:4 to 4:3) resized
 * back to the batch's size (bilinear), mirrored left–right half of the time — torchvision's RandomResizedCrop and
 * RandomHorizontalFlip. Seeded by (seed, step): a resumed run sees the same views. Two copies of one picture in a
 * batch (identity-balanced batches of people with one picture) become two different views of it.
 */
export function augmentViews(x: tf.Tensor4D, seed: number, step: number): tf.Tensor4D {
  const [n, height, width] = x.shape;
  const rng = new Rng(seed, 0xa06, step);
  const boxes: number[] = [];
  for (let i = 0; i < n; i++) {
    const area = rng.uniform(CROP_AREA[0], CROP_AREA[1]);
    const ratio = Math.exp(rng.uniform(Math.log(CROP_RATIO[0]), Math.log(CROP_RATIO[1])));
    const w = Math.min(1, Math.sqrt(area * ratio));
    const h = Math.min(1, Math.sqrt(area / ratio));
    const top = rng.uniform(0, 1 - h);
    const left = rng.uniform(0, 1 - w);
    const mirror = rng.chance(0.5);
    // cropAndResize's box is [y1, x1, y2, x2] in [0, 1]; x1 > x2 reads the crop mirrored
    boxes.push(top, mirror ? left + w : left, top + h, mirror ? left : left + w);
  }
  return tf.tidy(() => tf.image.cropAndResize(x, tf.tensor2d(boxes, [n, 4]), tf.range(0, n, 1, "int32") as tf.Tensor1D, [height, width], "bilinear"));
}
