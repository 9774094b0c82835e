/**
 * The JSON-serialisable shapes of experiment specs and results (results.json schema v1).
 *
 * Version 2: evaluation costs in gradient-equivalents (src/harness/cost.ts), raw counts beside
 * them; step records carry `lossSeconds`.
 *
 * Non-finite numbers are stored as null (JSON has no NaN / Infinity); a run that diverged says
 * so in `final.diverged` and `final.stopReason`.
 */
import type { EvaluationCounters } from '../optim/base.js';
import type * as tf from '@tensorflow/tfjs';
import type { Batch, Problem } from './problem.js';

/** When a run stops if no target or divergence stops it first. At least one is required. */
export interface Budget {
  /** Optimizer steps (updates). */
  steps?: number;
  /** Passes over the training data (data problems; deterministic problems: 1 epoch = 1 step). */
  epochs?: number;
  /** Optimizer wall-clock seconds (time inside `minimize`, excluding evaluations). */
  seconds?: number;
}

export interface RunSpec {
  /** Registry name of the problem. */
  problem: string;
  problemOptions?: Record<string, unknown>;
  /** Registry name of the optimizer (optimizers/index.ts). */
  optimizer: string;
  optimizerOptions?: Record<string, unknown>;
  /** Seeds parameter initialisation and mini-batch order. Default 0. */
  seed?: number;
  budget: Budget;
  /** Target training loss; default: the problem's own target, if any. null disables it. */
  target?: number | null;
  /** Stop when the target is reached (default true). */
  stopAtTarget?: boolean;
  /** Full-data evaluation (test metrics, training loss) every this many steps. */
  evalEvery?: number;
  /** Keep every k-th step record (the first and last are always kept). Default 1. */
  recordEvery?: number;
  /**
   * Record the gradient norm every k steps (0 = never). It costs one extra gradient, which is
   * NOT counted in the optimizer's evaluations or seconds. Default: 1 for deterministic
   * problems, `evalEvery` for data problems.
   */
  gradNormEvery?: number;
  /** Divergence: loss > divergenceFactor x initial loss (default 1e3), or non-finite. */
  divergenceFactor?: number;
  /** Identifies the problem configuration in a comparison (default: the problem name). */
  problemId?: string;
}

export interface StepRecord {
  /** 1-based step (update) index. */
  step: number;
  /** Training loss of this step's mini-batch at the parameters before the update. */
  loss: number | null;
  /** Norm of the full gradient of that loss (when recorded at this step). */
  gradNorm?: number | null;
  /** Cumulative optimizer seconds after this step. */
  seconds: number;
  /**
   * Cumulative optimizer seconds before this step: when the parameters whose `loss` this is
   * were reached (plot `loss` against this, not against `seconds`).
   */
  lossSeconds: number;
  /**
   * Cumulative evaluation counts after this step: gradients (each with its loss value),
   * curvature-vector products (Hessian or Gauss-Newton), loss values without a gradient.
   */
  lossEvals: number;
  gradEvals: number;
  hvpEvals: number;
  /** Cumulative gradient-equivalents after this step (src/harness/cost.ts). */
  gradEquivalents: number;
}

export interface EvalRecord {
  /** Completed steps at the evaluation (0 = initial parameters). */
  step: number;
  seconds: number;
  trainLoss: number | null;
  testLoss?: number | null;
  testAccuracy?: number | null;
  trainAccuracy?: number | null;
}

export type StopReason = 'target' | 'steps' | 'epochs' | 'seconds' | 'diverged' | 'error';

export interface FinalMetrics {
  trainLoss: number | null;
  testLoss?: number | null;
  testAccuracy?: number | null;
  trainAccuracy?: number | null;
  initialLoss: number | null;
  /** Completed steps (updates). */
  steps: number;
  epochs: number;
  seconds: number;
  target: number | null;
  reachedTarget: boolean;
  /** Completed steps when the target was first observed (null if never). */
  stepsToTarget: number | null;
  secondsToTarget: number | null;
  /** Gradient-equivalents (src/harness/cost.ts) spent when the target was first observed. */
  gradEquivalentsToTarget: number | null;
  /** The raw evaluation counts behind `gradEquivalentsToTarget`. */
  evalsToTarget: EvaluationCounters | null;
  diverged: boolean;
  stopReason: StopReason;
  lossEvals: number;
  gradEvals: number;
  hvpEvals: number;
  /** Total gradient-equivalents: gradEvals + 2.5 hvpEvals + 0.4 lossEvals (src/harness/cost.ts). */
  gradEquivalents: number;
  /** Mean gradient-equivalents per step. */
  gradEquivalentsPerStep: number;
  /** Steps the optimizer skipped (non-finite loss or gradient), when it reports them. */
  skippedSteps?: number;
  /** The run threw (stopReason 'error'): the message. Failed runs are retried on resume. */
  error?: string;
}

export interface RunResult {
  /** Stable identifier of (problem config, optimizer config, seed, budget, target). */
  id: string;
  problemId: string;
  problem: string;
  problemOptions: Record<string, unknown>;
  optimizer: string;
  optimizerOptions: Record<string, unknown>;
  seed: number;
  budget: Budget;
  numParams: number;
  batchSize: number | null;
  records: StepRecord[];
  evals: EvalRecord[];
  final: FinalMetrics;
  backend: string;
}

/** Evaluation counters an optimizer may expose (cumulative since construction). */
export type OptimizerCounters = EvaluationCounters;

/**
 * Where the harness gets its optimizers and problems: factories, so that the harness depends on
 * no concrete optimizer or problem (experiments/index.ts builds the project's own,
 * `harnessRegistry`; a test or a user passes its own).
 */
export interface HarnessRegistry {
  /** A fresh problem (the harness disposes it). `options.seed` seeds its initialisation. */
  createProblem(name: string, options: Record<string, unknown>): Problem;
  /** A fresh optimizer for `problem` (the harness disposes it). */
  createOptimizer(name: string, options: Record<string, unknown>, problem: Problem): HarnessOptimizer;
}

/**
 * What the harness reads from an optimizer beyond tf.Optimizer, each part optional (tfjs's own
 * optimizers have none of it): cumulative evaluation counts (else one gradient per step is
 * assumed), steps skipped by a non-finite guard, and the step's mini-batch for optimizers that
 * take Gauss-Newton products of it (HessianFree). CurvatureOptimizer provides `skippedSteps`;
 * optimizers that evaluate more than one gradient per step provide `counters`.
 */
export interface Instrumented {
  readonly counters?: Partial<EvaluationCounters>;
  readonly skippedSteps?: number;
  setCurvatureBatch?(batch: Batch | undefined): void;
}

/** An optimizer as the harness runs it. */
export type HarnessOptimizer = tf.Optimizer & Instrumented;
