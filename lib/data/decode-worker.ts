// A decode thread of lib/data/decode-pool: reads, decodes and resizes (the post's resize) the images it is sent, one at a
// time, blocking on the file read and the TurboJPEG decode, which is cheaper than their async forms on a thread
// with nothing else to do. Float results go straight into the batch (a SharedArrayBuffer), uint8 results (for the
// image cache) are sent back.

import { parentPort, workerData } from "node:worker_threads";
import { BadImageError } from "./image-decode";
import { decodeInto, decodeUint8 } from "./image-resize";
import { DECODE_WORKER_MARK, type DecodeReply, type DecodeRequest } from "./decode-pool";

/** Does one job: the reply says how it went (an image that cannot be decoded is `bad`). */
export async function decodeJob(job: DecodeRequest): Promise<DecodeReply> {
  try {
    const options = { size: job.size, mode: "post" } as const;
    if (job.kind === "float") {
      await decodeInto(job.file, options, new Float32Array(job.target), job.offset, true);
      return { id: job.id, ok: true };
    }
    return { id: job.id, ok: true, bytes: await decodeUint8(job.file, options, true) };
  } catch (error) {
    if (error instanceof BadImageError) return { id: job.id, ok: false, bad: true, reason: error.reason };
    return { id: job.id, ok: false, bad: false, reason: error instanceof Error ? (error.stack ?? error.message) : String(error) };
  }
}

// Only in a thread lib/data/decode-pool started: imported anywhere else (the main thread, a test runner's worker) this
// module does nothing.
const port = parentPort;
if (port !== null && (workerData as Record<string, unknown> | null)?.[DECODE_WORKER_MARK] === true) {
  let queue = Promise.resolve();
  port.on("message", (job: DecodeRequest) => {
    queue = queue.then(async () => {
      const reply = await decodeJob(job);
      port.postMessage(reply, reply.ok === true && reply.bytes !== undefined ? [reply.bytes.buffer] : []);
    });
  });
}
