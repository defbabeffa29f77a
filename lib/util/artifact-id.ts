// The id of a finished artifact: the SHA-256 of its bytes, read as a stream (a 415 MB face_vectors.npy never sits
// in memory whole). A stage records the id of what it wrote (e.g. `sha256` in face_vectors.json) and a later stage
// keys its own output on the ids of its inputs, so that a changed input is noticed even when its name, size and
// modification time look the same.

import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";

/** The SHA-256 of the file at `path`, as 64 lowercase hex digits. Throws naming the file when it cannot be read. */
export async function artifactId(path: string): Promise<string> {
  const hash = createHash("sha256");
  try {
    for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? String(error);
    throw new Error(`cannot read ${path} to compute its SHA-256 (${code})`);
  }
  return hash.digest("hex");
}

/** The first characters of an id, enough for a person to tell two apart in a message. */
export function shortId(id: string): string {
  return id.slice(0, 12);
}
