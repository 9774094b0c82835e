/**
 * Householder QR of a square or tall matrix in float64: A = Q R with Q (m x n) having
 * orthonormal columns and R (n x n) upper triangular (the "reduced" QR of numpy/torch).
 *
 * Convention: LAPACK's dgeqrf/dorgqr (what numpy.linalg.qr and torch.linalg.qr call), so that Q
 * and R agree with them up to round-off, signs included: reflector k is H_k = I - tau v v^T with
 * v_0 = 1, built from x = A_k[k:, k] by dlarfg: beta = -sign(x_0) ||x||, tau = (beta - x_0) / beta,
 * v = x / (x_0 - beta), R_kk = beta; a column already zero below the diagonal gives tau = 0
 * (H_k = I, R_kk = x_0). Q = H_0 H_1 ... H_{n-1} [I; 0], accumulated backwards.
 * A rank-deficient A still gives an orthonormal Q (its extra columns complete the basis).
 *
 * Layout: the columns of A are stored as the rows of a working copy, so that every reflector
 * application is a dot product and an axpy over contiguous memory. 4/3 n^3 (R) + 4/3 n^3 (Q)
 * flops for a square n x n matrix.
 *
 * Reference: Golub & Van Loan, Matrix Computations, 5.2.1-5.2.2; LAPACK dlarfg, dgeqr2, dorg2r.
 */
import { Mat64, MatrixInput, toMat64, assertFinite, transpose, matmulABt } from './matrix.js';
import { cholesky, lowerTriangularInverse } from './cholesky.js';

export interface QrResult {
  /** m x n, orthonormal columns. */
  q: Mat64;
  /** n x n upper triangular. */
  r: Mat64;
}

/** Reduced Householder QR (m >= n), LAPACK sign convention (see the file header). */
export function qr(a: MatrixInput): QrResult {
  const A = toMat64(a, 'qr(A)');
  assertFinite(A, 'qr(A)');
  const m = A.rows;
  const n = A.cols;
  if (m < n) throw new Error(`qr: A must have at least as many rows as columns, got ${m}x${n}`);
  // ct: column j of A as row j (n x m).
  const ct = new Float64Array(n * m);
  for (let i = 0; i < m; i++) {
    const ri = i * n;
    for (let j = 0; j < n; j++) ct[j * m + i] = A.data[ri + j];
  }
  const tau = new Float64Array(n);
  const r = new Float64Array(n * n);
  for (let k = 0; k < n; k++) {
    const ck = k * m;
    const alpha = ct[ck + k];
    let scale = 0;
    for (let i = k + 1; i < m; i++) scale = Math.max(scale, Math.abs(ct[ck + i]));
    let xnorm = 0;
    if (scale > 0) {
      let s = 0;
      for (let i = k + 1; i < m; i++) {
        const t = ct[ck + i] / scale;
        s += t * t;
      }
      xnorm = scale * Math.sqrt(s);
    }
    if (xnorm === 0) {
      tau[k] = 0;
      r[k * n + k] = alpha;
    } else {
      const norm = Math.hypot(alpha, xnorm);
      const beta = alpha >= 0 ? -norm : norm;
      tau[k] = (beta - alpha) / beta;
      const inv = 1 / (alpha - beta);
      for (let i = k + 1; i < m; i++) ct[ck + i] *= inv;
      ct[ck + k] = 1;
      r[k * n + k] = beta;
      // Apply H_k to the remaining columns j > k: c -= tau (v . c) v.
      const tk = tau[k];
      for (let j = k + 1; j < n; j++) {
        const cj = j * m;
        let dot = ct[cj + k];
        for (let i = k + 1; i < m; i++) dot += ct[ck + i] * ct[cj + i];
        const f = tk * dot;
        ct[cj + k] -= f;
        for (let i = k + 1; i < m; i++) ct[cj + i] -= f * ct[ck + i];
      }
    }
    for (let j = k + 1; j < n; j++) r[k * n + j] = ct[j * m + k];
  }
  // Q's columns as rows (qt, n x m), starting from [I; 0]; H_k touches columns j >= k only.
  const qt = new Float64Array(n * m);
  for (let j = 0; j < n; j++) qt[j * m + j] = 1;
  for (let k = n - 1; k >= 0; k--) {
    const tk = tau[k];
    if (tk === 0) continue;
    const ck = k * m;
    for (let j = k; j < n; j++) {
      const qj = j * m;
      let dot = qt[qj + k];
      for (let i = k + 1; i < m; i++) dot += ct[ck + i] * qt[qj + i];
      const f = tk * dot;
      qt[qj + k] -= f;
      for (let i = k + 1; i < m; i++) qt[qj + i] -= f * ct[ck + i];
    }
  }
  const q = new Float64Array(m * n);
  for (let j = 0; j < n; j++) {
    const qj = j * m;
    for (let i = 0; i < m; i++) q[i * n + j] = qt[qj + i];
  }
  return { q: { rows: m, cols: n, data: q }, r: { rows: n, cols: n, data: r } };
}

/**
 * The Q of a reduced QR of A (m >= n), fast: Cholesky-QR2 (Fukaya et al. 2014: C = A^T A = L L^T,
 * Q1 = A L^{-T}, then once more on Q1) on the matrix kernels (SIMD gemm, Cholesky and triangular
 * inverse when the wasm kernels load), ~4 m n^2 + 2/3 n^3 flops in products instead of
 * Householder's loops. Q spans the same nested column spaces as Householder's, with columns
 * differing at most in sign (R's diagonal is positive here). Cholesky-QR2 is accurate to
 * round-off when cond(A) < ~1e7 (u^{-1/2}); when the first Cholesky fails or its pivots span more
 * than 1e7 (a rank-deficient or ill-conditioned A), this falls back to Householder `qr`.
 */
export function orthonormalBasis(a: MatrixInput): Mat64 {
  const A = toMat64(a, 'orthonormalBasis(A)');
  assertFinite(A, 'orthonormalBasis(A)');
  if (A.rows < A.cols) {
    throw new Error(`orthonormalBasis: A must have at least as many rows as columns, got ${A.rows}x${A.cols}`);
  }
  const pass = (p: Mat64, check: boolean): Mat64 | null => {
    const pt = transpose(p);
    const c = matmulABt(pt, pt, true);
    let L: Mat64;
    try {
      L = cholesky(c, { maxTries: 1 }).L;
    } catch {
      return null;
    }
    if (check) {
      let lo = Infinity;
      let hi = 0;
      for (let i = 0; i < L.rows; i++) {
        const d = L.data[i * L.rows + i];
        lo = Math.min(lo, d);
        hi = Math.max(hi, d);
      }
      if (!(hi <= 1e7 * lo)) return null;
    }
    return matmulABt(p, lowerTriangularInverse(L));
  };
  const q1 = A.cols === 0 ? null : pass(A, true);
  const q2 = q1 === null ? null : pass(q1, false);
  return q2 ?? qr(A).q;
}
