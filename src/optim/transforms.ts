/**
 * Reusable update pieces, optax-style: small pure functions on tensors, written once and
 * shared by SGD, RMSProp, Adam and the second-order optimizers (Shampoo and K-FAC apply the
 * same momentum and weight decay to their preconditioned directions).
 *
 * Each function takes the previous state explicitly and returns the new state; the caller
 * stores it in its slots (`state.set`). They allocate only temporaries, so call them inside
 * the tidy that `CurvatureOptimizer` wraps around every update.
 */
import * as tf from '@tensorflow/tfjs';

/** Exponential moving average `decay * prev + (1 - decay) * x` (Adam's moments, RMSProp). */
export function ema(prev: tf.Tensor, x: tf.Tensor, decay: number): tf.Tensor {
  return tf.add(tf.mul(prev, decay), tf.mul(x, 1 - decay));
}

/**
 * L2 weight decay (PyTorch `weight_decay` on SGD, RMSProp, Adam): the penalty
 * `wd/2 * ||p||^2` added to the loss, i.e. `g + wd * p`. Its effect is rescaled by adaptive
 * preconditioners, unlike `decoupledWeightDecay`.
 */
export function addL2WeightDecay(grad: tf.Tensor, param: tf.Tensor, weightDecay: number): tf.Tensor {
  return weightDecay === 0 ? grad : tf.add(grad, tf.mul(param, weightDecay));
}

/**
 * Decoupled weight decay (Loshchilov & Hutter, AdamW; optax add_decayed_weights scaled by
 * the learning rate): `p * (1 - lr * wd)`, applied to the parameter before the update.
 */
export function decoupledWeightDecay(param: tf.Tensor, learningRate: number, weightDecay: number): tf.Tensor {
  return weightDecay === 0 ? param : tf.mul(param, 1 - learningRate * weightDecay);
}

export interface MomentumConfig {
  /** Momentum coefficient mu; 0 disables the buffer. */
  momentum: number;
  /** PyTorch dampening tau: the buffer accumulates (1 - tau) * g after the first step. */
  dampening: number;
  /** Nesterov: the direction is g + mu * buf instead of buf. */
  nesterov: boolean;
}

/**
 * Heavy-ball / Nesterov momentum with PyTorch's semantics (torch.optim.SGD):
 *
 *   buf_1 = g_1                                   (first step: buffer initialised to g, not 0)
 *   buf_t = mu * buf_{t-1} + (1 - tau) * g_t
 *   d_t   = nesterov ? g_t + mu * buf_t : buf_t
 *
 * `buf` is undefined on a variable's first step. Returns the new buffer and the direction.
 * With tau = 0 this equals tfjs's MomentumOptimizer (zero-initialised buffer, no dampening),
 * whose first buffer mu * 0 + g_1 is also g_1.
 */
export function momentumDirection(
  buf: tf.Tensor | undefined,
  grad: tf.Tensor,
  c: MomentumConfig,
): { buffer: tf.Tensor; direction: tf.Tensor } {
  const buffer =
    buf === undefined
      ? grad
      : tf.add(tf.mul(buf, c.momentum), c.dampening === 0 ? grad : tf.mul(grad, 1 - c.dampening));
  const direction = c.nesterov ? tf.add(grad, tf.mul(buffer, c.momentum)) : buffer;
  return { buffer, direction };
}

/** `param - lr * direction`. */
export function descend(param: tf.Tensor, direction: tf.Tensor, learningRate: number): tf.Tensor {
  return tf.sub(param, tf.mul(direction, learningRate));
}
