/**
 * Low-rank-plus-tail inverses of damped Kronecker factors (randomized K-FAC).
 *
 * For a symmetric positive semidefinite factor M (n x n) and damping d > 0, with the top-r
 * eigenpairs M ~ U diag(s) U^T (s_1 >= ... >= s_r), the inverse is applied as
 *
 *   (M + d I)^-1  ~  U diag(1 / (s + d)) U^T  +  (I - U U^T) / (s_r + d)
 *                 =  t I  +  U diag(c) U^T,     t = 1 / (s_r + d),  c_i = 1 / (s_i + d) - t.
 *
 * It is exact on the top-r eigenspace; on the rest every eigenvalue (all <= s_r) is replaced by
 * s_r, so the step there is never longer than the exact damped inverse's (a conservative tail:
 * the Nystrom-preconditioner choice of Frangella, Tropp & Udell 2023, where the plain
 * "drop the tail" form 1/d would amplify those directions by (s_i + d) / d). When M has rank
 * below r, s_r ~ 0 and the formula is the exact damped inverse.
 *
 * Applying it to a gradient matrix costs 2 n r m multiply-adds instead of n^2 m: for the
 * 785 x 785 input factor of an MNIST layer and r = 64, 8x fewer, which is what makes K-FAC's
 * step affordable on the wasm backend (docs/kfac.md).
 *
 * The eigenpairs come from the randomized Nystrom approximation of M (Tropp, Yurtsever, Udell &
 * Cevher 2017, "Fixed-rank approximation of a positive-semidefinite matrix from streaming data",
 * Algorithm 3, the numerically stable shifted form): for an orthonormal test matrix Omega (n x k,
 * k = r + oversampling),
 *
 *   Y = M Omega,  Y_nu = Y + nu Omega (tiny shift),  C C^T = Omega^T Y_nu (Cholesky),
 *   B = Y_nu C^-T,  B = U S V^T (SVD, from the eigendecomposition of B^T B),
 *   M ~ U diag(max(S^2 - nu, 0)) U^T.
 *
 * One product with M per refresh (a tfjs matMul, float32); the k x k Cholesky and
 * eigendecomposition are float64 on the host (src/linalg). B^T B has the condition number of M's
 * top-k spectrum (not its square), so float32 Gram products suffice. The factors are moving
 * averages that change slowly, so each refresh uses the previous refresh's Ritz vectors as Omega:
 * across refreshes this is subspace iteration, and one pass per refresh tracks the top
 * eigenspace (Puiu 2022, "Randomized K-FACs", warm-starts its sketches the same way). A cold
 * start orthonormalises a Gaussian Omega on the host (classical Gram-Schmidt twice, float64)
 * and makes two passes.
 */
import * as tf from '@tensorflow/tfjs';
import { cholesky, eighRows, lowerTriangularInverse, type Mat64 } from '../linalg/index.js';
import { norm, orthogonalize, scale } from '../linalg/vector64.js';

/** What applying the inverse needs: t I + U diag(coef) U^T. */
export interface LowRankFactors {
  /** Top-r Ritz vectors as columns [n, r]. */
  U: tf.Tensor2D;
  /** U^T [r, n] (explicit: wasm's transposed matMul is slow). */
  Ut: tf.Tensor2D;
  /** c_i = 1 / (s_i + d) - t, [r]. */
  coef: tf.Tensor1D;
  /** t = 1 / (s_r + d), a scalar tensor. */
  tail: tf.Scalar;
}

/** A refresh's result: the factors, plus the basis that warm-starts the next refresh. */
export interface LowRankInverse extends LowRankFactors {
  /** All k Ritz vectors [n, k] (warm start of the next refresh). */
  basis: tf.Tensor2D;
  /** Ritz values, descending (k of them). */
  values: Float64Array;
}

export interface LowRankOptions {
  /** Ritz vectors from the previous refresh ([n, k]); a Gaussian start when absent. */
  basis?: tf.Tensor2D;
  /** Nystrom passes (each starts from the previous one's Ritz vectors); default 1 warm, 2 cold. */
  iterations?: number;
  /** Extra columns beyond the rank; default max(8, ceil(r / 4)). */
  oversampling?: number;
  /** Seed of the Gaussian start. */
  seed?: number;
}

/** Whether a factor of size n gets the low-rank form for rank r (it must save work). */
export function useLowRank(n: number, rank: number): boolean {
  return rank > 0 && 2 * rank < n;
}

/**
 * Orthonormalise the columns of a row-major [n, k] matrix in float64 (classical Gram-Schmidt
 * twice, src/curvature's `orthogonalize`). A column that vanishes (rank deficiency) is replaced
 * by the next unit coordinate vector orthogonalised against the previous ones. Returns
 * row-major [n, k].
 */
export function orthonormalColumns(y: ArrayLike<number>, n: number, k: number): Float64Array {
  const q: Float64Array[] = [];
  let fill = 0;
  for (let j = 0; j < k; j++) {
    const v = new Float64Array(n);
    for (let i = 0; i < n; i++) v[i] = y[i * k + j]!;
    let ref = norm(v);
    for (let attempt = 0; attempt <= n; attempt++) {
      orthogonalize(v, q);
      const len = norm(v);
      if (len > 1e-10 * ref && len > 1e-300) {
        scale(1 / len, v);
        break;
      }
      // Dependent column: restart from the next coordinate vector.
      v.fill(0);
      v[fill++ % n] = 1;
      ref = 1;
    }
    q.push(v);
  }
  const out = new Float64Array(n * k);
  for (let j = 0; j < k; j++) {
    const qj = q[j]!;
    for (let i = 0; i < n; i++) out[i * k + j] = qj[i]!;
  }
  return out;
}

/** The values of a tensor, which is then disposed (not through tidy: tidy walks a returned
 * typed array element by element). */
function readOnce(t: tf.Tensor): Float32Array {
  try {
    return t.dataSync() as Float32Array;
  } finally {
    t.dispose();
  }
}

/** One Nystrom pass (file comment): Ritz vectors [n, k] and values (descending) from Omega. */
function nystrom(M: tf.Tensor2D, omega: tf.Tensor2D): { basis: tf.Tensor2D; values: Float64Array } {
  const [n, k] = omega.shape;
  const Y = tf.matMul(M, omega);
  try {
    const norm = Math.sqrt(readOnce(tf.tidy(() => tf.sum(tf.square(Y))))[0]!);
    if (!Number.isFinite(norm)) throw new Error('lowRankDampedInverse: the factor is not finite');
    if (norm === 0) return { basis: tf.clone(omega), values: new Float64Array(k) };
    // Shift of the stable Nystrom form, at float32 resolution of ||Y||.
    let nu = Math.sqrt(n) * 2 ** -23 * norm;
    let C: Mat64 | undefined;
    let Ynu: tf.Tensor2D | undefined;
    for (let attempt = 0; attempt < 6 && C === undefined; attempt++) {
      Ynu?.dispose();
      Ynu = tf.tidy(() => tf.add(Y, tf.mul(omega, nu)) as tf.Tensor2D);
      const w = readOnce(tf.tidy(() => tf.matMul(tf.transpose(omega), Ynu!)));
      const sym = new Float64Array(k * k);
      for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) sym[i * k + j] = 0.5 * (w[i * k + j]! + w[j * k + i]!);
      try {
        C = cholesky({ rows: k, cols: k, data: sym }, { maxTries: 1 }).L;
      } catch {
        nu *= 10; // float32 rounding left Omega^T Y_nu indefinite: a larger shift
      }
    }
    if (C === undefined) throw new Error('lowRankDampedInverse: the Nystrom core is not positive definite');
    // B = Y_nu C^-T; then B^T B = V S^2 V^T.
    const Cinv = lowerTriangularInverse(C);
    const CinvT = new Float32Array(k * k);
    for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) CinvT[i * k + j] = Cinv.data[j * k + i]!;
    const B = tf.tidy(() => tf.matMul(Ynu!, tf.tensor2d(CinvT, [k, k])));
    Ynu!.dispose();
    try {
      const g = readOnce(tf.tidy(() => tf.matMul(tf.transpose(B), B)));
      const sym = new Float64Array(k * k);
      for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) sym[i * k + j] = 0.5 * (g[i * k + j]! + g[j * k + i]!);
      const { values: asc, vt } = eighRows({ rows: k, cols: k, data: sym });
      // U = B V S^-1, columns in descending order; values S^2 - nu.
      const values = new Float64Array(k);
      const VS = new Float32Array(k * k);
      for (let j = 0; j < k; j++) {
        const src = k - 1 - j;
        const s2 = Math.max(asc[src]!, 0);
        values[j] = Math.max(s2 - nu, 0);
        const inv = s2 > 0 ? 1 / Math.sqrt(s2) : 0;
        for (let i = 0; i < k; i++) VS[i * k + j] = vt.data[src * k + i]! * inv;
      }
      const basis = tf.tidy(() => tf.matMul(B, tf.tensor2d(VS, [k, k]))) as tf.Tensor2D;
      return { basis, values };
    } finally {
      B.dispose();
    }
  } finally {
    Y.dispose();
  }
}

/**
 * The low-rank-plus-tail inverse of M + damp I (see the file comment). The caller owns the
 * returned tensors. Throws if M or the result is not finite.
 */
export function lowRankDampedInverse(
  M: tf.Tensor2D,
  damp: number,
  rank: number,
  o: LowRankOptions = {},
): LowRankInverse {
  const n = M.shape[0];
  if (M.rank !== 2 || M.shape[1] !== n) throw new Error(`lowRankDampedInverse: M must be square, got [${M.shape}]`);
  if (!Number.isInteger(rank) || rank < 1 || rank > n) {
    throw new Error(`lowRankDampedInverse: rank must be an integer in [1, ${n}], got ${rank}`);
  }
  if (!(damp > 0) || !Number.isFinite(damp)) throw new Error(`lowRankDampedInverse: damping must be > 0, got ${damp}`);
  const k = Math.min(n, rank + (o.oversampling ?? Math.max(8, Math.ceil(rank / 4))));
  const warm = o.basis !== undefined && o.basis.shape[0] === n && o.basis.shape[1] === k;
  const passes = o.iterations ?? (warm ? 1 : 2);

  // The current test matrix; handed to the result as its basis (then not disposed here).
  let omega: tf.Tensor2D | undefined = warm
    ? tf.clone(o.basis!)
    : tf.tidy(() => {
        const g = tf.randomNormal([n, k], 0, 1, 'float32', o.seed ?? 1).dataSync();
        return tf.tensor2d(Float32Array.from(orthonormalColumns(g, n, k)), [n, k]);
      });
  let values: Float64Array = new Float64Array(k);
  try {
    for (let p = 0; p < passes; p++) {
      const next = nystrom(M, omega);
      omega.dispose();
      omega = next.basis;
      values = next.values;
    }
    const t = 1 / (values[rank - 1]! + damp);
    const coef = new Float32Array(rank);
    for (let i = 0; i < rank; i++) coef[i] = 1 / (values[i]! + damp) - t;
    if (!Number.isFinite(t) || coef.some((c) => !Number.isFinite(c))) {
      throw new Error('lowRankDampedInverse: the factor is not finite');
    }
    const basis = omega;
    const U = tf.tidy(() => (rank === k ? tf.clone(basis) : tf.slice(basis, [0, 0], [n, rank]))) as tf.Tensor2D;
    omega = undefined;
    return {
      U,
      Ut: tf.tidy(() => tf.transpose(U)) as tf.Tensor2D,
      coef: tf.tensor1d(coef),
      tail: tf.scalar(t),
      basis,
      values,
    };
  } finally {
    omega?.dispose();
  }
}

/** (M + dI)^-1 V for V [n, m] (the factor on the left, as K-FAC's A). */
export function applyLeft(inv: LowRankFactors, v: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const r = inv.coef.shape[0];
    const proj = tf.mul(tf.matMul(inv.Ut, v), tf.reshape(inv.coef, [r, 1]));
    return tf.add(tf.mul(v, inv.tail), tf.matMul(inv.U, proj)) as tf.Tensor2D;
  });
}

/** V (M + dI)^-1 for V [m, n] (the factor on the right, as K-FAC's G). */
export function applyRight(inv: LowRankFactors, v: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const r = inv.coef.shape[0];
    const proj = tf.mul(tf.matMul(v, inv.U), tf.reshape(inv.coef, [1, r]));
    return tf.add(tf.mul(v, inv.tail), tf.matMul(proj, inv.Ut)) as tf.Tensor2D;
  });
}
