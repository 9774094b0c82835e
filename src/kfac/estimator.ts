/**
 * K-FAC's curvature estimator (kfac-jax _src/curvature_estimator.py `BlockDiagonalCurvature`):
 * owns the curvature blocks of the model's layers, decides what a step back-propagates from the
 * logits (target samples for the statistics, the output curvature's root columns for the exact
 * quadratic model), and runs the blocks' three operations over the layers captured on a step:
 *
 *   updateCurvatureEstimate   every statsUpdatePeriod steps, each block's factor statistics
 *   updateCache               every inverseUpdatePeriod steps (or when a cache is missing), the
 *                             damped inverses (kfac-jax's `update_cache`)
 *   multiplyMatpower          the preconditioned descent direction -F^-1 g, per variable
 *
 * Variables without a block (layers neither Dense nor a supported Conv2D) get a diagonal
 * fallback block: -g / (n EMA(g^2) + lambda).
 */
import * as tf from '@tensorflow/tfjs';
import type { LossKind } from '../autodiff/losses.js';
import type { SlotState } from '../optim/base.js';
import { ema } from '../optim/transforms.js';
import type { CaptureResult, CotangentSampler, LayerCapture } from '../layers/capture.js';
import type { BlockInverses, FactorEigen, KroneckerBlock, KroneckerFactoredBlock } from './blocks.js';
import { negativeLogProbLoss } from './losses.js';

export type KFACEstimation = 'fisher' | 'empirical' | 'exact';

const warned = new Set<string>();
/** console.warn a message once per process. */
export function warnOnce(msg: string): void {
  if (warned.has(msg)) return;
  warned.add(msg);
  console.warn(msg);
}

/** How the back-propagated cotangent sets of a step are laid out (set by the sampler). */
export interface CotangentPlan {
  /** Sets back-propagated (one backward pass each, for the counters). */
  sets: number;
  /** dsSampled[0, stats) feed the factor statistics ... */
  stats: number;
  /** ... and dsSampled[quadFrom, end) the quadratic model. */
  quadFrom: number;
  /** The quadratic model's sets are the columns of the output curvature's root (exact). */
  quadExact: boolean;
}

/** What the sampler draws on one step. */
export interface SamplingConfig {
  estimation: KFACEstimation;
  kind: LossKind;
  /** Seed of the step's first draw (tfjs treats 0 as 'no seed'). */
  seed: number;
  /** The quadratic model is needed this step ... */
  wantQuad: boolean;
  /** ... and it is exact up to this many outputs ('exact'), else sampled. */
  exactQuadraticMaxOutputs: number | undefined;
  /** A sampled quadratic model draws a second, fresh sample. */
  freshQuadraticSample: boolean;
  statsStep: boolean;
}

/** A block whose layer appeared on the tape, with its capture. */
export interface ActiveBlock {
  block: KroneckerFactoredBlock;
  capture: LayerCapture;
}

/** The variables a step trains: name, variable, gradient. */
export interface StepEntry {
  name: string;
  variable: tf.Variable;
  grad: tf.Tensor;
}

/**
 * The cotangent sets back-propagated from the logits: target samples for the factor
 * statistics, and for the quadratic model either the columns of a square root of the output
 * curvature (exact: sum_k c_k c_k^T = H_L per example, so the projections give u^T J^T H_L J u)
 * or target samples. `plan` records how the sets returned are laid out.
 */
export function cotangentSampler(c: SamplingConfig, plan: CotangentPlan): CotangentSampler {
  const loss = negativeLogProbLoss(c.kind);
  return (logits) => {
    const d = logits.shape[1];
    if (c.estimation === 'exact') {
      const cols = loss.fisherRootColumns(logits);
      Object.assign(plan, { sets: cols.length, stats: cols.length, quadFrom: 0, quadExact: true });
      return cols;
    }
    const exactQuad = c.wantQuad && c.exactQuadraticMaxOutputs !== undefined && d <= c.exactQuadraticMaxOutputs;
    // 'fisher': one sample for the statistics (also the quadratic model's first when sampled),
    // a fresh second one for a sampled quadratic model.
    const draws =
      c.estimation !== 'fisher' ? 0 : exactQuad ? (c.statsStep ? 1 : 0) : c.wantQuad && c.freshQuadraticSample ? 2 : 1;
    const samples = [...Array(draws).keys()].map((i) => loss.sampleCotangent(logits, c.seed + i));
    const cols = exactQuad ? loss.fisherRootColumns(logits) : [];
    Object.assign(plan, {
      sets: samples.length + cols.length,
      stats: Math.min(samples.length, 1),
      quadFrom: exactQuad ? samples.length : 0,
      quadExact: exactQuad,
    });
    return [...samples, ...cols];
  };
}

/** Cotangents of a layer for the factor statistics and for the quadratic model. */
export function splitCotangents(l: LayerCapture, plan: CotangentPlan): { stats: tf.Tensor2D[]; quad: tf.Tensor2D[] } {
  const stats = l.dsTrue ? [l.dsTrue] : l.dsSampled.slice(0, plan.stats);
  // A sampled quadratic model averages both samples: the fresh one is independent of the
  // step, and the average halves the variance (one fresh sample alone let alpha overshoot).
  const quad = l.dsTrue && !plan.quadExact ? [l.dsTrue] : l.dsSampled.slice(plan.quadFrom);
  return { stats, quad };
}

export class CurvatureEstimator {
  /** The blocks' layers, in the order the capture sees them. */
  readonly layers: readonly KroneckerBlock[];

  constructor(readonly blocks: readonly KroneckerFactoredBlock[]) {
    this.layers = blocks.map((b) => b.layer);
  }

  /**
   * The blocks of this step: those whose layers appeared on the tape and whose variables are
   * trained (a missing layer is warned about and falls back to the diagonal), and the entries
   * no block covers.
   */
  activeBlocks(
    cap: CaptureResult,
    entries: readonly StepEntry[],
    unsupportedLayers: readonly string[],
  ): { active: ActiveBlock[]; fallback: StepEntry[] } {
    const trained = new Set(entries.map((e) => e.name));
    const active: ActiveBlock[] = [];
    this.blocks.forEach((block, index) => {
      if (!block.layer.variables.some((v) => trained.has(v.name))) return;
      const capture = cap.layers[index];
      if (capture === undefined) {
        warnOnce(
          `KFAC: layer '${block.name}' was not found in the loss computation; using the diagonal fallback for it`,
        );
        return;
      }
      active.push({ block, capture });
    });
    const covered = new Set(active.flatMap(({ block }) => block.layer.variables.map((v) => v.name)));
    const fallback = entries.filter((e) => !covered.has(e.name));
    if (fallback.length > 0) {
      const what =
        unsupportedLayers.length > 0
          ? `layers ${unsupportedLayers.join(', ')}`
          : `variables ${fallback.map((e) => e.name).join(', ')}`;
      warnOnce(`KFAC: no Kronecker-factored block for ${what}; using a diagonal preconditioner for them`);
    }
    return { active, fallback };
  }

  /** Fold the step's statistics into each active block's factors. */
  updateCurvatureEstimate(
    active: readonly ActiveBlock[],
    plan: CotangentPlan,
    decay: number,
    average: boolean,
    rows?: number,
  ): void {
    for (const { block, capture } of active) {
      const ds = splitCotangents(capture, plan).stats;
      if (ds.length === 0) continue;
      block.updateCurvatureEstimate(capture.a, ds, decay, average, rows);
    }
  }

  /**
   * Each active block's damped inverses (refreshed when `refresh`; see KroneckerFactoredBlock),
   * from precomputed eigendecompositions where `eigen` has them (the seam for src/async).
   */
  updateCache(
    active: readonly ActiveBlock[],
    lambda: number,
    refresh: boolean,
    rank: number,
    seed: number,
    eigen?: ReadonlyMap<KroneckerFactoredBlock, { A: FactorEigen; G: FactorEigen }>,
  ): Map<KroneckerFactoredBlock, BlockInverses> {
    const inverses = new Map<KroneckerFactoredBlock, BlockInverses>();
    for (const { block } of active) {
      const inv = block.updateCache(lambda, refresh, rank, seed, eigen?.get(block));
      if (inv) inverses.set(block, inv);
    }
    return inverses;
  }

  /** The preconditioned descent direction of the active blocks' variables. */
  multiplyMatpower(
    active: readonly ActiveBlock[],
    grad: Map<string, tf.Tensor>,
    inverses: Map<KroneckerFactoredBlock, BlockInverses>,
  ): Map<string, tf.Tensor> {
    const dir = new Map<string, tf.Tensor>();
    for (const { block } of active) {
      for (const [name, d] of block.multiplyMatpower(grad, inverses.get(block))) dir.set(name, d);
    }
    return dir;
  }
}

/**
 * The diagonal fallback for variables without a block: curvature n EMA(g^2) (updated on
 * statistics steps), direction -g / (curvature + lambda). Adds to `dir`; returns the curvature
 * per variable (for the quadratic model).
 */
export function diagonalFallback(
  fallback: readonly StepEntry[],
  grad: Map<string, tf.Tensor>,
  dir: Map<string, tf.Tensor>,
  o: { batch: number; lambda: number; decay: number; statsStep: boolean; slots: (name: string) => SlotState },
): Map<string, tf.Tensor> {
  const curvature = new Map<string, tf.Tensor>();
  for (const e of fallback) {
    const vs = o.slots(e.name);
    const sq = tf.mul(tf.square(e.grad), o.batch);
    const v = vs.has('diag') ? ema(vs.get('diag')!, sq, o.decay) : sq;
    if (o.statsStep) vs.set('diag', v);
    curvature.set(e.name, v);
    dir.set(e.name, tf.neg(tf.div(grad.get(e.name)!, tf.add(v, o.lambda))));
  }
  return curvature;
}
