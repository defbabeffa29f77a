// Draws a FaceSpec as a 178×218 SVG. The person is drawn in a "face frame" (lib/data/synthetic/face-geometry: pixels
// at scale 1, origin at the face centre between the eyes and the nose, y down) and placed with one transform:
//   translate(89 + offsetX, 119 + offsetY) rotate(rotationDeg) scale(scale)
// so position, size and in-plane rotation are exact image-space factors. Side lighting is a linear gradient on each
// material (skin, hair, clothes, hat) whose direction is fixed in the image, so it does not turn with the head.

import type { FaceSpec, HairColor, EyeColor } from "./spec";
import { SYNTHETIC_IMAGE_HEIGHT, SYNTHETIC_IMAGE_WIDTH } from "./spec";
import { EYE_DX, EYE_Y, FACE_CENTRE, geometry, hairOutline, HAIR_CY, type Geometry } from "./face-geometry";
import { BLACK, hex, hslToRgb, mirror, mix, n, pt, ramp, smoothPath, times, wavyPolyline, WHITE, type Point, type Rgb } from "./svg-paint";

// ---------------------------------------------------------------------------------------------- colours

const SKIN: readonly (readonly [number, Rgb])[] = [
  [0, [72, 43, 28]], [0.25, [126, 76, 48]], [0.5, [178, 124, 88]], [0.75, [222, 176, 142]], [1, [250, 222, 204]],
];
const HAIR: Record<HairColor, readonly [Rgb, Rgb]> = {
  black: [[22, 18, 16], [52, 42, 36]],
  brown: [[62, 38, 22], [130, 84, 48]],
  blond: [[196, 156, 84], [240, 214, 150]],
  gray: [[138, 136, 133], [218, 216, 212]],
  red: [[118, 40, 18], [184, 84, 38]],
};
const IRIS: Record<EyeColor, Rgb> = {
  brown: [88, 52, 28], hazel: [136, 104, 50], green: [62, 128, 72], blue: [62, 122, 190], gray: [128, 140, 152],
};
const FRAME_COLOURS: readonly Rgb[] = [[20, 20, 20], [58, 36, 20], [26, 36, 70], [72, 22, 22]];
const LIPSTICK: readonly Rgb[] = [[192, 28, 44], [214, 78, 128], [128, 36, 78], [224, 92, 72]];
const EYESHADOW: readonly Rgb[] = [[122, 74, 138], [138, 90, 64], [74, 106, 154], [154, 106, 138]];
const GOLD: Rgb = [214, 176, 60];

// ---------------------------------------------------------------------------------------------- the head

function headPath(g: Geometry): string {
  const { w, jaw, chinY, topY } = g;
  const right = `C${n(w * 0.62)} ${topY} ${n(w)} ${n(topY * 0.62)} ${n(w)} -12C${n(w)} 14 ${n(jaw + 5)} 32 ${n(jaw)} 42` +
    `C${n(jaw - 6)} ${n(chinY - 5)} 15 ${n(chinY)} 0 ${n(chinY)}`;
  const left = `C-15 ${n(chinY)} ${n(-(jaw - 6))} ${n(chinY - 5)} ${n(-jaw)} 42C${n(-(jaw + 5))} 32 ${n(-w)} 14 ${n(-w)} -12` +
    `C${n(-w)} ${n(topY * 0.62)} ${n(-w * 0.62)} ${topY} 0 ${topY}Z`;
  return `M0 ${topY}${right}${left}`;
}

// ---------------------------------------------------------------------------------------------- drawing parts

/** Colours of one photo, after exposure. */
interface Palette {
  readonly skin: Rgb;
  readonly skinDark: Rgb;
  readonly hair: Rgb;
  readonly hairDark: Rgb;
  readonly brow: Rgb;
  readonly cloth: Rgb;
  readonly hat: Rgb;
  readonly lips: Rgb;
}

function palette(spec: FaceSpec): Palette {
  const id = spec.identity;
  const f = spec.factors;
  const e = f.exposure;
  const skinBase = ramp(SKIN, id.skinTone);
  const [dark, light] = HAIR[id.hairColor];
  const hairBase = mix(dark, light, (id.hairShade + 1) / 2);
  const browBase = id.hairColor === "blond" ? mix(hairBase, [96, 66, 40], 0.55) : id.hairColor === "gray" ? mix(hairBase, BLACK, 0.25) : mix(hairBase, BLACK, 0.3);
  const natural = mix(mix(skinBase, [176, 72, 80], 0.45), BLACK, 0.12);
  const clothBase = f.necktie ? hslToRgb(f.clothingHueDeg, 0.25, 0.12 + 0.25 * f.clothingLightness) : hslToRgb(f.clothingHueDeg, 0.45, f.clothingLightness);
  return {
    skin: times(skinBase, e),
    skinDark: times(mix(skinBase, BLACK, 0.45), e),
    hair: times(hairBase, e),
    hairDark: times(mix(hairBase, BLACK, 0.35), e),
    brow: times(browBase, e),
    cloth: times(clothBase, e),
    hat: times(hslToRgb(f.hatHueDeg, 0.5, 0.38), e),
    lips: times(f.lipstick ? LIPSTICK[id.lipstickShade % LIPSTICK.length] : natural, e),
  };
}

/** A linear gradient fixed in image space: lit side towards the key light, shadow on the other side. */
function lightGradient(id: string, base: Rgb, spec: FaceSpec): string {
  const f = spec.factors;
  const k = Math.abs(f.lightX);
  const side = f.lightX < 0 ? -1 : 1;
  const len = Math.hypot(1, 0.35);
  const ux = side / len, uy = -0.35 / len; // towards the light, in the image
  const a = (-f.rotationDeg * Math.PI) / 180; // image → face frame
  const fxu = ux * Math.cos(a) - uy * Math.sin(a);
  const fyu = ux * Math.sin(a) + uy * Math.cos(a);
  const d = 45;
  const shadow = mix(base, BLACK, 0.6 * k);
  const lit = mix(base, WHITE, 0.25 * k);
  return `<linearGradient id="${id}" gradientUnits="userSpaceOnUse" x1="${n(-d * fxu)}" y1="${n(-d * fyu)}" x2="${n(d * fxu)}" y2="${n(d * fyu)}">` +
    `<stop offset="0" stop-color="${hex(shadow)}"/><stop offset="0.5" stop-color="${hex(base)}"/><stop offset="1" stop-color="${hex(lit)}"/></linearGradient>`;
}

function hairLength(spec: FaceSpec): number {
  return spec.identity.hairStyle === "long" ? 104 : spec.identity.hairStyle === "bob" ? 44 : 0;
}

function waveFor(spec: FaceSpec, amplitude: number): ((s: number) => number) | undefined {
  if (!spec.identity.wavyHair) return undefined;
  const phase = spec.identity.hairShade * 3;
  return (s) => amplitude * Math.sin(s / 4.2 + phase);
}

function backHair(spec: FaceSpec, g: Geometry): string {
  const L = hairLength(spec);
  if (L === 0) return "";
  const flare = spec.identity.hairStyle === "long" ? 9 : 4;
  const top: Point[] = [];
  for (let k = 0; k <= 12; k++) top.push(hairOutline(g, Math.PI + (Math.PI * k) / 12, 1));
  const rightSide = wavyPolyline([[g.hairRx + 1, HAIR_CY], [g.hairRx + flare, L]], 5, waveFor(spec, 2.2)).slice(1);
  const inner = spec.identity.hairStyle === "long"
    ? [[g.w * 0.55, L], [g.neckW + 2, 62]] as Point[]
    : [[g.hairRx * 0.5, L + 2]] as Point[];
  const right = [...rightSide, ...inner];
  const points = [...top.slice(0, -1), ...right, ...mirror(right)];
  return `<path d="${smoothPath(points, true)}" fill="url(#lhairback)"/>`;
}

/** The closed outline of the hair in front of the head (cap, sides, locks, fringe), or undefined when bald. */
function frontHairOutline(spec: FaceSpec, g: Geometry): Point[] | undefined {
  const id = spec.identity;
  if (id.hairStyle === "bald") return undefined;
  const { w } = g;
  const L = hairLength(spec);
  const locks = L > 0;
  const lockEnd = id.hairStyle === "long" ? L - 4 : L - 2;
  const sideBottom = id.hairStyle === "buzz" ? -6 : id.hairStyle === "side_part" ? 0 : -2;
  const wave = waveFor(spec, 1.8);
  // Outer edge, from the right side's bottom over the top to the left side's bottom.
  const outerRight: Point[] = locks
    ? wavyPolyline([[g.hairRx + (id.hairStyle === "long" ? 8 : 4), lockEnd], [g.hairRx + 0.5, HAIR_CY + 4]], 5, wave)
    : [[g.hairRx - 0.5, sideBottom]];
  const arc: Point[] = [];
  for (let k = 0; k <= 16; k++) arc.push(hairOutline(g, -(Math.PI * k) / 16));
  const outerLeft = mirror(outerRight);
  // Inner edge (the hairline), from the left side back to the right side.
  const lockInnerRight: Point[] = locks
    ? id.hairStyle === "long"
      ? [[w - 5, -18], [w - 4, 4], [w - 5, 26], [g.jaw + 3, 46], [g.w * 0.62, 72], [g.w * 0.72, lockEnd]]
      : [[w - 5, -18], [w - 4, 6], [w - 5, 26], [g.jaw + 4, lockEnd]]
    : [[w - 4, -20], [w - 3.5, sideBottom]];
  const lockInnerLeft = mirror(lockInnerRight);
  let hairline: Point[];
  if (id.bangs) {
    hairline = [];
    const teeth = 9;
    for (let k = 0; k <= teeth; k++) {
      const x = -(w - 6) + (2 * (w - 6) * k) / teeth;
      const dip = id.wavyHair ? 3.5 * Math.sin(k * 1.7) : k % 2 === 0 ? 0 : 3;
      hairline.push([x, -20 + dip - 3 * Math.sin((Math.PI * k) / teeth) * 0.3]);
    }
  } else if (id.recedingHairline) {
    hairline = [[-(w - 6), -30], [-w * 0.55, -52], [-w * 0.2, -49], [0, -47], [w * 0.2, -49], [w * 0.55, -52], [w - 6, -30]];
  } else if (id.hairStyle === "side_part") {
    hairline = [[-(w - 6), -32], [-w * 0.55, -44], [-w * 0.15, -45], [w * 0.3, -42], [w * 0.62, -37], [w - 5, -27]];
  } else {
    hairline = [[-(w - 5.5), -28], [-w * 0.62, -40], [0, -45], [w * 0.62, -40], [w - 5.5, -28]];
  }
  // Right side up → over the top → left side down → left inner edge up → hairline → right inner edge down.
  return [...outerRight, ...arc.slice(1, -1), ...outerLeft, ...lockInnerLeft, ...hairline, ...lockInnerRight];
}

function hairStrands(spec: FaceSpec, g: Geometry, clipId: string): string {
  const id = spec.identity;
  const L = hairLength(spec);
  const lines: string[] = [];
  const wave = id.wavyHair ? (s: number): number => 1.6 * Math.sin(s / 3.5) : undefined;
  const top = HAIR_CY - g.hairRy;
  const partX = id.hairStyle === "side_part" ? -g.w * 0.35 : 0;
  for (let k = -3; k <= 3; k++) {
    const endX = (g.w - 4) * (k / 3.2);
    const endY = id.bangs ? -19 : -36 + Math.abs(k) * 3;
    lines.push(smoothPath(wavyPolyline([[partX + k * 3, top + 2], [endX * 0.8 + partX * 0.3, (top + endY) / 2], [endX, endY]], 4, wave), false));
  }
  if (L > 0) {
    for (const side of [-1, 1]) {
      for (let k = 0; k < 3; k++) {
        const x0 = side * (g.w - 2 + k * 3);
        lines.push(smoothPath(wavyPolyline([[x0, -30], [x0 + side * 2, 10], [x0 + side * (id.hairStyle === "long" ? 8 : 3), L - 3]], 4, wave), false));
      }
    }
  }
  if (id.hairStyle === "side_part") lines.push(`M${n(partX)} ${n(top + 1)}Q${n(partX - 1)} ${n(top + 10)} ${n(partX - 3)} -36`);
  return `<g clip-path="url(#${clipId})" fill="none" stroke="${hex(times(mix(HAIR[id.hairColor][0], BLACK, 0.4), spec.factors.exposure))}" stroke-width="0.9" stroke-opacity="0.55" stroke-linecap="round">` +
    lines.map((d) => `<path d="${d}"/>`).join("") + "</g>";
}

function frontHair(spec: FaceSpec, g: Geometry, p: Palette): string {
  if (spec.identity.hairStyle === "bald") {
    const fringe = (side: number): string => smoothPath(
      [[side * (g.w + 2.5), -26], [side * (g.w + 3), -4], [side * (g.w - 2), 2], [side * (g.w - 3.5), -22]], true);
    const shine = `<ellipse cx="${n(-g.w * 0.3)}" cy="-46" rx="10" ry="6" fill="#ffffff" fill-opacity="0.18"/>`;
    return `<path d="${fringe(-1)}${fringe(1)}" fill="url(#lhair)"/>${shine}`;
  }
  const outline = frontHairOutline(spec, g);
  if (outline === undefined) return "";
  const d = smoothPath(outline, true);
  return `<clipPath id="hairclip"><path d="${d}"/></clipPath><path d="${d}" fill="url(#lhair)"/>` + hairStrands(spec, g, "hairclip") +
    `<path d="${d}" fill="none" stroke="${hex(p.hairDark)}" stroke-width="0.6" stroke-opacity="0.5"/>`;
}

function torso(spec: FaceSpec, g: Geometry): string {
  const nw = g.neckW;
  const d = `M${n(-nw - 4)} 70Q${n(-nw - 8)} 78 -40 80C-76 84 -102 94 -114 132L-114 215L114 215L114 132C102 94 76 84 40 80` +
    `Q${n(nw + 8)} 78 ${n(nw + 4)} 70Q0 ${n(g.necklineY)} ${n(-nw - 4)} 70Z`;
  return `<path d="${d}" fill="url(#lcloth)"/>`;
}

function neck(g: Geometry): string {
  const nw = g.neckW;
  return `<path d="M${n(-nw)} 20L${n(-nw - 4)} 70Q0 ${n(g.necklineY)} ${n(nw + 4)} 70L${n(nw)} 20Z" fill="url(#lskin)"/>` +
    `<path d="M${n(-nw - 4)} 70Q0 ${n(g.necklineY)} ${n(nw + 4)} 70L${n(nw)} 20L${n(-nw)} 20Z" fill="#000000" fill-opacity="0.1"/>` +
    `<ellipse cx="0" cy="${n(g.chinY + 1)}" rx="${n(g.jaw * 0.85)}" ry="7" fill="#000000" fill-opacity="0.12"/>`;
}

function clothingDetails(spec: FaceSpec, g: Geometry): string {
  const f = spec.factors;
  const nw = g.neckW;
  const e = f.exposure;
  let out = "";
  if (f.necktie) {
    const shirt = hex(times([238, 238, 234], e));
    const tie = hex(times(hslToRgb(f.clothingHueDeg + 180, 0.6, 0.35), e));
    out += `<path d="M${n(-nw - 5)} 69L${n(nw + 5)} 69L10 140L-10 140Z" fill="${shirt}"/>`;
    out += `<path d="M${n(-nw - 4)} 66L-2 78L${n(-nw + 2)} 86Z" fill="${shirt}" stroke="#000" stroke-opacity="0.2" stroke-width="0.6"/>`;
    out += `<path d="M${n(nw + 4)} 66L2 78L${n(nw - 2)} 86Z" fill="${shirt}" stroke="#000" stroke-opacity="0.2" stroke-width="0.6"/>`;
    out += `<path d="M-4 76L4 76L3 84L-3 84Z" fill="${tie}"/><path d="M-3 84L3 84L7 126L0 134L-7 126Z" fill="${tie}"/>`;
  }
  if (f.necklace) {
    const gold = hex(times(GOLD, e));
    const yLow = 64 + (g.necklineY - 64) * 0.55;
    out += `<path d="M${n(-nw - 1)} 62Q0 ${n(2 * yLow - 62)} ${n(nw + 1)} 62" fill="none" stroke="${gold}" stroke-width="1.2"/>`;
    out += `<circle cx="0" cy="${n(yLow + 2.5)}" r="2.6" fill="${gold}"/>`;
  }
  return out;
}

function ears(spec: FaceSpec, g: Geometry, p: Palette): string {
  const shift = -spec.factors.yaw * 1.5;
  let out = "";
  for (const side of [-1, 1]) {
    const cx = side * (g.w - 1) + shift;
    out += `<ellipse cx="${n(cx)}" cy="4" rx="6.5" ry="11.5" fill="url(#lskin)"/>`;
    out += `<path d="M${n(cx + side * 2.5)} -3Q${n(cx - side * 1)} 2 ${n(cx + side * 1.5)} 11" fill="none" stroke="${hex(p.skinDark)}" stroke-width="1" stroke-opacity="0.6"/>`;
    if (spec.factors.earrings) out += `<circle cx="${n(cx + side * 0.5)}" cy="16" r="2.2" fill="${hex(times(GOLD, spec.factors.exposure))}"/>`;
  }
  return out;
}

function skinDetails(spec: FaceSpec, g: Geometry, p: Palette): string {
  const id = spec.identity;
  let out = "";
  const line = (d: string, opacity: number, width = 1): string =>
    `<path d="${d}" fill="none" stroke="${hex(p.skinDark)}" stroke-width="${n(width)}" stroke-opacity="${n(opacity)}" stroke-linecap="round"/>`;
  if (id.rosyCheeks) {
    out += `<circle cx="${n(-23 + g.fx)}" cy="12" r="9" fill="url(#rosy)"/><circle cx="${n(23 + g.fx)}" cy="12" r="9" fill="url(#rosy)"/>`;
  }
  const wrinkles = Math.min(1, Math.max(0, (id.age - 42) / 28)) * 0.6;
  if (wrinkles > 0) {
    out += line("M-15 -31Q0 -34 15 -31M-12 -26Q0 -28.5 12 -26", wrinkles, 0.8);
    for (const side of [-1, 1]) {
      out += line(`M${n(g.noseX + side * 8)} 13Q${n(g.mouthX + side * (g.mouthW + 5))} ${n(g.mouthY - 6)} ${n(g.mouthX + side * (g.mouthW + 3.5))} ${n(g.mouthY + 5)}`, wrinkles, 0.9);
    }
  }
  if (id.eyeBags) {
    for (const side of [-1, 1]) {
      const x = side * EYE_DX + g.fx;
      out += line(`M${n(x - 6)} ${n(EYE_Y + 5)}Q${n(x)} ${n(EYE_Y + 9)} ${n(x + 6)} ${n(EYE_Y + 5)}`, 0.5, 0.9);
    }
  }
  // Nose: shadow side line and nostrils.
  const s = 0.8 + 0.5 * id.noseSize;
  const tipY = 13 + 4 * id.noseSize;
  const nx = g.noseX;
  const bridge = g.fx * 0.6;
  const shadowSide = spec.factors.lightX < 0 ? 1 : -1;
  out += line(`M${n(bridge + shadowSide * 3)} -6Q${n(bridge + shadowSide * 4.5 * s)} 6 ${n(nx + shadowSide * 5.5 * s)} ${n(tipY - 1.5)}`, 0.45, 1.1);
  out += line(`M${n(nx - 7 * s)} ${n(tipY - 1.5)}Q${n(nx - 5.5 * s)} ${n(tipY + 3)} ${n(nx - 2.5)} ${n(tipY + 1.5)}Q${n(nx)} ${n(tipY + 3)} ${n(nx + 2.5)} ${n(tipY + 1.5)}` +
    `Q${n(nx + 5.5 * s)} ${n(tipY + 3)} ${n(nx + 7 * s)} ${n(tipY - 1.5)}`, 0.75, 1.2);
  out += `<ellipse cx="${n(nx)}" cy="${n(tipY - 2.5)}" rx="${n(3 * s)}" ry="2.2" fill="#ffffff" fill-opacity="0.13"/>`;
  if (spec.factors.smile > 0.5) {
    const o = Math.min(0.6, (spec.factors.smile - 0.5) * 1.2);
    const cy = g.mouthY - spec.factors.smile * 5;
    for (const side of [-1, 1]) {
      const cx = g.mouthX + side * (g.mouthW + 2);
      out += line(`M${n(cx)} ${n(cy - 3)}Q${n(cx + side * 2.5)} ${n(cy)} ${n(cx)} ${n(cy + 3)}`, o, 0.9);
    }
  }
  return out;
}

function eyes(spec: FaceSpec, g: Geometry, p: Palette): string {
  const id = spec.identity;
  const f = spec.factors;
  const o = f.eyeOpenness;
  const e = f.exposure;
  const white = hex(times(mix([242, 238, 232], p.skin, 0.12), Math.min(1, e)));
  const iris = hex(times(IRIS[id.eyeColor], e));
  const lid = hex(mix(p.skinDark, BLACK, 0.55));
  const lookX = f.yaw * 1.6;
  let defs = "";
  let out = "";
  for (const [side, key] of [[-1, "eyeL"], [1, "eyeR"]] as const) {
    const x = side * EYE_DX + g.fx;
    const y = EYE_Y;
    const almond = `M${n(x - 8.5)} ${n(y)}Q${n(x)} ${n(y - 7.5 * o)} ${n(x + 8.5)} ${n(y)}Q${n(x)} ${n(y + 5.5 * o)} ${n(x - 8.5)} ${n(y)}Z`;
    defs += `<clipPath id="${key}"><path d="${almond}"/></clipPath>`;
    if (f.eyeshadow) {
      out += `<path d="M${n(x - 9.5)} ${n(y)}Q${n(x)} ${n(y - 7.5 * o - 7)} ${n(x + 9.5)} ${n(y)}Q${n(x)} ${n(y - 7.5 * o)} ${n(x - 9.5)} ${n(y)}Z" fill="${hex(times(EYESHADOW[id.lipstickShade % EYESHADOW.length], e))}" fill-opacity="0.6"/>`;
    }
    out += `<path d="${almond}" fill="${white}"/>`;
    out += `<g clip-path="url(#${key})"><circle cx="${n(x + lookX)}" cy="${n(y - 0.5)}" r="4" fill="${iris}"/>` +
      `<circle cx="${n(x + lookX)}" cy="${n(y - 0.5)}" r="4" fill="none" stroke="#000" stroke-opacity="0.35" stroke-width="0.7"/>` +
      `<circle cx="${n(x + lookX)}" cy="${n(y - 0.5)}" r="1.8" fill="#0b0b0b"/>` +
      `<circle cx="${n(x + lookX + 1.2)}" cy="${n(y - 1.8)}" r="0.9" fill="#ffffff" fill-opacity="0.9"/></g>`;
    out += `<path d="M${n(x - 9)} ${n(y + 0.4)}Q${n(x)} ${n(y - 7.5 * o - 0.8)} ${n(x + 9)} ${n(y)}" fill="none" stroke="${lid}" stroke-width="${f.lipstick ? 1.8 : 1.3}" stroke-linecap="round"/>`;
    out += `<path d="M${n(x - 7)} ${n(y + 1)}Q${n(x)} ${n(y + 5.5 * o + 0.6)} ${n(x + 7)} ${n(y + 1)}" fill="none" stroke="${hex(p.skinDark)}" stroke-width="0.6" stroke-opacity="0.5"/>`;
    // Eyebrow: raised a little by the smile, arched by the identity's brow_arch.
    const by = -19 - 0.8 * f.smile;
    const inner = x - side * 9.5, outer = x + side * 9.5;
    out += `<path d="M${n(inner)} ${n(by + 1.5)}Q${n(x + side * 1)} ${n(by - 2 - 4 * id.browArch)} ${n(outer)} ${n(by + 2 + id.browArch)}" fill="none" stroke="${hex(p.brow)}"` +
      ` stroke-width="${n(1.4 + 2.8 * id.browThickness)}" stroke-linecap="round"/>`;
  }
  return `<defs>${defs}</defs>${out}`;
}

function mouth(spec: FaceSpec, g: Geometry, p: Palette): string {
  const id = spec.identity;
  const f = spec.factors;
  const x0 = g.mouthX, y0 = g.mouthY, mw = g.mouthW;
  const lt = 2 + 2 * id.lipFullness; // upper lip thickness
  const lb = 2.6 + 2.6 * id.lipFullness; // lower lip thickness
  const cornerY = y0 - f.smile * 5;
  const gap = f.mouthOpen * (5 + 3 * f.smile);
  const ul = y0 + f.smile * 1.2; // middle of the upper lip's lower edge
  const ll = ul + gap; // middle of the lower lip's upper edge
  const lbm = ll + lb + f.smile; // middle of the lower lip's lower edge
  const L: Point = [x0 - mw, cornerY], R: Point = [x0 + mw, cornerY];
  const q = (mid: number): number => 2 * mid - cornerY; // control y of a quadratic through the corners and `mid`
  const upperTop = `M${pt(L)}C${n(x0 - mw * 0.5)} ${n(y0 - lt - 0.6)} ${n(x0 - 2.2)} ${n(y0 - lt - 0.3)} ${n(x0)} ${n(y0 - lt + 0.8)}` +
    `C${n(x0 + 2.2)} ${n(y0 - lt - 0.3)} ${n(x0 + mw * 0.5)} ${n(y0 - lt - 0.6)} ${pt(R)}`;
  const upperLip = `${upperTop}Q${n(x0)} ${n(q(ul))} ${pt(L)}Z`;
  const lowerLip = `M${pt(R)}Q${n(x0)} ${n(q(lbm))} ${pt(L)}Q${n(x0)} ${n(q(ll))} ${pt(R)}Z`;
  let out = "";
  if (gap > 0.2) {
    const inside = `M${pt(L)}Q${n(x0)} ${n(q(ul))} ${pt(R)}Q${n(x0)} ${n(q(ll))} ${pt(L)}Z`;
    out += `<clipPath id="mouthclip"><path d="${inside}"/></clipPath><path d="${inside}" fill="${hex(times([58, 18, 24], f.exposure))}"/>`;
    out += `<g clip-path="url(#mouthclip)"><rect x="${n(x0 - mw * 0.75)}" y="${n(ul - 4)}" width="${n(mw * 1.5)}" height="${n(4 + Math.min(gap * 0.45, 3.2) + f.smile * 1.5)}" fill="${hex(times([240, 236, 226], Math.min(1, f.exposure)))}"/></g>`;
  }
  out += `<path d="${upperLip}" fill="${hex(p.lips)}"/><path d="${lowerLip}" fill="${hex(p.lips)}"/>`;
  out += `<path d="${lowerLip}" fill="#ffffff" fill-opacity="0.1"/>`;
  out += `<path d="M${pt(L)}Q${n(x0)} ${n(q(ul))} ${pt(R)}" fill="none" stroke="${hex(mix(p.lips, BLACK, 0.5))}" stroke-width="0.9"/>`;
  return out;
}

function facialHair(spec: FaceSpec, g: Geometry, p: Palette): string {
  const kind = spec.identity.facialHair;
  if (kind === "none") return "";
  const f = spec.factors;
  const id = spec.identity;
  const { w, jaw, chinY, mouthX: x0, mouthY: y0, mouthW: mw } = g;
  const lt = 2 + 2 * id.lipFullness;
  const lowerLipBottom = y0 + f.smile * 1.2 + f.mouthOpen * (5 + 3 * f.smile) + 2.6 + 2.6 * id.lipFullness + f.smile;
  const cornerY = y0 - f.smile * 5;
  const beardRight: Point[] = [[w + 0.5, -4], [w + 0.5, 14], [jaw + 2.5, 40], [jaw * 0.62, chinY - 1], [0, chinY + 3]];
  const beardInnerRight: Point[] = [[x0 + 2, lowerLipBottom + 3], [x0 + mw + 1.5, cornerY + 4], [x0 + mw + 5, cornerY - 3], [w - 9, 16], [w - 6, -4]];
  const negate = (points: readonly Point[]): Point[] => points.map(([x, y]) => [-x, y] as Point);
  // Left sideburn → chin → right sideburn, then the inner edge from the right temple under the lip to the left.
  const beard = smoothPath([...negate(beardRight), ...[...beardRight].reverse().slice(1), ...[...beardInnerRight].reverse(), ...negate(beardInnerRight).slice(1)], true);
  const moustache = `M${n(x0 - mw - 2.5)} ${n(cornerY + 1)}Q${n(x0 - mw * 0.5)} ${n(y0 - lt - 6.5)} ${n(x0)} ${n(y0 - lt - 4.5)}` +
    `Q${n(x0 + mw * 0.5)} ${n(y0 - lt - 6.5)} ${n(x0 + mw + 2.5)} ${n(cornerY + 1)}Q${n(x0 + mw * 0.4)} ${n(y0 - lt - 1)} ${n(x0)} ${n(y0 - lt - 0.8)}` +
    `Q${n(x0 - mw * 0.4)} ${n(y0 - lt - 1)} ${n(x0 - mw - 2.5)} ${n(cornerY + 1)}Z`;
  const goatee = smoothPath([[x0 - mw + 1, lowerLipBottom + 1], [x0 + mw - 1, lowerLipBottom + 1], [9, chinY - 1], [0, chinY + 2.5], [-9, chinY - 1]], true);
  const colour = hex(mix(p.hair, BLACK, 0.1));
  switch (kind) {
    case "stubble":
      return `<path d="${beard}${moustache}" fill="${hex(p.hairDark)}" fill-opacity="0.3"/>`;
    case "moustache":
      return `<path d="${moustache}" fill="${colour}"/>`;
    case "goatee":
      return `<path d="${goatee}" fill="${colour}"/>`;
    case "beard":
      return `<path d="${beard}" fill="${colour}"/><path d="${moustache}" fill="${colour}"/>`;
  }
}

function glasses(spec: FaceSpec, g: Geometry): string {
  const id = spec.identity;
  if (!spec.factors.eyeglasses) return "";
  const frame = hex(FRAME_COLOURS[id.glassesColor % FRAME_COLOURS.length]);
  const lens = id.tintedLenses ? `fill="#101010" fill-opacity="0.72"` : `fill="#ffffff" fill-opacity="0.12"`;
  const half = 11;
  let rims = "";
  let temples = "";
  for (const side of [-1, 1]) {
    const x = side * EYE_DX + g.fx;
    rims += id.glassesShape === "round"
      ? `<circle cx="${n(x)}" cy="${EYE_Y - 1}" r="${half}"/>`
      : `<rect x="${n(x - half - 1.5)}" y="${EYE_Y - 9}" width="${n(2 * half + 3)}" height="16" rx="4"/>`;
    const outer = x + side * (half + (id.glassesShape === "round" ? 0 : 1.5));
    temples += `M${n(outer)} ${EYE_Y - 3}L${n(side * (g.w + 1))} ${EYE_Y - 4}`;
  }
  const innerL = -EYE_DX + g.fx + half, innerR = EYE_DX + g.fx - half;
  const bridge = `M${n(innerL)} ${EYE_Y - 3}Q${n(g.fx)} ${EYE_Y - 7} ${n(innerR)} ${EYE_Y - 3}`;
  // Dark rims and bridge, then a thin glossy highlight on them so the frame also shows on the deepest skin tones.
  return `<g ${lens} stroke="${frame}" stroke-width="2.4">${rims}</g>` +
    `<path d="${temples}${bridge}" fill="none" stroke="${frame}" stroke-width="2.2"/>` +
    `<g fill="none" stroke="#ffffff" stroke-opacity="0.3" stroke-width="0.7">${rims}<path d="${bridge}"/></g>`;
}

function hat(spec: FaceSpec, g: Geometry, p: Palette): string {
  const style = spec.factors.hat;
  if (style === "none") return "";
  const rx = g.hairRx + 3;
  const top = HAIR_CY - g.hairRy;
  const shade = hex(mix(p.hat, BLACK, 0.35));
  switch (style) {
    case "beanie": {
      const dome = `M${n(-rx)} -30C${n(-rx)} ${n(top - 6)} ${n(-rx * 0.5)} ${n(top - 12)} 0 ${n(top - 12)}C${n(rx * 0.5)} ${n(top - 12)} ${n(rx)} ${n(top - 6)} ${n(rx)} -30Z`;
      let ribs = "";
      for (let x = -rx + 3; x < rx; x += 4) ribs += `M${n(x)} -42L${n(x)} -29`;
      return `<path d="${dome}" fill="url(#lhat)"/><rect x="${n(-rx - 1.5)}" y="-43" width="${n(2 * rx + 3)}" height="14" rx="4" fill="url(#lhat)"/>` +
        `<rect x="${n(-rx - 1.5)}" y="-43" width="${n(2 * rx + 3)}" height="14" rx="4" fill="#000" fill-opacity="0.15"/><path d="${ribs}" stroke="${shade}" stroke-width="1" stroke-opacity="0.5"/>`;
    }
    case "cap": {
      const dome = `M${n(-rx)} -34C${n(-rx)} ${n(top - 2)} ${n(-rx * 0.5)} ${n(top - 7)} 0 ${n(top - 7)}C${n(rx * 0.5)} ${n(top - 7)} ${n(rx)} ${n(top - 2)} ${n(rx)} -34Z`;
      const visor = `M${n(-g.w * 0.95)} -36Q0 -18 ${n(g.w * 0.95)} -36Q0 -29 ${n(-g.w * 0.95)} -36Z`;
      return `<path d="${dome}" fill="url(#lhat)"/><path d="M0 ${n(top - 7)}L0 -34M${n(-rx * 0.5)} ${n(top - 3)}Q${n(-rx * 0.3)} -50 ${n(-rx * 0.35)} -34M${n(rx * 0.5)} ${n(top - 3)}Q${n(rx * 0.3)} -50 ${n(rx * 0.35)} -34" stroke="${shade}" stroke-width="0.9" fill="none"/>` +
        `<path d="${visor}" fill="${shade}"/><circle cx="0" cy="${n(top - 7)}" r="2.2" fill="${shade}"/>`;
    }
    case "fedora": {
      const crown = `M${n(-rx * 0.86)} -40L${n(-rx * 0.74)} ${n(top - 14)}Q0 ${n(top - 6)} ${n(rx * 0.74)} ${n(top - 14)}L${n(rx * 0.86)} -40Z`;
      const band = `M${n(-rx * 0.85)} -50L${n(rx * 0.85)} -50L${n(rx * 0.86)} -41L${n(-rx * 0.86)} -41Z`;
      return `<path d="${crown}" fill="url(#lhat)"/><path d="${band}" fill="${shade}"/><ellipse cx="0" cy="-40" rx="${n(rx + 20)}" ry="7.5" fill="url(#lhat)"/>` +
        `<ellipse cx="0" cy="-40" rx="${n(rx + 20)}" ry="7.5" fill="#000" fill-opacity="0.12"/>`;
    }
  }
}

function background(spec: FaceSpec): string {
  const f = spec.factors;
  const top = hslToRgb(f.backgroundHueDeg, f.backgroundSaturation, Math.min(0.97, f.backgroundLightness + 0.1));
  const bottom = hslToRgb(f.backgroundHueDeg, f.backgroundSaturation, Math.max(0.03, f.backgroundLightness - 0.1));
  return `<linearGradient id="bg" x1="0" y1="0" x2="0" y2="1"><stop offset="0" stop-color="${hex(top)}"/><stop offset="1" stop-color="${hex(bottom)}"/></linearGradient>` +
    `<rect width="${SYNTHETIC_IMAGE_WIDTH}" height="${SYNTHETIC_IMAGE_HEIGHT}" fill="url(#bg)"/>`;
}

/** The SVG document (178×218 px) that draws `spec`. Pure: the same spec always gives the same string. */
export function renderFaceSvg(spec: FaceSpec): string {
  const f = spec.factors;
  const g = geometry(spec);
  const p = palette(spec);
  const defs = lightGradient("lskin", p.skin, spec) + lightGradient("lhair", p.hair, spec) + lightGradient("lhairback", mix(p.hair, BLACK, 0.18), spec) + lightGradient("lcloth", p.cloth, spec) +
    lightGradient("lhat", p.hat, spec) +
    `<radialGradient id="rosy"><stop offset="0" stop-color="#e0506a" stop-opacity="0.42"/><stop offset="1" stop-color="#e0506a" stop-opacity="0"/></radialGradient>`;
  const transform = `translate(${n(FACE_CENTRE[0] + f.offsetX)} ${n(FACE_CENTRE[1] + f.offsetY)}) rotate(${n(f.rotationDeg)}) scale(${n(f.scale)})`;
  const person = [
    torso(spec, g),
    backHair(spec, g),
    neck(g),
    clothingDetails(spec, g),
    ears(spec, g, p),
    `<path d="${headPath(g)}" fill="url(#lskin)"/>`,
    skinDetails(spec, g, p),
    eyes(spec, g, p),
    mouth(spec, g, p),
    facialHair(spec, g, p),
    frontHair(spec, g, p),
    glasses(spec, g),
    hat(spec, g, p),
  ].join("");
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${SYNTHETIC_IMAGE_WIDTH}" height="${SYNTHETIC_IMAGE_HEIGHT}" viewBox="0 0 ${SYNTHETIC_IMAGE_WIDTH} ${SYNTHETIC_IMAGE_HEIGHT}">` +
    `<defs>${defs}</defs>${background(spec)}<g transform="${transform}">${person}</g></svg>`;
}
