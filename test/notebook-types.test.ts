// Every notebook's code cells, in order, type-check against lib/ as one module (strict, as tslab compiles them):
// a renamed export or a changed signature fails here in seconds instead of in a notebook run minutes later.

import { readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import ts from "typescript";
import { afterAll, describe, expect, it } from "vitest";
import { projectRoot } from "../lib/util/project";

const root = projectRoot();
const notebooks = readdirSync(join(root, "notebooks")).filter((f) => f.endsWith(".ipynb")).sort();
// Cells import "./lib/…" relative to the project root (the kernel's working folder): the checked files sit there.
const checked = notebooks.map((nb) => join(root, `.notebook-types-${process.pid}-${nb.replace(/\.ipynb$/, "")}.ts`));

afterAll(() => {
  for (const file of checked) rmSync(file, { force: true });
});

function cellsAsModule(path: string): string {
  const nb = JSON.parse(readFileSync(path, "utf8")) as { cells: { cell_type: string; source: string | string[] }[] };
  const code = nb.cells.filter((c) => c.cell_type === "code").map((c) => (Array.isArray(c.source) ? c.source.join("") : c.source));
  return ["export {};", ...code].join("\n\n");
}

describe("notebook cells", () => {
  it("type-check against lib/ (strict)", () => {
    notebooks.forEach((nb, i) => writeFileSync(checked[i], cellsAsModule(join(root, "notebooks", nb))));
    const program = ts.createProgram(checked, {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.ESNext,
      moduleResolution: ts.ModuleResolutionKind.Bundler,
      strict: true,
      esModuleInterop: true,
      skipLibCheck: true,
      noEmit: true,
      types: ["node"],
    });
    const problems = ts
      .getPreEmitDiagnostics(program)
      .filter((d) => d.file !== undefined && checked.includes(d.file.fileName))
      .map((d) => {
        const notebook = notebooks[checked.indexOf(d.file!.fileName)];
        return `${notebook}: ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`;
      });
    expect(problems).toEqual([]);
  }, 120_000);
});
