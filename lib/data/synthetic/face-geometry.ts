// Where things are on a synthetic face: the "face frame" (pixels at scale 1, origin at the face centre between
// the eyes and the nose, y down), the measurements of one identity in one photo (face and jaw widths, hair outline,
// mouth, yaw shifts), and the transform from the face frame to image pixels, which gives the landmarks' positions.

import type { FaceSpec } from "./spec";
import type { Point } from "./svg-paint";

/** Where the face centre sits in the image when offsets are 0 (eyes then land where CelebA's aligned eyes are). */
export const FACE_CENTRE: Point = [89, 119];
/** Face-frame positions of landmarks (before yaw shifts the features). */
export const EYE_Y = -8;
export const EYE_DX = 19;

/** The face-frame measurements of one identity in one photo. */
export interface Geometry {
  readonly w: number; // half face width at the cheekbones
  readonly jaw: number; // half width at the jaw corner
  readonly chinY: number;
  readonly topY: number; // top of the skull
  readonly hairRx: number; // hair outline half width
  readonly hairRy: number; // hair outline half height (centred at y = HAIR_CY)
  readonly neckW: number;
  readonly necklineY: number; // lowest point of the neckline
  readonly fx: number; // yaw shift of eyes and brows
  readonly noseX: number; // yaw shift of the nose tip
  readonly mouthX: number;
  readonly mouthY: number;
  readonly mouthW: number; // half width
}

export const HAIR_CY = -12;

export function geometry(spec: FaceSpec): Geometry {
  const id = spec.identity;
  const f = spec.factors;
  const w = 38 + 8 * id.faceWidth;
  const volume = id.hairStyle === "bald" ? 1 : id.hairStyle === "buzz" ? 2 : 3 + 8 * id.hairVolume;
  // Short styles are cropped close at the sides and keep their volume on top; longer ones are full all round.
  const sideVolume = id.hairStyle === "short" || id.hairStyle === "side_part" ? 1.5 + 0.4 * volume : volume;
  return {
    w,
    jaw: w * (0.6 + 0.25 * id.jawWidth),
    chinY: 56 + 8 * id.chinLength,
    topY: -62,
    hairRx: w + sideVolume,
    hairRy: 50 + volume * 1.15,
    neckW: w * 0.4 + 2 * id.jawWidth,
    necklineY: id.male ? 86 : 104,
    fx: f.yaw * 7,
    noseX: f.yaw * 11,
    mouthX: f.yaw * 7,
    mouthY: 32 + 3 * id.chinLength,
    mouthW: 9.5 + 4 * id.mouthWidth + 2.5 * f.smile,
  };
}

/** Point on the hair outline at angle `a` (radians; 0 = right, −π/2 = top). */
export function hairOutline(g: Geometry, a: number, extra = 0): Point {
  return [(g.hairRx + extra) * Math.cos(a), HAIR_CY + (g.hairRy + extra) * Math.sin(a)];
}

/** Maps a face-frame point to image pixels for `spec` (the same transform the SVG uses). */
export function faceToImage(spec: FaceSpec, x: number, y: number): Point {
  const f = spec.factors;
  const a = (f.rotationDeg * Math.PI) / 180;
  const sx = x * f.scale, sy = y * f.scale;
  return [FACE_CENTRE[0] + f.offsetX + sx * Math.cos(a) - sy * Math.sin(a), FACE_CENTRE[1] + f.offsetY + sx * Math.sin(a) + sy * Math.cos(a)];
}

/** Image-pixel positions of landmarks of `spec`, for measurements and tests. "Left" is the image's left. */
export interface FaceLandmarks {
  readonly leftEye: Point;
  readonly rightEye: Point;
  readonly noseTip: Point;
  readonly mouth: Point;
  /** A point in the hair mass on top of the head (bald: bare scalp; hat: the hat). */
  readonly crown: Point;
  /** Radius of a round lens / half width of a rectangular one, in image pixels. */
  readonly lensRadius: number;
}

export function faceLandmarks(spec: FaceSpec): FaceLandmarks {
  const g = geometry(spec);
  return {
    leftEye: faceToImage(spec, -EYE_DX + g.fx, EYE_Y),
    rightEye: faceToImage(spec, EYE_DX + g.fx, EYE_Y),
    noseTip: faceToImage(spec, g.noseX, 15),
    mouth: faceToImage(spec, g.mouthX, g.mouthY),
    crown: faceToImage(spec, 0, HAIR_CY - g.hairRy + 6),
    lensRadius: 11 * spec.factors.scale,
  };
}
