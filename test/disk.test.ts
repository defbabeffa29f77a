// lib/util/disk: free space asked before a large write, with an error naming what needs how much, where, and the way out.

import { describe, expect, it } from "vitest";
import { diskFreeSpace, formatBytes, requireFreeSpace } from "../lib/util/disk";

describe("free disk", () => {
  it("reads the free space of a folder, or of its nearest existing parent", () => {
    const here = diskFreeSpace(process.cwd());
    expect(here?.bytes).toBeGreaterThan(0);
    expect(diskFreeSpace(`${process.cwd()}/no/such/folder/yet`)).toEqual(here === undefined ? undefined : expect.objectContaining({ blockSize: here.blockSize }));
  });

  it("passes when there is room or the free space is unknown, and names need, place, free space and fix otherwise", () => {
    expect(() => requireFreeSpace("/runs/x", 100, "it", "do this", { bytes: 1000, blockSize: 4096 })).not.toThrow();
    expect(() => requireFreeSpace("/runs/x", 100, "it", "do this", undefined)).not.toThrow();
    expect(() => requireFreeSpace("/runs/x", 3 * 2 ** 30, "415 MB of face vectors", "move runs/ to a larger disk", { bytes: 2 ** 29, blockSize: 4096 })).toThrow(
      "Not enough free disk for 415 MB of face vectors: it needs 3.22 GB in /runs/x, which has 537 MB free. Free some space there, or move runs/ to a larger disk.",
    );
    expect([formatBytes(512), formatBytes(1536), formatBytes(30 * 2 ** 30)]).toEqual(["512 B", "1.54 kB", "32.2 GB"]);
  });
});
