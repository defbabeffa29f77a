// Letting the event loop run during long synchronous work, so that a notebook's progress bar redraws and kernel
// messages are answered.

/** A function that lets the event loop run once `sliceMs` of synchronous work have passed since it last did. */
export function yielder(sliceMs = 20): () => Promise<void> {
  let last = performance.now();
  return async () => {
    if (performance.now() - last < sliceMs) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
    last = performance.now();
  };
}

/** Lets the event loop run (so a notebook's progress bar redraws) at most every 100 ms of computing. */
export const yieldSometimes: () => Promise<void> = yielder(100);
