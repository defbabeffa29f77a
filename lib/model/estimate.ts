// How long fine-tuning takes on this machine (notebook 02), said before most of it runs.
//
// The configured run: its own first steps are timed — not the first (it builds the ONNX Runtime sessions or TF.js's
// kernels and caches, and is slower), the next three (steps 2–4, or fewer on a short run) — and the steps still to
// come are multiplied by their time. Held-out measurements and checkpoint writes are timed apart (each as the ones
// done so far took) and added; what was not timed yet is listed, not guessed.
//
// The post's run (CelebA's 202,599 faces at 224 px, one epoch, batches of 128 in chunks of 32): a run at a small
// size says little about it, since a step's time is not proportional to its pixels (fixed costs per chunk and per
// step, and the gradient cache's second forward pass when chunks are smaller than the batch). So one gradient pass
// is measured at 224 px — 4 images in chunks of 2, the gradient cache's work, after a warm-up pass of 2 — and its
// time per image multiplied by 202,599. A run already at 224 px in chunks uses its own steps instead.

import { tf } from "../kernels/backend";
import { CELEBA_IMAGE_COUNT } from "../data/celeba-layout";
import { formatDuration, resolveProgressMode, type ProgressMode } from "../display/progress";
import { newDisplayHandle, showText, type DisplayHandle } from "../display/notebook-display";
import { defaultConfig, type Preset } from "../run/config";
import { isMeasuredStep } from "./held-out";
import { contrastiveTargets } from "./loss";
import type { NativeTrainer } from "./onnx/train";
import type { ResNet18 } from "./resnet18";
import { batchGradients, nativeBatchGradients } from "./step";

const count = (n: number): string => n.toLocaleString("en-US");
const plural = (n: number, one: string, many = `${one}s`): string => `${count(n)} ${n === 1 ? one : many}`;

// ---------------------------------------------------------------------------------------------------------------
// The configured run, from its first steps

/** Steps of a call not timed at its start (graphs, sessions and caches are built during the first). */
export const WARMUP_STEPS = 1;
/** Steps timed after them, at most. */
export const TIMED_STEPS = 3;

/** The steps timed: from `from` to `to`, numbered as the step counter reads after each. */
export interface TimingWindow {
  readonly from: number;
  readonly to: number;
}

/** The steps of a call from `firstStep` (0, or the step it resumed at) to `total` whose time makes the estimate:
 *  after the warm-up, up to TIMED_STEPS, leaving at least one step after them; null when fewer than WARMUP_STEPS + 2
 *  steps are left (nothing would be left to estimate once they were timed). */
export function timingWindow(firstStep: number, total: number): TimingWindow | null {
  const from = firstStep + WARMUP_STEPS + 1;
  const to = Math.min(firstStep + WARMUP_STEPS + TIMED_STEPS, total - 1);
  return to >= from ? { from, to } : null;
}

/** Steps in (after, total] at which `at(step)` holds. */
function stepsWhere(after: number, total: number, at: (step: number) => boolean): number {
  let n = 0;
  for (let s = after + 1; s <= total; s++) if (at(s)) n++;
  return n;
}

/** What the run does between its steps, for counting: held-out measurements (lib/model/held-out isMeasuredStep) and
 *  checkpoints (every `checkpointEvery` steps and at the last). */
export interface RunSchedule {
  /** The step the call starts at (0, or where it resumed). */
  readonly firstStep: number;
  readonly totalSteps: number;
  /** Steps between held-out measurements, or null without a held-out measure. */
  readonly measureEvery: number | null;
  readonly checkpointEvery: number;
}

/** Held-out measurements a call from `firstStep` makes (step 0's, the "before", when it starts fresh). */
export function measurementsOf(schedule: RunSchedule): number {
  const every = schedule.measureEvery;
  if (every === null) return 0;
  const first = schedule.firstStep === 0 ? 1 : 0;
  return first + stepsWhere(schedule.firstStep, schedule.totalSteps, (s) => isMeasuredStep(s, every, schedule.totalSteps));
}

/** Checkpoints a call from `firstStep` writes. */
export function checkpointsOf(schedule: RunSchedule): number {
  return stepsWhere(schedule.firstStep, schedule.totalSteps, (s) => s % schedule.checkpointEvery === 0 || s === schedule.totalSteps);
}

/** Some work done `count` times in a call; `secondsEach` as timed before the estimate was made, or null (not timed). */
export interface EstimatePart {
  readonly count: number;
  readonly secondsEach: number | null;
}

/** The time of one call of the training loop (a run, or the rest of a resumed run), as estimated from its first steps. */
export interface RunEstimate {
  readonly totalSteps: number;
  /** The step the call resumed at, or null when it started fresh. */
  readonly resumedFrom: number | null;
  /** The steps timed (null: too few steps to time after the warm-up). */
  readonly window: TimingWindow | null;
  /** Steps of this call, and their time each (timed on `window`; null without a window). */
  readonly steps: EstimatePart;
  readonly measurements: EstimatePart;
  readonly checkpoints: EstimatePart;
  /** The sum of the parts that were timed, or null without a window. */
  readonly seconds: number | null;
}

/** An estimate from timed parts: counts from the schedule, seconds from the clock. */
export function runEstimate(
  schedule: RunSchedule,
  timed: { readonly window: TimingWindow | null; readonly secondsPerStep: number | null; readonly secondsPerMeasurement: number | null; readonly secondsPerCheckpoint: number | null },
): RunEstimate {
  const steps = { count: schedule.totalSteps - schedule.firstStep, secondsEach: timed.secondsPerStep };
  const measurements = { count: measurementsOf(schedule), secondsEach: timed.secondsPerMeasurement };
  const checkpoints = { count: checkpointsOf(schedule), secondsEach: timed.secondsPerCheckpoint };
  const known = [steps, measurements, checkpoints].filter((p) => p.count > 0 && p.secondsEach !== null);
  return {
    totalSteps: schedule.totalSteps,
    resumedFrom: schedule.firstStep === 0 ? null : schedule.firstStep,
    window: timed.window,
    steps,
    measurements,
    checkpoints,
    seconds: steps.secondsEach === null ? null : known.reduce((sum, p) => sum + p.count * p.secondsEach!, 0),
  };
}

/**
 * Times a call of the training loop (lib/model/finetune trainModel) as it runs: the loop reports the end of every step
 * and the time it spent measuring held-out people or writing checkpoints, which are taken out of the steps' time and
 * counted apart. After the window's last step `stepDone` returns the estimate (once).
 */
export class RunClock {
  readonly window: TimingWindow | null;
  private windowStart: number | null = null;
  private asideInWindow = 0;
  private readonly asides: Record<"measure" | "checkpoint", number[]> = { measure: [], checkpoint: [] };
  private estimate: RunEstimate | null = null;

  constructor(
    readonly schedule: RunSchedule,
    private readonly clock: () => number = () => performance.now(),
  ) {
    this.window = timingWindow(schedule.firstStep, schedule.totalSteps);
  }

  /** `ms` spent measuring held-out people or writing a checkpoint (not a step's work). */
  aside(kind: "measure" | "checkpoint", ms: number): void {
    if (this.estimate !== null) return;
    this.asides[kind].push(ms / 1000);
    if (this.windowStart !== null) this.asideInWindow += ms;
  }

  /** Step `step` is done (with its measurement and checkpoint); the estimate after the window's last step. */
  stepDone(step: number): RunEstimate | null {
    if (this.window === null || this.estimate !== null) return null;
    if (step === this.window.from - 1) {
      this.windowStart = this.clock();
      this.asideInWindow = 0;
    } else if (step === this.window.to && this.windowStart !== null) {
      const seconds = (this.clock() - this.windowStart - this.asideInWindow) / 1000;
      this.estimate = this.made(seconds / (this.window.to - this.window.from + 1));
      return this.estimate;
    }
    return null;
  }

  /** The estimate without timed steps: for a call too short to have a window. */
  untimed(): RunEstimate {
    return this.made(null);
  }

  private made(secondsPerStep: number | null): RunEstimate {
    const mean = (xs: readonly number[]): number | null => (xs.length === 0 ? null : xs.reduce((a, b) => a + b, 0) / xs.length);
    return runEstimate(this.schedule, {
      window: this.window,
      secondsPerStep,
      secondsPerMeasurement: mean(this.asides.measure),
      secondsPerCheckpoint: mean(this.asides.checkpoint),
    });
  }
}

/** The window's steps in words: "steps 2–4", "step 2". */
const windowWords = (w: TimingWindow): string => (w.from === w.to ? `step ${w.from}` : `steps ${w.from}–${w.to}`);

/** How an estimate is said: who runs the passes, and other work of the run that it leaves out. */
export interface EstimateWords {
  /** e.g. "onnxruntime-node 1.30.0 (CPU, 2 threads)". */
  readonly engine?: string;
  /** Faces whose statistics become BatchNorm's after training and before each held-out measurement after step 0
   *  (the recommended preset's finetune.batchNormImages; 0 or absent: none). Not timed before it first happens. */
  readonly batchNormFaces?: number;
}

/** How often a call recomputes BatchNorm's statistics: before each of its held-out measurements after step 0, and
 *  once at the end. */
export function batchNormRecomputations(e: Pick<RunEstimate, "measurements" | "resumedFrom">): number {
  return e.measurements.count - (e.resumedFrom === null && e.measurements.count > 0 ? 1 : 0) + 1;
}

/**
 * The estimate in one or two lines, e.g.
 *   Estimated time of this run: 20 steps × 1.3 s/step + 3 held-out measurements × 2.1 s ≈ 32 s on this machine
 *   (onnxruntime-node 1.30.0 (CPU, 2 threads); timed on steps 2–4, waiting for images included; held-out
 *   measurements as the ones so far took).
 *   Not timed: 1 checkpoint write.
 */
export function describeRunEstimate(e: RunEstimate, words: EstimateWords = {}): string {
  const left = e.steps.count;
  if (left === 0) return "Estimated time of this run: nothing left to train (the checkpoint had finished).";
  const stepsWords = e.resumedFrom === null ? plural(left, "step") : `${plural(left, "step")} (resumed at step ${count(e.resumedFrom)} of ${count(e.totalSteps)})`;
  if (e.window === null || e.steps.secondsEach === null) {
    return `Estimated time of this run: ${stepsWords}, too few to time after the first (which builds the graphs and is slower): no estimate.`;
  }
  const terms = [`${stepsWords} × ${formatDuration(e.steps.secondsEach)}/step`];
  const timedApart: string[] = [];
  const notTimed: string[] = [];
  const part = (p: EstimatePart, one: string, many: string): void => {
    if (p.count === 0) return;
    if (p.secondsEach === null) {
      notTimed.push(plural(p.count, one, many));
    } else {
      terms.push(`${plural(p.count, one, many)} × ${formatDuration(p.secondsEach)}`);
      timedApart.push(many);
    }
  };
  part(e.measurements, "held-out measurement", "held-out measurements");
  part(e.checkpoints, "checkpoint write", "checkpoint writes");
  const faces = words.batchNormFaces ?? 0;
  if (faces > 0) {
    const n = batchNormRecomputations(e);
    notTimed.push(
      `BatchNorm's statistics recomputed ${n === 1 ? "once" : `${count(n)} times`} over ${count(faces)} faces (` +
        `${e.measurements.count > 0 ? "before each held-out measurement after step 0, and " : ""}at the end)`,
    );
  }
  const how = [
    ...(words.engine === undefined ? [] : [words.engine]),
    `timed on ${windowWords(e.window)}, waiting for images included`,
    ...(timedApart.length === 0 ? [] : [`${timedApart.join(" and ")} as the ones so far took`]),
  ];
  const line = `Estimated time of this run: ${terms.join(" + ")} ≈ ${formatDuration(e.seconds ?? 0)} on this machine (${how.join("; ")}).`;
  return notTimed.length === 0 ? line : `${line}\nNot timed: ${notTimed.join("; ")}.`;
}

/** The estimate against the time the call took (what a reader can check it by), or "" when there was none. */
export function describeEstimateCheck(result: { readonly estimate: RunEstimate; readonly seconds: number; readonly stepsThisRun: number }): string {
  const e = result.estimate;
  if (e.seconds === null || e.window === null || result.stepsThisRun === 0) return "";
  return `The estimate made from ${windowWords(e.window)} said ≈ ${formatDuration(e.seconds)}; training took ${formatDuration(result.seconds)} (steps, held-out measurements and checkpoint writes).`;
}

/** The estimate's lines in a notebook's printed text: the run's, what it did not time, the post's size, and the check
 *  against the time taken (bench/full-size reports them from the executed notebook 02). */
export function estimateLinesIn(text: string): string[] {
  return text.split("\n").filter((line) => /^(Estimated time of this run: |Not timed: |At the post's size[ :]|The estimate made from )/.test(line));
}

// ---------------------------------------------------------------------------------------------------------------
// The post's run, from a pass at its size

/** The size of a fine-tuning run: faces per epoch, image side, epochs, batch and chunk. */
export interface RunSize {
  readonly faces: number;
  readonly imageSize: number;
  readonly epochs: number;
  readonly batchSize: number;
  readonly chunkSize: number;
}

/** The post's run as `npm run notebooks` trains it without settings: CelebA's faces at the defaults' size, epochs,
 *  batch and chunks (224 px, 1 epoch, batches of 128 in chunks of 32). */
export const POST_RUN: RunSize = (() => {
  const d = defaultConfig();
  return { faces: CELEBA_IMAGE_COUNT, imageSize: d.imageSize, epochs: d.finetune.epochs, batchSize: d.finetune.batchSize, chunkSize: d.finetune.chunkSize };
})();

/** Steps of a run of this size: epochs × ⌈faces / batch⌉. */
export const stepsOf = (size: RunSize): number => size.epochs * Math.ceil(size.faces / size.batchSize);

/** A timed gradient pass: `images` of `imageSize` px in chunks of `chunkSize`, after a warm-up pass. */
export interface PassTiming {
  readonly images: number;
  readonly imageSize: number;
  readonly chunkSize: number;
  readonly seconds: number;
  /** The warm-up pass's time (what measuring cost on top of `seconds`). */
  readonly warmupSeconds: number;
}

/** What the post-size estimate is scaled from: a pass measured at its size, or the run's own steps (a run at the
 *  post's image size in chunks smaller than its batch, whose steps do the same work per face). */
export type PostSizeSource =
  | { readonly kind: "pass"; readonly pass: PassTiming }
  | { readonly kind: "run"; readonly secondsPerStep: number; readonly batchSize: number; readonly chunkSize: number; readonly window: TimingWindow };

export interface PostSizeEstimate {
  readonly size: RunSize;
  readonly steps: number;
  readonly secondsPerFace: number;
  /** Faces × epochs × seconds a face: the gradient passes (and for a "run" source, everything else its steps did). */
  readonly seconds: number;
  readonly source: PostSizeSource;
}

/** The time of a run of `size` from the time per face of `source`, scaled by the faces it passes. */
export function postSizeEstimate(source: PostSizeSource, size: RunSize = POST_RUN): PostSizeEstimate {
  const secondsPerFace = source.kind === "pass" ? source.pass.seconds / source.pass.images : source.secondsPerStep / source.batchSize;
  return { size, steps: stepsOf(size), secondsPerFace, seconds: secondsPerFace * size.faces * size.epochs, source };
}

/** Whether a run measures the post's size itself (its estimate is the post's): CelebA's count at the post's image
 *  size, whole epochs. */
export function runsAtPostSize(run: { readonly imageSize: number; readonly faces: number; readonly maxSteps: number | null }, size: RunSize = POST_RUN): boolean {
  return run.imageSize === size.imageSize && run.faces >= size.faces && run.maxSteps === null;
}

/** Whether the post-size estimate can come from the run's own steps: the same image size, and the gradient cache
 *  (chunks smaller than the batch) as the post's run has it. */
export function stepsScaleToPostSize(run: { readonly imageSize: number; readonly batchSize: number; readonly chunkSize: number }, size: RunSize = POST_RUN): boolean {
  return run.imageSize === size.imageSize && run.chunkSize < run.batchSize && size.chunkSize < size.batchSize;
}

/** The post-size estimate in one line, saying what it was scaled from and what it leaves out. */
export function describePostSizeEstimate(e: PostSizeEstimate): string {
  const s = e.size;
  const what =
    `At the post's size (${count(s.faces)} faces at ${s.imageSize} px, ${plural(s.epochs, "epoch")}, batches of ${s.batchSize} in chunks of ${s.chunkSize}: ` +
    `${plural(e.steps, "step")}): ≈ ${formatDuration(e.seconds)} here`;
  const faces = count(s.faces * s.epochs);
  if (e.source.kind === "run") {
    const r = e.source;
    return (
      `${what} — this run's ${formatDuration(e.secondsPerFace)} an image (${windowWords(r.window)}: ${formatDuration(r.secondsPerStep)} a batch of ${r.batchSize} ` +
      `in chunks of ${r.chunkSize}) × ${faces}; held-out measurements and checkpoint writes not included.`
    );
  }
  const p = e.source.pass;
  return (
    `${what}, scaled from a gradient pass over ${p.images} images of ${p.imageSize} px in chunks of ${p.chunkSize} ` +
    `(${formatDuration(p.seconds)} after a warm-up pass: ${formatDuration(e.secondsPerFace)} an image × ${faces}). Gradient passes only: image decoding, ` +
    `the optimizer's update, held-out measurements and checkpoint writes come on top, while chunks of ${s.chunkSize} spread each chunk's fixed costs ` +
    `over more images than chunks of ${p.chunkSize} do.`
  );
}

/**
 * Times a step's gradient pass at `imageSize` px on this machine, with the engine training uses (`native`: ONNX
 * Runtime; TF.js otherwise): `images` random images (a pass's time does not depend on the pixels) in chunks of
 * `chunkSize` (the gradient cache, as a step in chunks does), after an untimed warm-up pass over half as many (it
 * builds the sessions or kernels of this size). The model's weights are not changed (no update is applied) and its
 * BatchNorm statistics, which a pass in training mode moves, are put back.
 */
export async function timeGradientPass(
  model: ResNet18,
  options: { readonly imageSize: number; readonly preset: Preset; readonly temperature: number; readonly native?: NativeTrainer; readonly images?: number; readonly chunkSize?: number },
): Promise<PassTiming> {
  const images = options.images ?? 4;
  const chunkSize = options.chunkSize ?? 2;
  if (chunkSize >= images) throw new Error(`timeGradientPass: chunks of ${chunkSize} for ${images} images are no gradient cache: use smaller chunks`);
  const step = { loss: { preset: options.preset, temperature: options.temperature }, chunkSize, native: options.native };
  const pass = async (n: number, chunk: number): Promise<number> => {
    const x = tf.randomUniform([n, options.imageSize, options.imageSize, 3], 0, 1, "float32", 17) as tf.Tensor4D;
    const targets = contrastiveTargets(n, null);
    const started = performance.now();
    try {
      const { grads, losses } = options.native === undefined
        ? batchGradients(model, x, targets, { ...step, chunkSize: chunk })
        : await nativeBatchGradients(model, options.native, x, targets, { ...step, chunkSize: chunk });
      const seconds = (performance.now() - started) / 1000; // the pass and its gradients, as trainStep gets them
      tf.dispose([...grads.filter((g): g is tf.Tensor => g !== null), losses.loss, losses.contrastive, losses.orientation]);
      return seconds;
    } finally {
      tf.dispose([x, targets]);
    }
  };
  const saved = model.stateDict();
  try {
    const warmupSeconds = await pass(Math.max(2, Math.floor(images / 2)), Math.max(1, Math.floor(chunkSize / 2)));
    return { images, imageSize: options.imageSize, chunkSize, seconds: await pass(images, chunkSize), warmupSeconds };
  } finally {
    model.loadStateDict(saved);
    tf.dispose([...saved.values()]);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Showing them

/**
 * The estimate's lines above the progress bar: in a notebook one output, shown before training starts ("timing…")
 * and updated in place as each line is measured; in a terminal or a log each line printed once it is known (through
 * the bar's `write` while a bar runs); nothing when silent.
 */
export class EstimateDisplay {
  readonly mode: "display" | "print" | "silent";
  /** The post-size line comes from the run's own steps (a run at the post's image size in chunks): its batch and chunk. */
  postSizeFromRun: { readonly batchSize: number; readonly chunkSize: number } | null = null;
  /** The post-size estimate shown, once made. */
  postSize: PostSizeEstimate | null = null;
  private runLine = "Estimated time of this run: timing its first steps…";
  private postSizeLine: string | null = null;
  private readonly handle: DisplayHandle | null;

  constructor(
    progress: ProgressMode | undefined,
    private readonly words: EstimateWords = {},
  ) {
    const resolved = resolveProgressMode(progress);
    this.mode = resolved === "display" ? "display" : resolved === "silent" ? "silent" : "print";
    this.handle = this.mode === "display" ? newDisplayHandle() : null;
  }

  /** Shows the lines so far (a notebook's output appears where this is first called); `postSize`: the post-size
   *  line's placeholder, or null when there will be none. */
  start(postSize: string | null): void {
    this.postSizeLine = postSize;
    this.draw();
  }

  /** The post-size line, final: an estimate, or why there is none. */
  showPostSize(e: PostSizeEstimate | string): void {
    if (typeof e !== "string") this.postSize = e;
    this.postSizeLine = typeof e === "string" ? e : describePostSizeEstimate(e);
    if (this.mode === "print") process.stdout.write(`${this.postSizeLine}\n`);
    this.draw();
  }

  /** The run's estimate, final (and the post-size line when it comes from the run's steps); `write` prints a line
   *  without breaking a running progress bar. Returns the post-size estimate made from the run, if any. */
  showRun(e: RunEstimate, write: (line: string) => void = (line) => process.stdout.write(`${line}\n`)): PostSizeEstimate | null {
    this.runLine = describeRunEstimate(e, this.words);
    const from = this.postSizeFromRun;
    const post = from !== null && e.window !== null && e.steps.secondsEach !== null
      ? postSizeEstimate({ kind: "run", secondsPerStep: e.steps.secondsEach, batchSize: from.batchSize, chunkSize: from.chunkSize, window: e.window })
      : null;
    if (post !== null) {
      this.postSize = post;
      this.postSizeLine = describePostSizeEstimate(post);
    } else if (from !== null) {
      this.postSizeLine = "At the post's size: no estimate (this run has too few steps to time).";
    }
    if (this.mode === "print") write(from === null ? this.runLine : `${this.runLine}\n${this.postSizeLine}`);
    this.draw();
    return post;
  }

  /** Training stopped before the run's steps were timed: the placeholder says so. */
  abandon(step: number): void {
    this.runLine = `Estimated time of this run: none (training stopped at step ${count(step)}, before the steps to time).`;
    if (this.postSizeFromRun !== null) this.postSizeLine = null;
    this.draw();
  }

  /** The lines shown now (the run's first). */
  get text(): string {
    return [this.runLine, ...(this.postSizeLine === null ? [] : [this.postSizeLine])].join("\n");
  }

  private draw(): void {
    if (this.handle !== null) showText(this.text, { handle: this.handle });
  }
}
