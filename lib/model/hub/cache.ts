// Reading and writing huggingface_hub's cache: the snapshot a revision stands for (refs/<revision>, then
// snapshots/<commit>/<filename>), the cached file as a result (its bytes hashed and checked against a SHA-256 blob
// name), and, once a blob is in place, its snapshot link and ref (written atomically).

import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { copyFile, mkdir, readFile, readlink, rename, rm, stat, symlink } from "node:fs/promises";
import { basename, dirname, relative } from "node:path";
import { temporaryPathFor, writeFileAtomic } from "../../util/atomic-write";
import { errorCode } from "../../util/http-download";
import { HubError } from "./errors";
import { COMMIT_HASH, isSafeSegment, SHA256_HEX } from "./cache-layout";
import { fileSystemError, type Call, type HubFile } from "./call";
import type { FileMetadata } from "./metadata";

// ---------------------------------------------------------------------------------------------------------------
// Reading the cache

export interface CachedEntry {
  readonly commit: string;
  readonly pointer: string;
}

export async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/** The commit a revision stands for in the cache: itself when a commit hash, else refs/<revision>. */
async function cachedCommit(call: Call): Promise<string | undefined> {
  if (COMMIT_HASH.test(call.revision)) return call.revision;
  try {
    const commit = (await readFile(call.paths.ref, "utf8")).trim();
    return isSafeSegment(commit) ? commit : undefined;
  } catch {
    return undefined;
  }
}

/** The cached snapshot file of the revision (as try_to_load_from_cache finds it), if there is one. */
export async function findCached(call: Call): Promise<CachedEntry | undefined> {
  const commit = await cachedCommit(call);
  if (commit === undefined) return undefined;
  const pointer = call.paths.pointer(commit);
  return (await isFile(pointer)) ? { commit, pointer } : undefined;
}

/** SHA-256 of a file, streamed. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/** The cached file as a result; its bytes are hashed, and checked when its blob is named by a SHA-256. */
export async function cachedResult(call: Call, entry: CachedEntry, notice: string | undefined): Promise<HubFile> {
  const sha256 = await sha256File(entry.pointer);
  let target: string | undefined;
  try {
    target = basename(await readlink(entry.pointer));
  } catch {
    target = undefined; // a plain file (a cache made where symlinks are not available)
  }
  if (target !== undefined && SHA256_HEX.test(target) && target !== sha256) {
    throw new HubError(
      "checksum",
      `The cached ${call.what} is corrupt: its SHA-256 is ${sha256}, but its blob is named ${target}. ` +
        `Delete ${call.paths.repoDir} and run again to download it afresh.`,
      { summary: `the cached ${call.filename} of ${call.repo} is corrupt` },
    );
  }
  if (notice !== undefined) call.log(notice);
  return { path: entry.pointer, revision: entry.commit, sha256, fromCache: true, repo: call.repo, filename: call.filename, ...(notice === undefined ? {} : { notice }) };
}

// ---------------------------------------------------------------------------------------------------------------
// Writing the cache

/** refs/<revision> ← commit, for branches and tags (huggingface_hub's _cache_commit_hash_for_specific_revision). */
export async function writeRef(call: Call, commit: string): Promise<void> {
  if (call.revision === commit) return;
  try {
    if ((await readFile(call.paths.ref, "utf8")) === commit) return;
  } catch {
    // no ref yet
  }
  await writeFileAtomic(call.paths.ref, commit);
}

/** snapshots/<commit>/<filename> → relative symlink to the blob, replaced atomically (a copy where symlinks fail). */
async function linkSnapshot(blob: string, pointer: string): Promise<void> {
  await mkdir(dirname(pointer), { recursive: true });
  const temporary = temporaryPathFor(pointer);
  try {
    try {
      await symlink(relative(dirname(pointer), blob), temporary);
    } catch (error) {
      const code = errorCode(error);
      if (code !== "EPERM" && code !== "EACCES" && code !== "ENOTSUP" && code !== "EOPNOTSUPP") throw error;
      await copyFile(blob, temporary);
    }
    await rename(temporary, pointer);
  } finally {
    await rm(temporary, { force: true });
  }
}

/** Snapshot link, then ref: the last steps, once the blob is in place. */
export async function publish(call: Call, meta: FileMetadata): Promise<string> {
  const pointer = call.paths.pointer(meta.commit);
  try {
    await linkSnapshot(call.paths.blob(meta.etag), pointer);
    await writeRef(call, meta.commit);
  } catch (error) {
    throw fileSystemError(call, pointer, error);
  }
  return pointer;
}
