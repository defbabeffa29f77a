// Fetches one file of a Hugging Face Hub repository — by default ResNet18's ImageNet weights,
// `model.safetensors` of `timm/resnet18.tv_in1k` — the way Python's `huggingface_hub.hf_hub_download` does, into
// the same cache, so a download made here serves Python and one made by Python serves us.
//
// What it mirrors of huggingface_hub (constants.py, file_download.py, utils/_auth.py):
// - Cache folder: $HF_HUB_CACHE, else $HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub, with HF_HOME defaulting to
//   $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface (`~` and `$VAR` expanded, as Python's expanduser and
//   expandvars do). Layout, for repo `owner/name`:
//     models--owner--name/blobs/<etag>                           the bytes (etag = SHA-256 for LFS files)
//     models--owner--name/snapshots/<commit>/<filename>          relative symlink to ../../blobs/<etag>
//     models--owner--name/refs/<revision>                        the commit hash, no newline (branches and tags only)
// - Metadata: `HEAD {HF_ENDPOINT or https://huggingface.co}/{repo}/resolve/{revision}/{filename}` without following
//   redirects that leave the Hub's origin (those within it, a renamed repo, are followed); X-Repo-Commit is the
//   commit, X-Linked-Etag (else ETag, without W/ and quotes) the blob name, X-Linked-Size (else, when not a
//   redirect, Content-Length) the size, and a 3xx's Location the place to GET the bytes from.
// - Token: $HF_TOKEN, else $HUGGING_FACE_HUB_TOKEN, else the file $HF_TOKEN_PATH (default $HF_HOME/token), unless
//   HF_HUB_DISABLE_IMPLICIT_TOKEN is true. It goes as `Authorization: Bearer` to the endpoint's origin only, never
//   to a redirect target elsewhere (the signed storage link), and into no message, log line or file.
// - Download into blobs/<etag>.incomplete, continuing an earlier one with `Range: bytes=N-` (a 200 reply to that
//   starts the file over), then rename to blobs/<etag>, symlink the snapshot, write refs/<revision>. (That is
//   huggingface_hub 0.x's partial file, which it resumes too; 1.x writes a per-process temporary file instead and
//   ignores ours.)
// - HF_HUB_OFFLINE (else TRANSFORMERS_OFFLINE) in {1, ON, YES, TRUE}, any case: no network, the cache only. When the
//   Hub cannot be reached (or answers an error other than "not found"), a cached copy of the revision is used, and
//   the result says so.
//
// Where it deliberately differs:
// - A revision already cached is used without asking the Hub whether the branch moved (huggingface_hub sends a
//   HEAD every time); `checkForUpdates: true` asks, like Python.
// - Unreachable means unreachable, fast: DNS and connect are bounded by `connectTimeoutMs` (default 3 s) and a
//   failed HEAD is not retried (huggingface_hub retries a few times when nothing is cached).
// - The finished file's SHA-256 is checked against the etag when the etag is one (LFS files); a mismatch deletes
//   the partial file and caches nothing. huggingface_hub only checks the size.
// - No cross-process lock (huggingface_hub's .locks/ uses flock, out of reach without a native module); two calls
//   in this process for the same blob do wait for each other. No proxy support (HTTPS_PROXY is ignored).
//
// Also here: the resolver of the config value `finetune.weights` ("auto" | "imagenet" | "random" | a path) and
// loadImagenetWeights, which for "auto" degrades to random initialisation (with the reason) when the Hub cannot
// be reached and nothing is cached.
//
// The client is lib/model/hub/: settings (environment, token), cache-layout and cache (the folders and reading or
// writing them), metadata (the HEAD), download (the bytes), call (one call's context and its error messages). Tested
// against a stand-in Hub in test/hub-weights.test.ts.

import { isHubUnavailable, CACHE_FALLBACK, HubError } from "./hub/errors";
import { COMMIT_HASH, SHA256_HEX } from "./hub/cache-layout";
import { fileSystemError, offlineModeError, prepareCall, type HubDownloadOptions, type HubFile } from "./hub/call";
import { cachedResult, findCached, isFile, publish, sha256File, writeRef } from "./hub/cache";
import { fetchMetadata, type FileMetadata } from "./hub/metadata";
import { downloadBlob, withBlobLock } from "./hub/download";

export { HubError, isHubUnavailable, type HubErrorKind } from "./hub/errors";
export { hfHome, hubCacheDir, hubEndpoint, hubSettings, isEnvTrue, RESNET18_IMAGENET_REPO, SAFETENSORS_FILENAME, type HubEnv, type HubSettings } from "./hub/settings";
export { checkRepoId, checkRevision, hubFileUrl, repoFolderName } from "./hub/cache-layout";
export { normalizeEtag } from "./hub/metadata";
export type { HubDownloadOptions, HubFile } from "./hub/call";

// ---------------------------------------------------------------------------------------------------------------
// The cache alone

/** Looks the file up in the cache only (no network): the result, or undefined when it is not cached. */
export async function findCachedHubFile(options: HubDownloadOptions = {}): Promise<HubFile | undefined> {
  const call = await prepareCall({ ...options, token: false });
  const entry = await findCached(call);
  return entry === undefined ? undefined : cachedResult(call, entry, undefined);
}

// ---------------------------------------------------------------------------------------------------------------
// hf_hub_download

/**
 * Returns the cached file of `repo`/`filename` at `revision`, downloading it (into huggingface_hub's cache) when it
 * is not cached. Throws a HubError whose `kind` says what failed and whose message says what to do.
 */
export async function downloadHubFile(options: HubDownloadOptions = {}): Promise<HubFile> {
  const call = await prepareCall(options);
  const cached = await findCached(call);
  const offline = call.settings.offlineVar;
  if (cached !== undefined && (offline !== undefined || options.checkForUpdates !== true || COMMIT_HASH.test(call.revision))) {
    const notice = offline === undefined ? undefined : `${offline} is set: using the cached ${call.what}, commit ${cached.commit}.`;
    return cachedResult(call, cached, notice);
  }
  if (offline !== undefined) throw offlineModeError(call);
  let meta: FileMetadata;
  try {
    meta = await fetchMetadata(call);
  } catch (error) {
    if (cached !== undefined && error instanceof HubError && CACHE_FALLBACK.has(error.kind)) {
      return cachedResult(call, cached, `Could not check the Hub for a newer ${call.what} (${error.summary}): using the cached commit ${cached.commit}.`);
    }
    throw error;
  }
  const pointer = call.paths.pointer(meta.commit);
  if (await isFile(pointer)) {
    await writeRef(call, meta.commit).catch((error: unknown) => {
      throw fileSystemError(call, call.paths.ref, error);
    });
    return cachedResult(call, { commit: meta.commit, pointer }, undefined);
  }
  const blob = call.paths.blob(meta.etag);
  const fromCache = await isFile(blob);
  if (!fromCache) await withBlobLock(blob, async () => ((await isFile(blob)) ? undefined : downloadBlob(call, meta)));
  await publish(call, meta);
  if (fromCache) return cachedResult(call, { commit: meta.commit, pointer }, undefined);
  return { path: pointer, revision: meta.commit, sha256: SHA256_HEX.test(meta.etag) ? meta.etag : await sha256File(pointer), fromCache: false, repo: call.repo, filename: call.filename };
}

// ---------------------------------------------------------------------------------------------------------------
// finetune.weights

/** What `finetune.weights` asks for: the Hub's ImageNet weights (required or if possible), random init, or a file. */
export type WeightsPlan = { kind: "hub"; mode: "auto" | "imagenet" } | { kind: "random" } | { kind: "file"; path: string };

/**
 * Reads `finetune.weights`: "auto" (ImageNet weights from the Hub or its cache, else random initialisation),
 * "imagenet" (the Hub's weights, or an error), "random" or "" (random initialisation), anything else a path to a
 * .safetensors file (write "./auto" for a file named auto). Keywords are case-insensitive. Pure: no I/O.
 */
export function resolveWeightsSpec(spec: string | undefined): WeightsPlan {
  const value = (spec ?? "").trim();
  const keyword = value.toLowerCase();
  if (keyword === "auto" || keyword === "imagenet") return { kind: "hub", mode: keyword };
  if (keyword === "random" || keyword === "") return { kind: "random" };
  return { kind: "file", path: value };
}

export interface ImagenetWeightsOptions extends HubDownloadOptions {
  /** "auto": random initialisation when the Hub cannot be used and nothing is cached; "imagenet": throw instead. */
  mode: "auto" | "imagenet";
}

export type ImagenetWeights = { kind: "hub"; file: HubFile } | { kind: "random"; why: string };

/**
 * ResNet18's ImageNet weights (timm/resnet18.tv_in1k, model.safetensors) from the cache or the Hub. With mode
 * "auto", a Hub that cannot be used (offline mode, no network, server trouble) and no cached copy give
 * `{ kind: "random", why }`; every other failure (bad token, not found, TLS, checksum, disk) is thrown, as is every
 * failure with mode "imagenet". `revision` (finetune.weightsRevision) pins a branch, tag or 40-hex commit.
 */
export async function loadImagenetWeights(options: ImagenetWeightsOptions): Promise<ImagenetWeights> {
  try {
    return { kind: "hub", file: await downloadHubFile(options) };
  } catch (error) {
    if (options.mode !== "auto" || !isHubUnavailable(error)) throw error;
    const log = options.log ?? ((line: string) => console.log(line));
    log(`finetune.weights is "auto" and the ImageNet weights are unavailable (${error.summary}): starting from random initialisation.`);
    return { kind: "random", why: error.summary };
  }
}
