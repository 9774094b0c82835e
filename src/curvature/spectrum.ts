/**
 * Spectral density of the Hessian (or GGN) by stochastic Lanczos quadrature (SLQ).
 *
 * Algorithm (Lin, Saad & Yang 2016; Ghorbani, Krishnan & Xiao 2019; PyHessian `density` and
 * density_plot.py; curvlinops `lanczos_approximate_spectrum`):
 *   for each run r: a Rademacher start v (||v|| = 1), `steps` Lanczos steps with full
 *   re-orthogonalisation give T_r = Y diag(theta) Y^T; the quadrature nodes are the Ritz values
 *   theta_j, the weights tau_j = Y[0, j]^2 (they sum to 1). v^T g(C) v ~ sum_j tau_j g(theta_j),
 *   and E[v^T g(C) v] = tr(g(C)) / dim, so the spectral measure (1/dim) sum_i delta(x - lambda_i)
 *   is approximated by the average over runs of sum_j tau_j delta(x - theta_j).
 *   Broadening: each delta becomes a Gaussian of standard deviation `sigma`, so the density
 *   integrates to 1 over the real line (we do not renormalise on the grid as PyHessian does, so
 *   values are comparable across grids).
 * The SLQ trace estimate dim * mean_r sum_j tau_j theta_j comes for free.
 */
import type * as tf from '@tensorflow/tfjs';
import { CurvatureOperator, CurvatureSourceOptions, LossFn, resolveOperator } from './operator.js';
import { lanczos, tridiagonalEig } from './lanczos.js';
import { ProbeRng } from './random.js';

export interface SpectrumOptions<B = never> extends CurvatureSourceOptions<B> {
  /** Independent start vectors (default 1, as PyHessian). */
  runs?: number;
  /** Lanczos steps per run (default 80, capped at dim). */
  steps?: number;
  /** Gaussian broadening std in eigenvalue units (default 1% of the node range). */
  sigma?: number;
  /** Number of grid points (default 512) or the grid itself. */
  grid?: number | readonly number[];
  /** Grid range [lo, hi] (default: node range widened by 5 sigma each side). */
  range?: readonly [number, number];
  /** Seed of the start vectors (default 0). */
  seed?: number;
}

export interface SpectrumResult {
  /** Grid points (ascending). */
  grid: Float64Array;
  /** Density on the grid (integrates to ~1). */
  density: Float64Array;
  /** Quadrature nodes (Ritz values, ascending) per run. */
  nodes: number[][];
  /** Quadrature weights per run (each run sums to 1). */
  weights: number[][];
  /** The broadening used. */
  sigma: number;
  /** SLQ estimate of tr(C). */
  trace: number;
  /** Smallest and largest Ritz values over all runs (estimates of lambda_min, lambda_max). */
  lambdaMin: number;
  lambdaMax: number;
  matvecs: number;
}

/** Approximate the spectral density of the Hessian (or GGN) of `f` in `vars`. */
export function hessianSpectrum<B = never>(
  f: LossFn<B> | (() => tf.Scalar) | CurvatureOperator,
  vars: readonly tf.Variable[],
  options: SpectrumOptions<B> = {},
): SpectrumResult {
  const op = resolveOperator(f, vars, options);
  const runs = options.runs ?? 1;
  const steps = Math.min(options.steps ?? 80, op.dim);
  if (!Number.isInteger(runs) || runs < 1) throw new Error(`runs must be a positive integer, got ${runs}.`);
  if (!Number.isInteger(options.steps ?? 80) || steps < 1)
    throw new Error(`steps must be a positive integer, got ${options.steps}.`);
  if (options.sigma !== undefined && !(options.sigma > 0))
    throw new Error(`sigma must be positive, got ${options.sigma}.`);
  const rng = new ProbeRng(options.seed ?? 0);
  const start = op.matvecs;
  const nodes: number[][] = [];
  const weights: number[][] = [];
  for (let r = 0; r < runs; r++) {
    const run = lanczos(op, rng.rademacher(op.dim), steps);
    const eig = tridiagonalEig(run.alpha, run.beta);
    nodes.push(eig.values);
    weights.push(eig.vectors[0].map((y) => y * y));
  }
  const all = nodes.flat();
  const lambdaMin = Math.min(...all);
  const lambdaMax = Math.max(...all);
  const spread = lambdaMax - lambdaMin;
  const sigma = options.sigma ?? (spread > 0 ? 0.01 * spread : 0.01 * Math.max(Math.abs(lambdaMax), 1));
  let grid: Float64Array;
  if (typeof options.grid === 'object') {
    grid = Float64Array.from(options.grid);
  } else {
    const points = options.grid ?? 512;
    if (!Number.isInteger(points) || points < 2)
      throw new Error(`grid must be an integer >= 2 or an array, got ${points}.`);
    const [lo, hi] = options.range ?? [lambdaMin - 5 * sigma, lambdaMax + 5 * sigma];
    if (!(hi > lo)) throw new Error(`range must have hi > lo, got [${lo}, ${hi}].`);
    grid = new Float64Array(points);
    for (let i = 0; i < points; i++) grid[i] = lo + ((hi - lo) * i) / (points - 1);
  }
  const density = new Float64Array(grid.length);
  const c = 1 / (runs * sigma * Math.sqrt(2 * Math.PI));
  for (let r = 0; r < runs; r++) {
    for (let j = 0; j < nodes[r].length; j++) {
      const t = nodes[r][j];
      const w = weights[r][j] * c;
      for (let i = 0; i < grid.length; i++) density[i] += w * Math.exp(-((grid[i] - t) ** 2) / (2 * sigma * sigma));
    }
  }
  let trace = 0;
  for (let r = 0; r < runs; r++) for (let j = 0; j < nodes[r].length; j++) trace += weights[r][j] * nodes[r][j];
  trace *= op.dim / runs;
  return { grid, density, nodes, weights, sigma, trace, lambdaMin, lambdaMax, matvecs: op.matvecs - start };
}

/** Fraction of the spectrum (SLQ quadrature mass, averaged over runs) with eigenvalues in [lo, hi]. */
export function spectralMass(spectrum: Pick<SpectrumResult, 'nodes' | 'weights'>, lo: number, hi: number): number {
  let mass = 0;
  spectrum.nodes.forEach((ns, r) =>
    ns.forEach((t, j) => {
      if (t >= lo && t <= hi) mass += spectrum.weights[r][j];
    }),
  );
  return mass / spectrum.nodes.length;
}
