// Writing a file so that no reader, and no crash, ever sees it half-written: the bytes go to a temporary file in
// the same folder (so the rename stays on one file system), which is flushed to disk (fsync) and renamed over the
// target; then the folder is flushed too, so the rename itself survives a power cut (where a folder can be opened:
// not on Windows, where this step is skipped). The folder is created when missing.
//
// A crash before the rename leaves the old file as it was (and, at worst, a `<name>.tmp-<pid>-<random>` beside it);
// any error removes the temporary file before it is thrown. Files that are cheap to make again and many (generated
// images) may skip the two fsyncs (`durable: false`): a reader still never sees half a file, but a power cut may
// leave one empty. Tested in test/atomic-write.test.ts.

import { randomBytes } from "node:crypto";
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { mkdir, open, rename, rm, type FileHandle } from "node:fs/promises";
import { dirname } from "node:path";

/** What a file can be written from: text (as UTF-8) or bytes. */
export type FileData = string | Uint8Array;

export interface AtomicWriteOptions {
  /** Flush the file and its folder to disk (default true); false only for files that are cheap to make again. */
  readonly durable?: boolean;
}

/** A unique temporary name beside `path` (`<path>.tmp-<pid>-<random>`: the pid tells whether its writer still runs). */
export function temporaryPathFor(path: string): string {
  return `${path}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
}

/** Whether a file name is one of temporaryPathFor's (a leftover, when its writer no longer runs). */
export function isTemporaryPath(path: string): boolean {
  return /\.tmp-\d+-[0-9a-f]{8}$/.test(path);
}

/** Flushes a folder's entries (a rename in it) to disk; a no-op where folders cannot be opened or synced. */
function syncFolderSync(folder: string): void {
  let fd: number;
  try {
    fd = openSync(folder, "r");
  } catch {
    return;
  }
  try {
    fsyncSync(fd);
  } catch {
    // Some platforms and file systems refuse to sync a folder: the rename is still atomic, only less durable.
  } finally {
    closeSync(fd);
  }
}

async function syncFolder(folder: string): Promise<void> {
  let handle: FileHandle;
  try {
    handle = await open(folder, "r");
  } catch {
    return;
  }
  try {
    await handle.sync();
  } catch {
    // As in syncFolderSync.
  } finally {
    await handle.close();
  }
}

/** Writes `data` to `path` atomically (temporary file, fsync, rename, folder fsync). */
export function writeFileAtomicSync(path: string, data: FileData, options: AtomicWriteOptions = {}): void {
  const durable = options.durable ?? true;
  mkdirSync(dirname(path), { recursive: true });
  const temp = temporaryPathFor(path);
  try {
    const fd = openSync(temp, "wx");
    try {
      writeFileSync(fd, data);
      if (durable) fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, path);
  } catch (error) {
    rmSync(temp, { force: true });
    throw error;
  }
  if (durable) syncFolderSync(dirname(path));
}

/** Writes `data` to `path` atomically (temporary file, fsync, rename, folder fsync). */
export async function writeFileAtomic(path: string, data: FileData, options: AtomicWriteOptions = {}): Promise<void> {
  const file = await openAtomic(path, options);
  try {
    await file.handle.writeFile(data);
  } catch (error) {
    await file.abort();
    throw error;
  }
  await file.commit();
}

/** A file being written in pieces: its handle writes to the temporary file until `commit()` puts it in place. */
export interface AtomicFile {
  readonly path: string;
  readonly temp: string;
  readonly handle: FileHandle;
  /** Flushes, closes and renames the temporary file over `path`. */
  commit(): Promise<void>;
  /** Closes and removes the temporary file; `path` is left as it was. Safe to call twice or after `commit()`. */
  abort(): Promise<void>;
}

/** Opens a temporary file beside `path` for a writer that streams (rows of a .npy, say). */
export async function openAtomic(path: string, options: AtomicWriteOptions = {}): Promise<AtomicFile> {
  const durable = options.durable ?? true;
  await mkdir(dirname(path), { recursive: true });
  const temp = temporaryPathFor(path);
  const handle = await open(temp, "wx");
  let done = false;
  const abort = async (): Promise<void> => {
    if (done) return;
    done = true;
    await handle.close().catch(() => undefined);
    await rm(temp, { force: true });
  };
  return {
    path,
    temp,
    handle,
    async commit() {
      if (done) throw new Error(`${path}: this atomic write was already committed or aborted`);
      try {
        if (durable) await handle.sync();
        await handle.close();
        await rename(temp, path);
      } catch (error) {
        await abort();
        throw error;
      }
      done = true;
      if (durable) await syncFolder(dirname(path));
    },
    abort,
  };
}
