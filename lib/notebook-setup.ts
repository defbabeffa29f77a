// The first cell of every notebook: which run, which versions, which TF.js backend.

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import sharp from "sharp";
import { describeBackend, initBackend, tf, type BackendReport } from "./backend";
import { configPath, loadRunConfig, type RunConfig } from "./config";
import { projectRoot } from "./paths";

export interface NotebookContext {
  readonly config: RunConfig;
  readonly backend: BackendReport;
  readonly versions: Readonly<Record<string, string>>;
}

function packageVersion(name: string): string {
  try {
    const req = createRequire(join(projectRoot(), "package.json"));
    return (req(`${name}/package.json`) as { version: string }).version;
  } catch {
    return "not installed";
  }
}

/** The versions that decide what a notebook computes. */
export function versions(): Record<string, string> {
  return {
    "celeba-sae": ownVersion(),
    node: process.versions.node,
    tslab: packageVersion("tslab"),
    "typescript (tslab)": packageVersion("@tslab/typescript-for-tslab"),
    "@tensorflow/tfjs": tf.version.tfjs,
    "@tensorflow/tfjs-backend-wasm": packageVersion("@tensorflow/tfjs-backend-wasm"),
    sharp: `${sharp.versions.sharp ?? packageVersion("sharp")} (libvips ${sharp.versions.vips})`,
  };
}

function ownVersion(): string {
  return (JSON.parse(readFileSync(join(projectRoot(), "package.json"), "utf8")) as { version: string }).version;
}

/**
 * Loads the run's config, selects the TF.js backend and prints both with the versions. Every notebook starts with
 * `const { config } = await startNotebook("01-download")`.
 */
export async function startNotebook(notebook: string): Promise<NotebookContext> {
  const config = loadRunConfig();
  const backend = await initBackend(config.backend);
  const v = versions();
  const width = Math.max(...Object.keys(v).map((k) => k.length));
  const lines = [
    `${notebook} · run "${config.run}" · config ${configPath(config.run).replace(projectRoot() + "/", "")}`,
    ...Object.entries(v).map(([k, x]) => `${k.padEnd(width)}  ${x}`),
    describeBackend(backend),
  ];
  console.log(lines.join("\n"));
  return { config, backend, versions: v };
}
