// `npm run bench -- --only full-size`: the whole notebook series at the post's size — 202,599 faces, CelebA's count,
// of synthetic faces (generated once into data/, about 1.3 GB), at 64 px with a small fine-tuning budget — one
// notebook at a time, each measured from outside: wall time, the peak resident memory of its processes (the kernel
// does the work), and the bytes they wrote to disk (/proc/<pid>/io). Every stage must stay within 8 GiB.

import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { projectRoot } from "../lib/util/project";
import { runDir } from "../lib/run/files";
import { estimateLinesIn } from "../lib/model/estimate";
import { applyOverrides, defaultConfig } from "../lib/run/config";
import { resolveDataset } from "../lib/data/datasets";
import { SYNTHETIC_MANIFEST_FILE } from "../lib/data/synthetic/faces";

/** CelebA's images and people. */
export const FULL_SIZE_FACES = 202_599;
export const FULL_SIZE_PEOPLE = 10_177;
export const FULL_SIZE_RUN = "bench-full-size";
/** The memory every stage must stay within. */
export const RSS_LIMIT_MIB = 8 * 1024;

export const FULL_SIZE_SETTINGS = [
  "dataset=synthetic", `synthetic.count=${FULL_SIZE_FACES}`, `synthetic.identities=${FULL_SIZE_PEOPLE}`, "imageSize=64",
  "finetune.batchSize=32", "finetune.chunkSize=32", "finetune.maxSteps=50",
];

export interface StageMeasurement {
  readonly notebook: string;
  readonly seconds: number;
  readonly peakRssMib: number;
  readonly writtenMib: number;
  readonly ok: boolean;
}

interface ProcessSample {
  hwmKib: number;
  writeBytes: number;
}

/** The pids below `root` (children, grandchildren…), read from /proc. */
function descendants(root: number): number[] {
  const parentOf = new Map<number, number>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      parentOf.set(Number(entry), Number(fields[1]));
    } catch {
      // the process ended meanwhile
    }
  }
  const below = (pid: number): boolean => {
    for (let p = parentOf.get(pid); p !== undefined && p > 1; p = parentOf.get(p)) if (p === root) return true;
    return false;
  };
  return [...parentOf.keys()].filter(below);
}

function sample(pid: number): ProcessSample | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const io = readFileSync(`/proc/${pid}/io`, "utf8");
    return { hwmKib: Number(status.match(/^VmHWM:\s+(\d+)/m)?.[1] ?? 0), writeBytes: Number(io.match(/^write_bytes:\s+(\d+)/m)?.[1] ?? 0) };
  } catch {
    return undefined;
  }
}

/** Runs one notebook of the full-size run through the runner, polling its processes' peak memory and writes. */
async function measureStage(notebook: string, run: string, settings: readonly string[]): Promise<StageMeasurement> {
  const started = performance.now();
  const child = spawn("npx", ["tsx", "scripts/run-notebooks.ts", "--run", run, "--only", notebook, ...settings.flatMap((s) => ["--set", s])], {
    cwd: projectRoot(),
    stdio: "inherit",
  });
  const seen = new Map<number, ProcessSample>();
  const poll = (): void => {
    for (const pid of [child.pid ?? -1, ...descendants(child.pid ?? -1)]) {
      const s = sample(pid);
      if (s !== undefined) seen.set(pid, s); // VmHWM and write_bytes only grow: the last reading is the largest
    }
  };
  const timer = setInterval(poll, 500);
  const code = await new Promise<number>((done) => child.on("exit", (c) => done(c ?? 1)));
  clearInterval(timer);
  const samples = [...seen.values()];
  return {
    notebook,
    seconds: (performance.now() - started) / 1000,
    peakRssMib: Math.max(0, ...samples.map((s) => s.hwmKib / 1024)),
    writtenMib: samples.reduce((sum, s) => sum + s.writeBytes, 0) / 2 ** 20,
    ok: code === 0,
  };
}

/** The lines of notebook 02's time estimate (lib/model/estimate) in the run's executed copy; [] when it did not run. */
export function finetuneEstimate(run: string): string[] {
  const path = join(runDir(run), "notebooks", "02-finetune.ipynb");
  if (!existsSync(path)) return [];
  type Output = { readonly text?: string | string[]; readonly data?: Readonly<Record<string, unknown>> };
  const notebook = JSON.parse(readFileSync(path, "utf8")) as { readonly cells: readonly { readonly outputs?: readonly Output[] }[] };
  const text = (t: unknown): string => (Array.isArray(t) ? t.join("") : typeof t === "string" ? t : "");
  return estimateLinesIn(notebook.cells.flatMap((c) => c.outputs ?? []).map((o) => text(o.text ?? o.data?.["text/plain"])).join("\n"));
}

/** Whether the run's synthetic faces are complete in data/ already (then 01-download only checks them). */
function facesGenerated(run: string, settings: readonly string[]): boolean {
  return existsSync(join(resolveDataset(applyOverrides(defaultConfig(run), [...settings])).folder, SYNTHETIC_MANIFEST_FILE));
}

/** Every notebook of the series in order (stopping at a failure), and the report section. */
export async function runFullSize(notebooks: readonly string[], run = FULL_SIZE_RUN, settings: readonly string[] = FULL_SIZE_SETTINGS): Promise<{ stages: StageMeasurement[]; section: string }> {
  const stages: StageMeasurement[] = [];
  let estimate: string[] = [];
  const generatedBefore = facesGenerated(run, settings);
  for (const notebook of notebooks) {
    console.log(`full-size: ${notebook} …`);
    const m = await measureStage(notebook, run, settings);
    stages.push(m);
    console.log(`  ${m.ok ? "done" : "FAILED"} in ${(m.seconds / 60).toFixed(1)} min, peak RSS ${m.peakRssMib.toFixed(0)} MiB, ${m.writtenMib.toFixed(0)} MiB written`);
    if (notebook.startsWith("02")) estimate = finetuneEstimate(run);
    if (!m.ok) break;
  }
  return { stages, section: fullSizeSection(stages, settings, estimate, generatedBefore) };
}

export const FULL_SIZE_BEGIN = "<!-- full-size: begin -->";
export const FULL_SIZE_END = "<!-- full-size: end -->";

/** The report's section: one row per notebook, with the settings and the 8 GiB limit, and notebook 02's estimate of
 *  its own time and of the post's fine-tuning on this machine. */
export function fullSizeSection(stages: readonly StageMeasurement[], settings: readonly string[] = FULL_SIZE_SETTINGS, estimate: readonly string[] = [], generatedBefore = false): string {
  const faces = generatedBefore
    ? "the faces had been generated into data/ before (01-download only checked them; generating is not in its row)"
    : "generating the faces included in 01-download";
  const rows = stages.map((s) =>
    `| ${s.notebook} | ${s.ok ? "finished" : "**failed**"} | ${(s.seconds / 60).toFixed(1)} min | ${s.peakRssMib.toFixed(0)} MiB | ${s.peakRssMib <= RSS_LIMIT_MIB ? "yes" : "**no**"} | ${s.writtenMib.toFixed(0)} MiB |`,
  );
  return [
    FULL_SIZE_BEGIN,
    "## The whole series at full size",
    "",
    `\`npm run bench -- --only full-size\` on ${new Date().toISOString().slice(0, 10)}: synthetic faces as many as CelebA's (${FULL_SIZE_FACES.toLocaleString("en")} of ${FULL_SIZE_PEOPLE.toLocaleString("en")} people), settings \`${settings.join(" ")}\`, each notebook in its own runner. Peak RSS is the largest of the notebook's processes (the kernel); written is what they wrote to disk (/proc/<pid>/io write_bytes); ${faces}.`,
    "",
    "| notebook | result | wall | peak RSS | within 8 GiB | written |",
    "| --- | --- | --- | --- | --- | --- |",
    ...rows,
    ...(estimate.length === 0 ? [] : ["", "Notebook 02's estimate of its own time and of the post's fine-tuning on this machine, printed before it trained (lib/model/estimate), and how it compared:", "", ...estimate.map((line) => `- ${line}`)]),
    FULL_SIZE_END,
  ].join("\n");
}

/** `report` with its full-size section replaced by `section` (or added at the end). */
export function withFullSizeSection(report: string, section: string): string {
  const begin = report.indexOf(FULL_SIZE_BEGIN);
  const end = report.indexOf(FULL_SIZE_END);
  if (begin >= 0 && end > begin) return report.slice(0, begin) + section + report.slice(end + FULL_SIZE_END.length);
  return `${report.trimEnd()}\n\n${section}\n`;
}

/** The full-size section of an earlier report, kept when this run did not measure it. */
export function previousFullSizeSection(report: string): string | undefined {
  const begin = report.indexOf(FULL_SIZE_BEGIN);
  const end = report.indexOf(FULL_SIZE_END);
  return begin >= 0 && end > begin ? report.slice(begin, end + FULL_SIZE_END.length) : undefined;
}
