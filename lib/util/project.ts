// Where the project is, and paths as people should see them. Every path is resolved from the project root, which is found by walking up from the
// working directory to this project's package.json: scripts, tests and the notebook kernel all start there, and
// `import.meta`/`__dirname` are not available in every one of those module systems (tslab compiles to CommonJS).

import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, isAbsolute, join, relative, resolve } from "node:path";

let cachedRoot: string | undefined;

/** The folder holding celeba-sae's package.json, found from the working directory upwards. */
export function projectRoot(start: string = process.cwd()): string {
  if (cachedRoot !== undefined && start === process.cwd()) return cachedRoot;
  for (let dir = resolve(start); ; dir = dirname(dir)) {
    const manifest = join(dir, "package.json");
    if (existsSync(manifest)) {
      const name = (JSON.parse(readFileSync(manifest, "utf8")) as { name?: string }).name;
      if (name === "celeba-sae") {
        if (start === process.cwd()) cachedRoot = dir;
        return dir;
      }
    }
    if (dirname(dir) === dir) {
      throw new Error(`celeba-sae's package.json was not found above ${start}: run this from inside the project folder`);
    }
  }
}

/** `data/` (or $CELEBA_SAE_DATA): datasets, downloaded or generated, never committed. */
export function dataDir(): string {
  const override = process.env.CELEBA_SAE_DATA;
  return override ? resolve(projectRoot(), override) : join(projectRoot(), "data");
}

/** A path as people should see it: relative to the project when inside it (no home folders in notebook outputs). */
export function displayPath(path: string): string {
  const rel = relative(projectRoot(), path);
  return rel === "" ? "." : rel.startsWith("..") || isAbsolute(rel) ? path : rel;
}

/** Text with every absolute path inside the project shown relative to it (see displayPath). */
export function displayText(text: string): string {
  return text.split(`${projectRoot()}/`).join("");
}

/**
 * `require` resolving from the project's package.json: optional native packages (tfjs-node, onnxruntime-node) are
 * looked up in the project's node_modules wherever the calling code was compiled (tslab, tsx, vitest), without
 * `import.meta` or `__dirname`, which not every one of those module systems has.
 */
export function requireFromProject(): NodeJS.Require {
  return createRequire(join(projectRoot(), "package.json"));
}
