// Executing notebooks for real (Jupyter's nbclient with our tslab kernel) from tests.

import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { findJupyterPython, jupyterEnv, KERNEL_NAME, writeKernelSpec } from "../lib/run/jupyter";
import { projectRoot } from "../lib/util/project";

export interface NotebookOutput {
  readonly output_type: "stream" | "display_data" | "execute_result" | "error";
  readonly name?: string;
  readonly text?: string | string[];
  readonly data?: Record<string, string | string[] | object>;
  readonly ename?: string;
  readonly evalue?: string;
}

export interface NotebookCell {
  readonly cell_type: "code" | "markdown" | "raw";
  readonly source: string | string[];
  readonly outputs?: readonly NotebookOutput[];
}

export interface Notebook {
  readonly cells: readonly NotebookCell[];
  readonly metadata: Record<string, unknown>;
}

export const joinText = (t: string | string[] | undefined): string => (Array.isArray(t) ? t.join("") : (t ?? ""));

export function readNotebook(path: string): Notebook {
  return JSON.parse(readFileSync(path, "utf8")) as Notebook;
}

export function outputsOf(nb: Notebook): NotebookOutput[] {
  return nb.cells.flatMap((c) => c.outputs ?? []);
}

export function streamText(nb: Notebook): string {
  return outputsOf(nb).filter((o) => o.output_type === "stream").map((o) => joinText(o.text)).join("");
}

/** The Python with nbclient; tests that need Jupyter fail with the fix when it is missing. */
export function jupyterPython(): string {
  const python = findJupyterPython();
  if (python === undefined) throw new Error("Jupyter's nbclient is missing: run `npm run setup` (or .ci/run) first");
  return python;
}

/** Executes `source` with nbclient and our kernel into `target`; returns the exit status and what it printed. */
export function executeNotebook(source: string, target: string, env: NodeJS.ProcessEnv = {}): { status: number; output: string } {
  writeKernelSpec();
  const r = spawnSync(jupyterPython(), [join(projectRoot(), "scripts", "execute_notebook.py"), source, target, KERNEL_NAME, "600"], {
    cwd: join(projectRoot(), "notebooks"),
    env: { ...jupyterEnv(), ...env },
    encoding: "utf8",
  });
  return { status: r.status ?? 1, output: `${r.stdout}${r.stderr}` };
}

/** A notebook file with the given code cells, in our kernel's metadata. */
export function notebookJson(cells: readonly string[]): string {
  return JSON.stringify({
    nbformat: 4,
    nbformat_minor: 5,
    metadata: { kernelspec: { name: KERNEL_NAME, display_name: "TypeScript (celeba-sae)", language: "typescript" } },
    cells: cells.map((source, i) => ({ id: `c${i}`, cell_type: "code", source, metadata: {}, outputs: [], execution_count: null })),
  });
}
