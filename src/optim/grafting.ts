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

/** x_new = beta * x + alpha * y (beta = alpha = 1: the AdaGrad sum). */
export interface EmaRule {
  alpha: number;
  beta: number;
}

/** beta * prev + alpha * x as tfjs ops (prev undefined: zeros, i.e. alpha * x). */
export function emaTensor(prev: tf.Tensor | undefined, x: tf.Tensor, r: EmaRule): tf.Tensor {
  const sum = r.alpha === 1 && r.beta === 1;
  if (prev === undefined) return sum ? x : tf.mul(x, r.alpha);
  return sum ? tf.add(prev, x) : tf.add(tf.mul(prev, r.beta), tf.mul(x, r.alpha));
}

/**
 * The grafted method at step t as a diagonal preconditioner (Distributed Shampoo's grafting
 * configs select such a preconditioner list): accumulator a = ka a + kg g^2, direction
 * f / (sqrt(a / adiv) + eps). Every backend (tfjs ops, the WebAssembly kernels, the JavaScript
 * vector loop) evaluates these coefficients; 'sgd' and 'none' have no accumulator (identity).
 */
export interface GraftingRule {
  ka: number;
  kg: number;
  /** Adam's bias correction 1 - beta2^t (1 otherwise). */
  adiv: number;
  eps: number;
}

export function graftingRule(c: GraftingConfig, step: number): GraftingRule | undefined {
  if (!graftingHasState(c.type)) return undefined;
  const ema = c.type === 'rmsprop' || c.type === 'adam';
  return {
    ka: ema ? c.beta2 : 1,
    kg: ema ? 1 - c.beta2 : 1,
    adiv: c.type === 'adam' ? 1 - c.beta2 ** step : 1,
    eps: c.epsilon,
  };
}

/**
 * The grafting preconditioner as tfjs ops (Distributed Shampoo's grafting preconditioner list:
 * update with the raw gradient, then precondition the filtered one). The host backend evaluates
 * the same GraftingRule in its kernels.
 */
export const graftingPreconditioner = {
  /** a = ka a + kg g^2 (undefined `prev`: zeros). */
  update(prev: tf.Tensor | undefined, grad: tf.Tensor, r: GraftingRule): tf.Tensor {
    return emaTensor(prev, tf.square(grad), { alpha: r.kg, beta: r.ka });
  },
  /** f / (sqrt(a / adiv) + eps). */
  precondition(accumulator: tf.Tensor, f: tf.Tensor, r: GraftingRule): tf.Tensor {
    const a = r.adiv === 1 ? accumulator : tf.div(accumulator, r.adiv);
    return tf.div(f, tf.add(tf.sqrt(a), r.eps));
  },
};

/** The new accumulator after seeing `grad` (undefined `prev` means zeros). */
export function updateGraftingState(prev: tf.Tensor | undefined, grad: tf.Tensor, c: GraftingConfig): tf.Tensor {
  const r = graftingRule(c, 1);
  if (r === undefined) throw new Error(`updateGraftingState: grafting '${c.type}' has no accumulator`);
  return graftingPreconditioner.update(prev, grad, r);
}

/** The grafted method's direction for `grad`; `step` is the 1-based update count. */
export function graftingDirection(
  accumulator: tf.Tensor | undefined,
  grad: tf.Tensor,
  step: number,
  c: GraftingConfig,
): tf.Tensor {
  const r = graftingRule(c, step);
  return r === undefined || accumulator === undefined
    ? grad
    : graftingPreconditioner.precondition(accumulator, grad, r);
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
