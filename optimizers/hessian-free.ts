/**
 * HessianFree: truncated-Newton optimisation with conjugate gradient on curvature-vector
 * products, after Martens (2010), "Deep learning via Hessian-free optimization", and the
 * google/init2winit (optimizer_lib/hessian_free.py) and drasmuss/hessianfree implementations.
 *
 *   per step (closure f over variables theta, gradient g on the step's batch):
 *     B = Gauss-Newton J^T H_L J ('ggn': outputs and loss known separately; PSD)
 *       or the Hessian ('hessian': any closure)
 *       evaluated on the first ceil(curvatureFraction * batch) examples when a batch is known
 *     ('next-batch' ratio) rho' of the previous step s on this batch: (f(theta) - f(theta - s)) / q(s);
 *       rho' > 3/4 -> lambda * 2/3 (only lowers lambda; see Mini-batches)
 *     x0 = warmStartDecay * (previous CG solution)                         (0.95)
 *     CG on (B + lambda I) p = -g from x0 (src/curvature/cg.ts): Martens' relative-progress
 *       stop (k = max(10, ceil(0.1 i)), tolerance 5e-4), at most maxIterations; optional
 *       diagonal preconditioner
 *     negative curvature kappa = d^T (B + lambda I) d <= 0 along a CG direction d
 *       ('raise-damping'): lambda <- dampingIncrease * max(lambda, lambda - kappa / ||d||^2),
 *       re-solve (at most maxDampingRaises times); ('steihaug'): stop, keep the last iterate
 *     CG backtracking: among the iterates saved at ceil(5 * 1.3^j) and the last one, walk back
 *       from the last while the previous one has a lower f (Martens 4.6)
 *     rho = (f(theta + p) - f(theta)) / q(p), q(p) = g^T p + 1/2 p^T (B + lambda I) p
 *       (q of the chosen iterate is CG's phi: no extra product)
 *     lambda: rho < 1/4 -> lambda * 3/2; rho > 3/4 -> lambda * 2/3 ('batch' ratio; Martens 4.1);
 *       'next-batch' ratio: only rho < 1/4 -> lambda * 3/2 here
 *     Armijo backtracking on t from learningRate: f(theta + t p) <= f + c1 t g^T p,
 *       c1 = 1e-2, t *= 0.8, at most 60 trials (Martens 4.6); none accepted -> no update
 *
 * Defaults: learningRate 1, curvature 'auto' ('ggn' when curvature functions are given for
 * the step or captured from the tape, else 'hessian'), damping 1 (init2winit; Martens used 45
 * for his autoencoders), maxIterations 250 (Martens), cgTolerance 5e-4, warmStartDecay 0.95,
 * dampingIncrease 1.5, dampingDecrease 2/3, c1 1e-2, lineSearchShrink 0.8, maxLineSearch 60,
 * preconditioner 'none' (exponent 0.75), curvatureFraction 1, minDamping 1e-8, maxDamping 1e8,
 * negativeCurvature 'raise-damping', maxDampingRaises 10, dampingRatio 'auto' ('next-batch'
 * when the captured batch changes from step to step, i.e. mini-batches in model.fit).
 *
 * Gauss-Newton products need the network outputs and the loss as a function of them, for the
 * same examples as the loss closure:
 * - `setCurvatureFunctions` (any model), or `setCurvatureBatch(batch)` after
 *   `bindProblem(problem)` (harness problems; the registry's `create(options, { problem })` binds);
 * - otherwise (model.fit, or a closure of Dense layers) they are captured from the gradient
 *   pass's tape (src/layers/gauss-newton-capture.ts, on K-FAC's capture of
 *   src/layers/capture.ts): the output layer is the last matMul with a kernel variable, the
 *   targets a leaf tensor the loss reads, and the compiled loss is identified by value among
 *   categoricalCrossentropy, sparseCategoricalCrossentropy, binaryCrossentropy and
 *   meanSquaredError (tfjs passes the optimizer only the closure, never the model or
 *   model.loss). Softmax + (sparse) categorical cross-entropy and sigmoid + binary
 *   cross-entropy take the GGN at the logits with the matching loss (Schraudolph 2002;
 *   Martens & Sutskever 2012): softmax / sigmoid cross-entropy of the logits is convex, so G is
 *   PSD and exact for the convex part of the composition. Mean squared error takes it at the
 *   model output. Anything else (a loss function of your own, regularizers, sample weights,
 *   cross-entropy after another activation) falls back to Hessian products with one
 *   console warning (curvature 'ggn' throws instead, naming the reason).
 *
 * Negative curvature (Hessian mode; the GGN is PSD): Martens' paper uses only the GGN, and a
 * Steihaug stop (Steihaug 1983) keeps a truncated solution of an indefinite model, which on
 * mini-batch Hessians was the issue-13 failure (lambda never raised, steps that overfit the
 * batch). 'raise-damping' answers as Levenberg-Marquardt / More & Sorensen (1983; Nocedal &
 * Wright 4.3) do: the detected direction d has Rayleigh quotient
 * mu = kappa / ||d||^2 - lambda <= -lambda of B, so B + lambda' I with
 * lambda' = 1.5 (lambda - kappa / ||d||^2) = 1.5 |mu| is positive along d with margin
 * 0.5 |mu| ||d||^2; CG restarts on it and lambda' is kept for the next step.
 *
 * Mini-batches. Martens (2010, section 4.3) computes the gradient on the whole training set
 * (or very large batches) and only the curvature products on a mini-batch that changes every
 * step; rho then compares actual and predicted changes of the objective itself. Martens &
 * Sutskever (2012) recommend batches large enough that gradient and curvature describe the
 * objective rather than the batch. Kiros (2013, stochastic HF), as we read it, uses small
 * gradient batches with curvature on a part of each, short CG runs and warm starts: the
 * truncation of CG bounds how far one step can fit its batch.
 * init2winit measures rho on the training batch itself, with no bounds on lambda, and relies
 * on large batches. Why a floor on lambda (`minDamping`, as scripts/hf-vs-adam.ts sets)
 * works: the GGN of N examples with K outputs has rank <= N K (N (K - 1) for softmax), below
 * the parameter count for small batches; lambda alone limits the step along the directions
 * the batch hardly constrains, and rho measured on the batch the step was fitted to stays high
 * while the step interpolates the batch, so lambda shrinks and the full loss spikes. The
 * 'next-batch' ratio removes the need for a hand-set floor: lambda is lowered only on
 * evidence from data the step was not fitted to (the previous step re-measured on the next
 * batch: one loss evaluation per step), and raised when the step's own batch disagrees with the
 * model (rho < 1/4). Near the noise floor the held-out rho is negative whatever lambda is (it
 * tends to g_next^T g / ||g||^2), so it does not raise lambda: lambda settles where steps stop
 * generalising (0.13-0.30 on the MLP) instead of annealing to a standstill.
 * Measured (6-12-3 tanh/softmax, 96 examples, batch 32, model.fit, `new HessianFree({})`,
 * 20 epochs): epoch losses fall monotonically for seeds 0, 1, 2 (test/hessian-free-fit.test.ts,
 * 10 epochs); the previous defaults (Hessian products, batch ratio) on the same data: seed 0
 * full loss 0.30 -> 1.29 -> 1.48 -> 2.11 in epochs 4-6. At batch 16 (rank 32 of 123 parameters) it is still
 * not monotone (seed 0: 0.29 -> 1.05), though far better than the batch ratio; use larger
 * batches, `curvatureFraction` with a bound problem, or `minDamping` there.
 *
 * Other differences from the anchors:
 * - init2winit updates lambda with 3/2 below rho = 1/4 and 2/3 otherwise (no neutral band),
 *   starts CG from the previous solution without decay and has no line search or
 *   preconditioner; this follows Martens (neutral band, 0.95 decay, Armijo).
 * - Martens' preconditioner (diag(sum_i grad_i^2) + lambda)^0.75 over per-example gradients
 *   ('martens'): exact for harness problems whose model is a stack of Dense layers (one extra
 *   forward/backward pass per step, counted as a gradient evaluation; `perExampleSquaredGradients`),
 *   with the statistic averaged (1/N sum_i) so that it is on the scale of the mean-loss GGN and
 *   lambda. Elsewhere (plain closures, `setCurvatureFunctions`, model.fit) it falls back to
 *   'squared-gradient': an EMA (beta 0.95) of squared batch gradients times the batch size, in
 *   the slot '@hessian-free/squaredGradient' (getWeights / setWeights carry it).
 * - When CG stops at negative curvature before its first step, the direction is the
 *   (preconditioned) negative gradient and the line search scales it.
 *
 * Drop-in: `opt.minimize(() => loss)` and `model.fit`; the first closure call takes the
 * gradient (its metrics are what tfjs-layers reports), later calls (products, backtracking,
 * line search) release what they keep. Diagnostics: `lastStep`, cumulative `counters`.
 */
import * as tf from '@tensorflow/tfjs';
import { ggnvpVars, hvpVars } from '../src/autodiff/index.js';
import {
  BASE_OPTION_SPECS,
  CurvatureOptimizer,
  type EvaluationCounters,
  type NamedTensorLike,
  type SkipEvent,
} from '../src/optim/base.js';
import { option, optionDocs, type OptionsInput } from '../src/optim/options.js';
import { conjugateGradient, disposeCG, type CGStop } from '../src/curvature/cg.js';
import { lossValue, releaseKept, scalarClosure, valueAndGradients } from '../src/curvature/closure.js';
import {
  captureGaussNewton,
  type GaussNewtonCapture,
  type TapeGaussNewton,
} from '../src/layers/gauss-newton-capture.js';
import { adaptDamping, reductionRatio } from '../src/curvature/damping.js';
import { armijoBacktracking } from '../src/curvature/line-search.js';
import { dotNumber, flatten, ParameterPoint, unflatten } from '../src/curvature/vector.js';
import type { Batch, Problem } from '../src/harness/problem.js';

export type HessianFreeCurvature = 'auto' | 'ggn' | 'hessian';
export type HessianFreePreconditioner = 'none' | 'squared-gradient' | 'martens';
export type HessianFreeNegativeCurvature = 'raise-damping' | 'steihaug';
export type HessianFreeDampingRatio = 'auto' | 'batch' | 'next-batch';

export const HESSIAN_FREE_OPTIONS = {
  ...BASE_OPTION_SPECS,
  learningRate: option.learningRate(1, 'First trial step of the Armijo line search on the CG direction'),
  curvature: option.choice<HessianFreeCurvature>(
    'auto',
    ['auto', 'ggn', 'hessian'],
    "Curvature: 'ggn' (Gauss-Newton, needs outputs), 'hessian', or 'auto' (ggn when available)",
  ),
  damping: option.number(1, 'Initial Levenberg-Marquardt damping lambda', { min: 0 }),
  dampingIncrease: option.number(1.5, 'Factor on lambda when rho < 1/4', { min: 1 }),
  dampingDecrease: option.number(2 / 3, 'Factor on lambda when rho > 3/4', { min: 0, max: 1 }),
  minDamping: option.number(1e-8, 'Lower bound of lambda', { min: 0 }),
  maxDamping: option.number(1e8, 'Upper bound of lambda', { min: 0 }),
  maxIterations: option.number(250, 'Maximum CG iterations per step', { min: 1, integer: true }),
  cgTolerance: option.number(5e-4, "Martens' relative-progress tolerance of CG (0 = run to maxIterations)", { min: 0 }),
  warmStartDecay: option.number(0.95, 'CG starts from this times the previous solution (0 = cold start)', {
    min: 0,
    max: 1,
  }),
  c1: option.number(1e-2, 'Armijo sufficient-decrease constant', {
    min: 0,
    max: 1,
    minExclusive: true,
    maxExclusive: true,
  }),
  lineSearchShrink: option.number(0.8, 'Factor on the step after a rejected Armijo trial', {
    min: 0,
    max: 1,
    minExclusive: true,
    maxExclusive: true,
  }),
  maxLineSearch: option.number(60, 'Maximum Armijo trials', { min: 1, integer: true }),
  preconditioner: option.choice<HessianFreePreconditioner>(
    'none',
    ['none', 'squared-gradient', 'martens'],
    "CG preconditioner: 'none', 'martens' ((diag(sum of per-example squared gradients) + lambda)^0.75; " +
      "falls back to 'squared-gradient' without a Dense-model problem) or 'squared-gradient' (EMA of batch gradients)",
  ),
  preconditionerExponent: option.number(0.75, 'Exponent alpha of the diagonal preconditioner (Martens 0.75)', {
    min: 0,
    max: 1,
  }),
  negativeCurvature: option.choice<HessianFreeNegativeCurvature>(
    'raise-damping',
    ['raise-damping', 'steihaug'],
    "At negative curvature p^T (B + lambda I) p <= 0 in CG: 'raise-damping' (lambda past the detected curvature, " +
      "re-solve) or 'steihaug' (stop, keep the last iterate)",
  ),
  dampingRatio: option.choice<HessianFreeDampingRatio>(
    'auto',
    ['auto', 'batch', 'next-batch'],
    "Batch on which rho adapts lambda: 'batch' (the step's own), 'next-batch' (the previous step's reduction " +
      "re-measured on the next step's batch; lowers lambda only on that evidence), 'auto' ('next-batch' in model.fit)",
  ),
  maxDampingRaises: option.number(10, "Re-solves per step under negativeCurvature 'raise-damping'", {
    min: 0,
    integer: true,
  }),
  curvatureFraction: option.number(1, 'Fraction of the batch used for curvature products (needs a batch)', {
    min: 0,
    max: 1,
    minExclusive: true,
  }),
};

export type HessianFreeOptions = OptionsInput<typeof HESSIAN_FREE_OPTIONS>;

/** Outputs and output-loss of the current step's examples, for Gauss-Newton products. */
export interface CurvatureFunctions {
  outputs: () => tf.Tensor;
  lossFromOutputs: (outputs: tf.Tensor) => tf.Scalar;
}

/** What one step did (read `opt.lastStep` after `minimize`). */
export interface HessianFreeStepInfo {
  accepted: boolean;
  curvature: 'ggn' | 'hessian';
  /** Where the Gauss-Newton functions came from ('functions': given or a bound problem; 'tape': captured). */
  curvatureSource: 'functions' | 'tape' | 'none';
  loss: number;
  newLoss: number;
  /** Damping used in this step's CG, and after the update. */
  dampingUsed: number;
  damping: number;
  rho: number;
  /** Which rho adapted lambda ('next-batch': heldOutRho before CG, rho only raises it). */
  dampingRatio: 'batch' | 'next-batch';
  /** The previous step's reduction ratio measured on this step's batch (NaN when not measured). */
  heldOutRho: number;
  /** Line-search step t (0 when no trial passed). */
  stepSize: number;
  cgIterations: number;
  cgStop: CGStop | 'skipped';
  /** Times lambda was raised past negative curvature and CG re-solved in this step. */
  dampingRaises: number;
  /** phi at each CG iterate (decreasing: the error decreases in the energy norm). */
  cgObjective: number[];
  /** CG iteration of the iterate chosen by backtracking. */
  backtrackedIteration: number;
  lossEvals: number;
  gradEvals: number;
  hvpEvals: number;
}

interface ActivationLike {
  apply(x: tf.Tensor): tf.Tensor;
}

/**
 * Martens' preconditioner statistic (1/N) sum_i grad_i^2 over the per-example gradients of a
 * batch (mean loss: the empirical-Fisher diagonal, on the scale of the GGN and lambda), flat
 * in the order of `vars`. Exact for a problem whose `model` is a stack of Dense layers whose
 * kernel and bias are `vars` (the harness's network problems): one forward and one backward
 * pass with a zero perturbation e_l added to each layer's pre-activation z_l gives the
 * per-example d loss_i / d z_l = delta_l (rows of N * grad e_l), and then
 *   kernel_l: (a_l^2)^T (delta_l^2) / N,   bias_l: sum_rows(delta_l^2) / N
 * (a_l: the layer's inputs). Undefined when the model does not have that form.
 */
export function perExampleSquaredGradients(
  problem: Problem,
  batch: Batch,
  vars: tf.Variable[],
): tf.Tensor1D | undefined {
  const model = problem.model;
  if (model === undefined || problem.lossFromOutputs === undefined) return undefined;
  const layers = model.layers;
  if (layers.length === 0 || vars.length !== 2 * layers.length) return undefined;
  const kernels: tf.Tensor[] = [];
  const biases: tf.Tensor[] = [];
  for (let l = 0; l < layers.length; l++) {
    const layer = layers[l]!;
    const w = layer.trainableWeights;
    if (layer.getClassName() !== 'Dense' || w.length !== 2) return undefined;
    const kernel = w[0]!.read();
    const bias = w[1]!.read();
    if (vars[2 * l] !== kernel || vars[2 * l + 1] !== bias || kernel.rank !== 2) return undefined;
    kernels.push(kernel);
    biases.push(bias);
  }
  const lossFromOutputs = problem.lossFromOutputs.bind(problem);
  const n = batch.size;
  return tf.tidy(() => {
    const x = batch.x.reshape([n, -1]);
    const activation = (l: number, z: tf.Tensor): tf.Tensor => {
      const act = (layers[l] as unknown as { activation?: ActivationLike }).activation;
      return act !== undefined ? act.apply(z) : z;
    };
    // The layers' inputs a_l (tf.grads disposes what its function creates, so a separate pass).
    const inputs: tf.Tensor[] = [x];
    for (let l = 0; l + 1 < kernels.length; l++) {
      inputs.push(activation(l, tf.add(tf.matMul(inputs[l] as tf.Tensor2D, kernels[l] as tf.Tensor2D), biases[l]!)));
    }
    const perturb = kernels.map((k) => tf.zeros([n, k.shape[1]!]));
    const sumLoss = (...es: tf.Tensor[]): tf.Scalar => {
      let h: tf.Tensor = x;
      for (let l = 0; l < kernels.length; l++) {
        h = activation(l, tf.add(tf.add(tf.matMul(h as tf.Tensor2D, kernels[l] as tf.Tensor2D), biases[l]!), es[l]!));
      }
      return tf.mul(lossFromOutputs(h, batch), n) as tf.Scalar;
    };
    const deltas = tf.grads(sumLoss)(perturb);
    const parts: tf.Tensor[] = [];
    for (let l = 0; l < kernels.length; l++) {
      const d2 = tf.square(deltas[l]!);
      parts.push(
        tf.div(tf.matMul(tf.square(inputs[l]!) as tf.Tensor2D, d2 as tf.Tensor2D, true, false), n).reshape([-1]),
      );
      parts.push(tf.div(tf.sum(d2, 0), n));
    }
    return tf.concat(parts) as tf.Tensor1D;
  });
}

const WARM_START = '@hessian-free';
const SQUARED_GRADIENT = 'squaredGradient';
const PREVIOUS_STEP = 'previousStep';
/** Fingerprint of the previous step's batch ('auto' dampingRatio): [size, sums]; size 0 when none. */
const FINGERPRINT = 'batchFingerprint';

export class HessianFree extends CurvatureOptimizer<typeof HESSIAN_FREE_OPTIONS> {
  static get className(): string {
    return 'CurvatureHessianFree';
  }

  lastStep: HessianFreeStepInfo | undefined;
  readonly counters: EvaluationCounters = { lossEvals: 0, gradEvals: 0, hvpEvals: 0 };
  private problem: Problem | undefined;
  private pending: CurvatureFunctions | undefined;
  private pendingBatch: Batch | undefined;
  private warnedCapture = false;
  /** The previous tape-captured batch's fingerprint ('auto' damping ratio: same data or not). */

  constructor(options: HessianFreeOptions = {}) {
    super('HessianFree', HESSIAN_FREE_OPTIONS, options);
    this.numericState.damping = this.options.damping;
  }

  get damping(): number {
    return this.numericState.damping!;
  }

  /** Use a harness problem's outputs / lossFromOutputs for Gauss-Newton products. */
  bindProblem(problem: Problem): this {
    this.problem = problem;
    return this;
  }

  /**
   * The batch the next `minimize` closure evaluates (harness problems, after bindProblem).
   * Valid for one step.
   */
  setCurvatureBatch(batch: Batch | undefined): void {
    this.pendingBatch = batch;
  }

  /** Outputs and output-loss of the next step's examples (valid for one step). */
  setCurvatureFunctions(fns: CurvatureFunctions | undefined): void {
    this.pending = fns;
  }

  override applyGradients(_variableGradients: tf.NamedTensorMap | NamedTensorLike[]): void {
    throw new Error(
      'HessianFree needs the loss closure (curvature products, CG backtracking, line search): ' +
        'call minimize(() => loss) or model.fit, not applyGradients.',
    );
  }

  protected override onNonFinite(_event: SkipEvent): void {
    this.numericState.damping = Math.min(this.options.maxDamping, Math.max(this.damping, this.options.minDamping) * 10);
    tf.tidy(() => {
      const state = this.stateFor(WARM_START);
      state.set('p0', tf.zeros([0]));
      // A skipped step breaks the chain of the 'next-batch' ratio.
      if (state.has(PREVIOUS_STEP)) state.set(PREVIOUS_STEP, tf.zeros([0]));
    });
  }

  /** The curvature functions of this step, restricted to the curvature fraction. */
  private curvatureFunctions(): { fns: CurvatureFunctions | undefined; release: () => void } {
    const frac = this.options.curvatureFraction;
    const p = this.problem;
    const batch = this.pendingBatch;
    if (this.pending !== undefined) return { fns: this.pending, release: () => {} };
    if (p?.outputs === undefined || p.lossFromOutputs === undefined) return { fns: undefined, release: () => {} };
    if (batch === undefined) return { fns: undefined, release: () => {} };
    let sub = batch;
    let owned: tf.Tensor[] = [];
    if (frac < 1) {
      const m = Math.max(1, Math.ceil(frac * batch.size));
      const x = batch.x.slice(0, m);
      const y = batch.y.slice(0, m);
      owned = [x, y];
      sub = { x, y, size: m };
    }
    const outputs = p.outputs.bind(p);
    const lossFromOutputs = p.lossFromOutputs.bind(p);
    return {
      fns: { outputs: () => outputs(sub), lossFromOutputs: (z) => lossFromOutputs(z, sub) },
      release: () => tf.dispose(owned),
    };
  }

  override minimize(f: () => tf.Scalar, returnCost = false, varList?: tf.Variable[]): tf.Scalar | null {
    const o = this.options;
    const loss = scalarClosure('HessianFree', f);
    const { fns, release } = this.curvatureFunctions();
    const gradientBatch = this.pendingBatch;
    const batchSize = gradientBatch?.size ?? 1;
    this.pending = undefined;
    this.pendingBatch = undefined;
    // Without given functions, the gradient pass captures Gauss-Newton products from the tape
    // (model.fit: src/layers/gauss-newton-capture.ts).
    let capture: GaussNewtonCapture | undefined;
    let gradientPass: ReturnType<typeof valueAndGradients>;
    try {
      gradientPass =
        fns === undefined && o.curvature !== 'hessian'
          ? valueAndGradients(loss, varList, (g, vl) => (capture = captureGaussNewton(g, vl)))
          : valueAndGradients(loss, varList);
    } catch (err) {
      release();
      throw err;
    }
    const { value, vars, grads } = gradientPass;
    const tapeGGN = capture?.ggn;
    if (o.curvature === 'ggn' && fns === undefined && tapeGGN === undefined) {
      release();
      tf.dispose([value, ...grads]);
      throw new Error(
        "HessianFree: curvature 'ggn' needs the network outputs of this step's examples: call " +
          'setCurvatureFunctions({ outputs, lossFromOutputs }) (or bindProblem + setCurvatureBatch) ' +
          "before minimize, train a model of Dense layers with a supported loss, or use curvature 'hessian' / 'auto'" +
          (capture?.failure ? ` (here: ${capture.failure.message}).` : '.'),
      );
    }
    if (capture?.failure?.kind === 'unsupported' && !this.warnedCapture) {
      this.warnedCapture = true;
      console.warn(
        `HessianFree: no Gauss-Newton products for this model (${capture.failure.message}); using Hessian products.`,
      );
    }
    const mode: 'ggn' | 'hessian' =
      o.curvature !== 'hessian' && (fns !== undefined || tapeGGN !== undefined) ? 'ggn' : 'hessian';
    this.counters.gradEvals++;
    let lambda = this.damping;
    const step: HessianFreeStepInfo = {
      accepted: false,
      curvature: mode,
      curvatureSource: mode === 'hessian' ? 'none' : fns !== undefined ? 'functions' : 'tape',
      dampingRatio: this.dampingRatioFor(tapeGGN),
      heldOutRho: NaN,
      loss: NaN,
      newLoss: NaN,
      dampingUsed: lambda,
      damping: lambda,
      rho: NaN,
      stepSize: 0,
      cgIterations: 0,
      cgStop: 'skipped',
      dampingRaises: 0,
      cgObjective: [],
      backtrackedIteration: 0,
      lossEvals: 0,
      gradEvals: 1,
      hvpEvals: 0,
    };
    this.lastStep = step;
    const toDispose: tf.Tensor[] = [...grads];
    try {
      const names = vars.map((v) => v.name);
      if (o.skipNonFinite && !this.allFinite([value, ...grads])) {
        this.recordSkip(this.allFinite([value]) ? 'gradient' : 'loss', names);
        step.damping = this.damping;
        return this.finish(value, returnCost);
      }
      const f0 = value.dataSync()[0]!;
      step.loss = f0;
      const shapes = vars.map((v) => v.shape.slice());
      const g = flatten(grads);
      const b = tf.neg(g) as tf.Tensor1D;
      toDispose.push(g, b);

      const state = this.stateFor(WARM_START);
      if (step.dampingRatio === 'next-batch') {
        // The previous step s, fitted to its own batch, re-measured on this one: f(theta) is this
        // batch's loss after s, f(theta - s) before it; an unbiased check of the previous
        // quadratic model's prediction (a step that overfits its batch gets rho < 1/4 here).
        const prev = state.get(PREVIOUS_STEP);
        const predicted = this.numericState.predictedReduction ?? 0;
        if (prev !== undefined && prev.size === g.size && predicted < 0) {
          const before = new ParameterPoint(vars);
          try {
            before.moveTo(prev.reshape([g.size]) as tf.Tensor1D, -1);
            step.lossEvals++;
            step.heldOutRho = reductionRatio(f0 - lossValue(loss), predicted);
          } finally {
            before.restore();
            before.dispose();
          }
          // Only lowers lambda: evidence that the previous step generalised beyond its batch.
          lambda = Math.min(
            lambda,
            adaptDamping(lambda, step.heldOutRho, {
              increase: o.dampingIncrease,
              decrease: o.dampingDecrease,
              minDamping: o.minDamping,
              maxDamping: o.maxDamping,
            }),
          );
          step.dampingUsed = lambda;
        }
      }
      tf.tidy(() => state.set(PREVIOUS_STEP, tf.zeros([0])));
      const tapeProduct = tapeGGN !== undefined ? this.tapeProduct(tapeGGN, vars) : undefined;
      const product = (v: tf.Tensor1D): tf.Tensor1D => {
        step.hvpEvals++;
        return releaseKept(() =>
          tf.tidy(() => {
            const vs = unflatten(v, shapes);
            const bv =
              mode === 'hessian'
                ? hvpVars(loss, vars, vs)
                : tapeProduct !== undefined
                  ? tapeProduct(vs)
                  : ggnvpVars(fns!.outputs, fns!.lossFromOutputs, vars, vs);
            return tf.add(flatten(bv), tf.mul(v, lambda)) as tf.Tensor1D;
          }),
        );
      };

      const precondition = this.preconditioner(g, lambda, batchSize, vars, gradientBatch);
      if (precondition.perExample) {
        step.gradEvals++;
        this.counters.gradEvals++;
      }
      if (precondition.diag) toDispose.push(precondition.diag);
      const warm = this.warmStart(g.size);
      if (warm) toDispose.push(warm);

      const solve = () =>
        conjugateGradient(product, b, warm, {
          maxIterations: o.maxIterations,
          tolerance: o.cgTolerance,
          stopOnNegativeCurvature: true,
          precondition: precondition.apply,
        });
      let cg = solve();
      step.cgIterations = cg.iterations;
      // Negative curvature: p^T (B + lambda I) p = kappa <= 0 along CG's direction p, i.e. B has
      // the Rayleigh quotient mu = kappa / ||p||^2 - lambda <= -lambda there. Raise lambda past
      // -mu (times dampingIncrease, so that B + lambda I is positive along p by a margin) and
      // re-solve: the Levenberg-Marquardt answer to an indefinite model (Nocedal & Wright 4.3,
      // More & Sorensen 1983), instead of stepping along a truncated solution of it.
      while (
        cg.stop === 'negative-curvature' &&
        o.negativeCurvature === 'raise-damping' &&
        step.dampingRaises < o.maxDampingRaises &&
        cg.negativeCurvature !== undefined &&
        cg.negativeCurvature.directionNormSq > 0 &&
        lambda < o.maxDamping
      ) {
        const { curvature, directionNormSq } = cg.negativeCurvature;
        const past = lambda - curvature / directionNormSq; // -mu >= lambda
        lambda = Math.min(o.maxDamping, Math.max(lambda, past, o.minDamping) * o.dampingIncrease);
        step.dampingRaises++;
        disposeCG(cg);
        cg = solve();
        step.cgIterations += cg.iterations;
      }
      step.dampingUsed = lambda;
      this.numericState.damping = lambda;
      step.cgStop = cg.stop;
      step.cgObjective = cg.objective;
      const point = new ParameterPoint(vars);
      let fallback: tf.Tensor1D | undefined;
      try {
        if (cg.stop === 'non-finite') {
          if (o.skipNonFinite) this.recordSkip('curvature', names);
          step.damping = this.damping;
          return this.finish(value, returnCost);
        }
        // The warm start for the next step is the last CG iterate (Martens), not the backtracked one.
        this.stateFor(WARM_START).set('p0', cg.x);

        // CG backtracking over the saved iterates, from the last one backwards.
        const evalAt = (p: tf.Tensor1D, t: number): number => {
          point.moveTo(p, t);
          step.lossEvals++;
          return lossValue(loss);
        };
        let direction: tf.Tensor1D;
        let fDir: number;
        let phi: number;
        const usable = cg.saved.filter((s) => s.iteration > 0 || warm !== undefined);
        if (usable.length === 0) {
          // Negative curvature (or a zero residual) before the first CG step: use the
          // preconditioned steepest-descent direction, scaled by the line search.
          fallback = precondition.apply(b);
          direction = fallback;
          const gp = dotNumber(g, direction);
          phi = gp; // only its sign matters for rho here
          fDir = evalAt(direction, 1);
          step.backtrackedIteration = 0;
        } else {
          let idx = usable.length - 1;
          direction = usable[idx]!.x;
          fDir = evalAt(direction, 1);
          while (idx > 0) {
            const prev = usable[idx - 1]!;
            const fPrev = evalAt(prev.x, 1);
            if (!(fPrev < fDir) && Number.isFinite(fDir)) break;
            idx--;
            direction = prev.x;
            fDir = fPrev;
          }
          phi = usable[idx]!.phi;
          step.backtrackedIteration = usable[idx]!.iteration;
        }
        step.rho = reductionRatio(fDir - f0, phi);
        const adapted = adaptDamping(lambda, step.rho, {
          increase: o.dampingIncrease,
          decrease: o.dampingDecrease,
          minDamping: o.minDamping,
          maxDamping: o.maxDamping,
        });
        // 'next-batch': the step's own batch may only raise lambda (it flatters the step).
        this.numericState.damping = step.dampingRatio === 'batch' ? adapted : Math.max(lambda, adapted);

        const slope = dotNumber(g, direction);
        const t0 = this.currentLearningRate();
        const search =
          slope < 0
            ? armijoBacktracking(
                f0,
                slope,
                (t) => evalAt(direction, t),
                { initialStep: t0, c1: o.c1, shrink: o.lineSearchShrink, maxTrials: o.maxLineSearch },
                { step: 1, value: fDir },
              )
            : { step: 0, value: f0, evaluations: 0 };
        if (search.step > 0) {
          point.moveTo(direction, search.step);
          // For the next step's 'next-batch' ratio: the step taken and its predicted change
          // q(t p) = t g^T p + t^2/2 p^T (B + lambda I) p, with p^T (B + lambda I) p = 2 (phi - g^T p).
          const t = search.step;
          this.numericState.predictedReduction = t * slope + t * t * (phi - slope);
          tf.tidy(() => state.set(PREVIOUS_STEP, tf.mul(direction, t)));
          step.accepted = true;
          step.stepSize = search.step;
          step.newLoss = search.value;
          this.incrementIterations();
        } else {
          point.restore();
          step.newLoss = f0;
        }
      } finally {
        point.dispose();
        fallback?.dispose();
        disposeCG(cg);
      }
      step.damping = this.damping;
      return this.finish(value, returnCost);
    } finally {
      release();
      tapeGGN?.dispose();
      tf.dispose(toDispose);
      this.counters.lossEvals += step.lossEvals;
      this.counters.hvpEvals += step.hvpEvals;
    }
  }

  /** The warm start 0.95 * previous solution, when its size matches. */
  private warmStart(size: number): tf.Tensor1D | undefined {
    const decay = this.options.warmStartDecay;
    if (decay === 0) return undefined;
    const p0 = this.stateFor(WARM_START).get('p0');
    if (p0 === undefined || p0.size !== size) return undefined;
    return tf.tidy(() => tf.mul(p0, decay).reshape([size]) as tf.Tensor1D);
  }

  private preconditioner(
    g: tf.Tensor1D,
    lambda: number,
    batchSize: number,
    vars: tf.Variable[],
    batch: Batch | undefined,
  ): { apply: (r: tf.Tensor1D) => tf.Tensor1D; diag?: tf.Tensor1D; perExample: boolean } {
    const kind = this.options.preconditioner;
    if (kind === 'none') return { apply: (r) => tf.clone(r), perExample: false };
    const exponent = this.options.preconditionerExponent;
    let sq: tf.Tensor1D | undefined;
    if (kind === 'martens' && batch !== undefined && this.problem !== undefined) {
      sq = perExampleSquaredGradients(this.problem, batch, vars);
    }
    const perExample = sq !== undefined;
    if (sq === undefined) {
      // No per-example gradients: EMA (beta 0.95) of the squared batch gradient times the batch
      // size, in the slot '@hessian-free/squaredGradient' (getWeights / setWeights carry it).
      const beta = 0.95;
      const state = this.stateFor(WARM_START);
      const prev = state.get(SQUARED_GRADIENT);
      const next = tf.tidy(() => {
        const s = tf.mul(tf.square(g), batchSize) as tf.Tensor1D;
        return prev !== undefined && prev.size === g.size
          ? (tf.add(tf.mul(prev.reshape([g.size]), beta), tf.mul(s, 1 - beta)) as tf.Tensor1D)
          : s;
      });
      state.set(SQUARED_GRADIENT, next);
      sq = next;
    }
    const base = sq;
    const diag = tf.tidy(() => tf.pow(tf.add(base, lambda), exponent) as tf.Tensor1D);
    base.dispose();
    return { apply: (r) => tf.tidy(() => tf.div(r, diag) as tf.Tensor1D), diag, perExample };
  }

  /**
   * 'auto': 'next-batch' when the step's batch comes from the tape (model.fit, or a closure of
   * Dense layers) and differs from the previous step's (mini-batches); else 'batch'.
   */
  private dampingRatioFor(ggn: TapeGaussNewton | undefined): 'batch' | 'next-batch' {
    const choice = this.options.dampingRatio;
    if (choice !== 'auto') return choice;
    // The previous batch's fingerprint is a slot (float32, compared as float32), so that a
    // restored optimizer (getWeights/setWeights, model.save) decides exactly as the original.
    const state = this.stateFor(WARM_START);
    const saved = state.get(FINGERPRINT);
    const prev = saved === undefined ? [] : Array.from(saved.dataSync());
    const next = (ggn?.fingerprint ?? []).map(Math.fround);
    // [0] is the batch size: a stored 0 means no fingerprint.
    tf.tidy(() => state.set(FINGERPRINT, tf.tensor1d(next.length > 0 ? next : [0, 0, 0])));
    if (next.length === 0 || prev.length === 0 || prev[0] === 0) return 'batch';
    const same = prev.length === next.length && prev.every((v, i) => v === next[i]);
    return same ? 'batch' : 'next-batch';
  }

  /** G v from the captured tape, for the variables of this step (others read as zero). */
  private tapeProduct(ggn: TapeGaussNewton, vars: tf.Variable[]): (vs: tf.Tensor[]) => tf.Tensor[] {
    const index = new Map(vars.map((v, i) => [v.id, i]));
    return (vs) => {
      const full = ggn.vars.map((v) => {
        const i = index.get(v.id);
        return i === undefined ? tf.zerosLike(v) : vs[i]!;
      });
      const out = ggn.product(full);
      const byId = new Map(ggn.vars.map((v, i) => [v.id, out[i]!]));
      return vars.map((v) => byId.get(v.id) ?? tf.zerosLike(v));
    };
  }

  private finish(value: tf.Scalar, returnCost: boolean): tf.Scalar | null {
    if (returnCost) return value;
    value.dispose();
    return null;
  }
}

tf.serialization.registerClass(HessianFree);

export const hessianFreeEntry = {
  name: 'hessian-free',
  className: HessianFree.className,
  description: 'Hessian-free (Martens 2010): truncated CG on Gauss-Newton or Hessian products, LM damping',
  options: optionDocs(HESSIAN_FREE_OPTIONS),
  create: (options: Record<string, unknown>, context?: { problem?: unknown }) => {
    const opt = new HessianFree(options as HessianFreeOptions);
    if (context?.problem !== undefined) opt.bindProblem(context.problem as Problem);
    return opt;
  },
};
