/**
 * HessianFree on mini-batches: which batch's reduction ratio adapts lambda.
 *
 * Martens (2010, section 4.3) computes the gradient on the whole training set
 * (or very large batches) and only the curvature products on a mini-batch that changes every
 * step; rho then compares actual and predicted changes of the objective itself. Martens &
 * Sutskever (2012) recommend batches large enough that gradient and curvature describe the
 * objective rather than the batch. Kiros (2013, stochastic HF), as we read it, uses small
 * gradient batches with curvature on a part of each, short CG runs and warm starts: the
 * truncation of CG bounds how far one step can fit its batch.
 * init2winit measures rho on the training batch itself, with no bounds on lambda, and relies
 * on large batches. Why a floor on lambda (`minDamping`, as scripts/hf-vs-adam.ts sets)
 * works: the GGN of N examples with K outputs has rank <= N K (N (K - 1) for softmax), below
 * the parameter count for small batches; lambda alone limits the step along the directions
 * the batch hardly constrains, and rho measured on the batch the step was fitted to stays high
 * while the step interpolates the batch, so lambda shrinks and the full loss spikes. The
 * 'next-batch' ratio removes the need for a hand-set floor: lambda is lowered only on
 * evidence from data the step was not fitted to (the previous step re-measured on the next
 * batch: one loss evaluation per step), and raised when the step's own batch disagrees with the
 * model (rho < 1/4). Near the noise floor the held-out rho is negative whatever lambda is (it
 * tends to g_next^T g / ||g||^2), so it does not raise lambda: lambda settles where steps stop
 * generalising (0.13-0.30 on the MLP) instead of annealing to a standstill.
 * Measured (6-12-3 tanh/softmax, 96 examples, batch 32, model.fit, `new HessianFree({})`,
 * 20 epochs): epoch losses fall monotonically for seeds 0, 1, 2 (test/hessian-free-fit.test.ts,
 * 10 epochs); the previous defaults (Hessian products, batch ratio) on the same data: seed 0
 * full loss 0.30 -> 1.29 -> 1.48 -> 2.11 in epochs 4-6. At batch 16 (rank 32 of 123 parameters) it is still
 * not monotone (seed 0: 0.29 -> 1.05), though far better than the batch ratio; use larger
 * batches, `curvatureFraction` with a bound problem, or `minDamping` there.
 */
import * as tf from '@tensorflow/tfjs';
import type { SlotState } from '../../src/optim/base.js';
import { lossValue } from '../../src/curvature/closure.js';
import { adaptDamping, reductionRatio, type DampingRule } from '../../src/curvature/damping.js';
import { ParameterPoint } from '../../src/curvature/vector.js';
import type { TapeGaussNewton } from '../../src/layers/gauss-newton-capture.js';
import type { Batch } from '../../src/harness/problem.js';
import type { HessianFreeDampingRatio } from './options.js';

/** The step taken, for the next step's 'next-batch' ratio (empty when none). */
export const PREVIOUS_STEP = 'previousStep';
/** Fingerprint of the previous step's batch ('auto' dampingRatio): [size, sums]; size 0 when none. */
const FINGERPRINT = 'batchFingerprint';

/**
 * A fingerprint of a batch given with setCurvatureBatch, as the tape capture's: [size, weighted
 * sums of the targets and of the inputs].
 */
export function batchFingerprint(batch: Batch): number[] {
  const weightedSum = (t: tf.Tensor): number =>
    tf.tidy(() => tf.sum(tf.mul(tf.reshape(t.toFloat(), [-1]), fingerprintWeights(t.size))).dataSync()[0]!);
  return [batch.size, weightedSum(batch.y), weightedSum(batch.x)];
}

/**
 * sin(1..n), cached per backend and size (at most WEIGHT_CACHE sizes): wasm's Sin on the 100,352
 * inputs of a 128-example MNIST batch cost ~12% of a HessianFree step on autoencoder-mnist
 * (CPU profile, 25 steps); the cached weights are the same values, so fingerprints do not change.
 */
const weightCache = new Map<string, tf.Tensor1D>();
const WEIGHT_CACHE = 8;
function fingerprintWeights(size: number): tf.Tensor1D {
  const key = `${tf.getBackend()}:${size}`;
  const hit = weightCache.get(key);
  if (hit !== undefined && !hit.isDisposed) return hit;
  if (weightCache.size >= WEIGHT_CACHE) {
    const [oldest, w] = weightCache.entries().next().value as [string, tf.Tensor1D];
    weightCache.delete(oldest);
    w.dispose();
  }
  const w = tf.keep(tf.tidy(() => tf.sin(tf.range(1, size + 1)) as tf.Tensor1D));
  weightCache.set(key, w);
  return w;
}

/**
 * 'auto': 'next-batch' when the step's batch is known (captured from the tape in model.fit or a
 * closure of Dense layers, or given with setCurvatureBatch) and differs from the previous
 * step's (mini-batches); else 'batch'.
 */
export function dampingRatioFor(
  choice: HessianFreeDampingRatio,
  ggn: TapeGaussNewton | undefined,
  state: SlotState,
  batch?: Batch,
): 'batch' | 'next-batch' {
  if (choice !== 'auto') return choice;
  // The previous batch's fingerprint is a slot (float32, compared as float32), so that a
  // restored optimizer (getWeights/setWeights, model.save) decides exactly as the original.
  const saved = state.get(FINGERPRINT);
  const prev = saved === undefined ? [] : Array.from(saved.dataSync());
  const next = (ggn?.fingerprint ?? (batch !== undefined ? batchFingerprint(batch) : [])).map(Math.fround);
  // [0] is the batch size: a stored 0 means no fingerprint.
  tf.tidy(() => state.set(FINGERPRINT, tf.tensor1d(next.length > 0 ? next : [0, 0, 0])));
  if (next.length === 0 || prev.length === 0 || prev[0] === 0) return 'batch';
  const same = prev.length === next.length && prev.every((v, i) => v === next[i]);
  return same ? 'batch' : 'next-batch';
}

/**
 * The previous step s, fitted to its own batch, re-measured on this one: f(theta) is this
 * batch's loss after s, f(theta - s) before it; an unbiased check of the previous quadratic
 * model's prediction (a step that overfits its batch gets rho < 1/4 here). Returns the held-out
 * rho and lambda lowered on it (never raised), or undefined when there is no previous step.
 */
export function heldOutDamping(
  loss: () => tf.Scalar,
  vars: tf.Variable[],
  f0: number,
  size: number,
  state: SlotState,
  predicted: number,
  lambda: number,
  rule: DampingRule,
): { rho: number; lambda: number } | undefined {
  const prev = state.get(PREVIOUS_STEP);
  if (prev === undefined || prev.size !== size || !(predicted < 0)) return undefined;
  const before = new ParameterPoint(vars);
  let rho: number;
  try {
    tf.tidy(() => before.moveTo(prev.reshape([size]) as tf.Tensor1D, -1));
    rho = reductionRatio(f0 - lossValue(loss), predicted);
  } finally {
    before.restore();
    before.dispose();
  }
  // Only lowers lambda: evidence that the previous step generalised beyond its batch.
  return { rho, lambda: Math.min(lambda, adaptDamping(lambda, rho, rule)) };
}
