/**
 * HessianFree's diagonal CG preconditioner, M = (diag(s) + lambda)^alpha (Martens 2010,
 * section 4.7, alpha = 0.75), and the statistic s:
 * - 'martens': (1/N) sum_i grad_i^2 over the per-example gradients of the batch
 *   (`perExampleSquaredGradients`, exact for a bound problem whose model is a stack of Dense
 *   layers; one extra forward/backward pass, counted as a gradient evaluation);
 * - 'squared-gradient' (and 'martens' without such a problem): an EMA (beta 0.95) of the
 *   squared batch gradient times the batch size, carried in the slot
 *   '@hessian-free/squaredGradient' (getWeights / setWeights carry it).
 */
import * as tf from '@tensorflow/tfjs';
import type { SlotState } from '../../src/optim/base.js';
import type { Batch, Problem } from '../../src/harness/problem.js';
import type { HessianFreePreconditioner } from './options.js';
import { denseLayers } from './dense-ggn.js';

/**
 * Martens' preconditioner statistic (1/N) sum_i grad_i^2 over the per-example gradients of a
 * batch (mean loss: the empirical-Fisher diagonal, on the scale of the GGN and lambda), flat
 * in the order of `vars`. Exact for a problem whose `model` is a stack of Dense layers whose
 * kernel and bias are `vars` (the harness's network problems): one forward and one backward
 * pass with a zero perturbation e_l added to each layer's pre-activation z_l gives the
 * per-example d loss_i / d z_l = delta_l (rows of N * grad e_l), and then
 *   kernel_l: (a_l^2)^T (delta_l^2) / N,   bias_l: sum_rows(delta_l^2) / N
 * (a_l: the layer's inputs). Undefined when the model does not have that form.
 */
export function perExampleSquaredGradients(
  problem: Problem,
  batch: Batch,
  vars: tf.Variable[],
): tf.Tensor1D | undefined {
  if (problem.lossFromOutputs === undefined) return undefined;
  const dense = denseLayers(problem, vars);
  if (dense === undefined) return undefined;
  const { kernels, biases } = dense;
  const lossFromOutputs = problem.lossFromOutputs.bind(problem);
  const n = batch.size;
  return tf.tidy(() => {
    const x = batch.x.reshape([n, -1]);
    const activation = (l: number, z: tf.Tensor): tf.Tensor => dense.activations[l]?.apply(z) ?? z;
    // The layers' inputs a_l (tf.grads disposes what its function creates, so a separate pass).
    const inputs: tf.Tensor[] = [x];
    for (let l = 0; l + 1 < kernels.length; l++) {
      inputs.push(activation(l, tf.add(tf.matMul(inputs[l] as tf.Tensor2D, kernels[l] as tf.Tensor2D), biases[l]!)));
    }
    const perturb = kernels.map((k) => tf.zeros([n, k.shape[1]!]));
    const sumLoss = (...es: tf.Tensor[]): tf.Scalar => {
      let h: tf.Tensor = x;
      for (let l = 0; l < kernels.length; l++) {
        h = activation(l, tf.add(tf.add(tf.matMul(h as tf.Tensor2D, kernels[l] as tf.Tensor2D), biases[l]!), es[l]!));
      }
      return tf.mul(lossFromOutputs(h, batch), n) as tf.Scalar;
    };
    const deltas = tf.grads(sumLoss)(perturb);
    const parts: tf.Tensor[] = [];
    for (let l = 0; l < kernels.length; l++) {
      const d2 = tf.square(deltas[l]!);
      parts.push(
        tf.div(tf.matMul(tf.square(inputs[l]!) as tf.Tensor2D, d2 as tf.Tensor2D, true, false), n).reshape([-1]),
      );
      parts.push(tf.div(tf.sum(d2, 0), n));
    }
    return tf.concat(parts) as tf.Tensor1D;
  });
}

const SQUARED_GRADIENT = 'squaredGradient';

/**
 * The squared-gradient statistic: EMA (beta 0.95) of the squared batch gradient times the batch
 * size, in the slot '@hessian-free/squaredGradient' (getWeights / setWeights carry it); the first
 * value is the first step's (no bias correction needed). Updated by the 'squared-gradient'
 * preconditioner and by the first-order warm start (./first-order.ts), whose second moment it is.
 * Returns a new tensor (the caller disposes it).
 */
export function updateSquaredGradient(g: tf.Tensor1D, batchSize: number, state: SlotState): tf.Tensor1D {
  const beta = 0.95;
  const prev = state.get(SQUARED_GRADIENT);
  const next = tf.tidy(() => {
    const s = tf.mul(tf.square(g), batchSize) as tf.Tensor1D;
    return prev !== undefined && prev.size === g.size
      ? (tf.add(tf.mul(prev.reshape([g.size]), beta), tf.mul(s, 1 - beta)) as tf.Tensor1D)
      : s;
  });
  state.set(SQUARED_GRADIENT, next);
  return next;
}

export interface DiagonalPreconditioner {
  /** r -> M^{-1} r (a new tensor). */
  apply: (r: tf.Tensor1D) => tf.Tensor1D;
  /** M's diagonal (the caller disposes it); undefined for 'none'. */
  diag?: tf.Tensor1D;
  /** Whether per-example gradients were computed (one more gradient evaluation). */
  perExample: boolean;
}

/** The preconditioner of this step; `state` holds the squared-gradient EMA. */
export function diagonalPreconditioner(
  kind: HessianFreePreconditioner,
  exponent: number,
  g: tf.Tensor1D,
  lambda: number,
  batchSize: number,
  vars: tf.Variable[],
  batch: Batch | undefined,
  problem: Problem | undefined,
  state: SlotState,
): DiagonalPreconditioner {
  if (kind === 'none') return { apply: (r) => tf.clone(r), perExample: false };
  let sq: tf.Tensor1D | undefined;
  if (kind === 'martens' && batch !== undefined && problem !== undefined) {
    sq = perExampleSquaredGradients(problem, batch, vars);
  }
  const perExample = sq !== undefined;
  if (sq === undefined) sq = updateSquaredGradient(g, batchSize, state);
  const base = sq;
  const diag = tf.tidy(() => tf.pow(tf.add(base, lambda), exponent) as tf.Tensor1D);
  base.dispose();
  return { apply: (r) => tf.tidy(() => tf.div(r, diag) as tf.Tensor1D), diag, perExample };
}
