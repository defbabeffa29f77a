// Where huggingface_hub's settings come from (huggingface_hub/constants.py, utils/_auth.py): the endpoint, HF_HOME
// and the cache folder, offline mode and timeouts from the environment, and the token, kept out of sight.

import { readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { HubError } from "./errors";

// ---------------------------------------------------------------------------------------------------------------
// Constants

/** torchvision's ImageNet ResNet18 weights, as timm publishes them in safetensors. */
export const RESNET18_IMAGENET_REPO = "timm/resnet18.tv_in1k";
/** The weights file in that repo. */
export const SAFETENSORS_FILENAME = "model.safetensors";
/** huggingface_hub's DEFAULT_REVISION. */
export const DEFAULT_REVISION = "main";
/** huggingface_hub's default ENDPOINT. */
export const DEFAULT_HUB_ENDPOINT = "https://huggingface.co";
/** Milliseconds for DNS + TCP connect before the Hub counts as unreachable. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 3000;

/** huggingface_hub's DEFAULT_ETAG_TIMEOUT / DEFAULT_DOWNLOAD_TIMEOUT, in seconds. */
const DEFAULT_ETAG_TIMEOUT_S = 10;
const DEFAULT_DOWNLOAD_TIMEOUT_S = 10;
/** huggingface_hub's ENV_VARS_TRUE_VALUES. */
const TRUE_VALUES: ReadonlySet<string> = new Set(["1", "ON", "YES", "TRUE"]);

/** Environment variables, as in process.env; passed in so tests need not change process.env. */
export type HubEnv = Readonly<Record<string, string | undefined>>;

// ---------------------------------------------------------------------------------------------------------------
// Settings from the environment (huggingface_hub/constants.py)

/** huggingface_hub's `_is_true`: "1", "ON", "YES", "TRUE" in any case. */
export function isEnvTrue(value: string | undefined): boolean {
  return value !== undefined && TRUE_VALUES.has(value.toUpperCase());
}

/** A variable's value, or undefined when unset or empty. */
export function envValue(env: HubEnv, name: string): string | undefined {
  const value = env[name];
  return value === undefined || value === "" ? undefined : value;
}

/** Python's os.path.expanduser then expandvars ($VAR and ${VAR}; unknown ones stay as written). */
function expandPath(path: string, env: HubEnv, home: string): string {
  const user = path === "~" ? home : path.startsWith("~/") ? join(home, path.slice(2)) : path;
  return user.replace(/\$(\w+)|\$\{([^}]+)\}/g, (whole: string, bare: string | undefined, braced: string | undefined) => env[bare ?? braced ?? ""] ?? whole);
}

export interface HubSettings {
  /** The Hub's base URL, without a trailing slash. */
  readonly endpoint: string;
  /** Whether HF_ENDPOINT set it. */
  readonly endpointFromEnv: boolean;
  /** $HF_HOME (default $XDG_CACHE_HOME/huggingface or ~/.cache/huggingface). */
  readonly hfHome: string;
  /** The hub cache: $HF_HUB_CACHE, $HUGGINGFACE_HUB_CACHE or $HF_HOME/hub. */
  readonly cacheDir: string;
  /** The token file: $HF_TOKEN_PATH or $HF_HOME/token. */
  readonly tokenPath: string;
  /** The variable that turned offline mode on (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE), if one did. */
  readonly offlineVar: string | undefined;
  readonly disableImplicitToken: boolean;
  readonly etagTimeoutMs: number;
  readonly downloadTimeoutMs: number;
}

function secondsFromEnv(env: HubEnv, name: string, fallback: number): number {
  const value = Number(envValue(env, name));
  return Number.isFinite(value) && value > 0 ? value * 1000 : fallback * 1000;
}

/** Which variable enables offline mode: `HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE`, as Python reads them. */
function offlineVariable(env: HubEnv): string | undefined {
  const name = envValue(env, "HF_HUB_OFFLINE") !== undefined ? "HF_HUB_OFFLINE" : "TRANSFORMERS_OFFLINE";
  return isEnvTrue(envValue(env, name)) ? name : undefined;
}

/** The Hub endpoint from HF_ENDPOINT (default https://huggingface.co), checked, without a trailing slash. */
export function hubEndpoint(env: HubEnv = process.env): string {
  const raw = (envValue(env, "HF_ENDPOINT") ?? DEFAULT_HUB_ENDPOINT).replace(/\/+$/, "");
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new HubError("bad-argument", `HF_ENDPOINT ("${raw}") is not a URL: set it like https://huggingface.co or unset it.`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new HubError("bad-argument", `HF_ENDPOINT must be an http(s) URL, not ${url.protocol}: set it like https://huggingface.co or unset it.`);
  }
  if (url.username !== "" || url.password !== "") {
    throw new HubError("bad-argument", "HF_ENDPOINT must not carry a user name or password: put the token in HF_TOKEN instead.");
  }
  return raw;
}

/** huggingface_hub's HF_HOME. */
export function hfHome(env: HubEnv = process.env, home: string = homedir()): string {
  const fallback = join(envValue(env, "XDG_CACHE_HOME") ?? join(home, ".cache"), "huggingface");
  return resolve(expandPath(envValue(env, "HF_HOME") ?? fallback, env, home));
}

/** huggingface_hub's HF_HUB_CACHE: where `models--owner--name` folders live. */
export function hubCacheDir(env: HubEnv = process.env, home: string = homedir()): string {
  const configured = envValue(env, "HF_HUB_CACHE") ?? envValue(env, "HUGGINGFACE_HUB_CACHE");
  return resolve(configured === undefined ? join(hfHome(env, home), "hub") : expandPath(configured, env, home));
}

/** Everything the environment decides, read once per call. */
export function hubSettings(env: HubEnv = process.env, home: string = homedir()): HubSettings {
  const hf = hfHome(env, home);
  const tokenPath = envValue(env, "HF_TOKEN_PATH");
  return {
    endpoint: hubEndpoint(env),
    endpointFromEnv: envValue(env, "HF_ENDPOINT") !== undefined,
    hfHome: hf,
    cacheDir: hubCacheDir(env, home),
    tokenPath: tokenPath === undefined ? join(hf, "token") : resolve(expandPath(tokenPath, env, home)),
    offlineVar: offlineVariable(env),
    disableImplicitToken: isEnvTrue(envValue(env, "HF_HUB_DISABLE_IMPLICIT_TOKEN")),
    etagTimeoutMs: secondsFromEnv(env, "HF_HUB_ETAG_TIMEOUT", DEFAULT_ETAG_TIMEOUT_S),
    downloadTimeoutMs: secondsFromEnv(env, "HF_HUB_DOWNLOAD_TIMEOUT", DEFAULT_DOWNLOAD_TIMEOUT_S),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The token (utils/_auth.py), kept out of sight

/** A token and where it came from; the value is a private field (not shown by console.log, inspect or JSON). */
export class HubToken {
  readonly #value: string;

  constructor(
    value: string,
    readonly from: string,
  ) {
    this.#value = value;
  }

  bearer(): string {
    return `Bearer ${this.#value}`;
  }

  /** The text with the token replaced by "***" (for anything a server says back). */
  redact(text: string): string {
    return text.split(this.#value).join("***");
  }

  toJSON(): string {
    return `[token from ${this.from}]`;
  }
}

/** huggingface_hub's `_clean_token`: no CR/LF, trimmed, empty → none. */
function cleanToken(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const token = value.replace(/[\r\n]/g, "").trim();
  return token === "" ? undefined : token;
}

export async function findToken(env: HubEnv, settings: HubSettings, explicit: string | false | undefined): Promise<HubToken | undefined> {
  if (explicit === false) return undefined;
  if (explicit !== undefined) {
    const token = cleanToken(explicit);
    return token === undefined ? undefined : new HubToken(token, "the token option");
  }
  if (settings.disableImplicitToken) return undefined;
  for (const name of ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"]) {
    const token = cleanToken(env[name]);
    if (token !== undefined) return new HubToken(token, name);
  }
  try {
    const token = cleanToken(await readFile(settings.tokenPath, "utf8"));
    return token === undefined ? undefined : new HubToken(token, settings.tokenPath);
  } catch {
    return undefined;
  }
}
