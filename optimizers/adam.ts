/**
 * Adam and AdamW with PyTorch semantics (torch.optim.Adam; `decoupledWeightDecay: true` is
 * torch.optim.AdamW).
 *
 *   for each parameter p with gradient g, at its t-th update (t = 1, 2, ...):
 *     if maximize:          g = -g
 *     if weightDecay:
 *       decoupled ? p = p * (1 - lr_t * weightDecay)            (AdamW)
 *                 : g = g + weightDecay * p                     (L2)
 *     m = beta1 * m + (1 - beta1) * g                           (m, v start at 0)
 *     v = beta2 * v + (1 - beta2) * g^2
 *     vHat = amsgrad ? (vMax = max(vMax, v)) : v
 *     p = p - (lr_t / (1 - beta1^t)) * m / (sqrt(vHat) / sqrt(1 - beta2^t) + epsilon)
 *
 * Defaults: learningRate 1e-3, beta1 0.9, beta2 0.999, epsilon 1e-8, weightDecay 0,
 * decoupledWeightDecay false, amsgrad false, maximize false.
 *
 * References: Kingma & Ba (2015), "Adam: A Method for Stochastic Optimization";
 * Reddi et al. (2018), "On the Convergence of Adam and Beyond" (AMSGrad);
 * Loshchilov & Hutter (2019), "Decoupled Weight Decay Regularization" (AdamW).
 *
 * Differences from tfjs `tf.train.adam(lr, beta1, beta2, epsilon)`: the update is the same
 * formula (epsilon added to the bias-corrected sqrt(v), outside the root), but tfjs's default
 * epsilon is the backend epsilon (1e-7 in float32), not 1e-8; tfjs keeps beta^t as a float32
 * running product while here it is computed from the per-variable step count; tfjs has no
 * amsgrad, weight decay, maximize or schedules. State slots: 'expAvg', 'expAvgSq',
 * 'maxExpAvgSq' (amsgrad).
 */
import * as tf from '@tensorflow/tfjs';
import { CurvatureOptimizer, BASE_OPTION_SPECS, type SlotState, type StepContext } from '../src/optim/base.js';
import { option, optionDocs, type OptionsInput } from '../src/optim/options.js';
import { addL2WeightDecay, decoupledWeightDecay, ema } from '../src/optim/transforms.js';

export const ADAM_OPTIONS = {
  ...BASE_OPTION_SPECS,
  learningRate: option.learningRate(1e-3, 'Step size: a number >= 0 or a schedule of the step'),
  beta1: option.decay(0.9, 'Decay of the first-moment (mean) estimate'),
  beta2: option.decay(0.999, 'Decay of the second-moment (uncentered variance) estimate'),
  epsilon: option.number(1e-8, 'Added to the bias-corrected sqrt(v) (outside the root)', { min: 0 }),
  weightDecay: option.number(0, 'Weight decay coefficient (L2, or decoupled if decoupledWeightDecay)', { min: 0 }),
  decoupledWeightDecay: option.boolean(false, 'Decoupled weight decay p *= 1 - lr * wd (AdamW)'),
  amsgrad: option.boolean(false, 'Use the running maximum of v (AMSGrad)'),
  maximize: option.boolean(false, 'Maximise the objective instead of minimising it'),
};

export type AdamOptions = OptionsInput<typeof ADAM_OPTIONS>;

export class Adam extends CurvatureOptimizer<typeof ADAM_OPTIONS> {
  static get className(): string {
    return 'CurvatureAdam';
  }

  constructor(options: AdamOptions = {}) {
    super('Adam', ADAM_OPTIONS, options);
  }

  protected override updateVariable(
    param: tf.Variable,
    grad: tf.Tensor,
    state: SlotState,
    ctx: StepContext,
  ): tf.Tensor {
    return adamUpdate(param, grad, state, ctx.learningRate, this.options);
  }
}

/** The Adam settings `adamUpdate` reads (Adam's own options, or Muon's AdamW part). */
export interface AdamUpdateConfig {
  beta1: number;
  beta2: number;
  epsilon: number;
  weightDecay: number;
  decoupledWeightDecay: boolean;
  amsgrad: boolean;
  maximize: boolean;
}

/**
 * One Adam/AdamW update of `param` (the formula at the top of this file): reads and writes the
 * slots 'expAvg', 'expAvgSq' (and 'maxExpAvgSq'), uses `state.step + 1` as t, returns the new
 * parameter value. Shared with optimizers that run AdamW on part of the parameters (Muon).
 */
export function adamUpdate(
  param: tf.Tensor,
  grad: tf.Tensor,
  state: SlotState,
  lr: number,
  o: AdamUpdateConfig,
): tf.Tensor {
  let g = o.maximize ? tf.neg(grad) : grad;
  let p: tf.Tensor = param;
  if (o.decoupledWeightDecay) p = decoupledWeightDecay(param, lr, o.weightDecay);
  else g = addL2WeightDecay(g, param, o.weightDecay);

  const m = ema(state.get('expAvg') ?? tf.zerosLike(param), g, o.beta1);
  const v = ema(state.get('expAvgSq') ?? tf.zerosLike(param), tf.square(g), o.beta2);
  state.set('expAvg', m);
  state.set('expAvgSq', v);
  let vHat = v;
  if (o.amsgrad) {
    const prev = state.get('maxExpAvgSq');
    vHat = prev === undefined ? v : tf.maximum(prev, v);
    state.set('maxExpAvgSq', vHat);
  }

  const t = state.step + 1;
  const bias1 = 1 - o.beta1 ** t;
  const bias2Sqrt = Math.sqrt(1 - o.beta2 ** t);
  const denom = tf.add(tf.div(tf.sqrt(vHat), bias2Sqrt), o.epsilon);
  return tf.sub(p, tf.mul(tf.div(m, denom), lr / bias1));
}

tf.serialization.registerClass(Adam);

export const adamEntry = {
  name: 'adam',
  className: Adam.className,
  description: 'Adam / AdamW / AMSGrad with PyTorch semantics and bias correction',
  options: optionDocs(ADAM_OPTIONS),
  create: (options: Record<string, unknown>) => new Adam(options as AdamOptions),
};
