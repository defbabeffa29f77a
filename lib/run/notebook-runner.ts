// Executes the notebook series headless through Jupyter (nbclient) with the project's tslab kernel.
//
// Each notebook runs in its own kernel, in order; the executed copy (with outputs) goes to
// runs/<run>/notebooks/. The run's config is written first and every notebook reads it (CELEBA_SAE_RUN), so
// parameters never come from editing cells. The first failing cell stops the series with the cell and its error.

import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readdirSync } from "node:fs";
import { basename, join } from "node:path";
import { applyOverrides, defaultConfig, loadRunConfig, RUN_ENV, saveRunConfig, type RunConfig } from "./config";
import { findJupyterPython, jupyterEnv, KERNEL_NAME, writeKernelSpec } from "./jupyter";
import { projectRoot } from "../util/project";
import { runFiles } from "./files";

export interface RunnerOptions {
  readonly run: string;
  /** Notebook names or prefixes ("01", "03-embed"); empty: all. */
  readonly only: readonly string[];
  /** `key=value` config overrides. */
  readonly set: readonly string[];
  /** Seconds a single cell may take (0: no limit). */
  readonly cellTimeout: number;
  /** Write the config only. */
  readonly execute: boolean;
}

export const RUNNER_USAGE = `usage: npm run notebooks -- [--run NAME] [--only 01-download …] [--set key=value …] [--cell-timeout SECONDS] [--no-execute]
  --run NAME        the run folder runs/NAME/ (default: dev)
  --only NAME       run only this notebook (name or number prefix); repeatable
  --set key=value   change one config value, e.g. dataset=synthetic, imageSize=64, limit=2000, synthetic.count=500
  --cell-timeout S  stop a cell that runs longer than S seconds (default: no limit)
  --no-execute      only write runs/NAME/config.json`;

/** Parses the runner's command line, or throws with the usage. */
export function parseRunnerArgs(argv: readonly string[]): RunnerOptions {
  let run = "dev";
  const only: string[] = [];
  const set: string[] = [];
  let cellTimeout = 0;
  let execute = true;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined || v.startsWith("--")) throw new Error(`${arg} needs a value\n${RUNNER_USAGE}`);
      return v;
    };
    if (arg === "--run") run = value();
    else if (arg === "--only") only.push(value());
    else if (arg === "--set") set.push(value());
    else if (arg === "--cell-timeout") cellTimeout = Number(value());
    else if (arg === "--no-execute") execute = false;
    else if (arg.startsWith("--set=")) set.push(arg.slice(6));
    else throw new Error(`unknown argument "${arg}"\n${RUNNER_USAGE}`);
  }
  if (!Number.isFinite(cellTimeout) || cellTimeout < 0) throw new Error(`--cell-timeout takes seconds ≥ 0`);
  return { run, only, set, cellTimeout, execute };
}

/** The notebooks of the series, in order (notebooks/NN-name.ipynb). */
export function listNotebooks(dir: string = join(projectRoot(), "notebooks")): string[] {
  return readdirSync(dir)
    .filter((f) => /^\d\d-.*\.ipynb$/.test(f))
    .sort()
    .map((f) => join(dir, f));
}

/** The notebooks named by `only` (exact names or prefixes), in series order; unknown names are an error. */
export function selectNotebooks(all: readonly string[], only: readonly string[]): string[] {
  if (only.length === 0) return [...all];
  const names = all.map((p) => basename(p, ".ipynb"));
  for (const want of only) {
    if (!names.some((n) => n === want || n.startsWith(want))) {
      throw new Error(`--only ${want}: no such notebook. Notebooks: ${names.join(", ")}`);
    }
  }
  return all.filter((_, i) => only.some((want) => names[i] === want || names[i].startsWith(want)));
}

/** The run's config: the saved one (or defaults) with the overrides applied, saved again. */
export function prepareRunConfig(run: string, set: readonly string[]): RunConfig {
  const base = existsSync(runFiles(run).config) ? loadRunConfig(run) : defaultConfig(run);
  const config = applyOverrides(base, set);
  saveRunConfig(config);
  return config;
}

/** Runs one notebook through nbclient; resolves with the exit status, streaming its lines to our stdout/stderr. */
function executeNotebook(python: string, source: string, target: string, run: string, cellTimeout: number): Promise<number> {
  const root = projectRoot();
  const child = spawn(python, [join(root, "scripts", "execute_notebook.py"), source, target, KERNEL_NAME, String(cellTimeout)], {
    cwd: join(root, "notebooks"),
    env: { ...jupyterEnv(), [RUN_ENV]: run, PYTHONUNBUFFERED: "1" },
    stdio: ["ignore", "inherit", "inherit"],
  });
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

export interface SeriesResult {
  readonly ok: boolean;
  readonly executed: readonly string[];
  readonly failed?: string;
  readonly outputDir: string;
}

/** Executes the selected notebooks in order into runs/<run>/notebooks/, stopping at the first failure. */
export async function runNotebooks(options: RunnerOptions): Promise<SeriesResult> {
  const config = prepareRunConfig(options.run, options.set);
  const outputDir = runFiles(config.run).notebooks;
  const selected = selectNotebooks(listNotebooks(), options.only);
  if (!options.execute) return { ok: true, executed: [], outputDir };
  const python = findJupyterPython();
  if (python === undefined) {
    throw new Error(
      "No Python with Jupyter's nbclient was found. Run `npm run setup` (installs Debian's jupyter-nbconvert and " +
        "python3-nbclient, or pip's nbclient), or point CELEBA_SAE_PYTHON at a Python that has nbclient.",
    );
  }
  writeKernelSpec();
  mkdirSync(outputDir, { recursive: true });
  const executed: string[] = [];
  for (const source of selected) {
    const target = join(outputDir, basename(source));
    console.log(`\n== ${basename(source)} → ${target}`);
    const status = await executeNotebook(python, source, target, config.run, options.cellTimeout);
    if (status !== 0) return { ok: false, executed, failed: target, outputDir };
    executed.push(target);
  }
  return { ok: true, executed, outputDir };
}
