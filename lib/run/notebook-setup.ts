// The first cell of every notebook: which run, which versions, which TF.js backend, and which engine each heavy
// stage will run on and why.

import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import sharp from "sharp";
import { describeBackend, initBackend, tf, type BackendReport } from "../kernels/backend";
import { loadRunConfig, type RunConfig } from "./config";
import { displayPath, projectRoot, requireFromProject } from "../util/project";
import { removeDeadTemporariesBelow } from "../util/temporaries";
import { rewritesGradients } from "../kernels/fast-gradients";
import { chooseEngine, describeEngine } from "../kernels/onnxruntime";
import { jpegDecoder } from "../kernels/turbojpeg";
import { runDir, runFiles } from "./files";

export interface NotebookContext {
  readonly config: RunConfig;
  readonly backend: BackendReport;
  readonly versions: Readonly<Record<string, string>>;
}

/** An installed package's version, read from its package.json (found above its entry point: `exports` may hide it). */
function packageVersion(name: string): string {
  try {
    const entry = requireFromProject().resolve(name);
    for (let dir = dirname(entry); dir !== dirname(dir); dir = dirname(dir)) {
      const manifest = join(dir, "package.json");
      if (!existsSync(manifest)) continue;
      const pkg = JSON.parse(readFileSync(manifest, "utf8")) as { name?: string; version?: string };
      if (pkg.name === name && pkg.version) return pkg.version;
    }
  } catch {
    // not installed: said below
  }
  return "not installed";
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
    sharp: `${packageVersion("sharp")} (libvips ${sharp.versions.vips})`,
    "JPEG decoder": jpegDecoderDescription(),
  };
}

function jpegDecoderDescription(): string {
  try {
    return jpegDecoder().description;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

function ownVersion(): string {
  return (JSON.parse(readFileSync(join(projectRoot(), "package.json"), "utf8")) as { version: string }).version;
}

/** Which engine fine-tuning (02), embedding (03) and the SAE's training (04) will use, and why; the gradients. */
export function describeEngines(config: RunConfig, backend: BackendReport): string {
  const on = { backend: backend.name, gpu: backend.gpu };
  // "sae.engine" is lib/sae/onnx-step `chooseSaeEngine`'s setting (a later stage, not imported from here).
  const engine = (setting: "finetune.engine" | "embed.engine" | "sae.engine", choice: RunConfig["embed"]["engine"]): string => {
    try {
      return describeEngine(chooseEngine(choice, undefined, setting, on), backend.name);
    } catch (error) {
      return error instanceof Error ? error.message : String(error);
    }
  };
  return [
    "Engines (the fastest that loads: TF.js on a GPU, else ONNX Runtime's CPU kernels, else TF.js on the CPU):",
    `  fine-tuning (02): ${engine("finetune.engine", config.finetune.engine)}`,
    `  embedding (03):   ${engine("embed.engine", config.embed.engine)}`,
    `  SAE (04):         ${engine("sae.engine", config.sae.engine)}`,
    `  TF.js gradients:  ${rewritesGradients(tf.getBackend()) ? "rewritten as forward ops (lib/kernels/fast-gradients), as WASM needs" : "TF.js's own kernels"}`,
  ].join("\n");
}

/**
 * Loads the run's config, selects the TF.js backend and prints both with the versions. Every notebook starts with
 * `const { config } = await startNotebook("01-download")`.
 */
export async function startNotebook(notebook: string): Promise<NotebookContext> {
  const config = loadRunConfig();
  const leftovers = removeDeadTemporariesBelow(runDir(config.run));
  const backend = await initBackend(config.backend);
  const v = versions();
  const width = Math.max(...Object.keys(v).map((k) => k.length));
  const lines = [
    `${notebook} · run "${config.run}" · config ${runFiles(config.run).config.replace(projectRoot() + "/", "")}`,
    ...Object.entries(v).map(([k, x]) => `${k.padEnd(width)}  ${x}`),
    describeBackend(backend),
    describeEngines(config, backend),
    ...(leftovers.length === 0 ? [] : [`Removed ${leftovers.length} unfinished file(s) a killed process left in ${displayPath(runDir(config.run))}: ${leftovers.join(", ")}`]),
  ];
  console.log(lines.join("\n"));
  return { config, backend, versions: v };
}
