/**
 * RMSProp with PyTorch semantics (torch.optim.RMSprop).
 *
 *   for each parameter p with gradient g:
 *     if maximize:     g = -g
 *     if weightDecay:  g = g + weightDecay * p
 *     v = alpha * v + (1 - alpha) * g^2                         (v starts at 0)
 *     if centered:
 *       gAvg = alpha * gAvg + (1 - alpha) * g                   (gAvg starts at 0)
 *       avg  = sqrt(v - gAvg^2) + epsilon
 *     else
 *       avg  = sqrt(v) + epsilon                                 (epsilon OUTSIDE the sqrt)
 *     if momentum > 0:
 *       buf = momentum * buf + g / avg                           (buf starts at 0)
 *       p   = p - lr_t * buf
 *     else
 *       p   = p - lr_t * g / avg
 *
 * Defaults: learningRate 1e-2, alpha 0.99, epsilon 1e-8, weightDecay 0, momentum 0,
 * centered false, maximize false.
 *
 * References: Tieleman & Hinton (2012), Lecture 6.5 of "Neural Networks for Machine
 * Learning"; Graves (2013), "Generating sequences with recurrent neural networks" (centered).
 *
 * Differences from tfjs `tf.train.rmsprop(lr, decay = 0.9, momentum, epsilon, centered)`:
 * tfjs puts epsilon INSIDE the square root (sqrt(v + eps), and sqrt(v - gAvg^2 + eps) when
 * centered), multiplies the learning rate into the momentum buffer (so a schedule changes
 * past steps' weight), calls alpha `decay` with default 0.9, and defaults epsilon to the
 * backend's 1e-7. No tfjs configuration reproduces this trajectory exactly.
 * State slots: 'squareAvg', 'gradAvg' (centered), 'momentumBuffer' (momentum > 0).
 */
import * as tf from '@tensorflow/tfjs';
import { CurvatureOptimizer, BASE_OPTION_SPECS, type SlotState, type StepContext } from '../src/optim/base.js';
import { option, optionDocs, type OptionsInput } from '../src/optim/options.js';
import { addL2WeightDecay, descend, ema, momentumDirection } from '../src/optim/transforms.js';

export const RMSPROP_OPTIONS = {
  ...BASE_OPTION_SPECS,
  learningRate: option.learningRate(1e-2, 'Step size: a number >= 0 or a schedule of the step'),
  alpha: option.decay(0.99, 'Smoothing constant of the squared-gradient average'),
  epsilon: option.number(1e-8, 'Added to sqrt(v) (outside the square root, as PyTorch)', { min: 0 }),
  weightDecay: option.number(0, 'L2 penalty coefficient, added to the gradient', { min: 0 }),
  momentum: option.number(0, 'Momentum coefficient on the normalised gradient', { min: 0 }),
  centered: option.boolean(false, 'Normalise by the estimated variance sqrt(v - E[g]^2)'),
  maximize: option.boolean(false, 'Maximise the objective instead of minimising it'),
};

export type RMSPropOptions = OptionsInput<typeof RMSPROP_OPTIONS>;

export class RMSProp extends CurvatureOptimizer<typeof RMSPROP_OPTIONS> {
  static get className(): string {
    return 'CurvatureRMSProp';
  }

  constructor(options: RMSPropOptions = {}) {
    super('RMSProp', RMSPROP_OPTIONS, options);
  }

  protected override updateVariable(
    param: tf.Variable,
    grad: tf.Tensor,
    state: SlotState,
    ctx: StepContext,
  ): tf.Tensor {
    const o = this.options;
    let g = o.maximize ? tf.neg(grad) : grad;
    g = addL2WeightDecay(g, param, o.weightDecay);
    const v = ema(state.get('squareAvg') ?? tf.zerosLike(param), tf.square(g), o.alpha);
    state.set('squareAvg', v);
    let variance = v;
    if (o.centered) {
      const gAvg = ema(state.get('gradAvg') ?? tf.zerosLike(param), g, o.alpha);
      state.set('gradAvg', gAvg);
      variance = tf.sub(v, tf.square(gAvg));
    }
    const normalised = tf.div(g, tf.add(tf.sqrt(variance), o.epsilon));
    if (o.momentum > 0) {
      // PyTorch: buf = momentum * buf + normalised, from a zero buffer (so buf_1 = normalised).
      const { buffer, direction } = momentumDirection(state.get('momentumBuffer'), normalised, {
        momentum: o.momentum,
        dampening: 0,
        nesterov: false,
      });
      state.set('momentumBuffer', buffer);
      return descend(param, direction, ctx.learningRate);
    }
    return descend(param, normalised, ctx.learningRate);
  }
}

tf.serialization.registerClass(RMSProp);

export const rmspropEntry = {
  name: 'rmsprop',
  className: RMSProp.className,
  description: 'RMSProp (PyTorch semantics: epsilon outside the square root; centered, momentum)',
  options: optionDocs(RMSPROP_OPTIONS),
  create: (options: Record<string, unknown>) => new RMSProp(options as RMSPropOptions),
};
