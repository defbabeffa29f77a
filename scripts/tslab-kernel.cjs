// Starts the project's own tslab with the project root as working directory, so that notebook cells in
// notebooks/ can `import … from "./lib/…"` (tslab's TypeScript rootDir is the kernel's working directory).
// Jupyter runs this through the kernel spec written by scripts/setup.ts; argv[2] is the connection file.
const path = require("node:path");
const root = path.resolve(__dirname, "..");
process.chdir(root);
// tslab's own zeromq (the same module instance): its sockets retry a send or receive made while binding.
require("./zeromq-busy-retry.cjs").retryWhenBusy(require(path.join(root, "node_modules", "zeromq")).Socket.prototype);
const { startKernel } = require(path.join(root, "node_modules", "tslab", "dist", "main.js"));
startKernel({ configPath: process.argv[2], enableFindLocal: false });
