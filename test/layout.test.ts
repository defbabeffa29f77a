// The folder tree of lib/ is the pipeline: a module imports only from its own stage, earlier stages and the shared
// ground, never from a later stage, and no import cycle exists (tslab cannot load one). Read from the sources.

import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { projectRoot } from "../lib/util/project";

/** The shared ground (rank 0), then the stages in pipeline order. */
const RANK: Readonly<Record<string, number>> = {
  util: 0, formats: 0, kernels: 0, display: 0, run: 0,
  data: 1, model: 2, embed: 3, sae: 4, inspect: 5, "blind-test": 6, publish: 7,
};
/** Within the shared ground, the same rule between its folders. */
const SHARED_RANK: Readonly<Record<string, number>> = { util: 0, formats: 1, kernels: 2, display: 3, run: 4 };

/** The workspace folder beside the repository, which users do not have (spelt in two parts so this file does not cite it). */
const OUTSIDE = ["..", "shared"].join("/");
const lib = join(projectRoot(), "lib");
const modules = readdirSync(lib, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".ts")).map((f) => f.slice(0, -3));

function importsOf(module: string): string[] {
  const source = readFileSync(join(lib, `${module}.ts`), "utf8");
  const found: string[] = [];
  for (const m of source.matchAll(/(?:from|import)\s*\(?\s*"(\.[^"]+)"/g)) {
    found.push(relative(lib, resolve(dirname(join(lib, module)), m[1])).replace(/\.(ts|js)$/, ""));
  }
  return found;
}

const folderOf = (module: string): string => module.split("/")[0];

describe("lib/ layout", () => {
  const graph = new Map(modules.map((m) => [m, importsOf(m)]));

  it("every module lives in a stage or shared-ground folder and every relative import resolves", () => {
    for (const [module, imports] of graph) {
      expect(RANK[folderOf(module)], `${module} is not in a known folder`).toBeDefined();
      for (const target of imports) expect(graph.has(target), `${module} imports ${target}, which does not exist`).toBe(true);
    }
  });

  it("imports run one way: shared ground ← data ← model ← embed ← sae ← inspect ← blind-test ← publish", () => {
    const against: string[] = [];
    for (const [module, imports] of graph) {
      const from = folderOf(module);
      for (const target of imports) {
        const to = folderOf(target);
        if (RANK[to] > RANK[from]) against.push(`${module} → ${target}`);
        else if (RANK[from] === 0 && RANK[to] === 0 && SHARED_RANK[to] > SHARED_RANK[from]) against.push(`${module} → ${target}`);
      }
    }
    expect(against).toEqual([]);
  });

  it("has no import cycle", () => {
    const state = new Map<string, "open" | "done">();
    const cycles: string[] = [];
    const visit = (m: string, path: string[]): void => {
      if (state.get(m) === "done") return;
      if (state.get(m) === "open") {
        cycles.push([...path.slice(path.indexOf(m)), m].join(" → "));
        return;
      }
      state.set(m, "open");
      for (const t of graph.get(m) ?? []) visit(t, [...path, m]);
      state.set(m, "done");
    };
    for (const m of graph.keys()) visit(m, []);
    expect(cycles).toEqual([]);
  });

  it("no source cites a path outside the repository", () => {
    const outside = modules.filter((m) => readFileSync(join(lib, `${m}.ts`), "utf8").includes(OUTSIDE));
    expect(outside).toEqual([]);
    for (const folder of ["scripts", "bench"]) {
      const dir = join(projectRoot(), folder);
      const cited = readdirSync(dir).filter((f) => /\.(ts|md|py)$/.test(f) && readFileSync(join(dir, f), "utf8").includes(OUTSIDE));
      expect(cited, folder).toEqual([]);
    }
  });
});
