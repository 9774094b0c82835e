/**
 * Top eigenvalues of the Hessian (or Gauss-Newton matrix) from curvature-vector products.
 *
 * method 'power' (PyHessian, Yao et al. 2020, pyhessian/hessian.py `eigenvalues`): for each of
 *   the k eigenvalues, power iteration on C restricted to the orthogonal complement of the
 *   eigenvectors already found (deflation by orthogonalisation): v <- C v / ||C v|| with
 *   lambda = v^T C v, stopped when |lambda - lambda_prev| / (|lambda_prev| + 1e-6) < tol.
 *   Finds the largest-MAGNITUDE eigenvalues. Converges like (lambda_{i+1} / lambda_i)^{2t}, so it
 *   is slow when neighbouring eigenvalues are close.
 * method 'lanczos' (default): Lanczos with full re-orthogonalisation from one random start;
 *   stops when the k wanted Ritz pairs have residual bound |beta_m y_{m,j}| <= tol |theta_j|
 *   (Parlett, The Symmetric Eigenvalue Problem, §13.1) or after maxIter steps. Converges on the
 *   gaps of the whole spectrum; for the same accuracy it needs far fewer products than 'power'.
 * `which`: 'magnitude' (default, as PyHessian) or 'algebraic' (largest values, negative last).
 */
import type * as tf from '@tensorflow/tfjs';
import { CurvatureOperator, CurvatureSourceOptions, LossFn, resolveOperator } from './operator.js';
import { axpy, dot, norm, orthogonalize, scale } from '../linalg/vector64.js';
import { lanczos, ritzVector, tridiagonalEig } from './lanczos.js';
import { ProbeRng } from './random.js';

export interface TopEigenvaluesOptions<B = never> extends CurvatureSourceOptions<B> {
  /** Number of eigenvalues (default 1). */
  k?: number;
  /** 'lanczos' (default) or 'power'. */
  method?: 'power' | 'lanczos';
  /** Power: iterations per eigenvalue; Lanczos: maximum steps (default 100, capped at dim). */
  maxIter?: number;
  /** Power: relative change of the eigenvalue; Lanczos: relative residual bound (default 1e-4). */
  tol?: number;
  /** 'magnitude' (default) or 'algebraic'. */
  which?: 'magnitude' | 'algebraic';
  /** Seed of the start vectors (default 0). */
  seed?: number;
  /** Also return eigenvectors as tensors shaped like vars (caller disposes; default false). */
  returnVectors?: boolean;
}

export interface TopEigenvaluesResult {
  /** Eigenvalues, wanted-first (descending in magnitude or in value, by `which`). */
  eigenvalues: number[];
  /** Residual norms ||C v - lambda v|| (power: at the last iteration; Lanczos: the bound). */
  residuals: number[];
  /** Eigenvectors shaped like vars (only with returnVectors). */
  eigenvectors?: tf.Tensor[][];
  /** True when every eigenvalue met tol within maxIter. */
  converged: boolean;
  /** Power: iterations per eigenvalue; Lanczos: [steps]. */
  iterations: number[];
  /** Operator applications used. */
  matvecs: number;
}

function checkPositiveInt(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be a positive integer, got ${v}.`);
}

/** Indices of the k wanted values in `values`, wanted-first. */
function wanted(values: readonly number[], k: number, which: 'magnitude' | 'algebraic'): number[] {
  const key = (x: number): number => (which === 'magnitude' ? Math.abs(x) : x);
  return values
    .map((_, i) => i)
    .sort((a, b) => key(values[b]) - key(values[a]))
    .slice(0, k);
}

function powerIteration(
  op: CurvatureOperator,
  o: Required<Pick<TopEigenvaluesOptions, 'k' | 'maxIter' | 'tol' | 'seed'>>,
) {
  const rng = new ProbeRng(o.seed);
  const values: number[] = [];
  const vectors: Float64Array[] = [];
  const residuals: number[] = [];
  const iterations: number[] = [];
  let converged = true;
  for (let i = 0; i < o.k; i++) {
    let v = rng.rademacher(op.dim);
    orthogonalize(v, vectors);
    scale(1 / norm(v), v);
    let lambda = Number.NaN;
    let residual = Number.NaN;
    let done = false;
    let it = 0;
    while (it < o.maxIter && !done) {
      it++;
      orthogonalize(v, vectors);
      scale(1 / norm(v), v);
      const hv = op.apply(v);
      const next = dot(v, hv);
      const r = Float64Array.from(hv);
      axpy(-next, v, r);
      residual = norm(r);
      if (Number.isFinite(lambda) && Math.abs(lambda - next) / (Math.abs(lambda) + 1e-6) < o.tol) done = true;
      lambda = next;
      const h = norm(hv);
      if (!(h > 0)) {
        // v is in the null space of the deflated operator: eigenvalue 0.
        done = true;
        break;
      }
      v = hv;
      scale(1 / h, v);
    }
    orthogonalize(v, vectors);
    scale(1 / norm(v), v);
    if (!done) converged = false;
    values.push(lambda);
    vectors.push(v);
    residuals.push(residual);
    iterations.push(it);
  }
  return { values, vectors, residuals, iterations, converged };
}

function lanczosTop(
  op: CurvatureOperator,
  o: Required<Pick<TopEigenvaluesOptions, 'k' | 'maxIter' | 'tol' | 'seed' | 'which'>>,
) {
  const rng = new ProbeRng(o.seed);
  let converged = false;
  const check = (
    alpha: number[],
    beta: number[],
  ): { idx: number[]; res: number[]; ok: boolean; eig: ReturnType<typeof tridiagonalEig> } => {
    const eig = tridiagonalEig(alpha, beta);
    const idx = wanted(eig.values, o.k, o.which);
    const m = alpha.length;
    const bm = beta[m - 1];
    const res = idx.map((j) => Math.abs(bm * eig.vectors[m - 1][j]));
    const ok = idx.length === o.k && idx.every((j, t) => res[t] <= o.tol * Math.max(Math.abs(eig.values[j]), 1e-30));
    return { idx, res, ok, eig };
  };
  const run = lanczos(op, rng.rademacher(op.dim), o.maxIter, (r) => {
    if (r.alpha.length < o.k) return false;
    converged = check(r.alpha, r.beta).ok;
    return converged;
  });
  const final = check(run.alpha, run.beta);
  if (run.exhausted) converged = final.idx.length === o.k;
  else converged = final.ok;
  const vectors = final.idx.map((j) => {
    const v = ritzVector(
      run.basis,
      final.eig.vectors.map((row) => row[j]),
    );
    scale(1 / norm(v), v);
    return v;
  });
  return {
    values: final.idx.map((j) => final.eig.values[j]),
    vectors,
    residuals: run.exhausted ? final.idx.map(() => 0) : final.res,
    iterations: [run.alpha.length],
    converged,
  };
}

/**
 * The k largest (by `which`) eigenvalues of the Hessian of `f` in `vars` (or of the GGN with
 * `curvature: 'ggn'`), on one batch or averaged over `batches`. `f` may also be a ready
 * CurvatureOperator (then `vars` must be its variables).
 */
export function hessianTopEigenvalues<B = never>(
  f: LossFn<B> | (() => tf.Scalar) | CurvatureOperator,
  vars: readonly tf.Variable[],
  options: TopEigenvaluesOptions<B> = {},
): TopEigenvaluesResult {
  const op = resolveOperator(f, vars, options);
  const k = options.k ?? 1;
  const maxIter = options.maxIter ?? 100;
  const tol = options.tol ?? 1e-4;
  const method = options.method ?? 'lanczos';
  const which = options.which ?? 'magnitude';
  checkPositiveInt('k', k);
  checkPositiveInt('maxIter', maxIter);
  if (k > op.dim) throw new Error(`k must be at most the number of parameters (${op.dim}), got ${k}.`);
  if (!(tol > 0)) throw new Error(`tol must be positive, got ${tol}.`);
  if (method !== 'power' && method !== 'lanczos')
    throw new Error(`method must be 'power' or 'lanczos', got '${String(method)}'.`);
  if (which !== 'magnitude' && which !== 'algebraic')
    throw new Error(`which must be 'magnitude' or 'algebraic', got '${String(which)}'.`);
  const seed = options.seed ?? 0;
  const start = op.matvecs;
  const r =
    method === 'power'
      ? powerIteration(op, { k, maxIter, tol, seed })
      : lanczosTop(op, { k, maxIter: Math.max(maxIter, k), tol, seed, which });
  const result: TopEigenvaluesResult = {
    eigenvalues: r.values,
    residuals: r.residuals,
    converged: r.converged,
    iterations: r.iterations,
    matvecs: op.matvecs - start,
  };
  if (options.returnVectors === true) result.eigenvectors = r.vectors.map((v) => op.toTensors(v));
  return result;
}
