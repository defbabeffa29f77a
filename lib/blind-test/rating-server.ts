// The rating page's server: 127.0.0.1 only, a random port, a per-session token.
//
// Routes (every one needs ?token=<token>):
//   GET  /                 the page (rating-page.ts)
//   GET  /api/state        {"total","rated","next"}: progress and the opaque id to rate next (null when done)
//   GET  /images/<id>.png  a grid of the session; any other path is refused
//   POST /api/rate         {"id","rating"} → the new state (the rating is on disk before the answer); a body that is
//                          not a JSON object is a 400, one over BODY_LIMIT bytes a 413 (and is not read further)
//   POST /api/undo         takes back the last rating → the new state
// Requests from outside loopback, with a Host that is not this server (DNS rebinding), or without the token are
// refused before anything else is looked at; a POST must also carry the page's own Origin (browsers send Origin with
// every POST, same-origin ones included), so another site cannot post ratings even with a leaked token. Nothing served says which grids are dense or sparse: the server
// never reads the unblinding key. While it runs the server is the one writer of the session's ratings (it holds
// blind-test/ratings.lock, see lib/blind-test/session.ts): a second server or kernel rating the same run is refused.

import { timingSafeEqual, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { BlindSession } from "./session";
import { isValidRating } from "./ratings-file";
import { newDisplayHandle, showHtml } from "../display/notebook-display";
import { ratingPageHtml } from "./rating-page";

/** Is this remote address the machine itself? */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (address === undefined) return false;
  return address === "::1" || /^127\.\d+\.\d+\.\d+$/.test(address) || /^::ffff:127\.\d+\.\d+\.\d+$/.test(address);
}

function sameToken(given: string | null, token: string): boolean {
  if (given === null) return false;
  const a = Buffer.from(given, "utf8");
  const b = Buffer.from(token, "utf8");
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The parts of a request the access check looks at. */
export interface RequestFacts {
  readonly remoteAddress: string | undefined;
  readonly host: string | undefined;
  readonly url: string;
}

export type AccessDecision = { readonly ok: true; readonly path: string } | { readonly ok: false; readonly status: number; readonly reason: string };

/** Decides whether a request may be answered: loopback client, this server's Host, the session's token. */
export function checkRequest(facts: RequestFacts, token: string, port: number): AccessDecision {
  if (!isLoopbackAddress(facts.remoteAddress)) return { ok: false, status: 403, reason: "only this machine may use the rating page" };
  const allowedHosts = [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`];
  if (facts.host === undefined || !allowedHosts.includes(facts.host.toLowerCase())) {
    return { ok: false, status: 403, reason: "unexpected Host header" };
  }
  let url: URL;
  try {
    url = new URL(facts.url, `http://127.0.0.1:${port}`);
  } catch {
    return { ok: false, status: 400, reason: "bad URL" };
  }
  if (!sameToken(url.searchParams.get("token"), token)) return { ok: false, status: 401, reason: "missing or wrong token: open the link the notebook shows" };
  return { ok: true, path: url.pathname };
}

/** Whether a request's Origin is this server as the browser reached it (the Host it sent): the page itself. */
export function isSameOrigin(origin: string | undefined, host: string | undefined): boolean {
  return origin !== undefined && host !== undefined && origin.toLowerCase() === `http://${host.toLowerCase()}`;
}

const IMAGE_PATH = /^\/images\/([0-9a-f]{12})\.png$/;

/** The largest request body read, in bytes: a rating is about 40. */
export const BODY_LIMIT = 4096;

/** A request body over BODY_LIMIT: answered 413 without reading the rest. */
class BodyTooLarge extends Error {}

export interface RatingServer {
  readonly url: string;
  readonly port: number;
  readonly token: string;
  /** Resolves when every grid is rated. */
  readonly finished: Promise<void>;
  /** Stops the server and releases the session's ratings lock. */
  close(): Promise<void>;
}

function send(res: ServerResponse, status: number, type: string, body: string | Buffer, headers: Record<string, string> = {}): void {
  res.writeHead(status, {
    "content-type": type,
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    ...headers,
  });
  res.end(body);
}

function sendJson(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  send(res, status, "application/json; charset=utf-8", JSON.stringify(value), headers);
}

/** The request body as text; rejects with BodyTooLarge as soon as it is known to exceed `limit` (declared or read), reading no further. */
function readBody(req: IncomingMessage, limit = BODY_LIMIT): Promise<string> {
  return new Promise((resolve, reject) => {
    if (Number(req.headers["content-length"] ?? 0) > limit) return reject(new BodyTooLarge());
    let size = 0;
    const chunks: Buffer[] = [];
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size <= limit) {
        chunks.push(chunk);
        return;
      }
      req.removeListener("data", onData);
      chunks.length = 0;
      reject(new BodyTooLarge());
    };
    req.on("data", onData);
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

/** The rate request's body: a JSON object, or an answer (400, 413) saying what is wrong with it. */
async function readRateBody(req: IncomingMessage): Promise<{ readonly body: Record<string, unknown> } | { readonly status: number; readonly error: string }> {
  let text: string;
  try {
    text = await readBody(req);
  } catch (error) {
    if (error instanceof BodyTooLarge) return { status: 413, error: `the body is over ${BODY_LIMIT} bytes: send JSON {id, rating}` };
    throw error;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { status: 400, error: "the body must be JSON {id, rating}" };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return { status: 400, error: `the body must be a JSON object {id, rating}, not ${JSON.stringify(value)}` };
  return { body: value as Record<string, unknown> };
}

function stateOf(session: BlindSession): { total: number; rated: number; next: string | null } {
  return { total: session.total, rated: session.rated, next: session.next() ?? null };
}

/** Serves a session's rating page on 127.0.0.1 at a random port (or `port`), with a fresh token. */
export async function startRatingServer(session: BlindSession, options: { port?: number; rater?: string } = {}): Promise<RatingServer> {
  const token = randomBytes(18).toString("base64url");
  const rater = options.rater ?? "human";
  let resolveFinished: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => {
    resolveFinished = resolve;
  });
  if (session.done) resolveFinished();
  let port = 0;

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const decision = checkRequest({ remoteAddress: req.socket.remoteAddress, host: req.headers.host, url: req.url ?? "/" }, token, port);
    if (decision.ok === false) return sendJson(res, decision.status, { error: decision.reason });
    if (req.method !== "GET" && req.method !== "HEAD" && !isSameOrigin(req.headers.origin, req.headers.host)) {
      return sendJson(res, 403, { error: "changes are taken only from the rating page itself (this request's Origin header is missing or another site's)" });
    }
    const path = decision.path;
    if (req.method === "GET" && path === "/") return send(res, 200, "text/html; charset=utf-8", ratingPageHtml(token));
    if (req.method === "GET" && path === "/api/state") return sendJson(res, 200, stateOf(session));
    const image = IMAGE_PATH.exec(path);
    if (req.method === "GET" && image !== null && session.has(image[1])) {
      return send(res, 200, "image/png", readFileSync(session.imagePath(image[1])));
    }
    if (req.method === "POST" && path === "/api/rate") {
      const read = await readRateBody(req);
      if ("status" in read) return sendJson(res, read.status, { error: read.error }, read.status === 413 ? { connection: "close" } : {});
      const body = read.body;
      if (typeof body.id !== "string" || !session.has(body.id)) return sendJson(res, 404, { error: "no such grid" });
      if (!isValidRating(body.rating)) return sendJson(res, 400, { error: "a rating is an integer from 1 to 7" });
      if (body.id !== session.next()) return sendJson(res, 409, { error: "that grid is not the one to rate now", ...stateOf(session) });
      session.rate(body.id, body.rating, rater);
      if (session.done) resolveFinished();
      return sendJson(res, 200, stateOf(session));
    }
    if (req.method === "POST" && path === "/api/undo") {
      session.undo();
      return sendJson(res, 200, stateOf(session));
    }
    return sendJson(res, 404, { error: "not found" });
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { error: error instanceof Error ? error.message : String(error) });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, "127.0.0.1", () => resolve());
  });
  port = (server.address() as AddressInfo).port;
  const closeServer = (): Promise<void> =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  try {
    session.acquireWriter(`the rating page server at http://127.0.0.1:${port}/`);
  } catch (error) {
    await closeServer();
    throw error;
  }
  return {
    url: `http://127.0.0.1:${port}/?token=${token}`,
    port,
    token,
    finished,
    close: async () => {
      await closeServer();
      session.close();
    },
  };
}

/**
 * Shows the page inline (an iframe) with a link to open it in a tab, waits until every grid is rated, stops the
 * server, and replaces the page in the notebook's output by a line saying so (the saved notebook and the exported
 * post keep no link to a server that no longer runs).
 */
export async function rateInNotebook(session: BlindSession, options: { height?: number } = {}): Promise<void> {
  const server = await startRatingServer(session);
  const handle = newDisplayHandle();
  const html =
    `<p><a href="${server.url}" target="_blank" rel="noopener">Open the rating page in a new tab</a> ` +
    `(only on this machine; it stops when every grid is rated or the kernel stops)</p>` +
    `<iframe src="${server.url}" width="100%" height="${options.height ?? 720}" style="border:1px solid #ccc"></iframe>`;
  showHtml(html, { handle, text: `Rating page: ${server.url}` });
  try {
    await server.finished;
  } finally {
    await server.close();
  }
  showHtml(`<p>All ${session.total} grids rated on the rating page.</p>`, { handle });
}
