// The cache's layout, as huggingface_hub names it: repo ids, revisions and file names checked, the repo's folder
// (models--owner--name) with its blobs/, snapshots/<commit>/ and refs/, and the resolve URL of a file.

import { join } from "node:path";
import { HubError } from "./errors";
import { DEFAULT_REVISION, RESNET18_IMAGENET_REPO, SAFETENSORS_FILENAME } from "./settings";

/** huggingface_hub's REGEX_COMMIT_HASH. */
export const COMMIT_HASH = /^[0-9a-f]{40}$/;
export const SHA256_HEX = /^[0-9a-f]{64}$/;

/** A path segment that is safe to put in the cache (a commit hash, an etag). */
export function isSafeSegment(value: string): boolean {
  return /^[A-Za-z0-9._-]+$/.test(value) && value !== "." && value !== "..";
}

/** `owner/name` (or `name`), checked as huggingface_hub's validate_repo_id does. */
export function checkRepoId(repo: string): string {
  const ok = /^(?:[\w.-]+\/)?[\w.-]+$/.test(repo) && !repo.includes("--") && !repo.includes("..") && !/^[.-]|[.-]$/.test(repo) && repo.length <= 96;
  if (!ok) throw new HubError("bad-argument", `"${repo}" is not a Hub repo id: expected owner/name, like ${RESNET18_IMAGENET_REPO}.`);
  return repo;
}

/** A file path inside a repo: relative, "/"-separated, no "." or ".." segments. */
export function checkFilename(filename: string): string {
  const parts = filename.split("/");
  if (filename === "" || parts.some((part) => part === "" || part === "." || part === ".." || part.includes("\\"))) {
    throw new HubError("bad-argument", `"${filename}" is not a file path inside a Hub repo (like ${SAFETENSORS_FILENAME}).`);
  }
  return filename;
}

/**
 * A revision: a branch or tag name, or a full 40-hex commit hash (returned in lower case). Empty → "main".
 * Abbreviated hashes are refused: the cache (like huggingface_hub) only recognises full ones.
 */
export function checkRevision(revision: string | undefined): string {
  const value = (revision ?? "").trim();
  if (value === "") return DEFAULT_REVISION;
  if (/^[0-9a-fA-F]{40}$/.test(value)) return value.toLowerCase();
  if (/^[0-9a-fA-F]{7,39}$/.test(value) && /\d/.test(value)) {
    throw new HubError("bad-argument", `Revision "${value}" looks like an abbreviated commit hash: give the full 40-character hash, or a branch or tag name.`);
  }
  const segments = value.split("/");
  if (!/^[A-Za-z0-9._\/-]+$/.test(value) || value.length > 255 || segments.some((part) => part === "" || part === "." || part === "..")) {
    throw new HubError("bad-argument", `Revision "${value}" is not a branch, tag or 40-character commit hash.`);
  }
  return value;
}

/** huggingface_hub's repo_folder_name for a model repo: `models--owner--name`. */
export function repoFolderName(repo: string): string {
  return ["models", ...checkRepoId(repo).split("/")].join("--");
}

/** huggingface_hub's hf_hub_url: `{endpoint}/{repo}/resolve/{revision}/{filename}`, revision and filename quoted. */
export function hubFileUrl(endpoint: string, repo: string, revision: string, filename: string): string {
  const file = filename.split("/").map(encodeURIComponent).join("/");
  return `${endpoint.replace(/\/+$/, "")}/${repo}/resolve/${encodeURIComponent(revision)}/${file}`;
}

/** Where one file of one repo lives in the cache. */
export interface CachePaths {
  readonly repoDir: string;
  readonly blobsDir: string;
  readonly blob: (etag: string) => string;
  readonly pointer: (commit: string) => string;
  readonly ref: string;
}

export function cachePaths(cacheDir: string, repo: string, revision: string, filename: string): CachePaths {
  const repoDir = join(cacheDir, repoFolderName(repo));
  const blobsDir = join(repoDir, "blobs");
  return {
    repoDir,
    blobsDir,
    blob: (etag: string) => join(blobsDir, etag),
    pointer: (commit: string) => join(repoDir, "snapshots", commit, ...filename.split("/")),
    ref: join(repoDir, "refs", ...revision.split("/")),
  };
}
