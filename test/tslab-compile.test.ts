// tslab type-checks every imported .ts file with its own TypeScript (5.0) and options (no strict null checks,
// node10 resolution, declarations emitted): code that passes our strict tsc can still fail in a notebook, where
// the kernel reports only "<Error>:" and line numbers. Compile all of lib/ the way tslab does.

import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, it } from "vitest";

it("every lib module compiles under tslab's TypeScript and options", () => {
  const out = mkdtempSync(join(tmpdir(), "tslab-tsc-"));
  try {
    const files = readdirSync("lib", { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".ts")).map((f) => `lib/${f}`);
    const args = ["--target", "ES2022", "--lib", "es2022", "--module", "ESNext", "--moduleResolution", "node"];
    args.push("--esModuleInterop", "--declaration", "--emitDeclarationOnly", "--skipLibCheck", "--types", "node");
    const tsc = join("node_modules", "@tslab", "typescript-for-tslab", "lib", "tsc.js");
    const result = spawnSync(process.execPath, [tsc, ...args, "--outDir", out, ...files], { encoding: "utf8" });
    expect({ status: result.status, diagnostics: result.stdout }).toEqual({ status: 0, diagnostics: "" });
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
