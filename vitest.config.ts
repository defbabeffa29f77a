import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 180_000,
    hookTimeout: 300_000,
    pool: "forks",
    // Hermetic: nothing reaches the Hugging Face Hub (notebook 02's finetune.weights=auto then starts from random
    // initialisation, as on a machine without internet); Hub tests pass their own environment and a stand-in Hub.
    env: { HF_HUB_OFFLINE: "1" },
  },
});
