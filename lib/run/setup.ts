// Setting up a machine to run the notebooks: Jupyter's Python side, the tslab kernel spec and libturbojpeg.
// Used by `npm run setup` and `npm run demo`; safe to run again (it only installs what is missing).

import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { findJupyterPython, installUserKernelSpec, writeKernelSpec } from "./jupyter";
import { projectRoot } from "../util/project";
import { requireFromProject } from "../util/project";
import { DEBIAN_TURBOJPEG_PACKAGE, loadTurboJpeg } from "../kernels/turbojpeg";

/** Debian's packages for running notebooks headless (nbclient/nbconvert) and opening them in classic Notebook. */
export const DEBIAN_JUPYTER_PACKAGES = ["jupyter-nbconvert", "python3-nbclient", "jupyter-notebook"] as const;
export const PIP_JUPYTER_PACKAGES = ["nbclient", "nbformat", "nbconvert", "jupyter_client"] as const;

function has(command: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${command}`], { stdio: "ignore" }).status === 0;
}

function run(command: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env): boolean {
  console.log(`$ ${command} ${args.join(" ")}`);
  return spawnSync(command, args, { stdio: "inherit", env }).status === 0;
}

/** The npm packages the notebooks import; a missing one means `npm install` has not run. */
export function checkNodePackages(): void {
  const req = requireFromProject();
  const missing = ["tslab", "sharp", "@tensorflow/tfjs", "@tensorflow/tfjs-backend-wasm", "plotly.js-dist", "simple-statistics"].filter((p) => {
    try {
      req.resolve(p);
      return false;
    } catch {
      return true;
    }
  });
  if (missing.length > 0) throw new Error(`npm packages missing: ${missing.join(", ")}. Run \`npm install\` in ${projectRoot()}.`);
  const [major, minor] = process.versions.node.split(".").map(Number);
  if (major < 20 || (major === 20 && minor < 19)) throw new Error(`Node ${process.versions.node} is too old: celeba-sae needs Node 20.19 or newer.`);
}

/** How to run apt-get here: directly as root, through password-less sudo, or not at all. */
function aptCommand(): readonly string[] | undefined {
  if (!has("apt-get")) return undefined;
  if (typeof process.getuid === "function" && process.getuid() === 0) return ["apt-get"];
  if (has("sudo") && spawnSync("sudo", ["-n", "true"], { stdio: "ignore" }).status === 0) return ["sudo", "-n", "apt-get"];
  return undefined;
}

/** Installs Debian packages with apt-get (as root or through password-less sudo); false when it cannot. */
export function aptInstall(packages: readonly string[]): boolean {
  const apt = aptCommand();
  if (apt === undefined) return false;
  const [cmd, ...pre] = apt;
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  // Another apt-get (a second setup, unattended upgrades) holds dpkg's lock for a while: wait for it instead of failing.
  const wait = ["-o", "DPkg::Lock::Timeout=600"];
  return run(cmd, [...pre, ...wait, "update", "-q"], env) && run(cmd, [...pre, ...wait, "install", "-y", "-q", ...packages], env);
}

/** Installs Jupyter's Python side with apt (Debian/Ubuntu) or else pip. */
function installJupyter(): void {
  if (aptInstall(DEBIAN_JUPYTER_PACKAGES)) return;
  if (aptCommand() !== undefined) console.log("apt-get could not install Jupyter; trying pip.");
  for (const python of ["python3", "/usr/bin/python3"]) {
    if (has(python) && spawnSync(python, ["-m", "pip", "--version"], { stdio: "ignore" }).status === 0) {
      if (run(python, ["-m", "pip", "install", "--user", ...PIP_JUPYTER_PACKAGES])) return;
    }
  }
}

/** libjpeg-turbo's TurboJPEG for fast JPEG decoding: installed with apt where missing, else sharp decodes (slower). */
function ensureTurboJpeg(): void {
  const loaded = loadTurboJpeg();
  if (loaded.ok === true) return;
  if (loaded.missing === "library" && aptInstall([DEBIAN_TURBOJPEG_PACKAGE]) && loadTurboJpeg().ok === true) return;
  console.log(`JPEG decoding will use sharp, about 4× slower than TurboJPEG: ${loaded.reason}.`);
}

/**
 * What the tests need beyond the notebooks: numpy (a test reads our .npy back), Chromium (browser tests) and
 * libturbojpeg (optional for users, but its decoder is tested).
 */
export const DEBIAN_TEST_PACKAGES = { numpy: "python3-numpy", chromium: "chromium", turbojpeg: DEBIAN_TURBOJPEG_PACKAGE } as const;
export const CHROMIUM_PATH = "/usr/bin/chromium";

/** The test-only packages that are missing here. */
export function missingTestPackages(python: string): string[] {
  const missing: string[] = [];
  if (spawnSync(python, ["-c", "import numpy"], { stdio: "ignore" }).status !== 0) missing.push(DEBIAN_TEST_PACKAGES.numpy);
  if (!existsSync(CHROMIUM_PATH)) missing.push(DEBIAN_TEST_PACKAGES.chromium);
  if (loadTurboJpeg().ok === false) missing.push(DEBIAN_TEST_PACKAGES.turbojpeg);
  return missing;
}

/** Installs the test-only packages with apt, or says exactly what to install. */
function ensureTestPackages(python: string): void {
  let missing = missingTestPackages(python);
  if (missing.length === 0) return;
  if (aptInstall(missing)) missing = missingTestPackages(python);
  if (missing.length > 0) {
    throw new Error(`The tests need ${missing.join(" and ")} (Debian/Ubuntu: \`sudo apt-get install ${missing.join(" ")}\`). Install them, then run npm test again.`);
  }
}

export interface SetupResult {
  readonly python: string;
  readonly kernelSpecDir: string;
  readonly userKernel: string;
}

/**
 * Makes sure the notebooks can run: npm packages present, Jupyter's nbclient found or installed, kernel spec written;
 * with `forTests`, also what only the tests need (numpy, Chromium).
 */
export function setup(options: { readonly forTests?: boolean } = {}): SetupResult {
  checkNodePackages();
  let python = findJupyterPython();
  if (python === undefined) {
    console.log("Jupyter's nbclient was not found: installing it.");
    installJupyter();
    python = findJupyterPython();
  }
  if (python === undefined) {
    throw new Error(
      "Could not find or install Jupyter's nbclient. Install it by hand — Debian/Ubuntu: `sudo apt-get install " +
        `${DEBIAN_JUPYTER_PACKAGES.join(" ")}\`; elsewhere: \`python3 -m pip install ${PIP_JUPYTER_PACKAGES.join(" ")}\` — ` +
        "or set CELEBA_SAE_PYTHON to a Python that has it, then run this again.",
    );
  }
  ensureTurboJpeg();
  if (options.forTests === true) ensureTestPackages(python);
  const kernelSpecDir = writeKernelSpec();
  const user = installUserKernelSpec(python);
  return { python, kernelSpecDir, userKernel: user.message };
}
