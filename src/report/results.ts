/**
 * results.json: reading (with schema validation), atomic writing, and the timing-free canonical
 * form used to compare runs across processes (shards vs unsharded, resumed vs fresh).
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync, unlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { RESULTS_SCHEMA, RESULTS_VERSION, type ComparisonResults } from '../harness/compare.js';
import type { RunResult } from '../harness/types.js';

/** Write a file atomically: a temporary file in the same directory, then rename. */
export function writeFileAtomic(path: string, content: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = join(dirname(path), `.${Date.now()}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`);
  try {
    writeFileSync(tmp, content);
    renameSync(tmp, path);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      // nothing to clean up
    }
    throw e;
  }
}

const num = z.number().nullable();
const runSchema = z.looseObject({
  id: z.string(),
  problemId: z.string(),
  problem: z.string(),
  optimizer: z.string(),
  seed: z.number(),
  records: z.array(z.looseObject({ step: z.number(), loss: num, seconds: z.number() })),
  evals: z.array(z.looseObject({ step: z.number(), trainLoss: num })),
  final: z.looseObject({
    trainLoss: num,
    steps: z.number(),
    seconds: z.number(),
    diverged: z.boolean(),
    reachedTarget: z.boolean(),
  }),
});
const resultsSchema = z.looseObject({
  schema: z.literal(RESULTS_SCHEMA),
  version: z.literal(RESULTS_VERSION),
  specHash: z.string(),
  spec: z.looseObject({
    problems: z.array(z.looseObject({ problem: z.string() })),
    optimizers: z.array(z.string()),
    seeds: z.array(z.number()),
  }),
  shard: z.object({ index: z.number(), count: z.number() }).nullable(),
  runs: z.array(runSchema),
});

/** Parse and validate results.json text; errors name the file and the first bad field. */
export function parseResults(text: string, source = 'results.json'): ComparisonResults {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`${source}: not valid JSON (${(e as Error).message})`);
  }
  const r = resultsSchema.safeParse(json);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new Error(
      `${source}: not a curvature results file v${RESULTS_VERSION} (${i.path.join('.') || 'root'}: ${i.message})`,
    );
  }
  return json as ComparisonResults;
}

export function readResults(path: string): ComparisonResults {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`Cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return parseResults(text, path);
}

export function writeResults(path: string, results: ComparisonResults): void {
  writeFileAtomic(path, `${JSON.stringify(results, null, 1)}\n`);
}

const TIMING_KEYS = new Set(['seconds', 'lossSeconds', 'secondsToTarget', 'secondsPerStep', 'backend']);

/** A run without its timing fields (wall-clock seconds differ between processes). */
export function withoutTiming<T>(value: T): T {
  const strip = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(strip);
    if (v && typeof v === 'object') {
      const o: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) if (!TIMING_KEYS.has(k)) o[k] = strip(x);
      return o;
    }
    return v;
  };
  return strip(value) as T;
}

/** The deterministic content of a set of runs, for equality checks. */
export function canonicalRuns(runs: RunResult[]): RunResult[] {
  return withoutTiming(runs);
}
