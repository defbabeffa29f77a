// The names of everything one run writes, in one place. A run is one folder, `runs/<run>/`; stages and notebooks ask
// here for its paths and never join file names by hand, so that a reader finds the whole folder on one screen:
//
//   config.json                 the run's config (lib/run/config)
//   dataset.json                which dataset the run uses (notebook 01)
//   image-cache/                decoded images, when the dataset's own folder is read-only (notebook 02)
//   checkpoints/                fine-tuning checkpoints, step-N (notebook 02)
//   resnet18.safetensors        the fine-tuned model, torchvision key names (notebook 02)
//   resnet18.onnx               the same model for ONNX Runtime (notebook 03)
//   face_vectors.npy            N × 512 float32 in listing order (notebook 03), with .files.txt (the image of each
//                               row), .json (what made them) and .parts/ (an embedding under way)
//   sae.safetensors, sae.json   the run's sparse autoencoder (sae.preset) and its meta (notebook 04); sae-checkpoint/
//                               its training state
//   sae_features.npy            dense N × dictionary features, when small enough (notebook 04)
//   sae_feature_stats.json      per-feature statistics (notebook 04)
//   sae-recommended/            the recommended recipe's SAE, trained beside the post's when sae.preset is post: the
//                               same four names inside (sae.safetensors, sae.json, sae-checkpoint/, sae_feature_stats.json)
//   top_activations.json        the top-16 faces of every dense dimension and SAE feature (notebook 05)
//   blind-test/                 the blinded session: session.json, images/, grid-rows.json, ratings.jsonl (notebook 06)
//   blind-test-key.json         the unblinding key, outside the served folder (notebook 06)
//   findings/                   what each notebook measured, as JSON (04-sae.json, …; 02 and 03 write theirs too),
//                               which the export's Findings section composes
//   notebooks/                  the executed notebooks
//   post/                       the exported blog post (notebook 07, npm run export)
// A file set aside because what it was made from changed keeps its name with a suffix: `<name>.replaced-<time>`.

import { join } from "node:path";
import { projectRoot } from "../util/project";

/** The file and folder names inside a run folder. */
export const RUN_FILE_NAMES = {
  config: "config.json",
  dataset: "dataset.json",
  imageCache: "image-cache",
  checkpoints: "checkpoints",
  model: "resnet18.safetensors",
  onnxModel: "resnet18.onnx",
  faceVectors: "face_vectors.npy",
  faceVectorsFiles: "face_vectors.files.txt",
  faceVectorsRecord: "face_vectors.json",
  faceVectorsParts: "face_vectors.parts",
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

/** Where a file goes when it is set aside at `when`: its name with `.replaced-YYYYMMDD-HHMMSS` (UTC) appended. */
export function setAsidePath(path: string, when: Date): string {
  const stamp = when.toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
  return `${path}.replaced-${stamp}`;
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
    imageCache: at(n.imageCache),
    checkpoints: at(n.checkpoints),
    model: at(n.model),
    onnxModel: at(n.onnxModel),
    faceVectors: at(n.faceVectors),
    faceVectorsFiles: at(n.faceVectorsFiles),
    faceVectorsRecord: at(n.faceVectorsRecord),
    faceVectorsParts: at(n.faceVectorsParts),
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
