// Whether Kaggle credentials are configured, by the Kaggle CLI's own conventions, without ever showing them:
// KAGGLE_USERNAME + KAGGLE_KEY in the environment, else kaggle.json in $KAGGLE_CONFIG_DIR or ~/.kaggle/.

import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

export type CredentialSource = "environment" | "kaggle.json";

/** Where credentials would come from (never their values), or undefined when none are configured. */
export function kaggleCredentialSource(env: NodeJS.ProcessEnv = process.env, home: string = homedir()): CredentialSource | undefined {
  if (env.KAGGLE_USERNAME && env.KAGGLE_KEY) return "environment";
  const dir = env.KAGGLE_CONFIG_DIR ?? join(home, ".kaggle");
  return existsSync(join(dir, "kaggle.json")) ? "kaggle.json" : undefined;
}
