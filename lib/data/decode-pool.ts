// Decoding the post's images on worker threads, one per core.
//
// With TurboJPEG and the WebAssembly resize (a fraction of a millisecond per CelebA face each), what is left on the
// main thread — async file reads, promise turns, copying each image into its batch and first-touching the batch's
// fresh memory — took more time than the decoding itself, and all of it on one core. Here each worker reads,
// decodes and resizes straight into the batch, a SharedArrayBuffer (TF.js and ONNX Runtime read it like any
// Float32Array), so the main thread only posts a message per image and both cores decode.
//
// The workers run lib/data/decode-worker.ts through tsx (a dependency), whatever compiled the caller (tslab, vitest,
// tsx). They are started on first use, kept for the process (unref'd while idle, so scripts exit) and shared by
// every loader. If a worker cannot start or dies, the pool turns itself off, says why once, and its unfinished
// images fail with `DecodeThreadError`, which lib/data/image-loader answers by decoding them on the main thread.
// `CELEBA_SAE_DECODE_THREADS` sets the number of threads; 0 decodes on the main thread.

import { availableParallelism } from "node:os";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { projectRoot } from "../util/project";

export const DECODE_THREADS_ENV = "CELEBA_SAE_DECODE_THREADS";
/** The `workerData` key marking a decode thread (lib/data/decode-worker starts only where it is set). */
export const DECODE_WORKER_MARK = "celebaSaeDecodeWorker";
const MAX_DECODE_THREADS = 16;

export type DecodeRequest =
  | { readonly id: number; readonly kind: "float"; readonly file: string; readonly size: number; readonly target: SharedArrayBuffer; readonly offset: number }
  | { readonly id: number; readonly kind: "uint8"; readonly file: string; readonly size: number };

export type DecodeReply =
  | { readonly id: number; readonly ok: true; readonly bytes?: Uint8Array }
  | { readonly id: number; readonly ok: false; readonly bad: boolean; readonly reason: string };

/** The pool could not decode the image (a worker failed, not the image): decode it another way. */
export class DecodeThreadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DecodeThreadError";
  }
}

/** The image could not be decoded (the worker's BadImageError, carried across the thread). */
export class DecodeImageError extends Error {
  constructor(
    readonly file: string,
    readonly reason: string,
  ) {
    super(reason);
    this.name = "DecodeImageError";
  }
}

/** `CELEBA_SAE_DECODE_THREADS`: a whole number from 0 to 16; default one per core (at most 8). */
export function parseDecodeThreads(value: string | undefined, cores: number = availableParallelism()): number {
  const v = (value ?? "").trim();
  if (v === "") return Math.min(cores, 8);
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0 || n > MAX_DECODE_THREADS) {
    throw new RangeError(`${DECODE_THREADS_ENV} must be a whole number from 0 (decode on the main thread) to ${MAX_DECODE_THREADS}, got "${v}"`);
  }
  return n;
}

export interface DecodePool {
  readonly threads: number;
  /** False once a worker failed: decode elsewhere. */
  readonly working: boolean;
  /** Decodes `file`, resizes it the post's way to size×size and writes it at `offset` into `target`'s floats. */
  decodeInto(file: string, size: number, target: SharedArrayBuffer, offset: number): Promise<void>;
  /** The same, rounded to uint8 (as the image cache stores it). */
  decodeUint8(file: string, size: number): Promise<Uint8Array>;
}

interface Pending {
  resolve(reply: DecodeReply): void;
  reject(error: Error): void;
}

interface Thread {
  readonly worker: Worker;
  readonly pending: Map<number, Pending>;
}

// The worker's first script: CommonJS, so that it runs under any loader; it registers tsx and loads the entry.
const BOOTSTRAP = `
const { createRequire } = require("node:module");
const { workerData } = require("node:worker_threads");
const load = createRequire(workerData.packageJson);
load("tsx/cjs/api").register();
load(workerData.entry);
`;

/** A pool of `count` decode threads running `entry` (lib/data/decode-worker.ts; another file only in tests). */
export function createDecodePool(count: number, entry: string = join(projectRoot(), "lib", "data", "decode-worker.ts")): DecodePool {
  const root = projectRoot();
  const threads: Thread[] = [];
  let nextId = 0;
  let broken: string | null = null;

  const fail = (thread: Thread, why: string): void => {
    if (broken === null) {
      broken = why;
      console.warn(`WARNING: decoding on worker threads stopped (${why}); images are decoded on the main thread instead.`);
    }
    for (const t of threads) {
      for (const p of t.pending.values()) p.reject(new DecodeThreadError(`decode thread failed: ${why}`));
      t.pending.clear();
      if (t !== thread) void t.worker.terminate();
    }
  };

  for (let i = 0; i < count; i++) {
    const worker = new Worker(BOOTSTRAP, { eval: true, workerData: { packageJson: join(root, "package.json"), entry, [DECODE_WORKER_MARK]: true } });
    const thread: Thread = { worker, pending: new Map() };
    worker.unref();
    worker.on("message", (message: DecodeReply) => {
      const p = thread.pending.get(message.id);
      if (p === undefined) return;
      thread.pending.delete(message.id);
      if (thread.pending.size === 0) worker.unref();
      p.resolve(message);
    });
    worker.on("error", (error) => fail(thread, error.message.split("\n")[0]));
    worker.on("exit", (code) => {
      if (broken === null && thread.pending.size > 0) fail(thread, `a decode thread exited with code ${code}`);
    });
    threads.push(thread);
  }

  const submit = (request: DecodeRequest): Promise<DecodeReply> => {
    if (broken !== null) return Promise.reject(new DecodeThreadError(`decode threads are off: ${broken}`));
    let thread = threads[0];
    for (const t of threads) if (t.pending.size < thread.pending.size) thread = t;
    return new Promise<DecodeReply>((resolve, reject) => {
      thread.pending.set(request.id, { resolve, reject });
      thread.worker.ref(); // an image in flight keeps the process alive
      thread.worker.postMessage(request);
    });
  };

  const settled = (file: string, reply: DecodeReply): DecodeReply & { ok: true } => {
    if (reply.ok === false) throw reply.bad ? new DecodeImageError(file, reply.reason) : new DecodeThreadError(`decode thread error: ${reply.reason}`);
    return reply;
  };

  return {
    threads: count,
    get working(): boolean {
      return broken === null;
    },
    async decodeInto(file: string, size: number, target: SharedArrayBuffer, offset: number): Promise<void> {
      settled(file, await submit({ id: nextId++, kind: "float", file, size, target, offset }));
    },
    async decodeUint8(file: string, size: number): Promise<Uint8Array> {
      const { bytes } = settled(file, await submit({ id: nextId++, kind: "uint8", file, size }));
      if (bytes === undefined) throw new DecodeThreadError("decode thread sent no bytes");
      return bytes;
    },
  };
}

let pool: DecodePool | null | undefined;

/** The process's decode pool, started on first use; null when `CELEBA_SAE_DECODE_THREADS=0`. */
export function decodePool(): DecodePool | null {
  if (pool === undefined) {
    const count = parseDecodeThreads(process.env[DECODE_THREADS_ENV]);
    pool = count === 0 ? null : createDecodePool(count);
  }
  return pool;
}
