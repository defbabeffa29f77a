// A stand-in of the Hugging Face Hub on 127.0.0.1 for tests (lib/model/hub-weights, notebook 02): a "Hub" origin
// answering HEAD/GET /{repo}/resolve/{revision}/{file} with the Hub's headers (X-Repo-Commit, X-Linked-Etag,
// X-Linked-Size, X-Error-Code) and a 302 to a second "storage" origin (another port) that serves the bytes with ETag
// and Range/206. Every request is recorded in `seen`.

import { createHash } from "node:crypto";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";

/** A stand-in commit hash for the fake repos (not a real Hub commit). */
export function fakeCommit(label: string): string {
  return createHash("sha1").update(label).digest("hex");
}

export function sha256(bytes: Buffer): string {
  return createHash("sha256").update(bytes).digest("hex");
}

export interface Seen {
  server: "hub" | "storage";
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
}

export interface FakeRepo {
  branches: Record<string, string>;
  files: Record<string, Record<string, Buffer>>;
  /** Requests need `Authorization: Bearer <token>`. */
  token?: string;
  /** Without the token: 403 GatedRepo instead of 401 RepoNotFound. */
  gated?: boolean;
}

export interface FakeHubOptions {
  repos: Record<string, FakeRepo>;
  /** Storage: the first `cuts` GETs stop after `cutAfter` bytes (the connection is destroyed). */
  cutAfter?: number;
  cuts?: number;
  /** Storage: answer Range requests with the whole file (200). */
  ignoreRange?: boolean;
  /** Storage: serve the bytes with one byte changed. */
  corrupt?: boolean;
  /** Hub: never answer (the HEAD hangs). */
  silent?: boolean;
  /** Hub: old repo id → new one, answered with a relative 307 (a renamed repo). */
  renamed?: Record<string, string>;
  /** Hub: answer 200 with an HTML page and none of the Hub's headers (a captive portal). */
  portal?: boolean;
}

export interface FakeHub {
  url: string;
  storageUrl: string;
  seen: Seen[];
  options: FakeHubOptions;
  close(): Promise<void>;
}

export async function listen(server: Server): Promise<string> {
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

export async function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((done) => server.close(() => done()));
}

export async function startFakeHub(options: FakeHubOptions): Promise<FakeHub> {
  const seen: Seen[] = [];
  const blobs = new Map<string, Buffer>();
  for (const repo of Object.values(options.repos)) {
    for (const files of Object.values(repo.files)) for (const bytes of Object.values(files)) blobs.set(sha256(bytes), bytes);
  }
  let cutsLeft = options.cuts ?? 0;

  const storage = createServer((req, res) => {
    seen.push({ server: "storage", method: req.method ?? "", path: req.url ?? "", headers: req.headers });
    const sha = /^\/blobs\/([0-9a-f]{64})\?/.exec(req.url ?? "")?.[1];
    const stored = sha === undefined ? undefined : blobs.get(sha);
    if (sha === undefined || stored === undefined) {
      res.writeHead(404).end();
      return;
    }
    const body = Buffer.from(stored);
    if (options.corrupt === true) body[1000] ^= 0xff;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
    const start = range !== null && options.ignoreRange !== true ? Number(range[1]) : 0;
    if (start >= body.length && start > 0) {
      res.writeHead(416, { "content-range": `bytes */${body.length}` }).end();
      return;
    }
    const part = body.subarray(start);
    res.writeHead(range !== null && options.ignoreRange !== true ? 206 : 200, {
      "content-length": String(part.length),
      "content-type": "application/octet-stream",
      "accept-ranges": "bytes",
      etag: `"${sha}"`,
      ...(range !== null && options.ignoreRange !== true ? { "content-range": `bytes ${start}-${body.length - 1}/${body.length}` } : {}),
    });
    if (cutsLeft > 0 && options.cutAfter !== undefined && part.length > options.cutAfter) {
      cutsLeft--;
      // Let the client take the bytes in before the cut (bytes arriving with the reset itself may be dropped).
      res.write(part.subarray(0, options.cutAfter), () => setTimeout(() => res.socket?.destroy(), 50));
      return;
    }
    res.end(part);
  });
  const storageUrl = await listen(storage);

  const hub = createServer((req, res) => {
    seen.push({ server: "hub", method: req.method ?? "", path: req.url ?? "", headers: req.headers });
    if (options.silent === true) return;
    if (options.portal === true) {
      res.writeHead(200, { "content-type": "text/html", "content-length": "5000" }).end();
      return;
    }
    const match = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec((req.url ?? "").split("?")[0]);
    const newName = match === null ? undefined : options.renamed?.[match[1]];
    if (match !== null && newName !== undefined) {
      res.writeHead(307, { location: `/${newName}/resolve/${match[2]}/${match[3]}` }).end();
      return;
    }
    const repo = match === null ? undefined : options.repos[match[1]];
    const authorised = repo !== undefined && (repo.token === undefined || req.headers.authorization === `Bearer ${repo.token}`);
    if (match === null || repo === undefined || (!authorised && repo.gated !== true)) {
      res.writeHead(401, { "x-error-code": "RepoNotFound", "x-error-message": "Repository not found" }).end();
      return;
    }
    if (!authorised) {
      res.writeHead(403, { "x-error-code": "GatedRepo", "x-error-message": `Access to model ${match[1]} is restricted and you are not in the authorized list.` }).end();
      return;
    }
    const revision = decodeURIComponent(match[2]);
    const commit = repo.files[revision] !== undefined ? revision : repo.branches[revision];
    if (commit === undefined) {
      res.writeHead(404, { "x-error-code": "RevisionNotFound", "x-error-message": `Invalid rev id: ${revision}` }).end();
      return;
    }
    const bytes = repo.files[commit][decodeURIComponent(match[3])];
    if (bytes === undefined) {
      res.writeHead(404, { "x-error-code": "EntryNotFound", "x-error-message": "Entry not found", "x-repo-commit": commit }).end();
      return;
    }
    const sha = sha256(bytes);
    res.writeHead(302, {
      location: `${storageUrl}/blobs/${sha}?X-Amz-Signature=fake&X-Amz-Expires=3600`,
      "x-repo-commit": commit,
      "x-linked-etag": `"${sha}"`,
      "x-linked-size": String(bytes.length),
      etag: `W/"${fakeCommit(`pointer-${sha}`)}"`,
      "content-length": "0",
    });
    res.end();
  });
  const url = await listen(hub);
  return {
    url,
    storageUrl,
    seen,
    options,
    async close() {
      await Promise.all([closeServer(hub), closeServer(storage)]);
    },
  };
}
