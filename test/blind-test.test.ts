// The blind-test session on disk, the automatic rater, and what the rating server serves before unblinding.

import { appendFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, describe, expect, it } from "vitest";
import { autoRate, bernoulliKlBits, rateRandomGrids } from "../lib/blind-test/auto-rater";
import { blindTestPaths, BlindSession, ratingsByKind, reencodePng, seededShuffle, sessionKinds, type FeatureKind } from "../lib/blind-test/session";
import { blindTestKinds } from "../lib/blind-test/analysis";
import { applyOverrides, defaultConfig } from "../lib/run/config";
import type { AttributeTable } from "../lib/data/celeba-metadata";
import { checkRequest, isLoopbackAddress, startRatingServer } from "../lib/blind-test/rating-server";

const scratch = mkdtempSync(join(tmpdir(), "blind-test-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** A PNG that carries a text in its metadata and a colour, as a careless renderer might. */
async function leakyPng(text: string, shade: number): Promise<Buffer> {
  return sharp({ create: { width: 24, height: 24, channels: 3, background: { r: shade, g: 10, b: 99 } } })
    .png()
    .withMetadata({ exif: { IFD0: { ImageDescription: text } } })
    .toBuffer();
}

/** A feature's "top rows": fake ones that encode the kind and feature. */
const rowsOf = (kind: FeatureKind, feature: number): number[] => [feature, kind === "dense" ? 0 : 1];
const leakyGrid = (rows: readonly number[]): Promise<Buffer> => leakyPng(`rows:${rows.join(",")}`, 40 + rows[1] * 150);

const features = [16, 17, 18, 19];

interface Reply {
  readonly status: number;
  readonly body: Buffer;
}

/** One request to a local server; a POST carries the server's own Origin unless `headers` says otherwise (as a browser's would). */
function call(port: number, path: string, options: { method?: string; body?: string | Buffer; headers?: Record<string, string> } = {}): Promise<Reply> {
  const method = options.method ?? "GET";
  const origin: Record<string, string> = method === "POST" ? { origin: `http://127.0.0.1:${port}` } : {};
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, method, headers: { "content-type": "application/json", ...origin, ...options.headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
    });
    req.on("error", reject);
    req.end(options.body);
  });
}

describe("blind session", () => {
  const run = join(scratch, "run-a");
  it("shuffles with the seed, gives opaque ids, keeps the key apart, strips metadata from the grids", async () => {
    const session = await BlindSession.open(run, { features, seed: 5, rowsOf, renderGrid: leakyGrid });
    const paths = blindTestPaths(run);
    expect(session.total).toBe(8);
    const file = readFileSync(paths.session, "utf8");
    expect(file).not.toMatch(/dense|sparse/);
    for (const id of session.file.order) expect(id).toMatch(/^[0-9a-f]{12}$/);
    expect(paths.key.startsWith(paths.dir + "/")).toBe(false);
    const key = JSON.parse(readFileSync(paths.key, "utf8")) as { items: { id: string; kind: string; feature: number }[] };
    expect(key.items.map((i) => i.id)).toEqual(session.file.order);
    expect(new Set(key.items.map((i) => `${i.kind}:${i.feature}`)).size).toBe(8);
    // The order is the seeded shuffle of dense/sparse pairs, so not the listing order.
    expect(key.items.map((i) => `${i.kind}:${i.feature}`)).toEqual(
      seededShuffle(features.flatMap((f) => ["dense", "sparse"].map((k) => `${k}:${f}`)), 5),
    );
    for (const name of readdirSync(paths.images)) {
      const bytes = readFileSync(join(paths.images, name));
      expect(bytes.toString("latin1")).not.toMatch(/dense|sparse|rows:|Exif/);
      expect((await sharp(bytes).metadata()).exif).toBeUndefined();
    }
    expect(session.gridRows(session.file.order[0])).toEqual(rowsOf(key.items[0].kind as FeatureKind, key.items[0].feature));
    const original = await leakyPng("dense:3", 40);
    expect(original.toString("latin1")).toMatch(/dense:3/);
    expect((await reencodePng(original)).toString("latin1")).not.toMatch(/dense/);
  });

  it("appends ratings, undoes the last one, resumes from disk, refuses to unblind early", async () => {
    const session = BlindSession.resume(run);
    const order = session.file.order;
    session.rate(order[0], 3, "test");
    session.rate(order[1], 6, "test");
    expect(session.undo()).toBe(order[1]);
    session.rate(order[1], 5, "test");
    expect(() => session.rate(order[1], 2, "test")).toThrow(/already rated/);
    expect(() => session.rate(order[2], 8, "test")).toThrow(/integer from 1 to 7/);
    expect(() => session.rate("nope", 2, "test")).toThrow(/no grid "nope"/);
    expect(() => session.unblind()).toThrow(/6 of 8 grids are not rated yet/);
    session.close(); // one writer at a time: the resumed session below takes over
    // A torn last line (a crash mid-write) is dropped on resume.
    appendFileSync(blindTestPaths(run).ratings, '{"id":"');
    const resumed = await BlindSession.open(run, { features, seed: 5, rowsOf, renderGrid: leakyGrid });
    expect(resumed.rated).toBe(2);
    expect(resumed.next()).toBe(order[2]);
    for (const id of order.slice(2)) resumed.rate(id, 4, "test");
    const lines = readFileSync(blindTestPaths(run).ratings, "utf8").trim().split("\n").map((l) => JSON.parse(l) as { id: string; rating: number });
    expect(lines.map((l) => l.id)).toEqual(order);
    expect(lines.map((l) => l.rating)).toEqual([3, 5, 4, 4, 4, 4, 4, 4]);
    const unblinded = resumed.unblind();
    const byKind = ratingsByKind(unblinded);
    expect(byKind.dense.length).toBe(4);
    expect(byKind.sparse.length).toBe(4);
    await expect(BlindSession.open(run, { features: [1, 2], seed: 5, rowsOf, renderGrid: leakyGrid })).rejects.toThrow(/move the folder/);
    // The session holds the post's two kinds: asking for three is refused, not mixed in.
    await expect(BlindSession.open(run, { features, kinds: ["dense", "sparse", "sparse-recommended"], seed: 5, rowsOf, renderGrid: leakyGrid })).rejects.toThrow(/holds a session of dense, sparse, not dense, sparse, sparse-recommended/);
  });

  it("a creation stopped while making its grids leaves none of them in the session made next", async () => {
    const stopped = join(scratch, "run-stopped");
    let made = 0;
    const failingGrid = (rows: readonly number[]): Promise<Buffer> => (++made > 3 ? Promise.reject(new Error("stopped")) : leakyGrid(rows));
    await expect(BlindSession.open(stopped, { features, seed: 5, rowsOf, renderGrid: failingGrid })).rejects.toThrow(/stopped/);
    expect(readdirSync(blindTestPaths(stopped).images)).toHaveLength(3);
    const session = await BlindSession.open(stopped, { features, seed: 5, rowsOf, renderGrid: leakyGrid });
    expect(readdirSync(blindTestPaths(stopped).images).sort()).toEqual(session.file.order.map((id) => `${id}.png`).sort());
  });

  it("rates three kinds in one blinded session; the kinds are in the key, never in the served files", async () => {
    const three = join(scratch, "run-three");
    const kinds: FeatureKind[] = ["dense", "sparse", "sparse-recommended"];
    const rows3 = (kind: FeatureKind, feature: number): number[] => [feature, kinds.indexOf(kind)];
    const session = await BlindSession.open(three, { features, kinds, seed: 5, rowsOf: rows3, renderGrid: leakyGrid });
    expect(session.total).toBe(12);
    expect(readFileSync(blindTestPaths(three).session, "utf8")).not.toMatch(/dense|sparse/);
    expect(sessionKinds(blindTestPaths(three).key)).toEqual(kinds);
    for (const id of session.file.order) session.rate(id, session.gridRows(id)[1] + 2, "auto");
    const byKind = ratingsByKind(session.unblind());
    expect(byKind).toEqual({ dense: [2, 2, 2, 2], sparse: [3, 3, 3, 3], "sparse-recommended": [4, 4, 4, 4] });
    await expect(BlindSession.open(three, { features, seed: 5, rowsOf: rows3, renderGrid: leakyGrid })).rejects.toThrow(/holds a session of dense, sparse, sparse-recommended, not dense, sparse/);
    await expect(BlindSession.open(join(scratch, "run-bad"), { features, kinds: ["dense", "dense"], seed: 5, rowsOf: rows3, renderGrid: leakyGrid })).rejects.toThrow(/kinds must be distinct/);
  });

  it("chooses the session's kinds: every kind for the automatic rater, the post's two for a person, or as configured", () => {
    const available: FeatureKind[] = ["dense", "sparse", "sparse-recommended"];
    expect(blindTestKinds(applyOverrides(defaultConfig("x"), []), available)).toEqual(available);
    expect(blindTestKinds(applyOverrides(defaultConfig("x"), ["blindTest.rater=human"]), available)).toEqual(["dense", "sparse"]);
    expect(blindTestKinds(applyOverrides(defaultConfig("x"), ["blindTest.rater=human", "blindTest.kinds=dense,sparse-recommended"]), available)).toEqual(["dense", "sparse-recommended"]);
    expect(() => blindTestKinds(applyOverrides(defaultConfig("x"), ["blindTest.kinds=dense,sparse-recommended"]), ["dense", "sparse"])).toThrow(/asks for sparse-recommended, which this run does not have/);
    expect(() => applyOverrides(defaultConfig("x"), ["blindTest.kinds=dense,recommended"])).toThrow(/blindTest.kinds takes/);
  });
});

describe("rating server", () => {
  it("refuses other clients, other hosts and missing tokens", () => {
    const ok = { remoteAddress: "127.0.0.1", host: "127.0.0.1:5000", url: "/?token=abc" };
    expect(checkRequest(ok, "abc", 5000)).toEqual({ ok: true, path: "/" });
    expect(checkRequest({ ...ok, remoteAddress: "192.168.1.7" }, "abc", 5000)).toMatchObject({ ok: false, status: 403 });
    expect(checkRequest({ ...ok, remoteAddress: "::ffff:10.0.0.1" }, "abc", 5000)).toMatchObject({ ok: false, status: 403 });
    expect(checkRequest({ ...ok, host: "evil.example:5000" }, "abc", 5000)).toMatchObject({ ok: false, status: 403 });
    expect(checkRequest({ ...ok, url: "/" }, "abc", 5000)).toMatchObject({ ok: false, status: 401 });
    expect(checkRequest({ ...ok, url: "/?token=abd" }, "abc", 5000)).toMatchObject({ ok: false, status: 401 });
    expect(isLoopbackAddress("::1")).toBe(true);
    expect(isLoopbackAddress("::ffff:127.0.0.1")).toBe(true);
    expect(isLoopbackAddress(undefined)).toBe(false);
  });

  it("serves nothing that tells dense from sparse, and no path outside the session's images", async () => {
    const run = join(scratch, "run-b");
    const session = await BlindSession.open(run, { features, seed: 9, rowsOf, renderGrid: leakyGrid });
    const server = await startRatingServer(session);
    const get = (path: string, method = "GET", body?: string): Promise<Reply> => call(server.port, path, { method, body });
    const t = `token=${server.token}`;
    try {
      const served: Buffer[] = [];
      const page = await get(`/?${t}`);
      expect(page.status).toBe(200);
      served.push(page.body);
      for (const id of session.file.order) {
        const image = await get(`/images/${id}.png?${t}`);
        expect(image.status).toBe(200);
        served.push(image.body);
        const state = await get(`/api/state?${t}`);
        served.push(state.body);
        expect((await get(`/api/rate?${t}`, "POST", JSON.stringify({ id, rating: 4 }))).status).toBe(200);
      }
      for (const body of served) {
        expect(body.toString("latin1")).not.toMatch(/dense|sparse|kind|feature/i);
        expect(body.toString("latin1")).not.toMatch(/"16"|"17"|\b16:|\b17:/);
      }
      // Refusals: no token, wrong token, outside paths, the key, unknown ids.
      expect((await get("/")).status).toBe(401);
      expect((await get(`/api/state?token=x`)).status).toBe(401);
      expect((await get(`/images/${session.file.order[0]}.png`)).status).toBe(401);
      for (const path of ["/../blind-test-key.json", "/images/../../blind-test-key.json", "/images/%2e%2e/session.json", "/blind-test-key.json", "/session.json", "/ratings.jsonl", "/images/000000000000.png", "/etc/passwd"]) {
        const r = await get(`${path}?${t}`);
        expect(r.status, path).toBe(404);
        expect(r.body.toString()).not.toMatch(/dense|sparse/);
      }
      await server.finished;
      expect(session.done).toBe(true);
      expect(existsSync(blindTestPaths(run).key)).toBe(true);
    } finally {
      await server.close();
    }
  });
});

describe("rating server: what a POST must be", () => {
  it("answers a body that is not a JSON object with 400, one over the limit with 413, and another Origin with 403", async () => {
    const session = await BlindSession.open(join(scratch, "run-c"), { features: [16], seed: 2, rowsOf, renderGrid: leakyGrid });
    const server = await startRatingServer(session);
    const rate = `/api/rate?token=${server.token}`;
    const first = session.file.order[0];
    const error = (reply: Reply): string => (JSON.parse(reply.body.toString("utf8")) as { error: string }).error;
    try {
      for (const body of ["null", "[1, 2]", "7", '"x"', "{bad"]) {
        const reply = await call(server.port, rate, { method: "POST", body });
        expect(reply.status, body).toBe(400);
        expect(error(reply), body).toMatch(/the body must be (a )?JSON (object )?\{id, rating\}/);
      }
      // Too large, declared (Content-Length) or streamed (chunked): a 413 answer, not a dropped connection.
      const big = Buffer.alloc(64 * 1024, 0x20);
      const declared = await call(server.port, rate, { method: "POST", body: big });
      expect(declared.status).toBe(413);
      expect(error(declared)).toMatch(/over 4096 bytes/);
      const streamed = await call(server.port, rate, { method: "POST", body: big, headers: { "transfer-encoding": "chunked" } });
      expect(streamed.status).toBe(413);
      // Another site's page, a sandboxed one ("null") or no Origin at all: refused, nothing recorded.
      for (const headers of [{ origin: "http://evil.example" }, { origin: "null" }, { origin: `http://localhost:${server.port}` }, { origin: "" }]) {
        const reply = await call(server.port, rate, { method: "POST", body: JSON.stringify({ id: first, rating: 4 }), headers });
        expect(reply.status, headers.origin).toBe(403);
        expect(error(reply)).toMatch(/only from the rating page itself/);
      }
      expect((await call(server.port, `/api/undo?token=${server.token}`, { method: "POST", headers: { origin: "http://evil.example" } })).status).toBe(403);
      expect(session.rated).toBe(0);
      // The page's own Origin: accepted (also as localhost, when the page was opened so).
      expect((await call(server.port, rate, { method: "POST", body: JSON.stringify({ id: first, rating: 4 }) })).status).toBe(200);
      const asLocalhost = await call(server.port, `/api/undo?token=${server.token}`, { method: "POST", headers: { host: `localhost:${server.port}`, origin: `http://localhost:${server.port}` } });
      expect(asLocalhost.status).toBe(200);
      expect(session.rated).toBe(0);
    } finally {
      await server.close();
    }
  });
});

describe("automatic rater", () => {
  // 64 images, attributes: A alternates, B is true for the first 16, C is rare (4 images).
  const names = ["A", "B", "C"];
  const values = new Int8Array(64 * 3);
  for (let i = 0; i < 64; i++) {
    values[i * 3] = i % 2 === 0 ? 1 : -1;
    values[i * 3 + 1] = i < 16 ? 1 : -1;
    values[i * 3 + 2] = i % 16 === 0 ? 1 : -1;
  }
  const table: AttributeTable = { names, files: Array.from({ length: 64 }, (_, i) => `${i}.jpg`), values };

  it("KL in bits: 0 for the base rate, 1 bit for all-shared 50 % attribute", () => {
    expect(bernoulliKlBits(0.5, 0.5)).toBe(0);
    expect(bernoulliKlBits(1, 0.5)).toBeCloseTo(1, 12);
    expect(bernoulliKlBits(0, 0.5)).toBeCloseTo(1, 12);
  });

  it("rates uniform grids high and mixed grids low", () => {
    const uniform = autoRate([...Array(16).keys()], table); // all B, half A, one C
    const evens = autoRate(Array.from({ length: 16 }, (_, i) => 2 * i + 16), table); // all A, no B
    const mixed = autoRate(Array.from({ length: 16 }, (_, i) => i * 4 + (i % 2)), table); // like the dataset
    // evens: all have A (1 bit), none has B (KL(0 ‖ ¼)), 2 of 16 have C (KL(⅛ ‖ 1/16)): the mean of the three.
    const expected = (1 + bernoulliKlBits(0, 0.25) + bernoulliKlBits(2 / 16, 4 / 64)) / 3;
    expect(evens.scoreBits).toBeCloseTo(expected, 12);
    expect(evens.rating).toBe(1 + Math.round(6 * expected));
    expect(evens.attributes.map((a) => a.name)).toEqual(["A", "B", "C"]);
    expect(uniform.attributes[0].name).toBe("B");
    expect(uniform.rating).toBeGreaterThanOrEqual(5);
    expect(mixed.rating).toBeLessThanOrEqual(2);
    expect(mixed.scoreBits).toBeLessThan(uniform.scoreBits);
    expect(() => autoRate([99], table)).toThrow(/row 99 is outside/);
  });

  it("gives an empty grid (a feature that fires on no face) the lowest rating, and rates random grids for chance", () => {
    expect(autoRate([], table)).toEqual({ rating: 1, scoreBits: 0, attributes: [] });
    const chance = rateRandomGrids(table, 20, 16, 3);
    expect(chance).toHaveLength(20);
    expect(chance).toEqual(rateRandomGrids(table, 20, 16, 3));
    expect(Math.max(...chance)).toBeLessThanOrEqual(4);
  });
});
