// ratings.jsonl under stress: one writer at a time (blind-test/ratings.lock), and a strict reader (a grid rated twice
// counts once, a record without its newline is kept, a torn last record is dropped and never glued to the next).

import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import sharp from "sharp";
import { afterAll, describe, expect, it } from "vitest";
import { blindTestPaths, BlindSession, type FeatureKind } from "../lib/blind-test/session";
import { readLockOwner, type Rating, type RatingsLockOwner } from "../lib/blind-test/ratings-file";
import { projectRoot } from "../lib/util/project";
import { startRatingServer } from "../lib/blind-test/rating-server";

const scratch = mkdtempSync(join(tmpdir(), "blind-ratings-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const rowsOf = (kind: FeatureKind, feature: number): number[] => [feature, kind === "dense" ? 0 : 1];
const grid = (rows: readonly number[]): Promise<Buffer> =>
  sharp({ create: { width: 8, height: 8, channels: 3, background: { r: rows[1] * 200, g: rows[0], b: 9 } } }).png().toBuffer();

let runs = 0;
/** A new session of `features.length * 2` grids in its own run folder. */
async function newSession(features: readonly number[] = [1, 2]): Promise<BlindSession> {
  return BlindSession.open(join(scratch, `run-${runs++}`), { features, seed: 3, rowsOf, renderGrid: grid });
}

const line = (id: string, rating: number): string => JSON.stringify({ id, rating, rater: "test", at: "2026-01-01T00:00:00.000Z" });
const ratingsText = (session: BlindSession): string => readFileSync(session.paths.ratings, "utf8");
const idsIn = (ratings: readonly Rating[]): string[] => ratings.map((r) => `${r.id}:${r.rating}`);

/** A lock file as another process would have left it. */
function writeLock(session: BlindSession, owner: Partial<RatingsLockOwner>): void {
  const full: RatingsLockOwner = { pid: 1, hostname: hostname(), bootId: null, startedAt: "2026-01-01T00:00:00.000Z", holder: "someone", nonce: "n0", ...owner };
  writeFileSync(session.paths.lock, JSON.stringify(full));
}

/** The pid of a process that has ended. */
function deadPid(): number {
  const child = spawnSync("true");
  return child.pid as number;
}

describe("one writer at a time", () => {
  it("refuses a second session of the same run while the first writes, naming the holder; close() lets the next one in", async () => {
    const first = await newSession();
    const [a, b] = first.file.order;
    first.rate(a, 3, "test");
    expect(first.writing).toBe(true);
    const owner = readLockOwner(first.paths.lock);
    expect(owner).toMatchObject({ pid: process.pid, hostname: hostname(), holder: expect.stringMatching(/^a blind-test session in /) });
    expect(Date.parse(owner?.startedAt ?? "")).toBeGreaterThan(0);

    const second = BlindSession.resume(first.runFolder);
    expect(() => second.rate(b, 5, "test")).toThrow(/ratings\.lock: the ratings of this session are being written by a blind-test session in .* \(pid \d+ on .*, since .*\)\..*session\.close\(\).*delete .*ratings\.lock/);
    expect(() => second.undo()).toThrow(/being written by/);
    expect(ratingsText(first).split("\n")).toHaveLength(2);

    first.close();
    expect(existsSync(first.paths.lock)).toBe(false);
    // The second session re-reads the file when it takes the lock: it sees the first one's rating.
    expect(() => second.rate(a, 6, "test")).toThrow(/already rated/);
    second.rate(b, 5, "test");
    expect(idsIn(BlindSession.resume(first.runFolder).ratings())).toEqual([`${a}:3`, `${b}:5`]);
    second.close();
  });

  it("refuses a second rating server for the same run, and releases the lock when the server closes", async () => {
    const session = await newSession();
    const server = await startRatingServer(session);
    try {
      expect(readLockOwner(session.paths.lock)?.holder).toBe(`the rating page server at http://127.0.0.1:${server.port}/`);
      await expect(startRatingServer(BlindSession.resume(session.runFolder))).rejects.toThrow(
        new RegExp(`being written by the rating page server at http://127\\.0\\.0\\.1:${server.port}/ \\(pid ${process.pid}`),
      );
      expect(() => BlindSession.resume(session.runFolder).rate(session.file.order[0], 2, "test")).toThrow(/being written by the rating page server/);
    } finally {
      await server.close();
    }
    expect(existsSync(session.paths.lock)).toBe(false);
    const next = await startRatingServer(BlindSession.resume(session.runFolder));
    await next.close();
  });

  it("refuses a lock held by another live process, takes over a stale one with a warning", async () => {
    const session = await newSession();
    const sleeper = spawn("sleep", ["30"]);
    try {
      writeLock(session, { pid: sleeper.pid, holder: "the rating page server at http://127.0.0.1:1234/" });
      expect(() => session.rate(session.file.order[0], 4, "test")).toThrow(
        new RegExp(`being written by the rating page server at http://127\\.0\\.0\\.1:1234/ \\(pid ${sleeper.pid} on ${hostname()}, since 2026-01-01T00:00:00\\.000Z\\)`),
      );
    } finally {
      sleeper.kill("SIGKILL");
    }
    await new Promise<void>((resolve) => (sleeper.exitCode !== null || sleeper.signalCode !== null ? resolve() : sleeper.once("exit", () => resolve())));
    const dead = deadPid();
    writeLock(session, { pid: dead, holder: "a crashed kernel" });
    session.rate(session.file.order[0], 4, "test");
    expect(session.warnings).toContainEqual(expect.stringMatching(new RegExp(`took over the lock left by a crashed kernel \\(pid ${dead} .*process ${dead} is no longer running`)));
    expect(readLockOwner(session.paths.lock)?.pid).toBe(process.pid);
    session.close();

    // A lock from before a restart of this machine is stale whatever its pid (here: this very process).
    writeLock(session, { pid: process.pid, bootId: "another-boot", holder: "a kernel before the restart" });
    const bootId = existsSync("/proc/sys/kernel/random/boot_id");
    if (bootId) {
      session.rate(session.file.order[1], 4, "test");
      expect(session.warnings).toContainEqual(expect.stringMatching(/took over the lock left by a kernel before the restart .*this machine has restarted since/));
      session.close();
    }
    // Another machine's lock cannot be judged: refused, saying so.
    writeLock(session, { pid: dead, hostname: "elsewhere.example" });
    expect(() => session.undo()).toThrow(/held from another machine/);
    writeFileSync(session.paths.lock, "");
    expect(() => session.undo()).toThrow(/ratings\.lock does not say who holds it .*delete it/);
    rmSync(session.paths.lock);
  });

  it("releases the lock when the process exits", async () => {
    const session = await newSession();
    const script = join(scratch, "rate-and-exit.mts");
    writeFileSync(
      script,
      `import { existsSync } from "node:fs";\n` +
        `import { BlindSession } from ${JSON.stringify(pathToFileURL(join(projectRoot(), "lib", "blind-test", "session.ts")).href)};\n` +
        `const s = BlindSession.resume(${JSON.stringify(session.runFolder)});\n` +
        `s.rate(s.file.order[0], 7, "child");\n` +
        `console.log(JSON.stringify({ locked: existsSync(s.paths.lock) }));\n`,
    );
    const child = spawnSync(process.execPath, ["--import", "tsx", script], { cwd: projectRoot(), encoding: "utf8" });
    expect(child.status, child.stderr).toBe(0);
    expect(child.stdout.trim()).toBe(JSON.stringify({ locked: true }));
    expect(existsSync(session.paths.lock)).toBe(false);
    session.rate(session.file.order[1], 1, "test");
    expect(idsIn(session.ratings())).toEqual([`${session.file.order[0]}:7`, `${session.file.order[1]}:1`]);
    session.close();
  });
});

describe("reading ratings.jsonl strictly", () => {
  it("counts a grid rated twice once (the later record), says so, and unblinds one row per grid", async () => {
    const session = await newSession([5]);
    const [a, b] = session.file.order;
    writeFileSync(session.paths.ratings, [line(a, 3), line(b, 5), line(a, 6)].join("\n") + "\n");
    const resumed = BlindSession.resume(session.runFolder);
    expect(resumed.rated).toBe(2);
    expect(resumed.done).toBe(true);
    expect(idsIn(resumed.ratings())).toEqual([`${b}:5`, `${a}:6`]);
    expect(resumed.warnings).toEqual([expect.stringMatching(new RegExp(`ratings\\.jsonl: grid ${a} is rated more than once \\(line 1: 3, line 3: 6\\); only the later rating counts`))]);
    const rows = resumed.unblind();
    expect(rows).toHaveLength(2);
    expect(rows.map((r) => r.rating).sort()).toEqual([5, 6]);
    // Undo takes back the last line: the earlier record of that grid is what the file says again.
    expect(resumed.undo()).toBe(a);
    expect(idsIn(resumed.ratings())).toEqual([`${a}:3`, `${b}:5`]);
    resumed.close();
  });

  it("keeps a complete last record without its newline, and adds the newline before the next rating", async () => {
    const session = await newSession();
    const [a, b, c] = session.file.order;
    writeFileSync(session.paths.ratings, `${line(a, 2)}\n${line(b, 4)}`);
    const resumed = BlindSession.resume(session.runFolder);
    expect(resumed.rated).toBe(2);
    expect(resumed.warnings).toEqual([expect.stringMatching(/the last record \(line 2\) has no newline .* it is kept/)]);
    resumed.rate(c, 6, "test");
    const lines = ratingsText(resumed).split("\n");
    expect(lines.slice(0, 2)).toEqual([line(a, 2), line(b, 4)]);
    expect(JSON.parse(lines[2])).toMatchObject({ id: c, rating: 6 });
    expect(lines[3]).toBe("");
    // Read again from disk: nothing lost, nothing glued.
    const again = BlindSession.resume(session.runFolder);
    expect(idsIn(again.ratings())).toEqual([`${a}:2`, `${b}:4`, `${c}:6`]);
    expect(again.warnings).toEqual([]);
    expect(resumed.undo()).toBe(c);
    expect(ratingsText(resumed)).toBe(`${line(a, 2)}\n${line(b, 4)}\n`);
    resumed.close();
  });

  it("drops a torn last record with a warning, leaves the file alone when only reading, cuts it before the next rating", async () => {
    const session = await newSession();
    const [a, b] = session.file.order;
    const torn = `${line(a, 2)}\n{"id":"${b}","rat`;
    writeFileSync(session.paths.ratings, torn);
    const reader = BlindSession.resume(session.runFolder);
    expect(reader.rated).toBe(1);
    expect(reader.next()).toBe(b);
    expect(reader.warnings).toEqual([expect.stringMatching(/the last record \(line 2\) is cut short .* dropped/)]);
    // A reader does not touch the file (the torn line could be a live writer's record in the middle of its write).
    expect(ratingsText(reader)).toBe(torn);
    reader.rate(b, 5, "test");
    const lines = ratingsText(reader).split("\n");
    expect(lines[0]).toBe(line(a, 2));
    expect(JSON.parse(lines[1])).toMatchObject({ id: b, rating: 5 });
    expect(lines).toHaveLength(3);
    const again = BlindSession.resume(session.runFolder);
    expect(idsIn(again.ratings())).toEqual([`${a}:2`, `${b}:5`]);
    expect(reader.undo()).toBe(b);
    expect(reader.undo()).toBe(a);
    expect(reader.undo()).toBeUndefined();
    expect(ratingsText(reader)).toBe("");
    reader.close();
  });

  it("refuses a broken line that is not the last, a null record and a record of no grid, naming the line", async () => {
    const session = await newSession();
    const [a, b] = session.file.order;
    const resume = (): BlindSession => BlindSession.resume(session.runFolder);
    writeFileSync(session.paths.ratings, `${line(a, 2)}{"id":"${b}"\n${line(b, 3)}\n`);
    expect(resume).toThrow(/ratings\.jsonl: line 1 is not JSON .*delete that line/);
    writeFileSync(session.paths.ratings, `null\n`);
    expect(resume).toThrow(/line 1 is not a rating record/);
    writeFileSync(session.paths.ratings, `${line(a, 2)}\n${line("000000000000", 3)}\n`);
    expect(resume).toThrow(/line 2 names no grid of this session/);
    writeFileSync(session.paths.ratings, `${line(a, 9)}`);
    expect(resume).toThrow(/line 1 has no rating 1–7/);
    expect(blindTestPaths(session.runFolder).lock).toBe(join(session.runFolder, "blind-test", "ratings.lock"));
  });
});
