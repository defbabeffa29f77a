// Colours and path helpers for drawing faces in SVG: RGB mixing and ramps, HSL, compact coordinates, smooth
// closed or open paths through points (Catmull-Rom as cubic Béziers), mirrored outlines and wavy polylines.

/** A colour, 0..255 per channel (not clamped until written). */
export type Rgb = readonly [number, number, number];
export type Point = readonly [number, number];

export const BLACK: Rgb = [0, 0, 0];
export const WHITE: Rgb = [255, 255, 255];

export function mix(a: Rgb, b: Rgb, t: number): Rgb {
  return [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t];
}

export function times(c: Rgb, k: number): Rgb {
  return [c[0] * k, c[1] * k, c[2] * k];
}

export function hex(c: Rgb): string {
  const h = (v: number): string => Math.round(Math.min(255, Math.max(0, v))).toString(16).padStart(2, "0");
  return `#${h(c[0])}${h(c[1])}${h(c[2])}`;
}

/** HSL (hue in degrees, saturation and lightness 0..1) to RGB 0..255. */
export function hslToRgb(hueDeg: number, s: number, l: number): Rgb {
  const h = (((hueDeg % 360) + 360) % 360) / 60;
  const c = (1 - Math.abs(2 * l - 1)) * s;
  const x = c * (1 - Math.abs((h % 2) - 1));
  const m = l - c / 2;
  const [r, g, b] = h < 1 ? [c, x, 0] : h < 2 ? [x, c, 0] : h < 3 ? [0, c, x] : h < 4 ? [0, x, c] : h < 5 ? [x, 0, c] : [c, 0, x];
  return [(r + m) * 255, (g + m) * 255, (b + m) * 255];
}

/** Piecewise-linear interpolation through `[t, colour]` anchors sorted by t. */
export function ramp(anchors: readonly (readonly [number, Rgb])[], t: number): Rgb {
  for (let i = 1; i < anchors.length; i++) {
    const [t1, c1] = anchors[i];
    const [t0, c0] = anchors[i - 1];
    if (t <= t1) return mix(c0, c1, (t - t0) / (t1 - t0));
  }
  return anchors[anchors.length - 1][1];
}

/** Formats a coordinate with at most 2 decimals (stable, compact). */
export function n(x: number): string {
  const r = Math.round(x * 100) / 100;
  return String(r === 0 ? 0 : r);
}

export function pt(p: Point): string {
  return `${n(p[0])} ${n(p[1])}`;
}

/** A smooth path through `points` (Catmull-Rom turned into cubic Béziers). */
export function smoothPath(points: readonly Point[], closed: boolean): string {
  const count = points.length;
  const at = (i: number): Point => (closed ? points[(i + count) % count] : points[Math.min(count - 1, Math.max(0, i))]);
  let d = `M${pt(points[0])}`;
  const segments = closed ? count : count - 1;
  for (let i = 0; i < segments; i++) {
    const p0 = at(i - 1), p1 = at(i), p2 = at(i + 1), p3 = at(i + 2);
    const c1: Point = [p1[0] + (p2[0] - p0[0]) / 6, p1[1] + (p2[1] - p0[1]) / 6];
    const c2: Point = [p2[0] - (p3[0] - p1[0]) / 6, p2[1] - (p3[1] - p1[1]) / 6];
    d += `C${pt(c1)} ${pt(c2)} ${pt(p2)}`;
  }
  return closed ? `${d}Z` : d;
}

export function mirror(points: readonly Point[]): Point[] {
  return points.map(([x, y]) => [-x, y] as Point).reverse();
}

/**
 * Points along a polyline at roughly `step` spacing, each pushed sideways by `wave(arcLength)`; without a wave,
 * a few points suffice (the path through them is smoothed anyway), which keeps the SVG small and fast to render.
 */
export function wavyPolyline(points: readonly Point[], step: number, waveOrNone: ((s: number) => number) | undefined): Point[] {
  const wave = waveOrNone ?? ((): number => 0);
  if (waveOrNone === undefined) step = Math.max(step, 18);
  const out: Point[] = [];
  let arc = 0;
  for (let i = 0; i < points.length - 1; i++) {
    const [x0, y0] = points[i];
    const [x1, y1] = points[i + 1];
    const len = Math.hypot(x1 - x0, y1 - y0);
    const steps = Math.max(1, Math.round(len / step));
    const nx = -(y1 - y0) / (len || 1), ny = (x1 - x0) / (len || 1);
    for (let k = 0; k < steps; k++) {
      const t = k / steps;
      const w = wave(arc + len * t);
      out.push([x0 + (x1 - x0) * t + nx * w, y0 + (y1 - y0) * t + ny * w]);
    }
    arc += len;
  }
  const last = points[points.length - 1];
  const w = wave(arc);
  const [xa, ya] = points[points.length - 2];
  const len = Math.hypot(last[0] - xa, last[1] - ya) || 1;
  out.push([last[0] - ((last[1] - ya) / len) * w, last[1] + ((last[0] - xa) / len) * w]);
  return out;
}
