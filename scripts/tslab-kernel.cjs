// Starts the project's own tslab with the project root as working directory, so that notebook cells in
// notebooks/ can `import … from "./lib/…"` (tslab's TypeScript rootDir is the kernel's working directory).
// Jupyter runs this through the kernel spec written by scripts/setup.ts; argv[2] is the connection file.
//
// A kernel must not outlive the process that started it (nbclient's Python, or Jupyter's server): when that process
// is gone, even killed with SIGKILL, this one is re-parented, and it ends itself (SIGTERM, then SIGKILL). A worker
// thread checks every half second, so a cell that keeps the main thread busy cannot delay it.
const path = require("node:path");
const { Worker } = require("node:worker_threads");
const parentWatch = `
  const { workerData } = require("node:worker_threads");
  const timer = setInterval(() => {
    if (process.ppid === workerData.parent) return;
    clearInterval(timer);
    process.kill(process.pid, "SIGTERM");
    setTimeout(() => process.kill(process.pid, "SIGKILL"), 2000);
  }, 500);
`;
new Worker(parentWatch, { eval: true, workerData: { parent: process.ppid } }).unref();
const root = path.resolve(__dirname, "..");
process.chdir(root);
// tslab's own zeromq (the same module instance): its sockets retry a send or receive made while binding.
require("./zeromq-busy-retry.cjs").retryWhenBusy(require(path.join(root, "node_modules", "zeromq")).Socket.prototype);
const { startKernel } = require(path.join(root, "node_modules", "tslab", "dist", "main.js"));
startKernel({ configPath: process.argv[2], enableFindLocal: false });
