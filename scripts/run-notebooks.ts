// `npm run notebooks -- --run NAME [--only 01-download] [--set key=value …]`: see lib/run/notebook-runner.ts.
import { parseRunnerArgs, runNotebooks } from "../lib/run/notebook-runner";

try {
  const result = await runNotebooks(parseRunnerArgs(process.argv.slice(2)));
  if (!result.ok) {
    console.error(`\nStopped: ${result.failed} failed (its executed copy, outputs up to the failing cell, is kept).`);
    process.exit(1);
  }
  console.log(`\nExecuted notebooks: ${result.outputDir}`);
} catch (e) {
  console.error(e instanceof Error ? e.message : e);
  process.exit(2);
}
