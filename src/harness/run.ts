/**
 * The run loop: one optimizer on one problem with one seed.
 *
 * Per step it records the mini-batch training loss, the cumulative optimizer wall time and the
 * cumulative loss / gradient / HVP evaluation counts (read from `optimizer.counters` when the
 * optimizer exposes them, else one gradient per step) with their cost in gradient-equivalents
 * (src/harness/cost.ts: gradient 1, curvature product 2.5, loss alone 0.4); every `gradNormEvery` steps
 * the gradient norm; every `evalEvery` steps the full-data metrics. It stops on the target, the
 * budget (steps, epochs, seconds) or divergence (non-finite loss or loss > 1e3 x initial).
 *
 * Timing covers `minimize` and reading its loss back (which forces the backend to finish), not
 * the evaluations or gradient-norm diagnostics, so seconds compare optimizers, not bookkeeping.
 *
 * Determinism: the problem's initialisation and the mini-batch order come from the seed through
 * our own generator (src/harness/rng.ts), so two runs with the same spec produce identical
 * records except for the timing fields.
 */
import * as tf from '@tensorflow/tfjs';
import { createHash } from 'node:crypto';
import type { Problem } from './problem.js';
import { Rng } from './rng.js';
import { gradientEquivalents } from './cost.js';
import type {
  EvalRecord,
  FinalMetrics,
  HarnessOptimizer,
  HarnessRegistry,
  Instrumented,
  OptimizerCounters,
  RunResult,
  RunSpec,
  StepRecord,
  StopReason,
} from './types.js';

/** Seeded mini-batches: a fresh permutation each epoch, remainder dropped (as DeepOBS). */
export class BatchSampler {
  private readonly rng: Rng;
  private perm: Int32Array;
  private pos = 0;
  epoch = 0;
  readonly stepsPerEpoch: number;

  constructor(
    readonly numExamples: number,
    readonly batchSize: number,
    seed: number,
  ) {
    if (batchSize < 1 || batchSize > numExamples) {
      throw new Error(`Batch size ${batchSize} must be between 1 and ${numExamples}.`);
    }
    this.rng = new Rng(seed, 7);
    this.stepsPerEpoch = Math.floor(numExamples / batchSize);
    this.perm = this.rng.permutation(numExamples);
  }

  next(): Int32Array {
    if (this.pos + this.batchSize > this.numExamples) {
      this.perm = this.rng.permutation(this.numExamples);
      this.pos = 0;
      this.epoch++;
    }
    const idx = this.perm.slice(this.pos, this.pos + this.batchSize);
    this.pos += this.batchSize;
    return idx;
  }
}

/** Stable JSON (sorted keys) for hashing configurations. */
export function stableStringify(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) return `[${v.map(stableStringify).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${stableStringify(o[k])}`)
    .join(',')}}`;
}

export function shortHash(v: unknown): string {
  return createHash('sha256').update(stableStringify(v)).digest('hex').slice(0, 10);
}

/** The id of a run: readable prefix + hash of everything that determines its records. */
export function runId(spec: RunSpec): string {
  const problemId = spec.problemId ?? spec.problem;
  const seed = spec.seed ?? 0;
  const h = shortHash({
    problem: spec.problem,
    problemOptions: spec.problemOptions ?? {},
    optimizer: spec.optimizer,
    optimizerOptions: spec.optimizerOptions ?? {},
    seed,
    budget: spec.budget,
    target: spec.target,
    stopAtTarget: spec.stopAtTarget,
    evalEvery: spec.evalEvery,
    recordEvery: spec.recordEvery,
    divergenceFactor: spec.divergenceFactor,
  });
  return `${problemId}/${spec.optimizer}/seed${seed}/${h}`;
}

const finiteOrNull = (v: number | undefined): number | null => (v === undefined || !Number.isFinite(v) ? null : v);

function readCounters(opt: Instrumented): OptimizerCounters | undefined {
  const c = opt.counters;
  if (!c || typeof c.gradEvals !== 'number') return undefined;
  return { lossEvals: c.lossEvals ?? 0, gradEvals: c.gradEvals, hvpEvals: c.hvpEvals ?? 0 };
}

function gradientNorm(problem: Problem, batch: Parameters<Problem['loss']>[0]): number {
  return tf.tidy(() => {
    const { value, grads } = tf.variableGrads(() => problem.loss(batch), problem.params);
    value.dispose();
    const sq = Object.values(grads).map((g) => tf.sum(tf.square(g)));
    return Math.sqrt(tf.addN(sq).dataSync()[0]);
  });
}

export interface RunCallbacks {
  /** Called after every step (progress bars). */
  onStep?: (step: number, maxSteps: number | null, loss: number | null) => void;
  /** Yield to the event loop at most this often (ms), so progress and signals get through. */
  yieldEveryMs?: number;
}

/** How to run: where optimizers and problems come from, and the callbacks. */
export interface RunOptions extends RunCallbacks {
  /** The factories (the project's own: `harnessRegistry` from experiments/index.ts). */
  registry: HarnessRegistry;
}

/** Run one optimizer on one problem; returns a JSON-serialisable result. */
export async function runExperiment(spec: RunSpec, options: RunOptions): Promise<RunResult> {
  const { steps: budgetSteps, epochs: budgetEpochs, seconds: budgetSeconds } = spec.budget;
  if (budgetSteps === undefined && budgetEpochs === undefined && budgetSeconds === undefined) {
    throw new Error('Budget: give at least one of steps, epochs or seconds.');
  }
  const seed = spec.seed ?? 0;
  const problem = options.registry.createProblem(spec.problem, { ...(spec.problemOptions ?? {}), seed });
  let optimizer: HarnessOptimizer | undefined;
  try {
    optimizer = options.registry.createOptimizer(spec.optimizer, spec.optimizerOptions ?? {}, problem);
    return await loop(spec, seed, problem, optimizer, options);
  } finally {
    optimizer?.dispose();
    problem.dispose();
  }
}

async function loop(
  spec: RunSpec,
  seed: number,
  problem: Problem,
  opt: HarnessOptimizer,
  callbacks: RunCallbacks,
): Promise<RunResult> {
  const data = problem.data;
  const sampler = data ? new BatchSampler(data.numTrain, data.batchSize, seed) : undefined;
  const stepsPerEpoch = sampler ? sampler.stepsPerEpoch : 1;
  const limits: { steps: number; by: StopReason }[] = [];
  if (spec.budget.steps !== undefined) limits.push({ steps: spec.budget.steps, by: 'steps' });
  if (spec.budget.epochs !== undefined) {
    limits.push({ steps: Math.ceil(spec.budget.epochs * stepsPerEpoch), by: 'epochs' });
  }
  limits.sort((a, b) => a.steps - b.steps);
  const maxSteps = limits.length > 0 ? limits[0].steps : null;
  const maxSeconds = spec.budget.seconds ?? Infinity;

  const evalEvery = spec.evalEvery ?? (data ? Math.max(1, Math.round((maxSteps ?? stepsPerEpoch * 10) / 20)) : 1);
  const gradNormEvery = spec.gradNormEvery ?? (data ? evalEvery : 1);
  const recordEvery = Math.max(1, spec.recordEvery ?? 1);
  const divergenceFactor = spec.divergenceFactor ?? 1e3;
  const target = spec.target === null ? null : (spec.target ?? problem.target ?? null);
  const stopAtTarget = spec.stopAtTarget ?? true;
  const yieldEveryMs = callbacks.yieldEveryMs ?? 100;

  const records: StepRecord[] = [];
  const evals: EvalRecord[] = [];
  const evaluate = (step: number, seconds: number): EvalRecord => {
    const m = problem.evaluate();
    const e: EvalRecord = { step, seconds, trainLoss: finiteOrNull(m.trainLoss) };
    if (m.testLoss !== undefined) e.testLoss = finiteOrNull(m.testLoss);
    if (m.testAccuracy !== undefined) e.testAccuracy = finiteOrNull(m.testAccuracy);
    if (m.trainAccuracy !== undefined) e.trainAccuracy = finiteOrNull(m.trainAccuracy);
    evals.push(e);
    return e;
  };

  const e0 = evaluate(0, 0);
  const initialLoss = e0.trainLoss;
  let seconds = 0;
  let counts: OptimizerCounters = { lossEvals: 0, gradEvals: 0, hvpEvals: 0 };
  const base = readCounters(opt);
  let step = 0;
  let stopReason: StopReason | null = null;
  let diverged = false;
  let stepsToTarget: number | null = null;
  let secondsToTarget: number | null = null;
  let evalsToTarget: OptimizerCounters | null = null;
  let lastYield = performance.now();
  const reached = (loss: number | null) => target !== null && loss !== null && loss <= target;
  const markTarget = (atStep: number, atSeconds: number, atCounts: OptimizerCounters) => {
    if (stepsToTarget !== null) return;
    stepsToTarget = atStep;
    secondsToTarget = atSeconds;
    evalsToTarget = { ...atCounts };
  };
  if (reached(initialLoss)) {
    markTarget(0, 0, counts);
    if (stopAtTarget) stopReason = 'target';
  }
  if (initialLoss === null) {
    diverged = true;
    stopReason = 'diverged';
  }

  while (stopReason === null) {
    if (maxSteps !== null && step >= maxSteps) {
      stopReason = limits[0].by;
      break;
    }
    if (seconds >= maxSeconds) {
      stopReason = 'seconds';
      break;
    }
    const secondsBefore = seconds;
    const countsBefore = counts;
    const indices = sampler?.next();
    const batch = indices && data ? data.batch(indices) : undefined;
    let loss: number;
    let gradNorm: number | undefined;
    try {
      if (gradNormEvery > 0 && (step === 0 || (step + 1) % gradNormEvery === 0)) {
        gradNorm = gradientNorm(problem, batch);
      }
      const t0 = performance.now();
      // Optimizers that take Gauss-Newton products (HessianFree) need the step's batch to
      // evaluate outputs and loss separately; the loss closure alone hides it.
      opt.setCurvatureBatch?.(batch);
      const cost = opt.minimize(() => problem.loss(batch), true, problem.params);
      loss = cost ? cost.dataSync()[0] : NaN;
      seconds += (performance.now() - t0) / 1000;
      cost?.dispose();
    } finally {
      if (batch) tf.dispose([batch.x, batch.y]);
    }
    const before = step;
    step++;
    const now = readCounters(opt);
    counts =
      now && base
        ? {
            lossEvals: now.lossEvals - base.lossEvals,
            gradEvals: now.gradEvals - base.gradEvals,
            hvpEvals: now.hvpEvals - base.hvpEvals,
          }
        : // No counters: one gradient (its loss value comes with it).
          { lossEvals: counts.lossEvals, gradEvals: counts.gradEvals + 1, hvpEvals: counts.hvpEvals };
    const isLast = maxSteps !== null && step >= maxSteps;
    if (step === 1 || step % recordEvery === 0 || isLast) {
      const r: StepRecord = {
        step,
        loss: finiteOrNull(loss),
        seconds,
        lossSeconds: secondsBefore,
        ...counts,
        gradEquivalents: gradientEquivalents(counts),
      };
      if (gradNorm !== undefined) r.gradNorm = finiteOrNull(gradNorm);
      records.push(r);
    }
    callbacks.onStep?.(step, maxSteps, finiteOrNull(loss));

    if (!Number.isFinite(loss) || (initialLoss !== null && loss > divergenceFactor * Math.max(initialLoss, 1e-12))) {
      diverged = true;
      stopReason = 'diverged';
      break;
    }
    // Deterministic problems: the step loss is the full loss at the pre-update parameters.
    if (!data && reached(loss)) {
      // The pre-update loss is at target: credit the work done before this step.
      markTarget(before, secondsBefore, countsBefore);
      if (stopAtTarget) {
        stopReason = 'target';
        break;
      }
    }
    if (data && (step % evalEvery === 0 || isLast)) {
      const e = evaluate(step, seconds);
      if (e.trainLoss === null) {
        diverged = true;
        stopReason = 'diverged';
        break;
      }
      if (reached(e.trainLoss)) {
        markTarget(step, seconds, counts);
        if (stopAtTarget) {
          stopReason = 'target';
          break;
        }
      }
    }
    if (performance.now() - lastYield > yieldEveryMs) {
      await new Promise((r) => setImmediate(r));
      lastYield = performance.now();
    }
  }

  const last = evals.at(-1);
  const finalEval = last && last.step === step ? last : evaluate(step, seconds);
  const skipped = opt.skippedSteps;
  // (Assigned inside markTarget: widen the type TypeScript narrowed to null.)
  const toTarget = evalsToTarget as OptimizerCounters | null;
  const final: FinalMetrics = {
    trainLoss: finalEval.trainLoss,
    initialLoss,
    steps: step,
    epochs: step / stepsPerEpoch,
    seconds,
    target,
    reachedTarget: stepsToTarget !== null,
    stepsToTarget,
    secondsToTarget,
    gradEquivalentsToTarget: toTarget === null ? null : gradientEquivalents(toTarget),
    evalsToTarget: toTarget,
    diverged,
    stopReason: stopReason ?? 'steps',
    ...counts,
    gradEquivalents: gradientEquivalents(counts),
    gradEquivalentsPerStep: step > 0 ? gradientEquivalents(counts) / step : 0,
  };
  if (finalEval.testLoss !== undefined) final.testLoss = finalEval.testLoss;
  if (finalEval.testAccuracy !== undefined) final.testAccuracy = finalEval.testAccuracy;
  if (finalEval.trainAccuracy !== undefined) final.trainAccuracy = finalEval.trainAccuracy;
  if (typeof skipped === 'number') final.skippedSteps = skipped;

  return {
    id: runId(spec),
    problemId: spec.problemId ?? spec.problem,
    problem: spec.problem,
    problemOptions: { ...(spec.problemOptions ?? {}) },
    optimizer: spec.optimizer,
    optimizerOptions: { ...(spec.optimizerOptions ?? {}) },
    seed,
    budget: { ...spec.budget },
    numParams: problem.numParams,
    batchSize: data ? data.batchSize : null,
    records,
    evals,
    final,
    backend: tf.getBackend(),
  };
}
