// Which TensorFlow.js backend runs, and why.
//
// Fastest first: tfjs-node-gpu (TensorFlow's C library with CUDA), tfjs-node (TensorFlow's C library on the CPU),
// wasm (XNNPACK kernels compiled to WebAssembly; its .wasm files ship inside the npm package and are read from
// node_modules, never downloaded), cpu (plain JavaScript, orders of magnitude slower than PyTorch: a last resort).
// The two native packages are optional dependencies: their install downloads libtensorflow, which fails offline,
// and npm then leaves them out. `CELEBA_SAE_BACKEND` (or the run config's `backend`) forces one backend; a forced
// backend that does not load is an error, never a silent fallback.

import os from "node:os";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import * as wasm from "@tensorflow/tfjs-backend-wasm";
import { requireFromProject } from "../util/project";
import { BACKEND_ENV, BACKEND_ORDER, parseBackendChoice, type BackendChoice, type BackendName } from "./backend-names";
import { prepareWasmThreads, releaseWasmWorkers, WASM_THREADS_ENV, wasmThreadsWanted } from "./wasm-threads";


/** What loading one backend gave: it works (with details and warnings to show), or why not. */
export type BackendLoad =
  | { readonly ok: true; readonly details: string; readonly warnings: readonly string[]; readonly gpu?: boolean }
  | { readonly ok: false; readonly reason: string };

/** A way to load one backend; the real ones are in `realProbes`, tests pass fakes. */
export interface BackendProbe {
  readonly name: BackendName;
  load(): Promise<BackendLoad>;
}

/** The backend in use, what it is, and why the faster ones are not used. */
export interface BackendReport {
  readonly name: BackendName;
  readonly details: string;
  /** TF.js computes on a GPU (tfjs-node-gpu seeing a CUDA device). */
  readonly gpu: boolean;
  readonly warnings: readonly string[];
  readonly skipped: readonly { readonly name: BackendName; readonly reason: string }[];
}


/**
 * Picks the backend: a forced choice must load (else an error with the reason), "auto" takes the first one that
 * loads in BACKEND_ORDER and records why each faster one was skipped.
 */
export async function chooseBackend(choice: BackendChoice, probes: readonly BackendProbe[]): Promise<BackendReport> {
  const byName = new Map(probes.map((p) => [p.name, p]));
  const order: readonly BackendName[] = choice === "auto" ? BACKEND_ORDER : [choice];
  const skipped: { name: BackendName; reason: string }[] = [];
  for (const name of order) {
    const probe = byName.get(name);
    const result: BackendLoad = probe ? await probe.load() : { ok: false, reason: "no loader for it" };
    // `=== true`/`=== false`: tslab compiles without strictNullChecks, where truthiness does not narrow the union.
    if (result.ok === true) return { name, details: result.details, warnings: result.warnings, gpu: result.gpu === true, skipped };
    if (result.ok === false) {
      if (choice !== "auto") {
        throw new Error(
          `The ${name} backend was asked for (${BACKEND_ENV} or the config's "backend") but did not load: ${result.reason}. ` +
            `Unset it to let celeba-sae pick the fastest backend that loads.`,
        );
      }
      skipped.push({ name, reason: result.reason });
    }
  }
  throw new Error(`No TensorFlow.js backend loaded: ${skipped.map((s) => `${s.name}: ${s.reason}`).join("; ")}`);
}

/** Lines for people: "TF.js backend: wasm (XNNPACK, SIMD on, 2 threads (threaded build))", then why faster ones were not used. */
export function describeBackend(report: BackendReport): string {
  const lines = [`TF.js backend: ${report.name} (${report.details})`];
  for (const w of report.warnings) lines.push(`WARNING: ${w}`);
  for (const s of report.skipped) lines.push(`  not used: ${s.name}: ${s.reason}`);
  return lines.join("\n");
}

function errorText(e: unknown): string {
  const text = e instanceof Error ? e.message : String(e);
  return text.split("\n")[0].slice(0, 200);
}

/** What a loaded tfjs-node flavour means: the GPU package that found no GPU says so loudly. */
export function nativeBackendLoad(name: "tensorflow-gpu" | "tensorflow", pkg: string, usingGpu: boolean): BackendLoad {
  if (name === "tensorflow") return { ok: true, details: `${pkg}, TensorFlow C library on the CPU`, warnings: [] };
  if (usingGpu) return { ok: true, details: `${pkg}, TensorFlow C library with CUDA, GPU in use`, warnings: [], gpu: true };
  return {
    ok: true,
    details: `${pkg} loaded, but TensorFlow runs on the CPU`,
    warnings: [
      `${pkg} found NO GPU and fell back to the CPU: check the CUDA/cuDNN libraries and nvidia-smi. ` +
        `Training will be far slower than on a GPU.`,
    ],
  };
}

/** Loads a tfjs-node flavour: requiring the package registers its "tensorflow" backend. */
function nativeProbe(name: "tensorflow-gpu" | "tensorflow", pkg: string): BackendProbe {
  return {
    name,
    async load() {
      try {
        requireFromProject()(pkg);
      } catch (e) {
        return { ok: false, reason: `${pkg} is not installed or does not load (${errorText(e)})` };
      }
      if (!(await tf.setBackend("tensorflow"))) return { ok: false, reason: `${pkg} loaded but its backend did not initialise` };
      const usingGpu = (tf.backend() as { isUsingGpuDevice?: boolean }).isUsingGpuDevice === true;
      return nativeBackendLoad(name, pkg, usingGpu);
    },
  };
}

/**
 * Starts the wasm backend, threaded when more than one thread is wanted. When the threaded build cannot be set up
 * (its files missing or unwritable), it starts single-threaded and says why in `fallback`; `ok` is false when the
 * backend did not initialise at all.
 */
async function startWasm(packageDir: string, threads: number): Promise<{ ok: boolean; fallback: string }> {
  if (threads === 1) return { ok: await tf.setBackend("wasm"), fallback: "" };
  let undo: () => void;
  try {
    const version = (requireFromProject()(join(packageDir, "package.json")) as { version: string }).version;
    undo = prepareWasmThreads({
      packageDir, version, threads, requireFile: requireFromProject(),
      setMultithreadFlag: (on) => tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", on),
      setThreadsCount: (n) => wasm.setThreadsCount(n),
    });
  } catch (e) {
    tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", false);
    return { ok: await tf.setBackend("wasm"), fallback: `the threaded build could not be set up (${errorText(e)}), so it runs single-threaded` };
  }
  try {
    if (!(await tf.setBackend("wasm"))) return { ok: false, fallback: "" };
  } finally {
    undo();
  }
  releaseWasmWorkers((tf.backend() as unknown as { wasm?: unknown }).wasm);
  return { ok: true, fallback: "" };
}

/** The WASM backend, with its .wasm files read from node_modules, on as many threads as cores (CELEBA_SAE_WASM_THREADS). */
const wasmProbe: BackendProbe = {
  name: "wasm",
  async load() {
    try {
      const packageDir = join(requireFromProject().resolve("@tensorflow/tfjs-backend-wasm/package.json"), "..");
      wasm.setWasmPaths(join(packageDir, "dist") + "/");
      const wanted = wasmThreadsWanted(process.env[WASM_THREADS_ENV], os.cpus().length);
      const started = await startWasm(packageDir, wanted);
      if (!started.ok) return { ok: false, reason: "the wasm backend did not initialise" };
      const simd = (await tf.env().getAsync("WASM_HAS_SIMD_SUPPORT")) === true;
      const threads = wasm.getThreadsCount();
      const warnings = simd ? [] : ["WebAssembly SIMD is not available: the wasm backend runs several times slower"];
      if (started.fallback !== "") warnings.push(started.fallback);
      else if (threads < wanted) warnings.push(`the wasm backend runs ${threads} thread${threads === 1 ? "" : "s"} of the ${wanted} asked for`);
      const build = threads > 1 ? "threaded build" : wanted === 1 ? `single-threaded: ${WASM_THREADS_ENV}=1` : "single-threaded";
      return { ok: true, details: `XNNPACK, SIMD ${simd ? "on" : "off"}, ${threads} thread${threads === 1 ? "" : "s"} (${build})`, warnings };
    } catch (e) {
      return { ok: false, reason: errorText(e) };
    }
  },
};

const cpuProbe: BackendProbe = {
  name: "cpu",
  async load() {
    const ok = await tf.setBackend("cpu");
    return ok
      ? { ok: true, details: "plain JavaScript kernels, 100–300× slower than PyTorch", warnings: ["The cpu backend is a last resort: expect very slow training."] }
      : { ok: false, reason: "the cpu backend did not initialise" };
  },
};

export const realProbes: readonly BackendProbe[] = [
  nativeProbe("tensorflow-gpu", "@tensorflow/tfjs-node-gpu"),
  nativeProbe("tensorflow", "@tensorflow/tfjs-node"),
  wasmProbe,
  cpuProbe,
];

let selected: Promise<BackendReport> | undefined;
let selectedReport: BackendReport | undefined;

/** The backend `initBackend` selected in this process, once it has (undefined before). */
export function selectedBackend(): BackendReport | undefined {
  return selectedReport;
}

/**
 * Selects the backend once per process (env var first, then `choice`, then auto) and returns the report.
 * Call it before any tensor work; later calls return the same report.
 */
export function initBackend(choice: BackendChoice = "auto"): Promise<BackendReport> {
  if (selected === undefined) {
    const fromEnv = parseBackendChoice(process.env[BACKEND_ENV]);
    selected = chooseBackend(fromEnv !== "auto" ? fromEnv : choice, realProbes).then(async (report) => {
      await tf.ready();
      selectedReport = report;
      return report;
    });
    selected.catch(() => {
      selected = undefined;
    });
  }
  return selected;
}

/**
 * The values of the tensor `fn` makes, with every intermediate tensor freed. Use it instead of returning
 * `dataSync()` from `tf.tidy`: tidy searches what it returns for tensors, element by element, which for a typed
 * array of millions of floats takes seconds.
 */
export function tidyValues<T extends Float32Array | Int32Array | Uint8Array = Float32Array>(fn: () => tf.Tensor): T {
  const out = tf.tidy(fn);
  try {
    return out.dataSync() as T;
  } finally {
    out.dispose();
  }
}

export { tf };
