// lib/util/atomic-write: the target is either its old content or its new one, never half of it, and no temporary
// file remains after a write succeeds or fails (only after a crash, named so it can be recognised).

import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isTemporaryPath, openAtomic, temporaryPathFor, writeFileAtomic, writeFileAtomicSync } from "../lib/util/atomic-write";
import { projectRoot } from "../lib/util/project";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "atomic-write-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const names = (): string[] => readdirSync(dir).sort();

describe("writing a whole file", () => {
  it("writes text and bytes, replaces the old content, creates the folder, leaves no temporary file", async () => {
    const path = join(dir, "a.json");
    writeFileAtomicSync(path, "old");
    writeFileAtomicSync(path, "néw\n");
    expect(readFileSync(path, "utf8")).toBe("néw\n");
    await writeFileAtomic(path, Uint8Array.of(1, 2, 3));
    expect([...readFileSync(path)]).toEqual([1, 2, 3]);
    await writeFileAtomic(join(dir, "sub", "deeper", "b.txt"), "b", { durable: false });
    writeFileAtomicSync(join(dir, "sub", "c.txt"), "c", { durable: false });
    expect(readFileSync(join(dir, "sub", "deeper", "b.txt"), "utf8")).toBe("b");
    expect(names()).toEqual(["a.json", "sub"]);
    expect(readdirSync(join(dir, "sub")).sort()).toEqual(["c.txt", "deeper"]);
  });

  it("a failed write or rename leaves the old content and no temporary file", async () => {
    const path = join(dir, "a.txt");
    writeFileSync(path, "old");
    // Not text nor bytes: the write fails after the temporary file was opened.
    expect(() => writeFileAtomicSync(path, 42 as unknown as string)).toThrow();
    await expect(writeFileAtomic(path, 42 as unknown as string)).rejects.toThrow();
    expect(readFileSync(path, "utf8")).toBe("old");
    // A folder in the target's place: the rename fails.
    const blocked = join(dir, "blocked");
    mkdirSync(join(blocked, "inside"), { recursive: true });
    expect(() => writeFileAtomicSync(blocked, "x")).toThrow();
    await expect(writeFileAtomic(blocked, "x")).rejects.toThrow();
    expect(names()).toEqual(["a.txt", "blocked"]);
  });
});

describe("a streaming write", () => {
  it("appears only on commit; abort keeps the old content; both are safe to repeat", async () => {
    const path = join(dir, "rows.bin");
    writeFileSync(path, "old");
    const file = await openAtomic(path);
    await file.handle.write(Uint8Array.of(1, 2));
    await file.handle.write(Uint8Array.of(3));
    expect(readFileSync(path, "utf8")).toBe("old");
    expect(isTemporaryPath(file.temp)).toBe(true);
    await file.commit();
    expect([...readFileSync(path)]).toEqual([1, 2, 3]);
    await file.abort();
    await expect(file.commit()).rejects.toThrow(/already committed or aborted/);

    const dropped = await openAtomic(path);
    await dropped.handle.write(Uint8Array.of(9));
    await dropped.abort();
    await dropped.abort();
    expect([...readFileSync(path)]).toEqual([1, 2, 3]);
    expect(names()).toEqual(["rows.bin"]);
  });

  it("a crash between the write and the rename leaves the old content (and a recognisable temporary file)", () => {
    const path = join(dir, "state.json");
    writeFileSync(path, '{"step": 1}');
    const script = join(dir, "crash.mts");
    writeFileSync(
      script,
      [
        `import { openAtomic } from ${JSON.stringify(join(projectRoot(), "lib", "util", "atomic-write.ts"))};`,
        `const file = await openAtomic(${JSON.stringify(path)});`,
        `await file.handle.writeFile('{"step": 2}');`,
        `await file.handle.sync();`,
        `process.kill(process.pid, "SIGKILL");`,
      ].join("\n"),
    );
    const run = spawnSync("npx", ["tsx", script], { cwd: projectRoot(), encoding: "utf8", timeout: 60_000 });
    expect(run.signal ?? run.status, run.stderr).not.toBe(0);
    expect(readFileSync(path, "utf8")).toBe('{"step": 1}');
    const left = names().filter((n) => n !== "crash.mts" && n !== "state.json");
    expect(left).toHaveLength(1);
    expect(isTemporaryPath(left[0])).toBe(true);
    expect(readFileSync(join(dir, left[0]), "utf8")).toBe('{"step": 2}');
  });
});

it("temporary names are beside the target, unique, and recognised", () => {
  const a = temporaryPathFor("/x/y.npy");
  expect(a.startsWith(`/x/y.npy.tmp-${process.pid}-`)).toBe(true);
  expect(a).not.toBe(temporaryPathFor("/x/y.npy"));
  expect(isTemporaryPath(a)).toBe(true);
  expect(isTemporaryPath("/x/y.npy")).toBe(false);
  expect(isTemporaryPath("/x/y.npy.tmp")).toBe(false);
});
