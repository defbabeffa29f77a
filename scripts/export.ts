// `npm run export -- --run NAME [--date YYYY-MM-DD] [--title T] [--tags a,b] [--permalink /p] [--slug s] [--static]
// [--reveal-blind-keys]`:
// the executed notebooks of runs/NAME/ as a blog post and one HTML page in runs/NAME/post/ (see lib/publish/export-post.ts).
import { relative } from "node:path";
import { exportRun, type ExportOptions } from "../lib/publish/export-post";
import { projectRoot } from "../lib/util/project";

const USAGE = `usage: npm run export -- --run NAME [--date YYYY-MM-DD] [--title TITLE] [--tags a,b] [--permalink /path] [--slug SLUG] [--static] [--reveal-blind-keys]
  --run NAME     the run whose executed notebooks (runs/NAME/notebooks/) become the post (a bare NAME works too)
  --date …       override the run's export settings (config export.*) for this export
  --static       figures as static images only (no plotly.js)
  --reveal-blind-keys  show the blind test's ids (runs/NAME/blind-test-key.json) once it is unblinded; default: [blinded]`;

interface Args {
  run: string;
  options: ExportOptions;
}

function parseArgs(argv: readonly string[]): Args {
  let run: string | undefined;
  const options: { -readonly [K in keyof ExportOptions]: ExportOptions[K] } = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined || v.startsWith("--")) throw new Error(`${arg} needs a value\n${USAGE}`);
      return v;
    };
    if (arg === "--run") run = value();
    else if (arg === "--date") options.date = value();
    else if (arg === "--title") options.title = value();
    else if (arg === "--tags") options.tags = value();
    else if (arg === "--permalink") options.permalink = value();
    else if (arg === "--slug") options.slug = value();
    else if (arg === "--static") options.interactive = false;
    else if (arg === "--reveal-blind-keys") options.revealBlindKeys = true;
    else if (arg === "--help" || arg === "-h") throw new Error(USAGE);
    else if (!arg.startsWith("--") && run === undefined) run = arg;
    else throw new Error(`unknown argument "${arg}"\n${USAGE}`);
  }
  if (run === undefined) throw new Error(`which run? ${USAGE}`);
  return { run, options };
}

try {
  const { run, options } = parseArgs(process.argv.slice(2));
  const result = await exportRun(run, options);
  const rel = (p: string): string => relative(projectRoot(), p) || ".";
  console.log(`Exported ${result.notebooks.length} notebook(s) of run "${run}":`);
  console.log(`  post:   ${rel(result.markdown)}`);
  console.log(`  images: ${result.images.length} in ${rel(result.images[0] ?? result.markdown).replace(/\/[^/]*$/, "")}/`);
  console.log(`  html:   ${rel(result.html)} (self-contained)`);
} catch (e) {
  console.error(e instanceof Error ? e.message : e);
  process.exit(2);
}
