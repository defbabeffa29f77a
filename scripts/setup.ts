// `npm run setup`: installs what running the notebooks needs (Jupyter's nbclient, the tslab kernel spec).
import { setup } from "../lib/setup";

try {
  const result = setup();
  console.log(`Jupyter Python: ${result.python}\nKernel spec: ${result.kernelSpecDir}\n${result.userKernel}`);
} catch (e) {
  console.error(e instanceof Error ? e.message : e);
  process.exit(2);
}
