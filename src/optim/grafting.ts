/**
 * Grafting (Agarwal et al. 2020, "Disentangling Adaptive Gradient Methods from Learning
 * Rates"; Distributed Shampoo's grafting configs): take the *direction* of one optimizer and
 * the *per-block step size* (norm) of another, simpler one.
 *
 *   graft = diagonalPreconditioned(g)                    (the grafted first-order method)
 *   d     = shampooDirection * ||graft_b|| / (||shampooDirection_b|| + 1e-16)   per block b
 *
 * As in Distributed Shampoo, only the diagonal (second-moment) part is grafted; first-moment
 * filtering and momentum are applied by the caller, so the grafted methods are:
 *
 *   'sgd'      graft = g
 *   'adagrad'  a += g^2;                         graft = g / (sqrt(a) + eps)
 *   'rmsprop'  a = b2 a + (1 - b2) g^2;          graft = g / (sqrt(a) + eps)
 *   'adam'     a = b2 a + (1 - b2) g^2;          graft = g / (sqrt(a / (1 - b2^t)) + eps)
 *   'none'     no grafting
 *
 * `updateGraftingState` takes the raw gradient (what the statistics see); `graftingDirection`
 * is applied to the (possibly filtered) gradient, as Distributed Shampoo does.
 */
import * as tf from '@tensorflow/tfjs';
import { ema } from './transforms.js';

export type GraftingType = 'sgd' | 'adagrad' | 'rmsprop' | 'adam' | 'none';
export const GRAFTING_TYPES: readonly GraftingType[] = ['sgd', 'adagrad', 'rmsprop', 'adam', 'none'];

export interface GraftingConfig {
  type: GraftingType;
  /** Second-moment decay for 'rmsprop' / 'adam'. */
  beta2: number;
  /** Added to sqrt(a) (outside the root). */
  epsilon: number;
}

/** Distributed Shampoo's per-method defaults (shampoo_types.py grafting configs). */
export function defaultGraftingEpsilon(type: GraftingType): number {
  return type === 'adagrad' ? 1e-10 : 1e-8;
}

export function defaultGraftingBeta2(type: GraftingType): number {
  return type === 'rmsprop' ? 0.99 : 0.999;
}

/** True when the method keeps a second-moment accumulator. */
export function graftingHasState(type: GraftingType): boolean {
  return type === 'adagrad' || type === 'rmsprop' || type === 'adam';
}

/** The new accumulator after seeing `grad` (undefined `prev` means zeros). */
export function updateGraftingState(prev: tf.Tensor | undefined, grad: tf.Tensor, c: GraftingConfig): tf.Tensor {
  const sq = tf.square(grad);
  if (c.type === 'adagrad') return prev === undefined ? sq : tf.add(prev, sq);
  return ema(prev ?? tf.zerosLike(grad), sq, c.beta2);
}

/** The grafted method's direction for `grad`; `step` is the 1-based update count. */
export function graftingDirection(
  accumulator: tf.Tensor | undefined,
  grad: tf.Tensor,
  step: number,
  c: GraftingConfig,
): tf.Tensor {
  if (c.type === 'sgd' || c.type === 'none' || accumulator === undefined) return grad;
  let a = accumulator;
  if (c.type === 'adam') a = tf.div(a, 1 - c.beta2 ** step);
  return tf.div(grad, tf.add(tf.sqrt(a), c.epsilon));
}

/**
 * Rescale `direction` so that each block has the norm of the grafted direction's block.
 * Both tensors are laid out [B, ...block]; the norms are taken over everything but axis 0.
 */
export function graftBlockNorms(direction: tf.Tensor, graft: tf.Tensor): tf.Tensor {
  const axes = direction.shape.map((_, i) => i).slice(1);
  const keep = [direction.shape[0]!, ...axes.map(() => 1)];
  const dn = tf.sqrt(tf.sum(tf.square(direction), axes));
  const gn = tf.sqrt(tf.sum(tf.square(graft), axes));
  const scale = tf.reshape(tf.div(gn, tf.add(dn, 1e-16)), keep);
  return tf.mul(direction, scale);
}
