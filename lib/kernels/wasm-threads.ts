// WebAssembly threads for TF.js's wasm backend under Node.
//
// tfjs-backend-wasm 4.x ships a threaded SIMD build (wasm-out/tfjs-backend-wasm-threaded-simd.*) but never uses it
// in Node: its WASM_HAS_MULTITHREAD_SUPPORT flag is hard-wired false there (tfjs issue #3830), its pthread worker is
// handed over as a Blob URL that Node's worker_threads cannot start, the worker loads the main script from a Blob
// that Node cannot read synchronously, and XNNPACK's thread pool is sized from half the logical cores. Here:
//   - the worker script (the package's own text) is written to a real file whose loader points at the package's
//     threaded main script, and the backend's Blob URL for it is answered with that file's path;
//   - the flag is set true and the thread count asked for; while the backend initialises, os.cpus() reports twice
//     the wanted threads so the halving lands on the wanted number;
//   - afterwards the pool's pthread workers are unref'd so that scripts still exit when their work is done, and the
//     workers started ahead that the pool did not take are ended (memory).
// It computes nothing itself: XNNPACK's convolutions and matrix products then run on that many threads (the
// speed-up is in bench/results.md). Tested in test/wasm-threads.test.ts (the worker script's patch, a threaded
// backend whose results equal the single-threaded one's).

import { existsSync, mkdirSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { writeFileAtomicSync } from "../util/atomic-write";

/** Sets the number of threads of the wasm backend (1 = the single-threaded build). */
export const WASM_THREADS_ENV = "CELEBA_SAE_WASM_THREADS";

/** Emscripten starts this many pthread workers up front; asking for more would block on a worker that never loads. */
export const MAX_WASM_THREADS = 8;

/** The threads to use: CELEBA_SAE_WASM_THREADS if set (1…8), else one per logical core (at most 8). */
export function wasmThreadsWanted(value: string | undefined, cores: number): number {
  if (value === undefined || value.trim() === "") return Math.max(1, Math.min(cores, MAX_WASM_THREADS));
  const n = Number(value.trim());
  if (!Number.isInteger(n) || n < 1 || n > MAX_WASM_THREADS) {
    throw new Error(`${WASM_THREADS_ENV}="${value}" is not a thread count: use a whole number from 1 to ${MAX_WASM_THREADS}`);
  }
  return n;
}

/** The text in the package's worker script where it loads the main script; the loader is pointed at a file there. */
const WORKER_LOAD_ANCHOR = 'if(typeof e.data.urlOrBlob=="string")';

/**
 * The pthread worker script for Node: the package's own worker text, loading `mainScript` (a file path) instead of
 * the Blob it is sent, with newlines escaped as the backend itself does (the text sits in a template literal).
 */
export function nodeWorkerScript(workerContents: string, mainScript: string): string {
  if (!workerContents.includes(WORKER_LOAD_ANCHOR)) {
    throw new Error("this tfjs-backend-wasm's worker script has an unknown layout (it may be a newer version)");
  }
  const patched = workerContents.replace(WORKER_LOAD_ANCHOR, `e.data.urlOrBlob=${JSON.stringify(mainScript)};${WORKER_LOAD_ANCHOR}`);
  return patched.replace(/\n/g, "\\n");
}

/** What `prepareWasmThreads` needs: the package folder, its version, and how to load its CommonJS files. */
export interface WasmThreadsSetup {
  readonly packageDir: string;
  readonly version: string;
  readonly threads: number;
  readonly requireFile: (path: string) => unknown;
  readonly setMultithreadFlag: (on: boolean) => void;
  readonly setThreadsCount: (threads: number) => void;
}

/**
 * Makes the next initialisation of the wasm backend use the threaded build with `threads` threads. Returns the undo
 * of the temporary patches (URL.createObjectURL, os.cpus), to call once the backend has initialised or failed.
 */
export function prepareWasmThreads(setup: WasmThreadsSetup): () => void {
  const workerModule = setup.requireFile(join(setup.packageDir, "wasm-out", "tfjs-backend-wasm-threaded-simd.worker.js"));
  const contents = (workerModule as { wasmWorkerContents?: unknown }).wasmWorkerContents;
  if (typeof contents !== "string") throw new Error("tfjs-backend-wasm has no threaded worker script (wasm-out/…worker.js)");
  const mainScript = join(setup.packageDir, "wasm-out", "tfjs-backend-wasm-threaded-simd.js");
  // A pthread worker that cannot load its script takes the whole process down: check everything it needs first.
  if (!existsSync(mainScript)) throw new Error(`tfjs-backend-wasm has no threaded main script (${mainScript})`);
  const dir = join(os.tmpdir(), `celeba-sae-tfjs-wasm-${setup.version}`);
  mkdirSync(dir, { recursive: true });
  const workerFile = join(dir, "tfjs-backend-wasm-threaded-simd.worker.js");
  writeFileAtomicSync(workerFile, nodeWorkerScript(contents, mainScript));

  const createObjectURL = URL.createObjectURL;
  const cpus = os.cpus;
  URL.createObjectURL = (obj: Blob) => (obj instanceof Blob && obj.type === "application/javascript" ? workerFile : createObjectURL(obj));
  os.cpus = () => {
    const list = cpus();
    return Array.from({ length: 2 * setup.threads }, (_, i) => list[i % list.length]);
  };
  setup.setMultithreadFlag(true);
  setup.setThreadsCount(setup.threads);
  return () => {
    URL.createObjectURL = createObjectURL;
    os.cpus = cpus;
  };
}

/** The emscripten pthread bookkeeping the threaded module exposes. */
interface PThreadRegistry {
  readonly runningWorkers: readonly { unref(): void }[];
  unusedWorkers: { unref(): void; terminate(): unknown }[];
}

/**
 * After the backend has started: lets the process exit while the thread pool's workers idle (unref), and ends the
 * workers emscripten started ahead that the pool did not take (each is a JavaScript engine of its own, ~18 MB; the
 * pool creates its threads once, at start). Returns how many workers run.
 */
export function releaseWasmWorkers(module: unknown): number {
  const registry = (module as { PThread?: PThreadRegistry } | undefined)?.PThread;
  if (registry === undefined) return 0;
  for (const w of registry.runningWorkers) w.unref();
  for (const w of registry.unusedWorkers) void w.terminate();
  registry.unusedWorkers = [];
  return registry.runningWorkers.length;
}
