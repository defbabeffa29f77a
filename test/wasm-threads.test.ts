import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { cpus, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { MAX_WASM_THREADS, nodeWorkerScript, WASM_THREADS_ENV, wasmThreadsWanted } from "../lib/kernels/wasm-threads";

describe("wasmThreadsWanted", () => {
  it("is one thread per core, at most the prespawned workers, unless the environment says", () => {
    expect(wasmThreadsWanted(undefined, 2)).toBe(2);
    expect(wasmThreadsWanted("", 1)).toBe(1);
    expect(wasmThreadsWanted(undefined, 64)).toBe(MAX_WASM_THREADS);
    expect(wasmThreadsWanted(" 1 ", 2)).toBe(1);
    expect(wasmThreadsWanted("4", 2)).toBe(4);
  });

  it("names the variable and the allowed values when it is wrong", () => {
    for (const bad of ["0", "two", "1.5", "9"]) {
      expect(() => wasmThreadsWanted(bad, 2)).toThrow(new RegExp(`${WASM_THREADS_ENV}="${bad}".*1 to ${MAX_WASM_THREADS}`));
    }
  });
});

describe("nodeWorkerScript", () => {
  const require = createRequire(resolve("package.json"));
  const pkg = join(require.resolve("@tensorflow/tfjs-backend-wasm/package.json"), "..");
  const { wasmWorkerContents } = require(join(pkg, "wasm-out/tfjs-backend-wasm-threaded-simd.worker.js")) as { wasmWorkerContents: string };

  it("points the installed package's worker at the main script file and keeps it one line", () => {
    const script = nodeWorkerScript(wasmWorkerContents, "/x/main.js");
    expect(script).toContain('e.data.urlOrBlob="/x/main.js";if(typeof e.data.urlOrBlob=="string")');
    expect(script).not.toContain("\n");
    expect(script.length).toBeGreaterThan(wasmWorkerContents.length);
  });

  it("refuses a worker script it does not know", () => {
    expect(() => nodeWorkerScript("postMessage(1)", "/x/main.js")).toThrow(/unknown layout/);
  });
});

describe("the wasm backend in a fresh process", () => {
  const probe = (env: Record<string, string>): { threads: number; details: string; sum: number } => {
    const script = join(mkdtempSync(join(tmpdir(), "wasm-threads-")), "probe.mts");
    writeFileSync(script, [
      `import { initBackend, tf } from ${JSON.stringify(resolve("lib/kernels/backend.ts"))};`,
      `const r = await initBackend("wasm");`,
      `const x = tf.tensor4d(Array.from({ length: 2 * 9 * 9 * 8 }, (_, i) => Math.sin(i)), [2, 9, 9, 8]);`,
      `const w = tf.tensor4d(Array.from({ length: 3 * 3 * 8 * 16 }, (_, i) => Math.cos(i)), [3, 3, 8, 16]);`,
      `const y = tf.conv2d(x, w, 2, "same");`,
      `console.log(JSON.stringify({ threads: Number(/(\\d+) threads?/.exec(r.details)?.[1]), details: r.details, sum: (await y.abs().sum().data())[0] }));`,
    ].join("\n"));
    // The process must exit by itself: the pthread workers may not keep it alive.
    const out = spawnSync("npx", ["tsx", script], { encoding: "utf8", cwd: resolve("."), timeout: 60_000, env: { ...process.env, ...env } });
    expect(out.status, out.stderr).toBe(0);
    return JSON.parse(out.stdout.trim().split("\n").at(-1) ?? "") as { threads: number; details: string; sum: number };
  };

  it("runs one thread per core, exits by itself, and computes what the single-threaded build computes", () => {
    const threaded = probe({});
    const single = probe({ [WASM_THREADS_ENV]: "1" });
    expect(threaded.threads).toBe(Math.min(cpus().length, MAX_WASM_THREADS));
    if (threaded.threads > 1) expect(threaded.details).toMatch(/threads \(threaded build\)/);
    expect(single.threads).toBe(1);
    expect(single.details).toMatch(/1 thread \(single-threaded: CELEBA_SAE_WASM_THREADS=1\)/);
    expect(threaded.sum).toBeCloseTo(single.sum, 3);
    expect(single.sum).toBeGreaterThan(1);
  });

  it("runs single-threaded, saying why, when the threaded build cannot be set up", () => {
    const script = join(mkdtempSync(join(tmpdir(), "wasm-threads-")), "probe.mts");
    // A temporary folder that is a file: the worker script cannot be written (set after tsx has started).
    writeFileSync(script, [
      `process.env.TMPDIR = ${JSON.stringify(script)};`,
      `const { initBackend, describeBackend } = await import(${JSON.stringify(resolve("lib/kernels/backend.ts"))});`,
      `console.log(describeBackend(await initBackend("wasm")));`,
    ].join("\n"));
    const out = spawnSync("npx", ["tsx", script], { encoding: "utf8", timeout: 60_000, env: { ...process.env, [WASM_THREADS_ENV]: "2" } });
    expect(out.status, out.stderr).toBe(0);
    expect(out.stdout).toMatch(/wasm \(XNNPACK, SIMD on, 1 thread \(single-threaded\)\)/);
    expect(out.stdout).toMatch(/WARNING: the threaded build could not be set up \(ENOTDIR.*\), so it runs single-threaded/);
  });

  it("a bad thread count is an error naming the variable", () => {
    const script = join(mkdtempSync(join(tmpdir(), "wasm-threads-")), "probe.mts");
    writeFileSync(script, `import { initBackend } from ${JSON.stringify(resolve("lib/kernels/backend.ts"))};\nawait initBackend("wasm");\n`);
    const out = spawnSync("npx", ["tsx", script], { encoding: "utf8", timeout: 60_000, env: { ...process.env, [WASM_THREADS_ENV]: "zero" } });
    expect(out.status).not.toBe(0);
    expect(out.stderr).toMatch(/CELEBA_SAE_WASM_THREADS="zero" is not a thread count/);
  });
});

