// The notebook runner leaves nothing running when it is stopped: a runner, its execute_notebook.py and the tslab
// kernel, on a notebook whose second cell sleeps, are stopped in every way a run can end early, and no process of
// theirs remains a few seconds later. Also: a failing cell's summary names its error.

import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { projectRoot } from "../lib/util/project";
import { runDir } from "../lib/run/files";
import { procStat } from "../lib/run/notebook-runner";
import { executeNotebook, joinText, notebookJson, readNotebook } from "./notebook-helpers";

const run = `test-stop-${process.pid}`;
const scratch = mkdtempSync(join(tmpdir(), "runner-stop-"));
const notebooks = join(scratch, "notebooks");
mkdirSync(notebooks);
writeFileSync(join(notebooks, "01-sleeps.ipynb"), notebookJson([`console.log("started");`, `await new Promise((r) => setTimeout(r, 600_000));`]));

/** What scripts/run-notebooks.ts does, on the scratch series. */
const runnerScript = join(scratch, "runner.mts");
writeFileSync(
  runnerScript,
  `import { runNotebooks, seriesExitStatus } from ${JSON.stringify(pathToFileURL(join(projectRoot(), "lib", "run", "notebook-runner.ts")).href)};\n` +
    `const result = await runNotebooks({ run: ${JSON.stringify(run)}, only: [], set: [], cellTimeout: 0, execute: true, notebooksDir: ${JSON.stringify(notebooks)} });\n` +
    `process.exit(seriesExitStatus(result));\n`,
);

const started: ChildProcess[] = [];
afterEach(() => {
  for (const child of started.splice(0)) if (child.pid !== undefined && isRunning(child.pid)) child.kill("SIGKILL");
});
afterAll(() => {
  rmSync(scratch, { recursive: true, force: true });
  rmSync(runDir(run), { recursive: true, force: true });
});


/** Running: it exists and is not a zombie (an orphan's zombie waits for a reaper that may never come here). */
function isRunning(pid: number): boolean {
  const stat = procStat(pid);
  return stat !== undefined && stat.state !== "Z";
}

function commandOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ");
  } catch {
    return "";
  }
}

/** Every running process below `root`. */
function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const stat = procStat(Number(name));
    if (stat !== undefined && stat.state !== "Z") children.set(stat.ppid, [...(children.get(stat.ppid) ?? []), Number(name)]);
  }
  const out: number[] = [];
  for (let queue = [root]; queue.length > 0; ) {
    const next = children.get(queue.shift() as number) ?? [];
    out.push(...next);
    queue.push(...next);
  }
  return out;
}

/** The processes among `pids` still running after waiting up to `ms`, with their command lines. */
async function stillRunning(pids: readonly number[], ms: number): Promise<string[]> {
  const deadline = Date.now() + ms;
  for (;;) {
    const left = pids.filter(isRunning);
    if (left.length === 0 || Date.now() > deadline) return left.map((pid) => `${pid} ${commandOf(pid)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

interface Started {
  readonly child: ChildProcess;
  readonly output: () => string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function start(command: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env): Started {
  const child = spawn(command, args, { cwd: projectRoot(), env, stdio: ["ignore", "pipe", "pipe"] });
  started.push(child);
  let output = "";
  child.stdout?.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (output += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  return { child, output: () => output, exited };
}

/** Waits until the first cell has run (the kernel is up) and the second one sleeps; returns the kernel's pid. */
async function sleeping(root: number, output: () => string): Promise<number> {
  const deadline = Date.now() + 90_000;
  while (!/cell 1\/2 done[\s\S]*started/.test(output())) {
    if (Date.now() > deadline) throw new Error(`the notebook did not start:\n${output()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  const kernel = descendants(root).find((pid) => commandOf(pid).includes("tslab-kernel.cjs"));
  if (kernel === undefined) throw new Error(`no kernel below ${root}:\n${output()}`);
  return kernel;
}

const runnerArgs = ["--import", "tsx", runnerScript];

describe("stopping the notebook runner leaves nothing running", () => {
  it("SIGTERM to the runner: it stops execute_notebook.py and the kernel, keeps the executed copy, exits 143", async () => {
    const runner = start(process.execPath, runnerArgs);
    const kernel = await sleeping(runner.child.pid as number, runner.output);
    const below = descendants(runner.child.pid as number);
    expect(below.map(commandOf).some((c) => c.includes("execute_notebook.py"))).toBe(true);
    runner.child.kill("SIGTERM");
    expect(await runner.exited, runner.output()).toEqual({ code: 143, signal: null });
    expect(runner.output()).toContain("[01-sleeps] stopped by SIGTERM: shutting the kernel down");
    expect(await stillRunning([...below, kernel], 5000)).toEqual([]);
    const copy = join(runDir(run), "notebooks", "01-sleeps.ipynb");
    expect(existsSync(copy)).toBe(true);
    expect(joinText(readNotebook(copy).cells[0].outputs?.[0]?.text)).toContain("started");
  });

  it("SIGKILL to the runner: execute_notebook.py (told by Linux) and the kernel end", async () => {
    const runner = start(process.execPath, runnerArgs);
    const kernel = await sleeping(runner.child.pid as number, runner.output);
    const below = descendants(runner.child.pid as number);
    runner.child.kill("SIGKILL");
    await runner.exited;
    expect(await stillRunning([...below, kernel], 8000)).toEqual([]);
  });

  it("SIGKILL to npm (here a shell standing in for it, above a shell that runs the script): the runner stops everything and exits", async () => {
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.npm_lifecycle_event;
    const inner = `${JSON.stringify(process.execPath)} ${runnerArgs.map((a) => JSON.stringify(a)).join(" ")}; true`;
    const npm = start("sh", ["-c", `npm_lifecycle_event=notebooks sh -c '${inner}'; true`], env);
    const kernel = await sleeping(npm.child.pid as number, npm.output);
    const below = descendants(npm.child.pid as number);
    expect(below.map(commandOf).some((c) => c.includes("runner.mts"))).toBe(true);
    npm.child.kill("SIGKILL");
    await npm.exited;
    expect(await stillRunning([...below, kernel], 10_000)).toEqual([]);
  });

  it("SIGKILL to execute_notebook.py: the kernel ends (it watches its parent)", async () => {
    const runner = start(process.execPath, runnerArgs);
    const kernel = await sleeping(runner.child.pid as number, runner.output);
    const python = procStat(kernel)?.ppid as number;
    expect(commandOf(python)).toContain("execute_notebook.py");
    process.kill(python, "SIGKILL");
    expect(await stillRunning([kernel], 5000)).toEqual([]);
    // The runner sees its notebook fail and stops the series.
    expect((await runner.exited).code).toBe(1);
  });
});

describe("a failing cell", () => {
  it("is summed up with its error's name and message, not an empty <Error>", () => {
    const source = join(scratch, "fails.ipynb");
    writeFileSync(source, notebookJson([`console.log("before");`, `console.error("a warning first");\nawait Promise.reject(new RangeError("too far"));`, `console.log("never");`]));
    const result = executeNotebook(source, join(scratch, "fails.out.ipynb"));
    expect(result.status).toBe(1);
    expect(result.output).toContain("[fails] FAILED at cell 2/3: RangeError: too far");
    expect(result.output).toContain(`await Promise.reject(new RangeError("too far"));`);
    expect(result.output).not.toContain("<Error>");
  });
});
