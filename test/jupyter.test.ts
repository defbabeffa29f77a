import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { findJupyterPython, jupyterEnv, kernelSpec, KERNEL_NAME, pythonCandidates, writeKernelSpec } from "../lib/run/jupyter";
import { listNotebooks, parseRunnerArgs, selectNotebooks } from "../lib/run/notebook-runner";
import { projectRoot } from "../lib/util/project";
import { checkNodePackages, missingTestPackages } from "../lib/run/setup";

describe("kernel spec", () => {
  it("starts the project's wrapper with this Node by absolute path, so PATH does not matter", () => {
    const spec = kernelSpec("/proj", "/opt/node/bin/node");
    expect(spec.argv).toEqual(["/opt/node/bin/node", "/proj/scripts/tslab-kernel.cjs", "{connection_file}"]);
    expect(spec.language).toBe("typescript");
  });

  it("is written under .jupyter/kernels and found first through JUPYTER_PATH", () => {
    const dir = writeKernelSpec();
    expect(dir).toBe(join(projectRoot(), ".jupyter", "kernels", KERNEL_NAME));
    const spec = JSON.parse(readFileSync(join(dir, "kernel.json"), "utf8")) as { argv: string[] };
    expect(spec.argv[0]).toBe(process.execPath);
    expect(existsSync(spec.argv[1])).toBe(true);
    expect(jupyterEnv({ JUPYTER_PATH: "/other" }).JUPYTER_PATH).toBe(`${join(projectRoot(), ".jupyter")}:/other`);
    expect(jupyterEnv({}).JUPYTER_PATH).toBe(join(projectRoot(), ".jupyter"));
  });

  it("looks for Python in CELEBA_SAE_PYTHON first, then Debian's", () => {
    expect(pythonCandidates({ CELEBA_SAE_PYTHON: "/venv/bin/python" })).toEqual(["/venv/bin/python", "/usr/bin/python3", "python3"]);
  });

  it("finds every npm package the notebooks import, and what the tests need (npm test's pretest installs it)", () => {
    expect(() => checkNodePackages()).not.toThrow();
    const python = findJupyterPython();
    expect(python).toBeDefined();
    expect(missingTestPackages(python as string)).toEqual([]);
  });
});

describe("runner arguments", () => {
  it("parses runs, single notebooks and overrides", () => {
    expect(parseRunnerArgs(["--run", "x", "--only", "01", "--set", "imageSize=64", "--set=limit=10"])).toEqual({
      run: "x", only: ["01"], set: ["imageSize=64", "limit=10"], cellTimeout: 0, execute: true,
    });
    expect(parseRunnerArgs([]).run).toBe("dev");
    expect(() => parseRunnerArgs(["--run"])).toThrow(/--run needs a value/);
    expect(() => parseRunnerArgs(["--bogus"])).toThrow(/unknown argument "--bogus"[\s\S]*usage/);
  });

  it("selects notebooks by name or number prefix, in series order", () => {
    const all = ["/n/01-download.ipynb", "/n/02-finetune.ipynb", "/n/03-embed.ipynb"];
    expect(selectNotebooks(all, [])).toEqual(all);
    expect(selectNotebooks(all, ["03", "01-download"])).toEqual([all[0], all[2]]);
    expect(() => selectNotebooks(all, ["07"])).toThrow(/--only 07: no such notebook. Notebooks: 01-download, 02-finetune, 03-embed/);
  });

  it("lists the project's notebooks in order", () => {
    const names = listNotebooks().map((p) => p.split("/").pop());
    expect(names[0]).toBe("01-download.ipynb");
    expect([...names].sort()).toEqual(names);
  });
});
