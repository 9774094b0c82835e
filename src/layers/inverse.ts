/**
 * Inverses of damped Kronecker factors (symmetric positive definite, up to 785 x 785 for an
 * MNIST input layer), fast enough to refresh every few steps.
 *
 * Small matrices (n <= LEAF) are inverted in float64 by src/linalg's spdInverse (Cholesky, L^-1,
 * L^-T L^-1 on its WebAssembly kernels, ~8 ms at 256 against ~40 ms for the float32 recursion;
 * its JavaScript loops when WebAssembly is unavailable). Larger ones use the block (Schur complement)
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
import { spdInverse as spdInverseF64, type Mat64 } from '../linalg/index.js';

/** Matrices at most this size are inverted in float64 (src/linalg's WebAssembly kernels). */
export const LEAF = 256;

/** Float64 inverse of a symmetric positive definite n x n row-major matrix (symmetrised first). */
function leafInverse(m: Float32Array | Float64Array, n: number): Float64Array {
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
