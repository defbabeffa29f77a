// The blind interpretability test: a session of 4×4 grids, one per feature and kind (dense dimensions and SAE
// features, as the post; with the automatic rater also the recommended SAE's), shuffled with a recorded seed and
// known to the rater only by opaque ids, rated 1–7.
//
// On disk (runs/<run>/):
//   blind-test/session.json    the order of the opaque ids, the seed, the features — nothing that tells dense from sparse
//   blind-test/images/<id>.png  the grids, re-encoded from raw pixels (no title, no metadata)
//   blind-test/grid-rows.json   the dataset rows each grid shows (what the automatic rater reads; never served)
//   blind-test/ratings.jsonl    one {"id","rating","rater","at"} line per rating, appended and fsynced as it comes;
//                               "undo" truncates the last line, so the file always holds each rated id exactly once
//   blind-test/ratings.lock     who writes ratings.jsonl now (pid, host, since when, what): one writer at a time, so
//                               two kernels or a kernel and a stale page cannot both append (see RatingsLock)
//   blind-test-key.json         the unblinding key (the kinds in the session; id → kind and feature), outside the
//                               served folder; its items are read only by `unblind()` once every grid is rated
// A session whose files exist is resumed: the same ids, the same order, the ratings already given.
//
// Reading ratings.jsonl is strict (readRatingsFile): a grid rated twice counts once — the later record wins, and a
// warning says so; a complete last record without its newline is kept (the newline is added before the next rating);
// a torn last record (not JSON: a crash mid-write) is dropped with a warning and cut from the file before the next
// rating, never glued to it; anything else that is not a rating of this session is an error naming the line.
// Warnings are printed (console.warn) and kept in `session.warnings`.

import { randomBytes } from "node:crypto";

import { closeSync, existsSync, fstatSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readFileSync, rmSync } from "node:fs";
import { basename, join } from "node:path";
import sharp from "sharp";
import { attributeBaseRates, autoRate } from "./auto-rater";

import type { AttributeTable } from "../data/celeba-metadata";

import type { Figure } from "../display/figures";

import { runFolderFiles, type BlindTestFiles } from "../run/files";

import { seededShuffle as shuffleWithKey } from "../util/random";

import { writeFileAtomicSync } from "../util/atomic-write";

import { FEATURE_KINDS, type FeatureKind } from "../inspect/kinds";

import { isValidRating, RATING_MAX, RATING_MIN, RatingsLock, readRatingsFile, writeAll, type Rating, type RatingsFileContents } from "./ratings-file";


export type { FeatureKind } from "../inspect/kinds";

/** The post's two kinds: a session made without naming its kinds has these. */
export const POST_KINDS: readonly FeatureKind[] = ["dense", "sparse"];

/** One grid of the study, as the key knows it. */
export interface BlindItem {
  readonly id: string;
  readonly kind: FeatureKind;
  readonly feature: number;
}

/** What session.json holds: servable, it says nothing about which grid is which. */
export interface SessionFile {
  readonly version: 1;
  readonly seed: number;
  readonly features: readonly number[];
  /** The opaque ids in the order they are shown. */
  readonly order: readonly string[];
}

/** A rated grid with its key: available only after unblinding. */
export interface UnblindedRating extends BlindItem {
  readonly rating: number;
  readonly rater: string;
}

/** The session folder and the key file of a run folder (named in lib/run/files). */
export function blindTestPaths(runFolder: string): BlindTestFiles {
  return runFolderFiles(runFolder).blindTest;
}

/** The session's order: Fisher–Yates with the seeded generator (the same seed, the same order). */
export function seededShuffle<T>(items: readonly T[], seed: number): T[] {
  return shuffleWithKey(items, seed, 0xb11d);
}

/** A grid's pixels re-encoded as a bare PNG: nothing of the original file (text chunks, titles' metadata) survives. */
export async function reencodePng(png: Buffer): Promise<Buffer> {
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return sharp(data, { raw: { width: info.width, height: info.height, channels: 3 } }).png({ compressionLevel: 9 }).toBuffer();
}

function defaultHolder(): string {
  return `a blind-test session in ${basename(process.argv[1] ?? process.argv0)}`;
}

export interface BlindSessionSpec {
  readonly features: readonly number[];
  /** The kinds rated, one grid per feature and kind (default: the post's, dense and sparse). */
  readonly kinds?: readonly FeatureKind[];
  readonly seed: number;
  /** The dataset rows a feature's grid shows (its top images, best first). */
  readonly rowsOf: (kind: FeatureKind, feature: number) => readonly number[];
  /** The grid of those rows as a PNG. It gets only the rows, so nothing of the feature's kind can reach the image. */
  readonly renderGrid: (rows: readonly number[]) => Promise<Buffer>;
}

/** An open session. */
export class BlindSession {
  private stored: RatingsFileContents = { records: [], current: [], unterminated: false, tornAt: undefined, warnings: [] };
  private ratingsById = new Map<string, Rating>();
  private readonly warned = new Set<string>();
  /** Held while this session writes ratings.jsonl (from its first rating or undo, or `acquireWriter`, to `close`). */
  private lock: RatingsLock | undefined;
  private rowsById: Record<string, number[]> | undefined;

  private constructor(readonly runFolder: string, readonly file: SessionFile) {
    this.load();
  }

  get paths(): ReturnType<typeof blindTestPaths> {
    return blindTestPaths(this.runFolder);
  }

  /** Opens the run's session, creating it (grids, key, order) when it does not exist yet. */
  static async open(runFolder: string, spec: BlindSessionSpec): Promise<BlindSession> {
    const paths = blindTestPaths(runFolder);
    if (existsSync(paths.session)) {
      const file = JSON.parse(readFileSync(paths.session, "utf8")) as SessionFile;
      const same = file.seed === spec.seed && JSON.stringify(file.features) === JSON.stringify(spec.features);
      if (!same) {
        throw new Error(
          `${paths.dir} holds a session for features [${file.features.join(", ")}] with seed ${file.seed}, not [${spec.features.join(", ")}] with seed ${spec.seed}: ` +
            `finish that one, or move the folder (and blind-test-key.json) away to start a new session`,
        );
      }
      if (!existsSync(paths.key)) throw new Error(`${paths.key} is missing: the session in ${paths.dir} cannot be unblinded; move the folder away to start again`);
      const kinds = sessionKinds(paths.key);
      const wanted = spec.kinds ?? POST_KINDS;
      if (JSON.stringify(kinds) !== JSON.stringify(wanted)) {
        throw new Error(`${paths.dir} holds a session of ${kinds.join(", ")}, not ${wanted.join(", ")}: finish that one, or move the folder (and blind-test-key.json) away to start a new session`);
      }
      return new BlindSession(runFolder, file);
    }
    return BlindSession.create(runFolder, spec);
  }

  /** Opens an existing session (the rating server's way): no grids are made. */
  static resume(runFolder: string): BlindSession {
    const paths = blindTestPaths(runFolder);
    if (!existsSync(paths.session)) throw new Error(`${paths.session} does not exist: create the session first (notebook 06)`);
    return new BlindSession(runFolder, JSON.parse(readFileSync(paths.session, "utf8")) as SessionFile);
  }

  private static async create(runFolder: string, spec: BlindSessionSpec): Promise<BlindSession> {
    if (spec.features.length === 0) throw new Error("blind test: no features to rate; set blindTest.features, e.g. 16-31");
    const paths = blindTestPaths(runFolder);
    const used = new Set<string>();
    const newId = (): string => {
      for (;;) {
        const id = randomBytes(6).toString("hex");
        if (!used.has(id)) {
          used.add(id);
          return id;
        }
      }
    };
    const kinds = spec.kinds ?? POST_KINDS;
    const unknown = kinds.find((k) => !FEATURE_KINDS.includes(k));
    if (unknown !== undefined || kinds.length === 0 || new Set(kinds).size !== kinds.length) {
      throw new Error(`blind test: kinds must be distinct names among ${FEATURE_KINDS.join(", ")}, got ${JSON.stringify(kinds)}`);
    }
    const items: BlindItem[] = spec.features.flatMap((feature) => kinds.map((kind) => ({ id: newId(), kind, feature })));
    const shuffled = seededShuffle(items, spec.seed);
    // No session.json, so any grids here are of a creation that was stopped before it finished (session.json is
    // written last): their ids belong to no session, and they go before the new ones are made.
    rmSync(paths.images, { recursive: true, force: true });
    mkdirSync(paths.images, { recursive: true });
    const gridRows: Record<string, number[]> = {};
    for (const item of shuffled) {
      const rows = [...spec.rowsOf(item.kind, item.feature)];
      gridRows[item.id] = rows;
      writeFileAtomicSync(join(paths.images, `${item.id}.png`), await reencodePng(await spec.renderGrid(rows)));
    }
    writeFileAtomicSync(paths.gridRows, JSON.stringify(gridRows) + "\n");
    writeFileAtomicSync(paths.key, JSON.stringify({ kinds, items: shuffled }, null, 1) + "\n");
    const file: SessionFile = { version: 1, seed: spec.seed, features: [...spec.features], order: shuffled.map((i) => i.id) };
    writeFileAtomicSync(paths.session, JSON.stringify(file, null, 1) + "\n");
    return new BlindSession(runFolder, file);
  }

  /** Reads ratings.jsonl strictly (see readRatingsFile), printing each warning once. */
  private load(): void {
    this.stored = readRatingsFile(this.paths.ratings, this.file.order);
    this.ratingsById = new Map(this.stored.current.map((r) => [r.id, r]));
    for (const warning of this.stored.warnings) this.warn(warning);
  }

  private warn(message: string): void {
    if (this.warned.has(message)) return;
    this.warned.add(message);
    console.warn(message);
  }

  /** What reading ratings.jsonl and taking its lock tolerated so far (each also printed once with console.warn). */
  get warnings(): readonly string[] {
    return [...this.warned];
  }

  /** Whether this session holds the ratings' lock (is the one writer). */
  get writing(): boolean {
    return this.lock !== undefined;
  }

  /**
   * Makes this session the one writer of ratings.jsonl (rate and undo do it themselves): takes blind-test/ratings.lock
   * naming `holder` — refused while another writer holds it — then re-reads the file, whatever was written before,
   * and repairs its end: a torn last record is cut off, an unterminated one gets its newline.
   */
  acquireWriter(holder: string = defaultHolder()): void {
    if (this.lock !== undefined) return;
    this.lock = RatingsLock.acquire(this.paths.lock, holder, (message) => this.warn(message));
    this.load();
    if (this.stored.tornAt !== undefined) this.truncateTo(this.stored.tornAt);
    else if (this.stored.unterminated) this.append("\n");
    else return;
    this.load();
  }

  /** Stops writing: the lock is released, so another process may rate. The session stays readable; rate or undo takes the lock again. */
  close(): void {
    this.lock?.release();
    this.lock = undefined;
  }

  /** Appends to ratings.jsonl and syncs it; on a failed write the file is cut back to where it was. */
  private append(text: string): void {
    mkdirSync(this.paths.dir, { recursive: true });
    const fd = openSync(this.paths.ratings, "a");
    try {
      const start = fstatSync(fd).size;
      try {
        writeAll(fd, Buffer.from(text, "utf8"));
        fsyncSync(fd);
      } catch (error) {
        ftruncateSync(fd, start);
        throw error;
      }
    } finally {
      closeSync(fd);
    }
  }

  private truncateTo(length: number): void {
    const fd = openSync(this.paths.ratings, "r+");
    try {
      ftruncateSync(fd, length);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }

  get total(): number {
    return this.file.order.length;
  }

  get rated(): number {
    return this.ratingsById.size;
  }

  get done(): boolean {
    return this.rated === this.total;
  }

  /** The next grid to rate (in the shuffled order), or undefined when all are rated. */
  next(): string | undefined {
    return this.file.order.find((id) => !this.ratingsById.has(id));
  }

  has(id: string): boolean {
    return this.file.order.includes(id);
  }

  /** The PNG file of a grid of this session (only ids of the session). */
  imagePath(id: string): string {
    if (!this.has(id)) throw new Error(`no grid "${id}" in this session`);
    return join(this.paths.images, `${id}.png`);
  }

  /** The dataset rows grid `id` shows (for the automatic rater, which sees rows, never kinds). */
  gridRows(id: string): readonly number[] {
    if (!this.has(id)) throw new Error(`no grid "${id}" in this session`);
    this.rowsById ??= JSON.parse(readFileSync(this.paths.gridRows, "utf8")) as Record<string, number[]>;
    return this.rowsById[id];
  }

  /** The ratings given so far, one per grid, in the order given. */
  ratings(): readonly Rating[] {
    return [...this.stored.current];
  }

  /** Records a rating (appended to ratings.jsonl and synced to disk before this returns); takes the lock first. */
  rate(id: string, rating: number, rater: string): Rating {
    if (!this.has(id)) throw new Error(`no grid "${id}" in this session`);
    if (!isValidRating(rating)) throw new RangeError(`a rating is an integer from ${RATING_MIN} to ${RATING_MAX}, got ${rating}`);
    this.acquireWriter();
    if (this.ratingsById.has(id)) throw new Error(`grid "${id}" is already rated; undo it first to change it`);
    const record: Rating = { id, rating, rater, at: new Date().toISOString() };
    this.append(JSON.stringify(record) + "\n");
    this.load();
    return record;
  }

  /** Takes back the last rating (the file loses its last line); returns its id, or undefined with none. Takes the lock first. */
  undo(): string | undefined {
    this.acquireWriter();
    const last = this.stored.records.at(-1);
    if (last === undefined) return undefined;
    this.truncateTo(last.start);
    this.load();
    return last.rating.id;
  }

  /** The key joined with the ratings (one per grid; re-read from disk unless this session is the writer): refused until every grid is rated. */
  unblind(): UnblindedRating[] {
    if (this.lock === undefined) this.load();
    if (!this.done) throw new Error(`${this.total - this.rated} of ${this.total} grids are not rated yet: finish the ratings before unblinding`);
    const key = JSON.parse(readFileSync(this.paths.key, "utf8")) as { items: BlindItem[] };
    const byId = new Map(key.items.map((item) => [item.id, item]));
    return this.stored.current.map((r) => {
      const item = byId.get(r.id);
      if (item === undefined) throw new Error(`${this.paths.key} has no entry for grid ${r.id}: the key does not belong to this session`);
      return { ...item, rating: r.rating, rater: r.rater };
    });
  }
}

/** The kinds a session's key lists (a key written before kinds were recorded holds the post's two). */
export function sessionKinds(keyPath: string): readonly FeatureKind[] {
  const key = JSON.parse(readFileSync(keyPath, "utf8")) as { kinds?: FeatureKind[] };
  return key.kinds ?? POST_KINDS;
}

/** The ratings of each kind, as the post's analysis wants them (a kind not in the session has none). */
export function ratingsByKind(rows: readonly UnblindedRating[]): Record<FeatureKind, number[]> {
  const of = (kind: FeatureKind): number[] => rows.filter((r) => r.kind === kind).map((r) => r.rating);
  return { sparse: of("sparse"), dense: of("dense"), "sparse-recommended": of("sparse-recommended") };
}

/** Rates every grid not rated yet with the automatic rater (see auto-rater.ts): it sees only the grid's rows. */
export function autoRateSession(session: BlindSession, table: AttributeTable | null): number {
  if (table === null) throw new Error("the automatic rater needs attribute labels, and this dataset has none: set blindTest.rater=human");
  const baseRates = attributeBaseRates(table);
  const wasWriting = session.writing;
  let count = 0;
  try {
    session.acquireWriter("the automatic rater (autoRateSession)");
    for (let id = session.next(); id !== undefined; id = session.next()) {
      session.rate(id, autoRate(session.gridRows(id), table, baseRates).rating, "auto");
      count++;
    }
  } finally {
    if (!wasWriting) session.close();
  }
  return count;
}

/** The post's histogram: sparse and dense ratings overlaid (and the recommended SAE's when rated), one bin per rating 1–7. */
export function ratingsHistogram(ratings: Record<FeatureKind, readonly number[]>, rater: string): Figure {
  const bins = { start: RATING_MIN - 0.5, end: RATING_MAX + 0.5, size: 1 };
  const names: Record<FeatureKind, string> = { sparse: "Sparse Features", dense: "Dense Features", "sparse-recommended": "Recommended SAE Features" };
  const shown: FeatureKind[] = ["sparse", "dense", ...(ratings["sparse-recommended"].length > 0 ? ["sparse-recommended" as const] : [])];
  return {
    data: shown.map((kind) => ({ type: "histogram" as const, x: [...ratings[kind]], xbins: bins, opacity: 0.6, name: names[kind] })),
    layout: {
      title: `Blind Interpretability Ratings (${rater === "auto" ? "automatic rater" : "human rater"})`,
      barmode: "overlay",
      xaxis: { title: "Interpretability Rating 1-7", tickvals: [1, 2, 3, 4, 5, 6, 7], range: [0.5, 7.5] },
      yaxis: { title: "grids" },
    },
  };
}
