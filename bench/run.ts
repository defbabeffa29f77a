// `npm run bench [-- --only decode,resnet,onnx,sae,data,demo,full-size] [--reps N] [--data FOLDER] [--images N]`
// (full-size: the whole series on 202,599 faces, bench/full-size.ts; its section of results.md is kept otherwise)
//
// Runs each workload of bench/workloads.ts in a process of its own (so that its peak memory is its own), the same
// work in PyTorch on this machine (bench/pytorch_baseline.py, Debian's python3-torch with 2 threads, also one process
// per workload; installed with apt-get when missing and possible), profiles one repetition of every TF.js workload
// kernel by kernel, and writes bench/results.md: medians, min–max, throughput, achieved GFLOP/s and share of the
// WASM ceiling, peak memory, the ratio to PyTorch, and where the time goes.
// Benchmarks are never tests: run them on an otherwise idle machine.

import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir, totalmem } from "node:os";
import { basename, join } from "node:path";
import sharp from "sharp";
import { describeBackend, initBackend, tf } from "../lib/kernels/backend";
import { openImageDataset } from "../lib/data/image-dataset";
import { projectRoot } from "../lib/util/project";
import { aptInstall } from "../lib/run/setup";
import { previousFullSizeSection, runFullSize, withFullSizeSection } from "./full-size";
import { listNotebooks } from "../lib/run/notebook-runner";
import { CELEBA_FACES, WORKLOADS, type BenchOptions, type Workload } from "./workloads";

/** WASM SIMD (128-bit, no FMA) tops out near 80 GFLOP/s on these 2 cores (shared/notes/tfjs-on-cpu.md). */
const WASM_CEILING_GFLOPS = 80;
const PYTORCH_PACKAGES = ["python3-torch", "python3-torchvision", "python3-pil"] as const;
const RESULT_TAG = "BENCH_RESULT ";

/** What one workload's process reports. */
interface Measurement {
  readonly name: string;
  readonly seconds: readonly number[];
  readonly items: number;
  readonly unit: string;
  readonly flops?: number;
  /** The process's maximum resident memory: this workload's alone. */
  readonly peakMb: number;
  readonly summary?: string;
  readonly kernels?: KernelProfile;
  /** Native code (ONNX Runtime), not WASM: the WASM ceiling does not apply. */
  readonly native?: boolean;
}

interface KernelProfile {
  /** Wall time of the profiled repetition and the part of it spent inside kernels. */
  readonly wallMs: number;
  readonly kernelMs: number;
  readonly top: readonly { readonly name: string; readonly ms: number; readonly calls: number }[];
}

interface Baseline {
  readonly name: string;
  readonly seconds: readonly number[];
  readonly items: number;
  readonly peak_mb: number;
  readonly torch: string;
  /** torch.get_num_threads(), the BLAS torch.__config__.show() names, and ATen's parallel backend. */
  readonly threads: number;
  readonly blas: string;
  readonly parallel: string;
}

/** The CPU as /proc/cpuinfo names it: vendor, model, and whether it has AVX-512 (ratios differ by machine). */
function cpuDescription(): string {
  const fallback = `${cpus().length} × ${cpus()[0]?.model ?? "CPU"}`;
  let info: string;
  try {
    info = readFileSync("/proc/cpuinfo", "utf8");
  } catch {
    return fallback;
  }
  const field = (name: string): string | undefined => info.match(new RegExp(`^${name}\\s*: (.*)$`, "m"))?.[1]?.trim();
  const flags = field("flags")?.split(" ") ?? [];
  const simd = flags.includes("avx512f") ? "AVX-512" : flags.includes("avx2") ? "AVX2" : "no AVX2";
  return `${cpus().length} × ${field("model name") ?? cpus()[0]?.model ?? "CPU"} (${field("vendor_id") ?? "vendor unknown"}, ${simd})`;
}

type Options = BenchOptions & { readonly only: ReadonlySet<string>; readonly child: string | undefined };

function parseArgs(argv: readonly string[]): Options {
  const get = (flag: string): string | undefined => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  return {
    only: new Set((get("--only") ?? "decode,resnet,onnx,sae,data").split(",")),
    reps: Number(get("--reps") ?? 5),
    data: get("--data"),
    images: Number(get("--images") ?? 1000),
    child: get("--child"),
  };
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

// ---------------------------------------------------------------------------------------------------------------
// One workload, in this process (the child)

/** One repetition under tf.profile: kernel time by kernel name. */
async function profileKernels(step: () => Promise<void>): Promise<KernelProfile> {
  const started = performance.now();
  const info = await tf.profile(step);
  const wallMs = performance.now() - started;
  const byName = new Map<string, { ms: number; calls: number }>();
  // A custom-gradient op appears as "<op>__op" or "unnamed scope" around the kernels it runs: not counted twice.
  for (const k of info.kernels.filter((k) => !k.name.endsWith("__op") && k.name !== "unnamed scope")) {
    const ms = typeof k.kernelTimeMs === "number" ? k.kernelTimeMs : 0;
    const entry = byName.get(k.name) ?? { ms: 0, calls: 0 };
    byName.set(k.name, { ms: entry.ms + ms, calls: entry.calls + 1 });
  }
  const top = [...byName].map(([name, v]) => ({ name, ...v })).sort((a, b) => b.ms - a.ms);
  return { wallMs, kernelMs: top.reduce((s, k) => s + k.ms, 0), top: top.slice(0, 8) };
}

async function runWorkload(workload: Workload, options: BenchOptions): Promise<Measurement> {
  const prepared = await workload.prepare(options);
  try {
    for (let i = 0; i < (prepared.warmup ?? 1); i++) await prepared.step();
    const seconds: number[] = [];
    for (let i = 0; i < options.reps; i++) {
      const t = performance.now();
      const timed = await prepared.step();
      seconds.push(typeof timed === "number" ? timed : (performance.now() - t) / 1000);
    }
    const kernels = workload.kernels === true ? await profileKernels(async () => void (await prepared.step())) : undefined;
    return {
      name: workload.name, seconds, items: prepared.items, unit: prepared.unit, flops: prepared.flops,
      peakMb: process.resourceUsage().maxRSS / 1024, summary: prepared.summary?.(), kernels, native: workload.native,
    };
  } finally {
    await prepared.dispose();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The parent: a process per workload, PyTorch beside it, the report

function runChild(workload: Workload, options: Options): Measurement | string {
  const args = ["tsx", "bench/run.ts", "--child", workload.name, "--reps", String(options.reps), "--images", String(options.images)];
  if (options.data !== undefined) args.push("--data", options.data);
  const r = spawnSync("npx", args, { cwd: projectRoot(), encoding: "utf8", maxBuffer: 1 << 26, stdio: ["ignore", "pipe", "inherit"] });
  const line = r.stdout.split("\n").find((l) => l.startsWith(RESULT_TAG));
  if (r.status !== 0 || line === undefined) return `failed (exit ${r.status}): ${r.stdout.trim().split("\n").pop() ?? ""}`;
  return JSON.parse(line.slice(RESULT_TAG.length)) as Measurement;
}

/** Makes sure PyTorch is here (installing it with apt-get when it can), or says why there is no baseline. */
function pytorchReady(): string | null {
  const probe = (): boolean => spawnSync("/usr/bin/python3", ["-c", "import torch, torchvision, PIL"], { stdio: "ignore" }).status === 0;
  if (probe()) return null;
  console.log(`PyTorch is missing: installing ${PYTORCH_PACKAGES.join(" ")} with apt-get …`);
  if (aptInstall(PYTORCH_PACKAGES) && probe()) return null;
  return `PyTorch baselines skipped: Debian's ${PYTORCH_PACKAGES.join(", ")} are not installed and apt-get could not install them here (run \`sudo apt-get install ${PYTORCH_PACKAGES.join(" ")}\`).`;
}

function pytorchBaseline(name: string, options: Options): Baseline | string {
  const args = [join(projectRoot(), "bench", "pytorch_baseline.py"), "--workload", name, "--reps", String(options.reps), "--images", String(options.images)];
  if (options.data !== undefined) args.push("--data", options.data);
  const r = spawnSync("/usr/bin/python3", args, { encoding: "utf8", maxBuffer: 1 << 24 });
  if (r.status !== 0) return `failed: ${r.stderr.trim().split("\n").pop() ?? ""}`;
  return JSON.parse(r.stdout.trim().split("\n").pop() ?? "") as Baseline;
}

/** CelebA's aligned faces are 178×218 JPEGs. */
const CELEBA_WIDTH = 178;
const CELEBA_HEIGHT = 218;

/**
 * A folder of CelebA-size JPEGs for the decode workloads: `folder` itself when its images are 178×218, else copies
 * scaled to 178×218 (sharp, Lanczos-3, JPEG quality 90) under the system's temporary folder, made once (a
 * development set of CelebA's faces at half size, 89×109, would otherwise decode faster than the real ones).
 */
async function celebaSizeFolder(folder: string, images: number): Promise<{ folder: string; note: string }> {
  const dataset = await openImageDataset(folder, { limit: images, skipMetadata: true });
  const meta = await sharp(dataset.paths[0]).metadata();
  if (meta.width === CELEBA_WIDTH && meta.height === CELEBA_HEIGHT) return { folder, note: `decode rows: ${dataset.count} JPEGs of ${folder} (178×218, CelebA's size)` };
  const target = join(tmpdir(), `celeba-sae-bench-${CELEBA_WIDTH}x${CELEBA_HEIGHT}-${dataset.count}`);
  const imagesDir = join(target, "img_align_celeba");
  if (!existsSync(imagesDir) || readdirSync(imagesDir).length !== dataset.count) {
    const partial = `${imagesDir}.partial-${process.pid}`;
    mkdirSync(partial, { recursive: true });
    for (const [i, path] of dataset.paths.entries()) {
      await sharp(path).resize(CELEBA_WIDTH, CELEBA_HEIGHT, { fit: "fill", kernel: "lanczos3" }).jpeg({ quality: 90 }).toFile(join(partial, `${String(i + 1).padStart(6, "0")}.jpg`));
    }
    renameSync(partial, imagesDir);
  }
  return {
    folder: target,
    note: `decode and fine-tuning rows: ${dataset.count} CelebA-size (178×218) JPEGs, the ${meta.width}×${meta.height} faces of <${basename(folder)}> scaled ×2 by sharp (Lanczos-3, JPEG quality 90) into ${target}`,
  };
}

function fmt(x: number, digits = 3): string {
  return Number.isFinite(x) ? x.toPrecision(digits) : "—";
}

/** An SAE epoch over CelebA's 202,599 vectors is ⌈202,599 / 512⌉ = 396 steps: derived from the step's times. */
const SAE_EPOCH_STEPS = Math.ceil(CELEBA_FACES / 512);

/** A row for the SAE epoch after every SAE step row (times × 396), with its baseline likewise. */
function withSaeEpoch(m: Measurement, base: Baseline | undefined): [Measurement, Baseline | undefined][] {
  const match = /^sae step (onnx )?(\d+)$/.exec(m.name);
  if (match === null) return [[m, base]];
  const name = `sae epoch ${match[1] ?? ""}${match[2]} (${SAE_EPOCH_STEPS} steps × step time)`;
  const epoch: Measurement = { ...m, name, seconds: m.seconds.map((x) => x * SAE_EPOCH_STEPS), items: CELEBA_FACES, flops: (m.flops ?? 0) * SAE_EPOCH_STEPS };
  const baseEpoch = base === undefined ? undefined : { ...base, name, seconds: base.seconds.map((x) => x * SAE_EPOCH_STEPS) };
  return [[m, base], [epoch, baseEpoch]];
}

function row(m: Measurement, base: Baseline | undefined): string[] {
  const med = median(m.seconds);
  const baseMed = base ? median(base.seconds) : Number.NaN;
  const gflops = m.flops ? m.flops / med / 1e9 : Number.NaN;
  const baseGflops = m.flops && base ? m.flops / baseMed / 1e9 : Number.NaN;
  return [
    m.name,
    `${fmt(med)} s`,
    `${fmt(Math.min(...m.seconds))}–${fmt(Math.max(...m.seconds))}`,
    `${fmt(m.items / med)} ${m.unit}/s`,
    m.flops === undefined ? "—" : m.native === true ? `${fmt(gflops)} (native)` : `${fmt(gflops)} (${fmt((100 * gflops) / WASM_CEILING_GFLOPS, 2)} %)`,
    `${Math.round(m.peakMb)} MiB`,
    base ? `${fmt(baseMed)} s` : "—",
    base && m.flops ? fmt(baseGflops) : "—",
    base ? `${Math.round(base.peak_mb)} MiB` : "—",
    base ? `**${fmt(med / baseMed)}×**` : "—",
  ];
}

function markdownTable(head: readonly string[], rows: readonly (readonly string[])[]): string {
  return [head, head.map(() => "---"), ...rows].map((r) => `| ${r.join(" | ")} |`).join("\n");
}

function kernelSection(measurements: readonly Measurement[]): string {
  const parts = measurements.filter((m) => m.kernels !== undefined).map((m) => {
    const k = m.kernels!;
    const rows = k.top.map((t) => [t.name, `${t.ms.toFixed(0)} ms`, `${((100 * t.ms) / k.wallMs).toFixed(0)} %`, String(t.calls)]);
    return [
      `### ${m.name}`,
      "",
      `One repetition: ${k.wallMs.toFixed(0)} ms wall, ${k.kernelMs.toFixed(0)} ms (${((100 * k.kernelMs) / k.wallMs).toFixed(0)} %) inside kernels.`,
      "",
      markdownTable(["kernel", "time", "share of wall", "calls"], rows),
    ].join("\n");
  });
  return parts.length === 0 ? "" : ["## Where the time goes (tf.profile of one repetition, top kernels)", "", ...parts].join("\n\n");
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const backend = await initBackend();
  if (options.child !== undefined) {
    const workload = WORKLOADS.find((w) => w.name === options.child);
    if (workload === undefined) throw new Error(`no workload named "${options.child}"`);
    console.log(RESULT_TAG + JSON.stringify(await runWorkload(workload, options)));
    return;
  }
  console.log(describeBackend(backend));
  const resultsPath = join(projectRoot(), "bench", "results.md");
  const previous = existsSync(resultsPath) ? readFileSync(resultsPath, "utf8") : "";
  const fullSize = options.only.has("full-size") ? (await runFullSize(listNotebooks().map((f) => basename(f, ".ipynb")))).section : previousFullSizeSection(previous);
  if (options.only.size === 1 && fullSize !== undefined && options.only.has("full-size")) {
    // Only the full-size run: the rest of the report stays as it was.
    writeFileSync(resultsPath, withFullSizeSection(previous, fullSize));
    console.log(fullSize);
    return;
  }
  const torchMissing = pytorchReady();
  const notes: string[] = [];
  let imageOptions: Options = options;
  if (options.data !== undefined && WORKLOADS.some((w) => w.needsData === true && options.only.has(w.group))) {
    const { folder, note } = await celebaSizeFolder(options.data, options.images);
    imageOptions = { ...options, data: folder };
    notes.push(note);
  }
  const results: [Measurement, Baseline | undefined][] = [];
  let torch: Baseline | undefined;
  for (const workload of WORKLOADS.filter((w) => options.only.has(w.group))) {
    if (workload.needsData === true && options.data === undefined) {
      notes.push(`${workload.name}: skipped (give --data FOLDER, a folder of CelebA faces)`);
      continue;
    }
    console.log(`${workload.name} …`);
    const runOptions = workload.needsData === true ? imageOptions : options;
    const m = runChild(workload, runOptions);
    if (typeof m === "string") {
      notes.push(`${workload.name}: ${m}`);
      continue;
    }
    let base: Baseline | undefined;
    const baselineName = workload.baseline === undefined ? workload.name : workload.baseline;
    if (baselineName !== null && torchMissing === null) {
      const b = pytorchBaseline(baselineName, runOptions);
      if (typeof b === "string") notes.push(`PyTorch ${baselineName}: ${b}`);
      else [base, torch] = [b, b];
    }
    if (m.summary !== undefined) notes.push(`${m.name}: ${m.summary}`);
    console.log(`  ${fmt(median(m.seconds))} s${base ? `, PyTorch ${fmt(median(base.seconds))} s` : ""}${m.summary ? `; ${m.summary}` : ""}`);
    results.push(...withSaeEpoch(m, base));
  }
  if (options.only.has("demo")) {
    // From a fresh runs/demo/: a run that exists would resume its checkpoints and skip finished notebooks' work.
    rmSync(join(projectRoot(), "runs", "demo"), { recursive: true, force: true });
    const started = performance.now();
    const r = spawnSync("npx", ["tsx", "scripts/demo.ts"], { cwd: projectRoot(), stdio: "inherit" });
    if (r.status !== 0) throw new Error("npm run demo failed: see its output above");
    notes.push(`\`npm run demo\` (dataset already generated, fresh runs/demo/): ${((performance.now() - started) / 60000).toFixed(1)} min wall`);
  }
  const machine = `${cpuDescription()}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.versions.node}`;
  const head = ["workload", "TF.js median", "min–max", "throughput", "GFLOP/s (of WASM ceiling)", "peak RSS", "PyTorch median", "PyTorch GFLOP/s", "PyTorch peak RSS", "ratio to PyTorch"];
  const report = [
    "# Benchmarks",
    "",
    // The data folder by its name only: the report is committed, the machine's paths are not the project's.
    `Made by \`npm run bench -- ${process.argv.slice(2).map((a, i, all) => (all[i - 1] === "--data" ? `<${basename(a)}>` : a)).join(" ")}\` on ${new Date().toISOString().slice(0, 10)}.`,
    "",
    `- Machine: ${machine}.`,
    `- TF.js: ${describeBackend(backend).split("\n")[0].replace("TF.js backend: ", "")}.`,
    torch === undefined
      ? `- PyTorch: not run. ${torchMissing ?? ""}`
      : `- PyTorch: Debian's python3-torch ${torch.torch}, \`torch.set_num_threads(2)\` (${torch.threads} threads in use; BLAS: ${torch.blas}; ${torch.parallel || "ATen parallel backend not reported"}).`,
    `- GFLOP/s share is of the ~${WASM_CEILING_GFLOPS} GFLOP/s WASM SIMD ceiling of these cores; ratio = TF.js median / PyTorch median (lower is better).`,
    "- Every workload ran in a process of its own, TF.js and PyTorch alike: peak RSS is that process's maximum resident memory.",
    "- `resnet18 embed onnx` rows run the same model exported to ONNX on onnxruntime-node (notebook 03's engine when it is installed), against the same PyTorch rows.",
    "- `sae step` rows time notebook 04's training loop (lib/sae/train `trainSae`, the post's recipe, epochs of 4,096 vectors): a step with the loop's work around it and its share of the epoch's evaluation, against PyTorch's bare step; `sae step onnx` rows run the step on onnxruntime-node (lib/sae/onnx-step: forward, backward and Adam in one graph, the parameters and Adam's moments kept native between steps), the others on TF.js; the issue's target is an SAE epoch at ≤ 0.8× PyTorch's time.",
    "- GFLOP/s count a direct convolution's multiply-adds (torchvision's 1.82 G per 224×224 image). The `resnet18 embed` rows run 3×3 stride-1 convolutions by Winograd F(2×2, 3×3) (lib/kernels/winograd.ts), which does 2.25× fewer, so their GFLOP/s are effective rates and can pass the ceiling; its data transforms run outside TF.js kernels (the gap between wall and kernel time in their profiles). At 64 px the `resnet18 embed onnx` row runs layer4's 3×3 convolutions (2×2 outputs) as matrix products over the windows their pixels read (lib/model/onnx/export.ts `windowProductsPay`), skipping the padding taps: its GFLOP/s is an effective rate too.",
    "",
    markdownTable(head, results.map(([m, b]) => row(m, b))),
    "",
    ...notes.map((n) => `- ${n}`),
    "",
    kernelSection(results.map(([m]) => m).filter((m) => !m.name.startsWith("sae epoch"))),
    "",
    ...(fullSize === undefined ? [] : [fullSize, ""]),
  ].join("\n");
  writeFileSync(resultsPath, report);
  console.log(report);
}

await main();
