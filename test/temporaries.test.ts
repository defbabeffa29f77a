// What killed writers leave (lib/util/temporaries): removed when their process is gone, kept while it runs.

import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { removeDeadTemporariesBelow, removeWhole } from "../lib/util/temporaries";

const scratch = mkdtempSync(join(tmpdir(), "temporaries-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
const dead = (): number => spawnSync("true").pid as number;

describe("temporaries", () => {
  it("removeDeadTemporariesBelow removes a dead writer's files and folders at any depth, and nothing else", () => {
    const run = join(scratch, "run");
    mkdirSync(join(run, "blind-test", "images"), { recursive: true });
    const pid = dead();
    const leftovers = [`sae.json.tmp-${pid}-0badc0de`, `blind-test/images/abc.png.tmp-${pid}-12345678`, `sae-checkpoint.tmp-${pid}`];
    for (const f of leftovers.slice(0, 2)) writeFileSync(join(run, f), "half");
    mkdirSync(join(run, leftovers[2]));
    writeFileSync(join(run, leftovers[2], "sae.safetensors"), "half");
    const kept = ["sae.json", `config.json.tmp-${process.pid}-0badc0de`, "notes.tmp-text"];
    for (const f of kept) writeFileSync(join(run, f), "kept");
    expect(removeDeadTemporariesBelow(run).sort()).toEqual([...leftovers].sort());
    expect(readdirSync(run).sort()).toEqual(["blind-test", ...kept].sort());
    expect(readdirSync(join(run, "blind-test", "images"))).toEqual([]);
    expect(removeDeadTemporariesBelow(join(scratch, "no-such-run"))).toEqual([]);
  });

  it("removeWhole leaves the folder whole or gone, never half deleted", () => {
    const parts = join(scratch, "face_vectors.parts");
    mkdirSync(parts);
    writeFileSync(join(parts, "key.json"), "{}");
    removeWhole(parts);
    expect(existsSync(parts)).toBe(false);
    expect(readdirSync(scratch).filter((n) => n.startsWith("face_vectors.parts"))).toEqual([]);
    removeWhole(parts); // already gone: nothing to do
  });
});
