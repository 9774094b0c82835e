/**
 * Shampoo (Gupta, Koren & Singer 2018) with the features of Distributed Shampoo
 * (Shi et al. 2023, facebookresearch/optimizers; Anil et al. 2020, scalable_shampoo):
 * Kronecker-factored AdaGrad/EMA statistics per tensor dimension, inverse p-th roots in
 * float64, blocking, merging of small dimensions, grafting, momentum and weight decay.
 *
 *   for each parameter p with gradient g, at its t-th update (t = 1, 2, ...):
 *     if weightDecay and not decoupledWeightDecay:  g = g + weightDecay * p          (L2)
 *     reshape g to the merged shape (mergeDims), cut it into blocks of <= maxPreconditionerDim
 *     per block G of order k, per dimension i (G_(i) = mode-i unfolding), at steps
 *     t = 1, 1 + s, 1 + 2s, ... (s = statisticsComputeSteps, default 1 = every step):
 *       S_i = beta2 < 1 ? beta2 S_i + (1 - beta2) G_(i) G_(i)^T : S_i + G_(i) G_(i)^T
 *     parameters with one dimension > 1 (biases) keep the diagonal v = EMA/sum of g^2 instead
 *     grafting accumulator a updated with g (src/optim/grafting.ts)
 *     if t == start or (t > start and t % preconditionFrequency == 0):
 *       P_i = (S_i / c2 + eps I)^{-1/r}    c2 = 1 - beta2^u (biasCorrection, beta2 < 1) else 1,
 *                                          u = statistics updates so far (= t when s = 1)
 *                                          r = rootExponent or 2k; eps = epsilon * lambda_max(S_i / c2)
 *                                          ('relative', default) or epsilon ('absolute')
 *       kept as its factor W_i = f(Lambda)^(1/2) V^T, P_i = W_i^T W_i (float64 eigendecomposition,
 *        f(lambda) = (max(lambda, 0) + eps)^(-1/r); or coupled Newton for (S_i / c2 + eps I)^{-1/(2r)});
 *        an all-zero S_i keeps the previous W_i; a failed or non-finite root keeps the previous
 *        W_i, or the identity, and is counted in `failedInverseRoots`
 *     m = beta1 m + (1 - beta1) g;   f = beta1 > 0 ? m / (1 - beta1^t) : g     (bias-corrected)
 *     if t < start:  d = graft(f)                       (first-order steps; 'none': d = f)
 *     else:          d_b = P_1 x_1 ... x_k P_k applied to the block f_b (1-D: f / (v + eps)^{1/r},
 *                    eps relative to max(v) or absolute), computed in factored form
 *                    X = W_1 x_1 ... x_k W_k f_b, d_b = W_1^T x_1 ... x_k W_k^T X, so that
 *                    <d_b, f_b> = ||X||^2 >= 0: a descent direction by construction (up to
 *                    float32 rounding of ~u sqrt(n) prod_i cond(W_i), far below 1 at a relative eps)
 *                    grafting: d_b = d_b * ||graft(f)_b|| / (||d_b|| + 1e-16)   per block
 *     if decoupledWeightDecay:  d = d + weightDecay * p
 *     if momentum:  buf = momentum * buf + d (buf_1 = d);  d = nesterov ? d + momentum * buf : buf
 *     p = p - lr_t * d
 *
 * Defaults and where they differ from Distributed Shampoo (DS, distributed_shampoo.py):
 *   learningRate 1e-2, beta1 0.9, beta2 1 (AdaGrad sum), rootExponent 0 (= 2k), momentum 0,
 *   nesterov false, weightDecay 0, decoupledWeightDecay true, biasCorrection true, mergeDims
 *   true, inverseRootMethod 'eigen'                                   -- all as DS.
 *   Issue 16's sweep (docs/shampoo.md "Defaults by time to target"; steps to tuned Adam's
 *   target, 3 seeds, mlp-mnist / autoencoder-mnist) kept learningRate (2e-2: 0.67x / 1.08x Adam's
 *   steps, 5e-3: 0.94x / 0.60x, against 0.76x / 0.54x), beta1 (0: 0.79x / 2.33x; 0.95: 0.79x /
 *   0.65x), beta2 (0.999 as DS's README and optax, 0.99, 0.95: the same steps as 1 within one
 *   evaluation interval), epsilon (1e-4, 1e-6: the same) and Adam grafting (RMSProp: 1.67x /
 *   miss, AdaGrad: miss / 2.19x); optax's momentum form (beta1 0, Nesterov momentum 0.9) missed
 *   the target on both.
 *   startPreconditioningStep 5 (optax distributed_shampoo's start_preconditioning_step; DS -1 =
 *     preconditionFrequency, which was ours before issue 16's round 4): the first root from
 *     five gradients' statistics under a relative epsilon is a usable preconditioner, and the
 *     grafted first-order steps before it are wasted second-order time: 0.76x -> 0.73x Adam's
 *     steps on mlp-mnist, 0.54x -> 0.42x on autoencoder-mnist (at f = 20, block 128). -1 still
 *     means preconditionFrequency.
 *   epsilon 1e-5 'relative' (DS: 1e-12 absolute; scalable_shampoo: matrix_epsilon 1e-6 times
 *     lambda_max, relative_matrix_epsilon=True). The rule: the statistics are float32, so every
 *     eigenvalue carries round-off of order u * lambda_max (u = 2^-24 ~ 6e-8; measured
 *     3e-8 to 4e-8 lambda_max in the null space of 200- and 256-dim float32 sums), and the root's
 *     weight (lambda + eps)^(-1/r) on a direction is only defined to (noise / eps) / r. eps has to
 *     sit far above that noise: eps = 1e-5 lambda_max (~170 u) bounds it by ~3e-3 / r per
 *     direction (measured <= 4e-4 relative on whole updates against a float64 reference,
 *     test/shampoo-fixtures.test.ts), while keeping a dynamic range of 1e5 in the statistic
 *     (root factors up to 316x for r = 2, 18x for r = 4). An absolute 1e-12 is below the float32
 *     resolution of any statistic with lambda_max > ~1e-5 and gives roots whose large part is
 *     float32 noise; 1e-6 relative (scalable_shampoo, whose roots are float32 too) leaves
 *     ~3e-3 errors; 1e-4 is accurate to ~3e-5 but damps more (Kronecker least squares, 200
 *     steps: 10500x vs 28600x loss reduction, Adam 1170x; docs/shampoo.md).
 *   preconditionFrequency 40 (DS 1; 20 before issue 16's round 4, 10 before issue 16): roots are
 *     computed in float64 on the CPU, ~100x slower than DS's GPU eigh, so they are amortised;
 *     with the early start the refreshes after it matter less (start 5: f 20 / 40 gave 0.73x /
 *     0.73x Adam's steps on mlp-mnist, 0.42x / 0.44x on the autoencoder; f 100 at block 64:
 *     0.79x / 0.58x), and f 40 halves the amortised refresh.
 *   maxPreconditionerDim 64 (DS 1024; 128 before issue 16's round 4, 256 before issue 16): the
 *     preconditioning products and Gram products cost O(b) per gradient entry and a refresh
 *     O(b^2) per entry, so 64-blocks halve the per-step work of 128-blocks; at start 5, f 40
 *     they took 0.73x (the same) Adam's steps on mlp-mnist and 0.50x instead of 0.44x on the
 *     autoencoder, for a step of ~1.23x Adam's CPU time instead of ~1.43x: the best estimated
 *     seconds to target on the harder problem (~0.90x / 0.63x tuned Adam's; docs/shampoo.md).
 *   skipPreconditioningDimSizeGt 0 (off; scalable_shampoo 4096): one-sided Shampoo for huge
 *     dimensions; at start 5 (skip > 256, block 1024) it is the cheapest step (~1.18x Adam's)
 *     and the fewest steps on autoencoder-mnist (0.40x), but 0.97x Adam's steps on mlp-mnist
 *     (the 784 input side is where Shampoo saves steps there), so it is not the default.
 *   rootStaleness 0 (synchronous): > 0 computes the roots in a src/async worker thread from a
 *     snapshot (Anil et al. 2020), used up to that many steps late (optimizers/shampoo/async-roots.ts).
 *   grafting 'adam' (DS none; 'adagrad' before issue 13): without grafting the step size has no
 *     first-order scale to borrow and a learning rate does not transfer from other optimizers;
 *     DS's own examples all graft, its README from Adam (0.999 / 1e-8). Adam rather than AdaGrad
 *     because AdaGrad's summed second moment freezes the step norm at the scale of the early
 *     gradients: on the Kronecker least-squares problem of issue 13 (docs/shampoo.md) Shampoo
 *     with AdaGrad grafting beat tuned Adam at 200 steps (3430x vs 1170x) but fell behind at 500
 *     (4130x vs 6680x); with Adam grafting 28600x and 44600x. graftingEpsilon/graftingBeta2
 *     default per method as DS's grafting configs (AdaGrad 1e-10; RMSProp 0.99/1e-8; Adam
 *     0.999/1e-8).
 *   Vector parameters (one dimension > 1) are preconditioned diagonally, with the current
 *     statistics at every step (DS gives vectors a full L); a matrix merged into one
 *     dimension keeps a full preconditioner (root 2), as in DS.
 *   statisticsComputeSteps 1 (DS has none; scalable_shampoo's statistics_compute_steps): > 1
 *     subsamples the gradients the statistics see, to cut the per-step Gram products; measured
 *     at start 5: 2 costs steps on the autoencoder (0.42x -> 0.44x at f 20, 0.44x -> 0.48x at
 *     f 40) for ~0.05x of an Adam step, 5 and 10 cost ~0.12x of Adam's steps there.
 *   There is no beta3 and no dampening; Adam grafting is always bias-corrected.
 *
 * Code (one idea per file; Distributed Shampoo's PreconditionerList and matrix_functions split):
 *   optimizers/shampoo.ts               options and the step, the same on every backend:
 *                                       statistics on schedule -> roots on schedule -> direction
 *                                       -> weight decay, momentum, descent
 *   optimizers/shampoo/rules.ts         the per-step rules written once (schedule, EMA
 *                                       coefficients, bias corrections, epsilon), as a StepPlan
 *   optimizers/shampoo/preconditioner.ts  the interface (update statistics / statistics snapshot
 *                                       / set root / direction) every backend implements
 *   optimizers/shampoo/roots.ts         inverse-root factors from a statistics snapshot, a pure
 *                                       function (eigensolver src/linalg eighUnsorted, the rules
 *                                       src/linalg inverseRootFromEigen; or coupled Newton)
 *   optimizers/shampoo/tfjs-backend.ts  the preconditioners as tfjs ops
 *   optimizers/shampoo/host-backend.ts  the same on host copies: WebAssembly kernels for 2-D
 *                                       parameters, a JavaScript loop for vectors
 *   optimizers/shampoo/async-roots.ts   the same in a src/async worker (rootStaleness > 0)
 *   optimizers/shampoo/layout.ts        blocks from src/linalg blockPlan
 *   src/optim/grafting.ts               grafting as a diagonal preconditioner (GraftingRule)
 * The backend is chosen once per optimizer, at its first step (when the tfjs backend is known):
 * 'host' on the wasm and cpu backends when the WebAssembly module loads, else 'tfjs'; the
 * internal constructor argument `{ backend: 'tfjs' }` forces the tfjs ops (tests compare both).
 *
 * Cost on the wasm and cpu backends: the per-step work of every 2-D (merged) parameter -- the
 * blocks' Gram products with the statistics EMA fused in (upper triangles only), the grafting
 * accumulator and first moment, P_L f_b P_R (or W_L^T (W_L f_b W_R^T) W_R) and per-block grafting -- runs in a float32
 * WebAssembly SIMD module (src/optim/shampoo-kernels.ts, src/optim/wasm/shampoo.c) on one host
 * copy of the gradient, at the SIMD peak of the machine (~20 GFLOP/s single-threaded), instead
 * of ~50 tfjs kernels per parameter. Those slots stay on the host between steps and are written
 * to their state variables by getWeights / setWeights (so saving and restoring is unchanged).
 * Vector parameters' whole update runs in one JavaScript loop on the same host slots.
 * Inverse roots: float64 eigendecomposition (src/linalg eighUnsorted), stored as the float32 factor
 * W = f(Lambda)^(1/2) V^T. With an unbounded condition number (issue 13: absolute epsilon 1e-12)
 * a float32 product P = W^T W rounds the eps-dominated part of the root (up to eps^(-1/r)) into
 * noise that swamps P f and can make P indefinite, so that the step goes uphill; the roots are
 * then applied as W^T (W f) (factored: four products per 2-D block). Where the relative epsilon
 * bounds cond(P) so that n u cond(P_L) cond(P_R) <= 1e-2 (productFormSafe; 64 u 17.8^2 = 1.2e-3
 * at the defaults) the host backend forms P = W^T W once per refresh (a host-only buffer, never
 * saved) and applies P_L f P_R (two products: issue 16), equal to the factored form to float32
 * rounding and still a descent direction (P stays positive definite); the tfjs backend always
 * uses the factors. The two backends do the same arithmetic up to float32 rounding; tested
 * against each other, products against factors (test/shampoo-products.test.ts) and, at the
 * defaults, against a float64 numpy reference (scripts/reference/shampoo_reference.py).
 *
 * State slots: 'L<b>_<i>' and 'W<b>_<i>' (block b's statistic and the factor of its current
 * inverse root along dimension i, P = W^T W; W is absent, i.e. the identity, until its first
 * successful root; before issue 13 the slot was 'P<b>_<i>' holding P, which a restored old
 * checkpoint leaves unused until the next root refresh), 'diag'
 * (vector statistics), 'graft' (grafting accumulator), 'expAvg' (beta1), 'momentumBuffer'. All are carried by getWeights/setWeights, so a restored optimizer
 * continues identically; `failedInverseRoots` is saved too.
 */
import * as tf from '@tensorflow/tfjs';
import {
  CurvatureOptimizer,
  BASE_OPTION_SPECS,
  type NamedTensorLike,
  type SlotState,
  type StepContext,
} from '../src/optim/base.js';
import { option, optionDocs, invalidOption, type OptionsInput } from '../src/optim/options.js';
import { addL2WeightDecay, descend, momentumDirection } from '../src/optim/transforms.js';
import {
  GRAFTING_TYPES,
  defaultGraftingBeta2,
  defaultGraftingEpsilon,
  type GraftingType,
} from '../src/optim/grafting.js';
import { shampooKernels } from '../src/optim/shampoo-kernels.js';
import { layoutOf, type Layout } from './shampoo/layout.js';
import { ShampooRules, type StepPlan } from './shampoo/rules.js';
import { computeRoots, type RootRules, type ShampooRootMethod } from './shampoo/roots.js';
import { AsyncRoots } from './shampoo/async-roots.js';
import type { ShampooBackend, ShampooInternals, ShampooPreconditioner } from './shampoo/preconditioner.js';
import { TfjsDiagonal, TfjsKronecker } from './shampoo/tfjs-backend.js';
import { HostDiagonal, HostKronecker } from './shampoo/host-backend.js';
import { HostSlotStore } from './shampoo/host-slots.js';

export type { ShampooRootMethod } from './shampoo/roots.js';
export type { ShampooInternals, ShampooProfile } from './shampoo/preconditioner.js';

export const SHAMPOO_OPTIONS = {
  ...BASE_OPTION_SPECS,
  learningRate: option.learningRate(1e-2, 'Step size: a number >= 0 or a schedule of the step'),
  beta1: option.decay(0.9, 'EMA of the gradient that is preconditioned (DS betas[0]); 0 = raw gradient'),
  beta2: option.number(1, 'Statistics decay: 1 = AdaGrad sum, < 1 = exponential average', {
    min: 0,
    max: 1,
    minExclusive: true,
  }),
  epsilon: option.number(
    1e-5,
    'Added to the statistics before the inverse root: epsilon * lambda_max (relative, default) or epsilon (absolute)',
    { min: 0 },
  ),
  epsilonMode: option.choice<'absolute' | 'relative'>(
    'relative',
    ['absolute', 'relative'],
    "'relative' to the statistic's largest eigenvalue (default), or 'absolute'",
  ),
  rootExponent: option.number(0, 'Inverse root r in S^{-1/r}; 0 = 2 * order of the (merged) block', {
    min: 0,
    integer: true,
  }),
  inverseRootMethod: option.choice<ShampooRootMethod>(
    'eigen',
    ['eigen', 'coupled-newton'],
    'Float64 inverse roots by eigendecomposition or coupled Newton',
  ),
  preconditionFrequency: option.number(40, 'Recompute inverse roots every this many steps', { min: 1, integer: true }),
  rootStaleness: option.number(
    0,
    'Roots computed in a worker thread (src/async) from a snapshot, used up to this many steps late; 0 = computed in the step',
    { min: 0, integer: true },
  ),
  statisticsComputeSteps: option.number(
    1,
    'Update the statistics every this many steps (scalable_shampoo statistics_compute_steps); 1 = every step',
    {
      min: 1,
      integer: true,
    },
  ),
  startPreconditioningStep: option.number(
    5,
    'First Shampoo step (grafted first-order steps before it; roots first computed then); -1 = preconditionFrequency',
    {
      min: -1,
      integer: true,
    },
  ),
  maxPreconditionerDim: option.number(64, 'Largest preconditioner side; larger dimensions are blocked', {
    min: 1,
    integer: true,
  }),
  skipPreconditioningDimSizeGt: option.number(
    0,
    'Dimensions (after merging) larger than this get no preconditioner, the others still do (one-sided Shampoo; scalable_shampoo skip_preconditioning_dim_size_gt); 0 = precondition all',
    { min: 0, integer: true },
  ),
  mergeDims: option.boolean(true, 'Merge adjacent small dimensions while their product <= maxPreconditionerDim'),
  grafting: option.choice<GraftingType>('adam', GRAFTING_TYPES, 'Per-block step norm from this first-order method'),
  graftingEpsilon: option.optionalNumber('Grafting epsilon (default 1e-10 adagrad, else 1e-8)', { min: 0 }),
  graftingBeta2: option.optionalNumber('Grafting second-moment decay (default 0.99 rmsprop, 0.999 adam)', {
    min: 0,
    max: 1,
    maxExclusive: true,
  }),
  momentum: option.decay(0, 'Momentum on the preconditioned direction (DS momentum)'),
  nesterov: option.boolean(false, 'Nesterov momentum (needs momentum > 0)'),
  weightDecay: option.number(0, 'Weight decay coefficient', { min: 0 }),
  decoupledWeightDecay: option.boolean(
    true,
    'Add weightDecay * p to the direction (AdamW) instead of to the gradient (L2)',
  ),
  biasCorrection: option.boolean(true, 'Bias-correct the beta1 EMA and the beta2 < 1 statistics'),
};

export type ShampooOptions = OptionsInput<typeof SHAMPOO_OPTIONS>;

export class Shampoo extends CurvatureOptimizer<typeof SHAMPOO_OPTIONS> {
  static get className(): string {
    return 'CurvatureShampoo';
  }

  private readonly rules: ShampooRules;
  private readonly internals: ShampooInternals;
  /** Resolved at the first step, once the tfjs backend is known (resolveBackend). */
  private backend: ShampooBackend | undefined;
  /** One preconditioner per parameter shape (their state lives in the slots). */
  private readonly preconditioners = new Map<string, { L: Layout; pc: ShampooPreconditioner | null }>();
  /** Host copies of the slots the host backend updates in place. */
  private readonly hostSlots: HostSlotStore;
  /** Root refreshes in a worker (rootStaleness > 0), else null (computed in the step). */
  private readonly asyncRoots: AsyncRoots | null;

  /** `internals`: internal and test hooks (ShampooInternals), not part of the saved config. */
  constructor(options: ShampooOptions = {}, internals: ShampooInternals = {}) {
    super('Shampoo', SHAMPOO_OPTIONS, options);
    const o = this.options;
    if (o.nesterov && o.momentum <= 0) {
      throw invalidOption('nesterov', true, `Nesterov momentum requires momentum > 0; got momentum ${o.momentum}`);
    }
    if (o.startPreconditioningStep === 0) {
      throw invalidOption('startPreconditioningStep', 0, 'must be >= 1, or -1 for preconditionFrequency');
    }
    if (internals.backend !== undefined && internals.backend !== 'auto' && internals.backend !== 'tfjs') {
      throw new Error(`Shampoo: internals.backend must be 'auto' or 'tfjs', got '${String(internals.backend)}'`);
    }
    this.internals = internals;
    this.rules = new ShampooRules(o, {
      type: o.grafting,
      beta2: o.graftingBeta2 ?? defaultGraftingBeta2(o.grafting),
      epsilon: o.graftingEpsilon ?? defaultGraftingEpsilon(o.grafting),
    });
    this.numericState.failedInverseRoots = 0;
    this.numericState.inverseRoots = 0;
    this.hostSlots = new HostSlotStore(this);
    this.asyncRoots =
      o.rootStaleness > 0 && o.inverseRootMethod === 'eigen'
        ? new AsyncRoots(
            {
              maxStaleness: o.rootStaleness,
              deterministic: internals.deterministicRoots ?? false,
              service: internals.matrixService,
            },
            () => (this.numericState.failedInverseRoots = this.failedInverseRoots + 1),
          )
        : null;
    if (o.rootStaleness > 0 && o.inverseRootMethod !== 'eigen') {
      throw invalidOption('rootStaleness', o.rootStaleness, "asynchronous roots need inverseRootMethod 'eigen'");
    }
  }

  /** Inverse roots that failed or were non-finite (the previous root was kept). Saved with the state. */
  get failedInverseRoots(): number {
    return this.numericState.failedInverseRoots ?? 0;
  }

  /** Inverse roots computed so far (successful or not). */
  get inverseRootCount(): number {
    return this.numericState.inverseRoots ?? 0;
  }

  /** The step at which Shampoo directions start (before it: grafted first-order steps). */
  get startStep(): number {
    return this.rules.startStep;
  }

  override async getWeights(): Promise<NamedTensorLike[]> {
    this.hostSlots.flush();
    return super.getWeights();
  }

  override async setWeights(weights: NamedTensorLike[]): Promise<void> {
    this.hostSlots.flush();
    await super.setWeights(weights);
    this.hostSlots.reset(); // the state was replaced
    this.asyncRoots?.reset(); // work in flight belongs to the old state
  }

  override dispose(): void {
    this.hostSlots.reset();
    this.asyncRoots?.reset();
    super.dispose();
  }

  /**
   * 'host' (the WebAssembly kernels and JavaScript loops on host copies) when the tfjs backend
   * keeps tensors in host memory (wasm, cpu: reading a gradient is one copy) and the module
   * loads; 'tfjs' (ops on the device) otherwise, or when forced by `internals.backend`.
   */
  private resolveBackend(): ShampooBackend {
    if (this.internals.backend === 'tfjs') return 'tfjs';
    const b = tf.getBackend();
    return (b === 'wasm' || b === 'cpu') && shampooKernels() !== null ? 'host' : 'tfjs';
  }

  /**
   * Whether a 2-D parameter's roots may be applied as float32 P = W^T W (two products per block)
   * instead of the factors (four). P's eigenvalues are (lambda + eps)^(-1/r) for lambda in
   * [0, lambda_max], so with a relative epsilon cond(P) = ((1 + eps) / eps)^(1/r) on each side
   * (17.8 at eps 1e-5, r = 4). Forming P in float32 perturbs it by ~n u ||P|| (u = 2^-24) and
   * the two products d = P_L f P_R by ~n u cond(P_L) cond(P_R) relative (n: the largest
   * preconditioned block side; one-sided: one factor, r = 2): while that is <= 1e-2,
   * P stays positive definite and <d, f> = tr(f^T P_L f P_R) > 0 (a descent direction) with a
   * wide margin, and the result equals the factored one to float32 rounding. At the defaults
   * (block 64, two sides, r = 4), n = 64: 64 u 17.8^2 = 1.2e-3. An absolute epsilon gives no
   * bound: the factors are used.
   */
  private productFormSafe(L: Layout): boolean {
    const o = this.options;
    if (o.epsilonMode !== 'relative' || !(o.epsilon > 0)) return false;
    const sides = L.preconditioned.filter(Boolean).length;
    const cond = ((1 + o.epsilon) / o.epsilon) ** (1 / this.rules.rootExponent(sides));
    // The products sum over the preconditioned sides only.
    const n = Math.max(...L.blocks.flatMap((sizes) => sizes.filter((_, i) => L.preconditioned[i])));
    return n * 2 ** -24 * cond ** sides <= 1e-2;
  }

  /** The layout and preconditioner of a parameter shape, made at its first step. */
  private preconditionerFor(shape: readonly number[]): { L: Layout; pc: ShampooPreconditioner | null } {
    const key = shape.join('x');
    let entry = this.preconditioners.get(key);
    if (entry === undefined) {
      const o = this.options;
      const L = layoutOf(shape, o.maxPreconditionerDim, o.mergeDims, o.skipPreconditioningDimSizeGt);
      this.backend ??= this.resolveBackend();
      const K = this.backend === 'host' ? shampooKernels() : null;
      let pc: ShampooPreconditioner | null = null;
      if (L.empty) pc = null;
      else if (L.diagonal)
        pc = K !== null ? new HostDiagonal(this.rules, this.hostSlots) : new TfjsDiagonal(this.rules);
      // The kernels take 2-D blocks; higher-order (merged) parameters use tfjs ops on every backend.
      else if (K !== null && L.merged.length === 2)
        pc = new HostKronecker(L, K, this.hostSlots, this.internals.rootProducts !== false && this.productFormSafe(L));
      else pc = new TfjsKronecker(L);
      this.preconditioners.set(key, (entry = { L, pc }));
    }
    return entry;
  }

  protected override updateVariable(
    param: tf.Variable,
    grad: tf.Tensor,
    state: SlotState,
    ctx: StepContext,
  ): tf.Tensor {
    const o = this.options;
    const { L, pc } = this.preconditionerFor(param.shape);
    if (pc === null) return tf.clone(param);
    const plan = this.rules.plan(state.step + 1);
    const g = o.decoupledWeightDecay ? grad : addL2WeightDecay(grad, param, o.weightDecay);
    const prof = this.internals.profile;
    let t0 = prof === undefined ? 0 : performance.now();
    const lap = (part: 'statistics' | 'roots' | 'direction') => {
      if (prof === undefined) return;
      const t1 = performance.now();
      prof[part] += t1 - t0;
      t0 = t1;
    };
    if (pc.diagonal || plan.updateStatistics) pc.updateStatistics(state, g, plan);
    lap('statistics');
    if (this.asyncRoots !== null && !pc.diagonal) {
      if (plan.precondition) {
        const c = this.asyncRoots.step(state, pc, plan.t, plan.refreshRoots, () => this.rootRules(L, plan));
        this.numericState.inverseRoots = this.inverseRootCount + c.roots;
        this.numericState.failedInverseRoots = this.failedInverseRoots + c.failed;
      }
    } else if (plan.refreshRoots && !pc.diagonal) this.refreshRoots(pc, state, L, plan);
    lap('roots');
    const d = pc.direction(state, g, plan, param.shape);
    lap('direction');
    if (prof !== undefined) prof.updates++;
    return descend(param, this.finishDirection(d, param, state), ctx.learningRate);
  }

  /** Decoupled weight decay, then momentum / Nesterov. */
  private finishDirection(direction: tf.Tensor, param: tf.Tensor, state: SlotState): tf.Tensor {
    const o = this.options;
    let d = direction;
    if (o.decoupledWeightDecay) d = addL2WeightDecay(d, param, o.weightDecay);
    if (o.momentum > 0) {
      const { buffer, direction: next } = momentumDirection(state.get('momentumBuffer'), d, {
        momentum: o.momentum,
        dampening: 0,
        nesterov: o.nesterov,
      });
      state.set('momentumBuffer', buffer);
      d = next;
    }
    return d;
  }

  /**
   * Every block's inverse-root factors from a snapshot of the statistics (computeRoots, a pure
   * function that could run elsewhere), installed at once; a failed root keeps the previous
   * factor (or the identity) and is counted; an all-zero statistic keeps it and is not counted.
   */
  private refreshRoots(pc: ShampooPreconditioner, state: SlotState, L: Layout, plan: StepPlan): void {
    const results = computeRoots(pc.statistics(state), this.rootRules(L, plan));
    for (const r of results) {
      if (r.kind === 'zero') continue;
      this.numericState.inverseRoots = this.inverseRootCount + 1;
      if (r.kind === 'ok') pc.setRoot(state, r.block, r.dim, r.factor, r.n);
      else this.numericState.failedInverseRoots = this.failedInverseRoots + 1;
    }
  }

  private rootRules(L: Layout, plan: StepPlan): RootRules {
    return {
      method: this.options.inverseRootMethod,
      // r = 2k over the preconditioned dimensions (one-sided: 2, the full-matrix AdaGrad root of that side).
      exponent: this.rules.rootExponent(L.preconditioned.filter(Boolean).length),
      scale: plan.statScale,
      ...this.rules.epsilon,
    };
  }
}

tf.serialization.registerClass(Shampoo);

export const shampooEntry = {
  name: 'shampoo',
  className: Shampoo.className,
  description: 'Shampoo with Distributed Shampoo features: blocking, merged dims, grafting, float64 inverse roots',
  options: optionDocs(SHAMPOO_OPTIONS),
  create: (options: Record<string, unknown>) => new Shampoo(options as ShampooOptions),
};
