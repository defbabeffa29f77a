// A tqdm-like progress bar.
//
//   Training...:  45%|████▌     | 450/1000 [00:12<00:15, 37.20it/s, loss=0.0944]
//
// The line is tqdm's format_meter (pure, unit-tested, clock injectable). Where it goes:
//   in a Jupyter kernel   one output, updated in place through a display handle (at most every minInterval,
//                         default 0.2 s; the final state always on close),
//   in a terminal (TTY)   the line rewritten with \r on stderr (every 0.1 s),
//   elsewhere (CI logs)   a full line on stderr every logInterval seconds (default 5) and at the end.

import { newDisplayHandle, richDisplayAvailable, showText, type DisplayHandle } from "./notebook-display";

/** Extra values shown after the rate, like tqdm's set_postfix. */
export type Postfix = Readonly<Record<string, number | string>>;

/** Everything one progress line shows. */
export interface ProgressState {
  n: number;
  /** Unknown (or 0) total: no percentage, bar or remaining time. */
  total?: number;
  /** Seconds since the start. */
  elapsed: number;
  /** Items per second; default n / elapsed. */
  rate?: number;
  desc?: string;
  /** Default "it". */
  unit?: string;
  postfix?: Postfix;
}

export interface FormatOptions {
  /** Width of the bar in characters (default 10, tqdm's when the terminal width is unknown). */
  barWidth?: number;
  /** Total line width: the bar takes what the rest leaves (at least 1), as tqdm does in a terminal. */
  ncols?: number;
}

/** tqdm's format_interval: "MM:SS", or "H:MM:SS" from one hour. */
export function formatInterval(seconds: number): string {
  const total = Math.max(0, Math.floor(seconds));
  const s = total % 60;
  const minutes = Math.floor(total / 60);
  const m = minutes % 60;
  const h = Math.floor(minutes / 60);
  const two = (v: number) => String(v).padStart(2, "0");
  return h ? `${h}:${two(m)}:${two(s)}` : `${two(m)}:${two(s)}`;
}

/** `value` to 2 significant digits (whole numbers from 100), as plain text: 0.91, 9.1, 45, 120. */
function twoDigits(value: number): number {
  return value >= 100 ? Math.round(value) : Number(value.toPrecision(2));
}

/**
 * A duration for people, in the largest unit that reads well, to 2 significant digits: "0.91 s", "45 s", "19 min",
 * "3.4 h", "21 h", "2.5 days" (hours up to 48, then days). "?" when unknown (NaN, negative or infinite).
 */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const units: readonly [number, string][] = [[60, "s"], [60, "min"], [48, "h"], [Infinity, "days"]];
  let value = seconds;
  for (const [limit, unit] of units) {
    const shown = twoDigits(value);
    if (shown < limit) return `${shown} ${unit === "days" && shown === 1 ? "day" : unit}`;
    value = Math.max(1, value / (unit === "h" ? 24 : 60)); // 59.7 s is "1 min", not "0.99 min"
  }
  return "?"; // unreachable: the last limit is infinite
}

/** Python's "{:.3g}" formatting. */
function pythonG3(value: number): string {
  if (value === 0) return "0";
  if (!Number.isFinite(value)) return Number.isNaN(value) ? "nan" : value > 0 ? "inf" : "-inf";
  const [mantissa, exponentText] = value.toExponential(2).split("e");
  const exponent = Number(exponentText);
  const strip = (text: string) => (text.includes(".") ? text.replace(/\.?0+$/, "") : text);
  if (exponent < -4 || exponent >= 3) {
    const sign = exponent < 0 ? "-" : "+";
    return `${strip(mantissa)}e${sign}${String(Math.abs(exponent)).padStart(2, "0")}`;
  }
  return strip(value.toFixed(Math.max(0, 2 - exponent)));
}

/** tqdm's format_num for postfix values: 3 significant digits when that is shorter. */
export function formatNumber(value: number): string {
  const short = pythonG3(value).split("+0").join("+").split("-0").join("-");
  const plain = String(value);
  return short.length < plain.length ? short : plain;
}

const BAR_CHARS = " ▏▎▍▌▋▊▉█";

/** tqdm's unicode bar: full blocks, one partial block, spaces; always `width` characters. */
export function formatBar(fraction: number, width: number): string {
  const nsyms = BAR_CHARS.length - 1;
  const units = Math.floor(Math.min(1, Math.max(0, fraction)) * width * nsyms);
  const full = Math.floor(units / nsyms);
  const partial = units % nsyms;
  if (full >= width) return BAR_CHARS[nsyms].repeat(width);
  return BAR_CHARS[nsyms].repeat(full) + BAR_CHARS[partial] + " ".repeat(width - full - 1);
}

function formatRate(rate: number | undefined, unit: string): string {
  if (!rate) return `?${unit}/s`;
  const inverse = 1 / rate;
  return inverse > 1 ? `${inverse.toFixed(2).padStart(5)}s/${unit}` : `${rate.toFixed(2).padStart(5)}${unit}/s`;
}

function formatPostfix(postfix: Postfix | undefined): string {
  if (!postfix) return "";
  const parts = Object.entries(postfix).map(([k, v]) => `${k}=${typeof v === "number" ? formatNumber(v) : v.trim()}`);
  return parts.length ? `, ${parts.join(", ")}` : "";
}

function formatCount(n: number): string {
  return Number.isInteger(n) ? String(n) : formatNumber(n);
}

/** One tqdm progress line (tqdm's format_meter with its default bar format). */
export function formatProgressLine(state: ProgressState, options: FormatOptions = {}): string {
  const unit = state.unit ?? "it";
  const rate = state.rate ?? (state.elapsed > 0 ? state.n / state.elapsed : undefined);
  const elapsed = formatInterval(state.elapsed);
  const postfix = formatPostfix(state.postfix);
  const prefix = state.desc ? `${state.desc}: ` : "";
  // tqdm forgets a total that has been overshot.
  const total = state.total && state.n < state.total + 0.5 ? state.total : undefined;
  if (total === undefined) {
    return `${prefix}${formatCount(state.n)}${unit} [${elapsed}, ${formatRate(rate, unit)}${postfix}]`;
  }
  const fraction = state.n / total;
  const remaining = rate ? formatInterval((total - state.n) / rate) : "?";
  const left = `${prefix}${(fraction * 100).toFixed(0).padStart(3)}%|`;
  const right = `| ${formatCount(state.n)}/${formatCount(total)} [${elapsed}<${remaining}, ${formatRate(rate, unit)}${postfix}]`;
  const width = options.ncols !== undefined ? Math.max(1, options.ncols - left.length - right.length) : (options.barWidth ?? 10);
  return left + formatBar(fraction, width) + right;
}

/** Where a bar writes when it is not in a notebook. */
export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export type ProgressMode = "auto" | "display" | "tty" | "log" | "silent";

export interface ProgressOptions {
  total?: number;
  desc?: string;
  /** Default "it". */
  unit?: string;
  /** "auto" (default): display in a notebook, tty in a terminal, log otherwise. */
  mode?: ProgressMode;
  /** Minimum seconds between redraws (default 0.2 in a notebook, 0.1 in a terminal). */
  minInterval?: number;
  /** Seconds between lines in log mode (default 5). */
  logInterval?: number;
  /** Terminal/log output (default process.stderr). */
  stream?: ProgressStream;
  /** Milliseconds from some origin (default performance.now). */
  clock?: () => number;
  /** tqdm's smoothing of the rate: 0 = overall average, 1 = instantaneous (default 0.3). */
  smoothing?: number;
  /** Bar width when the line width is not known (default 10). */
  barWidth?: number;
}

/** tqdm's exponential moving average with bias correction. */
class Ema {
  private value = 0;
  private calls = 0;
  constructor(private readonly alpha: number) {}
  add(x: number): void {
    this.value = this.alpha * x + (1 - this.alpha) * this.value;
    this.calls++;
  }
  get(): number | undefined {
    if (this.calls === 0) return undefined;
    const beta = 1 - this.alpha;
    return beta === 0 ? this.value : this.value / (1 - beta ** this.calls);
  }
}

/** Where a bar of this mode goes: "auto" is "display" in a notebook, "tty" in a terminal, "log" otherwise. */
export function resolveProgressMode(mode: ProgressMode = "auto", stream: ProgressStream = process.stderr): Exclude<ProgressMode, "auto"> {
  if (mode !== "auto") return mode;
  if (richDisplayAvailable()) return "display";
  return stream.isTTY ? "tty" : "log";
}

/** A progress bar: `update()` as work is done, `close()` at the end (also after an error). */
export class ProgressBar {
  readonly total: number | undefined;
  readonly unit: string;
  readonly mode: Exclude<ProgressMode, "auto">;
  desc: string | undefined;
  private count = 0;
  private extra: Postfix | undefined;
  private closed = false;
  private readonly clock: () => number;
  private readonly stream: ProgressStream;
  private readonly start: number;
  private readonly minInterval: number;
  private readonly logInterval: number;
  private readonly smoothing: number;
  private readonly barWidth: number;
  private readonly emaDn: Ema;
  private readonly emaDt: Ema;
  private handle: DisplayHandle | undefined;
  private lastDrawTime = -Infinity;
  private lastDrawN = 0;
  private lastRateTime: number;
  private lastRateN = 0;
  private lastLength = 0;

  constructor(options: ProgressOptions = {}) {
    this.total = options.total;
    this.desc = options.desc;
    this.unit = options.unit ?? "it";
    this.clock = options.clock ?? (() => performance.now());
    this.stream = options.stream ?? process.stderr;
    this.mode = resolveProgressMode(options.mode ?? "auto", this.stream);
    this.minInterval = options.minInterval ?? (this.mode === "display" ? 0.2 : 0.1);
    this.logInterval = options.logInterval ?? 5;
    this.smoothing = options.smoothing ?? 0.3;
    this.barWidth = options.barWidth ?? 10;
    this.emaDn = new Ema(this.smoothing);
    this.emaDt = new Ema(this.smoothing);
    this.start = this.clock();
    this.lastRateTime = this.start;
    if (this.mode === "display") this.handle = newDisplayHandle();
    this.draw(this.start, true);
  }

  /** Items done so far. */
  get n(): number {
    return this.count;
  }

  get postfix(): Postfix | undefined {
    return this.extra;
  }

  /** Sets the values shown after the rate (and redraws, if the last draw is old enough). */
  set postfix(postfix: Postfix | undefined) {
    this.extra = postfix;
    if (!this.closed) this.maybeDraw();
  }

  /** Adds `n` finished items, optionally replacing the postfix. */
  update(n = 1, postfix?: Postfix): void {
    if (this.closed) return;
    this.count += n;
    if (postfix !== undefined) this.extra = postfix;
    this.maybeDraw();
  }

  /** Draws the final state (always) and ends the line. Safe to call more than once. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.draw(this.clock(), true);
    if (this.mode === "tty") this.stream.write("\n");
  }

  /**
   * Prints a line of text without breaking the bar, as tqdm.write: in a terminal the bar's line is cleared, the text
   * written on the bar's stream and the bar drawn again below it; in a log on the bar's stream; in a notebook on
   * stdout (a stream output after the bar's); nowhere when silent.
   */
  write(text: string): void {
    switch (this.mode) {
      case "tty":
        this.stream.write(`\r${" ".repeat(this.lastLength)}\r${text}\n`);
        this.lastLength = 0;
        if (!this.closed) this.draw(this.clock(), true);
        break;
      case "log":
        this.stream.write(`${text}\n`);
        break;
      case "display":
        process.stdout.write(`${text}\n`);
        break;
      case "silent":
        break;
    }
  }

  /** The current line, as it would be drawn now. */
  line(now = this.clock()): string {
    const columns = this.mode === "tty" ? this.stream.columns : undefined;
    return formatProgressLine(this.state(now), columns ? { ncols: Math.min(columns - 1, 120) } : { barWidth: this.barWidth });
  }

  private state(now: number): ProgressState {
    const elapsed = (now - this.start) / 1000;
    // The average over the whole run once finished (what a reader of the final line wants), the smoothed
    // recent rate while running (what predicts the remaining time).
    const smoothed = this.closed || this.smoothing === 0 ? undefined : this.smoothedRate();
    return {
      n: this.count,
      total: this.total,
      elapsed,
      rate: smoothed ?? (elapsed > 0 ? this.count / elapsed : undefined),
      desc: this.desc,
      unit: this.unit,
      postfix: this.extra,
    };
  }

  private smoothedRate(): number | undefined {
    const dn = this.emaDn.get();
    const dt = this.emaDt.get();
    return dn !== undefined && dt ? dn / dt : undefined;
  }

  private maybeDraw(): void {
    const now = this.clock();
    const interval = this.mode === "log" ? this.logInterval : this.minInterval;
    if ((now - this.lastDrawTime) / 1000 >= interval) this.draw(now, false);
  }

  private draw(now: number, force: boolean): void {
    if (this.mode === "silent") return;
    if (!force && this.count === this.lastDrawN && this.mode === "log") return;
    const dt = (now - this.lastRateTime) / 1000;
    if (dt > 0 && this.count > this.lastRateN) {
      this.emaDn.add(this.count - this.lastRateN);
      this.emaDt.add(dt);
      this.lastRateTime = now;
      this.lastRateN = this.count;
    }
    this.lastDrawTime = now;
    this.lastDrawN = this.count;
    const line = this.line(now);
    switch (this.mode) {
      case "display":
        showText(line, { handle: this.handle });
        break;
      case "tty":
        this.stream.write(`\r${line}${" ".repeat(Math.max(0, this.lastLength - line.length))}`);
        this.lastLength = line.length;
        break;
      case "log":
        this.stream.write(`${line}\n`);
        break;
    }
  }
}

/** An iterable that shows progress while it is iterated; `bar` is the progress bar (for postfix, desc). */
export type TrackedIterable<T> = Iterable<T> & { readonly bar: ProgressBar };
export type TrackedAsyncIterable<T> = AsyncIterable<T> & { readonly bar: ProgressBar };

function lengthOf(items: object): number | undefined {
  if ("length" in items && typeof items.length === "number") return items.length;
  if ("size" in items && typeof items.size === "number") return items.size;
  return undefined;
}

function isAsyncIterable<T>(items: Iterable<T> | AsyncIterable<T>): items is AsyncIterable<T> {
  return Symbol.asyncIterator in items;
}

/**
 * Wraps an iterable (sync or async) so that iterating it advances a progress bar, like `tqdm(iterable)`. The total
 * defaults to the iterable's length or size. The bar closes when the loop ends, breaks or throws.
 */
export function trackProgress<T>(items: Iterable<T>, options?: ProgressOptions): TrackedIterable<T>;
export function trackProgress<T>(items: AsyncIterable<T>, options?: ProgressOptions): TrackedAsyncIterable<T>;
export function trackProgress<T>(
  items: Iterable<T> | AsyncIterable<T>,
  options: ProgressOptions = {},
): TrackedIterable<T> | TrackedAsyncIterable<T> {
  let bar: ProgressBar | undefined;
  const getBar = (): ProgressBar => (bar ??= new ProgressBar({ ...options, total: options.total ?? lengthOf(items) }));
  if (isAsyncIterable(items)) {
    return {
      get bar() {
        return getBar();
      },
      async *[Symbol.asyncIterator]() {
        const b = getBar();
        try {
          for await (const item of items) {
            yield item;
            b.update(1);
          }
        } finally {
          b.close();
        }
      },
    };
  }
  return {
    get bar() {
      return getBar();
    },
    *[Symbol.iterator]() {
      const b = getBar();
      try {
        for (const item of items) {
          yield item;
          b.update(1);
        }
      } finally {
        b.close();
      }
    },
  };
}
