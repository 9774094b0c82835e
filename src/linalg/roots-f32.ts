/**
 * inverseRoot with method 'newton-f32': the coupled inverse Newton iteration of ./roots.ts in
 * float32 on the active tfjs backend (tf.matMul). Kept apart from ./roots.ts so that the matrix
 * worker (src/async/worker.ts -> compute.ts -> roots.ts) never loads '@tensorflow/tfjs'.
 * ./index.ts exports this module's `inverseRoot`, which handles every method.
 */
import * as tf from '@tensorflow/tfjs';
import type { Mat64, MatrixInput } from './matrix.js';
import {
  inverseRootWith,
  maxAbsMinusIdentity,
  newtonScale,
  type InverseRootOptions,
  type InverseRootResult,
} from './roots.js';

/** (A + eps I)^{-1/p} for symmetric PSD A, p a positive integer, by any method (./roots.ts). */
export function inverseRoot(a: MatrixInput, p: number, options: InverseRootOptions = {}): InverseRootResult {
  return inverseRootWith(a, p, options, newton32);
}

function newton32(A: Mat64, p: number, tol: number, maxIter: number) {
  const n = A.rows;
  const alpha = -1 / p;
  const z = newtonScale(A, p);
  const eye = tf.eye(n);
  let X = tf.mul(eye, z ** (1 / p)) as tf.Tensor2D;
  let M = tf.tensor2d(
    Float32Array.from(A.data, (v) => v * z),
    [n, n],
  );
  let best = tf.keep(X.clone());
  let err = maxAbsMinusIdentity(M.dataSync() as Float32Array, n);
  let bestErr = err;
  let it = 0;
  let stall = 0;
  while (bestErr > tol && it < maxIter) {
    it++;
    const [Xn, Mn, En] = tf.tidy(() => {
      const Mp = tf.add(tf.mul(M, alpha), tf.mul(eye, 1 - alpha)) as tf.Tensor2D;
      const Xn = tf.matMul(X, Mp);
      let P: tf.Tensor2D | null = null;
      let base: tf.Tensor2D = Mp;
      let e = p;
      while (e > 0) {
        if (e & 1) P = P === null ? base : (tf.matMul(P, base) as tf.Tensor2D);
        e >>= 1;
        if (e > 0) base = tf.matMul(base, base);
      }
      const Mn = tf.matMul(P as tf.Tensor2D, M);
      const dev = tf.max(tf.abs(tf.sub(Mn, eye)));
      return [Xn, Mn, dev] as [tf.Tensor2D, tf.Tensor2D, tf.Tensor];
    });
    X.dispose();
    M.dispose();
    X = Xn as tf.Tensor2D;
    M = Mn as tf.Tensor2D;
    err = (En.dataSync() as Float32Array)[0];
    En.dispose();
    if (err !== err) err = Infinity;
    if (err < bestErr) {
      best.dispose();
      best = tf.keep(X.clone());
      bestErr = err;
      stall = 0;
    } else if (++stall >= 2 || !Number.isFinite(err)) {
      break; // float32 floor reached (or divergence): keep the best iterate
    }
  }
  const data = Float64Array.from(best.dataSync() as Float32Array);
  tf.dispose([X, M, best, eye]);
  // Symmetrise the float32 result.
  const out: Mat64 = { rows: n, cols: n, data };
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const s = 0.5 * (data[i * n + j] + data[j * n + i]);
      data[i * n + j] = s;
      data[j * n + i] = s;
    }
  }
  return { X: out, err: bestErr, it };
}
