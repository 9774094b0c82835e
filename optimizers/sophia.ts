/**
 * Sophia (Liu et al. 2023): momentum divided by an exponential moving average of a diagonal
 * curvature estimate taken every k steps, with the ratio clipped per coordinate. Anchors: the
 * paper's Algorithm 3, the authors' code (Liuhong99/Sophia, sophia.py `SophiaG` and
 * train_sophiag.py) and optax `contrib.sophia` (Hutchinson estimator); option names are the
 * authors' in camelCase (`betas` split into beta1 / beta2, `hess_interval` -> updateInterval).
 *
 *   every step (closure f, variables theta, gradient g), iteration = updates before this step:
 *   if iteration % updateInterval == 0:
 *     D = estimator:  'gnb'        S * g^ * g^, g^ the gradient of the loss against targets
 *                                  sampled from the model's outputs (Sophia-G; Gauss-Newton-Bartlett)
 *                     'hutchinson' u * (H u), u Rademacher (Sophia-H; one exact HVP)
 *                     (src/optim/diagonal-hessian.ts)
 *     h = beta2 * h + (1 - beta2) * D                                      (h starts at 0)
 *   for each parameter p:
 *     m = beta1 * m + (1 - beta1) * g                                      (m starts at 0)
 *     p = p * (1 - lr_t * weightDecay)
 *     p = p - lr_t * clip(m / max(rho * h, eps), -clipThreshold, clipThreshold)
 *
 * Estimator 'auto' (default) is GNB when the network outputs of the step's examples are known
 * (a bound harness problem with outputs and lossKind, or `setCurvatureOutputs` before the step)
 * and Hutchinson otherwise (e.g. model.fit, where tfjs hands the optimizer only the loss
 * closure); 'gnb' without outputs throws. `lastEstimator` says which ran.
 *
 * Defaults (authors' SophiaG): learningRate 1e-4, beta1 0.965, beta2 0.99, rho 0.04,
 * weightDecay 0.1, updateInterval 10 (k), clipThreshold 1, eps 1e-15 (their additive 1e-15).
 *
 * Where this differs from the anchors, and why:
 * - The GNB estimate includes the factor S (the paper's B * g^ * g^); the authors' code keeps
 *   g^ * g^ and multiplies by `bs` (the token count of the batch, passed to `step`) in the
 *   update, i.e. their rho * bs * h is rho * h here. S is taken from the sampled loss itself
 *   (examples for softmax cross-entropy, elements for sigmoid cross-entropy and mean squared
 *   error), so rho means the same at any batch size.
 * - The estimate is taken before the update of the step it belongs to (the paper's Algorithm 3:
 *   t mod k = 1, 1-based), so the first step already uses h = (1 - beta2) D; the authors'
 *   training script updates h after steps k-1, 2k-1, ... and optax after computing the update.
 * - max(rho * h, eps) as the paper and optax (the authors add 1e-15 to rho * bs * h, which with a
 *   negative Hutchinson estimate would step uphill; their SophiaH clamps h at 0 instead).
 * - No bias correction of m (paper, authors); optax bias-corrects m.
 * - Sampling and probes come from a seeded generator (`seed`, per step; `probes` injects one) so
 *   a restored optimizer draws the same targets and probes as the original.
 *
 * Cost per estimation step: GNB one forward and backward pass (plus one read of the outputs to
 * sample targets), Hutchinson one closure evaluation with a double backward pass (exact HVP).
 * State slots: 'expAvg', 'hessian'.
 *
 * References: H. Liu, Z. Li, D. Hall, P. Liang, T. Ma (2023), "Sophia: A Scalable Stochastic
 * Second-order Optimizer for Language Model Pre-training" (arXiv 2305.14342, ICLR 2024);
 * github.com/Liuhong99/Sophia; optax contrib sophia (google-deepmind/optax).
 */
import * as tf from '@tensorflow/tfjs';
import { BASE_OPTION_SPECS, type SlotState, type StepContext } from '../src/optim/base.js';
import {
  DiagonalHessianOptimizer,
  probesOption,
  StepProbes,
  type DiagonalEstimator,
  type ProbeGenerator,
} from '../src/optim/diagonal-hessian.js';
import { option, optionDocs, type OptionsInput } from '../src/optim/options.js';
import { decoupledWeightDecay, ema } from '../src/optim/transforms.js';

export type SophiaEstimator = 'auto' | 'gnb' | 'hutchinson';

export const SOPHIA_OPTIONS = {
  ...BASE_OPTION_SPECS,
  learningRate: option.learningRate(1e-4, 'Step size (largest per-coordinate step): a number >= 0 or a schedule'),
  beta1: option.decay(0.965, 'Decay of the gradient moving average (momentum)'),
  beta2: option.decay(0.99, 'Decay of the moving average of the diagonal estimates (per estimate)'),
  rho: option.number(0.04, 'Scale of the curvature in the denominator: m / max(rho * h, eps)', {
    min: 0,
    minExclusive: true,
  }),
  weightDecay: option.number(0.1, 'Decoupled weight decay, multiplied by the learning rate', { min: 0 }),
  updateInterval: option.number(10, 'Take the diagonal estimate every this many steps (k)', { min: 1, integer: true }),
  clipThreshold: option.number(1, 'Clip of the preconditioned momentum per coordinate', { min: 0, minExclusive: true }),
  eps: option.number(1e-15, 'Floor of rho * h in the denominator', { min: 0, minExclusive: true }),
  estimator: option.choice<SophiaEstimator>(
    'auto',
    ['auto', 'gnb', 'hutchinson'],
    "'gnb' (Sophia-G, sampled targets; needs the outputs), 'hutchinson' (Sophia-H, HVP), 'auto' (gnb when outputs are known)",
  ),
  seed: option.number(0, 'Seed of the probes and sampled targets (per step: seed and step count)', {
    min: 0,
    integer: true,
  }),
  probes: probesOption(),
};

export type SophiaOptions = OptionsInput<typeof SOPHIA_OPTIONS>;

export class Sophia extends DiagonalHessianOptimizer<typeof SOPHIA_OPTIONS> {
  static get className(): string {
    return 'CurvatureSophia';
  }

  constructor(options: SophiaOptions = {}) {
    super('Sophia', SOPHIA_OPTIONS, options);
  }

  protected override estimateAt(iteration: number): boolean {
    return iteration % this.options.updateInterval === 0;
  }

  protected override chooseEstimator(haveOutputs: boolean): DiagonalEstimator {
    const e = this.options.estimator;
    if (e === 'gnb' && !haveOutputs) {
      throw new Error(
        "Sophia: estimator 'gnb' needs the network outputs of this step's examples: call " +
          'setCurvatureOutputs({ outputs, lossKind }) before minimize, or bindProblem(problem) with a network ' +
          "problem (the harness does), or use estimator 'hutchinson' / 'auto'.",
      );
    }
    if (e === 'hutchinson') return 'hutchinson';
    return haveOutputs ? 'gnb' : 'hutchinson';
  }

  protected override probeGenerator(iteration: number): ProbeGenerator {
    return this.options.probes?.(iteration) ?? new StepProbes(this.options.seed, iteration);
  }

  protected override updateVariable(
    param: tf.Variable,
    grad: tf.Tensor,
    state: SlotState,
    ctx: StepContext,
  ): tf.Tensor {
    const o = this.options;
    const m = ema(state.get('expAvg') ?? tf.zerosLike(param), grad, o.beta1);
    state.set('expAvg', m);
    const d = this.estimateFor(param.name);
    let h = state.get('hessian') ?? tf.zerosLike(param);
    if (d !== undefined) {
      h = ema(h, d, o.beta2);
      state.set('hessian', h);
    }
    const lr = ctx.learningRate;
    const p = decoupledWeightDecay(param, lr, o.weightDecay);
    const ratio = tf.clipByValue(tf.div(m, tf.maximum(tf.mul(h, o.rho), o.eps)), -o.clipThreshold, o.clipThreshold);
    return tf.sub(p, tf.mul(ratio, lr));
  }
}

tf.serialization.registerClass(Sophia);

export const sophiaEntry = {
  name: 'sophia',
  className: Sophia.className,
  description:
    'Sophia: clipped momentum over an EMA of a diagonal curvature estimate every k steps (Sophia-G sampled-target GNB or Sophia-H Hutchinson)',
  options: optionDocs(SOPHIA_OPTIONS),
  create: (options: Record<string, unknown>, context?: { problem?: unknown }) => {
    const opt = new Sophia(options as SophiaOptions);
    const problem = context?.problem as { name?: string; outputs?: unknown; lossKind?: unknown } | undefined;
    if (problem !== undefined) {
      if (
        opt.options.estimator === 'gnb' &&
        (typeof problem.outputs !== 'function' || problem.lossKind === undefined)
      ) {
        throw new Error(
          `Sophia: estimator 'gnb' needs a network problem (outputs and a loss kind); '${problem.name ?? 'this problem'}' ` +
            "has none. Use estimator 'hutchinson' or 'auto'.",
        );
      }
      opt.bindProblem(problem);
    }
    return opt;
  },
};
