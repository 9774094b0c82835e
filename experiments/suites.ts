/**
 * Suites: named comparisons with fixed problem configurations, budgets, targets and
 * per-optimizer per-problem hyperparameters.
 *
 * The hyperparameters were chosen with `curvature tune` (log-spaced learning-rate grid, best
 * final training loss on seed 0; see docs/harness.md). An optimizer without an entry for a
 * problem runs with its registry defaults. Budgets are step counts (deterministic records);
 * the `seconds` caps only guard the total time of `npm start` against slow optimizers.
 */
import type { ComparisonSpec, ProblemConfig } from '../src/harness/compare.js';

export interface Suite {
  name: string;
  description: string;
  problems: ProblemConfig[];
  /** Default number of seeds (0..n-1). */
  seeds: number;
}

const NO_LAYERS = 'K-FAC preconditions the layers of a network; this problem has none';
const TOO_BIG_FOR_NEWTON =
  "over Newton's maxParams (1,000) for an explicit Hessian; hessian-free is the matrix-free Newton";
const NO_MATRICES = 'Muon orthogonalises matrix parameters; this problem has none (it would run AdamW)';
const NO_FACTORS = 'SOAP preconditions parameters of rank >= 2; this problem has only a vector (it would run Adam)';
const MINI_BATCHES = 'L-BFGS is for deterministic problems: on mini-batches its curvature pairs mix batches';

/**
 * The quick suite: `npm start`. Step budgets, with fewer steps for the optimizers whose steps
 * are expensive (Hessian-free, Shampoo) and a per-run seconds cap as a guard; about 1-2 minutes
 * with every optimizer on 2 cores.
 */
export const quickSuite: Suite = {
  name: 'quick',
  description: 'A 50-D quadratic (condition 100), 2-D Rosenbrock, softmax regression and a small conv net on MNIST',
  seeds: 3,
  problems: [
    {
      id: 'quadratic-d50-c100',
      problem: 'quadratic',
      options: { dim: 50, condition: 100, spectrum: 'log-uniform' },
      budget: { steps: 400, seconds: 10 },
      hyperparameters: {
        sgd: { learningRate: 1.5 },
        rmsprop: { learningRate: 0.01 },
        adam: { learningRate: 0.1 },
        shampoo: { learningRate: 1 },
        lbfgs: { lineSearchFn: 'strong_wolfe' },
      },
      // One L-BFGS step is up to 20 iterations (torch's step(closure)).
      optimizerBudgets: { lbfgs: { steps: 20, seconds: 10 } },
      exclude: { kfac: NO_LAYERS, muon: NO_MATRICES, soap: NO_FACTORS },
    },
    {
      id: 'rosenbrock-2d',
      problem: 'rosenbrock',
      options: { dim: 2 },
      budget: { steps: 500, seconds: 10 },
      target: 1e-3,
      hyperparameters: {
        sgd: { learningRate: 0.002, momentum: 0.9 },
        rmsprop: { learningRate: 0.1 },
        adam: { learningRate: 0.3 },
        shampoo: { learningRate: 1 },
        lbfgs: { lineSearchFn: 'strong_wolfe' },
      },
      optimizerBudgets: { lbfgs: { steps: 20, seconds: 10 } },
      exclude: { kfac: NO_LAYERS, muon: NO_MATRICES, soap: NO_FACTORS },
    },
    {
      id: 'softmax-mnist',
      problem: 'softmax-mnist',
      options: { batchSize: 128, trainSize: 4000, testSize: 2000 },
      budget: { steps: 200, seconds: 8 },
      optimizerBudgets: { 'hessian-free': { steps: 60, seconds: 20 }, shampoo: { steps: 50, seconds: 8 } },
      target: 0.35,
      evalEvery: 20,
      hyperparameters: {
        sgd: { learningRate: 0.5 },
        rmsprop: { learningRate: 0.01 },
        adam: { learningRate: 0.003 },
        // Mini-batches of 128 against 7,850 parameters: the damping must stay large, since it
        // alone bounds the step in the directions the batch does not see (docs/optimizers.md).
        'hessian-free': { damping: 1, minDamping: 1, maxIterations: 20 },
        shampoo: { learningRate: 0.1 },
      },
      exclude: {
        newton: TOO_BIG_FOR_NEWTON,
        lbfgs: MINI_BATCHES,
      },
    },
    {
      // Added with issue 18: `npm start` went from 60.5 s to 88.1 s wall (24.8 s to 47.0 s of
      // CPU) on 2 cores shared with other jobs (load ~10); hessian-free gets 5 steps only.
      id: 'cnn-mnist',
      problem: 'cnn-mnist',
      options: { trainSize: 2000, testSize: 1000 },
      budget: { steps: 150, seconds: 6 },
      optimizerBudgets: { 'hessian-free': { steps: 5, seconds: 5 }, kfac: { steps: 60, seconds: 5 } },
      target: 0.35,
      evalEvery: 10,
      hyperparameters: {
        sgd: { learningRate: 0.3 },
        rmsprop: { learningRate: 0.003 },
        adam: { learningRate: 0.01 },
        'hessian-free': { damping: 1, minDamping: 1, maxIterations: 10 },
        shampoo: { learningRate: 0.03 },
      },
      exclude: {
        newton: TOO_BIG_FOR_NEWTON,
        lbfgs: MINI_BATCHES,
      },
    },
  ],
};

/** The full suite: every problem family; several minutes to hours depending on optimizers. */
export const fullSuite: Suite = {
  name: 'full',
  description: 'Quadratics, classic test functions, logistic regression, MLP, autoencoder and conv nets',
  seeds: 5,
  problems: [
    {
      id: 'quadratic-d100-c1000',
      problem: 'quadratic',
      options: { dim: 100, condition: 1000 },
      budget: { steps: 3000 },
      exclude: { kfac: NO_LAYERS },
    },
    {
      id: 'quadratic-two-cluster',
      problem: 'quadratic',
      options: { dim: 100, condition: 1000, spectrum: 'two-cluster' },
      budget: { steps: 3000 },
      exclude: { kfac: NO_LAYERS },
    },
    { id: 'quadratic-deep', problem: 'quadratic-deep', budget: { epochs: 100 }, exclude: { kfac: NO_LAYERS } },
    {
      id: 'rosenbrock-10d',
      problem: 'rosenbrock',
      options: { dim: 10 },
      budget: { steps: 10000 },
      target: 1e-4,
      exclude: { kfac: NO_LAYERS },
    },
    { id: 'beale', problem: 'beale', budget: { steps: 3000 }, exclude: { kfac: NO_LAYERS } },
    { id: 'himmelblau', problem: 'himmelblau', budget: { steps: 3000 }, exclude: { kfac: NO_LAYERS } },
    { id: 'logreg-iris', problem: 'logreg-iris', budget: { steps: 2000 } },
    { id: 'softmax-mnist', problem: 'softmax-mnist', budget: { epochs: 10 }, exclude: { newton: TOO_BIG_FOR_NEWTON } },
    {
      id: 'mlp-mnist',
      problem: 'mlp-mnist',
      options: { hidden: [128] },
      budget: { epochs: 10 },
      exclude: { newton: TOO_BIG_FOR_NEWTON },
    },
    {
      id: 'autoencoder-mnist',
      problem: 'autoencoder-mnist',
      budget: { epochs: 10 },
      exclude: { newton: TOO_BIG_FOR_NEWTON },
    },
    { id: 'cnn-mnist', problem: 'cnn-mnist', budget: { epochs: 10 }, exclude: { newton: TOO_BIG_FOR_NEWTON } },
    { id: 'cnn-shapes', problem: 'cnn-shapes', budget: { epochs: 20 }, exclude: { newton: TOO_BIG_FOR_NEWTON } },
  ],
};

export const suites: Record<string, Suite> = { quick: quickSuite, full: fullSuite };

export function getSuite(name: string): Suite {
  const s = suites[name];
  if (!s) throw new Error(`Unknown suite '${name}': expected one of ${Object.keys(suites).join(', ')}.`);
  return s;
}

/** A comparison of `optimizers` over a suite with `seeds` seeds (default: the suite's). */
export function suiteComparison(suite: Suite, optimizers: string[], seeds?: number): ComparisonSpec {
  const n = seeds ?? suite.seeds;
  return {
    name: suite.name,
    problems: suite.problems,
    optimizers,
    seeds: Array.from({ length: n }, (_, i) => i),
  };
}
