/**
 * HessianFree's first-order warm start (issue 16): the first `firstOrderSteps` updates are Adam
 * steps, then HessianFree takes over.
 *
 *   m <- g (first step), else beta1 m + (1 - beta1) g                       beta1 = 0.9
 *   v <- squaredGradient / batchSize: the preconditioner's statistic (./preconditioner.ts, an EMA
 *        with beta2 = 0.95 of the squared batch gradient, started at the first step's value)
 *   theta <- theta - firstOrderLearningRate * m / (sqrt(v) + 1e-8)
 *
 * Both moments start at the first step's values, so no bias correction is needed. The second
 * moment is the 'squared-gradient' preconditioner's own slot: a run that switches to HessianFree
 * with that preconditioner starts CG with a warmed-up diagonal. Why: a HessianFree step on a
 * 128-example batch costs ~4.5 Adam steps at a CG cap of 5 (default now 4; 6 Gauss-Newton products,
 * the gradient, 3 loss evaluations; ~10 Adam steps, 11 products, measured at the earlier cap of
 * 10), and its first steps are spent lowering lambda from its initial value while the loss is
 * far from any quadratic model's region of trust; first-order steps make that early progress at
 * a fraction of the price (Martens & Sutskever 2012 section 8 discuss the same hybrid;
 * Kiros 2013 starts stochastic HF from a few SGD epochs). Measurements: ../hessian-free.ts header
 * and docs/optimizers.md.
 *
 * State (getWeights / setWeights carry it): the moment in the slot
 * '@hessian-free/firstOrderMoment', the squared gradient in '@hessian-free/squaredGradient' and
 * the count of first-order steps taken in numericState.firstOrderSteps, so a restored optimizer
 * switches at the same step. A skipped (non-finite) step does not count.
 */
import * as tf from '@tensorflow/tfjs';
import type { SlotState } from '../../src/optim/base.js';
import { ParameterPoint } from '../../src/curvature/vector.js';
import { updateSquaredGradient } from './preconditioner.js';

const MOMENT = 'firstOrderMoment';
const BETA1 = 0.9;
const EPSILON = 1e-8;

/** One Adam step on the variables from their flat gradient g (updates the moments in `state`). */
export function firstOrderStep(
  g: tf.Tensor1D,
  vars: tf.Variable[],
  learningRate: number,
  batchSize: number,
  state: SlotState,
): void {
  const sq = updateSquaredGradient(g, batchSize, state);
  const prev = state.get(MOMENT);
  const m = tf.tidy(() =>
    prev !== undefined && prev.size === g.size
      ? (tf.add(tf.mul(prev.reshape([g.size]), BETA1), tf.mul(g, 1 - BETA1)) as tf.Tensor1D)
      : tf.clone(g),
  );
  state.set(MOMENT, m);
  const direction = tf.tidy(() => tf.neg(tf.div(m, tf.add(tf.sqrt(tf.div(sq, batchSize)), EPSILON))) as tf.Tensor1D);
  const point = new ParameterPoint(vars);
  try {
    point.moveTo(direction, learningRate);
  } finally {
    point.dispose();
    tf.dispose([sq, m, direction]);
  }
}
