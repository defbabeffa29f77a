// The time estimate of a fine-tuning run (lib/model/estimate): which steps are timed, what the config's run counts,
// the arithmetic and the words, the post-size scaling, the display, and a real timed gradient pass.

import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { initBackend, tf } from "../lib/kernels/backend";
import { setDisplayWriter, type DisplayDataContent } from "../lib/display/notebook-display";
import { applyOverrides, defaultConfig } from "../lib/run/config";
import { trainingPlan } from "../lib/model/finetune";
import { measureEvery } from "../lib/model/held-out";
import { createResNet18 } from "../lib/model/resnet18";
import {
  EstimateDisplay, POST_RUN, RunClock, batchNormRecomputations, checkpointsOf, describeEstimateCheck, describePostSizeEstimate, describeRunEstimate, estimateLinesIn, measurementsOf, postSizeEstimate, runsAtPostSize,
  stepsOf, stepsScaleToPostSize, timeGradientPass, timingWindow, type RunSchedule,
} from "../lib/model/estimate";

afterEach(() => setDisplayWriter(undefined));

describe("the steps timed", () => {
  it("after the first (warm-up) step, up to three, leaving at least one to estimate", () => {
    expect(timingWindow(0, 20)).toEqual({ from: 2, to: 4 });
    expect(timingWindow(0, 5)).toEqual({ from: 2, to: 4 });
    expect(timingWindow(0, 4)).toEqual({ from: 2, to: 3 });
    expect(timingWindow(0, 3)).toEqual({ from: 2, to: 2 });
    expect(timingWindow(0, 2)).toBeNull();
    expect(timingWindow(0, 1)).toBeNull();
    expect(timingWindow(349, 1583)).toEqual({ from: 351, to: 353 }); // a resumed run times its own first steps
    expect(timingWindow(20, 20)).toBeNull(); // finished
  });
});

describe("what the configured run counts", () => {
  const dataset = { count: 1000, identities: null };
  it("steps from epochs × ⌈faces / batch⌉, or maxSteps; a resumed run counts what is left", () => {
    const twoEpochs = applyOverrides(defaultConfig("x"), ["finetune.epochs=2"]);
    expect(trainingPlan(twoEpochs, dataset).steps).toBe(2 * Math.ceil(1000 / 128));
    const capped = applyOverrides(defaultConfig("x"), ["finetune.epochs=2", "finetune.maxSteps=5"]);
    expect(trainingPlan(capped, dataset).steps).toBe(5);
    const clock = new RunClock({ firstStep: 10, totalSteps: 16, measureEvery: null, checkpointEvery: 25 });
    expect(clock.untimed().steps.count).toBe(6);
    expect(clock.untimed().resumedFrom).toBe(10);
  });

  it("held-out measurements: step 0's when fresh, every N steps and the last; checkpoints every N and the last", () => {
    const fresh: RunSchedule = { firstStep: 0, totalSteps: 20, measureEvery: 10, checkpointEvery: 25 };
    expect(measurementsOf(fresh)).toBe(3); // 0, 10, 20
    expect(checkpointsOf(fresh)).toBe(1); // 20
    expect(measurementsOf({ ...fresh, measureEvery: null })).toBe(0);
    // the post's run resumed at step 349: measured every 159 steps (about ten a run), checkpoints every 25
    const resumed: RunSchedule = { firstStep: 349, totalSteps: 1583, measureEvery: measureEvery(null, 1583), checkpointEvery: 25 };
    expect(resumed.measureEvery).toBe(159);
    expect(measurementsOf(resumed)).toBe(8); // 477, 636, 795, 954, 1113, 1272, 1431, 1583
    expect(checkpointsOf(resumed)).toBe(51); // 350, 375, …, 1575, 1583
  });
});

describe("the estimate from the first steps", () => {
  /** A clock the test moves (ms). */
  const manual = () => {
    let now = 0;
    return { clock: () => now, at: (ms: number) => (now = ms) };
  };

  it("times steps 2–4 without the measurements and checkpoints in them, which are counted apart", () => {
    const t = manual();
    const clock = new RunClock({ firstStep: 0, totalSteps: 10, measureEvery: 5, checkpointEvery: 3 }, t.clock);
    clock.aside("measure", 500); // step 0, the "before"
    t.at(2000);
    expect(clock.stepDone(1)).toBeNull(); // the warm-up step: the window starts when it ends
    t.at(3000);
    expect(clock.stepDone(2)).toBeNull();
    clock.aside("checkpoint", 200);
    t.at(4200);
    expect(clock.stepDone(3)).toBeNull();
    t.at(5200);
    const e = clock.stepDone(4);
    expect(e).not.toBeNull();
    expect(e!.steps).toEqual({ count: 10, secondsEach: 1 }); // (5200 − 2000 − 200) ms / 3 steps
    expect(e!.measurements).toEqual({ count: 3, secondsEach: 0.5 }); // 0, 5, 10
    expect(e!.checkpoints).toEqual({ count: 4, secondsEach: 0.2 }); // 3, 6, 9, 10
    expect(e!.seconds).toBeCloseTo(10 + 1.5 + 0.8, 10);
    expect(clock.stepDone(5)).toBeNull(); // made once
    expect(describeRunEstimate(e!, { engine: "onnxruntime-node 1.30.0 (CPU, 2 threads)" })).toBe(
      "Estimated time of this run: 10 steps × 1 s/step + 3 held-out measurements × 0.5 s + 4 checkpoint writes × 0.2 s ≈ 12 s on this machine " +
        "(onnxruntime-node 1.30.0 (CPU, 2 threads); timed on steps 2–4, waiting for images included; held-out measurements and checkpoint writes as the ones so far took).",
    );
  });

  it("says what it did not time, and counts a resumed run's remaining steps in human units", () => {
    const t = manual();
    const clock = new RunClock({ firstStep: 349, totalSteps: 1583, measureEvery: 159, checkpointEvery: 25 }, t.clock);
    t.at(10_000);
    clock.stepDone(350);
    t.at(10_000 + 3 * 45_000);
    clock.stepDone(351);
    clock.stepDone(352);
    const e = clock.stepDone(353)!;
    expect(e.steps).toEqual({ count: 1234, secondsEach: 45 });
    expect(e.measurements.secondsEach).toBeNull(); // none since the resume
    expect(batchNormRecomputations(e)).toBe(9); // before the 8 measurements, and at the end
    const text = describeRunEstimate(e, { batchNormFaces: 1024 });
    expect(text).toBe(
      "Estimated time of this run: 1,234 steps (resumed at step 349 of 1,583) × 45 s/step ≈ 15 h on this machine (timed on steps 351–353, waiting for images included).\n" +
        "Not timed: 8 held-out measurements; 51 checkpoint writes; BatchNorm's statistics recomputed 9 times over 1,024 faces (before each held-out measurement after step 0, and at the end).",
    );
    // a fresh run measured at 0, 10 and 20 recomputes them before 10 and 20, and at the end; without a measure, at the end
    const fresh = new RunClock({ firstStep: 0, totalSteps: 20, measureEvery: 10, checkpointEvery: 25 }).untimed();
    expect(batchNormRecomputations(fresh)).toBe(3);
    expect(batchNormRecomputations(new RunClock({ firstStep: 0, totalSteps: 20, measureEvery: null, checkpointEvery: 25 }).untimed())).toBe(1);
  });

  it("is put beside the time the run took, and its lines can be read back from a notebook's text", () => {
    const t = { now: 0 };
    const clock = new RunClock({ firstStep: 0, totalSteps: 20, measureEvery: null, checkpointEvery: 25 }, () => t.now);
    clock.stepDone(1);
    t.now = 3000;
    clock.stepDone(2);
    clock.stepDone(3);
    const estimate = clock.stepDone(4)!;
    const check = describeEstimateCheck({ estimate, seconds: 23.4, stepsThisRun: 20 });
    expect(check).toBe("The estimate made from steps 2–4 said ≈ 20 s; training took 23 s (steps, held-out measurements and checkpoint writes).");
    expect(describeEstimateCheck({ estimate: clock.untimed(), seconds: 1, stepsThisRun: 20 })).toBe("");
    const printed = ["Preset post: …", describeRunEstimate(estimate, { batchNormFaces: 256 }), "Training...: 100%", "Trained 20 steps from the start.", check].join("\n");
    expect(estimateLinesIn(printed)).toEqual([...describeRunEstimate(estimate, { batchNormFaces: 256 }).split("\n"), check]);
  });

  it("a run too short to time after its warm-up step, and a finished one, say so", () => {
    expect(describeRunEstimate(new RunClock({ firstStep: 0, totalSteps: 2, measureEvery: null, checkpointEvery: 25 }).untimed())).toBe(
      "Estimated time of this run: 2 steps, too few to time after the first (which builds the graphs and is slower): no estimate.",
    );
    expect(describeRunEstimate(new RunClock({ firstStep: 20, totalSteps: 20, measureEvery: null, checkpointEvery: 25 }).untimed())).toMatch(/nothing left to train/);
  });
});

describe("the post's size", () => {
  it("is CelebA at the defaults: 202,599 faces at 224 px, 1 epoch, batches of 128 in chunks of 32, 1,583 steps", () => {
    expect(POST_RUN).toEqual({ faces: 202_599, imageSize: 224, epochs: 1, batchSize: 128, chunkSize: 32 });
    expect(stepsOf(POST_RUN)).toBe(1583);
  });

  it("scales the time per image of a pass at 224 px, or of a run's own steps, to 202,599 faces", () => {
    const pass = postSizeEstimate({ kind: "pass", pass: { images: 4, imageSize: 224, chunkSize: 2, seconds: 2, warmupSeconds: 1.5 } });
    expect(pass.secondsPerFace).toBe(0.5);
    expect(pass.seconds).toBe(0.5 * 202_599);
    expect(pass.steps).toBe(1583);
    expect(describePostSizeEstimate(pass)).toBe(
      "At the post's size (202,599 faces at 224 px, 1 epoch, batches of 128 in chunks of 32: 1,583 steps): ≈ 28 h here, scaled from a gradient pass over " +
        "4 images of 224 px in chunks of 2 (2 s after a warm-up pass: 0.5 s an image × 202,599). Gradient passes only: image decoding, the optimizer's " +
        "update, held-out measurements and checkpoint writes come on top, while chunks of 32 spread each chunk's fixed costs over more images than chunks of 2 do.",
    );
    const run = postSizeEstimate({ kind: "run", secondsPerStep: 64, batchSize: 128, chunkSize: 32, window: { from: 2, to: 4 } });
    expect(run.seconds).toBe(pass.seconds);
    expect(describePostSizeEstimate(run)).toBe(
      "At the post's size (202,599 faces at 224 px, 1 epoch, batches of 128 in chunks of 32: 1,583 steps): ≈ 28 h here — this run's 0.5 s an image " +
        "(steps 2–4: 1.1 min a batch of 128 in chunks of 32) × 202,599; held-out measurements and checkpoint writes not included.",
    );
    expect(postSizeEstimate({ kind: "pass", pass: { images: 4, imageSize: 224, chunkSize: 2, seconds: 8, warmupSeconds: 5 } }, { ...POST_RUN, epochs: 2 }).seconds).toBe(4 * 202_599);
  });

  it("is measured only for runs not at that size, and taken from the run's steps when they do the same work per face", () => {
    expect(runsAtPostSize({ imageSize: 224, faces: 202_599, maxSteps: null })).toBe(true);
    expect(runsAtPostSize({ imageSize: 224, faces: 202_599, maxSteps: 50 })).toBe(false);
    expect(runsAtPostSize({ imageSize: 64, faces: 202_599, maxSteps: null })).toBe(false);
    expect(runsAtPostSize({ imageSize: 224, faces: 5000, maxSteps: null })).toBe(false);
    expect(stepsScaleToPostSize({ imageSize: 224, batchSize: 128, chunkSize: 32 })).toBe(true);
    expect(stepsScaleToPostSize({ imageSize: 224, batchSize: 64, chunkSize: 16 })).toBe(true);
    expect(stepsScaleToPostSize({ imageSize: 224, batchSize: 8, chunkSize: 8 })).toBe(false); // one chunk: no second forward pass
    expect(stepsScaleToPostSize({ imageSize: 64, batchSize: 128, chunkSize: 32 })).toBe(false);
  });
});

describe("EstimateDisplay", () => {
  it("in a notebook: one output before training, updated in place, the run's line first", () => {
    const sent: { content: DisplayDataContent; update: boolean }[] = [];
    setDisplayWriter((content, update) => sent.push({ content, update }));
    const display = new EstimateDisplay("auto", { engine: "TF.js wasm" });
    expect(display.mode).toBe("display");
    display.start("At the post's size: timing a gradient pass at 224 px…");
    display.showPostSize(postSizeEstimate({ kind: "pass", pass: { images: 4, imageSize: 224, chunkSize: 2, seconds: 2, warmupSeconds: 1.5 } }));
    const clock = new RunClock({ firstStep: 0, totalSteps: 3, measureEvery: null, checkpointEvery: 25 });
    clock.stepDone(1);
    display.showRun(clock.stepDone(2)!);
    expect(new Set(sent.map((s) => s.content.transient.display_id)).size).toBe(1);
    expect(sent.map((s) => s.update)).toEqual([false, true, true]);
    const text = (i: number): string => String(sent[i].content.data["text/plain"]);
    expect(text(0)).toBe("Estimated time of this run: timing its first steps…\nAt the post's size: timing a gradient pass at 224 px…");
    expect(text(1)).toMatch(/^Estimated time of this run: timing its first steps…\nAt the post's size \(202,599 faces.*≈ 28 h here/);
    expect(text(2)).toMatch(/^Estimated time of this run: 3 steps × \S+ s\/step ≈ \S+ s on this machine \(TF\.js wasm; timed on step 2, .*\)\.\nNot timed: 1 checkpoint write\.\nAt the post's size \(/);
  });

  it("from a run at the post's image size: the post's line comes with the run's; in a terminal each line is printed once known", () => {
    const printed: string[] = [];
    const stdout = vi.spyOn(process.stdout, "write").mockImplementation((text) => printed.push(String(text)) > 0);
    try {
      const display = new EstimateDisplay("log");
      expect(display.mode).toBe("print");
      display.postSizeFromRun = { batchSize: 128, chunkSize: 32 };
      display.start("At the post's size: from this run's first steps…");
      expect(printed).toEqual([]); // no placeholders in a terminal
      const t = { now: 0 };
      const clock = new RunClock({ firstStep: 0, totalSteps: 1583, measureEvery: null, checkpointEvery: 10_000 }, () => t.now);
      clock.stepDone(1);
      t.now = 3 * 64_000;
      clock.stepDone(2);
      clock.stepDone(3);
      const lines: string[] = [];
      const post = display.showRun(clock.stepDone(4)!, (line) => lines.push(line));
      expect(post?.secondsPerFace).toBe(0.5);
      expect(display.postSize).toBe(post);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^Estimated time of this run: 1,583 steps × 1.1 min\/step ≈ 28 h on this machine .*\n[\s\S]*At the post's size .*≈ 28 h here — this run's 0.5 s an image/);
    } finally {
      stdout.mockRestore();
    }
  });

  it("says when training stopped before its steps were timed", () => {
    const display = new EstimateDisplay("silent");
    display.start(null);
    display.abandon(1);
    expect(display.text).toBe("Estimated time of this run: none (training stopped at step 1, before the steps to time).");
  });
});

describe("a gradient pass timed at another image size", () => {
  beforeAll(async () => {
    await initBackend();
  });

  it("takes the gradient cache's path, leaves the model as it was and frees its tensors", async () => {
    const model = createResNet18({ width: 4, seed: 3 });
    await timeGradientPass(model, { imageSize: 32, preset: "post", temperature: 0.1 }); // the kernels' constants are made once
    const before = model.stateDict();
    const tensors = tf.memory().numTensors;
    const pass = await timeGradientPass(model, { imageSize: 32, preset: "post", temperature: 0.1 });
    expect(pass).toMatchObject({ images: 4, imageSize: 32, chunkSize: 2 });
    expect(pass.seconds).toBeGreaterThan(0);
    expect(tf.memory().numTensors).toBe(tensors);
    const after = model.stateDict();
    for (const [name, t] of before) expect(Array.from(after.get(name)!.dataSync()), name).toEqual(Array.from(t.dataSync()));
    tf.dispose([...before.values(), ...after.values()]);
    await expect(timeGradientPass(model, { imageSize: 32, preset: "post", temperature: 0.1, images: 2, chunkSize: 2 })).rejects.toThrow(/no gradient cache/);
    model.dispose();
  });
});
