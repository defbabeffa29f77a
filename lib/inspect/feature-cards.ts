// What one feature is about, beyond the post's grid: a card with its grid of maximally activating faces (only faces
// that activate it: a feature that fires on 7 faces shows 7, and says so), how often it fires, the attribute it
// predicts best with that prediction's ROC AUC, its top-16 lift, and its activation histogram; the cards of the
// same feature number for each kind (dense dimensions and each SAE) side by side.

import sharp from "sharp";
import { showFigure, type Figure } from "../display/figures";
import { makeGrid } from "../display/image-grid";
import { showPng } from "../display/notebook-display";
import type { RunConfig } from "../run/config";
import { loadImages } from "../data/datasets";
import type { ImageDataset } from "../data/image-dataset";
import type { FeatureStatistics } from "./feature-statistics";
import { baseRates, describeBest, featureMeasures, type FeatureMeasures } from "./feature-measures";
import { topOf, type FeatureTop } from "./top-activations";
import type { RankedScan } from "./scan";

/** What a card shows about one feature. */
export interface FeatureCard {
  readonly label: string;
  /** Correlation of the activation on faces and on the same faces turned 180° (NaN when not measured). */
  readonly rotation: number;
  readonly top: FeatureTop;
  readonly measures: FeatureMeasures;
  readonly histogram: { edges: number[]; counts: number[] };
}

export function featureCard(label: string, top: FeatureTop, stats: FeatureStatistics, measures: FeatureMeasures, rotation = Number.NaN): FeatureCard {
  return { label, rotation, top, measures, histogram: stats.histogram(top.feature) };
}

/** How many faces a feature fires on, in words: "fires on 7 faces (0.14 %)", "fires on no face". */
export function firesOn(fires: number, density: number): string {
  if (fires === 0) return "fires on no face";
  return `fires on ${fires} face${fires === 1 ? "" : "s"} (${(100 * density).toFixed(density < 0.01 ? 2 : 1)} %)`;
}

/** A card's title: what fires, what it predicts, how its top faces lean, how it turns. */
export function cardTitle(card: FeatureCard, k: number): string {
  const m = card.measures;
  const shown = card.top.rows.length < k && m.fires > 0 ? `, all ${card.top.rows.length} shown` : "";
  const lift = m.lift === null ? "" : ` · top-${m.lift.faces} lift ${m.lift.lift.toFixed(2)} (${m.lift.direction === "absent" ? "not " : ""}${m.lift.attribute})`;
  const rotated = Number.isNaN(card.rotation) ? "" : ` · rotated r ${card.rotation.toFixed(2)}`;
  const best = m.fires === 0 ? "" : ` · ${describeBest(m.best)}`;
  return `${card.label} · ${firesOn(m.fires, m.density)}${shown}${best}${lift}${rotated}`;
}

/** PNGs side by side on white, top-aligned, with `gap` pixels between them. */
export async function sideBySide(pngs: readonly Buffer[], gap = 12): Promise<Buffer> {
  const sizes = await Promise.all(pngs.map((png) => sharp(png).metadata()));
  const width = sizes.reduce((s, m) => s + (m.width ?? 0), 0) + gap * Math.max(0, pngs.length - 1);
  const height = Math.max(...sizes.map((m) => m.height ?? 0));
  let left = 0;
  const layers = pngs.map((input, i) => {
    const layer = { input, top: 0, left };
    left += (sizes[i].width ?? 0) + gap;
    return layer;
  });
  return sharp({ create: { width, height, channels: 3, background: "#ffffff" } }).composite(layers).removeAlpha().png().toBuffer();
}

/**
 * The faces at `rows` (dataset rows, best first) as a 4-wide grid PNG, optionally titled. Fewer than 16 faces make
 * fewer rows; the cells no face fills are left blank (white), so a feature that fires on 1 face shows 1 face and 3
 * empty cells, and one that fires on none 4 empty cells.
 */
export async function topImagesGrid(dataset: ImageDataset, config: RunConfig, rows: readonly number[], title?: string): Promise<Buffer> {
  // Small images (the synthetic demo's) are enlarged so a grid is legible.
  const scale = config.imageSize < 96 ? 2 : 1;
  const size = config.imageSize;
  const cell = size * size * 3;
  const cells = Math.max(4, Math.ceil(rows.length / 4) * 4);
  const data = new Float32Array(cells * cell).fill(1);
  if (rows.length > 0) data.set((await loadImages(dataset, rows, config)).data);
  return makeGrid({ data, shape: [cells, size, size, 3] }, { nrow: 4, title, scale });
}

/** One kind's scan, named, for the cards. */
export interface NamedScan {
  readonly label: string;
  readonly scan: RankedScan;
  /** Rotation correlation of each feature, when measured. */
  readonly rotation?: Float64Array;
}

/** The cards of feature `feature` for each kind, side by side (grids, then all histograms in one figure). */
export async function showFeatureCards(dataset: ImageDataset, config: RunConfig, kinds: readonly NamedScan[], feature: number): Promise<void> {
  const k = config.inspect.topImages;
  const rates = dataset.attributes === null ? null : baseRates(dataset.attributes);
  const cards = kinds.map(({ label, scan, rotation }) => {
    const top = topOf({ k, normalized: scan.ranking === "rows", rows: scan.stats.rows, tops: scan.tops[scan.ranking] }, feature, label);
    return featureCard(`${label} ${feature}`, top, scan.stats, featureMeasures(scan.stats, top, dataset.attributes, rates), rotation?.[feature]);
  });
  const grids = await Promise.all(cards.map((card) => topImagesGrid(dataset, config, card.top.rows, cardTitle(card, k))));
  showPng(await sideBySide(grids), cards.map((c) => `${c.label}: ${firesOn(c.measures.fires, c.measures.density)}${c.measures.fires === 0 ? "" : `, ${describeBest(c.measures.best)}`}`).join(" | "));
  const rankings = new Set(kinds.map((kind) => kind.scan.ranking));
  const axis = rankings.size > 1 ? "activation (dense: rows L2-normalised; SAEs: raw)" : rankings.has("raw") ? "activation (raw)" : "activation (rows L2-normalised)";
  await showFigure(cardsHistogram(cards, axis));
}

/** A card's histogram as bars: bins 1… (bin 0 holds the values at the range's floor: exact zeros of an SAE feature). */
function histogramBars(card: FeatureCard): { x: number[]; y: number[]; width: number } {
  const { edges, counts } = card.histogram;
  const x: number[] = [];
  const y: number[] = [];
  for (let b = 1; b < counts.length; b++) {
    if (counts[b] === 0) continue;
    x.push((edges[b] + edges[b + 1]) / 2);
    y.push(counts[b]);
  }
  return { x, y, width: edges[2] - edges[1] };
}

/** The cards' activation histograms in one figure (log counts; exact zeros left out, the density says how many). */
export function cardsHistogram(cards: readonly FeatureCard[], axisTitle = "activation (rows L2-normalised)"): Figure {
  const bars = cards.map(histogramBars);
  const xs = bars.flatMap((b) => b.x);
  const pad = Math.max(...bars.map((b) => b.width));
  const range: [number, number] | undefined = xs.length ? [Math.min(...xs) - pad, Math.max(...xs) + pad] : undefined;
  return {
    data: cards.map((card, i) => ({ type: "bar" as const, x: bars[i].x, y: bars[i].y, name: `${card.label} (${firesOn(card.measures.fires, card.measures.density)})`, width: bars[i].width, opacity: 0.6 })),
    layout: {
      title: `Non-zero activations of feature ${cards[0]?.top.feature ?? ""}`,
      barmode: "overlay",
      xaxis: { title: axisTitle, ...(range ? { range } : {}) },
      yaxis: { title: "images", type: "log" },
      width: 700,
      height: 280,
    },
  };
}
