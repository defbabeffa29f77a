// ratings.jsonl, the blind test's ratings (lib/blind-test/session): its one writer and its strict reader.
//
// One writer at a time: blind-test/ratings.lock (created with O_EXCL) holds the writer's pid, host, start and what it
// is; a second writer is refused with a message naming the holder; a lock whose process is gone (or from before a
// restart) is taken over with a warning (RatingsLock).
// Strict reading (readRatingsFile): a grid rated twice counts once — the later record wins, and a warning says so; a
// complete last record without its newline is kept; a torn last record (a crash mid-write) is dropped with a warning;
// anything else that is not a rating of this session is an error naming the line. Tested in
// test/blind-test-ratings.test.ts.

import { randomBytes } from "node:crypto";

import { closeSync, existsSync, fsyncSync, linkSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { hostname } from "node:os";

import { dirname } from "node:path";

/** One rating as stored. */
export interface Rating {
  readonly id: string;
  readonly rating: number;
  readonly rater: string;
  readonly at: string;
}

export const RATING_MIN = 1;
export const RATING_MAX = 7;

/** Is this a rating the scale allows? */
export function isValidRating(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= RATING_MIN && value <= RATING_MAX;
}

/** Writes all of `bytes` at the end of `fd` (writeSync may write less than asked). */
export function writeAll(fd: number, bytes: Buffer): void {
  for (let done = 0; done < bytes.length; ) done += writeSync(fd, bytes, done, bytes.length - done);
}

// ---- the single-writer lock of ratings.jsonl ----

/** What blind-test/ratings.lock holds: the one process, and what in it, that writes ratings.jsonl now. */
export interface RatingsLockOwner {
  readonly pid: number;
  readonly hostname: string;
  /** Linux's boot id (a lock from before a restart is stale whatever its pid says); null elsewhere. */
  readonly bootId: string | null;
  readonly startedAt: string;
  /** What holds it, e.g. "the rating page server at http://127.0.0.1:PORT/". */
  readonly holder: string;
  /** Tells this holder's lock from a later one (of the same process, too). */
  readonly nonce: string;
}

function currentBootId(): string | null {
  try {
    return readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim() || null;
  } catch {
    return null;
  }
}

function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Why a lock's owner is certainly gone (its process ended on this machine, or the machine restarted); undefined when it may still run. */
export function staleLockReason(owner: RatingsLockOwner): string | undefined {
  if (owner.hostname !== hostname()) return undefined;
  const boot = currentBootId();
  if (owner.bootId !== null && boot !== null && owner.bootId !== boot) return "this machine has restarted since";
  if (!isProcessAlive(owner.pid)) return `process ${owner.pid} is no longer running`;
  return undefined;
}

function describeOwner(owner: RatingsLockOwner): string {
  return `${owner.holder} (pid ${owner.pid} on ${owner.hostname}, since ${owner.startedAt})`;
}

function isLockOwner(value: unknown): value is RatingsLockOwner {
  if (typeof value !== "object" || value === null) return false;
  const o = value as Record<string, unknown>;
  return (
    Number.isInteger(o.pid) && typeof o.hostname === "string" && (o.bootId === null || typeof o.bootId === "string") &&
    typeof o.startedAt === "string" && typeof o.holder === "string" && typeof o.nonce === "string"
  );
}

/** The owner a lock file names; undefined when there is no lock file. An unreadable one is an error saying what to do. */
export function readLockOwner(path: string): RatingsLockOwner | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = undefined;
  }
  if (!isLockOwner(value)) {
    throw new Error(`${path} does not say who holds it (${JSON.stringify(text.slice(0, 80))}): if no other process is rating this session, delete it and try again`);
  }
  return value;
}

/** Creates the lock file with O_EXCL; false when it exists already. */
function createLockFile(path: string, owner: RatingsLockOwner): boolean {
  mkdirSync(dirname(path), { recursive: true });
  let fd: number;
  try {
    fd = openSync(path, "wx");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw error;
  }
  try {
    writeAll(fd, Buffer.from(JSON.stringify(owner, null, 1) + "\n", "utf8"));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return true;
}

/** Removes a stale lock if it is still the one judged stale (not one another process has taken meanwhile). */
function removeStaleLock(path: string, stale: RatingsLockOwner): boolean {
  const aside = `${path}.stale-${process.pid}-${randomBytes(4).toString("hex")}`;
  try {
    renameSync(path, aside);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw error;
  }
  let moved: RatingsLockOwner | undefined;
  try {
    moved = readLockOwner(aside);
  } catch {
    moved = undefined;
  }
  if (moved?.nonce !== stale.nonce) {
    // A fresh lock was moved aside: put it back (unless yet another one was made in between).
    try {
      linkSync(aside, path);
    } catch {
      // the newer lock stays; ours is dropped below
    }
    unlinkSync(aside);
    return false;
  }
  unlinkSync(aside);
  return true;
}

/**
 * The single-writer lock of a session's ratings.jsonl: blind-test/ratings.lock, created with O_EXCL, naming its
 * holder. A second writer is refused with a message naming the holder; a stale lock (its process gone on this
 * machine) is taken over with a warning. Released by `release()` and when the process exits (a process killed by a
 * signal leaves its lock behind, and the next writer takes it over as stale).
 */
export class RatingsLock {
  private released = false;
  private readonly onExit = (): void => this.release();

  private constructor(readonly path: string, readonly owner: RatingsLockOwner) {
    process.on("exit", this.onExit);
  }

  static acquire(path: string, holder: string, warn: (message: string) => void = console.warn): RatingsLock {
    const owner: RatingsLockOwner = {
      pid: process.pid,
      hostname: hostname(),
      bootId: currentBootId(),
      startedAt: new Date().toISOString(),
      holder,
      nonce: randomBytes(8).toString("hex"),
    };
    for (let attempt = 0; attempt < 5; attempt++) {
      if (createLockFile(path, owner)) return new RatingsLock(path, owner);
      const current = readLockOwner(path);
      if (current === undefined) continue; // released meanwhile
      const stale = staleLockReason(current);
      if (stale === undefined) {
        const elsewhere = current.hostname !== hostname() ? " It is held from another machine, so this one cannot tell whether it still runs." : "";
        throw new Error(
          `${path}: the ratings of this session are being written by ${describeOwner(current)}.${elsewhere} One writer at a time, ` +
            `so that no rating is counted twice or lost: finish or stop that one first (rate to the end or close its rating page's ` +
            `server, call session.close(), or stop its kernel), then try again. If that process is gone for certain, delete ${path}.`,
        );
      }
      if (removeStaleLock(path, current)) warn(`${path}: took over the lock left by ${describeOwner(current)}: ${stale}`);
    }
    throw new Error(`${path}: other processes keep taking this lock; try again`);
  }

  /** Removes the lock file if it is still this holder's. */
  release(): void {
    if (this.released) return;
    this.released = true;
    process.removeListener("exit", this.onExit);
    try {
      if (readLockOwner(this.path)?.nonce === this.owner.nonce) unlinkSync(this.path);
    } catch {
      // gone already, or replaced by an unreadable file: not ours to remove
    }
  }
}

// ---- reading ratings.jsonl ----

/** A record of ratings.jsonl: the rating, the byte offset where its line starts (for undo), its line number. */
export interface StoredRating {
  readonly rating: Rating;
  readonly start: number;
  readonly line: number;
}

/** ratings.jsonl as read by `readRatingsFile`. */
export interface RatingsFileContents {
  /** Every record kept, in file order (a grid rated twice appears twice here). */
  readonly records: readonly StoredRating[];
  /** One rating per grid, the later record of a grid winning, in the order of the winning records. */
  readonly current: readonly Rating[];
  /** The last record is complete but has no newline. */
  readonly unterminated: boolean;
  /** The byte offset of a torn last record (not JSON: a crash mid-write), dropped; undefined when there is none. */
  readonly tornAt: number | undefined;
  /** What was tolerated: grids rated twice, a torn or unterminated last record. */
  readonly warnings: readonly string[];
}

type ParsedLine = { readonly ok: true; readonly rating: Rating } | { readonly ok: false; readonly json: boolean; readonly problem: string };

function parseRatingLine(text: string, order: readonly string[]): ParsedLine {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, json: false, problem: "is not JSON" };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return { ok: false, json: true, problem: "is not a rating record" };
  const r = value as Record<string, unknown>;
  if (typeof r.id !== "string" || !order.includes(r.id)) return { ok: false, json: true, problem: "names no grid of this session" };
  if (!isValidRating(r.rating)) return { ok: false, json: true, problem: `has no rating ${RATING_MIN}–${RATING_MAX}` };
  return { ok: true, rating: { id: r.id, rating: r.rating, rater: typeof r.rater === "string" ? r.rater : "unknown", at: typeof r.at === "string" ? r.at : "" } };
}

/** Each grid's rating: the later of two records wins; a warning for every record that lost. */
function currentRatings(path: string, records: readonly StoredRating[], warnings: string[]): Rating[] {
  const last = new Map<string, StoredRating>();
  for (const record of records) last.set(record.rating.id, record);
  for (const record of records) {
    const winner = last.get(record.rating.id) as StoredRating;
    if (winner === record) continue;
    warnings.push(
      `${path}: grid ${record.rating.id} is rated more than once (line ${record.line}: ${record.rating.rating}, line ${winner.line}: ${winner.rating.rating}); ` +
        `only the later rating counts. Two processes wrote ratings at once; delete the line you do not mean if the later one is wrong.`,
    );
  }
  return records.filter((record) => last.get(record.rating.id) === record).map((record) => record.rating);
}

/**
 * Reads a session's ratings.jsonl strictly (see the file's header). Nothing is changed on disk: repairs (cutting a
 * torn last record, ending an unterminated one) are for the writer, under the lock.
 */
export function readRatingsFile(path: string, order: readonly string[]): RatingsFileContents {
  const bytes = existsSync(path) ? readFileSync(path) : Buffer.alloc(0);
  const records: StoredRating[] = [];
  const warnings: string[] = [];
  let unterminated = false;
  let tornAt: number | undefined;
  for (let start = 0, line = 1; start < bytes.length; line++) {
    const newline = bytes.indexOf(0x0a, start);
    const end = newline === -1 ? bytes.length : newline;
    const text = bytes.subarray(start, end).toString("utf8");
    if (text.trim() !== "") {
      const parsed = parseRatingLine(text, order);
      if (parsed.ok === true) {
        records.push({ rating: parsed.rating, start, line });
        if (newline === -1) {
          unterminated = true;
          warnings.push(`${path}: the last record (line ${line}) has no newline (a crash right after it was written); it is kept, and the newline is added before the next rating`);
        }
      } else if (newline === -1 && !parsed.json) {
        tornAt = start;
        warnings.push(`${path}: the last record (line ${line}) is cut short (a crash while it was written); it is dropped, so its grid is rated again, and cut from the file before the next rating`);
      } else {
        throw new Error(`${path}: line ${line} ${parsed.problem} (${JSON.stringify(text.slice(0, 120))}); delete that line (its grid will be rated again) and try again`);
      }
    }
    start = newline === -1 ? bytes.length : newline + 1;
  }
  return { records, current: currentRatings(path, records, warnings), unterminated, tornAt, warnings };
}

/** What a session's lock says holds it when no holder is given: this process's script (a notebook kernel, a test). */
