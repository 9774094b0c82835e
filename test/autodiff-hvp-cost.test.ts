/**
 * The cheaper HVP path keeps values: losses.logSoftmax (max shift off the gradient path) equals
 * x - tf.logSumExp(x) exactly, and tanh's re-registered gradient (4 sigmoid(2x) sigmoid(-2x)) and
 * its derivative match the float64 closed forms 1/cosh^2 x and -2 tanh x / cosh^2 x to float32
 * accuracy, out to |x| = 9 where 1 - tanh^2 x underflows in float32, on cpu and wasm.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { grad, losses } from '../src/autodiff/index.js';

const previous = 'wasm';
beforeAll(async () => {
  expect(await initBackend('wasm')).toBe('wasm');
});

const xs = [-9, -5, -2.5, -1, -0.3, -1e-3, 0, 1e-4, 0.7, 1.5, 3, 6, 9];

describe.each(['cpu', 'wasm'])('on %s', (backend) => {
  function on<T>(fn: () => T): T {
    tf.setBackend(backend);
    try {
      return fn();
    } finally {
      tf.setBackend(previous);
    }
  }

  it("tanh' and tanh'' match the float64 closed forms", () => {
    const [d1, d2] = on(() =>
      tf.tidy(() => {
        const x = tf.tensor1d(xs);
        const first = grad((y) => tf.sum(tf.tanh(y)) as tf.Scalar, [x])[0];
        const second = grad((y) => tf.sum(grad((z) => tf.sum(tf.tanh(z)) as tf.Scalar, [y])[0]) as tf.Scalar, [x])[0];
        return [first.arraySync() as number[], second.arraySync() as number[]];
      }),
    );
    xs.forEach((x, i) => {
      const sech2 = 1 / Math.cosh(x) ** 2;
      expect(Math.abs(d1[i]! - sech2) / sech2, `tanh'(${x})`).toBeLessThan(1e-5);
      const t2 = -2 * Math.tanh(x) * sech2;
      expect(Math.abs(d2[i]! - t2), `tanh''(${x})`).toBeLessThan(1e-6 + 1e-5 * Math.abs(t2));
    });
  });

  it('logSoftmax equals x - logSumExp(x) exactly, large logits included', () => {
    const [ours, theirs] = on(() =>
      tf
        .tidy(() => {
          const x = tf.tensor2d([
            [1, 2, 3, -4],
            [1e4, -1e4, 0, 1e4],
            [-30, -30.5, -29, -100],
          ]);
          return [0, 1, -1].map((axis) => [
            losses.logSoftmax(x, axis).arraySync(),
            tf.sub(x, tf.logSumExp(x, axis, true)).arraySync(),
          ]);
        })
        .reduce(
          ([a, b], [c, d]) => [
            [...a, c],
            [...b, d],
          ],
          [[], []] as unknown[][],
        ),
    );
    expect(ours).toEqual(theirs);
  });
});
