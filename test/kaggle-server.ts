// A fake Kaggle for tests: two HTTP servers on 127.0.0.1 (random ports, so two origins), like Kaggle's API and the
// storage host its download links point to.
//
//   API      GET /api/v1/datasets/download/{owner}/{dataset}   HTTP Basic → 302 to a fresh single-use signed link
//   storage  GET /storage/{dataset}.zip?X-Goog-Signature=…     the archive, with Range / If-Range support
//
// Options make it misbehave the ways the real ones can: wrong credentials (401), forced statuses (403 terms not
// accepted, 404, 5xx), a connection cut after N bytes (once per cut), a stall (no data, connection open), Range
// ignored (200 with the whole file). Every request is recorded with its headers, so a test can check, e.g., that
// the storage host never saw an Authorization header.
//
// The servers close themselves after `lifetimeMs` (default 60 s) if a test forgets, and never keep the process alive.

import { createHash, randomBytes } from "node:crypto";
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface FakeKaggleOptions {
  /** The archive's bytes. */
  archive: Buffer;
  /** `owner/name` served (default "jessicali9530/celeba-dataset"). */
  dataset?: string;
  /** The accepted credentials (defaults "fake-user" / "fake-key"); anything else gets 401. */
  username?: string;
  key?: string;
  /** The API answers this status (with a Kaggle-like JSON body) instead of redirecting, e.g. 401, 403, 404, 500. */
  apiStatus?: number;
  /** Archive offsets where the storage host cuts the connection, each once: bytes before it are sent, then it closes. */
  cutAt?: readonly number[];
  /** An archive offset where the storage host stops sending (connection left open), once. */
  stallAt?: number;
  /** Answer Range requests with 200 and the whole archive. */
  ignoreRange?: boolean;
  /** The archive's ETag; default a strong one from its hash; null for none. */
  etag?: string | null;
  /** Default "application/zip". */
  contentType?: string;
  /** Redirect status of the API (default 302). */
  redirectStatus?: number;
  /** Send the archive chunked, without Content-Length (default false). */
  chunked?: boolean;
  /** The servers close themselves after this long (default 60 000 ms). */
  lifetimeMs?: number;
}

export interface RecordedRequest {
  readonly server: "api" | "storage";
  readonly method: string;
  /** Path and query. */
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  /** The status answered (0 until the response starts). */
  status: number;
}

export interface FakeKaggle {
  /** What KAGGLE_API_ENDPOINT is set to: `http://127.0.0.1:<port>` (the API is under /api/v1). */
  readonly endpoint: string;
  /** The storage host's origin (`http://127.0.0.1:<other port>`). */
  readonly storageOrigin: string;
  /** Environment variables for a client of this fake: KAGGLE_API_ENDPOINT, KAGGLE_USERNAME, KAGGLE_KEY. */
  readonly env: { KAGGLE_API_ENDPOINT: string; KAGGLE_USERNAME: string; KAGGLE_KEY: string };
  /** Every request so far, in order. */
  readonly requests: RecordedRequest[];
  /** The requests one server saw. */
  requestsTo(server: "api" | "storage"): RecordedRequest[];
  /** Stops both servers, cutting open connections. Safe to call more than once. */
  close(): Promise<void>;
}

const DEFAULT_DATASET = "jessicali9530/celeba-dataset";

function listen(server: Server): Promise<string> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      resolve(`http://127.0.0.1:${port}`);
    });
  });
}

function stop(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

function sendJson(res: ServerResponse, status: number, body: object, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify(body));
}

/** `bytes=N-` or `bytes=N-M` (one range), else undefined. */
function parseRange(header: string | undefined, size: number): { start: number; end: number } | "unsatisfiable" | undefined {
  const match = /^bytes=(\d+)-(\d*)$/.exec(header ?? "");
  if (match === null) return undefined;
  const start = Number(match[1]);
  const end = match[2] === "" ? size - 1 : Math.min(Number(match[2]), size - 1);
  return start >= size || end < start ? "unsatisfiable" : { start, end };
}

/** Starts the fake API and storage host. */
export async function startFakeKaggle(options: FakeKaggleOptions): Promise<FakeKaggle> {
  const dataset = options.dataset ?? DEFAULT_DATASET;
  const name = dataset.split("/")[1];
  const username = options.username ?? "fake-user";
  const key = options.key ?? "fake-key";
  const archive = options.archive;
  const etag = options.etag === undefined ? `"${createHash("sha1").update(archive).digest("hex")}"` : options.etag;
  const cuts = new Set(options.cutAt ?? []);
  let stallAt = options.stallAt;
  const links = new Set<string>();
  const requests: RecordedRequest[] = [];
  const expectedAuth = `Basic ${Buffer.from(`${username}:${key}`).toString("base64")}`;

  const record = (server: "api" | "storage", req: IncomingMessage, res: ServerResponse): void => {
    const entry: RecordedRequest = { server, method: req.method ?? "", url: req.url ?? "", headers: { ...req.headers }, status: 0 };
    requests.push(entry);
    res.on("finish", () => (entry.status = res.statusCode));
    res.on("close", () => (entry.status = entry.status || res.statusCode));
  };

  let storageOrigin = "";
  const api = createServer((req, res) => {
    record("api", req, res);
    if (req.method !== "GET" || (req.url ?? "").split("?")[0] !== `/api/v1/datasets/download/${dataset}`) {
      return sendJson(res, 404, { code: 404, message: "Not found" });
    }
    if (req.headers.authorization !== expectedAuth) {
      return sendJson(res, 401, { code: 401, message: "Unauthenticated" }, { "www-authenticate": 'Basic realm="kaggle"' });
    }
    if (options.apiStatus !== undefined) {
      const messages: Record<number, string> = { 403: "Permission 'datasets.get' was denied", 404: "Not found" };
      return sendJson(res, options.apiStatus, { code: options.apiStatus, message: messages[options.apiStatus] ?? "Error" });
    }
    const token = randomBytes(12).toString("hex");
    links.add(token);
    res.writeHead(options.redirectStatus ?? 302, { location: `${storageOrigin}/storage/${name}.zip?X-Goog-Expires=600&X-Goog-Signature=${token}` });
    res.end();
  });

  /** Sends archive[start..end], cutting or stalling at the first unused cut/stall offset inside it. */
  const sendBytes = (res: ServerResponse, start: number, end: number): void => {
    const cut = [...cuts].filter((c) => c > start && c <= end).sort((a, b) => a - b)[0];
    const stall = stallAt !== undefined && stallAt > start && stallAt <= end ? stallAt : undefined;
    const stop = Math.min(cut ?? Infinity, stall ?? Infinity);
    if (stop === Infinity) return void res.end(archive.subarray(start, end + 1));
    if (stop === cut) cuts.delete(cut);
    else stallAt = undefined;
    res.write(archive.subarray(start, stop), () => {
      // Give the client time to read what was sent, then cut (a stall just stops writing).
      if (stop === cut) setTimeout(() => res.socket?.destroy(), 30);
    });
  };

  const storage = createServer((req, res) => {
    record("storage", req, res);
    const url = new URL(req.url ?? "/", storageOrigin);
    const token = url.searchParams.get("X-Goog-Signature") ?? "";
    if (req.method !== "GET" || url.pathname !== `/storage/${name}.zip` || !links.delete(token)) {
      res.writeHead(403, { "content-type": "application/xml" });
      return void res.end("<Error><Code>ExpiredToken</Code><Message>The provided token has expired.</Message></Error>");
    }
    const headers: Record<string, string> = { "content-type": options.contentType ?? "application/zip", "accept-ranges": options.ignoreRange === true ? "none" : "bytes" };
    if (etag !== null) headers.etag = etag;
    const ifRange = req.headers["if-range"];
    const rangeAllowed = options.ignoreRange !== true && (ifRange === undefined || ifRange === etag);
    const range = rangeAllowed ? parseRange(req.headers.range, archive.length) : undefined;
    if (range === "unsatisfiable") {
      res.writeHead(416, { "content-range": `bytes */${archive.length}` });
      return void res.end();
    }
    const [start, end] = range === undefined ? [0, archive.length - 1] : [range.start, range.end];
    if (options.chunked !== true) headers["content-length"] = String(end - start + 1);
    if (range !== undefined) headers["content-range"] = `bytes ${start}-${end}/${archive.length}`;
    res.writeHead(range === undefined ? 200 : 206, headers);
    sendBytes(res, start, end);
  });

  const endpoint = await listen(api);
  storageOrigin = await listen(storage);
  api.unref();
  storage.unref();
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => (closing ??= Promise.all([stop(api), stop(storage)]).then(() => undefined));
  setTimeout(() => void close(), options.lifetimeMs ?? 60_000).unref();
  return {
    endpoint,
    storageOrigin,
    env: { KAGGLE_API_ENDPOINT: endpoint, KAGGLE_USERNAME: username, KAGGLE_KEY: key },
    requests,
    requestsTo: (server) => requests.filter((r) => r.server === server),
    close,
  };
}
