// Executes the notebook series headless through Jupyter (nbclient) with the project's tslab kernel.
//
// Each notebook runs in its own kernel, in order; the executed copy (with outputs) goes to
// runs/<run>/notebooks/. The run's config is written first and every notebook reads it (CELEBA_SAE_RUN), so
// parameters never come from editing cells. The first failing cell stops the series with the cell and its error.
//
// Nothing is left running when the runner is stopped: on SIGINT, SIGTERM or SIGHUP — or when the processes that
// started it are gone (`npm run notebooks` killed, even with SIGKILL, which npm cannot pass on) — the running
// notebook's process gets the signal, shuts its kernel down (scripts/execute_notebook.py), is waited for, and the
// series ends with status 128 + the signal's number. That process also ends, kernel and all, if the runner dies.

import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { constants as osConstants } from "node:os";
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
  /** The folder of the series (default: the project's notebooks/); not on the command line, for tests. */
  readonly notebooksDir?: string;
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

/** Starts one notebook's run through nbclient (scripts/execute_notebook.py), its lines streamed to our stdout/stderr. */
function startNotebook(python: string, source: string, target: string, run: string, cellTimeout: number): ChildProcess {
  const root = projectRoot();
  return spawn(python, [join(root, "scripts", "execute_notebook.py"), source, target, KERNEL_NAME, String(cellTimeout)], {
    cwd: join(root, "notebooks"),
    env: { ...jupyterEnv(), [RUN_ENV]: run, PYTHONUNBUFFERED: "1" },
    stdio: ["ignore", "inherit", "inherit"],
  });
}

/** The status a child process ended with: its exit code, or 128 + the number of the signal that ended it. */
function exitStatus(child: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) => resolve(code ?? 128 + (signal === null ? 0 : osConstants.signals[signal])));
  });
}

/** The signals that stop the series (Ctrl-C, kill, a closed terminal); the running notebook's process gets the same. */
export const STOP_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;
/** How long a notebook's process may take to shut its kernel down after the signal before it is killed. */
const STOP_GRACE_MS = 10_000;

/** A process's state and parent, from /proc (Linux); undefined when it is gone or there is no /proc. */
export function procStat(pid: number): { readonly state: string; readonly ppid: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { state: fields[0], ppid: Number(fields[1]) };
  } catch {
    return undefined;
  }
}

/** The npm script a process runs for (npm_lifecycle_event in its environment), from /proc; undefined when none. */
function npmScriptOf(pid: number): string | undefined {
  try {
    const entry = readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").find((e) => e.startsWith("npm_lifecycle_event="));
    return entry?.slice("npm_lifecycle_event=".length);
  } catch {
    return undefined;
  }
}

/**
 * The processes that started this one as one command, which must not end while it runs on: its parent, and under
 * `npm run` every ancestor up to npm itself (the shell npm runs the script with and tsx's launcher carry npm's
 * npm_lifecycle_event; npm is the first that does not). Linux only (/proc); elsewhere just the parent.
 */
export function starterProcesses(env: NodeJS.ProcessEnv = process.env): number[] {
  const parent = procStat(process.pid)?.ppid;
  if (parent === undefined) return [process.ppid];
  const script = env.npm_lifecycle_event;
  const chain = [parent];
  for (let p = parent; script !== undefined && p > 1 && npmScriptOf(p) === script; ) {
    const next = procStat(p)?.ppid;
    if (next === undefined || next <= 1) break;
    chain.push(next);
    p = next;
  }
  return chain;
}

/** Calls `onGone` once when one of the processes that started this one has ended; returns a function that stops watching. */
function watchStarters(onGone: (pid: number) => void, intervalMs = 1000): () => void {
  const parent = process.ppid;
  const starters = starterProcesses();
  const linux = procStat(process.pid) !== undefined;
  const goneStarter = (): number | undefined => {
    if (process.ppid !== parent) return parent;
    if (!linux) return undefined;
    return starters.find((pid) => {
      const stat = procStat(pid);
      return stat === undefined || stat.state === "Z";
    });
  };
  const timer = setInterval(() => {
    const gone = goneStarter();
    if (gone === undefined) return;
    clearInterval(timer);
    onGone(gone);
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}

/** The series' stop switch: set by a stop signal or by the runner's starters ending; passes the signal to the running notebook. */
class SeriesStop {
  signal: NodeJS.Signals | undefined;
  private child: ChildProcess | undefined;
  private readonly onSignal = (signal: NodeJS.Signals): void => this.stop(signal);
  private readonly unwatch: () => void;

  constructor() {
    for (const s of STOP_SIGNALS) process.on(s, this.onSignal);
    this.unwatch = watchStarters((pid) => {
      console.error(`\nThe process that started the runner (pid ${pid}) is gone: stopping.`);
      this.stop("SIGTERM");
    });
  }

  /** The notebook process now running (a stop passes it its signal). */
  running(child: ChildProcess | undefined): void {
    this.child = child;
    if (child !== undefined && this.signal !== undefined) child.kill(this.signal);
  }

  /** The first stop passes its signal on (and kills the process if it has not ended after STOP_GRACE_MS); a second one kills it. */
  stop(signal: NodeJS.Signals): void {
    const child = this.child;
    if (this.signal !== undefined) {
      child?.kill("SIGKILL");
      return;
    }
    this.signal = signal;
    if (child === undefined) return;
    child.kill(signal);
    setTimeout(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    }, STOP_GRACE_MS).unref();
  }

  dispose(): void {
    for (const s of STOP_SIGNALS) process.removeListener(s, this.onSignal);
    this.unwatch();
  }
}

export interface SeriesResult {
  readonly ok: boolean;
  readonly executed: readonly string[];
  readonly failed?: string;
  /** The signal that stopped the series (Ctrl-C, kill, or SIGTERM when the runner's starters ended). */
  readonly stoppedBy?: NodeJS.Signals;
  readonly outputDir: string;
}

/** The runner's exit status: 0, 1 when a notebook failed, 128 + the signal's number when stopped by one. */
export function seriesExitStatus(result: SeriesResult): number {
  if (result.stoppedBy !== undefined) return 128 + osConstants.signals[result.stoppedBy];
  return result.ok ? 0 : 1;
}

/** Executes the selected notebooks in order into runs/<run>/notebooks/, stopping at the first failure or a stop signal. */
export async function runNotebooks(options: RunnerOptions): Promise<SeriesResult> {
  const config = prepareRunConfig(options.run, options.set);
  const outputDir = runFiles(config.run).notebooks;
  const selected = selectNotebooks(listNotebooks(options.notebooksDir), options.only);
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
  const stop = new SeriesStop();
  try {
    for (const source of selected) {
      if (stop.signal !== undefined) return { ok: false, executed, stoppedBy: stop.signal, outputDir };
      const target = join(outputDir, basename(source));
      console.log(`\n== ${basename(source)} → ${target}`);
      const child = startNotebook(python, source, target, config.run, options.cellTimeout);
      stop.running(child);
      const status = await exitStatus(child);
      stop.running(undefined);
      if (stop.signal !== undefined) return { ok: false, executed, failed: target, stoppedBy: stop.signal, outputDir };
      if (status !== 0) return { ok: false, executed, failed: target, outputDir };
      executed.push(target);
    }
    return { ok: true, executed, outputDir };
  } finally {
    stop.dispose();
  }
}
