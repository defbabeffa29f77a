// One streaming pass over every face for one kind of feature (dense dimensions, or an SAE's features): every
// feature's top faces, both as the post ranks them (each face's activations L2-normalised first) and by raw
// activation, keeping only faces that activate the feature; and its statistics against the dataset's attributes
// (and, for the synthetic faces, against the factors the generator drew). The same pass runs on random scores
// for the chance rows of every comparison.

import type { AttributeTable } from "../data/celeba-metadata";
import { readNpyHeader } from "../formats/npy";
import { ProgressBar } from "../display/progress";
import { Rng } from "../util/random";
import { FeatureStatisticsAccumulator, FIRING_THRESHOLD } from "./feature-statistics";
import { activationBatches, normalizeRows, TopKTracker, type ActivationBatch, type FeatureEncoder, type FeatureTop, type TopActivationsRecord } from "./top-activations";

/** How faces are ranked for a feature: "rows" (each face's activations L2-normalised first, the post's) or "raw". */
export type Ranking = "rows" | "raw";
export const RANKINGS: readonly Ranking[] = ["rows", "raw"];

export interface ScanOptions {
  /** Top faces kept per feature (the post: 16). */
  readonly k: number;
  /** The ranking the statistics use (the grids' ranking). */
  readonly ranking: Ranking;
  readonly attributes: AttributeTable | null;
  /** Drawn factors as yes/no targets (lib/inspect/factor-recovery), or null. */
  readonly factors?: AttributeTable | null;
  /** Range of the ranked activations for the histograms (default: from the first batch). */
  readonly range?: readonly [number, number];
  readonly onBatch?: (rows: number) => void;
}

/** One kind's pass over all faces. */
export interface ActivationScan {
  readonly ranking: Ranking;
  /** Every feature's top faces under each ranking, best first: only faces that activate it (value > 0). */
  readonly tops: Readonly<Record<Ranking, FeatureTop[]>>;
  /** Statistics of the activations as `ranking` takes them, against the attributes. */
  readonly stats: FeatureStatisticsAccumulator;
  /** The same against the drawn factors, when asked for. */
  readonly factors: FeatureStatisticsAccumulator | null;
}

/** A scan without its factor statistics (kept once factor recovery has read them). */
export type RankedScan = Omit<ActivationScan, "factors">;

/** Streams batches of raw activations once (see the file's top). `onBatch` sees each batch (for a progress bar). */
export async function scanActivations(batches: AsyncIterable<ActivationBatch> | Iterable<ActivationBatch>, options: ScanOptions): Promise<ActivationScan> {
  let trackers: Record<Ranking, TopKTracker> | undefined;
  let stats: FeatureStatisticsAccumulator | undefined;
  let factors: FeatureStatisticsAccumulator | null = null;
  for await (const raw of batches) {
    if (trackers === undefined || stats === undefined) {
      const features = Array.from({ length: raw.width }, (_, f) => f);
      trackers = { rows: new TopKTracker(features, options.k, { above: FIRING_THRESHOLD }), raw: new TopKTracker(features, options.k, { above: FIRING_THRESHOLD }) };
      stats = new FeatureStatisticsAccumulator(raw.width, options.attributes, { range: options.range });
      if (options.factors) factors = new FeatureStatisticsAccumulator(raw.width, options.factors, { range: options.range });
    }
    const normalised: ActivationBatch = { ...raw, data: normalizeRows(raw.data.slice(), raw.width) };
    trackers.raw.add(raw);
    trackers.rows.add(normalised);
    const ranked = options.ranking === "rows" ? normalised : raw;
    stats.add(ranked);
    factors?.add(ranked);
    options.onBatch?.(raw.rows);
  }
  if (trackers === undefined || stats === undefined) throw new Error("no activations to scan: face_vectors.npy has no rows");
  return { ranking: options.ranking, tops: { rows: trackers.rows.results(), raw: trackers.raw.results() }, stats, factors };
}

/** Which activations a scan of face_vectors.npy reads: the vectors themselves, or an SAE's encoding of them. */
export type ScanSource = { readonly kind: "dense" } | { readonly kind: "sparse"; readonly encoder: FeatureEncoder };

/** Scans face_vectors.npy for one kind of activation with a progress bar (see scanActivations). */
export async function scanFaceVectors(
  vectorsPath: string,
  source: ScanSource,
  options: Omit<ScanOptions, "range" | "onBatch"> & { readonly desc: string; readonly batchRows?: number },
): Promise<ActivationScan> {
  const header = await readNpyHeader(vectorsPath);
  const bar = new ProgressBar({ total: header.shape[0], desc: options.desc, unit: "faces" });
  // Normalised rows lie in [−1, 1], and rectified SAE features in [0, 1]; raw ones take their range from the first batch.
  const range: readonly [number, number] | undefined = options.ranking === "rows" ? (source.kind === "dense" ? [-1, 1] : [0, 1]) : undefined;
  const activations = activationBatches(vectorsPath, source.kind === "dense" ? { kind: "dense", normalize: false } : { kind: "sparse", encoder: source.encoder, normalize: false }, { batchRows: options.batchRows });
  try {
    return await scanActivations(activations, { ...options, range, onBatch: (rows) => bar.update(rows) });
  } finally {
    bar.close();
  }
}

/** What notebook 06 needs of a scan: every feature's top rows under the scan's ranking. */
export function topRecord(scan: RankedScan): TopActivationsRecord {
  const tops = scan.tops[scan.ranking];
  return { k: Math.max(0, ...tops.map((t) => t.rows.length)), normalized: scan.ranking === "rows", rows: scan.stats.rows, tops };
}

// ---------------------------------------------------------------------------------------------------------------
// Chance

/**
 * Random activations for `rows` faces, a batch at a time: without `densities`, every value N(0, 1) (random dense
 * scores: each fires on about half the faces); with them, feature j fires on each face with probability
 * densities[j], with a value uniform in (0, 1] (random sparse scores of the same density as a real SAE's).
 */
export function* randomActivationBatches(spec: { readonly rows: number; readonly features: number; readonly densities?: readonly number[]; readonly seed: number; readonly batchRows?: number }): Generator<ActivationBatch> {
  const { rows, features, densities } = spec;
  if (densities !== undefined && densities.length !== features) throw new RangeError(`randomActivationBatches: ${densities.length} densities for ${features} features`);
  const batchRows = spec.batchRows ?? 512;
  const rng = new Rng(spec.seed, 0xc4a7ce, densities === undefined ? 0 : 1);
  for (let firstRow = 0; firstRow < rows; firstRow += batchRows) {
    const n = Math.min(batchRows, rows - firstRow);
    const data = new Float32Array(n * features);
    for (let i = 0; i < data.length; i++) {
      if (densities === undefined) data[i] = Math.sqrt(-2 * Math.log(1 - rng.next())) * Math.cos(2 * Math.PI * rng.next());
      else if (rng.next() < densities[i % features]) data[i] = 1 - rng.next();
    }
    yield { firstRow, rows: n, width: features, data };
  }
}
