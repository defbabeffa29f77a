import { afterEach, describe, expect, it } from "vitest";
import { setDisplayWriter, type DisplayDataContent } from "../lib/display/notebook-display";
import {
  ProgressBar,
  formatBar,
  formatDuration,
  formatInterval,
  formatNumber,
  formatProgressLine,
  trackProgress,
  type ProgressOptions,
} from "../lib/display/progress";

/** A manual clock (ms) and a stream that records writes. */
function harness(isTTY = false, columns?: number) {
  let now = 1000;
  const writes: string[] = [];
  const options: ProgressOptions = {
    clock: () => now,
    stream: { write: (text: string) => writes.push(text), isTTY, columns },
  };
  return {
    options,
    writes,
    advance(seconds: number) {
      now += seconds * 1000;
    },
  };
}

describe("tqdm's formatting", () => {
  it("formats intervals", () => {
    expect(formatInterval(0.4)).toBe("00:00");
    expect(formatInterval(12.9)).toBe("00:12");
    expect(formatInterval(75)).toBe("01:15");
    expect(formatInterval(3725)).toBe("1:02:05");
  });

  it("formats durations for people: 2 significant digits in s, min, h, then days from 48 h", () => {
    expect(formatDuration(0)).toBe("0 s");
    expect(formatDuration(0.004567)).toBe("0.0046 s");
    expect(formatDuration(0.91)).toBe("0.91 s");
    expect(formatDuration(9.14)).toBe("9.1 s");
    expect(formatDuration(45.3)).toBe("45 s");
    expect(formatDuration(59.7)).toBe("1 min"); // not "60 s", nor "0.99 min"
    expect(formatDuration(89)).toBe("1.5 min");
    expect(formatDuration(1234)).toBe("21 min");
    expect(formatDuration(3599)).toBe("1 h");
    expect(formatDuration(12_240)).toBe("3.4 h");
    expect(formatDuration(36 * 3600)).toBe("36 h");
    expect(formatDuration(47.9 * 3600)).toBe("2 days");
    expect(formatDuration(60 * 3600)).toBe("2.5 days");
    expect(formatDuration(8.64e6)).toBe("100 days");
    expect(formatDuration(1e9)).toBe("11574 days");
    for (const bad of [Number.NaN, -1, Infinity]) expect(formatDuration(bad)).toBe("?");
  });

  it("draws the unicode bar with a partial block", () => {
    expect(formatBar(0.45, 10)).toBe("████▌     ");
    expect(formatBar(0, 10)).toBe("          ");
    expect(formatBar(1, 10)).toBe("██████████");
    expect(formatBar(1.7, 4)).toBe("████");
    expect(formatBar(0.01, 10)).toBe(" " + " ".repeat(9)); // 0.8 of an eighth rounds down to nothing
    expect(formatBar(0.0125, 10)).toBe("▏         ");
    for (const f of [0, 0.13, 0.5, 0.99, 1]) expect([...formatBar(f, 25)]).toHaveLength(25);
  });

  it("formats postfix numbers like tqdm's format_num", () => {
    expect(formatNumber(0.0944)).toBe("0.0944");
    expect(formatNumber(0.09441234)).toBe("0.0944");
    expect(formatNumber(512)).toBe("512");
    expect(formatNumber(202752)).toBe("202752");
    expect(formatNumber(123456.789)).toBe("1.23e+5");
    expect(formatNumber(1e-5)).toBe("1e-5");
    expect(formatNumber(-0.5)).toBe("-.5");
    expect(formatNumber(2.3456)).toBe("2.35");
  });

  it("formats a line with a total exactly like tqdm", () => {
    const line = formatProgressLine({
      desc: "desc",
      n: 450,
      total: 1000,
      elapsed: 12.3,
      rate: 37.2,
      postfix: { loss: 0.0944 },
    });
    expect(line).toBe("desc:  45%|████▌     | 450/1000 [00:12<00:14, 37.20it/s, loss=0.0944]");
  });

  it("formats a line without a total like the post's tqdm output", () => {
    const line = formatProgressLine({ desc: "Extracting sparse features...", n: 202752, elapsed: 0.48, rate: 419656.01 });
    expect(line).toBe("Extracting sparse features...: 202752it [00:00, 419656.01it/s]");
  });

  it("handles the start, slow rates, units, overshoot and a fixed line width", () => {
    expect(formatProgressLine({ n: 0, total: 10, elapsed: 0 })).toBe("  0%|          | 0/10 [00:00<?, ?it/s]");
    expect(formatProgressLine({ n: 3, total: 10, elapsed: 6, unit: "img" })).toBe(
      " 30%|███       | 3/10 [00:06<00:14,  2.00s/img]",
    );
    expect(formatProgressLine({ n: 11, total: 10, elapsed: 2, postfix: { phase: " eval " } })).toBe(
      "11it [00:02,  5.50it/s, phase=eval]",
    );
    const wide = formatProgressLine({ n: 5, total: 10, elapsed: 1, desc: "x" }, { ncols: 60 });
    expect(wide).toHaveLength(60);
    expect(wide).toContain("|██████████");
  });
});

describe("ProgressBar", () => {
  afterEach(() => setDisplayWriter(undefined));

  it("in a notebook: one output updated in place, throttled, final state on close", () => {
    const sent: { content: DisplayDataContent; update: boolean }[] = [];
    setDisplayWriter((content, update) => sent.push({ content, update }));
    const h = harness();
    const bar = new ProgressBar({ ...h.options, total: 100, desc: "Training" });
    expect(bar.mode).toBe("display");
    for (let i = 0; i < 100; i++) {
      h.advance(0.01);
      bar.update(1, { loss: 1 / (i + 1) });
    }
    bar.close();
    bar.close(); // idempotent
    const ids = new Set(sent.map((s) => s.content.transient.display_id));
    expect(ids.size).toBe(1);
    expect([...ids][0]).toMatch(/^[0-9a-f]{16}$/);
    expect(sent[0].update).toBe(false);
    expect(sent.slice(1).every((s) => s.update)).toBe(true);
    // 1 s of updates every 10 ms, at most one draw per 0.2 s: start + ≤5 + close.
    expect(sent.length).toBeGreaterThanOrEqual(3);
    expect(sent.length).toBeLessThanOrEqual(7);
    const last = sent[sent.length - 1].content.data["text/plain"];
    expect(last).toBe("Training: 100%|██████████| 100/100 [00:01<00:00, 100.00it/s, loss=0.01]");
    expect(sent[0].content.data["text/plain"]).toBe("Training:   0%|          | 0/100 [00:00<?, ?it/s]");
  });

  it("in a terminal: rewrites one line with \\r, padding over longer previous text, newline at the end", () => {
    const h = harness(true);
    const bar = new ProgressBar({ ...h.options, total: 4, mode: "auto" });
    expect(bar.mode).toBe("tty");
    h.advance(1);
    bar.update(1, { loss: 123.456 });
    h.advance(1);
    bar.postfix = undefined; // shorter line: the rest is blanked
    bar.close();
    expect(h.writes.every((w, i) => (i === h.writes.length - 1 ? w === "\n" : w.startsWith("\r")))).toBe(true);
    expect(h.writes[1]).toBe("\r 25%|██▌       | 1/4 [00:01<00:03,  1.00it/s, loss=123]");
    const shorter = h.writes[2];
    expect(shorter.length).toBe(h.writes[1].length);
    expect(shorter.trimEnd()).toBe("\r 25%|██▌       | 1/4 [00:02<00:03,  1.00it/s]");
    expect(h.writes[3].trimEnd()).toBe("\r 25%|██▌       | 1/4 [00:02<00:06,  2.00s/it]");
  });

  it("write() prints a line without breaking the bar: in a terminal it clears the bar's line and draws the bar again below", () => {
    const h = harness(true);
    const bar = new ProgressBar({ ...h.options, total: 4 });
    h.advance(1);
    bar.update(1);
    const drawn = h.writes[h.writes.length - 1];
    bar.write("Estimated time of this run: 4 steps × 1 s/step ≈ 4 s");
    expect(h.writes[h.writes.length - 2]).toBe(`\r${" ".repeat(drawn.length - 1)}\rEstimated time of this run: 4 steps × 1 s/step ≈ 4 s\n`);
    expect(h.writes[h.writes.length - 1]).toMatch(/^\r 25%\|/);
    bar.close();
    const log = harness(false);
    const logged = new ProgressBar({ ...log.options, total: 4, mode: "log" });
    logged.write("a line");
    expect(log.writes[log.writes.length - 1]).toBe("a line\n");
    const quiet = harness(true);
    new ProgressBar({ ...quiet.options, total: 4, mode: "silent" }).write("nothing");
    expect(quiet.writes).toEqual([]);
  });

  it("in a terminal of known width: the line fills it", () => {
    const h = harness(true, 81);
    const bar = new ProgressBar({ ...h.options, total: 10 });
    h.advance(1);
    bar.update(5);
    expect(h.writes[1]).toHaveLength(81); // "\r" + 80 columns
  });

  it("in a log: a line at the start, every logInterval seconds, and at the end", () => {
    const h = harness(false);
    const bar = new ProgressBar({ ...h.options, total: 1000, desc: "SAE", logInterval: 5 });
    expect(bar.mode).toBe("log");
    for (let i = 0; i < 1000; i++) {
      h.advance(0.012);
      bar.update(1);
    }
    bar.close();
    // 12 s of work: start, ~5 s, ~10 s, end.
    expect(h.writes).toHaveLength(4);
    expect(h.writes.every((w) => w.endsWith("\n") && !w.includes("\r"))).toBe(true);
    expect(h.writes[3]).toBe("SAE: 100%|██████████| 1000/1000 [00:12<00:00, 83.33it/s]\n");
  });

  it("smooths the rate like tqdm while running", () => {
    const h = harness(false);
    const bar = new ProgressBar({ ...h.options, total: 100, mode: "tty", minInterval: 0 });
    for (let i = 0; i < 10; i++) {
      h.advance(1);
      bar.update(1); // 1 it/s
    }
    for (let i = 0; i < 10; i++) {
      h.advance(0.1);
      bar.update(1); // 10 it/s
    }
    // Overall average would be 20/11 = 1.82 it/s; the smoothed rate has moved most of the way to 10.
    const rate = Number(/([\d.]+)it\/s/.exec(bar.line())?.[1]);
    expect(rate).toBeGreaterThan(8);
    expect(rate).toBeLessThanOrEqual(10);
  });

  it("is silent when asked, and never draws after close", () => {
    const h = harness(true);
    const bar = new ProgressBar({ ...h.options, total: 3, mode: "silent" });
    bar.update(3);
    bar.close();
    expect(h.writes).toEqual([]);
    const other = new ProgressBar({ ...h.options, total: 3, mode: "log" });
    other.close();
    h.advance(10);
    other.update(1);
    expect(h.writes).toHaveLength(2);
    expect(other.n).toBe(0);
  });
});

describe("trackProgress", () => {
  it("wraps an array, takes its length as total and closes after the loop", () => {
    const h = harness(false);
    const seen: number[] = [];
    const tracked = trackProgress([1, 2, 3], { ...h.options, desc: "items" });
    for (const x of tracked) {
      seen.push(x);
      tracked.bar.postfix = { last: x };
    }
    expect(seen).toEqual([1, 2, 3]);
    expect(tracked.bar.n).toBe(3);
    expect(tracked.bar.total).toBe(3);
    expect(h.writes.at(-1)).toBe("items: 100%|██████████| 3/3 [00:00<?, ?it/s, last=3]\n");
  });

  it("closes the bar when the loop breaks", () => {
    const h = harness(false);
    const tracked = trackProgress(new Set(["a", "b", "c", "d"]), h.options);
    for (const x of tracked) if (x === "b") break;
    expect(tracked.bar.total).toBe(4);
    expect(tracked.bar.n).toBe(1); // "b" was not finished
    expect(h.writes.at(-1)).toContain("1/4");
  });

  it("wraps async iterables", async () => {
    const h = harness(false);
    async function* batches() {
      for (let i = 0; i < 5; i++) {
        h.advance(0.5);
        yield i;
      }
    }
    let sum = 0;
    const tracked = trackProgress(batches(), { ...h.options, desc: "batches", unit: "batch" });
    for await (const b of tracked) sum += b;
    expect(sum).toBe(10);
    expect(h.writes.at(-1)).toBe("batches: 5batch [00:02,  2.00batch/s]\n");
  });
});
