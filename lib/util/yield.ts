// Letting the event loop run during long synchronous work, so that a notebook's progress bar redraws and kernel
// messages are answered.

let lastYield = 0;

/** Lets the event loop run (so a notebook's progress bar redraws) at most every 100 ms of computing. */
export async function yieldSometimes(): Promise<void> {
  const now = performance.now();
  if (now - lastYield < 100) return;
  lastYield = now;
  await new Promise<void>((resolve) => setImmediate(resolve));
}
