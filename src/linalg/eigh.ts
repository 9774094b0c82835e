/**
 * Symmetric eigendecomposition A = V diag(lambda) V^T in float64, eigenvalues ascending.
 *
 * Algorithm (the EISPACK tred2/tql2 pair as in JAMA and ml-matrix, restructured for row-major
 * typed arrays):
 *  1. Householder tridiagonalisation T = Q^T A Q, in place on the upper triangle: step k takes
 *     the Householder vector from row k (contiguous), forms p = beta A22 v in one pass over the
 *     upper triangle and applies the symmetric rank-2 update A22 -= v w^T + w v^T on rows.
 *     4/3 n^3 flops.
 *  2. Q^T accumulated backward (M <- M H_k on rows k+1..n-1, dot + axpy on contiguous rows),
 *     4/3 n^3 flops.
 *  3. Implicit QL with Wilkinson-type shifts on the tridiagonal (tql2). Its Givens rotations
 *     act on columns of V, i.e. on ROWS of V^T, which we store: each rotation is a contiguous
 *     two-row update. Rotations of one sweep are recorded and applied column-block by column
 *     block so that the block stays in L1 (~3-6 n^3 flops, the bulk of the cost).
 *  4. Sort ascending; eigenvectors are the rows of the internal V^T.
 * Reference: Golub & Van Loan, Matrix Computations, §8.3; Wilkinson & Reinsch, Handbook for
 * Automatic Computation II (tred2, tql2).
 *
 * Kernels: with the WebAssembly SIMD kernels of ./kernels.ts, steps 2-3 are replaced by
 * eigenvalues of T by QL without vectors, eigenvectors of T by inverse iteration (LAPACK
 * dstein, on the unreduced blocks of T) and the back-transformation by the Householder
 * reflectors (linalg.c syevi, eighWasmFast; ~1.5x the wasm tred/accumq/tql2 path at n = 128,
 * ~2x at 256, which remains as eighWasm and as its fallback). Without wasm, the JS loops below.
 * Inputs with max|a_ij| outside [2^-400, 2^400] are scaled by an exact power of two first.
 *
 * Degenerate spectra (rank-deficient statistics such as Shampoo/SOAP's G G^T of MNIST, with
 * exactly zero rows and a many-fold zero eigenvalue): the Householder vectors are stored scaled
 * by 1/sigma (beta = sigma/|v0| in [1/2, 1]), and a column whose off-diagonal part is below
 * 2^-100 max|a_ij| is taken as reduced. Before, the round-off residue in the null space shrank by
 * ~eps per step until beta = 1/(sigma |v0|) overflowed: non-finite eigenvalues (e.g. X^T X of 8
 * MNIST digits, at any scale). test/linalg-eigh-degenerate.test.ts.
 *
 * Errors: input must be square, finite and symmetric (relative asymmetry <= 1e-6; the upper
 * triangle is used). QL failing to converge in 60 sweeps for one eigenvalue throws (never seen
 * in practice, but never a silent NaN). `eighResidual` estimates ||A V - V diag(lambda)||_F /
 * ||A||_F with random probes in O(n^2).
 */
import { Mat64, MatrixInput, symmetricInput, transpose, matvec, rng } from './matrix.js';
import { wasm, eighWasmFast } from './kernels.js';

export interface EighResult {
  /** Eigenvalues, ascending. */
  values: Float64Array;
  /** Eigenvectors as COLUMNS (V[:, i] belongs to values[i]), orthonormal; like numpy/ml-matrix. */
  vectors: Mat64;
}

/** Internal form: eigenvectors as the ROWS of vt (vt = V^T). */
export interface EighRows {
  values: Float64Array;
  vt: Mat64;
}

function hypot(a: number, b: number): number {
  const x = Math.abs(a);
  const y = Math.abs(b);
  if (x > y) {
    const r = y / x;
    return x * Math.sqrt(1 + r * r);
  }
  if (y === 0) return 0;
  const r = x / y;
  return y * Math.sqrt(1 + r * r);
}

/** Householder tridiagonalisation; returns d, e (e[k] = T[k+1][k]) and Q^T. Consumes `a`. */
function tridiagonalize(a: Float64Array, n: number): { d: Float64Array; e: Float64Array; qt: Float64Array } {
  const d = new Float64Array(n);
  const e = new Float64Array(n);
  const beta = new Float64Array(n);
  const p = new Float64Array(n);
  // A column whose off-diagonal part is below 2^-100 max|a_ij| is taken as reduced (H = I): see
  // tred in ./wasm/linalg.c (round-off residue in the null space of a rank-deficient matrix).
  let amax = 0;
  for (let i = 0; i < n; i++) for (let j = i; j < n; j++) amax = Math.max(amax, Math.abs(a[i * n + j]));
  const negligible = amax * 2 ** -100;
  for (let k = 0; k < n - 2; k++) {
    const rk = k * n;
    d[k] = a[rk + k];
    // x = a[k][k+1..n-1]
    let scale = 0;
    for (let j = k + 1; j < n; j++) scale = Math.max(scale, Math.abs(a[rk + j]));
    let sigma2 = 0;
    if (scale > 0) {
      for (let j = k + 2; j < n; j++) {
        const t = a[rk + j] / scale;
        sigma2 += t * t;
      }
    }
    const x0 = a[rk + k + 1];
    if (scale <= negligible || sigma2 === 0) {
      // Already tridiagonal in this column: H = I.
      e[k] = x0;
      beta[k] = 0;
      continue;
    }
    const x0s = x0 / scale;
    const sigma = Math.sqrt(x0s * x0s + sigma2) * scale;
    const alpha = x0 >= 0 ? -sigma : sigma;
    const v0 = x0 - alpha; // = x0 + sign(x0) sigma, no cancellation
    // v scaled by 1/sigma and beta = sigma/|v0| in [1/2, 1]: the same H = I - beta v v^T at any
    // scale of the input (1/(sigma |v0|) overflows for sigma below ~1e-154).
    for (let j = k + 2; j < n; j++) a[rk + j] /= sigma;
    a[rk + k + 1] = v0 / sigma;
    const b = sigma / Math.abs(v0);
    beta[k] = b;
    e[k] = alpha;
    // p = b * A22 v over the upper triangle of A22 (rows/cols k+1..n-1), v = a[rk + k+1..].
    p.fill(0, k + 1, n);
    for (let i = k + 1; i < n; i++) {
      const ri = i * n;
      const vi = a[rk + i];
      let s = a[ri + i] * vi;
      for (let j = i + 1; j < n; j++) {
        const aij = a[ri + j];
        s += aij * a[rk + j];
        p[j] += aij * vi;
      }
      p[i] += s;
    }
    let pv = 0;
    for (let i = k + 1; i < n; i++) {
      p[i] *= b;
      pv += p[i] * a[rk + i];
    }
    const K = 0.5 * b * pv;
    for (let i = k + 1; i < n; i++) p[i] -= K * a[rk + i]; // p is now w
    for (let i = k + 1; i < n; i++) {
      const ri = i * n;
      const vi = a[rk + i];
      const wi = p[i];
      for (let j = i; j < n; j++) a[ri + j] -= vi * p[j] + wi * a[rk + j];
    }
  }
  if (n >= 2) {
    d[n - 2] = a[(n - 2) * n + n - 2];
    e[n - 2] = a[(n - 2) * n + n - 1];
  }
  d[n - 1] = a[(n - 1) * n + n - 1];
  e[n - 1] = 0;

  // Q^T = H_{n-3} ... H_0, accumulated backward as M <- M H_k.
  const qt = new Float64Array(n * n);
  for (let i = 0; i < n; i++) qt[i * n + i] = 1;
  for (let k = n - 3; k >= 0; k--) {
    const b = beta[k];
    if (b === 0) continue;
    const rk = k * n;
    for (let i = k + 1; i < n; i++) {
      const ri = i * n;
      let s = 0;
      for (let j = k + 1; j < n; j++) s += qt[ri + j] * a[rk + j];
      s *= b;
      if (s === 0) continue;
      for (let j = k + 1; j < n; j++) qt[ri + j] -= s * a[rk + j];
    }
  }
  return { d, e, qt };
}

/**
 * Apply the Givens rotations of one QL sweep (i = m-1 down to l, (c_i, s_i)) to rows of vt:
 * rows i and i+1 <- (c*r_i - s*r_{i+1}, s*r_i + c*r_{i+1}). Columns are processed in blocks
 * with the running row (i+1) carried in a small buffer that stays in L1.
 */
function applySweep(
  vt: Float64Array,
  n: number,
  l: number,
  m: number,
  cs: Float64Array,
  sn: Float64Array,
  carry: Float64Array,
): void {
  const BLK = carry.length;
  for (let c0 = 0; c0 < n; c0 += BLK) {
    const len = Math.min(BLK, n - c0);
    const rm = m * n + c0;
    for (let t = 0; t < len; t++) carry[t] = vt[rm + t];
    for (let i = m - 1; i >= l; i--) {
      const c = cs[i];
      const s = sn[i];
      const ri = i * n + c0;
      const rn = ri + n;
      for (let t = 0; t < len; t++) {
        const h = carry[t];
        const y = vt[ri + t];
        vt[rn + t] = s * y + c * h;
        carry[t] = c * y - s * h;
      }
    }
    const rl = l * n + c0;
    for (let t = 0; t < len; t++) vt[rl + t] = carry[t];
  }
}

/** Implicit QL on (d, e) with rotations applied to the rows of vt (tql2). */
function tql2(d: Float64Array, e: Float64Array, vt: Float64Array, n: number): void {
  const cs = new Float64Array(n);
  const sn = new Float64Array(n);
  const carry = new Float64Array(256);
  let f = 0;
  let tst1 = 0;
  const eps = Number.EPSILON;
  for (let l = 0; l < n; l++) {
    tst1 = Math.max(tst1, Math.abs(d[l]) + Math.abs(e[l]));
    let m = l;
    while (m < n - 1) {
      if (Math.abs(e[m]) <= eps * tst1) break;
      m++;
    }
    if (m > l) {
      let iter = 0;
      do {
        if (++iter > 60) {
          throw new Error(`eigh: QL iteration did not converge for eigenvalue ${l} of ${n} (60 sweeps)`);
        }
        let g = d[l];
        let p = (d[l + 1] - g) / (2 * e[l]);
        let r = hypot(p, 1);
        if (p < 0) r = -r;
        d[l] = e[l] / (p + r);
        d[l + 1] = e[l] * (p + r);
        const dl1 = d[l + 1];
        let h = g - d[l];
        for (let i = l + 2; i < n; i++) d[i] -= h;
        f += h;
        p = d[m];
        let c = 1;
        let c2 = c;
        let c3 = c;
        const el1 = e[l + 1];
        let s = 0;
        let s2 = 0;
        for (let i = m - 1; i >= l; i--) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i];
          h = c * p;
          r = hypot(p, e[i]);
          e[i + 1] = s * r;
          s = e[i] / r;
          c = p / r;
          p = c * d[i] - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]);
          cs[i] = c;
          sn[i] = s;
        }
        applySweep(vt, n, l, m, cs, sn, carry);
        p = (-s * s2 * c3 * el1 * e[l]) / dl1;
        e[l] = s * p;
        d[l] = c * p;
      } while (Math.abs(e[l]) > eps * tst1);
    }
    d[l] = d[l] + f;
    e[l] = 0;
  }
}

/**
 * The decomposition of symmetric `data` (n x n, row-major, finite), eigenvalues in the order
 * the solver leaves them. Scales by a power of two when max|a_ij| is far from 1 (exact), so that
 * the QL recurrence cannot overflow or underflow; eigenvalues are scaled back (an overflow there
 * throws).
 */
function eighCore(data: Float64Array, n: number): { d: Float64Array; qt: Float64Array } {
  let amax = 0;
  for (let k = 0; k < data.length; k++) amax = Math.max(amax, Math.abs(data[k]));
  const e2 = amax > 2 ** 400 || (amax > 0 && amax < 2 ** -400) ? Math.max(-1000, Math.round(Math.log2(amax))) : 0;
  const input = e2 === 0 ? data : data.map((x) => x * 2 ** -e2);
  const w = wasm();
  let d: Float64Array;
  let qt: Float64Array;
  if (w !== null) {
    ({ d, vt: qt } = eighWasmFast(w, input, n));
  } else {
    const t = tridiagonalize(e2 === 0 ? input.slice() : input, n);
    tql2(t.d, t.e, t.qt, n);
    d = t.d;
    qt = t.qt;
  }
  if (e2 !== 0) for (let i = 0; i < n; i++) d[i] *= 2 ** e2;
  for (let i = 0; i < n; i++) {
    if (!Number.isFinite(d[i])) throw new Error(`eigh: eigenvalue ${i} is not finite (overflow in the input scale?)`);
  }
  return { d, qt };
}

/** Eigendecomposition with eigenvectors as rows of vt (fast path for reconstructions). */
export function eighRows(a: MatrixInput): EighRows {
  const A = symmetricInput(a, 'eigh(A)');
  const n = A.rows;
  const { d, qt } = eighCore(A.data, n);
  const order = Array.from(d.keys()).sort((i, j) => d[i] - d[j]);
  const values = new Float64Array(n);
  const vt = new Float64Array(n * n);
  for (let r = 0; r < n; r++) {
    values[r] = d[order[r]];
    vt.set(qt.subarray(order[r] * n, order[r] * n + n), r * n);
  }
  return { values, vt: { rows: n, cols: n, data: vt } };
}

/**
 * eighRows for a matrix that is symmetric by construction (e.g. a symmetrised statistic), on
 * the hot path of preconditioners: only finiteness is checked (no symmetry check, no copy) and
 * the eigenpairs are left in the solver's order (not sorted), row k of `vt` belonging to
 * `values[k]`. Same solver, scaling and errors as eighRows.
 */
export function eighUnsorted(data: Float64Array, n: number): EighRows {
  if (!(Number.isInteger(n) && n >= 1) || data.length !== n * n) {
    throw new Error(`eighUnsorted: expected ${n} x ${n} = ${n * n} entries, got ${data.length}`);
  }
  for (let k = 0; k < data.length; k++) {
    if (!Number.isFinite(data[k])) throw new Error(`eighUnsorted: entry ${k} is not finite (${data[k]})`);
  }
  const { d, qt } = eighCore(data, n);
  return { values: d, vt: { rows: n, cols: n, data: qt } };
}

/** Symmetric eigendecomposition: eigenvalues ascending, eigenvectors as columns. */
export function eigh(a: MatrixInput): EighResult {
  const { values, vt } = eighRows(a);
  return { values, vectors: transpose(vt) };
}

/**
 * Randomised residual estimate max_probe ||A x - V diag(lambda) V^T x|| / (||A||_F ||x||) with
 * `probes` Gaussian-ish vectors, O(probes n^2). A correct decomposition gives ~n * 1e-16.
 */
export function eighResidual(a: MatrixInput, values: Float64Array, vt: Mat64, probes = 2, seed = 1): number {
  const A = symmetricInput(a, 'eighResidual(A)');
  const n = A.rows;
  let normA = 0;
  for (let k = 0; k < A.data.length; k++) normA += A.data[k] ** 2;
  normA = Math.sqrt(normA);
  const rand = rng(seed);
  let worst = 0;
  for (let q = 0; q < probes; q++) {
    const x = new Float64Array(n);
    let nx = 0;
    for (let i = 0; i < n; i++) {
      x[i] = rand() - 0.5;
      nx += x[i] * x[i];
    }
    nx = Math.sqrt(nx);
    const ax = matvec(A, x);
    const y = matvec(vt, x); // V^T x
    for (let k = 0; k < n; k++) y[k] *= values[k];
    // V y = vt^T y
    const vy = new Float64Array(n);
    for (let k = 0; k < n; k++) {
      const yk = y[k];
      const rk = k * n;
      for (let i = 0; i < n; i++) vy[i] += vt.data[rk + i] * yk;
    }
    let r = 0;
    for (let i = 0; i < n; i++) r += (ax[i] - vy[i]) ** 2;
    worst = Math.max(worst, Math.sqrt(r) / ((normA || 1) * nx));
  }
  return worst;
}
