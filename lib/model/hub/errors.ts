// What can go wrong when fetching a file from the Hugging Face Hub: one error class whose `kind` says what failed
// and whose message says what to do (the messages themselves are built in lib/model/hub/call).

/** What can go wrong; each kind's message names the repo and file and says what to do. */
export type HubErrorKind =
  | "bad-argument"
  | "offline-mode"
  | "unreachable"
  | "interrupted"
  | "unauthorized"
  | "forbidden"
  | "not-found"
  | "http"
  | "tls"
  | "not-the-hub"
  | "checksum"
  | "disk-full"
  | "filesystem";

/** Kinds that mean "the Hub cannot be used right now" (rather than "something is misconfigured"). */
const CANNOT_REACH: ReadonlySet<HubErrorKind> = new Set(["offline-mode", "unreachable", "interrupted", "http", "not-the-hub"]);

/** Failures of a HEAD after which huggingface_hub falls back to a cached copy (all but "not found" and TLS). */
export const CACHE_FALLBACK: ReadonlySet<HubErrorKind> = new Set(["unreachable", "http", "not-the-hub", "unauthorized", "forbidden"]);

export class HubError extends Error {
  override readonly name = "HubError";
  /** One line, without the advice: what loadImagenetWeights gives as its `why`. */
  readonly summary: string;
  readonly status: number | undefined;

  constructor(
    readonly kind: HubErrorKind,
    message: string,
    details: { summary?: string; status?: number; cause?: Error } = {},
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.summary = details.summary ?? message;
    this.status = details.status;
  }
}

/** Whether an error means the Hub cannot be used now (offline mode, network down, server trouble). */
export function isHubUnavailable(error: unknown): error is HubError {
  return error instanceof HubError && CANNOT_REACH.has(error.kind);
}
