// The names of everything one run writes, in one place. A run is one folder, `runs/<run>/`; stages and notebooks ask
// here for its paths and never join file names by hand, so that a reader finds the whole folder on one screen:
//
//   config.json                 the run's config (lib/run/config)
//   dataset.json                which dataset the run uses (notebook 01)
//   initial_weights.json        the weights fine-tuning started from: ImageNet (revision, SHA-256), a file or random
//   usable_images.json          the images every stage uses: those that decode (notebook 01, or the first stage to
//                               open the dataset after its images changed)
//   image-cache/                decoded images, when the dataset's own folder is read-only (notebook 02)
//   checkpoints/                fine-tuning checkpoints, step-N (notebook 02)
//   finetune_findings.json      retrieval on held-out people over fine-tuning, and whether it beats its start (02)
//   resnet18.safetensors        the fine-tuned model, torchvision key names (notebook 02), with .json (its SHA-256 and
//                               what made it)
//   resnet18.onnx               the same model for ONNX Runtime (notebook 03)
//   face_vectors.npy            N × 512 float32 in listing order (notebook 03), with .files.txt (the image of each
//                               row), .json (what made them and their SHA-256) and .parts/ (an embedding under way)
//   embed_findings.json         retrieval, verification and probes before vs after fine-tuning, and the verdict (03)
//   sae.safetensors, sae.json   the run's sparse autoencoder (sae.preset) and its meta (notebook 04); sae-checkpoint/
//                               its training state
//   sae_features.npy            dense N × dictionary features, when small enough (notebook 04)
//   sae_feature_stats.json      per-feature statistics (notebook 04)
//   sae-recommended/            the recommended recipe's SAE, trained beside the post's when sae.preset is post: the
//                               same four names inside (sae.safetensors, sae.json, sae-checkpoint/, sae_feature_stats.json)
//   top_activations.json        the top-16 faces of every dense dimension and SAE feature (notebook 05)
//   blind-test/                 the blinded session: session.json, images/, grid-rows.json, ratings.jsonl and its
//                               writer's ratings.lock (notebook 06)
//   blind-test-key.json         the unblinding key, outside the served folder (notebook 06)
//   findings/                   what each notebook measured, as JSON (04-sae.json, …; 02 and 03 write theirs too),
//                               which the export's Findings section composes
//   notebooks/                  the executed notebooks
//   post/                       the exported blog post (notebook 07, npm run export)
//
// A finished artifact whose inputs changed is not overwritten: it is set aside under `asideName` (e.g.
// face_vectors.before-20250101-120000.npy) before the stage starts afresh.

import { existsSync } from "node:fs";
import { basename, dirname, extname, join } from "node:path";
import { projectRoot } from "../util/project";

/** The file and folder names inside a run folder. */
export const RUN_FILE_NAMES = {
  config: "config.json",
  dataset: "dataset.json",
  initialWeights: "initial_weights.json",
  usableImages: "usable_images.json",
  imageCache: "image-cache",
  checkpoints: "checkpoints",
  finetuneFindings: "finetune_findings.json",
  model: "resnet18.safetensors",
  modelRecord: "resnet18.json",
  onnxModel: "resnet18.onnx",
  faceVectors: "face_vectors.npy",
  faceVectorsFiles: "face_vectors.files.txt",
  faceVectorsRecord: "face_vectors.json",
  faceVectorsParts: "face_vectors.parts",
  embedFindings: "embed_findings.json",
  saeWeights: "sae.safetensors",
  saeMeta: "sae.json",
  saeCheckpoint: "sae-checkpoint",
  saeFeatures: "sae_features.npy",
  saeFeatureStats: "sae_feature_stats.json",
  saeRecommended: "sae-recommended",
  topActivations: "top_activations.json",
  blindTest: "blind-test",
  blindTestKey: "blind-test-key.json",
  findings: "findings",
  notebooks: "notebooks",
  post: "post",
} as const;

/** The blind test's files (lib/blind-test/session). */
export interface BlindTestFiles {
  readonly dir: string;
  readonly session: string;
  readonly images: string;
  readonly gridRows: string;
  readonly ratings: string;
  /** Held by the one process that may write ratings (lib/blind-test/session). */
  readonly lock: string;
  readonly key: string;
}

/** The files of one SAE: the run's (in the run folder) or the recommended one beside it (in sae-recommended/). */
export interface SaeFiles {
  readonly dir: string;
  readonly weights: string;
  readonly meta: string;
  readonly checkpoint: string;
  readonly features: string;
  readonly featureStats: string;
}

/** The notebooks that record findings (runs/<run>/findings/<notebook>.json). */
export const FINDINGS_NOTEBOOKS = ["02-finetune", "03-embed", "04-sae", "05-inspect", "06-blind-test"] as const;
export type FindingsNotebook = (typeof FINDINGS_NOTEBOOKS)[number];

/** Every path of a run folder, by what it holds. */
export type RunFiles = { readonly [K in Exclude<keyof typeof RUN_FILE_NAMES, "blindTest" | "blindTestKey" | "findings">]: string } & {
  readonly dir: string;
  readonly blindTest: BlindTestFiles;
  /** The run's SAE, and the recommended one trained beside it. */
  readonly sae: SaeFiles;
  readonly saeBeside: SaeFiles;
  readonly findings: { readonly dir: string } & { readonly [N in FindingsNotebook]: string };
};

/** The files of an SAE kept in `folder`. */
export function saeFolderFiles(folder: string): SaeFiles {
  const n = RUN_FILE_NAMES;
  return {
    dir: folder,
    weights: join(folder, n.saeWeights),
    meta: join(folder, n.saeMeta),
    checkpoint: join(folder, n.saeCheckpoint),
    features: join(folder, n.saeFeatures),
    featureStats: join(folder, n.saeFeatureStats),
  };
}

/** `runs/<run>/`: everything one run writes. */
export function runDir(run: string): string {
  return join(projectRoot(), "runs", run);
}

/** The paths of the run folder `folder` (any folder laid out as a run: tests use temporary ones). */
export function runFolderFiles(folder: string): RunFiles {
  const n = RUN_FILE_NAMES;
  const at = (name: string): string => join(folder, name);
  const blind = at(n.blindTest);
  return {
    dir: folder,
    config: at(n.config),
    dataset: at(n.dataset),
    initialWeights: at(n.initialWeights),
    usableImages: at(n.usableImages),
    imageCache: at(n.imageCache),
    checkpoints: at(n.checkpoints),
    finetuneFindings: at(n.finetuneFindings),
    model: at(n.model),
    modelRecord: at(n.modelRecord),
    onnxModel: at(n.onnxModel),
    faceVectors: at(n.faceVectors),
    faceVectorsFiles: at(n.faceVectorsFiles),
    faceVectorsRecord: at(n.faceVectorsRecord),
    faceVectorsParts: at(n.faceVectorsParts),
    embedFindings: at(n.embedFindings),
    saeWeights: at(n.saeWeights),
    saeMeta: at(n.saeMeta),
    saeCheckpoint: at(n.saeCheckpoint),
    saeFeatures: at(n.saeFeatures),
    saeFeatureStats: at(n.saeFeatureStats),
    saeRecommended: at(n.saeRecommended),
    sae: saeFolderFiles(folder),
    saeBeside: saeFolderFiles(at(n.saeRecommended)),
    topActivations: at(n.topActivations),
    blindTest: {
      dir: blind,
      session: join(blind, "session.json"),
      gridRows: join(blind, "grid-rows.json"),
      images: join(blind, "images"),
      ratings: join(blind, "ratings.jsonl"),
      lock: join(blind, "ratings.lock"),
      key: at(n.blindTestKey),
    },
    findings: {
      dir: at(n.findings),
      ...(Object.fromEntries(FINDINGS_NOTEBOOKS.map((name) => [name, join(at(n.findings), `${name}.json`)])) as { [N in FindingsNotebook]: string }),
    },
    notebooks: at(n.notebooks),
    post: at(n.post),
  };
}

/** The paths of `runs/<run>/`. */
export function runFiles(run: string): RunFiles {
  return runFolderFiles(runDir(run));
}

/** `YYYYMMDD-HHMMSS` of `date` (UTC): the suffix of things set aside. */
export function asideStamp(date: Date = new Date()): string {
  return date.toISOString().slice(0, 19).replace(/-|:/g, "").replace("T", "-");
}

/**
 * Where a finished artifact (file or folder) is set aside when what it was made from changed:
 * `<name>.before-<stamp><extension>` beside it, e.g. face_vectors.before-20250101-120000.npy (numpy still opens
 * it), `checkpoints.before-20250101-120000`; `-2`, `-3`… after the stamp when that name is taken.
 * `face_vectors.files.txt` keeps its double extension.
 */
export function asideName(path: string, stamp: string = asideStamp()): string {
  const name = basename(path);
  const ext = name.endsWith(".files.txt") ? ".files.txt" : extname(name);
  const stem = join(dirname(path), `${name.slice(0, name.length - ext.length)}.before-${stamp}`);
  for (let n = 1; ; n++) {
    const candidate = `${stem}${n === 1 ? "" : `-${n}`}${ext}`;
    if (!existsSync(candidate)) return candidate;
  }
}
