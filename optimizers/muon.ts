/**
 * Muon: MomentUm Orthogonalized by Newton-Schulz (Jordan et al. 2024), with AdamW for the
 * parameters that are not matrices. Anchor: optax `contrib.muon` (google-deepmind/optax,
 * optax/contrib/_muon.py); option names are its names in camelCase.
 *
 *   for each parameter p with gradient g, at its t-th update (t = 1, 2, ...):
 *   if p is 2-D (shape [rows, cols]; a Dense kernel is [in, out] = [fanIn, fanOut]):
 *     mu    = beta * mu + (1 - beta) * g                                  (mu starts at 0)
 *     mHat  = nesterov ? beta * mu / (1 - beta^(t+1)) + (1 - beta) * g / (1 - beta^t)
 *                      : mu / (1 - beta^t)
 *     O     = NS(mHat)                                     (quintic Newton-Schulz, below)
 *     if adaptive:  O = <mHat, O>_F * O                    (Bernstein et al. dual-norm scale)
 *     O     = O * (consistentRms === undefined ? sqrt(max(1, cols / rows))    (width scaling)
 *                                              : sqrt(max(rows, cols)) * consistentRms)
 *     p     = p - lr_t * (O + weightDecay * p)
 *   otherwise (biases, gains, conv kernels, scalars): AdamW, i.e. `adamUpdate` of
 *     optimizers/adam.ts with beta1 = adamB1, beta2 = adamB2, epsilon = eps,
 *     decoupled weight decay adamWeightDecay, learning rate adamLearningRate ?? lr_t.
 *
 *   NS(X):  if rows > cols: X = X^T   (iterate on the wide orientation; NS(X^T) = NS(X)^T)
 *           X = X / (||X||_F + eps)                        (spectral norm <= 1)
 *           repeat nsSteps times:  A = X X^T;  X = a X + (b A + c A A) X
 *           transpose back.   (a, b, c) = nsCoeffs.
 *   The quintic's coefficients maximise the slope at 0, so the singular values of the result
 *   are not all 1 but lie in a band around 1: after 5 steps, every input singular value of at
 *   least 1% of ||X||_F comes out in [0.68, 1.14] (0.3%: [0.68, 1.21]); the singular vectors are
 *   those of X, so the result approximates U V^T (SVD X = U S V^T).
 *
 * Orientation and scaling: a tfjs Dense kernel is [in, out], the same layout as optax/flax
 * (optax's default MuonDimensionNumbers: reduction axis 0, output axis 1), so the width scale
 * sqrt(max(1, fanOut / fanIn)) is sqrt(max(1, cols / rows)) here; KellerJordan/Muon's
 * sqrt(max(1, rows / cols)) on PyTorch's [out, in] weights is the same number.
 *
 * Defaults (optax): nsCoeffs [3.4445, -4.7750, 2.0315], nsSteps 5, beta 0.95, eps 1e-8,
 * weightDecay 0, nesterov true, adaptive false, consistentRms unset (width scaling),
 * adamB1 0.9, adamB2 0.999, adamWeightDecay 0. learningRate 0.02: optax has no default;
 * 0.02 is KellerJordan/Muon's (the step is in units of spectral norm).
 *
 * Where this differs from optax, and why:
 * - The AdamW part is this project's Adam (bias-corrected, decoupled weight decay) without
 *   Nesterov; optax passes `nesterov` to its adamw (a NAdam-style first moment). We reuse
 *   Adam rather than copy it, and plain AdamW is what KellerJordan's MuonWithAuxAdam runs.
 * - `adamLearningRate` (extension, default: learningRate): optax steps both parts with one
 *   learning rate; KellerJordan's MuonWithAuxAdam gives the Adam groups their own (3e-4 there),
 *   since Muon's rate is in spectral-norm units and Adam's is per coordinate. (On mlp-mnist and
 *   autoencoder-mnist, where only biases take the AdamW path, 0.01 instead of 0.02 changed the
 *   200-step loss by less than the seed spread: docs/optimizers.md.)
 * - No `adamEpsRoot`, `mu_dtype`, `weight_decay_mask`, per-step coefficient lists or
 *   `muon_weight_dimension_numbers`: every 2-D variable goes through Muon and every other one
 *   through AdamW (optax's default split). A model's input embedding or output layer is
 *   2-D too; KellerJordan recommends AdamW for those, which needs a second optimizer here.
 * - `eps` must be > 0 (optax allows 0): with 0 a zero momentum would give 0/0.
 * - The normalisation divides by max|X| first (exact in real arithmetic,
 *   X / (||X|| + eps) = (X/s) / (||X/s|| + eps/s) for s = max(max|X|, eps)), so ||X||_F cannot
 *   overflow float32 for large gradients.
 * - Everything is float32 (tfjs); optax computes in the parameter dtype, KellerJordan in bfloat16.
 *
 * Cost: nsSteps x (2 m^2 n + m^3) multiply-adds per m x n matrix (m <= n) per step, which for a
 * 784 x 128 kernel at 5 steps (139 M) is 2.7x the forward and backward pass of a batch of 256
 * (52 M: x W1, h W2 and their weight gradients; the input needs none), so no dense float32 NS can
 * bring a step below ~3.7x an Adam step there at equal throughput (1.3x needs batches of ~2,300).
 * The iteration already runs on the smaller side, with no transposed matMul (one explicit
 * transpose of the m x n iterate per iteration, ~9% of the step) and the quintic fused into one
 * m x m polynomial times X; keeping X^T as a second iterate instead (X^T <- X^T B, B symmetric)
 * was measured slower (one more m^2 n product). `npm run bench -- muon` measures 3.6x an Adam
 * step at batch 256 and 1.8x at 1024 (wasm; BENCHMARKS.md, quiet run), and breaks the time down.
 *
 * State slots: 'mu' (2-D variables), 'expAvg' and 'expAvgSq' (the others).
 *
 * References: K. Jordan et al. (2024), "Muon: An optimizer for hidden layers in neural
 * networks", https://kellerjordan.github.io/posts/muon/ and github.com/KellerJordan/Muon;
 * J. Bernstein and L. Newhouse (2024), "Old Optimizer, New Norm: An Anthology" (arXiv
 * 2409.20325); J. Liu et al. (2025), "Muon is Scalable for LLM Training" (arXiv 2502.16982,
 * consistent RMS); optax contrib muon (google-deepmind/optax).
 */
import * as tf from '@tensorflow/tfjs';
import { CurvatureOptimizer, BASE_OPTION_SPECS, type SlotState, type StepContext } from '../src/optim/base.js';
import { option, optionDocs, invalidOption, type OptionSpec, type OptionsInput } from '../src/optim/options.js';
import {
  learningRateAt,
  learningRateFromConfig,
  learningRateToConfig,
  type LearningRate,
} from '../src/optim/schedules.js';
import { ema } from '../src/optim/transforms.js';
import { adamUpdate } from './adam.js';

export const DEFAULT_NS_COEFFS: readonly [number, number, number] = [3.4445, -4.775, 2.0315];

function nsCoeffsOption(): OptionSpec<[number, number, number]> {
  return {
    default: [...DEFAULT_NS_COEFFS],
    description: 'Quintic Newton-Schulz coefficients [a, b, c]: X <- aX + (bA + cA^2)X, A = XX^T',
    parse(v, name) {
      if (!Array.isArray(v) || v.length !== 3 || !v.every((x) => typeof x === 'number' && Number.isFinite(x))) {
        throw invalidOption(name, v, 'must be an array of 3 finite numbers [a, b, c]');
      }
      return [v[0], v[1], v[2]] as [number, number, number];
    },
  };
}

function optionalNumber(description: string, min: number, minExclusive: boolean): OptionSpec<number | undefined> {
  const inner = option.number(0, description, { min, minExclusive });
  return {
    default: undefined,
    description,
    parse: (v, name) => (v === undefined ? undefined : inner.parse(v, name)),
  };
}

function optionalLearningRate(description: string): OptionSpec<LearningRate | undefined> {
  const inner = option.learningRate(0, description);
  return {
    default: undefined,
    description,
    parse: (v, name) => (v === undefined ? undefined : inner.parse(v, name)),
  };
}

export const MUON_OPTIONS = {
  ...BASE_OPTION_SPECS,
  learningRate: option.learningRate(
    0.02,
    'Step size (spectral-norm units for 2-D parameters): a number >= 0 or a schedule',
  ),
  nsCoeffs: nsCoeffsOption(),
  nsSteps: option.number(5, 'Newton-Schulz iterations', { min: 1, max: 100, integer: true }),
  beta: option.decay(0.95, 'Momentum decay (EMA of the gradient, bias-corrected)'),
  eps: option.number(1e-8, 'Added to ||M||_F in the NS normalisation, and to sqrt(v) in the AdamW part', {
    min: 0,
    minExclusive: true,
  }),
  weightDecay: option.number(0, 'Decoupled weight decay of the 2-D parameters, multiplied by the learning rate', {
    min: 0,
  }),
  nesterov: option.boolean(true, 'Nesterov momentum for the 2-D parameters'),
  adaptive: option.boolean(false, 'Scale the orthogonalised update by <M, O>_F (dual norm of the momentum)'),
  consistentRms: optionalNumber(
    'If set, scale updates by sqrt(max(rows, cols)) * consistentRms (0.2 matches AdamW RMS) instead of sqrt(max(1, cols/rows))',
    0,
    true,
  ),
  adamB1: option.decay(0.9, 'AdamW first-moment decay (non-2-D parameters)'),
  adamB2: option.decay(0.999, 'AdamW second-moment decay (non-2-D parameters)'),
  adamWeightDecay: option.number(0, 'AdamW decoupled weight decay (non-2-D parameters)', { min: 0 }),
  adamLearningRate: optionalLearningRate(
    'AdamW learning rate for non-2-D parameters (number or schedule); default: learningRate',
  ),
};

export type MuonOptions = OptionsInput<typeof MUON_OPTIONS>;

/**
 * The quintic Newton-Schulz map NS(X) of the file header, in float32 tfjs ops (call inside a
 * tidy). X must be 2-D. Cost per step, m = min(rows, cols), n = max(rows, cols):
 * 2 m^2 n + m^3 multiply-adds (A = XX^T is m x m). An algebraically equal "Gram" form that
 * iterates on m x m polynomials of X_0 X_0^T only (2 m^2 n + 18 m^3 in all, half the work for a
 * 784 x 128 kernel) was tried and rejected: in float32 it loses the small singular directions
 * (2% to 14% error against float64 on an 8 x 8 matrix with singular values down to 1% of the
 * largest), while this direct form is self-correcting (error ~1e-6).
 */
export function newtonSchulz(
  x: tf.Tensor2D,
  coeffs: readonly [number, number, number],
  steps: number,
  eps: number,
): tf.Tensor2D {
  const [rows, cols] = x.shape;
  const transposed = rows > cols;
  let X: tf.Tensor2D = transposed ? tf.transpose(x) : x;
  // X / (||X|| + eps), computed as (X/s) / (||X/s|| + eps/s), s = max(max|X|, eps): no overflow.
  const s = tf.maximum(tf.max(tf.abs(X)), eps);
  X = tf.div(X, s);
  X = tf.div(X, tf.add(tf.norm(X), tf.div(eps, s)));
  const [a, b, c] = coeffs;
  // X^T is formed explicitly: wasm's transposed matMul is slow (src/tfjs-internals/wasm-matmul.ts).
  // aX + (bA + cA^2)X is computed as (aI + bA + cA^2) X: the m x m sum is cheap, and the two
  // elementwise passes over the m x n iterate are saved.
  const aI = tf.mul(tf.eye(X.shape[0]), a);
  for (let k = 0; k < steps; k++) {
    const A = tf.matMul(X, tf.transpose(X));
    const B = tf.add(tf.add(aI, tf.mul(A, b)), tf.mul(tf.matMul(A, A), c));
    X = tf.matMul(B, X);
  }
  return transposed ? tf.transpose(X) : X;
}

export class Muon extends CurvatureOptimizer<typeof MUON_OPTIONS> {
  static get className(): string {
    return 'CurvatureMuon';
  }

  constructor(options: MuonOptions = {}) {
    super('Muon', MUON_OPTIONS, options);
  }

  /** True for the parameters Muon orthogonalises (rank 2); the others get AdamW. */
  static usesMuon(shape: readonly number[]): boolean {
    return shape.length === 2;
  }

  protected override updateVariable(
    param: tf.Variable,
    grad: tf.Tensor,
    state: SlotState,
    ctx: StepContext,
  ): tf.Tensor {
    const o = this.options;
    const lr = ctx.learningRate;
    if (!Muon.usesMuon(param.shape)) {
      const adamLr = o.adamLearningRate === undefined ? lr : learningRateAt(o.adamLearningRate, ctx.iteration);
      return adamUpdate(param, grad, state, adamLr, {
        beta1: o.adamB1,
        beta2: o.adamB2,
        epsilon: o.eps,
        weightDecay: o.adamWeightDecay,
        decoupledWeightDecay: true,
        amsgrad: false,
        maximize: false,
      });
    }
    const t = state.step + 1;
    const beta = o.beta;
    const mu = ema(state.get('mu') ?? tf.zerosLike(param), grad, beta);
    state.set('mu', mu);
    const mHat = o.nesterov
      ? tf.add(tf.mul(mu, beta / (1 - beta ** (t + 1))), tf.mul(grad, (1 - beta) / (1 - beta ** t)))
      : tf.div(mu, 1 - beta ** t);
    let u: tf.Tensor = newtonSchulz(mHat as tf.Tensor2D, o.nsCoeffs, o.nsSteps, o.eps);
    if (o.adaptive) u = tf.mul(u, tf.sum(tf.mul(mHat, u)));
    const [rows, cols] = param.shape as [number, number];
    const scale =
      o.consistentRms === undefined
        ? Math.sqrt(Math.max(1, cols / rows))
        : Math.sqrt(Math.max(rows, cols)) * o.consistentRms;
    const p = o.weightDecay === 0 ? param : tf.mul(param, 1 - lr * o.weightDecay);
    return tf.sub(p, tf.mul(u, lr * scale));
  }

  /** As the base, with `adamLearningRate` (number or schedule) serialised like learningRate. */
  override getConfig(): tf.serialization.ConfigDict {
    const config = super.getConfig();
    if (this.options.adamLearningRate !== undefined) {
      config.adamLearningRate = learningRateToConfig(this.options.adamLearningRate);
    }
    return config;
  }

  static override fromConfig<T extends tf.serialization.Serializable>(
    cls: tf.serialization.SerializableConstructor<T>,
    config: tf.serialization.ConfigDict,
  ): T {
    const c = { ...config } as Record<string, unknown>;
    if (c.adamLearningRate !== undefined) c.adamLearningRate = learningRateFromConfig(c.adamLearningRate);
    return super.fromConfig(cls, c as tf.serialization.ConfigDict);
  }
}

tf.serialization.registerClass(Muon);

export const muonEntry = {
  name: 'muon',
  className: Muon.className,
  description:
    'Muon: Nesterov momentum orthogonalised by quintic Newton-Schulz for 2-D parameters, AdamW for the rest (optax contrib.muon)',
  options: optionDocs(MUON_OPTIONS),
  create: (options: Record<string, unknown>) => new Muon(options as MuonOptions),
};
