// The kinds of features the inspection and the blind test compare: the face vectors' own dimensions ("dense"), the
// run's SAE's features ("sparse", the post's when sae.preset is post) and, beside the post's, the recommended SAE's.

import type { Preset } from "../run/config";
import { saeLabel, type SaeKind } from "../sae/run-saes";

export const FEATURE_KINDS = ["dense", "sparse", "sparse-recommended"] as const;
export type FeatureKind = "dense" | SaeKind;

/** How tables and titles name a kind: "dense dimensions", "the post's SAE", "the recommended SAE". */
export function kindLabel(kind: FeatureKind, runPreset: Preset): string {
  if (kind === "dense") return "dense dimensions";
  return kind === "sparse" ? saeLabel(runPreset) : saeLabel("recommended");
}

/** Parses a comma-separated list of kinds (config blindTest.kinds), refusing unknown names. */
export function parseKinds(spec: string): FeatureKind[] {
  return spec.split(",").map((raw) => {
    const kind = raw.trim();
    if (!(FEATURE_KINDS as readonly string[]).includes(kind)) throw new Error(`"${kind}" is not a kind of feature: use ${FEATURE_KINDS.join(", ")}`);
    return kind as FeatureKind;
  });
}
