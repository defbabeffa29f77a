// The names of TensorFlow.js's backends, fastest first, how a choice is read, and the engines a heavy stage can run
// on: apart from lib/kernels/backend and lib/kernels/onnxruntime so that the run config names them without loading
// TensorFlow.js.

export const BACKEND_ORDER = ["tensorflow-gpu", "tensorflow", "wasm", "cpu"] as const;
export type BackendName = (typeof BACKEND_ORDER)[number];
export type BackendChoice = BackendName | "auto";

/** The environment variable that forces a backend. */
export const BACKEND_ENV = "CELEBA_SAE_BACKEND";

/** Reads a backend choice from a string (env var or config), naming the allowed values when it is wrong. */
export function parseBackendChoice(value: string | undefined, source = BACKEND_ENV): BackendChoice {
  if (value === undefined || value.trim() === "") return "auto";
  const v = value.trim();
  if (v === "auto" || (BACKEND_ORDER as readonly string[]).includes(v)) return v as BackendChoice;
  throw new Error(`${source}="${value}" is not a backend: use one of auto, ${BACKEND_ORDER.join(", ")}`);
}

/** Who runs a heavy stage's passes — embedding (`embed.engine`), fine-tuning (`finetune.engine`): "auto" the fastest
 *  that loads (lib/kernels/onnxruntime `chooseEngine`), "onnxruntime" or "tfjs". */
export const ENGINES = ["auto", "onnxruntime", "tfjs"] as const;
export type EngineChoice = (typeof ENGINES)[number];
