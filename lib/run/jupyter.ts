// Jupyter for the notebooks: the Python that has nbclient, and the project's tslab kernel spec.
//
// tslab's own `tslab install` writes a kernel spec that starts the bare word `tslab`, found only when the
// project's node_modules/.bin is on PATH, and its kernel starts in the notebook's folder, where `./lib/…` does
// not resolve. Our spec instead starts `scripts/tslab-kernel.cjs` with this Node by absolute path; that script
// changes to the project root and starts the project's own tslab. The spec is written into `.jupyter/kernels/`
// (found through JUPYTER_PATH by our runner) and installed for the user (found by JupyterLab).

import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { delimiter, join } from "node:path";
import { projectRoot } from "../util/project";

export const KERNEL_NAME = "celeba-sae";

export interface KernelSpec {
  readonly argv: readonly string[];
  readonly display_name: string;
  readonly language: string;
  readonly interrupt_mode: "signal";
  readonly env: Record<string, string>;
  readonly metadata: { readonly debugger: false };
}

/** The kernel spec: this Node runs the project's wrapper script, whatever PATH holds. */
export function kernelSpec(root: string = projectRoot(), nodePath: string = process.execPath): KernelSpec {
  return {
    argv: [nodePath, join(root, "scripts", "tslab-kernel.cjs"), "{connection_file}"],
    display_name: "TypeScript (celeba-sae)",
    language: "typescript",
    interrupt_mode: "signal",
    env: {},
    metadata: { debugger: false },
  };
}

/** `<root>/.jupyter`: the JUPYTER_PATH entry that holds our kernel spec. */
export function jupyterDataDir(root: string = projectRoot()): string {
  return join(root, ".jupyter");
}

/** Writes `.jupyter/kernels/celeba-sae/kernel.json` if it is missing or different; returns its folder. */
export function writeKernelSpec(root: string = projectRoot()): string {
  const dir = join(jupyterDataDir(root), "kernels", KERNEL_NAME);
  const file = join(dir, "kernel.json");
  const text = JSON.stringify(kernelSpec(root), null, 2) + "\n";
  if (!existsSync(file) || readFileSync(file, "utf8") !== text) {
    mkdirSync(dir, { recursive: true });
    writeFileSync(file, text);
  }
  return dir;
}

/** The environment for Jupyter processes: our kernel spec first on JUPYTER_PATH. */
export function jupyterEnv(base: NodeJS.ProcessEnv = process.env, root: string = projectRoot()): NodeJS.ProcessEnv {
  const existing = base.JUPYTER_PATH;
  return { ...base, JUPYTER_PATH: existing ? `${jupyterDataDir(root)}${delimiter}${existing}` : jupyterDataDir(root) };
}

/** The Python modules our runner needs. */
export const JUPYTER_MODULES = ["nbclient", "nbformat", "jupyter_client"] as const;

/** Python interpreters to try: $CELEBA_SAE_PYTHON, Debian's, then whatever python3 PATH finds. */
export function pythonCandidates(env: NodeJS.ProcessEnv = process.env): string[] {
  const list = [env.CELEBA_SAE_PYTHON, "/usr/bin/python3", "python3"].filter((p): p is string => !!p);
  return [...new Set(list)];
}

/** True when `python` imports every module the runner needs. */
export function pythonHasJupyter(python: string): boolean {
  const probe = spawnSync(python, ["-c", `import ${JUPYTER_MODULES.join(", ")}`], { stdio: "ignore" });
  return probe.status === 0;
}

/** The first Python that can run notebooks, or undefined. */
export function findJupyterPython(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return pythonCandidates(env).find(pythonHasJupyter);
}

/** Installs the kernel spec for the user (`jupyter kernelspec install --user`), so JupyterLab offers it. */
export function installUserKernelSpec(python: string, root: string = projectRoot()): { ok: boolean; message: string } {
  const dir = writeKernelSpec(root);
  const r = spawnSync(python, ["-m", "jupyter_client.kernelspecapp", "install", "--user", "--replace", "--name", KERNEL_NAME, dir], {
    encoding: "utf8",
  });
  if (r.status === 0) return { ok: true, message: `kernel "${KERNEL_NAME}" installed for this user` };
  return { ok: false, message: `could not install the kernel spec for the user: ${(r.stderr || r.stdout || "").trim().split("\n").pop()}` };
}
