// Central-difference references for derivative tests (independent of the code under test).
import * as tf from '@tensorflow/tfjs';
import { mulberry32 } from '../../src/rng.js';

/** mulberry32 (src/rng.ts): uniform [0, 1). */
export const seededRandom = mulberry32;

export function randomTensor(shape: number[], rand: () => number, scale = 1, offset = 0): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(
    Float32Array.from({ length: n }, () => offset + scale * (2 * rand() - 1)),
    shape,
  );
}

/** d/dt g(x + t w) at t = 0 by central differences, for g returning a number. */
export function centralDiff(g: (x: tf.Tensor) => number, x: tf.Tensor, w: tf.Tensor, h = 1e-2): number {
  const plus = tf.tidy(() => tf.add(x, tf.mul(w, h)));
  const minus = tf.tidy(() => tf.add(x, tf.mul(w, -h)));
  try {
    return (g(plus) - g(minus)) / (2 * h);
  } finally {
    plus.dispose();
    minus.dispose();
  }
}

export function dotData(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.sum(tf.mul(a, b)).dataSync()[0]);
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

export function expectClose(actual: number, expected: number, rtol: number, atol: number, what: string): void {
  const err = Math.abs(actual - expected);
  if (!(err <= atol + rtol * Math.abs(expected))) {
    throw new Error(
      `${what}: got ${actual}, expected ${expected} (|err| ${err.toExponential(2)} > ${atol} + ${rtol}|expected|)`,
    );
  }
}
