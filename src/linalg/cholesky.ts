/**
 * Cholesky factorisation A = L L^T with damping retry, SPD solves and the SPD inverse.
 *
 * Algorithm: row-oriented Cholesky-Crout (L_ij = (A_ij - <L_i,:j, L_j,:j>) / L_jj), so every
 * inner loop is a dot product of two contiguous rows; n^3/3 flops. A pivot that is not
 * > n * eps * max|A_ii| (or not finite) is a failure: the matrix is (numerically) not positive
 * definite. On failure `cholesky` retries with A + jitter I, jitter starting at
 * `initialJitter * mean(|A_ii|)` and multiplied by `growth` each retry, up to `maxTries`
 * attempts in all (the first without jitter). The jitter actually added is returned, so callers
 * (K-FAC damping, Newton) can see and report it. When every attempt fails, a clear Error says
 * which pivot failed and the last jitter tried.
 *
 * Kernels: factorisation, L^{-1} and W^T W run on the WebAssembly SIMD kernels of ./kernels.ts
 * when they load (n >= 16/32), else on the JS loops here (same algorithms).
 *
 * spdInverse: L^{-1} by forward substitution on rows, then A^{-1} = L^{-T} L^{-1} as a sum of
 * rank-1 updates over the rows of L^{-1} (upper triangle only, mirrored): about n^3 flops.
 *
 * Reference: Golub & Van Loan, Matrix Computations (4th ed.), Alg. 4.2.1; Nocedal & Wright,
 * Numerical Optimization, Alg. 3.3 (Cholesky with added multiple of the identity).
 */
import {
  Mat64,
  MatrixInput,
  assertFinite,
  assertSquare,
  symmetricInput,
  toMat64,
  symmetrizeFromUpperInPlace,
  transpose,
  matmulABt,
} from './matrix.js';
import { wasm, cholWasm, trinvWasm } from './kernels.js';

export interface CholeskyOptions {
  /** First nonzero jitter, relative to mean |A_ii| (default 1e-10). */
  initialJitter?: number;
  /** Factor by which the jitter grows between attempts (default 10). */
  growth?: number;
  /** Attempts in all, the first without jitter (default 12; 1 disables the retry). */
  maxTries?: number;
}

export interface CholeskyResult {
  /** Lower-triangular factor of A + jitter I (upper triangle zero). */
  L: Mat64;
  /** Absolute jitter added to the diagonal (0 when A itself factored). */
  jitter: number;
  /** Attempts made (1 when A itself factored). */
  tries: number;
}

/** Factor A in place of a fresh buffer; returns the failing pivot index or -1 on success. */
function factorInto(A: Float64Array, n: number, jitter: number, L: Float64Array, pivotTol: number): number {
  const w = n >= 16 ? wasm() : null;
  if (w !== null) return cholWasm(w, A, n, jitter, L, pivotTol);
  L.fill(0);
  for (let i = 0; i < n; i++) {
    const ri = i * n;
    for (let j = 0; j <= i; j++) {
      const rj = j * n;
      let s = A[ri + j];
      let t = 0;
      for (; t + 3 < j; t += 4) {
        s -=
          L[ri + t] * L[rj + t] +
          L[ri + t + 1] * L[rj + t + 1] +
          L[ri + t + 2] * L[rj + t + 2] +
          L[ri + t + 3] * L[rj + t + 3];
      }
      for (; t < j; t++) s -= L[ri + t] * L[rj + t];
      if (i === j) {
        s += jitter;
        if (!(s > pivotTol)) return i;
        L[ri + i] = Math.sqrt(s);
      } else {
        L[ri + j] = s / L[rj + j];
      }
    }
  }
  return -1;
}

/**
 * Cholesky factor of a symmetric positive definite matrix, retrying with a growing diagonal
 * jitter when A is not numerically positive definite. Throws when every attempt fails.
 */
export function cholesky(a: MatrixInput, options: CholeskyOptions = {}): CholeskyResult {
  const A = symmetricInput(a, 'cholesky(A)');
  const initialJitter = options.initialJitter ?? 1e-10;
  const growth = options.growth ?? 10;
  const maxTries = options.maxTries ?? 12;
  if (!(initialJitter > 0) || !(growth > 1) || !(Number.isInteger(maxTries) && maxTries >= 1)) {
    throw new Error(
      `cholesky: invalid options (initialJitter ${initialJitter} must be > 0, growth ${growth} > 1, maxTries ${maxTries} a positive integer)`,
    );
  }
  const n = A.rows;
  let meanDiag = 0;
  let maxDiag = 0;
  for (let i = 0; i < n; i++) {
    const d = Math.abs(A.data[i * n + i]);
    meanDiag += d / n;
    maxDiag = Math.max(maxDiag, d);
  }
  const base = initialJitter * (meanDiag > 0 ? meanDiag : 1);
  const L = new Float64Array(n * n);
  let jitter = 0;
  let failed = -1;
  for (let attempt = 1; attempt <= maxTries; attempt++) {
    jitter = attempt === 1 ? 0 : base * growth ** (attempt - 2);
    const pivotTol = n * Number.EPSILON * (maxDiag + jitter);
    failed = factorInto(A.data, n, jitter, L, pivotTol);
    if (failed < 0) return { L: { rows: n, cols: n, data: L }, jitter, tries: attempt };
  }
  throw new Error(
    `cholesky: matrix is not positive definite: pivot ${failed} of ${n} failed even with jitter ` +
      `${jitter.toExponential(2)} (${maxTries} attempts; mean |A_ii| = ${meanDiag.toExponential(2)})`,
  );
}

/** Solve L L^T X = B in place on B's data (B is n x m, row-major). */
export function choleskySolveInPlace(L: Mat64, B: Float64Array, m: number): void {
  const n = L.rows;
  const Ld = L.data;
  // Forward: L Y = B, row i of Y = (B_i - sum_k<i L_ik Y_k) / L_ii.
  for (let i = 0; i < n; i++) {
    const ri = i * m;
    for (let k = 0; k < i; k++) {
      const l = Ld[i * n + k];
      if (l === 0) continue;
      const rk = k * m;
      for (let c = 0; c < m; c++) B[ri + c] -= l * B[rk + c];
    }
    const inv = 1 / Ld[i * n + i];
    for (let c = 0; c < m; c++) B[ri + c] *= inv;
  }
  // Backward: L^T X = Y, row i of X = (Y_i - sum_k>i L_ki X_k) / L_ii.
  for (let i = n - 1; i >= 0; i--) {
    const ri = i * m;
    for (let k = i + 1; k < n; k++) {
      const l = Ld[k * n + i];
      if (l === 0) continue;
      const rk = k * m;
      for (let c = 0; c < m; c++) B[ri + c] -= l * B[rk + c];
    }
    const inv = 1 / Ld[i * n + i];
    for (let c = 0; c < m; c++) B[ri + c] *= inv;
  }
}

export interface SpdSolveResult<X> {
  x: X;
  /** Jitter added to A's diagonal by the Cholesky retry (0 when none was needed). */
  jitter: number;
  /** ||A x - b||_F / ||b||_F measured against the original A (without jitter). */
  residual: number;
}

function rhsInput(
  b: Float64Array | number[] | MatrixInput,
  n: number,
): { data: Float64Array; m: number; vector: boolean } {
  if (b instanceof Float64Array || (Array.isArray(b) && (b.length === 0 || typeof b[0] === 'number'))) {
    const data = Float64Array.from(b as ArrayLike<number>);
    if (data.length !== n) throw new Error(`spdSolve(b): right-hand side has ${data.length} entries, A is ${n}x${n}`);
    for (let i = 0; i < n; i++)
      if (!Number.isFinite(data[i])) throw new Error(`spdSolve(b): non-finite entry ${data[i]} at ${i}`);
    return { data, m: 1, vector: true };
  }
  const B = toMat64(b as MatrixInput, 'spdSolve(B)');
  if (B.rows !== n) throw new Error(`spdSolve(B): right-hand side has ${B.rows} rows, A is ${n}x${n}`);
  assertFinite(B, 'spdSolve(B)');
  return { data: B.data.slice(), m: B.cols, vector: false };
}

/**
 * Solve A x = b for symmetric positive definite A (one right-hand side as a vector, or many as
 * the columns of an n x m matrix), by Cholesky with damping retry.
 */
export function spdSolve(
  a: MatrixInput,
  b: Float64Array | number[],
  options?: CholeskyOptions,
): SpdSolveResult<Float64Array>;
export function spdSolve(a: MatrixInput, b: MatrixInput, options?: CholeskyOptions): SpdSolveResult<Mat64>;
export function spdSolve(
  a: MatrixInput,
  b: Float64Array | number[] | MatrixInput,
  options: CholeskyOptions = {},
): SpdSolveResult<Float64Array | Mat64> {
  const A = symmetricInput(a, 'spdSolve(A)');
  const n = A.rows;
  const rhs = rhsInput(b, n);
  const { L, jitter } = cholesky(A, options);
  const x = rhs.data.slice();
  choleskySolveInPlace(L, x, rhs.m);
  // Residual against the original A.
  let num = 0;
  let den = 0;
  const m = rhs.m;
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < m; c++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += A.data[i * n + k] * x[k * m + c];
      const r = s - rhs.data[i * m + c];
      num += r * r;
      den += rhs.data[i * m + c] ** 2;
    }
  }
  const residual = den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
  return { x: rhs.vector ? x : { rows: n, cols: m, data: x }, jitter, residual };
}

/** L^{-1} for lower-triangular L (rows computed by forward substitution). */
export function lowerTriangularInverse(L: Mat64): Mat64 {
  assertSquare(L, 'lowerTriangularInverse(L)');
  const n = L.rows;
  const Ld = L.data;
  const w = n >= 16 ? wasm() : null;
  if (w !== null) return { rows: n, cols: n, data: trinvWasm(w, Ld, n) };
  const X = new Float64Array(n * n);
  // Row i of X: X_i = (e_i - sum_{k<i} L_ik X_k) / L_ii, X lower triangular.
  for (let i = 0; i < n; i++) {
    const ri = i * n;
    for (let k = 0; k < i; k++) {
      const l = Ld[ri + k];
      if (l === 0) continue;
      const rk = k * n;
      for (let c = 0; c <= k; c++) X[ri + c] -= l * X[rk + c];
    }
    X[ri + i] += 1;
    const inv = 1 / Ld[ri + i];
    for (let c = 0; c <= i; c++) X[ri + c] *= inv;
  }
  return { rows: n, cols: n, data: X };
}

export interface SpdInverseResult {
  inverse: Mat64;
  jitter: number;
}

/** (A + jitter I)^{-1} for symmetric positive definite A, jitter from the Cholesky retry. */
export function spdInverse(a: MatrixInput, options: CholeskyOptions = {}): SpdInverseResult {
  const A = symmetricInput(a, 'spdInverse(A)');
  const n = A.rows;
  const { L, jitter } = cholesky(A, options);
  const Wm = lowerTriangularInverse(L);
  if (n >= 32 && wasm() !== null) {
    // A^{-1} = W^T W as (W^T)(W^T)^T on the SIMD kernel: 2x the flops of the triangular sum
    // below, but ~4x the speed.
    const Wt = transpose(Wm);
    return { inverse: matmulABt(Wt, Wt, true), jitter };
  }
  const W = Wm.data;
  // A^{-1} = W^T W = sum_k W_k^T W_k over rows k of W (W_k nonzero in 0..k).
  const C = new Float64Array(n * n);
  for (let k = 0; k < n; k++) {
    const rk = k * n;
    for (let i = 0; i <= k; i++) {
      const w = W[rk + i];
      if (w === 0) continue;
      const ri = i * n;
      for (let j = i; j <= k; j++) C[ri + j] += w * W[rk + j];
    }
  }
  return { inverse: symmetrizeFromUpperInPlace({ rows: n, cols: n, data: C }), jitter };
}
