/**
 * Inverses of damped Kronecker factors (symmetric positive definite, up to 785 x 785 for an
 * MNIST input layer), fast enough to refresh every few steps.
 *
 * Small matrices (n <= LEAF) are inverted in float64 with src/linalg's WebAssembly kernels
 * (Cholesky, L^-1, L^-T L^-1; ~8 ms at 256 against ~40 ms for the float32 recursion; the JS
 * loops below when WebAssembly is unavailable). Larger ones use the block (Schur complement)
 * inverse
 *
 *   M = [P Q; Q^T S],  T = P^-1 Q,  X = S - Q^T T,
 *   M^-1 = [P^-1 + T X^-1 T^T, -T X^-1; -X^-1 T^T, X^-1]
 *
 * recursively, so that almost all of the n^3 work is tfjs matMuls (float32; ~20 GFLOP/s on the
 * wasm backend against well under 1 GFLOP/s for float64 JavaScript): a 785 x 785 inverse takes
 * tens of milliseconds instead of about a second. Schur complements of an SPD matrix are SPD,
 * and the factors are damped (condition number at most ~1e4-1e6 in practice), so float32
 * accuracy suffices for a preconditioner; the small-case tests check ~1e-5 agreement.
 * Products use explicit transposes (wasm's transposed matMul is slow).
 */
import * as tf from '@tensorflow/tfjs';
import { spdInverse as spdInverseF64, linalgKernel, type Mat64 } from '../linalg/index.js';

/** Matrices at most this size are inverted in float64 (src/linalg's WebAssembly kernels). */
export const LEAF = 256;

/** Float64 inverse of a symmetric positive definite n x n row-major matrix (symmetrised first). */
function leafInverse(m: Float32Array | Float64Array, n: number): Float64Array {
  if (linalgKernel() !== 'wasm') return spdInverse64(Float64Array.from(m), n);
  const data = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    data[i * n + i] = m[i * n + i]!;
    for (let j = 0; j < i; j++) data[i * n + j] = data[j * n + i] = 0.5 * (m[i * n + j]! + m[j * n + i]!);
  }
  const a: Mat64 = { rows: n, cols: n, data };
  try {
    return spdInverseF64(a, { maxTries: 1 }).inverse.data;
  } catch (err) {
    throw new Error(`KFAC: damped factor is not positive definite (${(err as Error).message})`);
  }
}

/** In-place float64 SPD inverse of an n x n row-major matrix; throws if not positive definite. */
export function spdInverse64(m: Float64Array, n: number): Float64Array {
  const L = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    const rj = j * n;
    let d = m[rj + j]!;
    for (let k = 0; k < j; k++) d -= L[rj + k]! * L[rj + k]!;
    if (!(d > 0)) throw new Error(`KFAC: damped factor is not positive definite (pivot ${d} at ${j})`);
    const ljj = Math.sqrt(d);
    L[rj + j] = ljj;
    for (let i = j + 1; i < n; i++) {
      const ri = i * n;
      let s = m[ri + j]!;
      for (let k = 0; k < j; k++) s -= L[ri + k]! * L[rj + k]!;
      L[ri + j] = s / ljj;
    }
  }
  // W = L^-1 (lower triangular), by forward substitution row by row.
  const W = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const ri = i * n;
    W[ri + i] = 1 / L[ri + i]!;
    for (let j = 0; j < i; j++) {
      let s = 0;
      for (let k = j; k < i; k++) s += L[ri + k]! * W[k * n + j]!;
      W[ri + j] = -s / L[ri + i]!;
    }
  }
  // M^-1 = W^T W: (i, j) = sum_k W[k, i] W[k, j] over k >= max(i, j).
  const out = new Float64Array(n * n);
  for (let k = 0; k < n; k++) {
    const rk = k * n;
    for (let i = 0; i <= k; i++) {
      const wki = W[rk + i]!;
      if (wki === 0) continue;
      const ri = i * n;
      for (let j = 0; j <= i; j++) out[ri + j] += wki * W[rk + j]!;
    }
  }
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) out[j * n + i] = out[i * n + j]!;
  return out;
}

/** `m + shift * I` for a square tensor. */
export function addToDiagonal(m: tf.Tensor2D, shift: number): tf.Tensor2D {
  return tf.tidy(() => tf.add(m, tf.mul(tf.eye(m.shape[0]), shift)) as tf.Tensor2D);
}

/** Inverse of a symmetric positive definite tensor (see the file comment). Caller owns it. */
export function spdInverse(m: tf.Tensor2D): tf.Tensor2D {
  const n = m.shape[0];
  if (n <= LEAF) {
    const inv = leafInverse(m.dataSync() as Float32Array, n);
    return tf.tensor2d(Float32Array.from(inv), [n, n]);
  }
  return tf.tidy(() => {
    const h = Math.ceil(n / 2);
    const P = tf.slice(m, [0, 0], [h, h]);
    const Q = tf.slice(m, [0, h], [h, n - h]);
    const S = tf.slice(m, [h, h], [n - h, n - h]);
    const Pi = spdInverse(P);
    const T = tf.matMul(Pi, Q);
    const Qt = tf.transpose(Q);
    const X = tf.sub(S, tf.matMul(Qt, T));
    const Xs = tf.mul(tf.add(X, tf.transpose(X)), 0.5) as tf.Tensor2D;
    const Xi = spdInverse(Xs);
    const TXi = tf.matMul(T, Xi);
    const top = tf.add(Pi, tf.matMul(TXi, tf.transpose(T)));
    const topSym = tf.mul(tf.add(top, tf.transpose(top)), 0.5);
    const upper = tf.concat([topSym, tf.neg(TXi)], 1);
    const lower = tf.concat([tf.neg(tf.transpose(TXi)), Xi], 1);
    return tf.concat([upper, lower], 0) as tf.Tensor2D;
  });
}
