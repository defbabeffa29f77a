import { existsSync, readFileSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { applyOverrides, datasetFolder, defaultConfig, loadRunConfig, parseFeatureList, saveRunConfig, validateConfig } from "../lib/run/config";
import { runDir, runFiles } from "../lib/run/files";

const run = `test-config-${process.pid}`;
afterAll(() => rmSync(runDir(run), { recursive: true, force: true }));

describe("run config", () => {
  it("defaults reproduce the post's image size and resize", () => {
    const c = defaultConfig("x");
    expect(c.imageSize).toBe(224);
    expect(c.resize).toBe("post");
    expect(c.limit).toBeNull();
    expect(validateConfig(c)).toEqual(c);
  });

  it("applies typed overrides with dotted keys", () => {
    const c = applyOverrides(defaultConfig("x"), ["imageSize=64", "synthetic.count=300", "limit=100", "dataset=synthetic", "imageCache=false"]);
    expect(c.imageSize).toBe(64);
    expect(c.synthetic.count).toBe(300);
    expect(c.synthetic.seed).toBe(1);
    expect(c.limit).toBe(100);
    expect(c.dataset).toBe("synthetic");
    expect(c.imageCache).toBe(false);
    expect(applyOverrides(c, ["limit=all"]).limit).toBeNull();
  });

  it("rejects unknown keys, wrong types and bad values with the key named", () => {
    expect(() => applyOverrides(defaultConfig(), ["imgSize=64"])).toThrow(/imgSize: no such setting.*imageSize/);
    expect(() => applyOverrides(defaultConfig(), ["imageSize=big"])).toThrow(/imageSize takes a whole number from 16 to 1024/);
    expect(() => applyOverrides(defaultConfig(), ["imageSize=8"])).toThrow(/imageSize takes a whole number from 16 to 1024/);
    expect(() => applyOverrides(defaultConfig(), ["resize=stretch"])).toThrow(/resize takes one of post, recommended/);
    expect(() => applyOverrides(defaultConfig(), ["backend=gpu"])).toThrow(/backend takes one of auto, tensorflow-gpu, tensorflow, wasm, cpu/);
    expect(() => applyOverrides(defaultConfig(), ["imageCache=maybe"])).toThrow(/imageCache takes true, false or auto/);
    expect(() => applyOverrides(defaultConfig(), ["sae.l1=-1"])).toThrow(/sae.l1 takes a number ≥ 0 \(or null\)/);
    expect(() => applyOverrides(defaultConfig(), ["inspect.features=a-b"])).toThrow(/feature numbers like "0-15"/);
    expect(() => applyOverrides(defaultConfig(), ["imageSize"])).toThrow(/key=value/);
    expect(() => applyOverrides(defaultConfig(), ["synthetic.identities=10", "synthetic.count=5"])).toThrow(/cannot exceed/);
    expect(() => applyOverrides(defaultConfig(), ["run=other"])).toThrow(/--run/);
    expect(() => validateConfig({ ...defaultConfig(), sae: { ...defaultConfig().sae, extra: 1 } })).toThrow(/no setting "sae.extra"/);
    expect(() => validateConfig({ ...defaultConfig(), finetune: 3 })).toThrow(/"finetune" must be an object/);
  });

  it("refuses feature lists beyond the dictionary (or the 512 dense dimensions) when the config is made, naming the valid range", () => {
    expect(() => applyOverrides(defaultConfig(), ["blindTest.features=0-1000000000"])).toThrow(
      /blindTest\.features = "0-1000000000" names feature 1000000000, but features run from 0 to 511 \(sae\.dictionarySize is 512\)/,
    );
    expect(() => applyOverrides(defaultConfig(), ["sae.dictionarySize=16"])).toThrow(/blindTest\.features = "16-31" names feature 31, but features run from 0 to 15/);
    expect(applyOverrides(defaultConfig(), ["sae.dictionarySize=16", "blindTest.features=8-15"]).blindTest.features).toBe("8-15");
    expect(() => applyOverrides(defaultConfig(), ["sae.dictionarySize=4096", "inspect.features=600"])).toThrow(
      /inspect\.features = "600" names feature 600, but features run from 0 to 511 \(the embedding has 512 dense dimensions\)/,
    );
    expect(() => validateConfig({ ...defaultConfig(), inspect: { ...defaultConfig().inspect, features: "9-3" } })).toThrow(/inspect\.features.*runs backwards/);
  });

  it("refuses seeds outside 0 … 2³² − 1 (they wrapped onto other seeds) and a TopK k above the dictionary size", () => {
    for (const key of ["seed", "blindTest.seed", "synthetic.seed"]) {
      expect(() => applyOverrides(defaultConfig(), [`${key}=4294967296`])).toThrow(new RegExp(`${key.replace(".", "\\.")} takes a whole number from 0 to 4294967295`));
      expect(() => applyOverrides(defaultConfig(), [`${key}=-1`])).toThrow(/from 0 to 4294967295/);
    }
    expect(applyOverrides(defaultConfig(), ["seed=4294967295"]).seed).toBe(4294967295);
    expect(() => applyOverrides(defaultConfig(), ["sae.architecture=topk", "sae.k=600"])).toThrow(/sae\.k \(600\) cannot exceed sae\.dictionarySize \(512\)/);
    expect(applyOverrides(defaultConfig(), ["sae.architecture=topk", "sae.k=512"]).sae.k).toBe(512);
  });

  it("fills settings missing from an older config.json with the defaults", () => {
    const c = validateConfig({ run: "old", imageSize: 64 });
    expect(c.imageSize).toBe(64);
    expect(c.sae).toEqual(defaultConfig().sae);
    expect(applyOverrides(c, ["sae.l1=0.3", "sae.epochs=null", "finetune.maxSteps=5"]).sae.l1).toBe(0.3);
  });

  it("reads feature lists", () => {
    expect(parseFeatureList("0-3,7")).toEqual([0, 1, 2, 3, 7]);
    expect(parseFeatureList("16-31")).toHaveLength(16);
    expect(() => parseFeatureList("5-2")).toThrow(/runs backwards/);
  });

  it("saves atomically and loads back; a missing config is created from the defaults", () => {
    const created = loadRunConfig(run);
    expect(created).toEqual(defaultConfig(run));
    expect(existsSync(runFiles(run).config)).toBe(true);
    saveRunConfig(applyOverrides(created, ["imageSize=96"]));
    expect(loadRunConfig(run).imageSize).toBe(96);
    expect(JSON.parse(readFileSync(runFiles(run).config, "utf8")).imageSize).toBe(96);
  });

  it("names the file when config.json is broken", () => {
    mkdirSync(runDir(run), { recursive: true });
    writeFileSync(runFiles(run).config, "{ not json");
    expect(() => loadRunConfig(run)).toThrow(new RegExp(`${run}/config.json is not valid JSON`));
    writeFileSync(runFiles(run).config, JSON.stringify({ imageSize: -3 }));
    expect(() => loadRunConfig(run)).toThrow(/config.json: config "imageSize" must be a whole number from 16 to 1024, got -3/);
  });

  it("places datasets under data/ by their parameters, and user paths relative to the project", () => {
    const c = defaultConfig();
    expect(datasetFolder(c, "synthetic")).toMatch(/data\/synthetic-faces-seed1-n5000-id250$/);
    expect(datasetFolder(c, "celeba")).toMatch(/data\/celeba$/);
    expect(datasetFolder({ ...c, dataset: "/abs/faces" }, "path")).toBe("/abs/faces");
    expect(datasetFolder({ ...c, dataset: "faces" }, "path")).toMatch(/\/faces$/);
  });
});
