/**
 * HessianFree's options, the curvature functions a caller may give, and the per-step
 * diagnostics (`opt.lastStep`). The algorithm and the defaults' rationale: ../hessian-free.ts.
 */
import type { CGStop } from '../../src/curvature/cg.js';
import { BASE_OPTION_SPECS } from '../../src/optim/base.js';
import { option, type OptionsInput } from '../../src/optim/options.js';
import type * as tf from '@tensorflow/tfjs';

export type HessianFreeCurvature = 'auto' | 'ggn' | 'hessian';
export type HessianFreePreconditioner = 'none' | 'squared-gradient' | 'martens';
export type HessianFreeNegativeCurvature = 'raise-damping' | 'steihaug';
export type HessianFreeDampingRatio = 'auto' | 'batch' | 'next-batch';

export type HessianFreeGGNProduct = 'linearized' | 'autodiff';

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
  miniBatchMaxIterations: option.number(
    4,
    "CG iteration cap on mini-batches (when the 'next-batch' ratio is in effect): short CG runs bound how far " +
      'a step fits its batch (Kiros 2013; Martens & Sutskever 2012); 4 chosen by time to target (issue 16)',
    { min: 1, integer: true },
  ),
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
      "re-measured on the next step's batch; lowers lambda only on that evidence), 'auto' ('next-batch' when the " +
      'batch changes between steps: model.fit or setCurvatureBatch with mini-batches)',
  ),
  maxDampingRaises: option.number(10, "Re-solves per step under negativeCurvature 'raise-damping'", {
    min: 0,
    integer: true,
  }),
  ggnProduct: option.choice<HessianFreeGGNProduct>(
    'linearized',
    ['linearized', 'autodiff'],
    "Gauss-Newton products of a bound Dense-stack problem: 'linearized' (forward pass once per step, " +
      "then two passes of matrix products each) or 'autodiff' (ggnvpVars for every product)",
  ),
  firstOrderSteps: option.number(
    0,
    'First-order warm start: the first this many updates are Adam steps (second moment: the squared-gradient ' +
      'statistic), then Hessian-free steps',
    { min: 0, integer: true },
  ),
  firstOrderLearningRate: option.number(1e-2, 'Adam learning rate of the first-order warm start (firstOrderSteps)', {
    min: 0,
    minExclusive: true,
  }),
  curvatureFraction: option.number(0.5, 'Fraction of the batch used for curvature products (needs a batch)', {
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
  /** 'first-order': an Adam step of the warm start (firstOrderSteps); no CG, no line search. */
  phase: 'first-order' | 'hessian-free';
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
