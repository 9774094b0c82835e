/**
 * Trace and diagonal of the Hessian (or GGN) by randomized probing.
 *
 * Hutchinson (1990; PyHessian `trace`, curvlinops `HutchinsonTraceEstimator`): with Rademacher
 * probes z (E[z z^T] = I), tr(C) = E[z^T C z]; the estimate is the sample mean of z_s^T C z_s
 * and its standard error the sample standard deviation over sqrt(samples).
 *
 * Hutch++ (Meyer, Musco, Musco & Woodruff 2021; curvlinops `HutchPPTraceEstimator`): a third of
 * the product budget sketches the range of C (Q = orth(C S)), a third computes tr(Q^T C Q)
 * exactly, and the last third runs Hutchinson on the deflated (I - QQ^T) C (I - QQ^T). For
 * spectra with a few large eigenvalues (the usual Hessian) the variance drops sharply; the
 * reported standard error is that of the Hutchinson part.
 *
 * Diagonal (Bekas, Kokiopoulou & Saad 2007; curvlinops `HutchinsonDiagonalEstimator`):
 * diag(C) = E[z ⊙ C z]; per-entry mean and standard error. `method: 'exact'` forms it from dim
 * products with unit vectors instead (small problems, tests).
 */
import type * as tf from '@tensorflow/tfjs';
import { CurvatureOperator, CurvatureSourceOptions, LossFn, resolveOperator } from './operator.js';
import { dot, norm, orthogonalize, scale } from '../linalg/vector64.js';
import { ProbeRng } from './random.js';

export interface TraceOptions<B = never> extends CurvatureSourceOptions<B> {
  /** Products budget: Hutchinson probes, or the total for Hutch++ (split in thirds). Default 100. */
  samples?: number;
  /** 'hutchinson' (default) or 'hutch++'. */
  method?: 'hutchinson' | 'hutch++';
  /** Seed of the probes (default 0). */
  seed?: number;
}

export interface TraceResult {
  /** Estimate of tr(C). */
  trace: number;
  /** Standard error of the estimate (0 when Hutch++'s sketch captured the whole range). */
  standardError: number;
  /** The Hutchinson probe values z^T C z (Hutch++: of the deflated operator). */
  probes: number[];
  /** Hutch++: the exact part tr(Q^T C Q); Hutchinson: 0. */
  lowRankPart: number;
  matvecs: number;
}

function meanAndSe(xs: readonly number[]): { mean: number; se: number } {
  const n = xs.length;
  if (n === 0) return { mean: 0, se: 0 };
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  if (n === 1) return { mean, se: Number.POSITIVE_INFINITY };
  const variance = xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1);
  return { mean, se: Math.sqrt(variance / n) };
}

function checkSamples(samples: number, min: number): void {
  if (!Number.isInteger(samples) || samples < min) {
    throw new Error(`samples must be an integer >= ${min}, got ${samples}.`);
  }
}

/** Estimate tr(C) of the Hessian (or GGN) of `f` in `vars`, with its standard error. */
export function hessianTrace<B = never>(
  f: LossFn<B> | (() => tf.Scalar) | CurvatureOperator,
  vars: readonly tf.Variable[],
  options: TraceOptions<B> = {},
): TraceResult {
  const op = resolveOperator(f, vars, options);
  const method = options.method ?? 'hutchinson';
  const samples = options.samples ?? 100;
  const rng = new ProbeRng(options.seed ?? 0);
  const start = op.matvecs;
  if (method === 'hutchinson') {
    checkSamples(samples, 1);
    const probes: number[] = [];
    for (let s = 0; s < samples; s++) {
      const z = rng.rademacher(op.dim);
      probes.push(dot(z, op.apply(z)));
    }
    const { mean, se } = meanAndSe(probes);
    return { trace: mean, standardError: se, probes, lowRankPart: 0, matvecs: op.matvecs - start };
  }
  if (method !== 'hutch++') throw new Error(`method must be 'hutchinson' or 'hutch++', got '${String(method)}'.`);
  checkSamples(samples, 3);
  const third = Math.floor(samples / 3);
  // Sketch: Q = orthonormal basis of C S (columns that vanish after orthogonalisation are dropped).
  const basis: Float64Array[] = [];
  for (let s = 0; s < Math.min(third, op.dim); s++) {
    const y = op.apply(rng.rademacher(op.dim));
    const before = norm(y);
    orthogonalize(y, basis);
    const after = norm(y);
    if (after > 1e-10 * Math.max(before, 1e-300)) {
      scale(1 / after, y);
      basis.push(y);
    }
  }
  let lowRankPart = 0;
  for (const q of basis) lowRankPart += dot(q, op.apply(q));
  const probes: number[] = [];
  const residualBudget = samples - 2 * third;
  if (basis.length < op.dim) {
    for (let s = 0; s < residualBudget; s++) {
      const g = rng.rademacher(op.dim);
      orthogonalize(g, basis);
      probes.push(dot(g, op.apply(g)));
    }
  }
  const { mean, se } = meanAndSe(probes);
  return {
    trace: lowRankPart + mean,
    standardError: probes.length === 0 ? 0 : se,
    probes,
    lowRankPart,
    matvecs: op.matvecs - start,
  };
}

export interface DiagonalOptions<B = never> extends CurvatureSourceOptions<B> {
  /** Hutchinson probes (default 100). */
  samples?: number;
  /** 'hutchinson' (default) or 'exact' (dim products with unit vectors). */
  method?: 'hutchinson' | 'exact';
  /** Seed of the probes (default 0). */
  seed?: number;
}

export interface DiagonalResult {
  /** diag(C) shaped like vars (caller disposes). */
  diagonal: tf.Tensor[];
  /** Per-entry standard error shaped like vars (zeros for 'exact'; caller disposes). */
  standardError: tf.Tensor[];
  /** The diagonal as one flat float64 vector, in vars order. */
  values: Float64Array;
  matvecs: number;
}

/** Estimate diag(C) of the Hessian (or GGN) of `f` in `vars`, shaped like vars. */
export function hessianDiagonal<B = never>(
  f: LossFn<B> | (() => tf.Scalar) | CurvatureOperator,
  vars: readonly tf.Variable[],
  options: DiagonalOptions<B> = {},
): DiagonalResult {
  const op = resolveOperator(f, vars, options);
  const method = options.method ?? 'hutchinson';
  const start = op.matvecs;
  const n = op.dim;
  const values = new Float64Array(n);
  const se = new Float64Array(n);
  if (method === 'exact') {
    const e = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      e[i] = 1;
      values[i] = op.apply(e)[i];
      e[i] = 0;
    }
  } else if (method === 'hutchinson') {
    const samples = options.samples ?? 100;
    checkSamples(samples, 1);
    const rng = new ProbeRng(options.seed ?? 0);
    const sumSq = new Float64Array(n);
    for (let s = 0; s < samples; s++) {
      const z = rng.rademacher(n);
      const cz = op.apply(z);
      for (let i = 0; i < n; i++) {
        const x = z[i] * cz[i];
        values[i] += x;
        sumSq[i] += x * x;
      }
    }
    scale(1 / samples, values);
    for (let i = 0; i < n; i++) {
      const variance =
        samples > 1 ? Math.max(0, sumSq[i] - samples * values[i] ** 2) / (samples - 1) : Number.POSITIVE_INFINITY;
      se[i] = Math.sqrt(variance / samples);
    }
  } else {
    throw new Error(`method must be 'hutchinson' or 'exact', got '${String(method)}'.`);
  }
  const diagonal = op.toTensors(values);
  const standardError = op.toTensors(se);
  return { diagonal, standardError, values, matvecs: op.matvecs - start };
}
