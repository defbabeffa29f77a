// What must never reach an exported post: credentials (Kaggle's key and the Basic-auth string made from it, any
// secret-looking environment value), tokens in URLs (e.g. the rating page's `?token=`), absolute local paths (the
// project root, the home folder, the temp folder) and the ids of a blind test's key before unblinding.
//
// A scrubber is built once per export from what is private on this machine and applied to every piece of text
// that goes into the post (prose, code, outputs, HTML, plotly JSON); `findLeaks` checks a finished document.

import { existsSync, readFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { basicAuthorization, resolveKaggleCredentials } from "../data/kaggle-credentials";
import { blindTestPaths } from "../blind-test/session";

/** What replaces a credential or token. */
export const REDACTED = "[redacted]";
/** What replaces an id of a blind test's key. */
export const BLINDED = "[blinded]";

/** Everything private on this machine that an export must not show. */
export interface PrivateValues {
  /** Absolute folders shown relative to the project or with a placeholder: [folder, replacement]. */
  readonly paths: readonly (readonly [string, string])[];
  /** Literal secret values (credentials, the Basic-auth strings made from them). */
  readonly secrets: readonly string[];
  /** Ids from a blind test's key file. */
  readonly blindIds: readonly string[];
}

/** Environment variables whose values are secret by their name. */
const SECRET_NAME = /(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH)/i;
/** Values shorter than this are not scrubbed literally (too likely to match ordinary text). */
const MIN_SECRET_LENGTH = 6;

/** The values of secret-named environment variables (KAGGLE_KEY, *_TOKEN, …), plus Kaggle's Basic-auth strings. */
export function environmentSecrets(env: NodeJS.ProcessEnv = process.env, home: string = homedir()): string[] {
  const secrets = Object.entries(env)
    .filter(([name, value]) => SECRET_NAME.test(name) && value !== undefined && value.length >= MIN_SECRET_LENGTH)
    .map(([, value]) => value as string);
  try {
    const credentials = resolveKaggleCredentials(env, home);
    const basic = basicAuthorization(credentials);
    secrets.push(credentials.key, basic.slice("Basic ".length));
  } catch {
    // no Kaggle credentials configured: nothing of theirs to scrub
  }
  return [...new Set(secrets.filter((s) => s.length >= MIN_SECRET_LENGTH))];
}

/** Whether a string looks like a generated id: 4+ characters, no spaces, letters and digits mixed. */
function isIdLike(s: string): boolean {
  return s.length >= 4 && !/\s/.test(s) && /[A-Za-z]/.test(s) && /\d/.test(s);
}

/**
 * The ids of a parsed key file: id-like object keys at any depth (`{ "g7x2k9": { … } }`) and strings under fields
 * named id/ids/…Id/…_id (`[{ "id": "g7x2k9", … }]`, id-like or 8+ characters). What they map to (feature numbers,
 * "sparse") is left alone.
 */
function keyFileIds(value: unknown, out: Set<string>, underIdField = false): void {
  if (typeof value === "string") {
    const t = value.trim();
    if (underIdField && (isIdLike(t) || (t.length >= 8 && !/\s/.test(t)))) out.add(t);
  } else if (Array.isArray(value)) {
    for (const v of value) keyFileIds(v, out, underIdField);
  } else if (typeof value === "object" && value !== null) {
    for (const [k, v] of Object.entries(value)) {
      if (isIdLike(k)) out.add(k);
      keyFileIds(v, out, /(^|_)ids?$|[a-z]Ids?$/.test(k));
    }
  }
}

/** The blind-test key file of a run folder, where the blind test writes it (blindTestPaths: `blind-test-key.json`), if there is one. */
export function blindKeyFiles(runFolder: string): string[] {
  const key = blindTestPaths(runFolder).key;
  return existsSync(key) ? [key] : [];
}

/** The ids in a run's blind-test key file (an unreadable file is an error naming it). */
export function blindKeyIds(runFolder: string): string[] {
  const ids = new Set<string>();
  for (const file of blindKeyFiles(runFolder)) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(file, "utf8"));
    } catch (e) {
      throw new Error(`${file} is not valid JSON (${(e as Error).message}): the export cannot tell which ids to hide; fix or remove it`);
    }
    keyFileIds(parsed, ids);
  }
  return [...ids];
}

/** The private values of this machine and run: project root, home and temp folders, secrets, blind-test ids. */
export function privateValues(options: { root: string; runFolder?: string; env?: NodeJS.ProcessEnv; home?: string; extraPaths?: readonly (readonly [string, string])[] }): PrivateValues {
  const env = options.env ?? process.env;
  const home = options.home ?? homedir();
  const temp = [tmpdir(), "/tmp", "/var/tmp"];
  const paths: (readonly [string, string])[] = [[options.root, "."], ...(options.extraPaths ?? [])];
  for (const t of temp) paths.push([t, "$TMPDIR"]);
  if (home !== "" && home !== "/") paths.push([home, "~"]);
  return {
    paths: paths.filter(([p]) => p.length > 1),
    secrets: environmentSecrets(env, home),
    blindIds: options.runFolder !== undefined ? blindKeyIds(options.runFolder) : [],
  };
}

const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** Characters that can continue a path name: a folder only matches when followed by none of them. */
const PATH_END = "(?![A-Za-z0-9._~-])";
/** …and only when not the tail of a longer name or URL path ("https://x.org/root" is not the folder /root). */
const PATH_START = "(?<![A-Za-z0-9._~-])";

/** Patterns of secrets whatever their value: URL tokens, Basic/Bearer authorisation, credentials in URLs. */
const SECRET_PATTERNS: readonly (readonly [RegExp, string])[] = [
  [/([?&](?:token|access_token|api_key|apikey|key|password|secret|sig|signature|auth)=)[^&#\s"'<>\\]+/gi, `$1${REDACTED}`],
  [/\b(Basic|Bearer)\s+[A-Za-z0-9+/=._~-]{8,}/g, `$1 ${REDACTED}`],
  [/(\b[a-z][a-z0-9+.-]*:\/\/)[^/\s:@"'<>]+:[^/\s@"'<>]+@/gi, `$1${REDACTED}@`],
  [/("(?:key|token|password|secret)"\s*:\s*)"[^"]{6,}"/gi, `$1"${REDACTED}"`],
];

/** Text → the same text with nothing private in it. */
export type Scrubber = (text: string) => string;

/** A scrubber for these private values: secrets first, then paths (longest first), then blind-test ids. */
export function createScrubber(values: PrivateValues): Scrubber {
  const secrets = [...values.secrets].sort((a, b) => b.length - a.length);
  const paths = [...values.paths].sort((a, b) => b[0].length - a[0].length).map(([folder, to]): [RegExp, string, RegExp, string] => {
    const f = escapeRegExp(folder.replace(/\/+$/, ""));
    // "<folder>/x" → "x" for the project root (paths relative to it), "<to>/x" otherwise; a bare folder → to.
    return [new RegExp(`(?:file://)?${PATH_START}${f}/`, "g"), to === "." ? "" : `${to}/`, new RegExp(`(?:file://)?${PATH_START}${f}${PATH_END}`, "g"), to];
  });
  const ids = [...values.blindIds].sort((a, b) => b.length - a.length).map((id) => new RegExp(`(?<![A-Za-z0-9_-])${escapeRegExp(id)}(?![A-Za-z0-9_-])`, "g"));
  return (text: string): string => {
    let out = text;
    for (const secret of secrets) out = out.split(secret).join(REDACTED);
    for (const [pattern, replacement] of SECRET_PATTERNS) out = out.replace(pattern, replacement);
    for (const [withSlash, to, bare, bareTo] of paths) out = out.replace(withSlash, to).replace(bare, bareTo);
    for (const id of ids) out = out.replace(id, BLINDED);
    return out;
  };
}

/** One private thing found in a document. */
export interface Leak {
  readonly kind: "secret" | "path" | "blind-id" | "token";
  /** The matched text with its middle masked (safe to print). */
  readonly sample: string;
}

function mask(s: string): string {
  return s.length <= 6 ? "***" : `${s.slice(0, 3)}…${s.slice(-2)}`;
}

/** Private things still present in `text` (an empty list means it is clean). */
export function findLeaks(text: string, values: PrivateValues): Leak[] {
  const leaks: Leak[] = [];
  for (const s of values.secrets) if (text.includes(s)) leaks.push({ kind: "secret", sample: mask(s) });
  for (const [folder] of values.paths) {
    if (new RegExp(`${PATH_START}${escapeRegExp(folder.replace(/\/+$/, ""))}(?:/|${PATH_END})`).test(text)) leaks.push({ kind: "path", sample: folder });
  }
  for (const id of values.blindIds) {
    if (new RegExp(`(?<![A-Za-z0-9_-])${escapeRegExp(id)}(?![A-Za-z0-9_-])`).test(text)) leaks.push({ kind: "blind-id", sample: mask(id) });
  }
  for (const [pattern] of SECRET_PATTERNS) {
    for (const m of text.matchAll(new RegExp(pattern.source, pattern.flags))) {
      if (!m[0].includes(REDACTED)) leaks.push({ kind: "token", sample: mask(m[0]) });
    }
  }
  return leaks;
}
