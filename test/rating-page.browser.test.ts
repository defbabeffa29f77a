// The rating page in a real browser (Debian's Chromium driven by playwright-core): a whole session rated with
// clicks and keys, the server killed half-way and restarted, every rating exactly once in the file.

import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { blindTestPaths, BlindSession, type FeatureKind } from "../lib/blind-test/session";
import { setDisplayWriter } from "../lib/display/notebook-display";
import { rateInNotebook, startRatingServer } from "../lib/blind-test/rating-server";

const scratch = mkdtempSync(join(tmpdir(), "rating-page-"));
let browser: Browser;

beforeAll(async () => {
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});
afterAll(async () => {
  await browser?.close();
  rmSync(scratch, { recursive: true, force: true });
});

const rowsOf = (kind: FeatureKind, feature: number): number[] => [feature, kind === "dense" ? 0 : 1];
function grid(rows: readonly number[]): Promise<Buffer> {
  return sharp({ create: { width: 40, height: 40, channels: 3, background: { r: 60 + rows[1] * 120, g: rows[0] * 7, b: 30 } } }).png().toBuffer();
}

/** Waits until the page shows `rated` ratings and a grid image that has loaded (or the end). */
async function settled(page: Page, rated: number): Promise<string> {
  // Predicates run in the page; written as strings because this project's TypeScript has no DOM types.
  await page.waitForFunction(`document.body.getAttribute("data-rated") === "${rated}"`);
  const current = (await page.getAttribute("body", "data-current")) ?? "";
  if (current !== "") await page.waitForFunction(`(() => { const img = document.getElementById("grid"); return img.complete && img.naturalWidth > 0; })()`);
  return current;
}

describe("rating page in Chromium", () => {
  it("rates a whole session with clicks and keys across a server restart, with undo; every rating once in the file", async () => {
    const run = join(scratch, "run");
    const features = [16, 17, 18, 19, 20];
    const session = await BlindSession.open(run, { features, seed: 1, rowsOf, renderGrid: grid });
    const order = session.file.order;
    const given: number[] = [];
    let server = await startRatingServer(session);
    const page = await browser.newPage();
    try {
      await page.goto(server.url);
      // First half: clicks, with one undo (button) and one undo by key.
      expect(await settled(page, 0)).toBe(order[0]);
      expect(await page.textContent("#count")).toBe(`0 of ${order.length} rated`);
      await page.click('button[data-rating="2"]');
      expect(await settled(page, 1)).toBe(order[1]);
      await page.click("#undo");
      expect(await settled(page, 0)).toBe(order[0]);
      await page.click('button[data-rating="3"]');
      given.push(3);
      await settled(page, 1);
      await page.keyboard.press("7");
      given.push(7);
      await settled(page, 2);
      await page.keyboard.press("1");
      await settled(page, 3);
      await page.keyboard.press("Backspace");
      await settled(page, 2);
      await page.click('button[data-rating="5"]');
      given.push(5);
      await settled(page, 3);
      await page.keyboard.press("4");
      given.push(4);
      await settled(page, 4);

      // Kill the server half-way; the page shows an error when it cannot reach it.
      await server.close();
      await page.keyboard.press("6");
      await page.waitForFunction(`document.getElementById("error").textContent !== ""`);

      // Restart from disk: a new process would do just this (a new session object, a new port and token).
      const resumed = BlindSession.resume(run);
      expect(resumed.rated).toBe(4);
      server = await startRatingServer(resumed);
      await page.goto(server.url);
      expect(await settled(page, 4)).toBe(order[4]);
      for (let i = 4; i < order.length; i++) {
        const rating = (i % 7) + 1;
        if (i % 2 === 0) await page.keyboard.press(String(rating));
        else await page.click(`button[data-rating="${rating}"]`);
        given.push(rating);
        await settled(page, i + 1);
      }
      await server.finished;
      expect(await page.isVisible("#done")).toBe(true);
      expect(await page.textContent("#count")).toBe(`${order.length} of ${order.length} rated`);

      const lines = readFileSync(blindTestPaths(run).ratings, "utf8").trim().split("\n").map((l) => JSON.parse(l) as { id: string; rating: number; rater: string });
      expect(lines.map((l) => l.id)).toEqual(order);
      expect(new Set(lines.map((l) => l.id)).size).toBe(order.length);
      expect(lines.map((l) => l.rating)).toEqual(given);
      expect(lines.every((l) => l.rater === "human")).toBe(true);
      expect(resumed.unblind()).toHaveLength(order.length);
    } finally {
      await page.close();
      await server.close();
    }
  });

  it("the page gets nothing without the token, and no POST from another origin is taken", async () => {
    const run = join(scratch, "run2");
    const session = await BlindSession.open(run, { features: [1], seed: 2, rowsOf, renderGrid: grid });
    const server = await startRatingServer(session);
    const page = await browser.newPage();
    try {
      const response = await page.goto(`http://127.0.0.1:${server.port}/`);
      expect(response?.status()).toBe(401);
      expect(await page.content()).not.toMatch(/<img/);
      const wrongHost = await page.goto(`http://localhost:${server.port}/?token=${server.token}`);
      expect(wrongHost?.status()).toBe(200); // localhost is this machine too
      // Chromium sends the page's Origin with a same-origin POST: accepted. From another origin (here the page at
      // localhost posting to 127.0.0.1, token and all) it is refused, and nothing is recorded.
      const id = session.file.order[0];
      const post = (base: string, path: string, body: string): Promise<unknown> =>
        page.evaluate(`fetch("${base}${path}?token=${server.token}", { method: "POST", mode: "no-cors", headers: { "content-type": "text/plain" }, body: ${JSON.stringify(body)} }).then((r) => r.status)`);
      await post(`http://127.0.0.1:${server.port}`, "/api/rate", JSON.stringify({ id, rating: 5 }));
      expect(session.rated).toBe(0);
      expect(await post("", "/api/rate", JSON.stringify({ id, rating: 5 }))).toBe(200);
      expect(session.rated).toBe(1);
      expect(await post("", "/api/undo", "")).toBe(200);
      expect(session.rated).toBe(0);
    } finally {
      await page.close();
      await server.close();
    }
  });

  it("the notebook's human mode shows the page inline, waits for the last rating, then replaces the page by a note", async () => {
    const run = join(scratch, "run3");
    const session = await BlindSession.open(run, { features: [3, 4], seed: 3, rowsOf, renderGrid: grid });
    const shown: { html: string; update: boolean; id: string | undefined }[] = [];
    const previous = setDisplayWriter((content, update) => {
      shown.push({ html: String(content.data["text/html"] ?? ""), update, id: content.transient.display_id });
    });
    const page = await browser.newPage();
    try {
      let finished = false;
      const rating = rateInNotebook(session).then(() => {
        finished = true;
      });
      await expect.poll(() => shown.length).toBe(1);
      expect(shown[0].html).toMatch(/<iframe src="http:\/\/127\.0\.0\.1:\d+\/\?token=[\w-]+"/);
      const url = /<a href="([^"]+)"/.exec(shown[0].html)?.[1] ?? "";
      await page.goto(url);
      for (let i = 0; i < session.total; i++) {
        expect(finished).toBe(false);
        await settled(page, i);
        await page.keyboard.press(String(i + 2));
      }
      await rating;
      expect(session.done).toBe(true);
      expect(shown).toHaveLength(2);
      expect(shown[1]).toMatchObject({ update: true, id: shown[0].id });
      expect(shown[1].html).toBe("<p>All 4 grids rated on the rating page.</p>");
      // The server is gone.
      await expect(fetch(url)).rejects.toThrow();
    } finally {
      setDisplayWriter(previous);
      await page.close();
    }
  });
});
