/**
 * The Kronecker-structured least-squares problem of issue 13:
 * f(W) = 1/2 ||A W B - T||^2 / N with A [40, 20], B [10, 16], W [20, 10], N = 40 * 16,
 * A = U diag(s) V^T with singular values log-spaced from 1 to 1/cond (seeded orthonormal U, V),
 * B likewise, and T = A W* B + 0.01 noise (so the minimum is slightly above 0).
 */
import * as tf from '@tensorflow/tfjs';
import { rng } from '../optim-helpers.js';

function conditioned(rows: number, cols: number, cond: number, r: () => number): tf.Tensor2D {
  return tf.tidy(() => {
    const k = Math.min(rows, cols);
    const u = tf.linalg.qr(tf.tensor2d(Array.from({ length: rows * k }, r), [rows, k]))[0];
    const v = tf.linalg.qr(tf.tensor2d(Array.from({ length: cols * k }, r), [cols, k]))[0];
    const s = tf.tensor1d(Array.from({ length: k }, (_, i) => cond ** (-i / (k - 1))));
    return tf.matMul(tf.mul(u, s), tf.transpose(v)) as tf.Tensor2D;
  });
}

export interface KronLs {
  initial: number;
  /** Final loss after `steps` steps of `opt` from W = 0 (disposes the optimizer). */
  run(opt: tf.Optimizer, steps: number): number;
  dispose(): void;
}

let counter = 0;

export function kroneckerLeastSquares(seed: number, cond = 100, scale = 1, lossScale = 1): KronLs {
  const r = rng(seed);
  const A = conditioned(40, 20, cond, r);
  const B = conditioned(10, 16, cond, r);
  const wStar = tf.tensor2d(
    Array.from({ length: 200 }, () => scale * r()),
    [20, 10],
  );
  const T = tf.tidy(() => tf.matMul(tf.matMul(A, wStar), B));
  const N = 40 * 16;
  const loss = (W: tf.Tensor) =>
    tf.mul(
      tf.sum(tf.square(tf.sub(tf.matMul(tf.matMul(A, W as tf.Tensor2D), B), T))),
      (0.5 * lossScale) / N,
    ) as tf.Scalar;
  const initial = tf.tidy(() => loss(tf.zeros([20, 10])).dataSync()[0]!);
  return {
    initial,
    run(opt, steps) {
      const W = tf.variable(tf.zeros([20, 10]), true, `kron_ls_${counter++}`);
      for (let s = 0; s < steps; s++) opt.minimize(() => loss(W), false, [W]);
      const f = tf.tidy(() => loss(W).dataSync()[0]!);
      opt.dispose();
      W.dispose();
      return Number.isFinite(f) ? f : Infinity;
    },
    dispose() {
      tf.dispose([A, B, wStar, T]);
    },
  };
}
