// Kaggle credentials, by the Kaggle CLI's own conventions, without ever showing them:
// KAGGLE_USERNAME + KAGGLE_KEY in the environment (both set: they win, as in the CLI), else kaggle.json
// (`{"username": "...", "key": "..."}`) in $KAGGLE_CONFIG_DIR or ~/.kaggle/.
//
// The values never leave memory: the object holding them hides them from console.log, util.inspect and
// JSON.stringify, and no message built here quotes them or the content of kaggle.json.

import { existsSync, readFileSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { join, sep } from "node:path";

export type CredentialSource = "environment" | "kaggle.json";

/** What can go wrong getting CelebA from Kaggle; each kind has its own message saying what to do. */
export type KaggleErrorKind =
  | "missing-credentials"
  | "bad-credentials-file"
  | "bad-endpoint"
  | "unauthorized"
  | "forbidden"
  | "not-found"
  | "http"
  | "network"
  | "disk-full"
  | "filesystem"
  | "size-mismatch";

export interface KaggleErrorDetails {
  /** The HTTP status that caused it, when one did. */
  status?: number;
  /** The file the error is about (kaggle.json, or the download's .part file). */
  file?: string;
  /** Bytes of the archive already on disk (kept in the .part file) when the error happened. */
  bytesOnDisk?: number;
  /** The underlying error (a Node system error: never carries credentials). */
  cause?: Error;
}

/** Every failure of the Kaggle credentials or download, with a `kind` to branch on and a message for people. */
export class KaggleError extends Error {
  readonly kind: KaggleErrorKind;
  readonly status: number | undefined;
  readonly file: string | undefined;
  readonly bytesOnDisk: number | undefined;

  constructor(kind: KaggleErrorKind, message: string, details: KaggleErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = "KaggleError";
    this.kind = kind;
    this.status = details.status;
    this.file = details.file;
    this.bytesOnDisk = details.bytesOnDisk;
  }
}

/** A username and key; both are non-enumerable, so printing or serialising the object shows only where they came from. */
export interface KaggleCredentials {
  readonly username: string;
  readonly key: string;
  readonly source: CredentialSource;
  /** The kaggle.json read, when source is "kaggle.json". */
  readonly file?: string;
  /** Set when kaggle.json is readable by other users (the CLI's warning, with the chmod that fixes it). */
  readonly warning?: string;
}

/** How to get credentials, said in every error about missing or unusable ones. */
export function credentialsHelp(jsonPath: string): string {
  return (
    "Set KAGGLE_USERNAME and KAGGLE_KEY in the environment, or save your API token as " +
    `${jsonPath} (kaggle.com → Settings → API → Create New Token downloads kaggle.json) and run ` +
    `\`chmod 600 ${jsonPath}\`.`
  );
}

/** A path as shown in messages: the home folder as `~` (notebook outputs should not carry home folder names). */
export function tildePath(path: string, home: string = homedir()): string {
  if (home === "" || home === sep) return path;
  if (path === home) return "~";
  return path.startsWith(home + sep) ? `~${path.slice(home.length)}` : path;
}

/** The folder of kaggle.json: $KAGGLE_CONFIG_DIR, else ~/.kaggle. */
export function kaggleConfigDir(env: NodeJS.ProcessEnv = process.env, home: string = homedir()): string {
  const configured = env.KAGGLE_CONFIG_DIR;
  return configured !== undefined && configured !== "" ? configured : join(home, ".kaggle");
}

/** Where the Kaggle CLI looks for kaggle.json. */
export function kaggleJsonPath(env: NodeJS.ProcessEnv = process.env, home: string = homedir()): string {
  return join(kaggleConfigDir(env, home), "kaggle.json");
}

function present(value: string | undefined): value is string {
  return value !== undefined && value !== "";
}

/** Where credentials would come from (never their values), or undefined when none are configured. */
export function kaggleCredentialSource(env: NodeJS.ProcessEnv = process.env, home: string = homedir()): CredentialSource | undefined {
  if (present(env.KAGGLE_USERNAME) && present(env.KAGGLE_KEY)) return "environment";
  return existsSync(kaggleJsonPath(env, home)) ? "kaggle.json" : undefined;
}

/** The credentials object, with username and key hidden from enumeration (console.log, inspect, JSON). */
function hiddenCredentials(username: string, key: string, visible: Omit<KaggleCredentials, "username" | "key">): KaggleCredentials {
  const credentials = { ...visible } as KaggleCredentials;
  Object.defineProperty(credentials, "username", { value: username, enumerable: false });
  Object.defineProperty(credentials, "key", { value: key, enumerable: false });
  return Object.freeze(credentials);
}

function badFile(jsonPath: string, shown: string, problem: string): KaggleError {
  return new KaggleError(
    "bad-credentials-file",
    `${shown} is not usable Kaggle credentials: ${problem}. It should be the JSON {"username": "...", "key": "..."} ` +
      `that kaggle.com → Settings → API → Create New Token downloads. ${credentialsHelp(shown)}`,
    { file: jsonPath },
  );
}

/** Reads kaggle.json; the messages name the file and what is wrong, never its content. */
function readKaggleJson(jsonPath: string, shown: string): { username: string; key: string } {
  let text: string;
  try {
    text = readFileSync(jsonPath, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "unknown error";
    throw badFile(jsonPath, shown, `it cannot be read (${code})`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // JSON.parse's message quotes the text: not shown.
    throw badFile(jsonPath, shown, "it is not valid JSON");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw badFile(jsonPath, shown, "it is not a JSON object");
  const record = parsed as Record<string, unknown>;
  for (const field of ["username", "key"]) {
    if (!(field in record)) throw badFile(jsonPath, shown, `it has no "${field}"`);
    if (typeof record[field] !== "string" || record[field] === "") throw badFile(jsonPath, shown, `its "${field}" is not a non-empty string`);
  }
  return { username: record.username as string, key: record.key as string };
}

/** The CLI's warning when kaggle.json can be read by group or others. */
function permissionWarning(jsonPath: string, shown: string): string | undefined {
  if (process.platform === "win32") return undefined;
  try {
    const mode = statSync(jsonPath).mode;
    return (mode & 0o044) !== 0 ? `Warning: your Kaggle API key in ${shown} is readable by other users; run \`chmod 600 ${shown}\`.` : undefined;
  } catch {
    return undefined;
  }
}

/** Why there are no credentials, with how to set them. */
function missingCredentials(env: NodeJS.ProcessEnv, jsonPath: string, shown: string): KaggleError {
  const onlyOne = present(env.KAGGLE_USERNAME) ? "KAGGLE_USERNAME is set but KAGGLE_KEY is not" : present(env.KAGGLE_KEY) ? "KAGGLE_KEY is set but KAGGLE_USERNAME is not" : undefined;
  const why = onlyOne !== undefined ? `${onlyOne}, and there is no ${shown}` : `KAGGLE_USERNAME/KAGGLE_KEY are not set and there is no ${shown}`;
  return new KaggleError("missing-credentials", `No Kaggle credentials: ${why}. ${credentialsHelp(shown)}`, { file: jsonPath });
}

/**
 * The Kaggle credentials, as the Kaggle CLI finds them: KAGGLE_USERNAME and KAGGLE_KEY when both are set, else
 * kaggle.json in $KAGGLE_CONFIG_DIR or ~/.kaggle. Throws a KaggleError ("missing-credentials" or
 * "bad-credentials-file") whose message says how to set them. Never log the result's username or key.
 */
export function resolveKaggleCredentials(env: NodeJS.ProcessEnv = process.env, home: string = homedir()): KaggleCredentials {
  const username = env.KAGGLE_USERNAME;
  const key = env.KAGGLE_KEY;
  if (present(username) && present(key)) return hiddenCredentials(username, key, { source: "environment" });
  const jsonPath = kaggleJsonPath(env, home);
  const shown = tildePath(jsonPath, home);
  if (!existsSync(jsonPath)) throw missingCredentials(env, jsonPath, shown);
  const fromFile = readKaggleJson(jsonPath, shown);
  const warning = permissionWarning(jsonPath, shown);
  return hiddenCredentials(fromFile.username, fromFile.key, warning === undefined ? { source: "kaggle.json", file: jsonPath } : { source: "kaggle.json", file: jsonPath, warning });
}

/** The value of an HTTP Basic Authorization header for these credentials (send it to Kaggle's API origin only). */
export function basicAuthorization(credentials: KaggleCredentials): string {
  return `Basic ${Buffer.from(`${credentials.username}:${credentials.key}`, "utf8").toString("base64")}`;
}
