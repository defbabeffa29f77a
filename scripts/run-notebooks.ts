// `npm run notebooks -- --run NAME [--only 01-download] [--set key=value …]`: see lib/run/notebook-runner.ts.
import { parseRunnerArgs, runNotebooks, seriesExitStatus } from "../lib/run/notebook-runner";

try {
  const result = await runNotebooks(parseRunnerArgs(process.argv.slice(2)));
  if (result.stoppedBy !== undefined) {
    const kept = result.failed === undefined ? "" : ` ${result.failed} was stopped (its executed copy, outputs so far, is kept).`;
    console.error(`\nStopped by ${result.stoppedBy}: no notebook or kernel is left running.${kept}`);
    process.exit(seriesExitStatus(result));
  }
  if (!result.ok) {
    console.error(`\nStopped: ${result.failed} failed (its executed copy, outputs up to the failing cell, is kept).`);
    process.exit(1);
  }
  console.log(`\nExecuted notebooks: ${result.outputDir}`);
} catch (e) {
  console.error(e instanceof Error ? e.message : e);
  process.exit(2);
}
