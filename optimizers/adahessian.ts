/**
 * AdaHessian (Yao et al. 2021): Adam with the squared gradient replaced by a spatially averaged
 * Hutchinson estimate of the Hessian diagonal. Anchor: the authors' code
 * (amirgholami/adahessian, instruction/adahessian.py and image_classification/optim_adahessian.py);
 * option names are theirs in camelCase (`betas` split into beta1 / beta2 as in this project's Adam).
 *
 *   every step (closure f, variables theta, gradient g):
 *   if iteration % updateEach == 0 (iteration = updates before this step; the first step estimates):
 *     u ~ Rademacher;  D = u * (H u)           (one exact HVP, src/autodiff; E[D] = diag(H))
 *     for each parameter p:  Dbar = spatialAverage(|D_p|)
 *                            v = beta2 * v + (1 - beta2) * Dbar^2          (v starts at 0)
 *     n = number of estimates so far (this one included)
 *   for each parameter p, at its t-th update:
 *     m = beta1 * m + (1 - beta1) * g                                     (m starts at 0)
 *     denom = (sqrt(v) / sqrt(1 - beta2^n))^hessianPower + eps
 *     p = p - lr_t * (m / (1 - beta1^t) / denom + weightDecay * p)
 *
 * Spatial averaging (`spatialAverageBlockSize` = [b1, b2, b3, b4] by parameter rank; the authors'
 * spatial_average_block_size; the rules are stated in PyTorch layouts and applied to the same
 * entries in tfjs layouts):
 *   -1 (default): rank 1 (biases): none; rank 2 (Dense kernel, tfjs [in, out] = torch [out, in]):
 *       mean over the inputs of each output unit (torch: "the entire row", dim 1; here axis 0);
 *       rank 3 (conv1d kernel, tfjs [k, in, out]): mean over the kernel positions (torch dim 2;
 *       here axis 0); rank 4 (conv2d kernel, tfjs [kh, kw, in, out]): mean over the kh x kw
 *       spatial positions (torch dims [2, 3]; here axes [0, 1]).
 *   b > 0: mean over consecutive blocks of b entries of the tensor in PyTorch's layout and
 *       row-major order (torch `hv_abs.view(-1, b)`); b must divide the parameter's size. 1: none.
 *   Rank 0 and rank > 4 parameters are not averaged (the authors raise an error for rank > 4).
 * |u * Hu| = |Hu| entrywise since u = +-1 (the authors' code takes |Hu|).
 *
 * Defaults (authors): learningRate 0.15, beta1 0.9, beta2 0.999, eps 1e-4, weightDecay 0,
 * hessianPower 1, spatialAverageBlockSize [-1, -1, -1, -1].
 *
 * Where this differs from the authors' code, and why:
 * - `updateEach` (default 10; davda54/ada-hessian's `update_each`): the Hessian estimate (one
 *   HVP, 2.1x a gradient on the bench MLP, wasm) is taken every updateEach steps and v changes only
 *   then; the authors estimate every step (updateEach 1 reproduces them exactly). At 1 a step
 *   costs 3.4x an Adam step on the bench MLP, at 10 1.44x (BENCHMARKS.md, quiet run); issue 17
 *   asks for <= 2.5x at the default period (`npm run bench -- second-order`; docs/optimizers.md).
 * - The bias correction of v uses n, the number of estimates taken (equal to t at updateEach 1).
 * - Probes come from a seeded generator (`seed`, per step; `probes` injects one), not torch's
 *   global generator, so a restored optimizer draws the same probes as the original.
 * - Weight decay as the authors' image-classification code (decoupled, inside the lr factor);
 *   their fairseq version has the same form.
 *
 * Cost per estimation step: one more closure evaluation with a double backward pass (an exact
 * HVP). State slots: 'expAvg', 'expHessianDiagSq'; numeric state 'hessianSteps' (n).
 *
 * References: Z. Yao, A. Gholami, S. Shen, M. Mustafa, K. Keutzer, M. Mahoney (2021),
 * "ADAHESSIAN: An Adaptive Second Order Optimizer for Machine Learning", AAAI 2021
 * (arXiv 2006.00719); github.com/amirgholami/adahessian; M. F. Hutchinson (1990);
 * C. Bekas, E. Kokiopoulou, Y. Saad (2007), "An estimator for the diagonal of a matrix".
 */
import * as tf from '@tensorflow/tfjs';
import { BASE_OPTION_SPECS, type GradientEntry, type SlotState, type StepContext } from '../src/optim/base.js';
import {
  DiagonalHessianOptimizer,
  probesOption,
  StepProbes,
  type DiagonalEstimator,
  type ProbeGenerator,
} from '../src/optim/diagonal-hessian.js';
import { invalidOption, option, optionDocs, type OptionSpec, type OptionsInput } from '../src/optim/options.js';
import { ema } from '../src/optim/transforms.js';

function blockSizesOption(): OptionSpec<[number, number, number, number]> {
  return {
    default: [-1, -1, -1, -1],
    description:
      'Spatial-average block size by parameter rank [1-D, 2-D, 3-D, 4-D]: -1 the rank rule (none / per output unit / per conv filter), b > 0 blocks of b',
    parse(v, name) {
      if (
        !Array.isArray(v) ||
        v.length !== 4 ||
        !v.every((x) => typeof x === 'number' && Number.isInteger(x) && (x === -1 || x >= 1))
      ) {
        throw invalidOption(name, v, 'must be an array of 4 integers, each -1 or >= 1');
      }
      return [v[0], v[1], v[2], v[3]] as [number, number, number, number];
    },
  };
}

export const ADAHESSIAN_OPTIONS = {
  ...BASE_OPTION_SPECS,
  learningRate: option.learningRate(0.15, 'Step size: a number >= 0 or a schedule of the step'),
  beta1: option.decay(0.9, 'Decay of the gradient moving average'),
  beta2: option.decay(0.999, 'Decay of the moving average of the squared Hessian-diagonal estimate'),
  eps: option.number(1e-4, 'Added to the denominator (after the Hessian power)', { min: 0 }),
  weightDecay: option.number(0, 'Decoupled weight decay, multiplied by the learning rate', { min: 0 }),
  hessianPower: option.number(1, 'Power k of the denominator (1: Newton-like, 0.5: between Adam and Newton)', {
    min: 0,
    max: 1,
  }),
  spatialAverageBlockSize: blockSizesOption(),
  updateEach: option.number(10, 'Take the Hessian-diagonal estimate (one HVP) every this many steps', {
    min: 1,
    integer: true,
  }),
  seed: option.number(0, 'Seed of the Rademacher probes (per step: seed and step count)', { min: 0, integer: true }),
  probes: probesOption(),
};

export type AdaHessianOptions = OptionsInput<typeof ADAHESSIAN_OPTIONS>;

/** PyTorch layout of a tfjs parameter of rank r: the permutation tfjs -> torch. */
function torchPerm(rank: number): number[] | undefined {
  if (rank === 2) return [1, 0]; // [in, out] -> [out, in]
  if (rank === 3) return [2, 1, 0]; // [k, in, out] -> [out, in, k]
  if (rank === 4) return [3, 2, 0, 1]; // [kh, kw, in, out] -> [out, in, kh, kw]
  return undefined;
}

/**
 * The authors' spatial average of a non-negative estimate `d` (tfjs layout), as in the header.
 * Call inside a tidy.
 */
export function spatialAverage(d: tf.Tensor, blockSizes: readonly number[]): tf.Tensor {
  const rank = d.rank;
  if (rank === 0 || rank > 4) return d;
  const b = blockSizes[rank - 1]!;
  if (b === 1) return d;
  if (b === -1) {
    if (rank === 1) return d;
    const axes = rank === 4 ? [0, 1] : [0];
    return tf.mul(tf.mean(d, axes, true), tf.onesLike(d));
  }
  if (d.size % b !== 0) {
    throw new Error(
      `AdaHessian: spatialAverageBlockSize ${b} for rank-${rank} parameters does not divide a parameter of shape [${d.shape}] (size ${d.size}).`,
    );
  }
  const perm = torchPerm(rank);
  const t = perm === undefined ? d : tf.transpose(d, perm);
  const blocks = tf.mean(t.reshape([-1, b]), 1, true);
  const back = tf.tile(blocks, [1, b]).reshape(t.shape);
  if (perm === undefined) return back;
  const inverse = perm.map((_, i) => perm.indexOf(i));
  return tf.transpose(back, inverse);
}

export class AdaHessian extends DiagonalHessianOptimizer<typeof ADAHESSIAN_OPTIONS> {
  static get className(): string {
    return 'CurvatureAdaHessian';
  }

  constructor(options: AdaHessianOptions = {}) {
    super('AdaHessian', ADAHESSIAN_OPTIONS, options);
    this.numericState.hessianSteps = 0;
  }

  /** Hessian-diagonal estimates taken so far (n of the header). */
  get hessianSteps(): number {
    return this.numericState.hessianSteps ?? 0;
  }

  protected override estimateAt(iteration: number): boolean {
    return iteration % this.options.updateEach === 0 || this.hessianSteps === 0;
  }

  protected override chooseEstimator(_haveOutputs: boolean): DiagonalEstimator {
    return 'hutchinson';
  }

  protected override probeGenerator(iteration: number): ProbeGenerator {
    return this.options.probes?.(iteration) ?? new StepProbes(this.options.seed, iteration);
  }

  protected override applyUpdate(entries: GradientEntry[], ctx: StepContext): void {
    if (this.estimateFor(entries[0]?.name ?? '') !== undefined) {
      this.numericState.hessianSteps = this.hessianSteps + 1;
    }
    super.applyUpdate(entries, ctx);
  }

  protected override updateVariable(
    param: tf.Variable,
    grad: tf.Tensor,
    state: SlotState,
    ctx: StepContext,
  ): tf.Tensor {
    const o = this.options;
    const t = state.step + 1;
    const m = ema(state.get('expAvg') ?? tf.zerosLike(param), grad, o.beta1);
    state.set('expAvg', m);
    const d = this.estimateFor(param.name);
    let v = state.get('expHessianDiagSq') ?? tf.zerosLike(param);
    if (d !== undefined) {
      const dBar = spatialAverage(tf.abs(d), o.spatialAverageBlockSize);
      v = ema(v, tf.square(dBar), o.beta2);
      state.set('expHessianDiagSq', v);
    }
    const n = Math.max(1, this.hessianSteps);
    const k = o.hessianPower;
    const denom = tf.add(tf.pow(tf.div(tf.sqrt(v), Math.sqrt(1 - o.beta2 ** n)), k), o.eps);
    const lr = ctx.learningRate;
    const step = tf.div(m, tf.mul(denom, 1 - o.beta1 ** t));
    const decayed = o.weightDecay === 0 ? step : tf.add(step, tf.mul(param, o.weightDecay));
    return tf.sub(param, tf.mul(decayed, lr));
  }
}

tf.serialization.registerClass(AdaHessian);

export const adaHessianEntry = {
  name: 'adahessian',
  className: AdaHessian.className,
  description:
    "AdaHessian: Adam with a spatially averaged Hutchinson Hessian diagonal (exact HVPs every updateEach steps), authors' code",
  options: optionDocs(ADAHESSIAN_OPTIONS),
  create: (options: Record<string, unknown>) => new AdaHessian(options as AdaHessianOptions),
};
