// `require` resolving from the project's package.json: optional native packages (tfjs-node, onnxruntime-node) are
// looked up in the project's node_modules wherever the calling code was compiled (tslab, tsx, vitest), without
// `import.meta` or `__dirname`, which not every one of those module systems has.

import { createRequire } from "node:module";
import { join } from "node:path";
import { projectRoot } from "../run/paths";

export function requireFromProject(): NodeJS.Require {
  return createRequire(join(projectRoot(), "package.json"));
}
