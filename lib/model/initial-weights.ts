// The weights fine-tuning starts from (config `finetune.weights`), decided once per run and recorded in
// runs/<run>/initial_weights.json, so that notebook 02, the "before fine-tuning" column of notebook 03 and the
// exported post all name the same start:
//   "auto"      the post's start, torchvision's ImageNet ResNet18 (timm/resnet18.tv_in1k on the Hugging Face Hub,
//               fetched into huggingface_hub's cache by lib/model/hub-weights) when it can be had, else
//               torchvision's random initialisation, saying why and what that changes;
//   "imagenet"  the same weights, or an error naming the fix;
//   "random"    torchvision's random initialisation ("" means the same, as in earlier configs);
//   a path      a .safetensors file with torchvision/timm key names.
// `finetune.weightsRevision` pins the Hub revision (a branch, a tag or a 40-hex commit).

import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import type { RunConfig } from "../run/config";
import { runFiles } from "../run/files";
import { ProgressBar, type ProgressMode } from "../display/progress";
import { writeFileAtomicSync } from "../util/atomic-write";
import { displayPath, projectRoot } from "../util/project";
import { checkRevision, loadImagenetWeights, resolveWeightsSpec, type HubEnv } from "./hub-weights";
import { createResNet18, loadResNet18, type ResNet18 } from "./resnet18";

/** What a run started from, as recorded. */
export type InitialWeights =
  | { readonly kind: "imagenet"; readonly repo: string; readonly revision: string; readonly sha256: string; readonly path: string }
  | { readonly kind: "file"; readonly path: string }
  | { readonly kind: "random"; readonly seed: number; readonly why: string };

/** The record's form: the weights and the settings they were resolved from. */
interface InitialWeightsRecord {
  readonly spec: string;
  readonly revision: string;
  readonly seed: number;
  readonly weights: InitialWeights;
}

export interface ResolveOptions {
  /** Progress of a download (default "auto"; "silent" in tests). */
  readonly progress?: ProgressMode;
  /** Where HF_* variables are read (default process.env). */
  readonly env?: HubEnv;
  /** Status lines (default console.log). */
  readonly log?: (line: string) => void;
}

/** One line for people: which weights, with revision and SHA-256, or "random initialisation" and why. */
export function describeInitialWeights(w: InitialWeights): string {
  switch (w.kind) {
    case "imagenet":
      return `ImageNet weights: ${w.repo} at revision ${w.revision} (model.safetensors, SHA-256 ${w.sha256})`;
    case "file":
      return `weights from ${displayPath(w.path)}`;
    case "random":
      return `torchvision's random initialisation (seed ${w.seed}): ${w.why}`;
  }
}

/** What starting from these weights changes, for notebook 02's prose: loud when it is not the post's start. */
export function initialWeightsNote(w: InitialWeights): string {
  if (w.kind === "imagenet") return `Starting from the post's start, torchvision's ImageNet ResNet18: ${describeInitialWeights(w)}.`;
  if (w.kind === "file") return `Starting from the ${describeInitialWeights(w)} (finetune.weights).`;
  return [
    `WARNING: NOT the post's start. The model starts from torchvision's random initialisation (seed ${w.seed}): ${w.why}.`,
    "The post fine-tunes a network pretrained on ImageNet; from random weights one short fine-tuning learns far less,",
    "so retrieval, probes and the interpretability of features will be weaker than the post's.",
    "With internet, finetune.weights=auto (the default) fetches timm/resnet18.tv_in1k from the Hugging Face Hub into its cache;",
    "offline, download model.safetensors of https://huggingface.co/timm/resnet18.tv_in1k and pass --set finetune.weights=<its path>.",
  ].join("\n");
}

function readRecord(path: string): InitialWeightsRecord | null {
  if (!existsSync(path)) return null;
  try {
    return JSON.parse(readFileSync(path, "utf8")) as InitialWeightsRecord;
  } catch {
    return null;
  }
}

/** What the run recorded it started from (runs/<run>/initial_weights.json), or null before notebook 02 ran. */
export function recordedInitialWeights(run: string): InitialWeights | null {
  return readRecord(runFiles(run).initialWeights)?.weights ?? null;
}

/**
 * The run's initial weights: the recorded ones when they were resolved from the same settings (and the file is
 * still there), else resolved now (downloading with a progress bar when needed) and recorded.
 */
export async function resolveInitialWeights(config: RunConfig, options: ResolveOptions = {}): Promise<InitialWeights> {
  const f = config.finetune;
  const recordPath = runFiles(config.run).initialWeights;
  const recorded = readRecord(recordPath);
  if (recorded !== null && recorded.spec === f.weights && recorded.revision === f.weightsRevision && recorded.seed === config.seed) {
    const w = recorded.weights;
    if (w.kind === "random" || existsSync(w.path)) return w;
  }
  const weights = await resolveNow(config, options);
  const record: InitialWeightsRecord = { spec: f.weights, revision: f.weightsRevision, seed: config.seed, weights };
  writeFileAtomicSync(recordPath, JSON.stringify(record, null, 2) + "\n");
  return weights;
}

async function resolveNow(config: RunConfig, options: ResolveOptions): Promise<InitialWeights> {
  const plan = resolveWeightsSpec(config.finetune.weights);
  if (plan.kind === "random") return { kind: "random", seed: config.seed, why: `finetune.weights is "${config.finetune.weights}"` };
  if (plan.kind === "file") {
    const path = resolve(projectRoot(), plan.path);
    if (!existsSync(path)) {
      throw new Error(
        `finetune.weights = "${plan.path}" does not exist. Pass the path of a .safetensors file with torchvision's key names, ` +
          `or finetune.weights=auto (ImageNet weights from the Hugging Face Hub when they can be had) or finetune.weights=random.`,
      );
    }
    return { kind: "file", path };
  }
  let bar: ProgressBar | null = null;
  try {
    const got = await loadImagenetWeights({
      mode: plan.mode,
      revision: checkRevision(config.finetune.weightsRevision),
      env: options.env,
      log: options.log,
      onProgress: (done, total) => {
        bar ??= new ProgressBar({ total: total ?? undefined, desc: "Downloading ImageNet weights", unit: "B", mode: options.progress });
        bar.update(done - bar.n);
      },
    });
    if (got.kind === "random") return { kind: "random", seed: config.seed, why: `the ImageNet weights could not be had (${got.why})` };
    const file = got.file;
    return { kind: "imagenet", repo: file.repo, revision: file.revision, sha256: file.sha256, path: file.path };
  } finally {
    (bar as ProgressBar | null)?.close();
  }
}

/** The model fine-tuning (and notebook 03's "before" column) starts from, and what it is. */
export async function initialModel(config: RunConfig, options: ResolveOptions = {}): Promise<{ model: ResNet18; weights: InitialWeights; source: string }> {
  const weights = await resolveInitialWeights(config, options);
  const model = weights.kind === "random" ? createResNet18({ seed: weights.seed }) : await loadResNet18(weights.path);
  return { model, weights, source: describeInitialWeights(weights) };
}
