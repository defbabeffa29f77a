// `npm run setup [-- --tests]`: installs what running the notebooks needs (Jupyter's nbclient, the tslab kernel
// spec); with --tests (npm test's pretest step) also what the tests need (numpy, Chromium).
import { setup } from "../lib/run/setup";

try {
  const result = setup({ forTests: process.argv.includes("--tests") });
  console.log(`Jupyter Python: ${result.python}\nKernel spec: ${result.kernelSpecDir}\n${result.userKernel}`);
} catch (e) {
  console.error(e instanceof Error ? e.message : e);
  process.exit(2);
}
