/**
 * Comparisons (optimizers x seeds on one problem or a suite) and learning-rate tuning.
 *
 * A comparison is planned as a fixed, ordered list of runs (problems x optimizers x seeds), so
 * that it can be resumed (finished runs are recognised by id and skipped), sharded
 * (`--shard i/n` takes every n-th run starting at i-1) and merged (shards reassembled in plan
 * order equal the unsharded result, timing fields aside).
 */
import * as tf from '@tensorflow/tfjs';
import { runExperiment, runId, shortHash, type RunOptions } from './run.js';
import { performanceProfile, summarize, type PerformanceProfile, type SummaryRow } from './stats.js';
import type { Budget, RunResult, RunSpec } from './types.js';

export const RESULTS_SCHEMA = 'curvature-results';
export const RESULTS_VERSION = 2;

/** One problem configuration of a comparison. */
export interface ProblemConfig {
  /** Unique within the comparison, e.g. 'quadratic-d50'. Default: the problem name. */
  id?: string;
  problem: string;
  options?: Record<string, unknown>;
  budget: Budget;
  target?: number | null;
  /** Stop a run when it reaches the target (default true); false runs the whole budget. */
  stopAtTarget?: boolean;
  evalEvery?: number;
  recordEvery?: number;
  gradNormEvery?: number;
  /** Per-optimizer hyperparameters for this problem (e.g. tuned learning rates). */
  hyperparameters?: Record<string, Record<string, unknown>>;
  /** Per-optimizer budgets replacing `budget` (e.g. fewer, costlier second-order steps). */
  optimizerBudgets?: Record<string, Budget>;
  /**
   * Optimizers not run on this problem, each with the reason (e.g. K-FAC on a problem without
   * layers, Newton over its size guard). Reports list them as not applicable.
   */
  exclude?: Record<string, string>;
}

export interface ComparisonSpec {
  name?: string;
  problems: ProblemConfig[];
  optimizers: string[];
  /** Options applied to an optimizer on every problem, over the per-problem hyperparameters. */
  optimizerOptions?: Record<string, Record<string, unknown>>;
  seeds: number[];
}

export interface Shard {
  /** 1-based. */
  index: number;
  count: number;
}

export interface ComparisonResults {
  schema: typeof RESULTS_SCHEMA;
  version: typeof RESULTS_VERSION;
  /** Hash of the spec: shards and resumed runs must share it. */
  specHash: string;
  spec: ComparisonSpec;
  /** The shard these runs belong to; null for a complete (or merged) comparison. */
  shard: Shard | null;
  /** Planned runs not in `runs` (0 when complete). */
  pending: number;
  runs: RunResult[];
  summary: SummaryRow[];
  profiles: PerformanceProfile[];
}

export function problemId(p: ProblemConfig): string {
  return p.id ?? p.problem;
}

/** Every run of the comparison, in canonical order: problems x optimizers x seeds. */
export function planRuns(spec: ComparisonSpec): RunSpec[] {
  const ids = spec.problems.map(problemId);
  const dup = ids.find((id, i) => ids.indexOf(id) !== i);
  if (dup !== undefined) throw new Error(`Duplicate problem id '${dup}' in the comparison.`);
  const runs: RunSpec[] = [];
  for (const p of spec.problems) {
    for (const o of spec.optimizers) {
      if (p.exclude?.[o] !== undefined) continue;
      for (const seed of spec.seeds) {
        const r: RunSpec = {
          problem: p.problem,
          problemId: problemId(p),
          problemOptions: p.options ?? {},
          optimizer: o,
          optimizerOptions: { ...(p.hyperparameters?.[o] ?? {}), ...(spec.optimizerOptions?.[o] ?? {}) },
          seed,
          budget: p.optimizerBudgets?.[o] ?? p.budget,
        };
        if (p.target !== undefined) r.target = p.target;
        if (p.stopAtTarget !== undefined) r.stopAtTarget = p.stopAtTarget;
        if (p.evalEvery !== undefined) r.evalEvery = p.evalEvery;
        if (p.recordEvery !== undefined) r.recordEvery = p.recordEvery;
        if (p.gradNormEvery !== undefined) r.gradNormEvery = p.gradNormEvery;
        runs.push(r);
      }
    }
  }
  return runs;
}

export function parseShard(s: string): Shard {
  const m = /^(\d+)\/(\d+)$/.exec(s.trim());
  if (!m) throw new Error(`Invalid shard '${s}': expected i/n with 1 <= i <= n, e.g. 2/4.`);
  const index = Number(m[1]);
  const count = Number(m[2]);
  if (count < 1 || index < 1 || index > count) {
    throw new Error(`Invalid shard '${s}': expected i/n with 1 <= i <= n, e.g. 2/4.`);
  }
  return { index, count };
}

export function shardRuns<T>(runs: T[], shard: Shard | null | undefined): T[] {
  if (!shard) return runs;
  return runs.filter((_, i) => i % shard.count === shard.index - 1);
}

/** Assemble results: runs in plan order, summary and profiles recomputed. */
export function assembleResults(spec: ComparisonSpec, runs: RunResult[], shard: Shard | null): ComparisonResults {
  const plan = shardRuns(planRuns(spec), shard).map(runId);
  const byId = new Map<string, RunResult>();
  for (const r of runs) if (!byId.has(r.id)) byId.set(r.id, r);
  const ordered = plan.map((id) => byId.get(id)).filter((r): r is RunResult => r !== undefined);
  const summary = summarize(ordered);
  return {
    schema: RESULTS_SCHEMA,
    version: RESULTS_VERSION,
    specHash: shortHash(spec),
    spec,
    shard,
    pending: plan.length - ordered.length,
    runs: ordered,
    summary,
    profiles: (['steps', 'seconds', 'gradEquivalents'] as const).map((m) => performanceProfile(summary, m)),
  };
}

/** Merge shard (or partial) results of one comparison; the spec hashes must agree. */
export function mergeResults(parts: ComparisonResults[]): ComparisonResults {
  if (parts.length === 0) throw new Error('Nothing to merge.');
  const hash = parts[0].specHash;
  for (const p of parts) {
    if (p.specHash !== hash) {
      throw new Error(`Cannot merge results of different comparisons (spec ${p.specHash} vs ${hash}).`);
    }
  }
  return assembleResults(
    parts[0].spec,
    parts.flatMap((p) => p.runs),
    null,
  );
}

export interface CompareOptions extends RunOptions {
  /** Finished runs to reuse (resume): any run whose id is planned is not run again. */
  existing?: RunResult[];
  shard?: Shard | null;
  onRunStart?: (spec: RunSpec, index: number, total: number) => void;
  /** Called with the results so far after every finished run (write them atomically here). */
  onRunDone?: (run: RunResult, partial: ComparisonResults) => void | Promise<void>;
}

/** Run (the remaining runs of) a comparison. */
export async function compare(spec: ComparisonSpec, options: CompareOptions): Promise<ComparisonResults> {
  const shard = options.shard ?? null;
  const plan = shardRuns(planRuns(spec), shard);
  const planned = new Set(plan.map(runId));
  const done: RunResult[] = (options.existing ?? []).filter((r) => planned.has(r.id) && r.final.error === undefined);
  const doneIds = new Set(done.map((r) => r.id));
  const todo = plan.filter((r) => !doneIds.has(runId(r)));
  let i = 0;
  for (const r of todo) {
    options.onRunStart?.(r, i++, todo.length);
    const result = await runOrRecordFailure(r, options);
    done.push(result);
    await options.onRunDone?.(result, assembleResults(spec, done, shard));
  }
  return assembleResults(spec, done, shard);
}

/**
 * Run, turning an exception into a failed run (stopReason 'error', counted as unsolved and
 * diverged) so that one broken optimizer does not stop a whole comparison.
 */
export async function runOrRecordFailure(spec: RunSpec, options: RunOptions): Promise<RunResult> {
  try {
    return await runExperiment(spec, options);
  } catch (e) {
    return {
      id: runId(spec),
      problemId: spec.problemId ?? spec.problem,
      problem: spec.problem,
      problemOptions: { ...(spec.problemOptions ?? {}) },
      optimizer: spec.optimizer,
      optimizerOptions: { ...(spec.optimizerOptions ?? {}) },
      seed: spec.seed ?? 0,
      budget: { ...spec.budget },
      numParams: 0,
      batchSize: null,
      records: [],
      evals: [],
      final: {
        trainLoss: null,
        initialLoss: null,
        steps: 0,
        epochs: 0,
        seconds: 0,
        target: null,
        reachedTarget: false,
        stepsToTarget: null,
        secondsToTarget: null,
        gradEquivalentsToTarget: null,
        evalsToTarget: null,
        diverged: true,
        stopReason: 'error',
        lossEvals: 0,
        gradEvals: 0,
        hvpEvals: 0,
        gradEquivalents: 0,
        gradEquivalentsPerStep: 0,
        error: (e as Error).message ?? String(e),
      },
      backend: tf.getBackend(),
    };
  }
}

/** A log-spaced grid: `num` values from `min` to `max` inclusive. */
export function logGrid(min: number, max: number, num: number): number[] {
  if (!(min > 0 && max >= min && num >= 1)) throw new Error(`Invalid grid: min ${min}, max ${max}, num ${num}.`);
  if (num === 1) return [min];
  const a = Math.log10(min);
  const b = Math.log10(max);
  return Array.from({ length: num }, (_, i) => Number((10 ** (a + ((b - a) * i) / (num - 1))).toPrecision(6)));
}

export interface TuneSpec {
  problem: string;
  problemId?: string;
  problemOptions?: Record<string, unknown>;
  optimizer: string;
  /** Fixed optimizer options besides the tuned one. */
  optimizerOptions?: Record<string, unknown>;
  budget: Budget;
  target?: number | null;
  /** The tuned option (default 'learningRate'). */
  param?: string;
  /** Values to try (default logGrid(1e-4, 1, 9), DeepOBS-style log spacing). */
  grid?: number[];
  /** Seeds used to score each value (default [0]); the score is their mean final loss. */
  tuneSeeds?: number[];
  /** Seeds of the final reruns with the best value (default [0, 1, 2]). */
  seeds?: number[];
  evalEvery?: number;
}

export interface TuneResult {
  param: string;
  trials: { value: number; finalTrainLoss: number | null; diverged: boolean }[];
  best: number | null;
  /** Reruns with the best value, one per seed. */
  runs: RunResult[];
}

/**
 * DeepOBS-style tuning: try every grid value for the full budget (no early stop at the
 * target), pick the one with the lowest mean final training loss (diverged = worst), and rerun
 * it with each seed.
 */
export async function tune(
  spec: TuneSpec,
  callbacks: RunOptions & { onTrial?: (value: number, loss: number | null) => void },
): Promise<TuneResult> {
  const param = spec.param ?? 'learningRate';
  const grid = spec.grid ?? logGrid(1e-4, 1, 9);
  const tuneSeeds = spec.tuneSeeds ?? [0];
  const base = (value: number, seed: number, stopAtTarget: boolean): RunSpec => ({
    problem: spec.problem,
    problemId: spec.problemId,
    problemOptions: spec.problemOptions,
    optimizer: spec.optimizer,
    optimizerOptions: { ...(spec.optimizerOptions ?? {}), [param]: value },
    seed,
    budget: spec.budget,
    target: spec.target,
    stopAtTarget,
    evalEvery: spec.evalEvery,
  });
  const trials: TuneResult['trials'] = [];
  for (const value of grid) {
    let sum = 0;
    let diverged = false;
    for (const seed of tuneSeeds) {
      const r = await runOrRecordFailure(base(value, seed, false), callbacks);
      diverged ||= r.final.diverged || r.final.trainLoss === null;
      sum += r.final.trainLoss ?? Infinity;
    }
    const loss = diverged ? null : sum / tuneSeeds.length;
    trials.push({ value, finalTrainLoss: loss, diverged });
    callbacks.onTrial?.(value, loss);
  }
  let best: number | null = null;
  let bestLoss = Infinity;
  for (const t of trials) {
    if (t.finalTrainLoss !== null && t.finalTrainLoss < bestLoss) {
      bestLoss = t.finalTrainLoss;
      best = t.value;
    }
  }
  // The reruns measure what the grid measured, the final training loss after the whole budget
  // (not the loss at which a run would stop on reaching the target); steps and seconds to the
  // target are still recorded. A problem config with `stopAtTarget: false` plans the same runs.
  const runs: RunResult[] = [];
  if (best !== null) {
    for (const seed of spec.seeds ?? [0, 1, 2]) runs.push(await runExperiment(base(best, seed, false), callbacks));
  }
  return { param, trials, best, runs };
}
