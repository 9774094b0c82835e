/**
 * Matrix functions of symmetric PSD matrices: (A + eps I)^{-1/p} and (A + eps I)^power.
 *
 * Epsilon: `epsilon` is added to every eigenvalue (i.e. A + eps I). With
 * `epsilonMode: 'relative'` the absolute value used is epsilon * lambda_max(A) (lambda_max from
 * the eigendecomposition, or from 30 power iterations for Newton). The absolute value used is
 * returned as `epsilon`.
 *
 * Methods for inverseRoot:
 *  - 'eigh' (default, recommended at every size: fastest and ~1e-14 accurate with the wasm
 *    kernels): A = V diag(lambda) V^T in float64 (./eigh.ts); eigenvalues in
 *    [-psdTolerance * max|lambda|, 0) are round-off for a PSD matrix and are clamped to 0 (count
 *    returned as `clamped`); a more negative one throws (A is indefinite). Then
 *    X = V diag((lambda + eps)^{-1/p}) V^T. A zero or negative lambda + eps throws (pass
 *    epsilon > 0 for singular matrices).
 *  - 'newton': coupled inverse Newton iteration in float64 (Distributed Shampoo,
 *    matrix_functions.py `_matrix_inverse_root_newton`; Guo & Higham 2006):
 *        alpha = -1/p, z = (p + 1) / (2 ||A||_F), X = z^{1/p} I, M = z A
 *        repeat: M' = (1 - alpha) I + alpha M;  X <- X M';  M <- M'^p M
 *    until max|M - I| <= tolerance. M -> I and X -> A^{-1/p}. Each iteration costs
 *    (2 + ceil(log2 p) + popcount) matmuls; ./matrix.ts matmul in float64.
 *  - 'newton-f32': the same iteration in float32 on the active tfjs backend (tf.matMul; wasm
 *    ~18 GFLOP/s here), in ./roots-f32.ts: this module does not load tfjs (the matrix worker
 *    imports it), so its `inverseRoot` throws for 'newton-f32'; the package's `inverseRoot`
 *    (./index.ts re-exports ./roots-f32.ts) handles every method. Accuracy is limited by float32 (~1e-6 relative for well-conditioned
 *    A); the iteration stops at the tolerance or when max|M - I| stops decreasing, keeping the
 *    best iterate.
 *
 * Error estimate (all methods): `error` = max over 2 random probes x of
 * ||X^p (A + eps I) x - x|| / ||x||, the defining identity checked in O(p n^2). It is ~1e-15 *
 * cond for a correct float64 result; a caller can reject or fall back when it is large.
 * Newton also returns `newtonResidual` = max|M - I| and `converged`.
 */
import {
  Mat64,
  MatrixInput,
  symmetricInput,
  matmul,
  matmulABt,
  matvec,
  transpose,
  frobeniusNorm,
  rng,
} from './matrix.js';
import { eighRows, eighResidual } from './eigh.js';

export type EpsilonMode = 'absolute' | 'relative';
export type InverseRootMethod = 'eigh' | 'newton' | 'newton-f32';

export interface SpectralOptions {
  /** Added to the eigenvalues (A + eps I); default 0. */
  epsilon?: number;
  /** 'absolute' (default) or 'relative' to the largest eigenvalue. */
  epsilonMode?: EpsilonMode;
  /**
   * Negative eigenvalues down to -psdTolerance * max|lambda| are round-off and clamped to 0;
   * a more negative one means A is not PSD and throws (default 1e-6).
   */
  psdTolerance?: number;
}

export interface InverseRootOptions extends SpectralOptions {
  method?: InverseRootMethod;
  /** Newton: stop when max|M - I| <= tolerance (default 1e-10 float64, 1e-5 float32). */
  tolerance?: number;
  /** Newton: iteration cap (default 100). */
  maxIterations?: number;
}

export interface InverseRootResult {
  /** (A + eps I)^{-1/p}, symmetric. */
  root: Mat64;
  method: InverseRootMethod;
  /** Absolute epsilon added to the diagonal. */
  epsilon: number;
  /** Identity residual max ||X^p (A + eps I) x - x|| / ||x|| over random probes. */
  error: number;
  /** eigh: negative eigenvalues clamped to 0. Newton: 0. */
  clamped: number;
  /** Newton only: iterations done, final max|M - I|, whether tolerance was met. */
  iterations?: number;
  newtonResidual?: number;
  converged?: boolean;
}

export interface MatrixPowerResult {
  /** (A + eps I)^power with negative eigenvalues clamped to 0 first. */
  result: Mat64;
  /** Eigenvalues of A, ascending (before clamping and epsilon). */
  eigenvalues: Float64Array;
  epsilon: number;
  clamped: number;
  /** Randomised eigendecomposition residual ||A V - V Lambda|| / ||A||_F (see eighResidual). */
  error: number;
}

function checkEpsilon(opts: SpectralOptions, where: string): { epsilon: number; mode: EpsilonMode } {
  const epsilon = opts.epsilon ?? 0;
  const mode = opts.epsilonMode ?? 'absolute';
  if (!(Number.isFinite(epsilon) && epsilon >= 0))
    throw new Error(`${where}: epsilon must be finite and >= 0, got ${epsilon}`);
  if (mode !== 'absolute' && mode !== 'relative')
    throw new Error(`${where}: epsilonMode must be 'absolute' or 'relative', got '${String(mode)}'`);
  return { epsilon, mode };
}

/** V diag(f) V^T from eigenvector rows vt (f may be negative). n^3 flops. */
export function reconstruct(vt: Mat64, f: Float64Array): Mat64 {
  const v = transpose(vt);
  const n = v.rows;
  const vf = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let k = 0; k < n; k++) vf[i * n + k] = v.data[i * n + k] * f[k];
  return matmulABt({ rows: n, cols: n, data: vf }, v, true);
}

export interface SpectralWeights {
  /** f(max(lambda_k, 0) + eps) for every eigenvalue, in the order given. */
  weights: Float64Array;
  /** Absolute epsilon added. */
  epsilon: number;
  /** Eigenvalues in [-psdTolerance * max|lambda|, 0) clamped to 0. */
  clamped: number;
}

/**
 * The matrix-function rules, separated from the eigensolver (Distributed Shampoo's
 * matrix_functions.py: the eigen-root config applied to a given spectrum): from eigenvalues
 * (any order) of a symmetric PSD matrix, check they are finite and that the most negative is
 * round-off (>= -psdTolerance * max|lambda|, else not PSD: throws), clamp negatives to 0, add
 * epsilon (absolute, or relative to lambda_max), require positivity when `needPositive` and a
 * finite f; return the weights f(lambda + eps). The caller reconstructs (V diag(w) V^T, or a
 * factor diag(w)^(1/2) V^T).
 */
function spectralWeights(
  values: Float64Array,
  opts: SpectralOptions,
  where: string,
  f: (lambda: number) => number,
  needPositive: boolean,
): SpectralWeights {
  const { epsilon: eps0, mode } = checkEpsilon(opts, where);
  const n = values.length;
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < n; i++) {
    const l = values[i];
    if (!Number.isFinite(l)) throw new Error(`${where}: eigenvalue ${i} is not finite (${l})`);
    if (l < lo) lo = l;
    if (l > hi) hi = l;
  }
  const epsilon = mode === 'relative' ? eps0 * Math.max(0, hi) : eps0;
  const psdTol = opts.psdTolerance ?? 1e-6;
  const scale = Math.max(Math.abs(lo), Math.abs(hi));
  if (lo < -psdTol * scale) {
    throw new Error(
      `${where}: matrix is not positive semidefinite (eigenvalue ${lo.toExponential(3)} < ` +
        `-${psdTol} * max|lambda| = ${(-psdTol * scale).toExponential(3)}); use solveModified for indefinite matrices`,
    );
  }
  const weights = new Float64Array(n);
  let clamped = 0;
  for (let i = 0; i < n; i++) {
    let l = values[i];
    if (l < 0) {
      l = 0;
      clamped++;
    }
    l += epsilon;
    if (needPositive && !(l > 0)) {
      throw new Error(
        `${where}: matrix is singular (eigenvalue ${values[i].toExponential(3)} + epsilon ${epsilon.toExponential(3)} <= 0); pass epsilon > 0`,
      );
    }
    weights[i] = f(l);
    if (!Number.isFinite(weights[i])) throw new Error(`${where}: f(eigenvalue ${l.toExponential(3)}) is not finite`);
  }
  return { weights, epsilon, clamped };
}

/**
 * Inverse p-th root weights (max(lambda, 0) + eps)^(-1/p) from a given spectrum, with the rules
 * of inverseRoot 'eigh' (see spectralWeights: finiteness, PSD tolerance, epsilon absolute or
 * relative to lambda_max, positivity). `p` > 0, any real (a factor W with W^T W = A^{-1/r} uses
 * p = 2r). Eigenvalues in any order; the eigensolver and the reconstruction are the caller's.
 */
export function inverseRootFromEigen(values: Float64Array, p: number, options: SpectralOptions = {}): SpectralWeights {
  const where = `inverseRootFromEigen(p = ${p})`;
  if (!(Number.isFinite(p) && p > 0)) throw new Error(`${where}: p must be finite and > 0`);
  return spectralWeights(values, options, where, (l) => l ** (-1 / p), true);
}

/** Apply f to the clamped, shifted spectrum of a symmetric matrix. */
function spectral(
  A: Mat64,
  opts: SpectralOptions,
  where: string,
  f: (lambda: number) => number,
  needPositive: boolean,
): { result: Mat64; values: Float64Array; vt: Mat64; epsilon: number; clamped: number } {
  checkEpsilon(opts, where);
  const { values, vt } = eighRows(A);
  const { weights, epsilon, clamped } = spectralWeights(values, opts, where, f, needPositive);
  return { result: reconstruct(vt, weights), values, vt, epsilon, clamped };
}

/** (A + eps I)^power for symmetric PSD A by eigendecomposition (any real power). */
export function matrixPower(a: MatrixInput, power: number, options: SpectralOptions = {}): MatrixPowerResult {
  const where = 'matrixPower(A)';
  if (!Number.isFinite(power)) throw new Error(`${where}: power must be finite, got ${power}`);
  const A = symmetricInput(a, where);
  const { result, values, vt, epsilon, clamped } = spectral(
    A,
    options,
    where,
    (l) => (l === 0 && power > 0 ? 0 : l ** power),
    power < 0,
  );
  return { result, eigenvalues: values, epsilon, clamped, error: eighResidual(A, values, vt) };
}

/** max over probes of ||X^p (A + eps I) x - x|| / ||x||; O(p n^2). */
export function inverseRootError(a: Mat64, root: Mat64, p: number, epsilon: number, probes = 2, seed = 7): number {
  const n = a.rows;
  const rand = rng(seed);
  let worst = 0;
  for (let q = 0; q < probes; q++) {
    const x = new Float64Array(n);
    for (let i = 0; i < n; i++) x[i] = rand() - 0.5;
    let y = matvec(a, x);
    for (let i = 0; i < n; i++) y[i] += epsilon * x[i];
    for (let k = 0; k < p; k++) y = matvec(root, y);
    let num = 0;
    let den = 0;
    for (let i = 0; i < n; i++) {
      num += (y[i] - x[i]) ** 2;
      den += x[i] * x[i];
    }
    const e = Math.sqrt(num / den);
    worst = Number.isFinite(e) ? Math.max(worst, e) : Infinity;
  }
  return worst;
}

function largestEigenvalue(A: Mat64, iterations = 30): number {
  const n = A.rows;
  const rand = rng(3);
  let x: Float64Array = new Float64Array(n);
  for (let i = 0; i < n; i++) x[i] = rand() + 0.5;
  let lambda = 0;
  for (let it = 0; it < iterations; it++) {
    const y = matvec(A, x);
    let ny = 0;
    let xy = 0;
    for (let i = 0; i < n; i++) {
      ny += y[i] * y[i];
      xy += x[i] * y[i];
    }
    ny = Math.sqrt(ny);
    let nx = 0;
    for (let i = 0; i < n; i++) nx += x[i] * x[i];
    lambda = xy / nx;
    if (ny === 0) return 0;
    for (let i = 0; i < n; i++) y[i] /= ny;
    x = y;
  }
  return lambda;
}

/** M^p for integer p >= 1 by repeated squaring (float64). */
function matPow(m: Mat64, p: number): Mat64 {
  let result: Mat64 | null = null;
  let base = m;
  let e = p;
  while (e > 0) {
    if (e & 1) result = result === null ? base : matmul(result, base);
    e >>= 1;
    if (e > 0) base = matmul(base, base);
  }
  return result as Mat64;
}

/** max |M - I| (NaN -> Infinity); shared with ./roots-f32.ts. */
export function maxAbsMinusIdentity(d: Float64Array | Float32Array, n: number): number {
  let err = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const v = Math.abs(d[i * n + j] - (i === j ? 1 : 0));
      if (v > err || v !== v) err = v !== v ? Infinity : v;
    }
  }
  return err;
}

/**
 * Initial scaling z of the coupled iteration (M_0 = z A). Shampoo's z = (p + 1) / (2 ||A||_F)
 * guarantees ||z A||_2 < p + 1 (convergence) but, for a flat spectrum, starts the small
 * eigenvalues sqrt(n) times too low; each iteration only multiplies them by ~(1 + 1/p)^p.
 * z = 1 / (1.1 lambda_max_est) (30 power iterations, which can only underestimate lambda_max,
 * and stays < p + 1 unless off by more than 4.5x) saves log(ratio)/log(2.4) iterations.
 */
export function newtonScale(A: Mat64, p: number): number {
  const zF = (p + 1) / (2 * frobeniusNorm(A));
  const lmax = largestEigenvalue(A);
  return lmax > 0 ? Math.max(zF, 1 / (1.1 * lmax)) : zF;
}

function newton64(A: Mat64, p: number, tol: number, maxIter: number) {
  const n = A.rows;
  const alpha = -1 / p;
  const z = newtonScale(A, p);
  let X: Mat64 = { rows: n, cols: n, data: new Float64Array(n * n) };
  const x0 = z ** (1 / p);
  for (let i = 0; i < n; i++) X.data[i * n + i] = x0;
  let M: Mat64 = { rows: n, cols: n, data: A.data.map((v) => v * z) };
  let err = maxAbsMinusIdentity(M.data, n);
  let it = 0;
  while (err > tol && it < maxIter) {
    it++;
    const Mp = { rows: n, cols: n, data: M.data.map((v) => alpha * v) };
    for (let i = 0; i < n; i++) Mp.data[i * n + i] += 1 - alpha;
    X = matmul(X, Mp);
    M = matmul(matPow(Mp, p), M);
    const prev = err;
    err = maxAbsMinusIdentity(M.data, n);
    if (!Number.isFinite(err))
      throw new Error(`inverseRoot(newton): iteration diverged (non-finite M at iteration ${it})`);
    if (err > prev && err < 1e-6) break; // round-off floor reached
  }
  return { X, err, it };
}

/** The float32 Newton iteration on the shifted matrix (./roots-f32.ts). */
export type NewtonF32 = (A: Mat64, p: number, tol: number, maxIter: number) => { X: Mat64; err: number; it: number };

/**
 * (A + eps I)^{-1/p} for symmetric PSD A, p a positive integer. See the file header. This entry
 * is tfjs-free: method 'newton-f32' throws here; use the package's `inverseRoot` (./roots-f32.ts).
 */
export function inverseRoot(a: MatrixInput, p: number, options: InverseRootOptions = {}): InverseRootResult {
  return inverseRootWith(a, p, options, null);
}

/** inverseRoot with the float32 Newton iteration supplied by the caller (null: not available). */
export function inverseRootWith(
  a: MatrixInput,
  p: number,
  options: InverseRootOptions,
  newton32: NewtonF32 | null,
): InverseRootResult {
  const method = options.method ?? 'eigh';
  const where = `inverseRoot(A, ${p}, ${method})`;
  if (!(Number.isInteger(p) && p >= 1)) throw new Error(`${where}: p must be a positive integer, got ${p}`);
  if (method !== 'eigh' && method !== 'newton' && method !== 'newton-f32') {
    throw new Error(`${where}: method must be 'eigh', 'newton' or 'newton-f32'`);
  }
  if (method === 'newton-f32' && newton32 === null) {
    throw new Error(
      `${where}: 'newton-f32' needs tfjs and is not available from src/linalg/roots.ts; ` +
        "use inverseRoot from the package (src/linalg/index.ts, which adds './roots-f32.ts')",
    );
  }
  const A = symmetricInput(a, where);
  const n = A.rows;
  if (method === 'eigh') {
    const r = spectral(A, options, where, (l) => l ** (-1 / p), true);
    return {
      root: r.result,
      method,
      epsilon: r.epsilon,
      clamped: r.clamped,
      error: inverseRootError(A, r.result, p, r.epsilon),
    };
  }
  const { epsilon: eps0, mode } = checkEpsilon(options, where);
  const epsilon = mode === 'relative' ? eps0 * Math.max(0, largestEigenvalue(A)) : eps0;
  const tol = options.tolerance ?? (method === 'newton' ? 1e-10 : 1e-5);
  const maxIter = options.maxIterations ?? 100;
  if (!(tol > 0) || !(Number.isInteger(maxIter) && maxIter >= 1)) {
    throw new Error(`${where}: tolerance must be > 0 and maxIterations a positive integer`);
  }
  const shifted: Mat64 = { rows: n, cols: n, data: A.data.slice() };
  for (let i = 0; i < n; i++) shifted.data[i * n + i] += epsilon;
  if (frobeniusNorm(shifted) === 0) throw new Error(`${where}: matrix is zero; pass epsilon > 0`);
  const { X, err, it } =
    method === 'newton' || newton32 === null ? newton64(shifted, p, tol, maxIter) : newton32(shifted, p, tol, maxIter);
  const error = inverseRootError(A, X, p, epsilon);
  return { root: X, method, epsilon, clamped: 0, error, iterations: it, newtonResidual: err, converged: err <= tol };
}
