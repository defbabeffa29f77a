// `npm run bench [-- --only decode,sae,resnet,demo] [--reps N] [--data FOLDER] [--images N]`
//
// Runs each workload in TF.js (bench/workloads.ts) and the same work in PyTorch on this machine
// (bench/pytorch_baseline.py, Debian's python3-torch with 2 threads), and writes bench/results.md: medians, min–max,
// throughput, achieved GFLOP/s and share of the WASM ceiling, peak memory, and the ratio to PyTorch.
// Benchmarks are never tests: run them on an otherwise idle machine.

import { spawnSync } from "node:child_process";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import { rmSync, writeFileSync } from "node:fs";
import { initBackend, describeBackend } from "../lib/backend";
import { projectRoot } from "../lib/paths";
import { CELEBA_FACES, WORKLOADS, type Measurement, type BenchOptions } from "./workloads";

/** WASM SIMD (128-bit, no FMA) tops out near 80 GFLOP/s on these 2 cores (shared/notes/tfjs-on-cpu.md). */
const WASM_CEILING_GFLOPS = 80;

interface Baseline {
  readonly name: string;
  readonly seconds: readonly number[];
  readonly items: number;
  readonly peak_mb: number;
}

function parseArgs(argv: readonly string[]): BenchOptions & { only: Set<string> } {
  const get = (flag: string): string | undefined => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  return {
    only: new Set((get("--only") ?? "decode,sae,resnet").split(",")),
    reps: Number(get("--reps") ?? 5),
    data: get("--data"),
    images: Number(get("--images") ?? 1000),
  };
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** Runs the PyTorch baselines, installing nothing: says so when python3-torch is missing. */
function pytorchBaselines(options: ReturnType<typeof parseArgs>): Map<string, Baseline> | string {
  const probe = spawnSync("/usr/bin/python3", ["-c", "import torch, torchvision, PIL"], { encoding: "utf8" });
  if (probe.status !== 0) {
    return "PyTorch baselines skipped: Debian's python3-torch, python3-torchvision and python3-pil are not installed (apt-get install them).";
  }
  const args = [join(projectRoot(), "bench", "pytorch_baseline.py"), "--only", [...options.only].join(","), "--reps", String(options.reps), "--images", String(options.images)];
  if (options.data) args.push("--data", options.data);
  const r = spawnSync("/usr/bin/python3", args, { encoding: "utf8", maxBuffer: 1 << 24 });
  if (r.status !== 0) return `PyTorch baselines failed: ${r.stderr.trim().split("\n").pop()}`;
  const out = new Map<string, Baseline>();
  for (const line of r.stdout.trim().split("\n")) {
    const row = JSON.parse(line) as Baseline;
    if (row.seconds) out.set(row.name, row);
  }
  return out;
}

function fmt(x: number, digits = 3): string {
  return Number.isFinite(x) ? x.toPrecision(digits) : "—";
}

function table(measurements: readonly Measurement[], baselines: Map<string, Baseline> | string): string {
  const rows = measurements.map((m) => {
    const med = median(m.seconds);
    const base = typeof baselines === "string" ? undefined : baselines.get(m.name);
    const baseMed = base ? median(base.seconds) : Number.NaN;
    const gflops = m.flops ? m.flops / med / 1e9 : Number.NaN;
    return [
      m.name,
      `${fmt(med)} s`,
      `${fmt(Math.min(...m.seconds))}–${fmt(Math.max(...m.seconds))}`,
      `${fmt(m.items / med)} ${m.unit}/s`,
      m.flops ? `${fmt(gflops)} (${fmt((100 * gflops) / WASM_CEILING_GFLOPS, 2)} %)` : "—",
      Number.isFinite(m.peakMb) ? `${Math.round(m.peakMb)} MB` : "—",
      base ? `${fmt(baseMed)} s` : "—",
      base ? `${Math.round(base.peak_mb)} MB` : "—",
      base ? `${fmt(med / baseMed)}×` : "—",
    ];
  });
  const head = ["workload", "TF.js median", "min–max", "throughput", "GFLOP/s (of WASM ceiling)", "peak RSS", "PyTorch median", "PyTorch peak", "ratio to PyTorch"];
  return [head, head.map(() => "---"), ...rows].map((r) => `| ${r.join(" | ")} |`).join("\n");
}

/** An SAE epoch over CelebA's 202,599 vectors is ⌈202,599 / 512⌉ = 396 steps: derived from the step's times. */
const SAE_EPOCH_STEPS = Math.ceil(CELEBA_FACES / 512);

function withSaeEpochs(measurements: readonly Measurement[]): Measurement[] {
  return measurements.flatMap((m) => {
    const match = /^sae step (\d+)$/.exec(m.name);
    if (match === null) return [m];
    const epoch: Measurement = { ...m, name: `sae epoch ${match[1]} (396 steps × step time)`, seconds: m.seconds.map((x) => x * SAE_EPOCH_STEPS), items: CELEBA_FACES, flops: (m.flops ?? 0) * SAE_EPOCH_STEPS };
    return [m, epoch];
  });
}

function baselineEpochs(baselines: Map<string, Baseline>): Map<string, Baseline> {
  for (const [name, b] of [...baselines]) {
    const match = /^sae step (\d+)$/.exec(name);
    if (match !== null) baselines.set(`sae epoch ${match[1]} (396 steps × step time)`, { ...b, seconds: b.seconds.map((x) => x * SAE_EPOCH_STEPS) });
  }
  return baselines;
}

/** `npm run demo`'s wall time, from a fresh runs/demo/ (the synthetic dataset already generated). */
function timeDemo(): Measurement {
  rmSync(join(projectRoot(), "runs", "demo"), { recursive: true, force: true });
  const started = performance.now();
  const r = spawnSync("npx", ["tsx", "scripts/demo.ts"], { cwd: projectRoot(), stdio: "inherit" });
  if (r.status !== 0) throw new Error("npm run demo failed: see its output above");
  return { name: "npm run demo (dataset already generated)", seconds: [(performance.now() - started) / 1000], items: 1, unit: "run", peakMb: Number.NaN };
}

const options = parseArgs(process.argv.slice(2));
const backend = await initBackend();
console.log(describeBackend(backend));
const measurements: Measurement[] = [];
for (const workload of WORKLOADS.filter((w) => options.only.has(w.group))) {
  if (workload.needsData && !options.data) {
    console.log(`${workload.name}: skipped (give --data FOLDER, e.g. ../shared/data/celeba-dev)`);
    continue;
  }
  console.log(`${workload.name} …`);
  measurements.push(...(await workload.run(options)));
}
if (options.only.has("demo")) measurements.push(timeDemo());
const rawBaselines = pytorchBaselines(options);
const baselines = typeof rawBaselines === "string" ? rawBaselines : baselineEpochs(rawBaselines);
const machine = `${cpus().length} × ${cpus()[0]?.model ?? "CPU"}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.versions.node}`;
const report = [
  "# Benchmarks",
  "",
  `Made by \`npm run bench -- ${process.argv.slice(2).join(" ")}\` on ${new Date().toISOString().slice(0, 10)}.`,
  "",
  `- Machine: ${machine}.`,
  `- TF.js: ${describeBackend(backend).split("\n")[0].replace("TF.js backend: ", "")}.`,
  `- PyTorch: Debian's python3-torch, \`torch.set_num_threads(2)\`. ${typeof baselines === "string" ? baselines : ""}`,
  `- GFLOP/s share is of the ~${WASM_CEILING_GFLOPS} GFLOP/s WASM SIMD ceiling of these cores; ratio = TF.js median / PyTorch median (lower is better).`,
  "- Peak RSS is the whole process's: WASM memory is never returned to the system, so each row includes the rows above it.",
  "",
  table(withSaeEpochs(measurements), baselines),
  "",
].join("\n");
writeFileSync(join(projectRoot(), "bench", "results.md"), report);
console.log(report);
