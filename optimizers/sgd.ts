/**
 * SGD: stochastic gradient descent with heavy-ball or Nesterov momentum, PyTorch semantics
 * (torch.optim.SGD).
 *
 *   for each parameter p with gradient g, at its t-th update (t = 1, 2, ...):
 *     if maximize:       g = -g
 *     if weightDecay:    g = g + weightDecay * p                         (L2, coupled)
 *     if momentum != 0:
 *       buf = (t == 1) ? g : momentum * buf + (1 - dampening) * g
 *       g   = nesterov ? g + momentum * buf : buf
 *     p = p - lr_t * g                                                  (lr_t from a schedule)
 *
 * Defaults: learningRate 1e-3 (torch 2.x), momentum 0, dampening 0, weightDecay 0,
 * nesterov false, maximize false. `nesterov` requires momentum > 0 and dampening 0.
 *
 * References: Polyak (1964) heavy ball; Sutskever et al. (2013), "On the importance of
 * initialization and momentum in deep learning" (the Nesterov form used here and in PyTorch).
 *
 * Differences from tfjs: tfjs splits this into `tf.train.sgd` and `tf.train.momentum`; its
 * momentum buffer starts at zero and has no dampening, which gives the same trajectory as
 * here only when dampening is 0 (mu * 0 + g = g). tfjs has no weight decay, no maximize and
 * no schedules. State slot: 'momentumBuffer' (only when momentum > 0).
 */
import * as tf from '@tensorflow/tfjs';
import { CurvatureOptimizer, BASE_OPTION_SPECS, type SlotState, type StepContext } from '../src/optim/base.js';
import { option, optionDocs, invalidOption, type OptionsInput } from '../src/optim/options.js';
import { addL2WeightDecay, descend, momentumDirection } from '../src/optim/transforms.js';

export const SGD_OPTIONS = {
  ...BASE_OPTION_SPECS,
  learningRate: option.learningRate(1e-3, 'Step size: a number >= 0 or a schedule of the step'),
  momentum: option.number(0, 'Momentum coefficient mu (0 = plain SGD)', { min: 0 }),
  dampening: option.number(0, 'Dampening tau: the buffer adds (1 - tau) * g after step 1', { min: 0, max: 1 }),
  weightDecay: option.number(0, 'L2 penalty coefficient, added to the gradient', { min: 0 }),
  nesterov: option.boolean(false, 'Nesterov momentum (needs momentum > 0 and dampening 0)'),
  maximize: option.boolean(false, 'Maximise the objective instead of minimising it'),
};

export type SGDOptions = OptionsInput<typeof SGD_OPTIONS>;

export class SGD extends CurvatureOptimizer<typeof SGD_OPTIONS> {
  static get className(): string {
    return 'CurvatureSGD';
  }

  constructor(options: SGDOptions = {}) {
    super('SGD', SGD_OPTIONS, options);
    const o = this.options;
    if (o.nesterov && (o.momentum <= 0 || o.dampening !== 0)) {
      throw invalidOption(
        'nesterov',
        true,
        `Nesterov momentum requires momentum > 0 and dampening = 0; got momentum ${o.momentum}, dampening ${o.dampening}`,
      );
    }
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
    if (o.momentum !== 0) {
      const { buffer, direction } = momentumDirection(state.get('momentumBuffer'), g, o);
      state.set('momentumBuffer', buffer);
      g = direction;
    }
    return descend(param, g, ctx.learningRate);
  }
}

tf.serialization.registerClass(SGD);

export const sgdEntry = {
  name: 'sgd',
  className: SGD.className,
  description: 'Stochastic gradient descent with PyTorch heavy-ball/Nesterov momentum',
  options: optionDocs(SGD_OPTIONS),
  create: (options: Record<string, unknown>) => new SGD(options as SGDOptions),
};
