// One call of the Hub client: its options and result, the context every step shares (settings, cache paths,
// token, timeouts), and the messages for what can fail, each naming the repo and file and saying what to do.

import { homedir } from "node:os";
import type { IncomingHttpHeaders } from "node:http";
import { describeNetworkError, errorCode, asError, header } from "../../util/http-download";
import { HubError } from "./errors";
import { cachePaths, checkFilename, checkRepoId, checkRevision, repoFolderName, type CachePaths } from "./cache-layout";
import {
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_REVISION,
  envValue,
  findToken,
  hubSettings,
  RESNET18_IMAGENET_REPO,
  SAFETENSORS_FILENAME,
  type HubEnv,
  type HubSettings,
  type HubToken,
} from "./settings";

// ---------------------------------------------------------------------------------------------------------------
// Options, result, the context of one call

export interface HubDownloadOptions {
  /** `owner/name` (default timm/resnet18.tv_in1k). */
  repo?: string;
  /** File in the repo (default model.safetensors). */
  filename?: string;
  /** Branch, tag or 40-hex commit (default "main"). */
  revision?: string;
  /** Environment to read HF_* variables from (default process.env). */
  env?: HubEnv;
  /** Home folder for `~` and the default cache (default os.homedir()). */
  home?: string;
  /** A token to use instead of HF_TOKEN / the token file; false: send none. */
  token?: string | false;
  /** DNS + TCP connect limit, ms (default 3000). */
  connectTimeoutMs?: number;
  /** Wait for the HEAD's answer, ms (default HF_HUB_ETAG_TIMEOUT or 10 s). */
  etagTimeoutMs?: number;
  /** Longest pause in the download's data, ms (default HF_HUB_DOWNLOAD_TIMEOUT or 10 s). */
  downloadTimeoutMs?: number;
  /** Resumes (Range) within this call after the connection breaks mid-download (default 3). */
  retries?: number;
  /** Pause before each resume, ms (default 1000). */
  retryDelayMs?: number;
  /** Ask the Hub whether a cached branch moved (huggingface_hub always does; default false: the cache is used as is). */
  checkForUpdates?: boolean;
  /** Bytes of the file on disk so far, and its size when known. */
  onProgress?: (done: number, total: number | null) => void;
  /** Status lines (resuming, using the cache while offline …); default console.log. Never given the token. */
  log?: (line: string) => void;
}

export interface HubFile {
  /** The snapshot path (snapshots/<commit>/<filename>, a symlink into blobs/), as hf_hub_download returns. */
  path: string;
  /** The commit hash the file belongs to (X-Repo-Commit). */
  revision: string;
  /** SHA-256 of the file's bytes, hex. */
  sha256: string;
  /** Whether the file was already cached (nothing downloaded). */
  fromCache: boolean;
  repo: string;
  filename: string;
  /** Why the cache was used without asking the Hub (offline mode, Hub unreachable), when that is why. */
  notice?: string;
}

export interface Call {
  readonly repo: string;
  readonly filename: string;
  readonly revision: string;
  /** "model.safetensors of timm/resnet18.tv_in1k (revision main)", for messages. */
  readonly what: string;
  readonly settings: HubSettings;
  readonly paths: CachePaths;
  readonly token: HubToken | undefined;
  readonly endpointOrigin: string;
  /** Whether a proxy variable is set (this downloader does not use proxies: said when the Hub is unreachable). */
  readonly proxyConfigured: boolean;
  readonly connectTimeoutMs: number;
  readonly etagTimeoutMs: number;
  readonly downloadTimeoutMs: number;
  readonly retries: number;
  readonly retryDelayMs: number;
  readonly onProgress: ((done: number, total: number | null) => void) | undefined;
  readonly log: (line: string) => void;
}

export async function prepareCall(options: HubDownloadOptions): Promise<Call> {
  const env = options.env ?? process.env;
  const settings = hubSettings(env, options.home ?? homedir());
  const repo = checkRepoId(options.repo ?? RESNET18_IMAGENET_REPO);
  const filename = checkFilename(options.filename ?? SAFETENSORS_FILENAME);
  const revision = checkRevision(options.revision);
  return {
    repo,
    filename,
    revision,
    what: `${filename} of ${repo} (revision ${revision})`,
    settings,
    paths: cachePaths(settings.cacheDir, repo, revision, filename),
    token: await findToken(env, settings, options.token),
    endpointOrigin: new URL(settings.endpoint).origin,
    proxyConfigured: ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"].some((name) => envValue(env, name) !== undefined),
    connectTimeoutMs: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    etagTimeoutMs: options.etagTimeoutMs ?? settings.etagTimeoutMs,
    downloadTimeoutMs: options.downloadTimeoutMs ?? settings.downloadTimeoutMs,
    retries: options.retries ?? 3,
    retryDelayMs: options.retryDelayMs ?? 1000,
    onProgress: options.onProgress,
    log: options.log ?? ((line: string) => console.log(line)),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Messages for network failures, HTTP statuses and the disk

export function isTlsError(error: Error): boolean {
  const code = errorCode(error) ?? "";
  return code.startsWith("ERR_TLS") || code.startsWith("ERR_SSL") || code.includes("CERT") || code === "DEPTH_ZERO_SELF_SIGNED_CERT";
}

function pythonFix(call: Call): string {
  return `hf download ${call.repo} ${call.filename}${call.revision === DEFAULT_REVISION ? "" : ` --revision ${call.revision}`}`;
}

export function unreachableError(call: Call, host: string, cause: Error): HubError {
  if (isTlsError(cause)) {
    return new HubError(
      "tls",
      `Could not download ${call.what}: the TLS connection to ${host} failed (${describeNetworkError(cause)}). ` +
        "A proxy that inspects HTTPS may be in the way: give Node its certificate with NODE_EXTRA_CA_CERTS=/path/to/ca.pem.",
      { summary: `TLS failure with ${host}: ${describeNetworkError(cause)}`, cause },
    );
  }
  const proxy = call.proxyConfigured
    ? " (A proxy variable is set, but this downloader connects directly: download with Python instead, into the same cache.)"
    : "";
  const endpoint = call.settings.endpointFromEnv ? ` HF_ENDPOINT is set to ${call.settings.endpoint}: check it.` : "";
  return new HubError(
    "unreachable",
    `Could not reach the Hugging Face Hub at ${host} to download ${call.what}: ${describeNetworkError(cause)}. ` +
      `Nothing is cached for that revision in ${call.settings.cacheDir}.${endpoint} ` +
      `Fixes: check the internet connection and run again; or, on a machine with internet, run \`${pythonFix(call)}\` ` +
      `and copy its ${repoFolderName(call.repo)} folder into ${call.settings.cacheDir}; or set finetune.weights to "random" ` +
      `or to the path of a local .safetensors file.${proxy}`,
    { summary: `the Hub (${host}) is unreachable: ${describeNetworkError(cause)}`, cause },
  );
}

export function offlineModeError(call: Call): HubError {
  const name = call.settings.offlineVar ?? "HF_HUB_OFFLINE";
  return new HubError(
    "offline-mode",
    `${name} is set, so the Hub is not contacted, and ${call.what} is not in the cache (${call.settings.cacheDir}). ` +
      `Fixes: unset ${name} (or set it to 0) to download it once; or copy a cache made elsewhere (its ${repoFolderName(call.repo)} folder, ` +
      `e.g. from \`${pythonFix(call)}\`) into ${call.settings.cacheDir}; or set finetune.weights to "random" or a local .safetensors path.`,
    { summary: `${name} is set and ${call.filename} of ${call.repo} is not cached` },
  );
}

/** The token, in words, for messages: where it came from (never its value). */
function tokenHelp(call: Call): string {
  return call.token === undefined
    ? "No token was sent: set HF_TOKEN to a read token (https://huggingface.co/settings/tokens) or log in with `hf auth login`."
    : `The token from ${call.token.from} was sent: check it is valid and has read access, or set HF_TOKEN to one that does.`;
}

/** huggingface_hub's hf_raise_for_status, in words that say what to do. */
export function statusError(call: Call, status: number, headers: IncomingHttpHeaders, url: URL): HubError {
  const code = header(headers, "x-error-code");
  const said = header(headers, "x-error-message");
  const hub = said === undefined ? "" : ` The Hub says: "${call.token === undefined ? said : call.token.redact(said)}".`;
  const at = `(HTTP ${status} from ${url.host})`;
  const repoPage = `${call.settings.endpoint}/${call.repo}`;
  if (code === "GatedRepo" || (status === 403 && code === undefined && said !== undefined && /gated/i.test(said))) {
    return new HubError(
      "forbidden",
      `${call.repo} is a gated repo ${at}: accept its terms at ${repoPage} while logged in, then use a token of that account. ${tokenHelp(call)}${hub}`,
      { summary: `${call.repo} is gated (HTTP ${status})`, status },
    );
  }
  if (code === "RevisionNotFound") {
    return new HubError(
      "not-found",
      `Revision "${call.revision}" does not exist in ${call.repo} ${at}: use an existing branch, tag or full 40-character commit hash ` +
        `(finetune.weightsRevision), or leave it empty for "main".${hub}`,
      { summary: `revision ${call.revision} of ${call.repo} not found`, status },
    );
  }
  if (code === "EntryNotFound") {
    return new HubError("not-found", `${call.filename} does not exist in ${call.repo} at revision ${call.revision} ${at}: check the file name (see ${repoPage}/tree/${call.revision}).${hub}`, {
      summary: `${call.filename} not found in ${call.repo}@${call.revision}`,
      status,
    });
  }
  if (code === "RepoNotFound" || status === 401) {
    return new HubError(
      status === 401 ? "unauthorized" : "not-found",
      `Repository ${call.repo} was not found on ${url.host} ${at}, or it is private or gated and the request was not authorised. ` +
        `Check the repo id. ${tokenHelp(call)}${hub}`,
      { summary: `${call.repo}: not found or not authorised (HTTP ${status})`, status },
    );
  }
  if (status === 403) {
    return new HubError(
      "forbidden",
      `Access to ${call.what} was refused ${at}. If the repo is gated, accept its terms at ${repoPage}; otherwise the token lacks permission. ${tokenHelp(call)}${hub}`,
      { summary: `access to ${call.repo} refused (HTTP 403)`, status },
    );
  }
  if (status === 404) {
    const endpoint = call.settings.endpointFromEnv ? ` HF_ENDPOINT is set to ${call.settings.endpoint}: check it serves the Hub.` : "";
    return new HubError(
      "not-found",
      `Not found ${at}: ${call.repo}, its revision "${call.revision}" or its file ${call.filename} does not exist. Check the repo id, the revision and the file name.${endpoint}${hub}`,
      { summary: `${call.what} not found (HTTP 404)`, status },
    );
  }
  const later = status === 429 || status >= 500 ? " The Hub is busy or down: run again later." : "";
  return new HubError("http", `The Hub answered HTTP ${status} for ${call.what} ${at}.${later}${hub}`, { summary: `the Hub answered HTTP ${status}`, status });
}

export function notTheHub(call: Call, host: string, missing: string): never {
  throw new HubError(
    "not-the-hub",
    `${host} answered the request for ${call.what} without ${missing}, so it does not look like the Hugging Face Hub. ` +
      `A captive portal, proxy or firewall may be in the way${call.settings.endpointFromEnv ? `, or HF_ENDPOINT (${call.settings.endpoint}) is wrong` : ""}: check the network and run again.`,
    { summary: `${host} does not answer like the Hub (no ${missing})` },
  );
}

export function fileSystemError(call: Call, path: string, error: unknown): HubError {
  const code = errorCode(error) ?? asError(error).message;
  return new HubError("filesystem", `Could not write ${path} while caching ${call.what}: ${code}. Fix the folder's permissions or point HF_HUB_CACHE (or HF_HOME) elsewhere.`, {
    summary: `could not write the cache (${code})`,
    cause: asError(error),
  });
}

export function diskFullError(call: Call, incomplete: string, onDisk: number, total: number | null, cause?: Error): HubError {
  const needed = total === null ? "more bytes than are free" : `${total - onDisk} more bytes (the file is ${total} bytes)`;
  return new HubError(
    "disk-full",
    `Disk full while downloading ${call.what}: ${needed} are needed in ${call.paths.blobsDir}. ` +
      `${onDisk} bytes are kept in ${incomplete} and the download continues from there. ` +
      "Free space there, or point HF_HUB_CACHE (or HF_HOME) to a disk with room, and run again.",
    { summary: `disk full: ${total === null ? "" : `${total - onDisk} bytes `}needed in ${call.paths.blobsDir}`, cause },
  );
}
